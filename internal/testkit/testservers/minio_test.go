package testservers

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestMinIOConditionalWrites pins what the CI MinIO does with conditional
// PutObject (If-None-Match: * on an existing key answers 412; If-Match on a
// missing key never succeeds): the commit protocol relies on it.
func TestMinIOConditionalWrites(t *testing.T) {
	t.Parallel()
	s := MinIO(t)
	bucket := s.NewBucket(t)
	client := s3.NewFromConfig(s.Config(t, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	put := func(key, body string, mod func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
		if mod != nil {
			mod(in)
		}
		return client.PutObject(ctx, in)
	}
	get := func(key string) (string, error) {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return string(b), err
	}

	first, err := put("k", "v1", nil)
	if err != nil {
		t.Fatalf("plain put: %v", err)
	}
	etag1 := aws.ToString(first.ETag)

	t.Run("IfNoneMatchOnExistingKey", func(t *testing.T) {
		_, err := put("k", "v-other", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
		if httpStatus(err) != 412 || errorCode(err) != "PreconditionFailed" {
			t.Fatalf("If-None-Match: * on an existing key: got %v (status %d, code %q), want 412 PreconditionFailed", err, httpStatus(err), errorCode(err))
		}
		if got, _ := get("k"); got != "v1" {
			t.Fatalf("object changed to %q by a refused write", got)
		}
		t.Logf("If-None-Match: * on an existing key: %d %s", httpStatus(err), errorCode(err))
	})
	t.Run("IfNoneMatchOnMissingKey", func(t *testing.T) {
		if _, err := put("fresh", "v", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }); err != nil {
			t.Fatalf("If-None-Match: * on a missing key: %v", err)
		}
	})
	t.Run("IfMatchOnMissingKey", func(t *testing.T) {
		for _, etag := range []string{etag1, `"00000000000000000000000000000000"`, "*"} {
			_, err := put("missing", "v", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) })
			if err == nil {
				t.Fatalf("If-Match %s on a missing key succeeded", etag)
			}
			if st := httpStatus(err); st != 404 && st != 412 {
				t.Fatalf("If-Match %s on a missing key: got %v, want 404 or 412", etag, err)
			}
			t.Logf("If-Match %s on a missing key: %d %s", etag, httpStatus(err), errorCode(err))
			if _, err := get("missing"); errorCode(err) != "NoSuchKey" {
				t.Fatalf("after a refused If-Match, GetObject: %v, want NoSuchKey", err)
			}
		}
	})
	t.Run("IfMatch", func(t *testing.T) {
		second, err := put("k", "v2", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag1) })
		if err != nil {
			t.Fatalf("If-Match with the current ETag: %v", err)
		}
		_, err = put("k", "v3", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag1) })
		if httpStatus(err) != 412 || errorCode(err) != "PreconditionFailed" {
			t.Fatalf("If-Match with a stale ETag: got %v, want 412 PreconditionFailed", err)
		}
		if got, _ := get("k"); got != "v2" {
			t.Fatalf("object is %q, want v2 (ETag %s)", got, aws.ToString(second.ETag))
		}
		t.Logf("If-Match current ETag: ok; stale ETag: %d %s", httpStatus(err), errorCode(err))
	})
}

func TestBucketName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for _, name := range []string{
		"TestX",
		"TestMinIO/sub_test#01",
		"Ünïcode/𠮷/🙂",
		strings.Repeat("VeryLongTestName/", 10),
		"---",
	} {
		got := bucketName(name)
		if !valid.MatchString(got) || strings.Contains(got, "--") {
			t.Errorf("bucketName(%q) = %q: not a valid S3 bucket name", name, got)
		}
	}
	if a, b := bucketName("T"), bucketName("T"); a == b {
		t.Errorf("bucketName gave %q twice", a)
	}
}

// TestStartMinIOIsItsOwn: the bench's entry point starts a MinIO apart
// from the one tests share, serving S3 calls, and its stop ends it and
// removes its directory.
func TestStartMinIOIsItsOwn(t *testing.T) {
	shared := MinIO(t) // skips (or fails in CI) when there is no MinIO
	if _, _, err := StartMinIO(filepath.Join(t.TempDir(), "no-minio")); err == nil || !strings.Contains(err.Error(), "no-minio") {
		t.Errorf("StartMinIO of a missing binary: %v, want an error naming it", err)
	}
	s, stop, err := StartMinIO("")
	if err != nil {
		t.Fatalf("StartMinIO: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	procMu.Lock()
	p := procs[len(procs)-1]
	procMu.Unlock()
	if s.Endpoint == shared.Endpoint {
		t.Fatalf("StartMinIO gave the shared server %s", s.Endpoint)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg, err := LoadConfig(ctx, s.Env(), nil)
	if err != nil {
		t.Fatal(err)
	}
	own := s3.NewFromConfig(cfg, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	if _, err := own.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench-own")}); err != nil {
		t.Fatalf("CreateBucket on %s: %v", s.Endpoint, err)
	}
	out, err := s3.NewFromConfig(shared.Config(t, nil)).ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range out.Buckets {
		if aws.ToString(b.Name) == "bench-own" {
			t.Fatal("the bucket made on StartMinIO's server is on the shared server too")
		}
	}

	stop()
	stopped = true
	if _, err := own.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Errorf("MinIO at %s still answers after stop", s.Endpoint)
	}
	if _, err := os.Stat(p.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("its directory %s is still there after stop (%v)", p.dir, err)
	}
	procMu.Lock()
	defer procMu.Unlock()
	if slices.Contains(procs, p) {
		t.Error("a stopped server is still among those Main stops")
	}
}
