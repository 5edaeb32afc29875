package icemerge

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
)

// The texts a person reads: each command returns a result, and these write
// it. The commands themselves print nothing.

// WriteRun writes what a run of one table did (o are its settings).
func WriteRun(w io.Writer, o RunOptions, res *Result) {
	if res == nil {
		return
	}
	for _, k := range res.QuarantineOrder {
		fmt.Fprintf(w, "%s: QUARANTINED %s (skipped, recorded in the bookmark): %s\n", res.Table, k, res.Quarantined[k])
	}
	writeListing(w, res)
	p := res.Plan
	switch res.Outcome {
	case OutcomeNothingNew:
		fmt.Fprintf(w, "%s: nothing new in %s (%d files applied)\n", res.Table, res.Source, res.Applied)
	case OutcomeReloadWaiting:
		fmt.Fprintf(w, "%s: waiting for DMS to finish reloading the table (%d files listed); nothing applied\n", res.Table, res.Left)
	case OutcomeReloaded, OutcomeEmptied:
		fmt.Fprintf(w, "%s: %s: replaced every row with %d files (%d changes, %d keys): %d rows written, %d rows deleted; snapshot %d\n",
			res.Table, res.Outcome, res.Files, p.SourceRows, p.Keys, p.WriteRows, p.DeleteRows, res.Snapshot)
		if res.Left > 0 {
			fmt.Fprintf(w, "%s: %d more files left for the next run\n", res.Table, res.Left)
		}
	case OutcomeDryRun:
		if p != nil {
			writePlan(w, res)
		}
	case OutcomeNoChanges:
		fmt.Fprintf(w, "%s: %d files, %d changes: nothing to change in the table (%d stale)\n", res.Table, res.Files, p.SourceRows, p.Stale)
	case OutcomeCommitted:
		fmt.Fprintf(w, "%s: applied %d files (%d changes, %d keys): %d rows written, %d rows deleted, %d stale changes skipped; snapshot %d\n",
			res.Table, res.Files, p.SourceRows, p.Keys, p.WriteRows, p.DeleteRows, p.Stale, res.Snapshot)
		if res.Left > 0 {
			why := o.Bounds()
			if why == "" {
				why = "their keys sort out of their names' order: a date layout changed"
			}
			fmt.Fprintf(w, "%s: %d more files left for the next run (%s)\n", res.Table, res.Left, why)
		}
		if res.AfterRun != nil && res.AfterRun.Compact != nil {
			writeCompact(w, res.Table, *res.AfterRun.Compact, false)
		}
		if res.AfterRunErr != nil {
			fmt.Fprintf(w, "%s: the compaction after the run failed (the run's commit stands; run icemerge maintain): %v\n", res.Table, res.AfterRunErr)
		}
	}
}

// writePlan writes a dry run's plan.
func writePlan(w io.Writer, res *Result) {
	p := res.Plan
	fmt.Fprintf(w, "plan for %s (dry run: nothing is written)\n", res.Table)
	for _, c := range res.SchemaChanges {
		fmt.Fprintf(w, "  schema: %s\n", c)
	}
	if !res.Exists && res.Schema != nil {
		fmt.Fprintf(w, "  create table with columns:")
		for _, f := range res.Schema.Fields() {
			fmt.Fprintf(w, " %s %s", f.Name, f.Type)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  files: %d\n", len(p.Files))
	for _, f := range p.Files {
		fmt.Fprintf(w, "    %-5s %s: %d rows (I %d, U %d, D %d)\n", f.Kind, f.Name, f.Rows, f.Inserts, f.Updates, f.Deletes)
	}
	fmt.Fprintf(w, "  rows: %d (I %d, U %d, D %d)\n", p.SourceRows, p.SourceInserts, p.SourceUpdates, p.SourceDeletes)
	fmt.Fprintf(w, "  keys: %d; winners I %d, U %d, D %d; stale (table row newer) %d\n", p.Keys, p.WinInserts, p.WinUpdates, p.WinDeletes, p.Stale)
	fmt.Fprintf(w, "  rows to delete: %d in %d data files\n", p.DeleteRows, len(p.Deletes))
	fmt.Fprintf(w, "  rows to write: %d\n", p.WriteRows)
}

// WriteDatabaseRun writes what each table of a whole-database run did.
func WriteDatabaseRun(w io.Writer, o DatabaseOptions, runs []TableRun) {
	for _, r := range runs {
		if r.Err != nil {
			fmt.Fprintf(w, "%s: failed: %v\n", r.Table, r.Err)
			continue
		}
		WriteRun(w, o.RunOptions, r.Result)
	}
}

// WriteMaintain writes what a maintenance did, step by step.
func WriteMaintain(w io.Writer, res *MaintainResult) {
	if res == nil {
		return
	}
	name := res.Table
	if res.DryRun {
		fmt.Fprintf(w, "maintenance of %s (dry run: nothing is changed)\n", name)
	}
	if r := res.Compact; r != nil {
		writeCompact(w, name, *r, res.DryRun)
	}
	if r := res.Manifests; r != nil {
		switch {
		case res.DryRun && r.DataBefore > 1:
			fmt.Fprintf(w, "%s: would merge %d data manifests (delete manifests: %d, left as they are)\n", name, r.DataBefore, r.DeleteBefore)
		case r.Snapshot != 0:
			fmt.Fprintf(w, "%s: manifests: %d data, %d delete → %d data, %d delete; snapshot %d\n", name, r.DataBefore, r.DeleteBefore, r.DataAfter, r.DeleteAfter, r.Snapshot)
		default:
			fmt.Fprintf(w, "%s: manifests: nothing to merge (%d data, %d delete)\n", name, r.DataBefore, r.DeleteBefore)
		}
	}
	if r := res.Expire; r != nil {
		kept := fmt.Sprintf("the newest %d", res.RetainLast)
		if res.ExpireOlderThan > 0 {
			kept += fmt.Sprintf(", those younger than %s", res.ExpireOlderThan)
		}
		if r.Marker != 0 {
			kept += fmt.Sprintf(" and snapshot %d with the last bookmark token", r.Marker)
		}
		if len(r.Expired) == 0 {
			fmt.Fprintf(w, "%s: snapshots: none to expire (%d, older than %s beyond the newest %d go)\n", name, r.Before, res.ExpireOlderThan, res.RetainLast)
		} else {
			verb := "expired"
			if res.DryRun {
				verb = "would expire"
			}
			fmt.Fprintf(w, "%s: %s %d of %d snapshots (kept: %s)\n", name, verb, len(r.Expired), r.Before, kept)
			if res.DryRun {
				for _, id := range r.Expired {
					fmt.Fprintf(w, "  expire snapshot %d\n", id)
				}
			}
		}
	}
	if r := res.Orphans; r != nil {
		if res.DryRun {
			fmt.Fprintf(w, "%s: would remove %d orphan files (%s) older than %s\n", name, len(r.Files), bytesText(r.Bytes), res.OrphanOlderThan)
			for _, f := range r.Files {
				fmt.Fprintf(w, "  orphan %s (%s)\n", f.Path, bytesText(f.Size))
			}
		} else {
			fmt.Fprintf(w, "%s: removed %d orphan files (%s) older than %s\n", name, r.Removed, bytesText(r.Bytes), res.OrphanOlderThan)
		}
	}
}

func writeCompact(w io.Writer, name string, r catalog.CompactResult, dryRun bool) {
	if len(r.Rewritten) == 0 {
		fmt.Fprintf(w, "%s: nothing to compact (%d data files, %d delete files)\n", name, r.DataFiles, r.DeleteFiles)
		return
	}
	if dryRun {
		fmt.Fprintf(w, "%s: would compact %d of %d data files (%s): %d rows kept, %d deleted rows folded; would remove %d of %d delete files\n",
			name, len(r.Rewritten), r.DataFiles, bytesText(r.RewrittenBytes), r.Rows, r.DeletedRows, len(r.DeleteFilesRemoved), r.DeleteFiles)
		for _, p := range r.Rewritten {
			fmt.Fprintf(w, "  rewrite %s\n", p)
		}
		for _, p := range r.DeleteFilesRemoved {
			fmt.Fprintf(w, "  remove delete file %s\n", p)
		}
		return
	}
	fmt.Fprintf(w, "%s: compacted %d of %d data files (%s) into %d (%s): %d rows kept, %d deleted rows folded; removed %d of %d delete files; snapshot %d\n",
		name, len(r.Rewritten), r.DataFiles, bytesText(r.RewrittenBytes), r.Added, bytesText(r.AddedBytes), r.Rows, r.DeletedRows,
		len(r.DeleteFilesRemoved), r.DeleteFiles, r.Snapshot)
}

// bytesText is a byte count for people: 812 B, 41.2 KiB, 3.0 MiB.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// WriteStatus writes a table's status for a person.
func WriteStatus(w io.Writer, s TableStatus) {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(w, "status of %s at %s\n", s.Table, ts(s.At))
	fmt.Fprintf(w, "  source:        %s\n", s.Source)
	switch snap := s.Snapshot; {
	case !s.Exists:
		fmt.Fprintln(w, "  table:         does not exist yet (the first run creates it)")
	case snap == nil:
		fmt.Fprintln(w, "  table:         no snapshot yet")
	default:
		by := "another writer (no icemerge token)"
		switch {
		case snap.Token != "":
			by = "run " + snap.Token
		case snap.Maintenance != "":
			by = "icemerge maintain (" + snap.Maintenance + ")"
		}
		fmt.Fprintf(w, "  last snapshot: %d at %s by %s", snap.ID, ts(snap.Time), by)
		if snap.RowsWritten != nil && snap.RowsDeleted != nil {
			fmt.Fprintf(w, ": %d rows written, %d rows deleted", *snap.RowsWritten, *snap.RowsDeleted)
		}
		if snap.SourceFiles != nil {
			fmt.Fprintf(w, " from %s", count(int(*snap.SourceFiles), "file"))
		}
		fmt.Fprintln(w)
	}
	b := s.Bookmark
	switch {
	case !b.Saved:
		fmt.Fprintln(w, "  last run:      none (no bookmark saved yet)")
	case b.LastRun != nil:
		fmt.Fprintf(w, "  last run:      %s (%s; bookmark %s, updated %s)\n", ts(*b.LastRun), count(int(b.Runs), "committed run"), b.State, ts(*b.Updated))
	default:
		fmt.Fprintf(w, "  last run:      none since the bookmark was reset (bookmark %s, updated %s)\n", b.State, ts(*b.Updated))
	}
	if b.Settled != "" {
		fmt.Fprintf(w, "  settled:       every CDC file named up to %s (%s)\n", b.Settled, count(b.SettledFiles, "file"))
	}
	if c := b.Check; c != nil {
		if c.Gone > 0 {
			fmt.Fprintf(w, "  gone:          %s applied before were gone at %s (%s)\n", count(c.Gone, "file"), ts(c.At), strings.Join(c.GoneKeys, ", "))
		}
		if c.Late > 0 {
			fmt.Fprintf(w, "  late:          %s arrived after newer ones, found at %s (%s)\n", count(c.Late, "file"), ts(c.At), strings.Join(c.LateKeys, ", "))
		}
	}
	if r := b.Replaced; r != nil {
		fmt.Fprintf(w, "  replaced:      every row, by run %s at %s (%s, %s)\n", r.Token, ts(r.At), r.Reason, count(r.Files, "file"))
	}
	if r := b.Rewound; r != nil {
		fmt.Fprintf(w, "  rewound:       to %s at %s (%s forgotten)\n", r.To.Format(time.RFC3339Nano), ts(r.At), count(r.Files, "file"))
	}
	p := s.Pending
	if p.Files == 0 {
		fmt.Fprintln(w, "  pending:       none (every file is applied)")
		fmt.Fprintln(w, "  lag:           0s")
	} else {
		fmt.Fprintf(w, "  pending:       %s, %s, from %s on\n", count(p.Files, "file"), sizeText(p.Bytes), p.First)
		fmt.Fprintf(w, "  lag:           %s (oldest pending file %s, modified %s)\n", p.Lag().Round(time.Second), p.Oldest, ts(*p.OldestModified))
	}
	if s.Quarantined > 0 {
		fmt.Fprintf(w, "  quarantined:   %s (skipped as bad input; `icemerge bookmark show` lists them)\n", count(s.Quarantined, "file"))
	} else {
		fmt.Fprintln(w, "  quarantined:   none")
	}
	if s.Locked {
		fmt.Fprintf(w, "  lock:          held by %s until %s (a run is in progress)\n", s.Lock.Owner, ts(s.Lock.Expires))
	} else {
		fmt.Fprintln(w, "  lock:          free")
	}
	if r := s.Reload; r != nil {
		state := "waiting for the load to complete (a CDC file written after it)"
		if r.Complete {
			state = "complete: the next run replaces the table's rows with it"
		}
		fmt.Fprintf(w, "  reload:        DMS wrote a new full load of %s: %s\n", count(len(r.Loads), "file"), state)
	}
	if s.NewestGone != "" {
		fmt.Fprintf(w, "  gone:          the newest applied file %s is gone from the source (the next run lists it whole)\n", s.NewestGone)
	}
	if s.Problem != "" {
		fmt.Fprintf(w, "  problem:       %s\n", s.Problem)
	}
}

// count writes "1 file", "2 files".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// sizeText writes a byte count for a person: 1234567 bytes (1.2 MiB).
func sizeText(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v, u = v/1024, u+1
	}
	return fmt.Sprintf("%d bytes (%.1f %s)", n, v, units[u])
}

// WriteRewind writes what a rewind did and what the next run processes.
func WriteRewind(w io.Writer, res *RewindResult) {
	if !res.Found {
		fmt.Fprintf(w, "bookmark of %s: none saved yet, nothing to rewind: the next run processes every file\n", res.Table)
		return
	}
	r := res.Rewinding
	to := res.To.Format(time.RFC3339Nano)
	if !res.Saved {
		fmt.Fprintf(w, "bookmark of %s: no applied CDC file is named after %s; nothing to rewind\n", res.Table, to)
	} else {
		fmt.Fprintf(w, "bookmark of %s rewound to %s: forgot %s named after it", res.Table, to, count(len(r.Files), "applied file"))
		if r.Quarantined > 0 {
			fmt.Fprintf(w, " (%d of them quarantined: they are read again)", r.Quarantined)
		}
		fmt.Fprintf(w, "; kept %d (full load and earlier files)\n", r.Kept)
		if r.Settled != r.SettledBefore {
			fmt.Fprintf(w, "  settled now up to %s (up to %s before)\n", orStart(r.Settled), r.SettledBefore)
		}
	}
	if !res.Listed {
		if len(r.Files) > 0 {
			fmt.Fprintf(w, "  the next run re-applies %s from %s on, and any new ones (pass --source to count them)\n", count(len(r.Files), "file"), r.Files[0])
		}
		return
	}
	if len(res.Next) == 0 {
		fmt.Fprintf(w, "  the next run has nothing to process in %s\n", res.Source)
		return
	}
	var bytes int64
	for _, obj := range res.Next {
		bytes += obj.Size
	}
	fmt.Fprintf(w, "  the next run processes %s, %s, from %s on (%d of them forgotten by this rewind)\n",
		count(len(res.Next), "file"), sizeText(bytes), res.Next[0].Key, res.Reapplied)
}

func orStart(key string) string {
	if key == "" {
		return "nothing (the whole folder is listed)"
	}
	return key
}

// WriteReset writes what a reset did.
func WriteReset(w io.Writer, res *ResetResult) {
	fmt.Fprintf(w, "bookmark of %s reset (it had %d applied files): the next run processes every file again\n", res.Table, len(res.Before.Files))
	fmt.Fprintf(w, "  %s\n", resetNext(res.Before))
}

// resetNext says what the next run processes after a reset of st.
func resetNext(st bookmark.State) string {
	var b strings.Builder
	b.WriteString("the next run lists the whole source folder and applies every file, the full load first")
	if st.Settled != "" {
		fmt.Fprintf(&b, ", settled history (named up to %s) included", st.Settled)
	}
	b.WriteString("; rows already current stay unchanged")
	if n := len(st.Quarantined); n > 0 {
		fmt.Fprintf(&b, "; the %d quarantined files are read again", n)
	}
	if n := len(st.Tombstones); n > 0 {
		fmt.Fprintf(&b, "; the %d tombstones of deleted keys are forgotten", n)
	}
	return b.String()
}

// WriteBookmark writes a table's bookmark (`icemerge bookmark show`);
// files lists every applied file.
func WriteBookmark(w io.Writer, table, location string, st bookmark.State, saved, files bool) {
	fmt.Fprintf(w, "bookmark of %s at %s\n", table, location)
	if !saved {
		fmt.Fprintln(w, "  none saved yet: the next run processes every file")
		return
	}
	tok := st.Token
	if tok == "" {
		tok = "(none: the next run processes every file)"
	}
	fmt.Fprintf(w, "  token: %s\n  runs: %d\n  applied files: %d\n", tok, st.Runs, len(st.Files))
	if st.Settled != "" {
		fmt.Fprintf(w, "  settled: every CDC file named up to %s (%d recorded; runs list what is named after it)\n", st.Settled, st.SettledFiles.Len())
	}
	fmt.Fprintf(w, "  updated: %s\n", st.Updated.Format(time.RFC3339))
	if st.ResetAt != nil {
		fmt.Fprintf(w, "  reset: %s\n", st.ResetAt.Format(time.RFC3339))
	}
	if p := st.Pending; p != nil {
		fmt.Fprintf(w, "  pending: run %s started %s with %d files (the next run checks whether it committed)\n",
			p.Token, p.Started.Format(time.RFC3339), len(p.Files))
	}
	if n := len(st.Quarantined); n > 0 {
		fmt.Fprintf(w, "  quarantined files: %d (skipped as bad input; replace the object to have it applied, or reset the bookmark)\n", n)
		for _, k := range slices.Sorted(maps.Keys(st.Quarantined)) {
			q := st.Quarantined[k]
			fmt.Fprintf(w, "    %s\t%d bytes\tquarantined %s: %s\n", k, q.Size, q.At.Format(time.RFC3339), q.Reason)
		}
	}
	if files {
		for _, k := range st.SortedFiles() {
			fi := st.Files[k]
			fmt.Fprintf(w, "  %s\t%d bytes\t%s\n", k, fi.Size, fi.ModTime.Format(time.RFC3339))
		}
	}
}

// WriteRows writes at most limit of a table's rows, in key order.
func WriteRows(w io.Writer, rows *Rows, limit int) error {
	snap := "none"
	if rows.Snapshot != 0 {
		snap = fmt.Sprint(rows.Snapshot)
	}
	fmt.Fprintf(w, "%s: %d rows (snapshot %s)\n", rows.Table, rows.Total, snap)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var head []string
	for _, f := range rows.Schema.Fields() {
		head = append(head, f.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for i, r := range rows.Order {
		if i == limit {
			break
		}
		cells := make([]string, len(rows.Columns))
		for c, col := range rows.Columns {
			cells[c] = cell(col, r)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rows.Total > limit {
		fmt.Fprintf(w, "… %d more rows (raise --limit)\n", rows.Total-limit)
	}
	return nil
}

func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	if ts, ok := a.(*array.Timestamp); ok {
		unit := ts.DataType().(*arrow.TimestampType).Unit
		t := ts.Value(i).ToTime(unit)
		if ts.DataType().(*arrow.TimestampType).TimeZone != "" {
			return t.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
		}
		return t.UTC().Format("2006-01-02 15:04:05.999999")
	}
	return a.ValueStr(i)
}
