package icemerge

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
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
	for _, step := range AllSteps {
		if why, ok := res.Declined[step]; ok {
			fmt.Fprintf(w, "%s: %s declined: %s\n", name, step, why)
		}
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
	switch l := s.Lock; {
	case l != nil && l.State == bookmark.LockStuck:
		fmt.Fprintf(w, "  lock:          stuck: %s\n", l.Detail)
	case s.Locked:
		fmt.Fprintf(w, "  lock:          held by %s until %s (a run is in progress)\n", l.Owner, ts(l.Expires))
	case l != nil && l.State == bookmark.LockDead:
		fmt.Fprintf(w, "  lock:          free: %s\n", l.Detail)
	default:
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
	if n := st.Tombstones.Len(); n > 0 {
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

// WriteRows writes the rows Show read, in key order, as a table for
// people (format "table" or ""), JSON lines or CSV.
func WriteRows(w io.Writer, rows *Rows, format string) error {
	switch format {
	case FormatJSON:
		return writeRowsJSON(w, rows)
	case FormatCSV:
		return writeRowsCSV(w, rows)
	}
	snap := "none"
	if rows.Snapshot != 0 {
		snap = fmt.Sprint(rows.Snapshot)
	}
	what := "rows"
	if rows.Where != "" {
		what = "rows where " + rows.Where
	}
	switch {
	case !rows.More:
		fmt.Fprintf(w, "%s: %d %s (snapshot %s)\n", rows.Table, rows.Len(), what, snap)
	case rows.TotalKnown:
		fmt.Fprintf(w, "%s: the first %d of %d %s read (snapshot %s)\n", rows.Table, rows.Len(), rows.Total, what, snap)
	default:
		fmt.Fprintf(w, "%s: the first %d %s read (snapshot %s)\n", rows.Table, rows.Len(), what, snap)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var head []string
	for _, f := range rows.Schema.Fields() {
		head = append(head, f.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows.Order {
		cells := make([]string, len(rows.Columns))
		for c, col := range rows.Columns {
			cells[c] = cell(col, r)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rows.More {
		if rows.TotalKnown {
			fmt.Fprintf(w, "… %d more rows (raise --limit, or 0 for all)\n", rows.Total-int64(rows.Len()))
		} else {
			fmt.Fprintln(w, "… more rows (raise --limit, or 0 for all)")
		}
	}
	return nil
}

// writeRowsJSON writes one JSON object per row: numbers as numbers, times
// as RFC 3339 strings, decimals as strings (exact), binary as base64.
func writeRowsJSON(w io.Writer, rows *Rows) error {
	fields := rows.Schema.Fields()
	for _, r := range rows.Order {
		var b bytes.Buffer
		b.WriteByte('{')
		for c, col := range rows.Columns {
			if c > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(fields[c].Name)
			b.Write(k)
			b.WriteByte(':')
			v, err := json.Marshal(jsonCell(col, r))
			if err != nil {
				return err
			}
			b.Write(v)
		}
		b.WriteString("}\n")
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// jsonCell is a cell as a JSON value.
func jsonCell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch c := a.(type) {
	case *array.Boolean:
		return c.Value(i)
	case *array.Int8:
		return c.Value(i)
	case *array.Int16:
		return c.Value(i)
	case *array.Int32:
		return c.Value(i)
	case *array.Int64:
		return c.Value(i)
	case *array.Uint8:
		return c.Value(i)
	case *array.Uint16:
		return c.Value(i)
	case *array.Uint32:
		return c.Value(i)
	case *array.Uint64:
		return c.Value(i)
	case *array.Float32:
		return c.Value(i)
	case *array.Float64:
		return c.Value(i)
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Binary:
		return c.Value(i)
	case *array.Timestamp:
		typ := c.DataType().(*arrow.TimestampType)
		return c.Value(i).ToTime(typ.Unit).UTC().Format(time.RFC3339Nano)
	}
	return cell(a, i)
}

// writeRowsCSV writes a header line, then one line per row; NULL is an
// empty field.
func writeRowsCSV(w io.Writer, rows *Rows) error {
	cw := csv.NewWriter(w)
	var head []string
	for _, f := range rows.Schema.Fields() {
		head = append(head, f.Name)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, r := range rows.Order {
		rec := make([]string, len(rows.Columns))
		for c, col := range rows.Columns {
			if !col.IsNull(r) {
				rec[c] = cell(col, r)
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
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

// BookmarkReport is what `icemerge bookmark show --json` prints.
type BookmarkReport struct {
	Table    string `json:"table"`
	Location string `json:"location"`
	Saved    bool   `json:"saved"`
	Token    string `json:"token,omitempty"`
	Runs     int64  `json:"runs"`
	// AppliedFiles counts the applied files; Files lists them with --files.
	AppliedFiles int                             `json:"applied_files"`
	Settled      string                          `json:"settled,omitempty"`
	Updated      *time.Time                      `json:"updated,omitempty"`
	ResetAt      *time.Time                      `json:"reset_at,omitempty"`
	Pending      *BookmarkPending                `json:"pending,omitempty"`
	Quarantined  map[string]bookmark.Quarantined `json:"quarantined"`
	Files        map[string]bookmark.FileInfo    `json:"files,omitempty"`
}

// BookmarkPending is a run that saved its files and may have committed.
type BookmarkPending struct {
	Token   string    `json:"token"`
	Started time.Time `json:"started"`
	Files   int       `json:"files"`
}

// BookmarkReportOf is a table's bookmark for scripts; files lists every
// applied file.
func BookmarkReportOf(table, location string, st bookmark.State, saved, files bool) BookmarkReport {
	r := BookmarkReport{Table: table, Location: location, Saved: saved, Quarantined: map[string]bookmark.Quarantined{}}
	if !saved {
		return r
	}
	r.Token, r.Runs, r.AppliedFiles, r.Settled, r.ResetAt = st.Token, st.Runs, appliedCount(st), st.Settled, st.ResetAt
	if !st.Updated.IsZero() {
		u := st.Updated
		r.Updated = &u
	}
	if p := st.Pending; p != nil {
		r.Pending = &BookmarkPending{Token: p.Token, Started: p.Started, Files: len(p.Files)}
	}
	maps.Copy(r.Quarantined, st.Quarantined)
	if files {
		r.Files = st.Files
	}
	return r
}

// WriteCheck writes what `icemerge check` found: one line per check, ok,
// FAIL or skip, with the exact error and the permission it needs.
func WriteCheck(w io.Writer, table string, res []CheckResult) {
	fmt.Fprintf(w, "check of %s, with the settings of a run\n", table)
	failed := 0
	for _, r := range res {
		mark := "ok  "
		switch {
		case r.Skipped:
			mark = "skip"
		case !r.OK:
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "  %s  %-27s %s\n", mark, r.Name, r.Target)
		fmt.Fprintf(w, "        %s\n", r.Detail)
		if r.Needs != "" && (!r.OK || r.Skipped) {
			fmt.Fprintf(w, "        needs %s\n", r.Needs)
		}
	}
	if failed == 0 {
		fmt.Fprintf(w, "all %d checks passed\n", len(res))
		return
	}
	fmt.Fprintf(w, "%d of %d checks failed\n", failed, len(res))
}

// WriteSourceColumns writes the columns of a new table's files (a dry run
// without --key) and how to go on.
func WriteSourceColumns(w io.Writer, sc *SourceColumns) {
	fmt.Fprintf(w, "plan for %s (dry run: nothing is written)\n", sc.Table)
	if sc.Schema == nil {
		fmt.Fprintf(w, "  the table does not exist yet, and %s has %s, none readable as DMS Parquet\n", sc.Source, count(sc.Files, "new file"))
		return
	}
	fmt.Fprintf(w, "  the table does not exist yet: pass --key to plan its creation. The columns of %s (1 of %s):\n", sc.File, count(sc.Files, "new file"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range sc.Schema.Fields() {
		fmt.Fprintf(tw, "    %s\t%s\n", f.Name, f.Type)
	}
	tw.Flush()
	fmt.Fprintf(w, "  --key: the table's primary key column(s), e.g. --key %s\n", sc.Schema.Field(0).Name)
	fmt.Fprintf(w, "  --order-by (default updated_at) could be: %s\n", strings.Join(sc.OrderCandidates, "; "))
}
