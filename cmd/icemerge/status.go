package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
)

// StatusOptions are the settings of `icemerge status`.
type StatusOptions struct {
	Common
	Source string
	JSON   bool
}

// Validate reports every problem at once.
func (o StatusOptions) Validate() error {
	errs := []error{o.Common.Validate()}
	if o.Source == "" {
		errs = append(errs, errors.New("--source is required: the DMS folder of the table, to count the files not applied yet"))
	} else if _, err := source.ParseLocation(o.Source); err != nil {
		errs = append(errs, fmt.Errorf("--source: %w", err))
	}
	return errors.Join(errs...)
}

// lockHolder reads a table's run lock without taking it.
type lockHolder interface {
	Holder(ctx context.Context, now time.Time) (bookmark.Holder, bool, error)
}

// StatusDeps are what status reads; it writes nothing.
type StatusDeps struct {
	Now      func() time.Time
	Source   Source
	Catalog  *catalog.Catalog
	Bookmark bookmark.Store
	Lock     lockHolder // nil: not checked
}

// StatusReport is the document `icemerge status --json` prints: one entry
// per table (one today; a whole database later).
type StatusReport struct {
	At     time.Time     `json:"at"`
	Tables []TableStatus `json:"tables"`
}

// TableStatus is one table's state: its last snapshot, its bookmark, and
// the raw files a run has not applied yet.
type TableStatus struct {
	Table  string `json:"table"`
	Source string `json:"source"`
	// At is when the status was taken; ages are relative to it.
	At       time.Time       `json:"at"`
	Exists   bool            `json:"table_exists"`
	Snapshot *SnapshotStatus `json:"last_snapshot,omitempty"`
	Bookmark BookmarkStatus  `json:"bookmark"`
	Pending  PendingStatus   `json:"pending"`
	// Quarantined counts the files skipped as bad input.
	Quarantined int `json:"quarantined"`
	// Locked: a run holds the table now (Lock says which, until when).
	Locked bool             `json:"locked"`
	Lock   *bookmark.Holder `json:"lock,omitempty"`
	// Problem is what the next run will stop at, if anything: the bookmark
	// and the table disagree.
	Problem string `json:"problem,omitempty"`
}

// SnapshotStatus is the table's current snapshot.
type SnapshotStatus struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Operation string    `json:"operation,omitempty"`
	// Token is the icemerge run that committed it; empty when another
	// writer did.
	Token       string `json:"token,omitempty"`
	SourceFiles *int64 `json:"source_files,omitempty"`
	RowsWritten *int64 `json:"rows_written,omitempty"`
	RowsDeleted *int64 `json:"rows_deleted,omitempty"`
}

// BookmarkStatus is the table's progress.
type BookmarkStatus struct {
	Location string `json:"location"`
	Saved    bool   `json:"saved"`
	Token    string `json:"token,omitempty"`
	// Runs counts the committed runs since the bookmark was created or
	// reset; LastRun is when the last run that recorded files started.
	Runs    int64      `json:"runs"`
	LastRun *time.Time `json:"last_run,omitempty"`
	Updated *time.Time `json:"updated,omitempty"`
	// State is what the next run will find: in sync, fresh, or that the
	// last run stopped between its commit and its second save.
	State        string               `json:"state"`
	AppliedFiles int                  `json:"applied_files"`
	Settled      string               `json:"settled,omitempty"`
	ResetAt      *time.Time           `json:"reset_at,omitempty"`
	Rewound      *bookmark.RewindMark `json:"rewound,omitempty"`
}

// PendingStatus is what the next run will process.
type PendingStatus struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// First is the first in source order, where the next run starts.
	First string `json:"first,omitempty"`
	// Oldest is the one modified first; Lag its age (0 when none).
	Oldest         string     `json:"oldest,omitempty"`
	OldestModified *time.Time `json:"oldest_modified,omitempty"`
	LagSeconds     float64    `json:"lag_seconds"`
}

// Lag is the age of the oldest pending file.
func (p PendingStatus) Lag() time.Duration {
	return time.Duration(p.LagSeconds * float64(time.Second))
}

func cmdStatus(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := newFlagSet("icemerge status", stderr)
	var o StatusOptions
	o.register(fs)
	fs.StringVar(&o.Source, "source", "", "the DMS folder of the table: path, file:// or s3://")
	fs.BoolVar(&o.JSON, "json", false, "print the status as JSON")
	if err := parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if err := o.defaults(env); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return usageErr(err)
	}
	ctx, op, err := o.open(ctx, o.logger(stderr), nil, o.Source)
	if err != nil {
		return err
	}
	defer op.cat.Close()
	st, err := statusOf(ctx, o, StatusDeps{Now: time.Now, Source: op.src, Catalog: op.cat, Bookmark: op.store, Lock: op.store})
	if err != nil {
		return err
	}
	if o.JSON {
		return writeStatusJSON(stdout, StatusReport{At: st.At, Tables: []TableStatus{st}})
	}
	printStatus(stdout, st)
	return nil
}

// statusOf reads one table's status: the table's current snapshot, the
// bookmark as the next run will see it (reconciled with the table, not
// saved), and the source listed as a run lists it.
func statusOf(ctx context.Context, o StatusOptions, d StatusDeps) (TableStatus, error) {
	now := d.Now().UTC()
	s := TableStatus{Table: o.Table, Source: d.Source.String(), At: now}
	ident, err := catalog.Ident(o.Table)
	if err != nil {
		return s, fmt.Errorf("%w: --table: %w", errUsage, err)
	}
	tbl, exists, err := d.Catalog.Load(ctx, ident)
	if err != nil {
		return s, err
	}
	s.Exists = exists
	tableToken := ""
	if exists {
		tableToken = catalog.LastToken(tbl)
		s.Snapshot = snapshotStatus(tbl)
	}

	st, ver, err := d.Bookmark.Load(ctx)
	if err != nil {
		return s, err
	}
	s.Bookmark = BookmarkStatus{Location: d.Bookmark.Location(), Saved: ver != ""}
	if ver == "" {
		st = bookmark.New(o.Table)
	}
	if st.Table != o.Table {
		return s, fmt.Errorf("bookmark %s belongs to table %s, not %s: use another --bookmark", d.Bookmark.Location(), st.Table, o.Table)
	}
	next, outcome, err := bookmark.Reconcile(st, tableToken, now)
	switch {
	case errors.Is(err, bookmark.ErrMismatch):
		s.Problem, s.Bookmark.State, next = err.Error(), "disagrees with the table", st
	case err != nil:
		return s, err
	default:
		s.Bookmark.State = outcome.String()
	}
	b := &s.Bookmark
	b.Token, b.Runs, b.AppliedFiles, b.Settled = next.Token, next.Runs, len(next.Files), next.Settled
	b.ResetAt, b.Rewound = next.ResetAt, next.Rewound
	if ver != "" {
		u := next.Updated
		b.Updated = &u
	}
	if last := next.LastRun; !last.IsZero() {
		b.LastRun = &last
	} else {
		// Bookmarks saved before LastRun existed: the newest applied file.
		for _, fi := range next.Files {
			if !fi.Applied.IsZero() && (b.LastRun == nil || fi.Applied.After(*b.LastRun)) {
				a := fi.Applied
				b.LastRun = &a
			}
		}
	}
	s.Quarantined = len(next.Quarantined)

	todo, _, err := unprocessed(ctx, d.Source, next)
	if err != nil {
		return s, err
	}
	s.Pending = pendingStatus(todo, now)

	if d.Lock != nil {
		h, held, err := d.Lock.Holder(ctx, now)
		if err != nil {
			return s, err
		}
		if held {
			s.Locked, s.Lock = true, &h
		}
	}
	return s, nil
}

// pendingStatus sums the unprocessed files (in source order).
func pendingStatus(todo []source.Object, now time.Time) PendingStatus {
	p := PendingStatus{Files: len(todo)}
	var oldest *source.Object
	for i, o := range todo {
		p.Bytes += o.Size
		if oldest == nil || o.ModTime.Before(oldest.ModTime) {
			oldest = &todo[i]
		}
	}
	if oldest == nil {
		return p
	}
	mt := oldest.ModTime.UTC()
	p.First, p.Oldest, p.OldestModified = todo[0].Key, oldest.Key, &mt
	p.LagSeconds = max(0, now.Sub(mt).Seconds())
	return p
}

// snapshotStatus is the table's current snapshot, nil when it has none.
func snapshotStatus(tbl *table.Table) *SnapshotStatus {
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return nil
	}
	s := &SnapshotStatus{ID: snap.SnapshotID, Time: time.UnixMilli(snap.TimestampMs).UTC()}
	if snap.Summary == nil {
		return s
	}
	s.Operation = string(snap.Summary.Operation)
	props := snap.Summary.Properties
	s.Token = props[catalog.KeyToken]
	num := func(k string) *int64 {
		if n, err := strconv.ParseInt(props[k], 10, 64); err == nil {
			return &n
		}
		return nil
	}
	s.SourceFiles, s.RowsWritten, s.RowsDeleted = num(catalog.KeySourceFiles), num(catalog.KeyRowsWritten), num(catalog.KeyRowsDeleted)
	return s
}

func writeStatusJSON(w io.Writer, r StatusReport) error {
	return writeJSON("-", w, "status", r)
}

// printStatus writes the status for a person.
func printStatus(w io.Writer, s TableStatus) {
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
		if snap.Token != "" {
			by = "run " + snap.Token
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
		fmt.Fprintf(w, "  settled:       every key up to %s\n", b.Settled)
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
