package bookmark

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// ErrPending means a run saved its files and then stopped, before or after
// its commit: only a run, which sees the table, can tell which, so the
// bookmark cannot be rewound until one has run.
var ErrPending = errors.New("a run of the table is pending")

// ErrSettledHistory means a rewind reaches back into settled history (the
// keys a listing starts after), which the bookmark no longer lists one by
// one: the rewind needs a listing of the source.
var ErrSettledHistory = errors.New("the rewind reaches settled history")

// rewound reports whether a rewind to `to` forgets the object: a CDC file
// whose name carries a time after it. Full-load files and CDC files whose
// names carry no time are kept.
func rewound(key string, to time.Time) bool {
	if source.Classify(key) != merge.CDC {
		return false
	}
	t, ok := source.CDCTime(key)
	return ok && t.After(to)
}

// RewindMark records the last rewind, for `bookmark show` and status.
type RewindMark struct {
	To    time.Time `json:"to"`
	At    time.Time `json:"at"`
	Files int       `json:"files"`
}

// Rewinding says what a rewind did.
type Rewinding struct {
	// Files are the applied objects the rewind forgot, in source order:
	// the next run applies them again (when they are still listed).
	Files []string
	// Quarantined counts the quarantine records dropped with them.
	Quarantined int
	// Settled is the settled key after the rewind; SettledBefore before.
	Settled, SettledBefore string
	// Kept counts the applied files that stay applied (full-load files,
	// CDC files named at or before the time, and names without a time).
	Kept int
}

// NeedsHistory reports whether a rewind to `to` reaches into settled
// history, so that Rewind needs the source's listing: the settled key is a
// CDC name after `to`, or a name without a time.
func (s State) NeedsHistory(to time.Time) bool {
	if s.Settled == "" {
		return false
	}
	t, ok := source.CDCTime(s.Settled)
	return !ok || t.After(to)
}

// Rewind returns the state after `icemerge bookmark rewind --to to`: the
// applied CDC files whose names carry a time after `to` are forgotten, so
// the next run applies them again; everything else stays as it is. In
// particular:
//
//   - Full-load (LOAD…) files are kept whatever `to` is: their names carry
//     no time. A rewind to before every CDC file forgets all CDC files and
//     keeps the full load; `Reset` forgets the full load too.
//   - Token and Runs stay: the table still shows the last run's commit, so
//     the next run is in sync with it and re-applies the files as new ones.
//   - Tombstones stay. The table keeps the rows the forgotten files wrote
//     and lacks the rows they deleted, and a re-applied change never moves
//     a live row backwards (by the order columns); the tombstone of a
//     deleted key is that key's "row" and holds it the same way. With the
//     source unchanged every key's newest change is among the re-applied
//     files or was applied before `to`, and it ties the tombstone (the
//     incoming change wins ties), so nothing re-applied is suppressed
//     wrongly, while an older change, re-applied in an earlier bounded
//     batch than the delete after it, cannot bring the key back for a
//     while.
//   - Quarantine records of forgotten files are dropped: they are read
//     again, as after a reset.
//   - Settled moves back before the first forgotten key, so listings
//     include the forgotten files again. The settled history is not in the
//     bookmark, so when the rewind reaches into it (NeedsHistory), list
//     must list the source from the start (it is called only then): the
//     settled objects at or before `to` that now sort after Settled are
//     recorded as applied. list nil fails such a rewind with
//     ErrSettledHistory.
//
// A pending run fails the rewind with ErrPending.
func (s State) Rewind(to, now time.Time, list func() ([]source.Object, error)) (State, Rewinding, error) {
	if s.Pending != nil {
		return s, Rewinding{}, fmt.Errorf("%w: run %s of %s saved its files at %s and stopped before finishing; "+
			"run `icemerge run` once first (it finalises or discards that run), then rewind",
			ErrPending, s.Pending.Token, s.Table, s.Pending.Started.Format(time.RFC3339))
	}
	to = to.UTC()
	r := Rewinding{SettledBefore: s.Settled, Settled: s.Settled}
	files := make(map[string]FileInfo, len(s.Files))
	for k, fi := range s.Files {
		if rewound(k, to) {
			r.Files = append(r.Files, k)
			continue
		}
		files[k] = fi
		r.Kept++
	}
	if s.NeedsHistory(to) {
		if list == nil {
			return s, Rewinding{}, fmt.Errorf("%w: %s settled every key up to %s, after %s; "+
				"pass --source so the rewind can list the settled files",
				ErrSettledHistory, s.Table, s.Settled, to.Format(time.RFC3339Nano))
		}
		objs, err := list()
		if err != nil {
			return s, Rewinding{}, err
		}
		r.Settled = s.rewindSettled(to, objs, files, &r, now)
	}
	q := make(map[string]Quarantined, len(s.Quarantined))
	for k, v := range s.Quarantined {
		if rewound(k, to) {
			r.Quarantined++
			continue
		}
		q[k] = v
	}
	if len(q) == 0 {
		q = nil
	}
	slices.SortFunc(r.Files, func(a, b string) int { return source.CompareObjects(source.Object{Key: a}, source.Object{Key: b}) })
	r.Files = slices.Compact(r.Files)
	s.Files, s.Quarantined, s.Settled = files, q, r.Settled
	s.Updated = now.UTC()
	s.Rewound = &RewindMark{To: to, At: now.UTC(), Files: len(r.Files)}
	return s, r, nil
}

// rewindSettled returns the settled key after a rewind into settled
// history: the greatest listed data key before the first forgotten one
// ("" when there is none). The listed data objects between it and the old
// settled key that the rewind keeps are added to files as applied; the
// forgotten ones are added to r.
func (s State) rewindSettled(to time.Time, objs []source.Object, files map[string]FileInfo, r *Rewinding, now time.Time) string {
	first := ""
	for _, o := range objs {
		if o.Key <= s.Settled && rewound(o.Key, to) && (first == "" || o.Key < first) {
			first = o.Key
		}
	}
	if first == "" {
		return s.Settled // nothing settled is after `to`
	}
	settled := ""
	for _, o := range objs {
		if source.Classify(o.Key) != merge.NotData && o.Key < first && o.Key > settled {
			settled = o.Key
		}
	}
	for _, o := range objs {
		if source.Classify(o.Key) == merge.NotData || o.Key <= settled || o.Key > s.Settled {
			continue
		}
		if rewound(o.Key, to) {
			r.Files = append(r.Files, o.Key)
			continue
		}
		if _, ok := files[o.Key]; !ok {
			files[o.Key] = FileInfo{Size: o.Size, ModTime: o.ModTime.UTC(), ETag: o.ETag, Applied: now.UTC()}
			r.Kept++
		}
	}
	return settled
}
