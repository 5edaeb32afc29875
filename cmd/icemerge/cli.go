package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/clikit"
)

// Exit codes. Step Functions and cron wrappers tell outcomes apart by them.
const (
	exitOK        = 0   // done, also when there was nothing new
	exitFailed    = 1   // the run failed; nothing partial is visible
	exitUsage     = 2   // bad flags or settings
	exitLocked    = 3   // another run holds the table; nothing was done
	exitCancelled = 130 // interrupted (SIGINT/SIGTERM)
)

// exitCode maps an error's class to the process's exit code: the one place
// it is decided.
func exitCode(c icemerge.Class) int {
	switch c {
	case icemerge.OK:
		return exitOK
	case icemerge.Usage:
		return exitUsage
	case icemerge.Locked:
		return exitLocked
	case icemerge.Cancelled:
		return exitCancelled
	}
	return exitFailed
}

const description = `icemerge applies the change files AWS DMS writes (Parquet) to an Apache Iceberg table: one atomic commit per run, each change exactly once.

Every flag can also be set by the environment variable ICEMERGE_<FLAG> (upper case, dashes as underscores: ICEMERGE_SOURCE, ICEMERGE_ORDER_BY). A flag on the command line wins over the variable.

Exit codes: 0 done (also when nothing was new), 1 failed, 2 bad settings, 3 another run holds the table, 130 cancelled.

icemerge --version (or icemerge version) prints the version and the commit it was built from.`

// globals are the flags of every command.
type globals struct {
	LogLevel  string `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error" placeholder:"LEVEL"`
	LogFormat string `help:"Log format (logs go to stderr): auto (text on a terminal, else json), text or json." default:"auto" enum:"auto,text,json" placeholder:"FORMAT"`
}

// logger makes the command's logger, writing to w.
func (g globals) logger(w io.Writer) *slog.Logger { return g.loggerTo(w, g.json(w)) }

// loggerTo makes the command's logger, writing JSON lines or text to out.
func (g globals) loggerTo(out io.Writer, jsonLogs bool) *slog.Logger {
	return clikit.NewLogger(out, g.LogLevel, jsonLogs)
}

// json reports whether logs to w are JSON.
func (g globals) json(w io.Writer) bool {
	return g.LogFormat == "json" || (g.LogFormat == "auto" && !clikit.IsTerminal(w))
}

// grammar is the command line.
type grammar struct {
	globals

	Run      runCmd      `cmd:"" help:"Apply a table's new DMS files to its Iceberg table, or every table of a schema folder."`
	Check    checkCmd    `cmd:"" help:"Try, with a run's settings, each access a run needs (source, warehouse, bookmark, catalog) and name what is missing."`
	Show     showCmd     `cmd:"" help:"Print a table's rows by primary key: a key lookup (--where), as a table, JSON or CSV."`
	Maintain maintainCmd `cmd:"" help:"Compact a table, rewrite its manifests, expire old snapshots and remove orphan files."`
	Status   statusCmd   `cmd:"" help:"Show a table's last snapshot, its bookmark, the files not applied yet and its lag."`
	Verify   verifyCmd   `cmd:"" help:"Compare a table with its source database row by row (exit 1 when they differ); --repair mends it."`
	Bookmark struct {
		Show   bookmarkShowCmd   `cmd:"" help:"Show a table's bookmark: its token, applied files, settled key and quarantined files."`
		Reset  bookmarkResetCmd  `cmd:"" help:"Forget every applied file: the next run applies the whole folder again."`
		Rewind bookmarkRewindCmd `cmd:"" help:"Forget the CDC files named after a time: the next run applies them again."`
	} `cmd:"" help:"Show, reset or rewind a table's bookmark."`
	Version    versionCmd    `cmd:"" help:"Print icemerge's version and commit."`
	Completion completionCmd `cmd:"" help:"Print a shell completion script: bash, zsh or fish."`
}

// app is what a command runs with.
type app struct {
	ctx            context.Context
	env            func(string) (string, bool)
	stdout, stderr io.Writer
	globals        globals
	log            *slog.Logger
	// logs is the log's output, which progress bars take over while they
	// are drawn (nil: the log writes to stderr itself).
	logs *clikit.SwitchWriter
	// heap is the soft heap limit of a run's budget (nil: none).
	heap *clikit.SoftHeap
	// progress is the run's display, once a run opened it.
	progress clikit.Progress
	// missingCatalog is the SQLite catalog a command looked for and did
	// not find.
	missingCatalog string
	common         *icemerge.Common // the command's settings, once completed
	// metricsOut is where a run's metrics go as EMF lines when they are on
	// (nil: stderr); the Lambda handler points it at stdout.
	metricsOut io.Writer
}

// exited is kong asking to exit (after --help or --version).
type exited struct{ code int }

// newParser builds the command line's parser over g.
func newParser(g *grammar, env func(string) (string, bool), stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(g,
		kong.Name("icemerge"),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exited{code}) }),
		kong.ShortUsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true, WrapUpperBound: 100}),
		kong.ValueFormatter(clikit.HelpValue),
		kong.Help(clikit.HelpPrinter(examples)),
		kong.DefaultEnvars("ICEMERGE"),
		kong.Resolvers(clikit.EnvResolver(env)),
	)
}

// cli runs one command and maps its outcome to an exit code, in one place.
func cli(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) (code int) {
	var g grammar
	parser, err := newParser(&g, env, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "icemerge: %v (this is a bug)\n", err)
		return exitFailed
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exited)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()
	switch {
	case len(args) == 0:
		// The commands, on stderr: a bare icemerge is a mistake.
		parser.Stdout = stderr
		func() {
			defer func() { _ = recover() }()
			_, _ = parser.Parse([]string{"--help"})
		}()
		return exitUsage
	case args[0] == "help":
		args = append(args[1:], "--help")
	case slices.Contains(args, "--version") || slices.Contains(args, "-version"):
		// Not a flag of the grammar: the Lambda event takes the run's flags.
		fmt.Fprintf(stdout, "icemerge %s\n", version())
		return exitOK
	}
	kctx, err := parser.Parse(clikit.DoubleDash(parser, args))
	if err != nil {
		fmt.Fprintf(stderr, "icemerge: %v\n", err)
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
			fmt.Fprintf(stderr, "Run 'icemerge %s --help' for its flags and examples.\n", pe.Context.Selected().Path())
		} else {
			fmt.Fprintln(stderr, "Run 'icemerge --help' for the commands.")
		}
		return exitUsage
	}
	logs := clikit.NewSwitchWriter(stderr)
	a := &app{ctx: ctx, env: env, stdout: stdout, stderr: stderr, globals: g.globals, logs: logs,
		log: g.globals.loggerTo(logs, g.globals.json(stderr))}
	err = kctx.Run(a)
	a.endProgress()
	class := icemerge.Classify(ctx, err)
	switch class {
	case icemerge.OK:
	case icemerge.Cancelled:
		fmt.Fprintln(stderr, "icemerge: cancelled; nothing partial was committed")
	default:
		fmt.Fprintf(stderr, "icemerge: %v\n", err)
		switch {
		case class == icemerge.BadInput:
			fmt.Fprintf(stderr, "icemerge: to skip bad files and apply the rest, rerun with --on-bad-file quarantine (they are recorded in the bookmark)\n")
		case a.missingCatalog != "":
			fmt.Fprintf(stderr, "icemerge: there is no catalog at %s: the first run under the warehouse %s creates it; pass the --warehouse (or --catalog-uri) of the runs that created the table\n",
				a.missingCatalog, strings.TrimPrefix(a.warehouse(), "file://"))
		case errors.Is(err, bookmark.ErrMismatch):
			fmt.Fprintf(stderr, "icemerge: if the table lives in another catalog, pass that catalog (--catalog, --catalog-uri) instead of resetting; a run never creates a second table where one exists\n")
		}
	}
	return exitCode(class)
}

// complete fills the settings derived from others and the environment.
func (a *app) complete(c *icemerge.Common) error {
	err := c.Complete(a.env)
	a.common = c
	return err
}

// warehouse is the command's warehouse, for messages.
func (a *app) warehouse() string {
	if a.common == nil {
		return ""
	}
	return a.common.Warehouse
}

// open opens the environment of a command on c's tables; a command that
// only reads never creates the SQLite catalog (icemerge.OpenForReading).
func (a *app) open(c *icemerge.Common, src string, readOnly bool) (context.Context, *icemerge.Env, error) {
	if err := a.complete(c); err != nil {
		return a.ctx, nil, err
	}
	var awsCfg *aws.Config
	if c.NeedsAWS(src) {
		// The bytes of source files downloaded from S3 are counted as they
		// arrive, for the progress of the first large file.
		var err error
		awsCfg, err = icemerge.LoadAWS(a.ctx, icemerge.AWSOptions{Wrap: func(rt http.RoundTripper) http.RoundTripper { return clikit.CountingTransport{RoundTripper: rt} }})
		if err != nil {
			return a.ctx, nil, err
		}
	}
	if !readOnly {
		return icemerge.Open(a.ctx, *c, src, awsCfg, a.log)
	}
	ctx, env, err := icemerge.OpenForReading(a.ctx, *c, src, awsCfg, a.log)
	if err == nil {
		a.missingCatalog = env.MissingCatalog
	}
	return ctx, env, err
}

// startProgress gives the run's environment its display: bars on a
// terminal with text logs, else progress log lines.
func (a *app) startProgress(env *icemerge.Env) {
	a.progress = clikit.NewProgress(a.stderr, clikit.IsTerminal(a.stderr), a.globals.json(a.stderr), a.logs, a.log)
	env.Progress = a.progress
}

// endProgress ends the run's display, before its results are printed.
func (a *app) endProgress() {
	if a.progress != nil {
		a.progress.Close()
	}
}

// deps opens the environment of a command on one table, reading.
func (a *app) deps(c *icemerge.Common, src string) (context.Context, icemerge.Deps, func(), error) {
	ctx, env, err := a.open(c, src, true)
	if err != nil {
		return ctx, icemerge.Deps{}, nil, err
	}
	d, err := env.Deps(c.Table, src)
	if err != nil {
		env.Close()
		return ctx, d, nil, err
	}
	return ctx, d, func() { env.Close() }, nil
}

// runCmd is `icemerge run`.
type runCmd struct {
	icemerge.DatabaseOptions `embed:""`

	Report string `help:"Write a JSON report of the run to this file ('-': stdout)." placeholder:"FILE"`
	// Metrics: metrics.go.
	Metrics string `help:"CloudWatch metrics of each table's run, as one Embedded Metric Format line on stderr (on Lambda: stdout), which CloudWatch Logs turns into metrics: emf, off, or auto (emf on AWS Lambda and ECS, off elsewhere)." default:"auto" enum:"auto,emf,off" placeholder:"auto|emf|off"`
}

func (c *runCmd) Run(a *app) error {
	// The Go heap is held under the run's memory budget (GOMEMLIMIT wins).
	a.heap = clikit.TuneGC(a.env, gcPercent, c.HeapLimit())
	out := a.stdout
	if c.Report == "-" {
		out = a.stderr // stdout carries the report alone
	}
	rep, err := runReport(a, c.DatabaseOptions, out, a.metricsTo(c.Metrics))
	if c.Report != "" && rep != nil {
		if rerr := icemerge.WriteJSON(c.Report, a.stdout, "run report", rep); rerr != nil {
			if err != nil {
				return errors.Join(err, rerr)
			}
			// The run's outcome stands: its commit is made, and a failed
			// exit code would tell a scheduler it is not.
			a.log.Error("the run succeeded but its report could not be written", "report", c.Report, "error", rerr)
			fmt.Fprintf(a.stderr, "icemerge: the run succeeded, but writing its report failed: %v\n", rerr)
		}
	}
	return err
}

// runReport runs one table or a whole database, writes what each table
// did to out and its metrics to emf (nil: none), and returns the report
// (nil when no run started).
func runReport(a *app, o icemerge.DatabaseOptions, out, emf io.Writer) (*icemerge.Report, error) {
	started := time.Now().UTC()
	if o.Table != "" && o.Whole() {
		return nil, fmt.Errorf("%w: --config, --namespace, --table-prefix, --parallel, --include and --exclude are for a whole-database run: drop --table and point --source at the schema folder", icemerge.ErrUsage)
	}
	ctx, env, err := a.open(&o.Common, o.Source, false)
	if err != nil {
		if o.Table != "" {
			a.writeMetrics(emf, o.Table, nil, err)
		}
		return nil, err
	}
	defer env.Close()
	a.ctx = ctx
	if a.heap != nil {
		env.Heap = a.heap
	}
	a.startProgress(env)
	defer a.endProgress()
	if o.Table == "" {
		runs, err := icemerge.RunDatabase(ctx, o, env)
		a.endProgress()
		if runs == nil {
			return nil, err
		}
		icemerge.WriteDatabaseRun(out, o, runs)
		rep := &icemerge.Report{Started: started, OK: err == nil}
		for _, r := range runs {
			a.writeMetrics(emf, r.Table, r.Result, r.Err)
			rep.Tables = append(rep.Tables, icemerge.TableReportOf(r.Table, r.Result, r.Err))
		}
		return rep, err
	}
	d, err := env.Deps(o.Table, o.Source)
	if err != nil {
		a.writeMetrics(emf, o.Table, nil, err)
		return nil, err
	}
	if o.DryRun {
		// A new table's dry run without --key shows the files' columns to
		// choose the key from.
		if cols, err := icemerge.PreviewColumns(ctx, o.RunOptions, d); err != nil || cols != nil {
			a.endProgress()
			if err == nil {
				icemerge.WriteSourceColumns(out, cols)
			}
			return nil, err
		}
	}
	res, err := icemerge.Run(ctx, o.RunOptions, d)
	a.endProgress()
	a.writeMetrics(emf, o.Table, res, err)
	icemerge.WriteRun(out, o.RunOptions, res)
	return &icemerge.Report{Started: started, OK: err == nil, Tables: []icemerge.TableReport{icemerge.TableReportOf(o.Table, res, err)}}, err
}

// showCmd is `icemerge show`.
type showCmd struct {
	icemerge.ShowOptions `embed:""`
}

func (c *showCmd) Run(a *app) error {
	ctx, d, done, err := a.deps(&c.Common, "")
	if err != nil {
		return err
	}
	defer done()
	rows, err := icemerge.Show(ctx, c.ShowOptions, d)
	if err != nil {
		return err
	}
	defer rows.Release()
	return icemerge.WriteRows(a.stdout, rows, c.Format)
}

// maintainCmd is `icemerge maintain`.
type maintainCmd struct {
	icemerge.MaintainOptions `embed:""`

	Report string `help:"Write a JSON report of the maintenance to this file ('-': stdout)." placeholder:"FILE"`
}

func (c *maintainCmd) Run(a *app) error {
	ctx, d, done, err := a.deps(&c.Common, "")
	if err != nil {
		return err
	}
	defer done()
	out := a.stdout
	if c.Report == "-" {
		out = a.stderr // stdout carries the report alone
	}
	started := time.Now()
	res, err := icemerge.Maintain(ctx, c.MaintainOptions, d)
	icemerge.WriteMaintain(out, res)
	if c.Report != "" {
		if rerr := icemerge.WriteJSON(c.Report, a.stdout, "maintenance report", icemerge.MaintainReportOf(c.MaintainOptions, started, res, err)); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// statusCmd is `icemerge status`.
type statusCmd struct {
	icemerge.StatusOptions `embed:""`

	JSON bool `name:"json" help:"Print the status as JSON."`
}

func (c *statusCmd) Run(a *app) error {
	ctx, d, done, err := a.deps(&c.Common, c.Source)
	if err != nil {
		return err
	}
	defer done()
	st, err := icemerge.Status(ctx, c.StatusOptions, d)
	if err != nil {
		return err
	}
	if c.JSON {
		return icemerge.WriteJSON("-", a.stdout, "status", icemerge.StatusReport{At: st.At, Tables: []icemerge.TableStatus{st}})
	}
	icemerge.WriteStatus(a.stdout, st)
	return nil
}

// verifyCmd is `icemerge verify`.
type verifyCmd struct {
	icemerge.VerifyOptions `embed:""`

	Report string `help:"Write a JSON report of the verification to this file ('-': stdout)." placeholder:"FILE"`
}

func (c *verifyCmd) Run(a *app) error { return runVerify(a, c) }

// bookmarkShowCmd is `icemerge bookmark show`.
type bookmarkShowCmd struct {
	icemerge.TableOptions `embed:""`

	Files bool `help:"List every applied file."`
	JSON  bool `name:"json" help:"Print the bookmark as JSON."`
}

func (c *bookmarkShowCmd) Run(a *app) error {
	ctx, d, done, err := a.deps(&c.Common, "")
	if err != nil {
		return err
	}
	defer done()
	st, saved, err := icemerge.BookmarkOf(ctx, c.TableOptions, d)
	if err != nil {
		return err
	}
	if c.JSON {
		return icemerge.WriteJSON("-", a.stdout, "bookmark", icemerge.BookmarkReportOf(c.Table, d.Bookmark.Location(), st, saved, c.Files))
	}
	icemerge.WriteBookmark(a.stdout, c.Table, d.Bookmark.Location(), st, saved, c.Files)
	return nil
}

// bookmarkResetCmd is `icemerge bookmark reset`.
type bookmarkResetCmd struct {
	icemerge.TableOptions `embed:""`
}

func (c *bookmarkResetCmd) Run(a *app) error {
	ctx, d, done, err := a.deps(&c.Common, "")
	if err != nil {
		return err
	}
	defer done()
	res, err := icemerge.Reset(ctx, c.TableOptions, d)
	if err != nil {
		return err
	}
	icemerge.WriteReset(a.stdout, res)
	return nil
}

// bookmarkRewindCmd is `icemerge bookmark rewind`.
type bookmarkRewindCmd struct {
	icemerge.RewindOptions `embed:""`
}

func (c *bookmarkRewindCmd) Run(a *app) error {
	ctx, d, done, err := a.deps(&c.Common, c.Source)
	if err != nil {
		return err
	}
	defer done()
	res, err := icemerge.Rewind(ctx, c.RewindOptions, d)
	if err != nil {
		return err
	}
	icemerge.WriteRewind(a.stdout, res)
	return nil
}

// checkCmd is `icemerge check`.
type checkCmd struct {
	icemerge.RunOptions `embed:""`

	JSON bool `name:"json" help:"Print the checks as JSON."`
}

func (c *checkCmd) Run(a *app) error {
	ctx, env, err := a.open(&c.Common, c.Source, false)
	if err != nil {
		return err
	}
	defer env.Close()
	res, err := icemerge.Check(ctx, c.RunOptions, env)
	if res == nil {
		return err
	}
	if c.JSON {
		if jerr := icemerge.WriteJSON("-", a.stdout, "checks", res); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else {
		icemerge.WriteCheck(a.stdout, c.Table, res)
	}
	return err
}

// versionCmd is `icemerge version`.
type versionCmd struct{}

func (versionCmd) Run(a *app) error {
	fmt.Fprintf(a.stdout, "icemerge %s\n", version())
	return nil
}

// commit is the commit icemerge was built from, set by the Makefile
// (-ldflags -X main.commit=…) where the build has no VCS stamp.
var commit string

// version is the module's version and the commit it was built from.
func version() string { return clikit.Version(commit) }
