package icemerge

import (
	"context"
	"errors"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// bookmarkLockTTL is the lease a rewind or a reset holds the table's run
// lock for: it lists the source at most, and renews it while it lasts.
const bookmarkLockTTL = bookmark.DefaultLeaseTTL

// RewindResult is what a rewind did and what the next run will process.
type RewindResult struct {
	bookmark.Rewinding
	Table string
	To    time.Time
	// Found: a bookmark was saved before the rewind.
	Found bool
	// Saved: the bookmark changed.
	Saved bool
	// Next is what the next run processes (listed only with a source,
	// Listed): Reapplied of them are files the rewind forgot.
	Next      []source.Object
	Reapplied int
	Listed    bool
	Source    string
}

// Rewind is `icemerge bookmark rewind`: under the table's run lock (so no
// run is in progress, and none starts meanwhile), it forgets the applied
// CDC files named after o.To, so the next run applies them again, and says
// what the next run processes (with a source). Rows and deleted keys never
// move back: the rewind forgets files, not the table's state.
func Rewind(ctx context.Context, o RewindOptions, d Deps) (*RewindResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	to, _ := ParseRewindTime(o.To)
	spec := lockSpec{table: o.Table, command: "icemerge bookmark rewind", refuse: "rewind the bookmark of", ttl: bookmarkLockTTL}
	return withLock(ctx, d.Lock, spec, d.Now, d.Log, func(ctx context.Context) (*RewindResult, error) {
		return rewind(ctx, o.Table, to, d)
	})
}

func rewind(ctx context.Context, table string, to time.Time, d Deps) (*RewindResult, error) {
	res := &RewindResult{Table: table, To: to}
	if d.Source != nil {
		res.Source = d.Source.String()
	}
	st, ver, err := loadBookmark(ctx, d.Bookmark, table)
	if err != nil || ver == "" {
		return res, err
	}
	res.Found = true
	var list func() ([]source.Object, error)
	if d.Source != nil {
		list = func() ([]source.Object, error) {
			var objs []source.Object
			err := d.Source.List(ctx, "", func(obj source.Object) error {
				if source.Classify(obj.Key) != merge.NotData {
					objs = append(objs, obj)
				}
				return nil
			})
			return objs, err
		}
	}
	next, r, err := st.Rewind(to, d.Now(), list)
	if errors.Is(err, bookmark.ErrSettledHistory) {
		return nil, usage(err)
	}
	if err != nil {
		return nil, err
	}
	res.Rewinding = r
	if len(r.Files) > 0 || r.Quarantined > 0 || r.Settled != r.SettledBefore {
		if _, err := d.Bookmark.Save(ctx, next, ver); err != nil {
			return nil, err
		}
		res.Saved = true
	}
	if d.Source == nil {
		return res, nil
	}
	if res.Next, _, err = unprocessed(ctx, d.Source, next, d.Now()); err != nil {
		return nil, err
	}
	res.Listed = true
	forgot := make(map[string]bool, len(r.Files))
	for _, k := range r.Files {
		forgot[k] = true
	}
	for _, obj := range res.Next {
		if forgot[obj.Key] {
			res.Reapplied++
		}
	}
	return res, nil
}

// ResetResult is what a reset did: Before is the bookmark it replaced.
type ResetResult struct {
	Table  string
	Before bookmark.State
}

// Reset is `icemerge bookmark reset`: under the table's run lock (a run in
// progress would save its own bookmark over the reset), the bookmark is
// replaced by an empty one: the next run lists the whole source folder and
// applies every file, the full load first. The table is not touched.
func Reset(ctx context.Context, o TableOptions, d Deps) (*ResetResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	spec := lockSpec{table: o.Table, command: "icemerge bookmark reset", refuse: "reset the bookmark of", ttl: bookmarkLockTTL}
	return withLock(ctx, d.Lock, spec, d.Now, d.Log, func(ctx context.Context) (*ResetResult, error) {
		st, ver, err := d.Bookmark.Load(ctx)
		if err != nil && !errors.Is(err, bookmark.ErrCorrupt) {
			return nil, err
		}
		if _, err := d.Bookmark.Save(ctx, bookmark.Reset(o.Table, d.Now()), ver); err != nil {
			return nil, err
		}
		return &ResetResult{Table: o.Table, Before: st}, nil
	})
}

// BookmarkOf reads a table's bookmark (`icemerge bookmark show`); saved is
// false when none is saved yet.
func BookmarkOf(ctx context.Context, o TableOptions, d Deps) (st bookmark.State, saved bool, err error) {
	if err := o.Validate(); err != nil {
		return st, false, err
	}
	st, ver, err := d.Bookmark.Load(ctx)
	return st, ver != "", err
}
