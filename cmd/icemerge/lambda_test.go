package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gopkg.in/yaml.v3"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/clikit"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
	"github.com/icemerge/icemerge/merge"
)

// parserFlags is eventArgs' flagsOf over the command line's grammar.
func parserFlags(t *testing.T) func(string) ([]string, bool) {
	t.Helper()
	var g grammar
	parser, err := newParser(&g, func(string) (string, bool) { return "", false }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return func(command string) ([]string, bool) { return commandFlags(parser, command) }
}

func TestLambdaEventArgs(t *testing.T) {
	flagsOf := parserFlags(t)
	tests := []struct {
		event   string
		command string
		want    []string
		err     string // part of the error; "" for none
	}{
		{``, "run", nil, ""},
		{`null`, "run", nil, ""},
		{` {} `, "run", nil, ""},
		{`{"table":"test_db.users","source":"s3://raw/raw_input/test_db/users/","key":"user_id"}`, "run",
			[]string{"--table=test_db.users", "--source=s3://raw/raw_input/test_db/users/", "--key=user_id"}, ""},
		{`{"command":"run","table":"a.b"}`, "run", []string{"--table=a.b"}, ""},
		// Every value as given, in event order; underscores stand for dashes.
		{`{"order_by":"ar_h_change_seq","max-files":"10","dry-run":"true","wait":"30s","on_bad_file":"quarantine"}`, "run",
			[]string{"--order-by=ar_h_change_seq", "--max-files=10", "--dry-run=true", "--wait=30s", "--on-bad-file=quarantine"}, ""},
		// Numbers and booleans as written.
		{`{"max_files": 10, "dry_run": false, "wait": "-1s"}`, "run", []string{"--max-files=10", "--dry-run=false", "--wait=-1s"}, ""},
		{`{"key":"tenant,id","max_bytes":"2GiB"}`, "run", []string{"--key=tenant,id", "--max-bytes=2GiB"}, ""},
		{`{"command":"maintain","table":"a.b","only":"compact,manifests","max-compact-bytes":"1GiB","force_managed":true}`, "maintain",
			[]string{"--table=a.b", "--only=compact,manifests", "--max-compact-bytes=1GiB", "--force-managed=true"}, ""},
		{`{"tabel":"a.b"}`, "", nil, `event field "tabel" is not a setting of icemerge run: an event gives command, table, source`},
		{`{"report":"-"}`, "", nil, `event field "report" is refused: the report is the invocation's answer`},
		// Locations come from the function's environment only.
		{`{"config":"/proc/self/environ"}`, "", nil, `event field "config" is refused: locations are fixed by the function's configuration (its ICEMERGE_CONFIG variable)`},
		{`{"catalog_uri":"postgres://me@elsewhere/db"}`, "", nil, `event field "catalog_uri" is refused: locations`},
		{`{"warehouse":"s3://elsewhere/"}`, "", nil, `event field "warehouse" is refused: locations`},
		{`{"bookmark":"s3://elsewhere/"}`, "", nil, `event field "bookmark" is refused: locations`},
		{`{"catalog":"sql"}`, "", nil, `event field "catalog" is refused: locations`},
		{`{"table-bucket-arn":"arn:aws:s3tables:us-east-1:123456789012:bucket/x"}`, "", nil, `event field "table-bucket-arn" is refused: locations`},
		{`{"command":"maintain","warehouse":"s3://elsewhere/"}`, "", nil, `event field "warehouse" is refused: locations`},
		// So does the function's tuning.
		{`{"settle-after":"0s"}`, "", nil, `event field "settle-after" is refused: it is a setting of the function, in its environment (ICEMERGE_SETTLE_AFTER)`},
		{`{"log_level":"debug"}`, "", nil, `event field "log_level" is refused: it is a setting of the function`},
		{`{"metrics":"off"}`, "", nil, `event field "metrics" is refused: it is a setting of the function`},
		{`{"command":"maintain","table":"a.b","source":"s3://raw/x/"}`, "", nil, `event field "source" is not a setting of icemerge maintain: an event gives command, table, dry-run, only`},
		// The function reads S3 only.
		{`{"source":"/proc/self"}`, "", nil, `event field "source": the function reads DMS folders on S3 only`},
		{`{"source":"file:///tmp/x"}`, "", nil, `event field "source": the function reads DMS folders on S3 only`},
		{`{"command":"status"}`, "", nil, `event field "command": "status" is not a command the function runs: use maintain, run, verify`},
		{`{"command":["run"]}`, "", nil, `event field "command": ["run"] is not a string`},
		{`{"max-files":"1","max_files":"2"}`, "", nil, `repeats "max-files"`},
		{`{"table":"a.b","table":"a.c"}`, "", nil, `repeats "table"`},
		{`{"key":["a","b"]}`, "", nil, `event field "key": ["a","b"] is not a string`},
		{`{"key":null}`, "", nil, `event field "key": null is not a string`},
		{`{"wait":{"s":1}}`, "", nil, `is not a string`},
		{`["table","a.b"]`, "", nil, `not a JSON object`},
		{`"table=a.b"`, "", nil, `not a JSON object`},
		{`{"table":"a.b"`, "", nil, `not valid JSON`},
		{`{"table":}`, "", nil, `event field "table"`},
		{`{"table":"a.b"} {}`, "", nil, `data after its JSON object`},
		{`{"table":"a.b"}]`, "", nil, `data after its JSON object`},
		{`{`, "", nil, `not valid JSON`},
	}
	for _, tc := range tests {
		command, got, err := eventArgs([]byte(tc.event), flagsOf)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("eventArgs(%s): %v", tc.event, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("eventArgs(%s): error %v, want one containing %q", tc.event, err, tc.err)
		case command != tc.command || !slices.Equal(got, tc.want):
			t.Errorf("eventArgs(%s) = %s %q, want %s %q", tc.event, command, got, tc.command, tc.want)
		}
	}
	// A command the function runs but this build lacks is refused by name.
	if _, _, err := eventArgs([]byte(`{"command":"verify","table":"a.b"}`), func(c string) ([]string, bool) {
		if c == "verify" {
			return nil, false
		}
		return flagsOf(c)
	}); err == nil || !strings.Contains(err.Error(), `"verify" is not a command of this icemerge build`) {
		t.Errorf("verify on a build without it: %v", err)
	}
}

// The settings an event may give are flags of their command, none of them
// a location; every other flag of run and maintain is refused by name.
func TestLambdaEventAllowList(t *testing.T) {
	flagsOf := parserFlags(t)
	for command, allowed := range eventFields {
		flags, ok := flagsOf(command)
		if !ok {
			t.Errorf("the function runs %s, which is no command of icemerge", command)
			continue
		}
		for _, name := range allowed {
			if !slices.Contains(flags, name) {
				t.Errorf("%s: the event field %q is no flag of icemerge %s", command, name, command)
			}
			if slices.Contains(eventLocations, name) {
				t.Errorf("%s: the event may set the location %q", command, name)
			}
		}
		refused := 0
		for _, name := range flags {
			if slices.Contains(allowed, name) || name == "help" {
				continue
			}
			refused++
			_, _, err := eventArgs(fmt.Appendf(nil, `{"command":%q,%q:"x"}`, command, name), flagsOf)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("event field %q is refused", name)) {
				t.Errorf("%s: the event field %q: %v, want it refused by name", command, name, err)
			}
		}
		t.Logf("%s: the event takes %d settings; %d others come from the function's environment", command, len(allowed), refused)
		if refused < 8 {
			t.Errorf("%s: only %d flags are refused: the locations at least must be", command, refused)
		}
	}
	for _, loc := range []string{"catalog", "catalog-uri", "warehouse", "bookmark", "table-bucket-arn"} {
		if flags, _ := flagsOf("run"); !slices.Contains(flags, loc) {
			t.Errorf("the location %q is no flag of icemerge run: eventLocations is out of date", loc)
		}
	}
}

func TestLambdaErrorTypes(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	tests := []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{live, fmt.Errorf("%w: --table is required", icemerge.ErrUsage), errTypeUsage},
		{live, fmt.Errorf("locking: %w", bookmark.ErrLocked), errTypeLocked},
		{live, fmt.Errorf("run: %w", &merge.InputError{File: "x.parquet", Err: errors.New("not Parquet")}), errTypeBadInput},
		{done, fmt.Errorf("listing: %w", context.Canceled), errTypeCancelled},
		{done, fmt.Errorf("listing: %w", context.DeadlineExceeded), errTypeCancelled},
		// A run cancelled by its own lost lock, not by the invocation's
		// time: a failure.
		{live, fmt.Errorf("lost the lock: %w", context.Canceled), errTypeFailed},
		{live, errors.New("glue: access denied"), errTypeFailed},
	}
	for _, tc := range tests {
		le := classify(tc.ctx, tc.err)
		if le.Type != tc.want || !errors.Is(le, tc.err) {
			t.Errorf("classify(%v) = %s (%v), want %s wrapping the error", tc.err, le.Type, le.Err, tc.want)
		}
		// The Lambda runtime reports a messages.InvokeResponse_Error's
		// Type as the errorType, and any other error by its Go type name.
		ie, ok := toInvokeError(le).(messages.InvokeResponse_Error)
		if !ok || ie.Type != tc.want || ie.Message != le.Error() {
			t.Errorf("toInvokeError(%v) = %#v, want errorType %s", le, toInvokeError(le), tc.want)
		}
	}
	if ie, ok := toInvokeError(errors.New("x")).(messages.InvokeResponse_Error); !ok || ie.Type != errTypeFailed {
		t.Errorf("an unclassified error: %#v, want errorType %s", toInvokeError(errors.New("x")), errTypeFailed)
	}
	if toInvokeError(nil) != nil {
		t.Error("toInvokeError(nil) is not nil")
	}
}

// lambdaWorld is a function's world on MinIO: the DMS folder and the
// warehouse in a bucket, the sql catalog in a local file, the function's
// environment (ICEMERGE_*, and the variables Lambda sets) as a map, and the
// AWS variables in the process's environment, where the SDK reads them.
type lambdaWorld struct {
	t                *testing.T
	dir, bucket, src string
	s3               *s3.Client
	vars             map[string]string
	h                lambdaHandler
	metrics, logs    bytes.Buffer
}

func newLambdaWorld(t *testing.T) *lambdaWorld {
	t.Helper()
	srv := testservers.MinIO(t)
	for k, v := range srv.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	w := &lambdaWorld{t: t, dir: t.TempDir(), bucket: srv.NewBucket(t)}
	w.s3 = s3.NewFromConfig(testservers.AWSConfig(t, srv, nil, nil))
	w.src = "s3://" + w.bucket + "/raw_input/test_db/users/"
	w.vars = map[string]string{
		"ICEMERGE_WAREHOUSE":       "s3://" + w.bucket + "/warehouse",
		"ICEMERGE_CATALOG_URI":     filepath.Join(w.dir, "c.db"),
		"ICEMERGE_LOG_LEVEL":       "error",
		"ICEMERGE_LOG_FORMAT":      "json",
		"ICEMERGE_REPORT":          filepath.Join(w.dir, "missing-folder", "r.json"), // the handler's --report=- wins
		"AWS_LAMBDA_FUNCTION_NAME": "icemerge-test",                                  // --metrics auto: on
	}
	w.h = lambdaHandler{env: func(k string) (string, bool) { v, ok := w.vars[k]; return v, ok }, stdout: &w.metrics, stderr: &w.logs}
	return w
}

// put writes an object of the users folder.
func (w *lambdaWorld) put(name string, b []byte) {
	w.t.Helper()
	if _, err := w.s3.PutObject(w.t.Context(), &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String("raw_input/test_db/users/" + name), Body: bytes.NewReader(b)}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *lambdaWorld) fixture(name string) {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		w.t.Fatal(err)
	}
	w.put(name, b)
}

// invoke invokes the handler with a deadline, as Lambda does; the metrics
// and logs are those of this invocation.
func (w *lambdaWorld) invoke(event string) (json.RawMessage, error) {
	w.t.Helper()
	w.logs.Reset()
	w.metrics.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.h.invoke(ctx, []byte(event))
}

// emf is the invocation's one EMF line, as a map.
func (w *lambdaWorld) emf() map[string]any {
	w.t.Helper()
	lines := strings.Split(strings.TrimSuffix(w.metrics.String(), "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		w.t.Fatalf("the invocation wrote %d metrics lines, want one:\n%s", len(lines), w.metrics.String())
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &doc); err != nil || doc["_aws"] == nil {
		w.t.Fatalf("the metrics line is no EMF document (%v):\n%s", err, lines[0])
	}
	return doc
}

func errType(err error) string {
	var le *lambdaError
	if !errors.As(err, &le) {
		return fmt.Sprintf("not a lambdaError: %v", err)
	}
	return le.Type
}

// The handler end to end on MinIO: the event names the table and its
// source, the function's environment the catalog and warehouse; the answer
// is the command's report and the metrics go to stdout, one EMF line per
// run.
func TestLambdaHandler(t *testing.T) {
	w := newLambdaWorld(t)
	event := fmt.Sprintf(`{"table":"test_db.users","source":%q,"key":"user_id"}`, w.src)
	report := func(answer json.RawMessage) icemerge.TableReport {
		t.Helper()
		var rep icemerge.Report
		if err := json.Unmarshal(answer, &rep); err != nil || len(rep.Tables) != 1 {
			t.Fatalf("the answer is not a run report of one table (%v): %s", err, answer)
		}
		return rep.Tables[0]
	}

	w.fixture("LOAD00000001.parquet")
	w.fixture("20240814-002642123.parquet")
	answer, err := w.invoke(event)
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, w.logs.String())
	}
	if r := report(answer); r.Table != "test_db.users" || r.Outcome != "committed" || r.Files != 2 || r.RowsInserted != 5 || r.SnapshotID == 0 {
		t.Errorf("first run: report %+v, want 2 files committed, 5 rows", r)
	}
	if bytes.ContainsAny(answer, "\n") {
		t.Errorf("the answer is not compact JSON: %s", answer)
	}
	if m := w.emf(); m["table"] != "test_db.users" || m["outcome"] != "committed" || m["RowsInserted"] != 5.0 || m["FilesApplied"] != 2.0 || m["SucceededRuns"] != 1.0 {
		t.Errorf("first run's metrics: %v", m)
	}
	if strings.Contains(w.logs.String(), `"_aws"`) {
		t.Errorf("the metrics went to the log too:\n%s", w.logs.String())
	}

	answer, err = w.invoke(event)
	if err != nil || report(answer).Outcome != "nothing new" || w.emf()["outcome"] != "nothing new" {
		t.Errorf("second run: %s, %v", answer, err)
	}
	// Flags of the event as strings and numbers.
	answer, err = w.invoke(fmt.Sprintf(`{"table":"test_db.users","source":%q,"dry_run":"true","max_files":5}`, w.src))
	if err != nil || report(answer).Outcome != "dry run" || report(answer).Files != 0 {
		t.Errorf("dry run: %s, %v", answer, err)
	}
	// The function's environment turns the metrics off.
	w.vars["ICEMERGE_METRICS"] = "off"
	if _, err := w.invoke(event); err != nil || w.metrics.Len() != 0 {
		t.Errorf("ICEMERGE_METRICS=off: %v, metrics %q", err, w.metrics.String())
	}
	delete(w.vars, "ICEMERGE_METRICS")

	// Another run holds the table: TableLocked, for Step Functions to retry.
	store := bookmark.NewS3Store(w.s3, w.bucket, "warehouse/_icemerge", "test_db.users")
	lease, err := store.Lock(context.Background(), "another-run", time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.invoke(event); errType(err) != errTypeLocked || !strings.Contains(err.Error(), "another-run") {
		t.Errorf("locked table: %s: %v, want %s naming the holder", errType(err), err, errTypeLocked)
	}
	if m := w.emf(); m["outcome"] != "locked" || m["FailedRuns"] != 0.0 {
		t.Errorf("locked run's metrics: %v", m)
	}
	if err := lease.Release(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A bad file: BadInput, and the failed run's report is in the log.
	w.put("20240814-002700000.parquet", []byte("junk"))
	if _, err := w.invoke(event); errType(err) != errTypeBadInput || !strings.Contains(err.Error(), "20240814-002700000.parquet") {
		t.Errorf("bad file: %s: %v, want %s naming the object", errType(err), err, errTypeBadInput)
	}
	if !strings.Contains(w.logs.String(), `icemerge: run report: {"started":`) || !strings.Contains(w.logs.String(), `"outcome":"failed"`) {
		t.Errorf("the failed run's report is not in the log:\n%s", w.logs.String())
	}
	if m := w.emf(); m["outcome"] != "failed" || m["FailedRuns"] != 1.0 || m["PendingLag"] == nil {
		t.Errorf("failed run's metrics: %v", m)
	}
	answer, err = w.invoke(fmt.Sprintf(`{"table":"test_db.users","source":%q,"on_bad_file":"quarantine"}`, w.src))
	if err != nil || len(report(answer).Quarantined) != 1 {
		t.Errorf("quarantine: %s, %v", answer, err)
	}

	// maintain: the answer is the maintenance report.
	answer, err = w.invoke(`{"command":"maintain","table":"test_db.users","only":"manifests,expire","expire_older_than":"0d","retain_last":1}`)
	var mrep icemerge.MaintainReport
	if err != nil || json.Unmarshal(answer, &mrep) != nil || !mrep.OK || mrep.Manifests == nil || mrep.Expire == nil || mrep.Expire.Before != 1 || mrep.Compact != nil {
		t.Errorf("maintain: %s, %v; want manifests and expiry run on the one snapshot", answer, err)
	}
	if _, err := w.invoke(`{"command":"maintain","table":"test_db.users","only":"vacuum"}`); errType(err) != errTypeUsage || !strings.Contains(err.Error(), "vacuum") {
		t.Errorf("maintain with an unknown step: %s: %v", errType(err), err)
	}

	// Usage errors: a bad event, a bad value, a new table without a key.
	for _, ev := range []string{
		`{"table":"test_db.users","sauce":"x"}`,
		`[1]`,
		fmt.Sprintf(`{"table":"test_db.users","source":%q,"max-files":"many"}`, w.src),
		fmt.Sprintf(`{"table":"test_db.other","source":%q}`, w.src),
		`{"table":"test_db.users"}`, // no source
		fmt.Sprintf(`{"table":"test_db.users","source":%q,"warehouse":"s3://elsewhere/"}`, w.src),
	} {
		if _, err := w.invoke(ev); errType(err) != errTypeUsage {
			t.Errorf("event %s: %s: %v, want %s", ev, errType(err), err, errTypeUsage)
		}
	}
	// A failure: the source bucket does not exist.
	if _, err := w.invoke(`{"table":"test_db.users","source":"s3://no-such-bucket-icemerge/raw_input/test_db/users/"}`); errType(err) != errTypeFailed {
		t.Errorf("missing source bucket: %s: %v, want %s", errType(err), err, errTypeFailed)
	}
}

// Events that name a location or a file are refused by name, and nothing
// the function holds (its AWS keys, in its environment) is in the answer or
// the log; a --config of the function's that is not YAML (the environment
// file) is refused without its text.
func TestLambdaEventsCannotChooseLocations(t *testing.T) {
	const (
		keyID   = "AKIAIOSFODNN7EXAMPLE"
		secret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		session = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
	)
	t.Setenv("AWS_ACCESS_KEY_ID", keyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", session)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	// What /proc/self/environ holds on Lambda: NUL-separated variables.
	environ := filepath.Join(dir, "environ")
	if err := os.WriteFile(environ, []byte("AWS_ACCESS_KEY_ID="+keyID+"\x00AWS_SECRET_ACCESS_KEY="+secret+"\x00AWS_SESSION_TOKEN="+session+"\x00AWS_REGION=eu-west-1\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	// And a file of key: value lines.
	credentials := filepath.Join(dir, "credentials")
	if err := os.WriteFile(credentials, []byte("aws_access_key_id: "+keyID+"\naws_secret_access_key: "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"ICEMERGE_CATALOG": "glue", "ICEMERGE_WAREHOUSE": "s3://lake/warehouse", "ICEMERGE_LOG_FORMAT": "json",
		"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": session, "AWS_LAMBDA_FUNCTION_NAME": "icemerge",
	}
	var out, logs bytes.Buffer
	h := lambdaHandler{env: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, stdout: &out, stderr: &logs}
	check := func(event, want string) {
		t.Helper()
		out.Reset()
		logs.Reset()
		answer, err := h.invoke(context.Background(), []byte(event))
		if errType(err) != errTypeUsage || !strings.Contains(err.Error(), want) {
			t.Errorf("event %s: %s: %v, want %s saying %q", event, errType(err), err, errTypeUsage, want)
		}
		all := fmt.Sprint(err) + string(answer) + out.String() + logs.String()
		for _, s := range []string{keyID, secret, session} {
			if strings.Contains(all, s) {
				t.Errorf("event %s: the answer or the log holds a secret of the function:\n%s", event, all)
			}
		}
	}
	for field, event := range map[string]string{
		"config":           `{"config": "/proc/self/environ"}`,
		"catalog-uri":      `{"table": "test_db.users", "catalog-uri": "postgres://me@attacker.example/db"}`,
		"catalog_uri":      `{"table": "test_db.users", "catalog_uri": "/tmp/other.db"}`,
		"warehouse":        `{"table": "test_db.users", "warehouse": "s3://attacker-bucket/"}`,
		"bookmark":         `{"table": "test_db.users", "bookmark": "/proc/self"}`,
		"catalog":          `{"table": "test_db.users", "catalog": "sql"}`,
		"table-bucket-arn": `{"table": "test_db.users", "table-bucket-arn": "arn:aws:s3tables:eu-west-1:210987654321:bucket/theirs"}`,
		"source":           `{"table": "test_db.users", "source": "/proc/self/"}`,
		"report":           `{"table": "test_db.users", "report": "/tmp/leak.json"}`,
		"log-level":        `{"table": "test_db.users", "log-level": "debug"}`,
		"temp-dir":         `{"command": "verify", "table": "test_db.users", "temp-dir": "/tmp"}`,
	} {
		check(event, fmt.Sprintf("event field %q", field))
	}
	check(`{"command": "maintain", "table": "test_db.users", "warehouse": "s3://attacker-bucket/"}`, `event field "warehouse"`)

	// The function's own --config, read and refused without echoing it.
	for _, file := range []string{environ, credentials, "/proc/self/environ"} {
		vars["ICEMERGE_CONFIG"] = file
		check(`{"source": "s3://raw/raw_input/test_db/"}`, "--config "+file)
	}
}

// A run that cannot finish before the invocation's deadline is cancelled
// (Cancelled), leaving the margin to answer.
func TestLambdaDeadline(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	vars := map[string]string{"ICEMERGE_CATALOG_URI": filepath.Join(dir, "c.db"), "ICEMERGE_WAREHOUSE": "file://" + filepath.Join(dir, "wh"), "ICEMERGE_LOG_LEVEL": "error"}
	var out bytes.Buffer
	h := lambdaHandler{env: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, stdout: &out, stderr: &bytes.Buffer{}, margin: 500 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// The table is locked and the run waits for it longer than the
	// invocation lasts (it never reaches its source).
	store := bookmark.NewFileStore(filepath.Join(dir, "wh", "_icemerge"), "a.b")
	if _, err := store.Lock(context.Background(), "another-run", time.Hour, time.Now); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := h.invoke(ctx, []byte(`{"table":"a.b","source":"s3://raw/a/b/","key":"id","wait":"1h"}`))
	if errType(err) != errTypeCancelled {
		t.Errorf("run past the deadline: %v, want %s", err, errTypeCancelled)
	}
	if deadline, _ := ctx.Deadline(); time.Now().After(deadline) {
		t.Errorf("the handler answered after the invocation's deadline (%s)", time.Since(start))
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("the handler answered after %s: the run did not wait for the lock until its deadline", took)
	}
	if out.Len() != 0 {
		t.Errorf("metrics without AWS_LAMBDA_FUNCTION_NAME (--metrics auto): %s", out.String())
	}
}

// The state machine of deploy/template.yaml: every transition names a state
// of its scope, and the error names it retries and catches are the
// errorTypes the handler gives (cfn-lint checks the states' fields, not
// this). The functions' ICEMERGE_* variables are flags of icemerge run.
func TestLambdaTemplateMatchesTheHandler(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("deploy/template.yaml: %v", err)
	}
	tmpl, _ := plainYAML(&doc).(map[string]any)
	dig := func(v any, path ...string) any {
		for _, p := range path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		return v
	}
	def, ok := dig(tmpl, "Resources", "StateMachine", "Properties", "Definition").(map[string]any)
	if !ok {
		t.Fatal("deploy/template.yaml has no Resources.StateMachine.Properties.Definition")
	}
	ours := []string{errTypeLocked, errTypeUsage, errTypeBadInput, errTypeCancelled, errTypeFailed}
	retried := map[string]bool{}
	var check func(where string, scope map[string]any)
	check = func(where string, scope map[string]any) {
		states, _ := scope["States"].(map[string]any)
		has := func(from, name any) {
			if s, _ := name.(string); s != "" {
				if _, ok := states[s]; !ok {
					t.Errorf("%s: %v goes to %q, which is not a state of its scope", where, from, s)
				}
			}
		}
		has("StartAt", scope["StartAt"])
		for name, st := range states {
			st, _ := st.(map[string]any)
			has(name, st["Next"])
			has(name, st["Default"])
			for _, list := range []string{"Choices", "Catch", "Retry"} {
				items, _ := st[list].([]any)
				for _, it := range items {
					it, _ := it.(map[string]any)
					has(name, it["Next"])
					errs, _ := it["ErrorEquals"].([]any)
					for _, e := range errs {
						e, _ := e.(string)
						if !strings.HasPrefix(e, "States.") && !strings.HasPrefix(e, "Lambda.") && !slices.Contains(ours, e) {
							t.Errorf("%s: state %s %s: %q is no errorType of the handler (%q)", where, name, list, e, ours)
						}
						if list == "Retry" {
							retried[e] = true
						}
					}
				}
			}
			if proc, ok := st["ItemProcessor"].(map[string]any); ok {
				check(where+"/"+name, proc)
			}
			branches, _ := st["Branches"].([]any)
			for i, br := range branches {
				br, _ := br.(map[string]any)
				check(fmt.Sprintf("%s/%s[%d]", where, name, i), br)
			}
		}
	}
	check("Definition", def)
	if !retried[errTypeLocked] {
		t.Errorf("the state machine does not retry %s", errTypeLocked)
	}
	for _, e := range []string{errTypeUsage, errTypeBadInput, errTypeFailed, errTypeCancelled} {
		if retried[e] {
			t.Errorf("the state machine retries %s: retrying does not help", e)
		}
	}
	// deploy/iam-policy.json is the template's JobDataPolicy cut down to
	// one table: the same actions.
	actions := func(stmts []any) []string {
		var out []string
		for _, st := range stmts {
			m, _ := st.(map[string]any)
			if m == nil {
				continue
			}
			switch a := m["Action"].(type) {
			case string:
				out = append(out, a)
			case []any:
				for _, x := range a {
					out = append(out, fmt.Sprint(x))
				}
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	var stmts []any
	raw, _ := dig(tmpl, "Resources", "JobDataPolicy", "Properties", "PolicyDocument", "Statement").([]any)
	for _, st := range raw {
		if l, ok := st.([]any); ok && len(l) == 3 { // !If [HasKms, statement, !Ref AWS::NoValue]
			st = l[1]
		}
		stmts = append(stmts, st)
	}
	pb, err := os.ReadFile(filepath.Join("..", "..", "deploy", "iam-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var policy struct{ Statement []any }
	if err := json.Unmarshal(pb, &policy); err != nil {
		t.Fatalf("deploy/iam-policy.json: %v", err)
	}
	if got, want := actions(policy.Statement), actions(stmts); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("deploy/iam-policy.json allows %q, the template's JobDataPolicy %q: keep them in step", got, want)
	}

	vars, _ := dig(tmpl, "Resources", "Function", "Properties", "Environment", "Variables").(map[string]any)
	if len(vars) == 0 {
		t.Error("the function sets no ICEMERGE_* variables")
	}
	flagsOf := parserFlags(t)
	flags, _ := flagsOf("run")
	for k := range vars {
		if name, ok := strings.CutPrefix(k, "ICEMERGE_"); ok && !slices.Contains(flags, strings.ReplaceAll(strings.ToLower(name), "_", "-")) {
			t.Errorf("the function sets %s, which is no flag of icemerge run", k)
		}
	}

	// Every metric an alarm of the icemerge namespace watches is one that
	// runs write, with the alarm's dimensions as one of the line's
	// dimension sets: the EMF lines of a committed, an idle and a failed
	// run, as the handler writes them.
	now := time.Now()
	res := &icemerge.Result{Outcome: icemerge.OutcomeCommitted, Files: 1, OldestPending: now.Add(-time.Hour), NewestChange: now.Add(-time.Hour),
		Plan: &merge.Plan{RowsInserted: 1}, Time: icemerge.Timings{Total: time.Second}}
	emitted := map[string][][]string{} // metric → the dimension sets it has
	for _, run := range []struct {
		res *icemerge.Result
		err error
	}{{res, nil}, {&icemerge.Result{Outcome: icemerge.OutcomeNothingNew}, nil}, {res, errors.New("failed")}} {
		line, err := icemerge.EMF("test_db.users", run.res, run.err, now)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			AWS struct {
				CloudWatchMetrics []struct {
					Namespace  string
					Dimensions [][]string
					Metrics    []struct{ Name string }
				}
			} `json:"_aws"`
		}
		if err := json.Unmarshal(line, &doc); err != nil {
			t.Fatal(err)
		}
		for _, d := range doc.AWS.CloudWatchMetrics {
			for _, m := range d.Metrics {
				if d.Namespace == icemerge.MetricsNamespace {
					emitted[m.Name] = append(emitted[m.Name], d.Dimensions...)
				}
			}
		}
	}
	resources, _ := dig(tmpl, "Resources").(map[string]any)
	alarms := 0
	for name, r := range resources {
		if dig(r, "Type") != "AWS::CloudWatch::Alarm" {
			continue
		}
		alarms++
		props, _ := dig(r, "Properties").(map[string]any)
		if acts, _ := props["AlarmActions"].([]any); len(acts) == 0 || acts[0] != "AlarmTopic" {
			t.Errorf("alarm %s notifies %v, want the AlarmTopic", name, props["AlarmActions"])
		}
		if props["Namespace"] != icemerge.MetricsNamespace {
			continue
		}
		metric, _ := props["MetricName"].(string)
		var dims []string
		list, _ := props["Dimensions"].([]any)
		for _, d := range list {
			dims = append(dims, fmt.Sprint(dig(d, "Name")))
		}
		slices.Sort(dims)
		sets, ok := emitted[metric]
		if !ok {
			t.Errorf("alarm %s watches the metric %q, which no run writes (they write %q)", name, metric, slices.Sorted(maps.Keys(emitted)))
			continue
		}
		if !slices.ContainsFunc(sets, func(set []string) bool { return slices.Equal(slices.Sorted(slices.Values(set)), dims) }) {
			t.Errorf("alarm %s watches %s by %q, but runs write it by %q only", name, metric, dims, sets)
		}
	}
	if alarms < 4 {
		t.Errorf("the template has %d alarms, want failed runs, lag, no success and failed executions", alarms)
	}

	// The maintenance schedule starts the state machine with command
	// maintain, and its default settings are event fields of maintain (the
	// state machine adds the table).
	input, _ := dig(tmpl, "Resources", "MaintainSchedule", "Properties", "Target", "Input").(string)
	params, _ := dig(tmpl, "Parameters").(map[string]any)
	sub := regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(input, func(m string) string {
		return fmt.Sprint(dig(params, m[2:len(m)-1], "Default"))
	})
	var start struct {
		Command  string
		Tables   []any
		Maintain map[string]any
	}
	if err := json.Unmarshal([]byte(sub), &start); err != nil || start.Command != "maintain" || start.Maintain == nil {
		t.Errorf("the maintenance schedule's input %s (%s): %v, want command maintain and the settings", input, sub, err)
	}
	var settings map[string]any
	if err := json.Unmarshal([]byte(fmt.Sprint(dig(params, "MaintainSettings", "Default"))), &settings); err != nil {
		t.Errorf("MaintainSettings' default: %v", err)
	}
	for k := range settings {
		if !slices.Contains(eventFields["maintain"], k) || k == "table" {
			t.Errorf("MaintainSettings' default sets %q, which is no maintain setting an event gives", k)
		}
	}
}

// plainYAML turns a YAML node into maps, lists and strings, reading
// CloudFormation's short forms (!Ref, !Sub, !If) as their operands.
func plainYAML(n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return plainYAML(n.Content[0])
		}
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plainYAML(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		var l []any
		for _, c := range n.Content {
			l = append(l, plainYAML(c))
		}
		return l
	case yaml.ScalarNode:
		return n.Value
	case yaml.AliasNode:
		return plainYAML(n.Alias)
	}
	return nil
}

// On Lambda --memory defaults to three quarters of the function's memory;
// ICEMERGE_MEMORY set on the function wins, and nothing else changes.
func TestLambdaMemoryFromTheFunction(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
		set  bool
	}{
		{env: map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}, want: "1536MiB", set: true},
		{env: map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048", "ICEMERGE_MEMORY": "1GiB"}, want: "1GiB", set: true},
		{env: map[string]string{}},
		{env: map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"}},
	} {
		env := clikit.LambdaEnv(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		if v, ok := env("ICEMERGE_MEMORY"); v != c.want || ok != c.set {
			t.Errorf("%v: ICEMERGE_MEMORY = %q, %v; want %q, %v", c.env, v, ok, c.want, c.set)
		}
		if v, ok := env("ICEMERGE_SOURCE_CACHE"); ok {
			t.Errorf("%v: ICEMERGE_SOURCE_CACHE = %q, want unset", c.env, v)
		}
	}
	var g grammar
	var out bytes.Buffer
	env := clikit.LambdaEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}[k]
		return v, ok
	})
	parser, err := newParser(&g, env, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"run", "--table", "db.t", "--source", "/src"}); err != nil {
		t.Fatal(err)
	}
	if g.Run.Memory != 2256<<20 {
		t.Errorf("a 3008 MB function runs with --memory %s, want 2256MiB", g.Run.Memory)
	}
}
