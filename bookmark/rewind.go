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

// ErrSettledHistory means a rewind reaches back into the settled history
// of a bookmark of an earlier version, which counts files as applied
// without recording them (State.Horizon): the rewind needs a listing of
// the source.
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
	// Settled is the watermark after the rewind; SettledBefore before.
	Settled, SettledBefore string
	// Kept counts the applied files that stay applied (full-load files,
	// CDC files named at or before the time, and names without a time).
	Kept int
}

// NeedsHistory reports whether a rewind to `to` reaches into history a
// bookmark of an earlier version settled without recording it (Horizon),
// so that Rewind needs the source's listing.
func (s State) NeedsHistory(to time.Time) bool {
	return s.LegacySettled != "" || (s.Horizon != "" && s.Horizon > source.FormatCDCName(to))
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
//   - Settled files (SettledFiles) named after `to` are forgotten like
//     the others, and the watermark moves back to `to`, so listings look
//     at the forgotten files again. A bookmark of an earlier version
//     counts older files as applied without recording them (Horizon); when
//     the rewind reaches into them (NeedsHistory), list must list the
//     source (it is called only then) so the rewind records the listed
//     ones and forgets those after `to`. list nil fails such a rewind with
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
	r := Rewinding{SettledBefore: s.Settled}
	if s.NeedsHistory(to) {
		if list == nil {
			return s, Rewinding{}, fmt.Errorf("%w: %s counts every CDC file named up to %s as applied (settled by an earlier version), after %s; "+
				"pass --source so the rewind can list the settled files",
				ErrSettledHistory, s.Table, max(s.Horizon, s.LegacySettled), to.Format(time.RFC3339Nano))
		}
		objs, err := list()
		if err != nil {
			return s, Rewinding{}, err
		}
		s = s.Materialize(objs, now)
	}
	files := make(map[string]FileInfo, len(s.Files))
	for k, fi := range s.Files {
		if rewound(k, to) {
			r.Files = append(r.Files, k)
			continue
		}
		files[k] = fi
	}
	settled, forgot := s.SettledFiles.Without(func(k string) bool { return rewound(k, to) })
	r.Files = append(r.Files, forgot...)
	r.Kept = len(files) + settled.Len()
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
	slices.SortFunc(r.Files, source.CompareKeys)
	r.Files = slices.Compact(r.Files)
	if name := source.FormatCDCName(to); s.Settled > name {
		s.Settled = name
	}
	r.Settled = s.Settled
	s.Files, s.SettledFiles, s.Quarantined = files, settled, q
	s.Updated = now.UTC()
	s.Rewound = &RewindMark{To: to, At: now.UTC(), Files: len(r.Files)}
	return s, r, nil
}
