package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/testkit/naive"
)

// benchOpts are the flags of the runner.
type benchOpts struct {
	Seed       uint64   `json:"seed"`
	Rows       int      `json:"rows"`
	Changes    int      `json:"changes"`
	Batches    int      `json:"batches"`
	Spreads    []string `json:"spreads"`
	spreadFlag string
	Reps       int    `json:"repetitions"`
	Dir        string `json:"dir"`
	JSON       string `json:"json"`
	Shape      string `json:"shape"`
	// CDCFileBytes is where DMS-shaped CDC files are cut (CdcMinFileSize).
	CDCFileBytes int64 `json:"cdc_file_bytes"`

	DuckDB        bool `json:"duckdb"`
	DuckDBThreads int  `json:"duckdb_threads"`

	SmallFiles     int   `json:"small_files"`
	SmallFileBytes int64 `json:"small_file_bytes"`
	SmallReps      int   `json:"small_files_repetitions"`

	Icemerge   string        `json:"icemerge"`
	RunTimeout time.Duration `json:"-"`
	RSSLimit   int64         `json:"rss_limit_mib"`

	Naive             bool          `json:"naive"`
	NaiveTimeout      time.Duration `json:"-"`
	NaiveSmallRows    int           `json:"naive_small_rows"`
	NaiveSmallChanges int           `json:"naive_small_changes"`

	LoadPerRun   int  `json:"load_files_per_run"`
	RowsLarge    int  `json:"rows_large"`
	ChangesLarge int  `json:"changes_large"`
	Full         bool `json:"full"`

	Minio        string `json:"minio"`
	MinioBin     string `json:"minio_bin"`
	MinioRows    int    `json:"minio_rows"`
	MinioChanges int    `json:"minio_changes"`

	Verify verifyOpts `json:"verify"` // the -verify mode (verify.go)
}

func (o *benchOpts) register(fs *flag.FlagSet) {
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the generated data")
	fs.IntVar(&o.Rows, "rows", 10_000_000, "rows of the base table")
	fs.IntVar(&o.Changes, "changes", 1_000_000, "rows of each CDC batch")
	fs.IntVar(&o.Batches, "batches", 1, "CDC batches, merged one run each")
	fs.StringVar(&o.spreadFlag, "spread", "uniform,clustered", "spreads of the changed keys to measure: uniform, clustered or both (comma-separated)")
	fs.IntVar(&o.Reps, "reps", 3, "repetitions of each CDC run (the median is shown)")
	fs.StringVar(&o.Shape, "shape", shapeDMS, "the generated files: dms (DMS's S3 settings: GZIP, parquet-1-0, 10,000-row row groups, dictionary and statistics on, CDC files of about 32 MB of whole transactions) or legacy (the bench's earlier files: snappy, 128Ki-row row groups, 250k-row CDC files, LOAD files without Op)")
	fs.Int64Var(&o.CDCFileBytes, "cdc-file-bytes", dmsCDCFileBytes, "DMS shape: cut CDC files at about this many bytes (DMS CdcMinFileSize)")
	fs.BoolVar(&o.DuckDB, "duckdb", true, "also run DuckDB on the same files (the same merge as a full rewrite to zstd Parquet); every wall time is shown as a ratio to its")
	fs.IntVar(&o.DuckDBThreads, "duckdb-threads", 2, "DuckDB's threads (SET threads)")
	fs.IntVar(&o.SmallFiles, "small-files", 1000, "DMS shape: also merge a batch cut into this many small CDC files, and the same rows as one file (0: off)")
	fs.Int64Var(&o.SmallFileBytes, "small-file-bytes", 1<<20, "the size of each small CDC file (the batch has as many changes as fill -small-files of them)")
	fs.IntVar(&o.SmallReps, "small-reps", 1, "repetitions of the small-files runs")
	fs.StringVar(&o.Dir, "dir", "bench-work", "work dir: generated data (cached by parameters) and the tables")
	fs.StringVar(&o.JSON, "json", "", "write every figure here (default bench-results/bench-<timestamp>.json)")
	fs.StringVar(&o.Icemerge, "icemerge", "bin/icemerge", "the icemerge binary to measure")
	fs.DurationVar(&o.RunTimeout, "run-timeout", 30*time.Minute, "give up on one icemerge run after this long")
	fs.Int64Var(&o.RSSLimit, "rss-limit", 0, "kill a run whose RSS passes this many MiB, reported as such (0: no limit); for shared machines")
	fs.BoolVar(&o.Naive, "naive", true, "also run the naive merge (iceberg-go Delete with an In filter + Append) on the same data")
	fs.DurationVar(&o.NaiveTimeout, "naive-timeout", 10*time.Minute, "give up on one naive run after this long (reported as > timeout)")
	fs.IntVar(&o.NaiveSmallRows, "naive-small-rows", 1_000_000, "when a naive run times out: rows of the smaller table measured for the ratio (0: none)")
	fs.IntVar(&o.NaiveSmallChanges, "naive-small-changes", 100_000, "when a naive run times out: changes of the smaller batch measured for the ratio")
	fs.IntVar(&o.LoadPerRun, "load-files-per-run", 0, "make each full load in runs of --max-files N (0: one run; the -rows-large table: 10)")
	fs.IntVar(&o.RowsLarge, "rows-large", 0, "also merge a clustered batch of -changes into a table of this many rows (e.g. 100000000; long; 0: off)")
	fs.IntVar(&o.ChangesLarge, "changes-large", 0, "also merge one batch of this many changes into the -rows table, for its RSS (e.g. 10000000; 0: off)")
	fs.BoolVar(&o.Full, "full", false, "everything: -rows-large 100000000 and -changes-large 10000000 unless set")
	fs.StringVar(&o.Minio, "minio", "auto", "the S3 runs on MinIO: auto (when -minio-bin exists), on or off")
	fs.StringVar(&o.MinioBin, "minio-bin", "bin/minio", "the MinIO server binary")
	fs.IntVar(&o.MinioRows, "minio-rows", 1_000_000, "rows of the base table on MinIO")
	fs.IntVar(&o.MinioChanges, "minio-changes", 100_000, "changes of the CDC batch on MinIO")
	o.Verify.register(fs)
}

// splitSpreads fills Spreads from the -spread flag.
func (o *benchOpts) splitSpreads() {
	o.Spreads = nil
	for _, s := range strings.Split(o.spreadFlag, ",") {
		if s = strings.TrimSpace(s); s == "both" {
			o.Spreads = append(o.Spreads, spreadUniform, spreadClustered)
		} else if s != "" {
			o.Spreads = append(o.Spreads, s)
		}
	}
	o.Spreads = slices.Compact(o.Spreads)
}

func (o *benchOpts) validate() error {
	var errs []error
	for _, s := range o.Spreads {
		if s != spreadUniform && s != spreadClustered {
			errs = append(errs, fmt.Errorf("-spread %q: use uniform, clustered or both", s))
		}
	}
	if len(o.Spreads) == 0 {
		errs = append(errs, errors.New("-spread: name at least one"))
	}
	if err := (genParams{Rows: o.Rows, Changes: o.Changes, Spread: spreadUniform, Shape: o.Shape, FileBytes: o.CDCFileBytes}).validate(o.Batches); err != nil {
		errs = append(errs, err)
	}
	if o.Changes < 1 {
		errs = append(errs, errors.New("-changes: at least 1"))
	}
	if o.Reps < 1 || o.SmallReps < 1 {
		errs = append(errs, errors.New("-reps, -small-reps: at least 1"))
	}
	if o.SmallFileBytes < 1 || o.SmallFiles < 0 {
		errs = append(errs, errors.New("-small-file-bytes: at least 1; -small-files: 0 or more"))
	}
	if o.DuckDBThreads < 1 {
		errs = append(errs, errors.New("-duckdb-threads: at least 1"))
	}
	switch o.Minio {
	case "auto", "on", "off":
	default:
		errs = append(errs, fmt.Errorf("-minio %q: use auto, on or off", o.Minio))
	}
	if o.RowsLarge < 0 || o.ChangesLarge < 0 || o.NaiveSmallRows < 0 || o.MinioRows < 0 {
		errs = append(errs, errors.New("sizes cannot be negative"))
	}
	return errors.Join(errs...)
}

// scenario is one measured thing: a run of icemerge or of the naive merge,
// repeated.
type scenario struct {
	ID string `json:"id"`
	// Group names the input: the scenarios of one group (icemerge, DuckDB,
	// the naive merge) ran on the same files and the same starting table.
	Group   string    `json:"input"`
	Title   string    `json:"title"`
	Tool    string    `json:"tool"`    // icemerge, duckdb or naive
	Storage string    `json:"storage"` // local or minio
	Rows    int       `json:"table_rows"`
	Changes int       `json:"changes"` // rows merged (the full load: the table's rows)
	Spread  string    `json:"spread,omitempty"`
	Runs    []measure `json:"runs"`
	// Median is the run of median wall time; MaxRSSMiB the highest peak
	// RSS of all runs.
	Median    *measure `json:"median"`
	MaxRSSMiB float64  `json:"max_peak_rss_mib"`
	Note      string   `json:"note,omitempty"`
}

func (s *scenario) finish() {
	if len(s.Runs) == 0 {
		return
	}
	runs := slices.Clone(s.Runs)
	slices.SortStableFunc(runs, func(a, b measure) int { return cmp.Compare(a.Wall, b.Wall) })
	m := runs[(len(runs)-1)/2]
	s.Median = &m
	for _, r := range s.Runs {
		s.MaxRSSMiB = max(s.MaxRSSMiB, r.RSSMiB)
	}
}

// results is the JSON file.
type results struct {
	Started       time.Time   `json:"started"`
	Machine       machine     `json:"machine"`
	DuckDBVersion string      `json:"duckdb_version,omitempty"`
	Params        benchOpts   `json:"params"`
	Generation    []genEntry  `json:"generation"`
	Scenarios     []*scenario `json:"scenarios"`
	Ratios        []ratio     `json:"naive_ratios"`
	Targets       []target    `json:"targets"`
	RowChecks     []rowCheck  `json:"row_checks"`
	Notes         []string    `json:"notes,omitempty"`
	TotalWall     float64     `json:"total_wall_s"`
}

type genEntry struct {
	What string `json:"what"`
	genStats
}

type ratio struct {
	Spread    string  `json:"spread"`
	Rows      int     `json:"table_rows"`
	Changes   int     `json:"changes"`
	Naive     float64 `json:"naive_wall_s"`
	Icemerge  float64 `json:"icemerge_wall_s"`
	Ratio     float64 `json:"ratio"`
	LowerOnly bool    `json:"lower_bound,omitempty"` // the naive run timed out: the ratio is at least this
}

// rowCheck compares the rows of icemerge's table with DuckDB's after the
// same merge: a sanity check of the comparison, not a test of icemerge.
type rowCheck struct {
	Input    string `json:"input"`
	Icemerge int64  `json:"icemerge_rows"`
	DuckDB   int64  `json:"duckdb_rows"`
	Same     bool   `json:"same"`
}

type target struct {
	Name  string `json:"name"`
	Goal  string `json:"goal"`
	Value string `json:"value"`
	Met   *bool  `json:"met"` // nil: not measured
	Note  string `json:"note,omitempty"`
}

// bench is one invocation of the runner.
type bench struct {
	o        benchOpts
	icemerge string // absolute
	self     string // this binary, for the naive runs
	report   bool   // icemerge has --report
	duckdb   bool   // DuckDB runs (-duckdb, and this binary has it)
	res      results
	out      io.Writer
	seq      int
}

// benchMain is `icemerge-bench [run]`.
func benchMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("icemerge-bench", flag.ContinueOnError)
	var o benchOpts
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.splitSpreads()
	if o.Full {
		o.RowsLarge = cmp.Or(o.RowsLarge, 100_000_000)
		o.ChangesLarge = cmp.Or(o.ChangesLarge, 10_000_000)
	}
	if err := o.validate(); err != nil {
		return err
	}
	if o.Verify.On {
		return verifyMain(ctx, o)
	}
	start := time.Now()
	b := &bench{o: o, out: os.Stdout}
	b.res.Started, b.res.Params = start, o
	var err error
	if b.icemerge, err = filepath.Abs(o.Icemerge); err != nil {
		return err
	}
	if _, err := os.Stat(b.icemerge); err != nil {
		return fmt.Errorf("icemerge binary %s: %w (make bench builds it: go build -o bin/icemerge ./cmd/icemerge)", o.Icemerge, err)
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return err
	}
	b.report = hasReportFlag(b.icemerge)
	b.res.Machine = describeMachine(b.icemerge)
	b.printMachine()
	if !b.report {
		b.note("%s has no --report flag yet: only wall time and peak RSS are measured, no phases or byte counts", o.Icemerge)
	}
	b.duckdb = o.DuckDB && duckdbAvailable
	if o.DuckDB && !duckdbAvailable {
		b.note("this icemerge-bench was built without cgo, so without DuckDB: no ratios to DuckDB (make bench builds it with cgo)")
	}

	runErr := b.run(ctx)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		b.note("the bench stopped early: %v", runErr)
	}
	b.res.TotalWall = time.Since(start).Seconds()
	b.res.Machine.LoadAvgEnd = loadAvg()
	b.evaluate()
	b.printSummary()
	path := o.JSON
	if path == "" {
		path = filepath.Join("bench-results", "bench-"+start.UTC().Format("20060102-150405")+".json")
	}
	if err := writeJSON(path, &b.res); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nfigures written to %s (total bench wall %s)\n", path, fmtDur(b.res.TotalWall))
	return runErr
}

func (b *bench) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.res.Notes = append(b.res.Notes, s)
	fmt.Fprintln(b.out, "NOTE:", s)
}

// run measures every scenario in turn.
func (b *bench) run(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== data (%s shape, seed %d, cached in %s) ==\n", o.Shape, o.Seed, filepath.Join(o.Dir, "data"))
	main := b.params(o.Rows, o.Changes, "")
	load, err := b.genBase(main)
	if err != nil {
		return err
	}
	batches := map[string][][]string{} // spread → batch → files
	for _, sp := range o.Spreads {
		p := main
		p.Spread = sp
		for i := 1; i <= o.Batches; i++ {
			files, err := b.genBatch(p, i, "")
			if err != nil {
				return err
			}
			batches[sp] = append(batches[sp], files)
		}
	}

	fmt.Fprintf(b.out, "\n== local runs: %s rows, %s changes per batch ==\n", count(o.Rows), count(o.Changes))
	t := b.newTable(fmt.Sprintf("%s-s%d-r%d", o.Shape, o.Seed, o.Rows))
	if err := b.fullLoad(ctx, t, "a", o.Rows, load, o.LoadPerRun); err != nil {
		return err
	}
	for si, sp := range o.Spreads {
		c := cdcCase{id: "b", rows: o.Rows, changes: o.Changes, spread: sp, batches: batches[sp], reps: o.Reps}
		if err := b.cdcScenarios(ctx, t, load, c); err != nil {
			return err
		}
		if si == 0 {
			// The no-op run: the table and bookmark as the last CDC run left them.
			s := &scenario{ID: "c-noop/icemerge", Group: "c-noop", Title: "run with no new files (no-op)", Tool: "icemerge", Storage: "local", Rows: o.Rows}
			for i := range 3 {
				m := b.icemergeRun(ctx, t, nil)
				b.progress(s, i+1, 3, m)
				s.Runs = append(s.Runs, m)
			}
			b.add(s)
		}
	}

	if o.SmallFiles > 0 {
		if o.Shape != shapeDMS {
			b.note("-small-files needs the DMS shape (files cut by size): skipped")
		} else if err := b.smallFiles(ctx, t, load); err != nil {
			return err
		}
	}

	if o.Naive {
		timedOut := false
		for _, sp := range o.Spreads {
			m, err := b.naiveScenario(ctx, t, groupID("b", sp, 1), o.Rows, o.Changes, sp, load, batches[sp][0])
			if err != nil {
				return err
			}
			if m.TimedOut {
				timedOut = true
			}
		}
		if timedOut && o.NaiveSmallRows > 0 && (o.NaiveSmallRows < o.Rows || o.NaiveSmallChanges < o.Changes) {
			if err := b.smallNaive(ctx); err != nil {
				return err
			}
		}
	}

	if o.ChangesLarge > 0 {
		p := b.params(o.Rows, o.ChangesLarge, spreadUniform)
		files, err := b.genBatch(p, 1, "")
		if err != nil {
			return err
		}
		c := cdcCase{id: "e", rows: o.Rows, changes: o.ChangesLarge, spread: spreadUniform, batches: [][]string{files}, reps: 1}
		if err := b.cdcScenarios(ctx, t, load, c); err != nil {
			return err
		}
	}

	if o.RowsLarge > 0 {
		if err := b.largeTable(ctx); err != nil {
			return err
		}
	}

	switch {
	case o.Minio == "off":
	case o.Minio == "auto" && !exists(o.MinioBin):
		b.note("no MinIO at %s: the S3 runs are skipped (make minio builds it)", o.MinioBin)
	default:
		if err := b.minioRuns(ctx); err != nil {
			b.note("the MinIO runs failed: %v", err)
		}
	}
	return ctx.Err()
}

// params are the generator's parameters for a table of rows and batches of
// changes.
func (b *bench) params(rows, changes int, spread string) genParams {
	return genParams{Seed: b.o.Seed, Rows: rows, Changes: changes, Spread: spread, Shape: b.o.Shape, FileBytes: b.o.CDCFileBytes}
}

// groupID names the input of batch i of a spread in scenario family id.
func groupID(id, spread string, i int) string { return fmt.Sprintf("%s-%s-%d", id, spread, i) }

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (b *bench) genBase(p genParams) ([]string, error) {
	s, err := genBase(b.o.Dir, p)
	if err != nil {
		return nil, fmt.Errorf("generating the full load: %w", err)
	}
	b.res.Generation = append(b.res.Generation, genEntry{fmt.Sprintf("LOAD %d rows (%s)", p.Rows, p.Shape), *s})
	printGen("LOAD", s)
	return paths(s), nil
}

// genBatch generates (or finds) batch i of p; what names it in the output
// (default "CDC <spread> batch <i>").
func (b *bench) genBatch(p genParams, i int, what string) ([]string, error) {
	s, err := genBatch(b.o.Dir, p, i)
	if err != nil {
		return nil, fmt.Errorf("generating CDC batch %d: %w", i, err)
	}
	if what == "" {
		what = fmt.Sprintf("CDC %s batch %d", p.Spread, i)
	}
	b.res.Generation = append(b.res.Generation, genEntry{fmt.Sprintf("%s (%d changes on %d rows, %s)", what, p.Changes, p.Rows, p.Shape), *s})
	printGen(what, s)
	return paths(s), nil
}

func paths(s *genStats) []string {
	var out []string
	for _, f := range s.Files {
		out = append(out, filepath.Join(s.Location, f))
	}
	return out
}

// localTable is a table under DIR/runs/TAG: live is what icemerge runs use,
// snap the table as the full load left it, duck DuckDB's files.
type localTable struct {
	root, live, snap, duck string
	duckOK                 bool // DuckDB's full load is there
}

func (b *bench) newTable(tag string) *localTable {
	root := filepath.Join(b.o.Dir, "runs", tag)
	return &localTable{root: root, live: filepath.Join(root, "live"), snap: filepath.Join(root, "snap"), duck: filepath.Join(root, "duckdb")}
}

func (t *localTable) src() string       { return filepath.Join(t.live, "src") }
func (t *localTable) warehouse() string { return filepath.Join(t.live, "warehouse") }
func (t *localTable) catalog() string   { return filepath.Join(t.live, "catalog.db") }

// duckTable is DuckDB's table as the full load left it: one Parquet file.
func (t *localTable) duckTable() string { return filepath.Join(t.duck, "table.parquet") }

// snapshot keeps the live table (after the full load) as the starting
// point of every later run.
func (t *localTable) snapshot() error {
	if err := os.RemoveAll(t.snap); err != nil {
		return err
	}
	if err := cloneTree(filepath.Join(t.live, "warehouse"), filepath.Join(t.snap, "warehouse")); err != nil {
		return err
	}
	return copyCatalog(t.live, t.snap)
}

// restore puts the live table back as the full load left it.
func (t *localTable) restore() error {
	for _, p := range []string{t.warehouse(), t.catalog(), t.catalog() + "-wal", t.catalog() + "-shm"} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := cloneTree(filepath.Join(t.snap, "warehouse"), t.warehouse()); err != nil {
		return err
	}
	return copyCatalog(t.snap, t.live)
}

// copyCatalog copies the SQLite catalog with its WAL files (no process has
// it open when this runs).
func copyCatalog(from, to string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		src := filepath.Join(from, "catalog.db"+suffix)
		if !exists(src) {
			continue
		}
		if err := copyFile(src, filepath.Join(to, "catalog.db"+suffix)); err != nil {
			return err
		}
	}
	return nil
}

// icemergeRun runs icemerge on the live table; files non-nil replaces the
// source folder's files first. A run that succeeds has its table's rows
// counted (from the snapshot summary, outside the measured time).
func (b *bench) icemergeRun(ctx context.Context, t *localTable, files []string, extra ...string) measure {
	if files != nil {
		if err := linkFiles(t.src(), files); err != nil {
			return measure{Exit: -1, Stderr: err.Error()}
		}
	}
	args := []string{"run", "--source", t.src(), "--table", "bench.t", "--key", "user_id",
		"--warehouse", "file://" + t.warehouse(), "--catalog-uri", t.catalog(), "--log-level", "warn"}
	args = append(args, extra...)
	b.seq++
	report := filepath.Join(t.root, fmt.Sprintf("report-%03d.json", b.seq))
	if b.report {
		os.Remove(report)
		args = append(args, "--report", report)
	}
	before := dirSize(t.warehouse())
	m := b.runChild(ctx, b.o.RunTimeout, cleanEnv(), b.icemerge, args...)
	m.AddedBytes = dirSize(t.warehouse()) - before
	if b.report {
		readReport(&m, report)
	}
	if m.ok() {
		b.countRows(ctx, t, &m)
	}
	return m
}

// countRows sets m.TableRows to the live rows of the table: the current
// snapshot's total-records less its total-position-deletes (the summary
// iceberg-go and icemerge keep; the tables have no equality deletes).
func (b *bench) countRows(ctx context.Context, t *localTable, m *measure) {
	c := icemerge.Common{Table: "bench.t", Catalog: "sql", CatalogURI: t.catalog(), Warehouse: "file://" + t.warehouse()}
	if err := c.Complete(func(string) (string, bool) { return "", false }); err != nil {
		b.note("counting the table's rows: %v", err)
		return
	}
	octx, env, err := icemerge.Open(ctx, c, "", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.note("counting the table's rows: %v", err)
		return
	}
	defer env.Close()
	tbl, ok, err := env.Catalog.Load(octx, c.Table)
	if err != nil || !ok {
		b.note("counting the table's rows: %v (exists %v)", err, ok)
		return
	}
	snap := tbl.Current()
	if snap == nil {
		return
	}
	p := snap.Summary
	recs, err1 := strconv.ParseInt(p["total-records"], 10, 64)
	dels, err2 := strconv.ParseInt(cmp.Or(p["total-position-deletes"], "0"), 10, 64)
	if err1 != nil || err2 != nil || cmp.Or(p["total-equality-deletes"], "0") != "0" {
		b.note("the snapshot summary of %s does not give its rows: %v", t.root, p)
		return
	}
	n := recs - dels
	m.TableRows = &n
}

// fullLoad is scenario (a): the LOAD files into a new table, then kept as
// the starting point; DuckDB copies them into its table file.
func (b *bench) fullLoad(ctx context.Context, t *localTable, id string, rows int, load []string, perRun int) error {
	if err := os.RemoveAll(t.root); err != nil {
		return err
	}
	if err := os.MkdirAll(t.live, 0o755); err != nil {
		return err
	}
	group := id + "-full-load"
	s := &scenario{ID: group + "/icemerge", Group: group, Title: fmt.Sprintf("full load of %s rows (%d LOAD files)", count(rows), len(load)), Tool: "icemerge", Storage: "local", Rows: rows, Changes: rows}
	var m measure
	if perRun <= 0 || perRun >= len(load) {
		m = b.icemergeRun(ctx, t, load)
	} else {
		// --max-files: one run per perRun LOAD files, summed.
		runs := (len(load) + perRun - 1) / perRun
		s.Title += fmt.Sprintf(" in %d runs", runs)
		s.Note = fmt.Sprintf("%d runs of --max-files %d: wall and bytes summed, the highest peak RSS", runs, perRun)
		var parts []measure
		for i := range runs {
			files := load
			if i > 0 {
				files = nil // the folder already holds them all
			}
			pm := b.icemergeRun(ctx, t, files, "--max-files", fmt.Sprint(perRun))
			b.progress(&scenario{Tool: s.Tool, Storage: s.Storage, Title: fmt.Sprintf("  full-load part %d/%d", i+1, runs)}, i+1, runs, pm)
			parts = append(parts, pm)
			if !pm.ok() || ctx.Err() != nil {
				break
			}
		}
		m = sumMeasures(parts)
	}
	b.progress(s, 1, 1, m)
	s.Runs = append(s.Runs, m)
	b.add(s)
	if !m.ok() {
		return fmt.Errorf("the full load failed (exit %d): %s", m.Exit, m.Stderr)
	}
	if err := t.snapshot(); err != nil {
		return err
	}
	if !b.duckdb {
		return nil
	}
	if err := os.MkdirAll(t.duck, 0o755); err != nil {
		return err
	}
	d := &scenario{ID: group + "/duckdb", Group: group, Title: s.Title, Tool: "duckdb", Storage: "local", Rows: rows, Changes: rows}
	dm := b.duckdbRun(ctx, t, "load", "", t.duckTable(), load)
	b.progress(d, 1, 1, dm)
	d.Runs = append(d.Runs, dm)
	b.add(d)
	t.duckOK = dm.ok()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !t.duckOK {
		b.note("DuckDB's full load of %s failed: no DuckDB figures for this table: %s", t.root, firstLine(dm.Stderr))
	}
	return ctx.Err()
}

// duckdbRun runs `icemerge-bench duckdb` as a measured subprocess.
func (b *bench) duckdbRun(ctx context.Context, t *localTable, mode, table, out string, files []string) measure {
	b.seq++
	report := filepath.Join(t.duck, fmt.Sprintf("report-%03d.json", b.seq))
	args := []string{"duckdb", "-mode", mode, "-out", out, "-threads", strconv.Itoa(b.o.DuckDBThreads),
		"-temp", filepath.Join(t.duck, "tmp"), "-report", report}
	if table != "" {
		args = append(args, "-table", table)
	}
	os.Remove(out)
	m := b.runChild(ctx, b.o.RunTimeout, cleanEnv(), b.self, append(args, files...)...)
	if data, err := os.ReadFile(report); err == nil {
		var r duckdbReport
		if json.Unmarshal(data, &r) == nil {
			m.DuckDB = &r
			n := r.RowsWritten
			m.TableRows = &n
			m.AddedBytes = r.BytesWritten
			if b.res.DuckDBVersion == "" {
				b.res.DuckDBVersion = r.Version
			}
		}
	}
	return m
}

// sumMeasures adds up the runs of a full load made in parts: wall, bytes,
// rows and phases summed, the highest peak RSS, the first failure, the
// last count of the table's rows.
func sumMeasures(ms []measure) measure {
	var out measure
	var rep *tableReport
	for _, m := range ms {
		out.Wall += m.Wall
		out.CPU += m.CPU
		out.AddedBytes += m.AddedBytes
		out.RSSMiB = max(out.RSSMiB, m.RSSMiB)
		out.TableRows = m.TableRows
		if out.ok() && !m.ok() {
			out.Exit, out.TimedOut, out.Timeout, out.Stderr = m.Exit, m.TimedOut, m.Timeout, m.Stderr
		}
		if r := m.Report; r != nil {
			if rep == nil {
				rep = &tableReport{Table: r.Table, Durations: map[string]float64{}}
			}
			rep.Outcome = r.Outcome
			rep.Files += r.Files
			rep.RowsRead += r.RowsRead
			rep.Inserts += r.Inserts
			rep.Keys += r.Keys
			rep.RowsInserted += r.RowsInserted
			rep.BytesRead += r.BytesRead
			rep.BytesWritten += r.BytesWritten
			rep.TableFilesScanned += r.TableFilesScanned
			rep.TableFilesPruned += r.TableFilesPruned
			rep.TableBytesScanned += r.TableBytesScanned
			rep.SnapshotID = r.SnapshotID
			for k, v := range r.Durations {
				rep.Durations[k] += v
			}
		}
	}
	out.Report = rep
	return out
}

// cdcCase is one family of CDC runs: batches merged one run each into the
// table as the full load left it.
type cdcCase struct {
	id            string // the family: b, d, e, f, n
	what          string // in the title before "into N rows" (default "N changes")
	rows, changes int
	spread        string
	batches       [][]string
	reps          int
}

// cdcScenarios merges the batches one run each into the table as the full
// load left it, reps times, icemerge and DuckDB in turn; the median of each
// batch is kept.
func (b *bench) cdcScenarios(ctx context.Context, t *localTable, load []string, c cdcCase) error {
	what := cmp.Or(c.what, count(c.changes)+" changes")
	n := len(c.batches)
	ice, duck := make([]*scenario, n), make([]*scenario, n)
	for i := range c.batches {
		title := fmt.Sprintf("%s into %s rows, %s", what, count(c.rows), c.spread)
		if n > 1 {
			title += fmt.Sprintf(", batch %d of %d", i+1, n)
		}
		g := groupID(c.id, c.spread, i+1)
		ice[i] = &scenario{ID: g + "/icemerge", Group: g, Title: title, Tool: "icemerge", Storage: "local", Rows: c.rows, Changes: c.changes, Spread: c.spread}
		duck[i] = &scenario{ID: g + "/duckdb", Group: g, Title: title, Tool: "duckdb", Storage: "local", Rows: c.rows, Changes: c.changes, Spread: c.spread}
	}
	for rep := range c.reps {
		if err := t.restore(); err != nil {
			return err
		}
		files := slices.Clone(load)
		for i, batch := range c.batches {
			files = append(files, batch...)
			m := b.icemergeRun(ctx, t, files)
			b.progress(ice[i], rep+1, c.reps, m)
			ice[i].Runs = append(ice[i].Runs, m)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !b.duckdb || !t.duckOK {
			continue
		}
		// DuckDB's table after batch i is its output: the next batch's input.
		table := t.duckTable()
		for i, batch := range c.batches {
			out := filepath.Join(t.duck, fmt.Sprintf("out-%d.parquet", i+1))
			m := b.duckdbRun(ctx, t, "merge", table, out, batch)
			b.progress(duck[i], rep+1, c.reps, m)
			duck[i].Runs = append(duck[i].Runs, m)
			if table != t.duckTable() {
				os.Remove(table)
			}
			table = out
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		os.Remove(table)
	}
	for i := range c.batches {
		b.add(ice[i])
		if len(duck[i].Runs) > 0 {
			b.add(duck[i])
		}
	}
	return nil
}

// smallFiles is scenario (f): one uniform batch cut into -small-files files
// of -small-file-bytes, then the same rows as one file, each merged into
// the table as the full load left it.
func (b *bench) smallFiles(ctx context.Context, t *localTable, load []string) error {
	o := b.o
	p := b.params(o.Rows, 0, spreadUniform)
	n, err := smallFilesChanges(p, o.SmallFiles, o.SmallFileBytes)
	if err != nil {
		return fmt.Errorf("sizing the small files: %w", err)
	}
	p.Changes, p.FileBytes = n, o.SmallFileBytes
	fmt.Fprintf(b.out, "\n== %d small CDC files of %s (%s changes), and the same rows as one file ==\n", o.SmallFiles, fmtBytes(o.SmallFileBytes), count(n))
	small, err := b.genBatch(p, 1, fmt.Sprintf("CDC in %d files", o.SmallFiles))
	if err != nil {
		return err
	}
	p.FileBytes = -1
	one, err := b.genBatch(p, 1, "CDC in one file")
	if err != nil {
		return err
	}
	for _, c := range []cdcCase{
		{id: "f-small", what: fmt.Sprintf("%s changes in %d files of %s", count(n), len(small), fmtBytes(o.SmallFileBytes)), batches: [][]string{small}},
		{id: "f-one", what: fmt.Sprintf("%s changes in one file", count(n)), batches: [][]string{one}},
	} {
		c.rows, c.changes, c.spread, c.reps = o.Rows, n, spreadUniform, o.SmallReps
		if err := b.cdcScenarios(ctx, t, load, c); err != nil {
			return err
		}
	}
	return nil
}

// naiveScenario runs the naive merge of one batch on the table as the full
// load left it.
func (b *bench) naiveScenario(ctx context.Context, t *localTable, group string, rows, changes int, spread string, load, batch []string) (measure, error) {
	if err := t.restore(); err != nil {
		return measure{}, err
	}
	if err := linkFiles(t.src(), append(slices.Clone(load), batch...)); err != nil {
		return measure{}, err
	}
	s := &scenario{ID: group + "/naive", Group: group, Title: fmt.Sprintf("%s changes into %s rows, %s", count(changes), count(rows), spread),
		Tool: "naive", Storage: "local", Rows: rows, Changes: changes, Spread: spread}
	report := filepath.Join(t.root, "naive-report.json")
	os.Remove(report)
	before := dirSize(t.warehouse())
	m := b.runChild(ctx, b.o.NaiveTimeout, cleanEnv(), b.self, "naive", "-source", t.src(), "-table", "bench.t", "-key", "user_id",
		"-warehouse", "file://"+t.warehouse(), "-catalog-uri", t.catalog(), "-report", report)
	m.AddedBytes = dirSize(t.warehouse()) - before
	if data, err := os.ReadFile(report); err == nil {
		var r naive.Report
		if jsonUnmarshal(data, &r) == nil {
			m.Naive = &r
		}
	}
	if m.TimedOut {
		s.Note = fmt.Sprintf("killed after %s", b.o.NaiveTimeout)
	}
	if m.ok() {
		b.countRows(ctx, t, &m)
	}
	b.progress(s, 1, 1, m)
	s.Runs = append(s.Runs, m)
	b.add(s)
	return m, ctx.Err()
}

// smallNaive measures icemerge, DuckDB and the naive merge at a size where
// the naive merge finishes, for the ratio.
func (b *bench) smallNaive(ctx context.Context) error {
	o := b.o
	rows, changes := min(o.NaiveSmallRows, o.Rows), min(o.NaiveSmallChanges, o.Changes)
	fmt.Fprintf(b.out, "\n== a naive run timed out: all again at %s rows, %s changes ==\n", count(rows), count(changes))
	p := b.params(rows, changes, "")
	load, err := b.genBase(p)
	if err != nil {
		return err
	}
	t := b.newTable(fmt.Sprintf("%s-s%d-r%d", o.Shape, o.Seed, rows))
	if err := b.fullLoad(ctx, t, "n", rows, load, o.LoadPerRun); err != nil {
		return err
	}
	for _, sp := range o.Spreads {
		p.Spread = sp
		batch, err := b.genBatch(p, 1, "")
		if err != nil {
			return err
		}
		if err := b.cdcScenarios(ctx, t, load, cdcCase{id: "n", rows: rows, changes: changes, spread: sp, batches: [][]string{batch}, reps: o.Reps}); err != nil {
			return err
		}
		if _, err := b.naiveScenario(ctx, t, groupID("n", sp, 1), rows, changes, sp, load, batch); err != nil {
			return err
		}
	}
	return nil
}

// largeTable is scenario (d): a clustered batch into a table 10× bigger.
func (b *bench) largeTable(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== large table: %s rows, %s clustered changes ==\n", count(o.RowsLarge), count(o.Changes))
	p := b.params(o.RowsLarge, o.Changes, spreadClustered)
	load, err := b.genBase(p)
	if err != nil {
		return err
	}
	batch, err := b.genBatch(p, 1, "")
	if err != nil {
		return err
	}
	t := b.newTable(fmt.Sprintf("%s-s%d-r%d", o.Shape, o.Seed, o.RowsLarge))
	if err := b.fullLoad(ctx, t, "d", o.RowsLarge, load, cmp.Or(o.LoadPerRun, 10)); err != nil {
		return err
	}
	return b.cdcScenarios(ctx, t, load, cdcCase{id: "d", rows: o.RowsLarge, changes: o.Changes, spread: spreadClustered, batches: [][]string{batch}, reps: o.Reps})
}

func (b *bench) add(s *scenario) {
	s.finish()
	b.res.Scenarios = append(b.res.Scenarios, s)
}

// progress prints one run as it finishes.
func (b *bench) progress(s *scenario, rep, reps int, m measure) {
	status := ""
	switch {
	case m.RSSLimitHit:
		status = fmt.Sprintf("  KILLED: RSS passed -rss-limit %d MiB", b.o.RSSLimit)
	case m.TimedOut:
		status = fmt.Sprintf("  TIMED OUT after %s", fmtDur(m.Timeout))
	case m.Exit != 0:
		status = fmt.Sprintf("  FAILED (exit %d): %s", m.Exit, firstLine(m.Stderr))
	case m.Report != nil:
		status = "  " + m.Report.Outcome
	case m.DuckDB != nil:
		status = fmt.Sprintf("  %d rows written", m.DuckDB.RowsWritten)
	}
	fmt.Fprintf(b.out, "  %-8s %-6s %-52s %d/%d  wall %8s  CPU %8s  RSS %7.0f MiB  load %s%s\n", s.Tool, s.Storage, s.Title, rep, reps, fmtDur(m.Wall), fmtDur(m.CPU), m.RSSMiB, firstField(m.LoadAvg), status)
}

// firstField is the first of the load averages (the last minute's).
func firstField(s string) string {
	f, _, _ := strings.Cut(s, " ")
	return f
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// cleanEnv is the environment of a local child: without AWS settings, so a
// developer's credentials or endpoint do not leak into a local run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "ICEMERGE_") {
			env = append(env, kv)
		}
	}
	return env
}
