package main

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Phases in the order the runs go through them.
var (
	icemergePhases = []string{"list", "read", "dedupe", "locate", "write_data", "write_deletes", "commit"}
	naivePhases    = []string{"load_table", "read", "dedupe", "delete", "append", "commit"}
	duckdbPhases   = []string{"open", "load", "merge"}
)

func (b *bench) printMachine() {
	m := b.res.Machine
	fmt.Fprintf(b.out, "icemerge bench: %s, %d cores (GOMAXPROCS %d), %s, %s; load average %s\n", m.CPU, m.Cores, m.GOMAXPROCS, m.MemTotal, m.GoVersion, m.LoadAvgStart)
	rev := m.IcemergeRevision
	if rev == "" {
		rev = m.GitCommit
	}
	if m.IcemergeModified || m.GitDirty {
		rev += " (with uncommitted edits)"
	}
	fmt.Fprintf(b.out, "binary %s, revision %s\n", b.o.Icemerge, rev)
	if b.duckdb {
		fmt.Fprintf(b.out, "DuckDB (duckdb-go %s) as the peer, %d threads: the same merge as a full rewrite to zstd Parquet\n", duckdbModuleVersion(), b.o.DuckDBThreads)
	}
}

func (b *bench) find(group, tool string) *scenario {
	for _, s := range b.res.Scenarios {
		if s.Group == group && s.Tool == tool {
			return s
		}
	}
	return nil
}

// median is a scenario's median run when it succeeded.
func (s *scenario) median() *measure {
	if s == nil || s.Median == nil || !s.Median.ok() {
		return nil
	}
	return s.Median
}

// vsDuckDB is a scenario's median wall as a multiple of DuckDB's on the
// same input; 0 when either is missing.
func (b *bench) vsDuckDB(s *scenario) float64 {
	d := b.find(s.Group, "duckdb").median()
	if m := s.median(); m != nil && d != nil && d.Wall > 0 {
		return m.Wall / d.Wall
	}
	return 0
}

func ptr(v bool) *bool { return &v }

// Issue 17's targets.
const (
	targetUniformVsDuckDB   = 0.6
	targetClusteredVsDuckDB = 0.3
	targetRSS1M             = 512 // MiB
	targetRSS10M            = 768 // MiB
	targetNoop              = 0.2 // s
	targetSmallFiles        = 2.0 // × one file
	targetVsNaive           = 5.0
	targetTableGrowth       = 1.2
)

// evaluate sets the targets next to the figures and checks that icemerge
// and DuckDB left tables of the same rows. A missed target is reported,
// never an error.
func (b *bench) evaluate() {
	o := b.o
	sizeNote := ""
	if o.Rows != 10_000_000 || o.Changes != 1_000_000 {
		sizeNote = fmt.Sprintf("the target is for 1M into 10M; measured %s into %s", count(o.Changes), count(o.Rows))
	}
	add := func(t target) { b.res.Targets = append(b.res.Targets, t) }
	notMeasured := func(t target, note string) {
		t.Value, t.Note = "not measured", strings.TrimSpace(t.Note+" "+note)
		add(t)
	}

	maxRSS := 0.0
	for _, sp := range o.Spreads {
		goal := map[string]float64{spreadUniform: targetUniformVsDuckDB, spreadClustered: targetClusteredVsDuckDB}[sp]
		t := target{Name: fmt.Sprintf("1M changes into 10M rows, %s keys: wall", sp), Goal: fmt.Sprintf("≤ %.1f× DuckDB", goal), Note: sizeNote}
		ice := b.find(groupID("b", sp, 1), "icemerge")
		if ice != nil {
			maxRSS = max(maxRSS, ice.MaxRSSMiB)
		}
		m, d := ice.median(), b.find(groupID("b", sp, 1), "duckdb").median()
		switch {
		case m != nil && d != nil:
			r := m.Wall / d.Wall
			t.Value, t.Met = fmt.Sprintf("%.2f× (icemerge %s, DuckDB %s)", r, fmtDur(m.Wall), fmtDur(d.Wall)), ptr(r <= goal)
			if d.CPU > 0 {
				t.Note = strings.TrimSpace(fmt.Sprintf("CPU %.2f× (%s vs %s) %s", m.CPU/d.CPU, fmtDur(m.CPU), fmtDur(d.CPU), t.Note))
			}
		case ice == nil:
			notMeasured(t, "")
			continue
		case m == nil:
			t.Value, t.Met = "icemerge failed", ptr(false)
		default:
			t.Value = fmt.Sprintf("icemerge %s; DuckDB not measured", fmtDur(m.Wall))
		}
		add(t)
	}

	t := target{Name: "peak RSS at 1M changes", Goal: fmt.Sprintf("≤ %d MiB", targetRSS1M), Note: sizeNote}
	if maxRSS > 0 {
		t.Value, t.Met = fmt.Sprintf("%.0f MiB (highest of the runs)", maxRSS), ptr(maxRSS <= targetRSS1M)
		add(t)
	} else {
		notMeasured(t, "")
	}

	t = target{Name: "peak RSS at a 10M-change batch", Goal: fmt.Sprintf("≤ %d MiB", targetRSS10M)}
	if s := b.find(groupID("e", spreadUniform, 1), "icemerge"); s != nil {
		switch m := s.Median; {
		case s.median() != nil:
			t.Value, t.Met = fmt.Sprintf("%.0f MiB (%s changes into %s rows, wall %s)", s.MaxRSSMiB, count(s.Changes), count(s.Rows), fmtDur(m.Wall)), ptr(s.MaxRSSMiB <= targetRSS10M)
			if s.Changes != 10_000_000 {
				t.Note = "the target is for 10M changes"
			}
		case m != nil && m.RSSLimitHit:
			t.Value, t.Met = fmt.Sprintf("> %d MiB (killed at -rss-limit)", b.o.RSSLimit), ptr(false)
		default:
			t.Value, t.Met = "failed", ptr(false)
		}
		add(t)
	} else {
		note := "run with -changes-large 10000000 (or -full)"
		if s := b.find(groupID("f-one", spreadUniform, 1), "icemerge"); s.median() != nil {
			note += fmt.Sprintf("; the one-file run of %s changes peaked at %.0f MiB", count(s.Changes), s.MaxRSSMiB)
		}
		notMeasured(t, note)
	}

	t = target{Name: "run with no new files", Goal: fmt.Sprintf("≤ %.1f s", targetNoop)}
	if s := b.find("c-noop", "icemerge"); s.median() != nil {
		t.Value, t.Met = fmtDur(s.Median.Wall)+fmt.Sprintf(" (median of %d)", len(s.Runs)), ptr(s.Median.Wall <= targetNoop)
		add(t)
	} else {
		notMeasured(t, "")
	}

	t = target{Name: fmt.Sprintf("%d small CDC files vs the same rows in one file", o.SmallFiles), Goal: fmt.Sprintf("≤ %.0f× the time", targetSmallFiles)}
	small, one := b.find(groupID("f-small", spreadUniform, 1), "icemerge"), b.find(groupID("f-one", spreadUniform, 1), "icemerge")
	switch {
	case small.median() != nil && one.median() != nil:
		r := small.Median.Wall / one.Median.Wall
		t.Value, t.Met = fmt.Sprintf("%.2f× (%s vs %s, %s changes)", r, fmtDur(small.Median.Wall), fmtDur(one.Median.Wall), count(small.Changes)), ptr(r <= targetSmallFiles)
		ds, do := b.find(small.Group, "duckdb").median(), b.find(one.Group, "duckdb").median()
		if ds != nil && do != nil {
			t.Note = fmt.Sprintf("DuckDB: %.2f× (%s vs %s)", ds.Wall/do.Wall, fmtDur(ds.Wall), fmtDur(do.Wall))
		}
		add(t)
	case small != nil || one != nil:
		t.Value, t.Met = "failed", ptr(false)
		add(t)
	default:
		notMeasured(t, "-small-files 0, or the legacy shape")
	}

	b.res.Ratios = nil
	for _, s := range b.res.Scenarios {
		if s.Tool != "naive" {
			continue
		}
		ice := b.find(s.Group, "icemerge").median()
		if ice == nil || s.Median == nil || (s.median() == nil && !s.Median.TimedOut) {
			continue
		}
		r := ratio{Spread: s.Spread, Rows: s.Rows, Changes: s.Changes, Naive: s.Median.Wall, Icemerge: ice.Wall, Ratio: s.Median.Wall / ice.Wall, LowerOnly: s.Median.TimedOut}
		b.res.Ratios = append(b.res.Ratios, r)
		t := target{Name: fmt.Sprintf("icemerge vs naive, %s into %s rows, %s", count(r.Changes), count(r.Rows), r.Spread), Goal: fmt.Sprintf("≥ %.0f× faster", targetVsNaive)}
		if r.LowerOnly {
			t.Value = fmt.Sprintf("> %.1f× (naive killed after %s)", r.Ratio, fmtDur(r.Naive))
			if r.Ratio >= targetVsNaive {
				t.Met = ptr(true)
			} else {
				t.Note = "the naive run was stopped before it finished: raise -naive-timeout for a figure"
			}
		} else {
			t.Value, t.Met = fmt.Sprintf("%.1f× (naive %s, icemerge %s)", r.Ratio, fmtDur(r.Naive), fmtDur(r.Icemerge)), ptr(r.Ratio >= targetVsNaive)
		}
		add(t)
	}
	if len(b.res.Ratios) == 0 {
		notMeasured(target{Name: "icemerge vs naive", Goal: fmt.Sprintf("≥ %.0f× faster", targetVsNaive)}, "the naive runs are off (-naive) or failed")
	}

	t = target{Name: "clustered batch, 10× the table", Goal: fmt.Sprintf("≤ %.1f× the time", targetTableGrowth)}
	large, base := b.find(groupID("d", spreadClustered, 1), "icemerge"), b.find(groupID("b", spreadClustered, 1), "icemerge")
	switch {
	case large.median() != nil && base.median() != nil:
		r := large.Median.Wall / base.Median.Wall
		t.Value, t.Met = fmt.Sprintf("%.2f× (%s on %s rows, %s on %s rows)", r, fmtDur(large.Median.Wall), count(large.Rows), fmtDur(base.Median.Wall), count(base.Rows)), ptr(r <= targetTableGrowth)
		dl, db := b.find(large.Group, "duckdb").median(), b.find(base.Group, "duckdb").median()
		if dl != nil && db != nil {
			t.Note = fmt.Sprintf("DuckDB: %.2f×", dl.Wall/db.Wall)
		}
		add(t)
	case large != nil:
		t.Value, t.Met = "failed", ptr(false)
		add(t)
	default:
		notMeasured(t, "run with -rows-large 100000000 (or -full); the clustered spread must be measured too")
	}

	// The row counts of every input both merged.
	b.res.RowChecks = nil
	for _, s := range b.res.Scenarios {
		if s.Tool != "icemerge" || s.Storage != "local" {
			continue
		}
		d := b.find(s.Group, "duckdb")
		if d == nil {
			continue
		}
		for i, m := range s.Runs {
			if i >= len(d.Runs) || m.TableRows == nil || d.Runs[i].TableRows == nil {
				continue
			}
			ir, dr := *m.TableRows, *d.Runs[i].TableRows
			b.res.RowChecks = append(b.res.RowChecks, rowCheck{Input: s.Group, Icemerge: ir, DuckDB: dr, Same: ir == dr})
		}
	}
}

func (b *bench) printSummary() {
	fmt.Fprintf(b.out, "\n== figures (median wall of the repetitions, highest peak RSS; × DuckDB: wall over DuckDB's on the same files in this run) ==\n")
	w := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\ttool\tstorage\truns\twall\t× DuckDB\tCPU\t× DuckDB\trows/s\tsource MiB\ttable read MiB\twritten MiB\tpeak RSS MiB\ttable rows")
	for _, s := range b.res.Scenarios {
		m := s.Median
		if m == nil {
			continue
		}
		wall, rate, vs := fmtDur(m.Wall), "-", "-"
		switch {
		case m.RSSLimitHit:
			wall = "killed (RSS)"
		case m.TimedOut:
			wall = "> " + fmtDur(m.Timeout)
		case m.Exit != 0:
			wall = "failed"
		case s.Changes > 0 && m.Wall > 0:
			rate = count(int(float64(s.Changes) / m.Wall))
		}
		cpu, cpuVs := fmtDur(m.CPU), "-"
		if r := b.vsDuckDB(s); r > 0 {
			vs = fmt.Sprintf("%.2f×", r)
		} else if d := b.find(s.Group, "duckdb").median(); m.TimedOut && d != nil {
			vs = fmt.Sprintf("> %.1f×", m.Timeout/d.Wall)
		}
		if d := b.find(s.Group, "duckdb").median(); d != nil && s.median() != nil && d.CPU > 0 {
			cpuVs = fmt.Sprintf("%.2f×", m.CPU/d.CPU)
		}
		if !m.ok() {
			cpu = "-"
		}
		src, scanned, written := "-", "-", "-"
		switch {
		case m.Report != nil:
			r := m.Report
			src, scanned, written = fmtMiB(r.BytesRead), fmtMiB(r.TableBytesScanned), fmtMiB(r.BytesWritten)
		case m.Naive != nil:
			src = fmtMiB(m.Naive.BytesRead)
		case m.DuckDB != nil:
			src, written = fmtMiB(m.DuckDB.BytesRead), fmtMiB(m.DuckDB.BytesWritten)
			if m.DuckDB.TableBytes > 0 {
				scanned = fmtMiB(m.DuckDB.TableBytes)
			}
		}
		if written == "-" && m.AddedBytes > 0 {
			written = fmtMiB(m.AddedBytes) + "*"
		}
		rows := "-"
		if m.TableRows != nil {
			rows = strconv.FormatInt(*m.TableRows, 10)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\n", s.Title, s.Tool, s.Storage, len(s.Runs), wall, vs, cpu, cpuVs, rate, src, scanned, written, s.MaxRSSMiB, rows)
	}
	w.Flush()
	fmt.Fprintln(b.out, "(CPU: user + system time of the median run, less sensitive than wall to other work on a shared machine. * written: measured on disk, the table's new files; - : not reported. DuckDB reads its whole table file and writes a new one)")

	if len(b.res.RowChecks) > 0 {
		fmt.Fprintf(b.out, "\n== row counts after the same merge: icemerge's table vs DuckDB's (a sanity check of the comparison) ==\n")
		for i := 0; i < len(b.res.RowChecks); {
			c, runs, same := b.res.RowChecks[i], 0, 0
			for ; i < len(b.res.RowChecks) && b.res.RowChecks[i].Input == c.Input; i++ {
				runs++
				if r := b.res.RowChecks[i]; r.Same {
					same++
				} else {
					fmt.Fprintf(b.out, "  %-22s icemerge %12d  DuckDB %12d  DIFFER by %+d\n", r.Input, r.Icemerge, r.DuckDB, r.Icemerge-r.DuckDB)
				}
			}
			if same > 0 {
				fmt.Fprintf(b.out, "  %-22s icemerge %12d  DuckDB %12d  same (%d of %d runs)\n", c.Input, c.Icemerge, c.DuckDB, same, runs)
			}
		}
	}

	fmt.Fprintf(b.out, "\n== phases of the median run (seconds; outside: wall minus the run's own total, i.e. process start and opening the catalog) ==\n")
	for _, s := range b.res.Scenarios {
		m := s.Median
		if m == nil {
			continue
		}
		var d map[string]float64
		phases := icemergePhases
		extra := ""
		switch {
		case m.Report != nil:
			d = m.Report.Durations
			r := m.Report
			extra = fmt.Sprintf("  [%s: %d files, %d rows read, %d keys, %d collapsed; +%d ~%d -%d rows, %d stale; table files scanned %d, pruned %d]",
				r.Outcome, r.Files, r.RowsRead, r.Keys, r.Duplicates, r.RowsInserted, r.RowsUpdated, r.RowsDeleted, r.Stale, r.TableFilesScanned, r.TableFilesPruned)
		case m.Naive != nil:
			d, phases = m.Naive.Durations, naivePhases
			extra = fmt.Sprintf("  [%d files, %d rows read, In filter of %d keys, %d rows appended]", m.Naive.Files, m.Naive.RowsRead, m.Naive.Keys, m.Naive.Appended)
		case m.DuckDB != nil:
			d, phases = m.DuckDB.Durations, duckdbPhases
			extra = fmt.Sprintf("  [%d files, %d rows written]", m.DuckDB.Files, m.DuckDB.RowsWritten)
		}
		if d == nil {
			continue
		}
		var parts []string
		for _, p := range phases {
			if v, ok := d[p]; ok {
				parts = append(parts, fmt.Sprintf("%s %.2f", p, v))
			}
		}
		// What the wall has beyond the run's own total: process start,
		// flag parsing, opening the catalog.
		outside := ""
		if m.Wall > d["total"] {
			outside = fmt.Sprintf(" (+%.2f outside)", m.Wall-d["total"])
		}
		fmt.Fprintf(b.out, "  %-8s %-6s %-44s total %.2f%s: %s%s\n", s.Tool, s.Storage, s.Title, d["total"], outside, strings.Join(parts, ", "), extra)
	}

	fmt.Fprintf(b.out, "\n== targets (reported, never enforced) ==\n")
	w = tabwriter.NewWriter(b.out, 0, 0, 2, ' ', 0)
	for _, t := range b.res.Targets {
		met := "not measured"
		if t.Met != nil {
			met = map[bool]string{true: "met", false: "MISSED"}[*t.Met]
		}
		note := ""
		if t.Note != "" {
			note = "(" + t.Note + ")"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", t.Name, t.Goal, t.Value, met, note)
	}
	w.Flush()
	for _, n := range b.res.Notes {
		fmt.Fprintln(b.out, "NOTE:", n)
	}
}

// count prints n as 1M, 250k or 1234.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/1e6), ".0") + "M"
	case n >= 1_000_000:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func fmtDur(s float64) string {
	switch {
	case s >= 120:
		return fmt.Sprintf("%.1fm", s/60)
	case s >= 10:
		return fmt.Sprintf("%.1fs", s)
	}
	return fmt.Sprintf("%.2fs", s)
}

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f", mib(b)) }

// duckdbModuleVersion is the duckdb-go module this binary was built with.
func duckdbModuleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/duckdb/duckdb-go/v2" {
				return d.Version
			}
		}
	}
	return "unknown"
}
