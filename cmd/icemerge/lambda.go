package main

// Lambda mode: the same binary, deployed as `bootstrap` on the
// provided.al2023 runtime (make lambda), serves one run per invocation. The
// event names the run's settings by their flag names; the function's
// environment (ICEMERGE_<FLAG>) supplies the rest, exactly as for the
// command line: the event is parsed by the same parser into the same
// options, and the run is the library's. The answer is the run's JSON
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
	"os"
	"slices"
	"strings"
	"time"

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

// lambdaHandler runs one table (or one database) per invocation.
type lambdaHandler struct {
	env    func(string) (string, bool) // the function's environment (ICEMERGE_*, AWS_*)
	stderr io.Writer                   // logs and summary lines: CloudWatch Logs
	margin time.Duration               // 0: deadlineMargin
}

// lambdaMain serves invocations until the runtime stops the process. main
// calls it when AWS_LAMBDA_RUNTIME_API is set.
func lambdaMain() {
	h := lambdaHandler{env: os.LookupEnv, stderr: os.Stderr}
	lambda.Start(func(ctx context.Context, event json.RawMessage) (*icemerge.Report, error) {
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

// invoke runs the event's table and returns the run's report.
func (h lambdaHandler) invoke(ctx context.Context, event []byte) (*icemerge.Report, error) {
	started := time.Now()
	fields, err := runFlags()
	if err != nil {
		return nil, &lambdaError{Type: errTypeFailed, Err: err}
	}
	args, err := eventArgs(event, fields)
	if err != nil {
		return nil, &lambdaError{Type: errTypeUsage, Err: err}
	}
	runCtx, margin := ctx, cmp.Or(h.margin, deadlineMargin)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) > 2*margin {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, deadline.Add(-margin))
		defer cancel()
	}
	var g grammar
	var help bytes.Buffer
	parser, err := newParser(&g, h.env, &help, &help)
	if err != nil {
		return nil, &lambdaError{Type: errTypeFailed, Err: err}
	}
	if _, err := parser.Parse(append([]string{"run"}, args...)); err != nil {
		return nil, classify(runCtx, fmt.Errorf("%w: %w", icemerge.ErrUsage, err))
	}
	a := &app{ctx: runCtx, env: h.env, stdout: h.stderr, stderr: h.stderr, globals: g.globals, log: g.globals.logger(h.stderr)}
	rep, runErr := runReport(a, g.Run.DatabaseOptions, h.stderr)
	var out *icemerge.Report
	if rep != nil {
		r := rep.at(started)
		out = &r
	}
	if runErr == nil {
		return out, nil
	}
	if out != nil {
		// The answer of a failed invocation is the error alone: keep the
		// report in the log, on one line (one log event).
		if line, err := json.Marshal(out); err == nil {
			fmt.Fprintf(h.stderr, "icemerge: run report: %s\n", line)
		}
	}
	return nil, classify(runCtx, runErr)
}

// classify maps a run's error to its errorType, as cli maps it to an exit
// code, by icemerge.Classify.
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

// runFlags are the flags of `icemerge run` an event may set: every one but
// --report (the report is the invocation's answer) and --help.
func runFlags() ([]string, error) {
	var g grammar
	parser, err := newParser(&g, func(string) (string, bool) { return "", false }, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range parser.Model.Children {
		if n.Name != "run" {
			continue
		}
		for _, f := range n.AllFlags(false) {
			for _, fl := range f {
				if fl.Name != "report" && fl.Name != "help" {
					names = append(names, fl.Name)
				}
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// eventArgs turns the event, a JSON object of run flags, into command-line
// flags: {"table": "test_db.users", "max-files": "10"} is
// --table=test_db.users --max-files=10. Names are the flags' names (fields);
// an underscore may stand for a dash (max_files). Values are strings;
// numbers and booleans are taken as written. An unknown or repeated field,
// or a value of another kind, is an error. An empty event or null sets no
// flag.
func eventArgs(event []byte, fields []string) ([]string, error) {
	event = bytes.TrimSpace(event)
	if len(event) == 0 || string(event) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("the event is not a JSON object: want {\"table\": \"NS.NAME\", \"source\": \"s3://…\", \"key\": \"COL\", …}")
	}
	var args []string
	seen := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("the event is not valid JSON: %w", err)
		}
		field, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("the event is not valid JSON: %v where a field name belongs", tok)
		}
		name := strings.ReplaceAll(field, "_", "-")
		if !slices.Contains(fields, name) {
			if name == "report" {
				return nil, fmt.Errorf("event field %q: the report is the invocation's answer; remove the field", field)
			}
			return nil, fmt.Errorf("event field %q is not a flag of icemerge run: use %s", field, strings.Join(fields, ", "))
		}
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("event field %q repeats %q: give each flag once", field, prev)
		}
		seen[name] = field
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("event field %q: %w", field, err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("event field %q: %w", field, err)
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
			return nil, fmt.Errorf("event field %q: %s is not a string: give the flag's value as a string, e.g. \"%s\": \"...\"", field, bytes.TrimSpace(raw), field)
		}
		args = append(args, "--"+name+"="+s)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("the event is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("the event has data after its JSON object: send one object")
	}
	return args, nil
}
