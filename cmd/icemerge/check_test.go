package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// restrictedCredentials are MinIO credentials limited by policy: an STS
// AssumeRole by the root user with an inline session policy, which MinIO
// evaluates as it would a user's policy.
func restrictedCredentials(t *testing.T, s *testservers.S3, policy string) (id, secret, token string) {
	t.Helper()
	cfg := s.Config(t, nil)
	client := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(s.Endpoint) })
	out, err := client.AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn:         aws.String("arn:aws:iam::123456789012:role/icemerge-check"), // MinIO ignores it
		RoleSessionName: aws.String("icemerge-check"),
		Policy:          aws.String(policy),
	})
	if err != nil {
		t.Fatalf("MinIO AssumeRole with a session policy: %v", err)
	}
	c := out.Credentials
	return aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)
}

// icemerge check on S3 (MinIO) and Glue (moto): with every permission all
// checks pass (exit 0); with a credential lacking s3:DeleteObject on the
// warehouse, the "warehouse delete" check fails by name, with the exact
// error and the IAM action it needs (exit 1), and the others pass.
func TestCheckNamesTheMissingPermission(t *testing.T) {
	s := testservers.MinIO(t)
	g := testservers.Moto(t)
	raw, lake := s.NewBucket(t), s.NewBucket(t)
	db := g.NewDatabase(t)
	client := s3.NewFromConfig(s.Config(t, nil))
	for _, name := range []string{"LOAD00000001.parquet", "20240814-002642123.parquet"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &raw, Key: aws.String("raw_input/" + db + "/users/" + name), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL_GLUE", g.Env()["AWS_ENDPOINT_URL_GLUE"])
	vars := map[string]string{
		"ICEMERGE_CATALOG":    "glue",
		"ICEMERGE_SOURCE":     fmt.Sprintf("s3://%s/raw_input/%s/users", raw, db),
		"ICEMERGE_WAREHOUSE":  fmt.Sprintf("s3://%s/warehouse", lake),
		"ICEMERGE_TABLE":      db + ".users",
		"ICEMERGE_LOG_LEVEL":  "error",
		"AWS_ENDPOINT_URL_S3": s.Endpoint,
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli(context.Background(), args, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	checks := func(args ...string) (int, []icemerge.CheckResult, string) {
		t.Helper()
		code, stdout, stderr := run(append([]string{"check", "--json"}, args...)...)
		var res []icemerge.CheckResult
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("check --json: exit %d, %v\n%s%s", code, err, stdout, stderr)
		}
		return code, res, stderr
	}
	if code, stdout, stderr := run("run", "--key", "user_id"); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, stdout, stderr)
	}
	code, res, stderr := checks()
	names := map[string]icemerge.CheckResult{}
	for _, r := range res {
		names[r.Name] = r
		if !r.OK || r.Skipped {
			t.Errorf("all permissions: check %+v", r)
		}
	}
	for _, n := range []string{"source listing", "source reading", "warehouse listing", "warehouse write", "warehouse delete", "bookmark conditional write", "catalog read", "catalog update"} {
		if _, ok := names[n]; !ok {
			t.Errorf("no %q check in %v", n, res)
		}
	}
	if code != exitOK {
		t.Errorf("all permissions: exit %d: %s", code, stderr)
	}

	// The deployment's policy less one action: s3:DeleteObject in the lake.
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[2]s"]},
 {"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%[1]s/*"]},
 {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::%[2]s/*"]}]}`, raw, lake)
	id, secret, token := restrictedCredentials(t, s, policy)
	t.Setenv("AWS_ACCESS_KEY_ID", id)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", token)
	code, res, stderr = checks()
	if code != exitFailed {
		t.Errorf("without s3:DeleteObject: exit %d, want 1: %s", code, stderr)
	}
	for _, r := range res {
		failed := !r.OK && !r.Skipped
		if (r.Name == "warehouse delete") != failed {
			t.Errorf("without s3:DeleteObject: check %+v", r)
		}
		if r.Name == "warehouse delete" && (!strings.Contains(r.Detail, "AccessDenied") || !strings.Contains(r.Needs, "s3:DeleteObject on arn:aws:s3:::"+lake+"/warehouse/"+db+".db/users/*")) {
			t.Errorf("the failing check does not give the error and the action: %+v", r)
		}
	}
	code, stdout, _ := run("check")
	if code != exitFailed || !strings.Contains(stdout, "FAIL  warehouse delete") || !strings.Contains(stdout, "needs s3:DeleteObject") || !strings.Contains(stdout, "1 of 8 checks failed") {
		t.Errorf("check, text: exit %d\n%s", code, stdout)
	}
	t.Logf("icemerge check with one permission missing:\n%s", stdout)
}
