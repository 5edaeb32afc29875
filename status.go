package icemerge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

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
	// Locked: a run holds the table now (Lock says which, until when, and
	// its state: held, or stuck when a frozen process holds the bookmark
	// store; a run that died is shown unlocked, with its lease).
	Locked bool             `json:"locked"`
	Lock   *bookmark.Holder `json:"lock,omitempty"`
	// Problem is what the next run will stop at, if anything: the bookmark
	// and the table disagree, or the bookmark is missing.
	Problem string `json:"problem,omitempty"`
	// Reload is a new full load DMS wrote after CDC files were applied:
	// the next run replaces the table's rows with it, once it is complete.
	Reload *ReloadStatus `json:"reload,omitempty"`
	// NewestGone is the newest applied file, found gone from the source (a
	// reload or a truncate starts so): the next run lists the whole folder.
	NewestGone string `json:"newest_gone,omitempty"`
}

// SnapshotStatus is the table's current snapshot.
type SnapshotStatus struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Operation string    `json:"operation,omitempty"`
	// Token is the icemerge run that committed it; empty when another
	// writer (or a maintenance) did.
	Token string `json:"token,omitempty"`
	// Maintenance is the step of the icemerge maintenance that committed
	// it (compact, manifests), empty otherwise.
	Maintenance string `json:"maintenance,omitempty"`
	SourceFiles *int64 `json:"source_files,omitempty"`
	RowsWritten *int64 `json:"rows_written,omitempty"`
	RowsDeleted *int64 `json:"rows_deleted,omitempty"`
	// Replace is why the snapshot replaced every row of the table: reload
	// or truncate; empty for other snapshots.
	Replace string `json:"replace,omitempty"`
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
	State        string `json:"state"`
	AppliedFiles int    `json:"applied_files"`
	// Settled is the watermark: a CDC file name (yyyyMMdd-HHmmssSSS); the
	// applied CDC files named up to it are settled (SettledFiles of the
	// AppliedFiles), and runs list only what is named after it between
	// full listings (the last one at FullListing).
	Settled      string               `json:"settled,omitempty"`
	SettledFiles int                  `json:"settled_files,omitempty"`
	FullListing  *time.Time           `json:"full_listing,omitempty"`
	ResetAt      *time.Time           `json:"reset_at,omitempty"`
	Rewound      *bookmark.RewindMark `json:"rewound,omitempty"`
	// Check is what the last full listing that found something amiss
	// found (applied files gone, late files); Replaced the last commit
	// that replaced the table's rows.
	Check    *bookmark.Check       `json:"check,omitempty"`
	Replaced *bookmark.ReplaceMark `json:"replaced,omitempty"`
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
	// Late counts the pending CDC files named at or before the watermark:
	// they arrived after newer files were applied.
	Late int `json:"late,omitempty"`
}

// Lag is the age of the oldest pending file.
func (p PendingStatus) Lag() time.Duration {
	return time.Duration(p.LagSeconds * float64(time.Second))
}

// Status reads one table's status (`icemerge status`): the table's current
// snapshot, the bookmark as the next run will see it (reconciled with the
// table, not saved), the source listed as a run lists it, and who holds
// the run lock. It writes nothing.
func Status(ctx context.Context, o StatusOptions, d Deps) (TableStatus, error) {
	if err := o.Validate(); err != nil {
		return TableStatus{}, err
	}
	now := d.Now().UTC()
	s := TableStatus{Table: o.Table, Source: d.Source.String(), At: now}
	tbl, exists, err := d.Catalog.Load(ctx, o.Table)
	if err != nil {
		return s, err
	}
	s.Exists = exists
	tableToken := ""
	if exists {
		tableToken = tbl.LastToken()
		s.Snapshot = snapshotStatus(tbl)
	}

	st, ver, err := d.Bookmark.Load(ctx)
	if err != nil {
		return s, err
	}
	s.Bookmark = BookmarkStatus{Location: d.Bookmark.Location(), Saved: ver != ""}
	if ver == "" {
		st = bookmark.New(o.Table)
		if tableToken != "" {
			s.Problem = fmt.Sprintf("the table was last written by icemerge run %s, but no bookmark is saved at %s: it was deleted, or --bookmark points elsewhere "+
				"(the next run fails unless --on-missing-bookmark rebuild applies every file again)", tableToken, d.Bookmark.Location())
		}
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
	b.Token, b.Runs, b.AppliedFiles, b.Settled = next.Token, next.Runs, appliedCount(next), next.Settled
	b.SettledFiles = next.SettledFiles.Len()
	if !next.FullListing.IsZero() {
		fl := next.FullListing
		b.FullListing = &fl
	}
	b.ResetAt, b.Rewound, b.Check, b.Replaced = next.ResetAt, next.Rewound, next.Check, next.Replaced
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

	v, err := listSource(ctx, d.Source, next, now, false)
	if err != nil {
		return s, err
	}
	s.Pending = pendingStatus(v.todo, now)
	for _, o := range v.todo {
		if o.Kind() == merge.CDC && next.Late(o.Key) {
			s.Pending.Late++
		}
	}
	if loads := v.loads(); len(loads) > 0 && next.AppliedCDC() {
		s.Reload = &ReloadStatus{Loads: keysOf(loads), Complete: reloadComplete(loads, v.todo, now, 0)}
	}
	if gone, err := newestGone(ctx, d.Source, next, v); err != nil {
		return s, err
	} else if gone {
		s.NewestGone = next.Newest()
	}

	if d.Lock != nil {
		h, held, err := d.Lock.Holder(ctx, now)
		if err != nil {
			return s, err
		}
		// A lease of a run that died, or a stuck store lock, is shown too.
		if held || h.State == bookmark.LockDead {
			s.Locked, s.Lock = held, &h
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
func snapshotStatus(tbl *catalog.Table) *SnapshotStatus {
	snap := tbl.Current()
	if snap == nil {
		return nil
	}
	s := &SnapshotStatus{ID: snap.ID, Time: snap.Time, Operation: snap.Operation, Token: snap.Token(), Maintenance: snap.Maintenance()}
	num := func(k string) *int64 {
		if n, ok := snap.Count(k); ok {
			return &n
		}
		return nil
	}
	s.SourceFiles, s.RowsWritten, s.RowsDeleted = num(catalog.KeySourceFiles), num(catalog.KeyRowsWritten), num(catalog.KeyRowsDeleted)
	s.Replace = snap.Summary[catalog.KeyReplace]
	return s
}
