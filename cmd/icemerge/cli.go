package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// Exit codes. Step Functions and cron wrappers tell outcomes apart by them.
const (
	exitOK        = 0   // done, also when there was nothing new
	exitFailed    = 1   // the run failed; nothing partial is visible
	exitUsage     = 2   // bad flags or settings
	exitLocked    = 3   // another run holds the table; nothing was done
	exitCancelled = 130 // interrupted (SIGINT/SIGTERM)
)

// errUsage marks errors the user fixes on the command line.
var errUsage = errors.New("usage")

const usageText = `icemerge applies AWS DMS change files (Parquet) to an Apache Iceberg table.

Usage:
  icemerge run --source URI --table NS.NAME --key COL[,COL...] [flags]
  icemerge run --source SCHEMA_URI [--config FILE] [flags]   (every table folder)
  icemerge show --table NS.NAME [flags]
  icemerge maintain --table NS.NAME [--only compact,manifests,expire,orphans] [--dry-run] [flags]
  icemerge status --table NS.NAME --source URI [--json] [flags]
  icemerge bookmark show --table NS.NAME [flags]
  icemerge bookmark reset --table NS.NAME [flags]
  icemerge bookmark rewind --table NS.NAME --to TIME [--source URI] [flags]

Every flag can also be set by the environment variable ICEMERGE_<FLAG>
(upper case, dashes as underscores: ICEMERGE_SOURCE, ICEMERGE_ORDER_BY).
A flag on the command line wins over the variable.

Exit codes: 0 done (also when nothing was new), 1 failed, 2 usage,
3 another run holds the table, 130 cancelled.
Run 'icemerge COMMAND -h' for the flags of a command.
`

// Common are the settings every command shares.
type Common struct {
	Table      string
	Catalog    string
	CatalogURI string
	Warehouse  string
	Bookmark   string
	LogLevel   string
	LogFormat  string
	// S3Endpoint is AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), read once:
	// a custom endpoint also switches S3 to path-style addressing.
	S3Endpoint string
}

// Validate reports every problem at once.
func (c Common) Validate() error { return c.validate(true) }

// validate is Validate, with --table optional unless needTable (a
// whole-database run names its tables itself).
func (c Common) validate(needTable bool) error {
	var errs []error
	if c.Table == "" && !needTable {
		// every table of the database
	} else if c.Table == "" {
		errs = append(errs, errors.New("--table is required: NAMESPACE.NAME, e.g. test_db.users"))
	} else if _, err := catalog.Ident(c.Table); err != nil {
		errs = append(errs, fmt.Errorf("--table: %w", err))
	}
	if c.Table != strings.ToLower(c.Table) {
		errs = append(errs, fmt.Errorf("--table %q: use lower case, as Glue and Athena store names", c.Table))
	}
	switch c.Catalog {
	case catalog.KindSQL, catalog.KindGlue:
	default:
		errs = append(errs, fmt.Errorf("--catalog %q: use sql or glue", c.Catalog))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: use auto, text or json", c.LogFormat))
	}
	if _, err := source.ParseLocation(c.Warehouse); err != nil {
		errs = append(errs, fmt.Errorf("--warehouse: %w", err))
	}
	if _, err := source.ParseLocation(c.Bookmark); err != nil {
		errs = append(errs, fmt.Errorf("--bookmark: %w", err))
	}
	if c.Catalog == catalog.KindSQL {
		if catalog.IsPostgresURI(c.CatalogURI) {
			if err := catalog.CheckPostgresURI(c.CatalogURI); err != nil {
				errs = append(errs, fmt.Errorf("--catalog-uri: %w", err))
			}
		} else if l, err := source.ParseLocation(c.CatalogURI); err != nil || l.S3 {
			// Redacted: a URI of another database may hold a password.
			errs = append(errs, fmt.Errorf("--catalog-uri %q: the sql catalog is a local SQLite file (a path or file://) or a PostgreSQL database (postgres://USER@HOST:5432/DATABASE)",
				catalog.RedactURI(c.CatalogURI)))
		}
	}
	return errors.Join(errs...)
}

func (c *Common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Table, "table", "", "the Iceberg table, NAMESPACE.NAME")
	fs.StringVar(&c.Catalog, "catalog", catalog.KindSQL, "catalog: sql (a SQLite file or PostgreSQL, see --catalog-uri) or glue (AWS Glue Data Catalog)")
	fs.StringVar(&c.CatalogURI, "catalog-uri", "icemerge.db", "the sql catalog's database: a SQLite file, or postgres://USER@HOST:5432/DATABASE")
	fs.StringVar(&c.Warehouse, "warehouse", "", "where new tables are created: path, file:// or s3:// (default file://<cwd>/warehouse)")
	fs.StringVar(&c.Bookmark, "bookmark", "", "folder of the bookmarks: path, file:// or s3:// (default <warehouse>/_icemerge)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "auto", "auto (text on a terminal, else json), text or json (logs go to stderr)")
}

// defaults fills settings that depend on others and reads the environment
// the settings need.
func (c *Common) defaults(env func(string) (string, bool)) error {
	if v, ok := env("AWS_ENDPOINT_URL_S3"); ok && v != "" {
		c.S3Endpoint = v
	} else if v, ok := env("AWS_ENDPOINT_URL"); ok {
		c.S3Endpoint = v
	}
	if c.Warehouse == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		c.Warehouse = "file://" + filepath.Join(wd, "warehouse")
	}
	if c.Bookmark == "" {
		c.Bookmark = strings.TrimSuffix(c.Warehouse, "/") + "/_icemerge"
	}
	return nil
}

func (c Common) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" || (c.LogFormat == "auto" && !isTerminal(w)) {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parse parses args into fs, then fills every flag not on the command line
// from ICEMERGE_<FLAG>.
func parse(fs *flag.FlagSet, args []string, env func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := "ICEMERGE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := env(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		out = append(out, strings.ToLower(strings.TrimSpace(p)))
	}
	return out
}

// cli runs one command and maps its outcome to an exit code, in one place.
func cli(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, env, stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "icemerge: %v\n", err)
		return exitUsage
	case errors.Is(err, bookmark.ErrLocked):
		fmt.Fprintf(stderr, "icemerge: %v\n", err)
		return exitLocked
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "icemerge: cancelled; nothing partial was committed")
		return exitCancelled
	}
	fmt.Fprintf(stderr, "icemerge: %v\n", err)
	var bad *merge.InputError
	if errors.As(err, &bad) {
		fmt.Fprintf(stderr, "icemerge: to skip bad files and apply the rest, rerun with --on-bad-file quarantine (they are recorded in the bookmark)\n")
	}
	return exitFailed
}

func usageErr(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", errUsage, err)
}

func dispatch(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], env, stdout, stderr)
	case "show":
		return cmdShow(ctx, args[1:], env, stdout, stderr)
	case "maintain":
		return cmdMaintain(ctx, args[1:], env, stdout, stderr)
	case "status":
		return cmdStatus(ctx, args[1:], env, stdout, stderr)
	case "bookmark":
		if len(args) < 2 {
			return fmt.Errorf("%w: bookmark needs a subcommand: show, reset or rewind", errUsage)
		}
		switch args[1] {
		case "show":
			return cmdBookmarkShow(ctx, args[2:], env, stdout, stderr)
		case "reset":
			return cmdBookmarkReset(ctx, args[2:], env, stdout, stderr)
		case "rewind":
			return cmdBookmarkRewind(ctx, args[2:], env, stdout, stderr)
		}
		return fmt.Errorf("%w: unknown bookmark subcommand %q: use show, reset or rewind", errUsage, args[1])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprint(stderr, usageText)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func cmdRun(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := newFlagSet("icemerge run", stderr)
	var o RunOptions
	o.register(fs)
	o.AfterRun.register(fs)
	fs.StringVar(&o.Source, "source", "", "the DMS folder of one table: path, file:// or s3://")
	keys := fs.String("key", "", "primary key column(s), comma-separated; used to create the table")
	order := fs.String("order-by", "updated_at", "column(s) ordering the changes of a key, comma-separated; 'source' for source order only")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the plan and write nothing")
	var db dbFlags
	db.register(fs)
	fs.IntVar(&o.MaxFiles, "max-files", 0, "apply at most this many files per run, in source order (0: all)")
	fs.Var((*sizeValue)(&o.MaxBytes), "max-bytes", "apply files in source order until the next would pass this many bytes (or 512MiB, 2GiB); at least one file (0: all)")
	o.SourceCache = defaultSourceCache
	fs.Var((*sizeValue)(&o.SourceCache), "source-cache", "keep the decoded rows of the first source files read, up to this size, so writing their winning rows does not read them again (0: read again)")
	fs.IntVar(&o.PartitionRows, "partition-rows", defaultPartitionRows, "plan a run of more changes than this in key-hash partitions of about this many, one at a time, to bound memory (0: one partition)")
	fs.DurationVar(&o.SettleAfter, "settle-after", 15*time.Minute, "list only after keys applied this long ago (0: list the whole folder every run)")
	fs.DurationVar(&o.Wait, "wait", 0, "wait this long for another run of the table to finish (0: exit 3 at once)")
	fs.DurationVar(&o.LockTTL, "lock-ttl", 10*time.Minute, "lease of the table's run lock, renewed while running; a run that died frees the table after it")
	fs.DurationVar(&o.TombstoneTTL, "tombstone-ttl", 7*24*time.Hour, "remember deleted keys this long, so older changes arriving late do not revive them (0: off)")
	report := fs.String("report", "", "write a JSON report of the run to this file ('-': stdout)")
	fs.StringVar(&o.OnBadFile, "on-bad-file", onBadFileFail, "a file with bad input (corrupt, unknown Op, null key, invalid UTF-8, clashing type): fail the run, or quarantine: skip it, record it in the bookmark and go on")
	if err := parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	o.Keys = splitList(*keys)
	if strings.TrimSpace(*order) != "source" {
		o.OrderBy = splitList(*order)
	}
	if err := o.defaults(env); err != nil {
		return err
	}
	var cfg DatabaseConfig
	if o.Table == "" {
		var err error
		if cfg, err = db.config(o.Source); err != nil {
			return err
		}
	} else if db.any() {
		return fmt.Errorf("%w: --config, --namespace, --table-prefix, --parallel, --include and --exclude are for a whole-database run: drop --table and point --source at the schema folder", errUsage)
	}
	if err := o.Validate(); err != nil {
		return usageErr(err)
	}
	log := o.logger(stderr)
	started := time.Now()
	out := stdout
	if *report == "-" {
		out = stderr // stdout carries the report alone
	}
	if o.Table == "" {
		ctx, op, err := o.open(ctx, log, nil, o.Source)
		if err != nil {
			return err
		}
		defer op.cat.Close()
		reports, err := runDatabase(ctx, o, cfg, op, Deps{Log: log, Out: &syncWriter{w: out}, Now: time.Now, Catalog: op.cat, Progress: progressOn(stderr)})
		if *report != "" && reports != nil {
			if rerr := writeReport(*report, stdout, Report{Started: started.UTC(), OK: err == nil, Tables: reports}); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
		return err
	}
	ctx, op, err := o.open(ctx, log, nil, o.Source)
	if err != nil {
		return err
	}
	defer op.cat.Close()
	res, err := runMerge(ctx, o, Deps{Log: log, Out: out, Now: time.Now, Source: op.src, Catalog: op.cat, Bookmark: op.store, Lock: op.store, Progress: progressOn(stderr)})
	if *report != "" {
		tr := tableReport(o.Table, res, o.DryRun, err)
		if rerr := writeReport(*report, stdout, Report{Started: started.UTC(), OK: err == nil, Tables: []TableReport{tr}}); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// commonCommand parses the flags every command shares, plus extra.
func commonCommand(name string, args []string, env func(string) (string, bool), stderr io.Writer, extra func(*flag.FlagSet)) (Common, error) {
	fs := newFlagSet(name, stderr)
	var c Common
	c.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, args, env); err != nil {
		return c, usageErr(err)
	}
	if err := c.defaults(env); err != nil {
		return c, err
	}
	return c, usageErr(c.Validate())
}

func cmdBookmarkShow(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	var files bool
	c, err := commonCommand("icemerge bookmark show", args, env, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&files, "files", false, "list every applied file")
	})
	if err != nil {
		return err
	}
	ctx, op, err := c.open(ctx, c.logger(stderr), nil, "")
	if err != nil {
		return err
	}
	defer op.cat.Close()
	st, ver, err := op.store.Load(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bookmark of %s at %s\n", c.Table, op.store.Location())
	if ver == "" {
		fmt.Fprintln(stdout, "  none saved yet: the next run processes every file")
		return nil
	}
	tok := st.Token
	if tok == "" {
		tok = "(none: the next run processes every file)"
	}
	fmt.Fprintf(stdout, "  token: %s\n  runs: %d\n  applied files: %d\n", tok, st.Runs, len(st.Files))
	if st.Settled != "" {
		fmt.Fprintf(stdout, "  settled: every key up to %s (listings start after it)\n", st.Settled)
	}
	fmt.Fprintf(stdout, "  updated: %s\n", st.Updated.Format(time.RFC3339))
	if st.ResetAt != nil {
		fmt.Fprintf(stdout, "  reset: %s\n", st.ResetAt.Format(time.RFC3339))
	}
	if p := st.Pending; p != nil {
		fmt.Fprintf(stdout, "  pending: run %s started %s with %d files (the next run checks whether it committed)\n",
			p.Token, p.Started.Format(time.RFC3339), len(p.Files))
	}
	if n := len(st.Quarantined); n > 0 {
		fmt.Fprintf(stdout, "  quarantined files: %d (skipped as bad input; replace the object to have it applied, or reset the bookmark)\n", n)
		for _, k := range slices.Sorted(maps.Keys(st.Quarantined)) {
			q := st.Quarantined[k]
			fmt.Fprintf(stdout, "    %s\t%d bytes\tquarantined %s: %s\n", k, q.Size, q.At.Format(time.RFC3339), q.Reason)
		}
	}
	if files {
		for _, k := range st.SortedFiles() {
			fi := st.Files[k]
			fmt.Fprintf(stdout, "  %s\t%d bytes\t%s\n", k, fi.Size, fi.ModTime.Format(time.RFC3339))
		}
	}
	return nil
}

func cmdBookmarkReset(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	c, err := commonCommand("icemerge bookmark reset", args, env, stderr, nil)
	if err != nil {
		return err
	}
	log := c.logger(stderr)
	ctx, op, err := c.open(ctx, log, nil, "")
	if err != nil {
		return err
	}
	defer op.cat.Close()
	// Under the table's run lock, as a rewind: a run in progress would
	// save its own bookmark over the reset.
	lease, err := op.store.Lock(ctx, "icemerge bookmark reset/"+runOwner(), rewindLockTTL, time.Now)
	if err != nil {
		return fmt.Errorf("cannot reset the bookmark of %s while a run holds the table: %w", c.Table, err)
	}
	defer func() {
		if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
			log.Warn("releasing the run lock failed; it expires by itself", "error", rerr)
		}
	}()
	st, ver, err := op.store.Load(ctx)
	if err != nil && !errors.Is(err, bookmark.ErrCorrupt) {
		return err
	}
	if _, err := op.store.Save(ctx, bookmark.Reset(c.Table, time.Now()), ver); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bookmark of %s reset (it had %d applied files): the next run processes every file again\n", c.Table, len(st.Files))
	fmt.Fprintf(stdout, "  %s\n", resetNext(st))
	return nil
}

// isTerminal reports whether w is a terminal (a character device), where
// people read logs; pipes, files and log collectors get JSON.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
