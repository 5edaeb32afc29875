package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Phases in the order the runs go through them.
var (
	icemergePhases = []string{"list", "read", "dedupe", "locate", "write_data", "write_deletes", "commit"}
	naivePhases    = []string{"load_table", "read", "dedupe", "delete", "append", "commit"}
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
}

func (b *bench) find(id string) *scenario {
	for _, s := range b.res.Scenarios {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func ptr(v bool) *bool { return &v }

// evaluate sets the targets next to the figures. A missed target is
// reported, never an error.
func (b *bench) evaluate() {
	o := b.o
	sizeNote := ""
	if o.Rows != 10_000_000 || o.Changes != 1_000_000 {
		sizeNote = fmt.Sprintf("the target is for 1M into 10M; measured %s into %s", count(o.Changes), count(o.Rows))
	}
	add := func(t target) { b.res.Targets = append(b.res.Targets, t) }
	maxRSS := 0.0
	for _, sp := range o.Spreads {
		s := b.find(fmt.Sprintf("b-cdc-%s-1", sp))
		t := target{Name: fmt.Sprintf("1 batch of 1M changes into 10M rows, %s", sp), Goal: "≤ 5 s", Note: sizeNote}
		if s != nil && s.Median != nil && s.Median.ok() {
			t.Value, t.Met = fmtDur(s.Median.Wall)+fmt.Sprintf(" (median of %d)", len(s.Runs)), ptr(s.Median.Wall <= 5)
			maxRSS = max(maxRSS, s.MaxRSSMiB)
		} else {
			t.Value = "failed"
			if s != nil {
				t.Met = ptr(false)
			}
		}
		add(t)
	}
	for _, r := range b.res.Ratios {
		t := target{Name: fmt.Sprintf("icemerge vs naive, %s into %s rows, %s", count(r.Changes), count(r.Rows), r.Spread), Goal: "≥ 5× faster"}
		if r.LowerOnly {
			t.Value = fmt.Sprintf("> %.1f× (naive killed after %s)", r.Ratio, fmtDur(r.Naive))
			if r.Ratio >= 5 {
				t.Met = ptr(true)
			} else {
				t.Note = "the naive run was stopped before it finished: raise -naive-timeout for a figure"
			}
		} else {
			t.Value, t.Met = fmt.Sprintf("%.1f× (naive %s, icemerge %s)", r.Ratio, fmtDur(r.Naive), fmtDur(r.Icemerge)), ptr(r.Ratio >= 5)
		}
		add(t)
	}
	if len(b.res.Ratios) == 0 {
		add(target{Name: "icemerge vs naive", Goal: "≥ 5× faster", Value: "not measured", Note: "the naive runs are off (-naive) or failed"})
	}
	t := target{Name: "peak RSS at 1M changes", Goal: "≤ 1 GiB", Note: sizeNote}
	if maxRSS > 0 {
		t.Value, t.Met = fmt.Sprintf("%.0f MiB (highest of the runs)", maxRSS), ptr(maxRSS <= 1024)
	} else {
		t.Value = "not measured"
	}
	add(t)
	t = target{Name: "peak RSS at 10M changes", Goal: "≤ 2 GiB"}
	if s := b.find("e-cdc-uniform-1"); s != nil && s.Median != nil && s.Median.ok() {
		t.Value, t.Met = fmt.Sprintf("%.0f MiB (%s changes into %s rows, wall %s)", s.MaxRSSMiB, count(s.Changes), count(s.Rows), fmtDur(s.Median.Wall)), ptr(s.MaxRSSMiB <= 2048)
		if s.Changes != 10_000_000 {
			t.Note = "the target is for 10M changes"
		}
	} else if s != nil && s.Median != nil && s.Median.RSSLimitHit {
		t.Value, t.Met = fmt.Sprintf("> %d MiB (killed at -rss-limit)", b.o.RSSLimit), ptr(false)
	} else if s != nil {
		t.Value, t.Met = "failed", ptr(false)
	} else {
		t.Value, t.Note = "not measured", "run with -changes-large 10000000 (or -full)"
	}
	add(t)
	t = target{Name: "run with no new files", Goal: "≤ 0.3 s"}
	if s := b.find("c-noop"); s != nil && s.Median != nil && s.Median.ok() {
		t.Value, t.Met = fmtDur(s.Median.Wall)+" (median of 3)", ptr(s.Median.Wall <= 0.3)
	} else {
		t.Value = "not measured"
	}
	add(t)
	t = target{Name: "clustered batch, 10× the table", Goal: "≤ 1.5× the time"}
	large, base := b.find("d-cdc-clustered-1"), b.find("b-cdc-clustered-1")
	switch {
	case large != nil && base != nil && large.Median != nil && base.Median != nil && large.Median.ok() && base.Median.ok():
		r := large.Median.Wall / base.Median.Wall
		t.Value, t.Met = fmt.Sprintf("%.2f× (%s on %s rows, %s on %s rows)", r, fmtDur(large.Median.Wall), count(large.Rows), fmtDur(base.Median.Wall), count(base.Rows)), ptr(r <= 1.5)
	case large != nil:
		t.Value, t.Met = "failed", ptr(false)
	default:
		t.Value, t.Note = "not measured", "run with -rows-large 100000000 (or -full); the clustered spread must be measured too"
	}
	add(t)
}

func (b *bench) printSummary() {
	fmt.Fprintf(b.out, "\n== figures (median wall of the repetitions, highest peak RSS) ==\n")
	w := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\ttool\tstorage\truns\twall\trows/s\tsource MiB\ttable scanned MiB\twritten MiB\tpeak RSS MiB\t")
	for _, s := range b.res.Scenarios {
		m := s.Median
		if m == nil {
			continue
		}
		wall, rate := fmtDur(m.Wall), "-"
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
		src, scanned, written := "-", "-", "-"
		if r := m.Report; r != nil {
			src, scanned, written = fmtMiB(r.BytesRead), fmtMiB(r.TableBytesScanned), fmtMiB(r.BytesWritten)
		} else if n := m.Naive; n != nil {
			src = fmtMiB(n.BytesRead)
		}
		if written == "-" && m.AddedBytes > 0 {
			written = fmtMiB(m.AddedBytes) + "*"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t\n", s.Title, s.Tool, s.Storage, len(s.Runs), wall, rate, src, scanned, written, s.MaxRSSMiB)
	}
	w.Flush()
	fmt.Fprintln(b.out, "(* written: measured on disk, the table's new files; - : not reported)")

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
		}
		if d == nil {
			continue
		}
		var parts []string
		for _, p := range phases {
			parts = append(parts, fmt.Sprintf("%s %.2f", p, d[p]))
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
