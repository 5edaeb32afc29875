package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"gopkg.in/yaml.v3"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/merge"
)

func TestLambdaEventArgs(t *testing.T) {
	fields, err := runFlags()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		event string
		want  []string
		err   string // part of the error; "" for none
	}{
		{``, nil, ""},
		{`null`, nil, ""},
		{` {} `, nil, ""},
		{`{"table":"test_db.users","source":"s3://raw/raw_input/test_db/users/","key":"user_id"}`,
			[]string{"--table=test_db.users", "--source=s3://raw/raw_input/test_db/users/", "--key=user_id"}, ""},
		// Every value as given, in event order; underscores stand for dashes.
		{`{"order_by":"ar_h_change_seq","max-files":"10","dry-run":"true","wait":"30s","on_bad_file":"quarantine"}`,
			[]string{"--order-by=ar_h_change_seq", "--max-files=10", "--dry-run=true", "--wait=30s", "--on-bad-file=quarantine"}, ""},
		// Numbers and booleans as written.
		{`{"max_files": 10, "dry_run": false, "wait": "-1s"}`, []string{"--max-files=10", "--dry-run=false", "--wait=-1s"}, ""},
		{`{"key":"tenant,id","source":""}`, []string{"--key=tenant,id", "--source="}, ""},
		{`{"tabel":"a.b"}`, nil, `event field "tabel" is not a flag of icemerge run`},
		{`{"report":"-"}`, nil, `the report is the invocation's answer`},
		{`{"max-files":"1","max_files":"2"}`, nil, `repeats "max-files"`},
		{`{"table":"a.b","table":"a.c"}`, nil, `repeats "table"`},
		{`{"key":["a","b"]}`, nil, `event field "key": ["a","b"] is not a string`},
		{`{"key":null}`, nil, `event field "key": null is not a string`},
		{`{"wait":{"s":1}}`, nil, `is not a string`},
		{`["table","a.b"]`, nil, `not a JSON object`},
		{`"table=a.b"`, nil, `not a JSON object`},
		{`{"table":"a.b"`, nil, `not valid JSON`},
		{`{"table":}`, nil, `event field "table"`},
		{`{"table":"a.b"} {}`, nil, `data after its JSON object`},
		{`{"table":"a.b"}]`, nil, `data after its JSON object`},
		{`{`, nil, `not valid JSON`},
	}
	for _, tc := range tests {
		got, err := eventArgs([]byte(tc.event), fields)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("eventArgs(%s): %v", tc.event, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("eventArgs(%s): error %v, want one containing %q", tc.event, err, tc.err)
		case !slices.Equal(got, tc.want):
			t.Errorf("eventArgs(%s) = %q, want %q", tc.event, got, tc.want)
		}
	}
}

// The event takes exactly the flags of icemerge run, less --report.
func TestLambdaEventFieldsAreTheRunFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := cli(context.Background(), []string{"run", "--help"}, func(string) (string, bool) { return "", false }, &out, &errOut); code != exitOK {
		t.Fatalf("icemerge run --help: exit %d: %s", code, errOut.String())
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z-]+)`).FindAllStringSubmatch(out.String(), -1) {
		if m[1] != "report" && m[1] != "help" {
			flags = append(flags, m[1])
		}
	}
	slices.Sort(flags)
	want, err := runFlags()
	if err != nil {
		t.Fatal(err)
	}
	if len(flags) < 20 || !slices.Equal(flags, want) {
		t.Errorf("icemerge run has flags %q, the Lambda event takes %q", flags, want)
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

// The handler end to end on local files: the event names the table, the
// function's environment the catalog and warehouse.
func TestLambdaHandler(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "raw_input", "test_db", "users")
	put := func(name string, b []byte) {
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fixture := func(name string) {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		put(name, b)
	}
	wh := filepath.Join(dir, "wh")
	vars := map[string]string{
		"ICEMERGE_WAREHOUSE":   "file://" + wh,
		"ICEMERGE_CATALOG_URI": filepath.Join(dir, "c.db"),
		"ICEMERGE_LOG_LEVEL":   "error",
		"ICEMERGE_REPORT":      filepath.Join(dir, "missing-folder", "r.json"), // the handler's --report=- wins
	}
	var logs bytes.Buffer
	h := lambdaHandler{env: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, stderr: &logs}
	invoke := func(event string) (*icemerge.Report, error) {
		t.Helper()
		logs.Reset()
		// A deadline, as Lambda gives: the run gets it less the margin.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return h.invoke(ctx, []byte(event))
	}
	errType := func(err error) string {
		var le *lambdaError
		if !errors.As(err, &le) {
			return fmt.Sprintf("not a lambdaError: %v", err)
		}
		return le.Type
	}
	event := fmt.Sprintf(`{"table":"test_db.users","source":%q,"key":"user_id"}`, src)

	fixture("LOAD00000001.parquet")
	fixture("20240814-002642123.parquet")
	rep, err := invoke(event)
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, logs.String())
	}
	if !rep.OK || len(rep.Tables) != 1 {
		t.Fatalf("report %+v", rep)
	}
	if r := rep.Tables[0]; r.Table != "test_db.users" || r.Outcome != "committed" || r.Files != 2 || r.RowsInserted != 5 || r.SnapshotID == 0 {
		t.Errorf("first run: report %+v, want 2 files committed, 5 rows", r)
	}
	// The answer is what --report writes: it survives a round trip through
	// JSON, as Lambda sends it.
	b, err := json.Marshal(rep)
	if err != nil || !bytes.Contains(b, []byte(`"outcome":"committed"`)) {
		t.Errorf("the answer as JSON: %s, %v", b, err)
	}

	rep, err = invoke(event)
	if err != nil || rep.Tables[0].Outcome != "nothing new" {
		t.Errorf("second run: %+v, %v", rep, err)
	}
	// Flags of the event as strings and numbers.
	rep, err = invoke(fmt.Sprintf(`{"table":"test_db.users","source":%q,"dry_run":"true","max_files":5}`, src))
	if err != nil || rep.Tables[0].Outcome != "dry run" || rep.Tables[0].Files != 0 {
		t.Errorf("dry run: %+v, %v", rep, err)
	}

	// Another run holds the table: TableLocked, for Step Functions to retry.
	store := bookmark.NewFileStore(filepath.Join(wh, "_icemerge"), "test_db.users")
	lease, err := store.Lock(context.Background(), "another-run", time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(event); errType(err) != errTypeLocked || !strings.Contains(err.Error(), "another-run") {
		t.Errorf("locked table: %s: %v, want %s naming the holder", errType(err), err, errTypeLocked)
	}
	if err := lease.Release(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A bad file: BadInput, and the failed run's report is in the log.
	put("20240814-002700000.parquet", []byte("junk"))
	if _, err := invoke(event); errType(err) != errTypeBadInput || !strings.Contains(err.Error(), "20240814-002700000.parquet") {
		t.Errorf("bad file: %s: %v, want %s naming the object", errType(err), err, errTypeBadInput)
	}
	if !strings.Contains(logs.String(), `icemerge: run report: {"started":`) || !strings.Contains(logs.String(), `"outcome":"failed"`) {
		t.Errorf("the failed run's report is not in the log:\n%s", logs.String())
	}
	rep, err = invoke(fmt.Sprintf(`{"table":"test_db.users","source":%q,"on_bad_file":"quarantine"}`, src))
	if err != nil || len(rep.Tables[0].Quarantined) != 1 {
		t.Errorf("quarantine: %+v, %v", rep, err)
	}

	// Usage errors: a bad event, a bad value, a new table without a key.
	for _, ev := range []string{
		`{"table":"test_db.users","sauce":"x"}`,
		`[1]`,
		fmt.Sprintf(`{"table":"test_db.users","source":%q,"max-files":"many"}`, src),
		fmt.Sprintf(`{"table":"test_db.other","source":%q}`, src),
		`{"table":"test_db.users"}`, // no source
	} {
		if _, err := invoke(ev); errType(err) != errTypeUsage {
			t.Errorf("event %s: %s: %v, want %s", ev, errType(err), err, errTypeUsage)
		}
	}
	// A failure: the source folder does not exist.
	if _, err := invoke(fmt.Sprintf(`{"table":"test_db.users","source":%q}`, filepath.Join(dir, "nowhere"))); errType(err) != errTypeFailed {
		t.Errorf("missing source: %s: %v, want %s", errType(err), err, errTypeFailed)
	}
}

// A run that cannot finish before the invocation's deadline is cancelled
// (Cancelled), leaving the margin to answer.
func TestLambdaDeadline(t *testing.T) {
	dir := t.TempDir()
	h := lambdaHandler{env: func(string) (string, bool) { return "", false }, stderr: &bytes.Buffer{}, margin: 500 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// The table is locked and the run waits for it longer than the
	// invocation lasts.
	store := bookmark.NewFileStore(filepath.Join(dir, "wh", "_icemerge"), "a.b")
	if _, err := store.Lock(context.Background(), "another-run", time.Hour, time.Now); err != nil {
		t.Fatal(err)
	}
	event := fmt.Sprintf(`{"table":"a.b","source":%q,"key":"id","wait":"1h","catalog-uri":%q,"warehouse":%q,"log-level":"error"}`,
		dir, filepath.Join(dir, "c.db"), "file://"+filepath.Join(dir, "wh"))
	start := time.Now()
	_, err := h.invoke(ctx, []byte(event))
	var le *lambdaError
	if !errors.As(err, &le) || le.Type != errTypeCancelled {
		t.Errorf("run past the deadline: %v, want %s", err, errTypeCancelled)
	}
	if deadline, _ := ctx.Deadline(); time.Now().After(deadline) {
		t.Errorf("the handler answered after the invocation's deadline (%s)", time.Since(start))
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("the handler answered after %s: the run did not wait for the lock until its deadline", took)
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
	flags, err := runFlags()
	if err != nil {
		t.Fatal(err)
	}
	for k := range vars {
		if name, ok := strings.CutPrefix(k, "ICEMERGE_"); ok && !slices.Contains(flags, strings.ReplaceAll(strings.ToLower(name), "_", "-")) {
			t.Errorf("the function sets %s, which is no flag of icemerge run", k)
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
