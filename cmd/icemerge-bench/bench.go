package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
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
	if err := (genParams{Rows: o.Rows, Changes: o.Changes, Spread: spreadUniform}).validate(o.Batches); err != nil {
		errs = append(errs, err)
	}
	if o.Changes < 1 {
		errs = append(errs, errors.New("-changes: at least 1"))
	}
	if o.Reps < 1 {
		errs = append(errs, errors.New("-reps: at least 1"))
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
	ID      string    `json:"id"`
	Title   string    `json:"title"`
	Tool    string    `json:"tool"`    // icemerge or naive
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
	Started    time.Time   `json:"started"`
	Machine    machine     `json:"machine"`
	Params     benchOpts   `json:"params"`
	Generation []genEntry  `json:"generation"`
	Scenarios  []*scenario `json:"scenarios"`
	Ratios     []ratio     `json:"naive_ratios"`
	Targets    []target    `json:"targets"`
	Notes      []string    `json:"notes,omitempty"`
	TotalWall  float64     `json:"total_wall_s"`
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
	fmt.Fprintf(b.out, "\n== data (seed %d, cached in %s) ==\n", o.Seed, filepath.Join(o.Dir, "data"))
	main := genParams{Seed: o.Seed, Rows: o.Rows, Changes: o.Changes}
	load, err := b.genBase(main)
	if err != nil {
		return err
	}
	batches := map[string][][]string{} // spread → batch → files
	for _, sp := range o.Spreads {
		p := main
		p.Spread = sp
		for i := 1; i <= o.Batches; i++ {
			files, err := b.genBatch(p, i)
			if err != nil {
				return err
			}
			batches[sp] = append(batches[sp], files)
		}
	}

	fmt.Fprintf(b.out, "\n== local runs: %s rows, %s changes per batch ==\n", count(o.Rows), count(o.Changes))
	t := b.newTable(fmt.Sprintf("s%d-r%d", o.Seed, o.Rows))
	if err := b.fullLoad(ctx, t, "a-full-load", o.Rows, load, o.LoadPerRun); err != nil {
		return err
	}
	icemergeWall := map[string]float64{}
	for si, sp := range o.Spreads {
		if err := b.cdcScenarios(ctx, t, "b", o.Rows, o.Changes, sp, load, batches[sp], o.Reps, icemergeWall); err != nil {
			return err
		}
		if si == 0 {
			// The no-op run: the table and bookmark as the last CDC run left them.
			s := &scenario{ID: "c-noop", Title: "run with no new files (no-op)", Tool: "icemerge", Storage: "local", Rows: o.Rows}
			for i := range 3 {
				m := b.icemergeRun(ctx, t, nil)
				b.progress(s, i+1, 3, m)
				s.Runs = append(s.Runs, m)
			}
			b.add(s)
		}
	}

	if o.Naive {
		timedOut := false
		for _, sp := range o.Spreads {
			m, err := b.naiveScenario(ctx, t, "b", o.Rows, o.Changes, sp, load, batches[sp][0])
			if err != nil {
				return err
			}
			if !m.ok() {
				timedOut = true
			}
			b.addRatio(sp, o.Rows, o.Changes, m, icemergeWall[sp])
		}
		if timedOut && o.NaiveSmallRows > 0 && (o.NaiveSmallRows < o.Rows || o.NaiveSmallChanges < o.Changes) {
			if err := b.smallNaive(ctx); err != nil {
				return err
			}
		}
	}

	if o.ChangesLarge > 0 {
		p := genParams{Seed: o.Seed, Rows: o.Rows, Changes: o.ChangesLarge, Spread: spreadUniform}
		files, err := b.genBatch(p, 1)
		if err != nil {
			return err
		}
		if err := b.cdcScenarios(ctx, t, "e", o.Rows, o.ChangesLarge, spreadUniform, load, [][]string{files}, 1, nil); err != nil {
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

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (b *bench) genBase(p genParams) ([]string, error) {
	s, err := genBase(b.o.Dir, p)
	if err != nil {
		return nil, fmt.Errorf("generating the full load: %w", err)
	}
	b.res.Generation = append(b.res.Generation, genEntry{fmt.Sprintf("LOAD %d rows", p.Rows), *s})
	printGen("LOAD", s)
	return paths(s), nil
}

func (b *bench) genBatch(p genParams, i int) ([]string, error) {
	s, err := genBatch(b.o.Dir, p, i)
	if err != nil {
		return nil, fmt.Errorf("generating CDC batch %d: %w", i, err)
	}
	what := fmt.Sprintf("CDC %s batch %d", p.Spread, i)
	b.res.Generation = append(b.res.Generation, genEntry{fmt.Sprintf("%s (%d changes on %d rows)", what, p.Changes, p.Rows), *s})
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

// localTable is a table under DIR/runs/TAG: live is what runs use, snap
// the table as the full load left it.
type localTable struct {
	root, live, snap string
}

func (b *bench) newTable(tag string) *localTable {
	root := filepath.Join(b.o.Dir, "runs", tag)
	return &localTable{root: root, live: filepath.Join(root, "live"), snap: filepath.Join(root, "snap")}
}

func (t *localTable) src() string       { return filepath.Join(t.live, "src") }
func (t *localTable) warehouse() string { return filepath.Join(t.live, "warehouse") }
func (t *localTable) catalog() string   { return filepath.Join(t.live, "catalog.db") }

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
// source folder's files first.
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
	return m
}

// fullLoad is scenario (a): the LOAD files into a new table, then kept as
// the starting point.
func (b *bench) fullLoad(ctx context.Context, t *localTable, id string, rows int, load []string, perRun int) error {
	if err := os.RemoveAll(t.root); err != nil {
		return err
	}
	if err := os.MkdirAll(t.live, 0o755); err != nil {
		return err
	}
	s := &scenario{ID: id, Title: fmt.Sprintf("full load of %s rows (%d LOAD files)", count(rows), len(load)), Tool: "icemerge", Storage: "local", Rows: rows, Changes: rows}
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
	return t.snapshot()
}

// sumMeasures adds up the runs of a full load made in parts: wall, bytes,
// rows and phases summed, the highest peak RSS, the first failure.
func sumMeasures(ms []measure) measure {
	var out measure
	var rep *tableReport
	for _, m := range ms {
		out.Wall += m.Wall
		out.AddedBytes += m.AddedBytes
		out.RSSMiB = max(out.RSSMiB, m.RSSMiB)
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

// cdcScenarios merges the batches one run each into the table as the full
// load left it, reps times; the median of each batch is kept.
func (b *bench) cdcScenarios(ctx context.Context, t *localTable, id string, rows, changes int, spread string, load []string, batches [][]string, reps int, walls map[string]float64) error {
	ss := make([]*scenario, len(batches))
	for i := range batches {
		title := fmt.Sprintf("%s changes into %s rows, %s", count(changes), count(rows), spread)
		if len(batches) > 1 {
			title += fmt.Sprintf(", batch %d of %d", i+1, len(batches))
		}
		ss[i] = &scenario{ID: fmt.Sprintf("%s-cdc-%s-%d", id, spread, i+1), Title: title, Tool: "icemerge", Storage: "local", Rows: rows, Changes: changes, Spread: spread}
	}
	for rep := range reps {
		if err := t.restore(); err != nil {
			return err
		}
		files := slices.Clone(load)
		for i, batch := range batches {
			files = append(files, batch...)
			m := b.icemergeRun(ctx, t, files)
			b.progress(ss[i], rep+1, reps, m)
			ss[i].Runs = append(ss[i].Runs, m)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	for _, s := range ss {
		b.add(s)
	}
	if walls != nil && ss[0].Median != nil && ss[0].Median.ok() {
		walls[spread] = ss[0].Median.Wall
	}
	return nil
}

// naiveScenario runs the naive merge of one batch on the table as the full
// load left it.
func (b *bench) naiveScenario(ctx context.Context, t *localTable, id string, rows, changes int, spread string, load, batch []string) (measure, error) {
	if err := t.restore(); err != nil {
		return measure{}, err
	}
	if err := linkFiles(t.src(), append(slices.Clone(load), batch...)); err != nil {
		return measure{}, err
	}
	s := &scenario{ID: fmt.Sprintf("%s-naive-%s", id, spread), Title: fmt.Sprintf("%s changes into %s rows, %s", count(changes), count(rows), spread),
		Tool: "naive", Storage: "local", Rows: rows, Changes: changes, Spread: spread}
	report := filepath.Join(t.root, "naive-report.json")
	os.Remove(report)
	before := dirSize(t.warehouse())
	m := b.runChild(ctx, b.o.NaiveTimeout, cleanEnv(), b.self, "naive", "-source", t.src(), "-table", "bench.t", "-key", "user_id",
		"-warehouse", "file://"+t.warehouse(), "-catalog-uri", t.catalog(), "-report", report)
	m.AddedBytes = dirSize(t.warehouse()) - before
	if data, err := os.ReadFile(report); err == nil {
		var r naiveReport
		if jsonUnmarshal(data, &r) == nil {
			m.Naive = &r
		}
	}
	if m.TimedOut {
		s.Note = fmt.Sprintf("killed after %s", b.o.NaiveTimeout)
	}
	b.progress(s, 1, 1, m)
	s.Runs = append(s.Runs, m)
	b.add(s)
	return m, ctx.Err()
}

func (b *bench) addRatio(spread string, rows, changes int, naive measure, ice float64) {
	if ice <= 0 || (!naive.ok() && !naive.TimedOut) {
		return
	}
	b.res.Ratios = append(b.res.Ratios, ratio{Spread: spread, Rows: rows, Changes: changes, Naive: naive.Wall, Icemerge: ice,
		Ratio: naive.Wall / ice, LowerOnly: naive.TimedOut})
}

// smallNaive measures icemerge and the naive merge at a size where the
// naive merge finishes, for the ratio.
func (b *bench) smallNaive(ctx context.Context) error {
	o := b.o
	rows, changes := min(o.NaiveSmallRows, o.Rows), min(o.NaiveSmallChanges, o.Changes)
	fmt.Fprintf(b.out, "\n== a naive run timed out: both again at %s rows, %s changes ==\n", count(rows), count(changes))
	p := genParams{Seed: o.Seed, Rows: rows, Changes: changes}
	load, err := b.genBase(p)
	if err != nil {
		return err
	}
	t := b.newTable(fmt.Sprintf("s%d-r%d", o.Seed, rows))
	if err := b.fullLoad(ctx, t, "n-full-load", rows, load, o.LoadPerRun); err != nil {
		return err
	}
	for _, sp := range o.Spreads {
		p.Spread = sp
		batch, err := b.genBatch(p, 1)
		if err != nil {
			return err
		}
		walls := map[string]float64{}
		if err := b.cdcScenarios(ctx, t, "n", rows, changes, sp, load, [][]string{batch}, o.Reps, walls); err != nil {
			return err
		}
		m, err := b.naiveScenario(ctx, t, "n", rows, changes, sp, load, batch)
		if err != nil {
			return err
		}
		b.addRatio(sp, rows, changes, m, walls[sp])
	}
	return nil
}

// largeTable is scenario (d): a clustered batch into a table 10× bigger.
func (b *bench) largeTable(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== large table: %s rows, %s clustered changes ==\n", count(o.RowsLarge), count(o.Changes))
	p := genParams{Seed: o.Seed, Rows: o.RowsLarge, Changes: o.Changes, Spread: spreadClustered}
	load, err := b.genBase(p)
	if err != nil {
		return err
	}
	batch, err := b.genBatch(p, 1)
	if err != nil {
		return err
	}
	t := b.newTable(fmt.Sprintf("s%d-r%d", o.Seed, o.RowsLarge))
	if err := b.fullLoad(ctx, t, "d-full-load", o.RowsLarge, load, cmp.Or(o.LoadPerRun, 10)); err != nil {
		return err
	}
	return b.cdcScenarios(ctx, t, "d", o.RowsLarge, o.Changes, spreadClustered, load, [][]string{batch}, o.Reps, nil)
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
	}
	fmt.Fprintf(b.out, "  %-8s %-6s %-52s %d/%d  wall %8s  RSS %7.0f MiB%s\n", s.Tool, s.Storage, s.Title, rep, reps, fmtDur(m.Wall), m.RSSMiB, status)
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
