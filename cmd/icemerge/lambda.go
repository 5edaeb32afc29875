package main

// Lambda mode: the same binary, deployed as `bootstrap` on the
// provided.al2023 runtime (make lambda), serves one command per invocation:
// `icemerge run` (the default), `maintain` or `verify`. The event names the
// command and its settings by their flag names, from an allow-list per
// command (eventFields): the table, its source, bounds, dry run, steps.
// Locations (catalog, catalog URI, warehouse, bookmark folder, config file)
// and the function's tuning come only from its environment
// (ICEMERGE_<FLAG>): an event that names one is refused by name, so whoever
// may invoke the function cannot point it at another store or file. The
// event is then parsed by the command line's parser into the same options,
// and the command is the command line's. The answer is the command's JSON
// report. A failure is an error whose Lambda errorType is one of the stable
// names below, which the Step Functions state machine in
// deploy/template.yaml retries or catches.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/icemerge/icemerge"
)

// The errorType of a failed invocation, as Step Functions sees it in
// Retry/Catch ErrorEquals. They are part of the deployment's interface:
// do not rename them.
const (
	// errTypeLocked: another run holds the table (exit code 3); nothing was
	// done. Retry later.
	errTypeLocked = "TableLocked"
	// errTypeUsage: the event or the function's ICEMERGE_* settings are
	// wrong (exit code 2). Retrying does not help.
	errTypeUsage = "UsageError"
	// errTypeBadInput: a DMS file is not readable or not valid (exit code 1,
	// merge.InputError); nothing was written. Fix the object or rerun with
	// on-bad-file=quarantine.
	errTypeBadInput = "BadInput"
	// errTypeCancelled: the invocation's time ran out before the run ended
	// (exit code 130); nothing partial was committed.
	errTypeCancelled = "Cancelled"
	// errTypeFailed: any other failure (exit code 1); nothing partial is
	// visible in the table and the bookmark is never ahead of it.
	errTypeFailed = "RunFailed"
)

// lambdaError is a failed invocation: the stable errorType and the error.
type lambdaError struct {
	Type string
	Err  error
}

func (e *lambdaError) Error() string { return e.Err.Error() }
func (e *lambdaError) Unwrap() error { return e.Err }

// deadlineMargin is the time kept back from the invocation's deadline, so a
// run that cannot finish is cancelled cleanly (its lock released, its answer
// sent) before Lambda kills the process.
const deadlineMargin = 10 * time.Second

// lambdaHandler runs one command per invocation.
type lambdaHandler struct {
	env    func(string) (string, bool) // the function's environment (ICEMERGE_*, AWS_*)
	stdout io.Writer                   // the metrics' EMF lines (CloudWatch Logs extracts them)
	stderr io.Writer                   // logs and summary lines: CloudWatch Logs
	margin time.Duration               // 0: deadlineMargin
}

// lambdaMain serves invocations until the runtime stops the process. main
// calls it when AWS_LAMBDA_RUNTIME_API is set.
func lambdaMain() {
	h := lambdaHandler{env: os.LookupEnv, stdout: os.Stdout, stderr: os.Stderr}
	lambda.Start(func(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
		rep, err := h.invoke(ctx, event)
		return rep, toInvokeError(err)
	})
}

// toInvokeError gives err the errorType Lambda reports: the runtime library
// takes it from a messages.InvokeResponse_Error, and otherwise from the Go
// type's name, which would not be stable.
func toInvokeError(err error) error {
	if err == nil {
		return nil
	}
	var le *lambdaError
	if !errors.As(err, &le) {
		le = &lambdaError{Type: errTypeFailed, Err: err}
	}
	return messages.InvokeResponse_Error{Type: le.Type, Message: le.Error()}
}

// invoke runs the event's command and returns its JSON report.
func (h lambdaHandler) invoke(ctx context.Context, event []byte) (json.RawMessage, error) {
	var g grammar
	var help bytes.Buffer
	parser, err := newParser(&g, h.env, &help, &help)
	if err != nil {
		return nil, &lambdaError{Type: errTypeFailed, Err: err}
	}
	command, args, err := eventArgs(event, func(command string) ([]string, bool) { return commandFlags(parser, command) })
	if err != nil {
		return nil, &lambdaError{Type: errTypeUsage, Err: err}
	}
	runCtx, margin := ctx, cmp.Or(h.margin, deadlineMargin)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) > 2*margin {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, deadline.Add(-margin))
		defer cancel()
	}
	// A command with --report writes its JSON report to stdout (--report
	// -), which is the answer, and its summary lines to the log; the answer
	// of one without is its output, as {"output": "..."}.
	flags, _ := commandFlags(parser, command)
	withReport := slices.Contains(flags, "report")
	cmdline := []string{command}
	if withReport {
		cmdline = append(cmdline, "--report=-")
	}
	kctx, err := parser.Parse(append(cmdline, args...))
	if err != nil {
		return nil, classify(runCtx, fmt.Errorf("%w: %w", icemerge.ErrUsage, err))
	}
	var report bytes.Buffer
	a := &app{ctx: runCtx, env: h.env, stdout: &report, stderr: h.stderr, globals: g.globals, log: g.globals.logger(h.stderr), metricsOut: h.stdout}
	runErr := kctx.Run(a)
	var answer json.RawMessage
	switch {
	case report.Len() > 0 && withReport:
		var compact bytes.Buffer
		if err := json.Compact(&compact, report.Bytes()); err != nil {
			return nil, &lambdaError{Type: errTypeFailed, Err: fmt.Errorf("the %s report is not JSON (this is a bug): %w", command, err)}
		}
		answer = compact.Bytes()
	case report.Len() > 0:
		if answer, err = json.Marshal(map[string]string{"output": report.String()}); err != nil {
			return nil, &lambdaError{Type: errTypeFailed, Err: err}
		}
	}
	if runErr == nil {
		return answer, nil
	}
	if answer != nil {
		// The answer of a failed invocation is the error alone: keep the
		// report in the log, on one line (one log event).
		fmt.Fprintf(h.stderr, "icemerge: %s report: %s\n", command, answer)
	}
	return nil, classify(runCtx, runErr)
}

// classify maps a command's error to its errorType, as cli maps it to an
// exit code, by icemerge.Classify.
func classify(ctx context.Context, err error) *lambdaError {
	switch icemerge.Classify(ctx, err) {
	case icemerge.Usage:
		return &lambdaError{Type: errTypeUsage, Err: fmt.Errorf("%w (a flag --name is the event field \"name\": fix the event or the function's ICEMERGE_* environment)", err)}
	case icemerge.Locked:
		return &lambdaError{Type: errTypeLocked, Err: fmt.Errorf("%w (nothing was done; retry later)", err)}
	case icemerge.Cancelled:
		return &lambdaError{Type: errTypeCancelled, Err: fmt.Errorf("the run did not finish before the function's timeout: %w "+
			"(nothing partial was committed; raise the timeout, set max-files, or run the table as a container task)", err)}
	case icemerge.BadInput:
		return &lambdaError{Type: errTypeBadInput, Err: fmt.Errorf("%w (fix or remove the object, or rerun with \"on-bad-file\": \"quarantine\")", err)}
	}
	return &lambdaError{Type: errTypeFailed, Err: err}
}

// defaultCommand is the command of an event without "command".
const defaultCommand = "run"

// eventFields are the settings an event may give, per command: what
// differs from table to table and from invocation to invocation. Every
// other flag comes from the function's environment: the locations
// (eventLocations), which must not be chosen by whoever may invoke the
// function, and its tuning (lock lease, settle window, memory bounds, log
// and metrics settings), which is sized with the function.
var eventFields = map[string][]string{
	"run": {"table", "source", "key", "order-by", "dry-run", "max-files", "max-bytes", "on-bad-file", "wait",
		"compact-when-deletes", "compact-when-files",
		// A whole-database run (no table): which table folders, and the
		// tables' names (in the database the function's role may write).
		"namespace", "table-prefix", "include", "exclude", "parallel"},
	"maintain": {"table", "dry-run", "only", "force-managed", "wait", "target-file-size", "small-file-size", "min-input-files",
		"max-compact-bytes", "expire-older-than", "retain-last", "orphan-older-than"},
	// icemerge verify compares a table with its source database, whose URL
	// (source-db, with its credentials) is the function's setting.
	"verify": {"table", "source-table", "order-by", "skip-columns", "max-keys", "repair", "max-repair", "wait"},
}

// eventLocations are the flags that name where data, state or
// configuration is read or written: only the function's environment sets
// them.
var eventLocations = []string{"catalog", "catalog-uri", "warehouse", "bookmark", "table-bucket-arn", "config", "source-db", "temp-dir"}

// commandFlags lists the flags of a top-level command of the grammar; ok
// is false when the grammar has no such command.
func commandFlags(parser *kong.Kong, command string) (names []string, ok bool) {
	for _, n := range parser.Model.Children {
		if n.Name != command {
			continue
		}
		for _, group := range n.AllFlags(false) {
			for _, fl := range group {
				names = append(names, fl.Name)
			}
		}
		slices.Sort(names)
		return names, true
	}
	return nil, false
}

// eventArgs turns the event, a JSON object of a command and its settings,
// into the command and its command-line flags: {"table": "test_db.users",
// "max-files": "10"} is run --table=test_db.users --max-files=10, and
// {"command": "maintain", "table": "test_db.users", "only": "manifests"}
// is maintain --table=test_db.users --only=manifests. Names are the flags'
// names; an underscore may stand for a dash (max_files). Values are
// strings; numbers and booleans are taken as written. A field the command
// does not take from an event (eventFields), a repeated field, or a value
// of another kind is an error naming the field; an event's source must be
// s3:// (the function has no local folders to read). An empty event or
// null is a run with no flag. flagsOf lists a command's flags (false: the
// build has no such command).
func eventArgs(event []byte, flagsOf func(command string) ([]string, bool)) (command string, args []string, err error) {
	command = defaultCommand
	event = bytes.TrimSpace(event)
	if len(event) == 0 || string(event) == "null" {
		return command, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil, fmt.Errorf("the event is not a JSON object: want {\"table\": \"NS.NAME\", \"source\": \"s3://…\", \"key\": \"COL\", …}")
	}
	type field struct{ name, given, value string }
	var fields []field
	seen := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil, fmt.Errorf("the event is not valid JSON: %w", err)
		}
		given, ok := tok.(string)
		if !ok {
			return "", nil, fmt.Errorf("the event is not valid JSON: %v where a field name belongs", tok)
		}
		name := strings.ReplaceAll(given, "_", "-")
		if prev, ok := seen[name]; ok {
			return "", nil, fmt.Errorf("event field %q repeats %q: give each setting once", given, prev)
		}
		seen[name] = given
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", nil, fmt.Errorf("event field %q: %w", given, err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", nil, fmt.Errorf("event field %q: %w", given, err)
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case bool:
			s = fmt.Sprint(v)
		case float64:
			s = string(bytes.TrimSpace(raw)) // as written: 10, not 1e+01
		default:
			return "", nil, fmt.Errorf("event field %q: %s is not a string: give the setting's value as a string, e.g. \"%s\": \"...\"", given, bytes.TrimSpace(raw), given)
		}
		if name == "command" {
			command = s
			continue
		}
		fields = append(fields, field{name, given, s})
	}
	if _, err := dec.Token(); err != nil {
		return "", nil, fmt.Errorf("the event is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("the event has data after its JSON object: send one object")
	}
	allowed, ok := eventFields[command]
	if !ok {
		return "", nil, fmt.Errorf("event field \"command\": %q is not a command the function runs: use %s", command, strings.Join(slices.Sorted(maps.Keys(eventFields)), ", "))
	}
	flags, ok := flagsOf(command)
	if !ok {
		return "", nil, fmt.Errorf("event field \"command\": %q is not a command of this icemerge build (%s): deploy a build that has it", command, version())
	}
	usable := []string{"command"}
	for _, name := range allowed {
		if slices.Contains(flags, name) {
			usable = append(usable, name)
		}
	}
	for _, f := range fields {
		switch {
		case slices.Contains(allowed, f.name) && slices.Contains(flags, f.name):
		case slices.Contains(eventLocations, f.name):
			return "", nil, fmt.Errorf("event field %q is refused: locations are fixed by the function's configuration (its %s variable), never by the event", f.given, envName(f.name))
		case f.name == "report":
			return "", nil, fmt.Errorf("event field %q is refused: the report is the invocation's answer", f.given)
		case slices.Contains(flags, f.name):
			return "", nil, fmt.Errorf("event field %q is refused: it is a setting of the function, in its environment (%s); an event gives %s",
				f.given, envName(f.name), strings.Join(usable, ", "))
		default:
			return "", nil, fmt.Errorf("event field %q is not a setting of icemerge %s: an event gives %s", f.given, command, strings.Join(usable, ", "))
		}
		if f.name == "source" && !strings.HasPrefix(f.value, "s3://") {
			return "", nil, fmt.Errorf("event field %q: the function reads DMS folders on S3 only: give s3://BUCKET/PREFIX/", f.given)
		}
		args = append(args, "--"+f.name+"="+f.value)
	}
	return command, args, nil
}

// envName is the environment variable of a flag: ICEMERGE_CATALOG_URI.
func envName(flag string) string {
	return "ICEMERGE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}
