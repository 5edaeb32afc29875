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
	"os"
	"slices"
	"time"

	"github.com/alecthomas/kong"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/clikit"
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
	h := lambdaHandler{env: clikit.LambdaEnv(os.LookupEnv), stdout: os.Stdout, stderr: os.Stderr}
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

// eventForm is the event's form: its default command, the fields each
// command takes from an event, the locations only the function's
// environment sets, and this build's commands.
func eventForm(flagsOf func(command string) ([]string, bool)) clikit.EventForm {
	return clikit.EventForm{Default: defaultCommand, Fields: eventFields, Locations: eventLocations, FlagsOf: flagsOf, Build: version()}
}

// eventArgs turns the event into the command and its command-line flags
// (clikit.EventForm.Args).
func eventArgs(event []byte, flagsOf func(command string) ([]string, bool)) (string, []string, error) {
	return eventForm(flagsOf).Args(event)
}
