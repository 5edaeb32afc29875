// Package bookmark owns a table's progress through its source folder: which
// raw objects have been applied, and the token of the table commit that
// applied them.
//
// The table is the truth, the bookmark its index. Each run records its token
// in the snapshot it commits; the bookmark is saved twice around that commit:
// first with the run's files as Pending, then, after the commit, with them
// folded into Files. Reconcile compares a loaded state with the token of the
// table's last icemerge commit and so recognises a run that died between the
// commit and the second save (its pending files are applied: finalise) or
// before the commit (they are not: discard). A bookmark is never ahead of the
// table: Files only ever holds files whose commit the table shows.
//
// Settling keeps a bookmark small and a listing cheap without trusting
// where keys sort. DMS names every CDC file by the time it wrote it
// (yyyyMMdd-HHmmssSSS.parquet) whatever folders hold it, so the watermark
// (Settled) is such a name: every CDC file named at or before it that a
// listing had shown when it moved was applied. Applied CDC files named up
// to it leave Files for SettledFiles, a packed set of their keys; a listing
// may skip what is named before the watermark; a file that turns up later
// with an older name (a late upload, a daylight-saving hour named twice)
// is not in the set, so the periodic full listing recognises it as late
// rather than applied.
//
// Beside the bookmark, a table's folder holds its run lock (lock.go): a
// short lease, renewed while the run lasts, that records the holder's host
// and process. A run that dies on one machine frees the table at once for
// the next run there, and within one lease (DefaultLeaseTTL) for a run
// elsewhere. Every object name is built from a validated table name and
// checked to stay inside its folder or prefix.
//
// The package does not read the table or the source; it is given the token
// and the listing.
package bookmark

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// Format is the version of the stored state.
const Format = 1

// FileInfo identifies the version of a source object that was applied.
type FileInfo struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	ETag    string    `json:"etag,omitempty"`
	// Applied is when the run that applied the object started.
	Applied time.Time `json:"applied"`
}

// Quarantined is a source object a run skipped as bad input (--on-bad-file
// quarantine): it stays recorded until the bookmark is reset, or until the
// object is replaced and a later run applies the new version.
type Quarantined struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	ETag    string    `json:"etag,omitempty"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// Pending is a run that saved its files before committing.
type Pending struct {
	Token   string              `json:"token"`
	Started time.Time           `json:"started"`
	Files   map[string]FileInfo `json:"files"`
	// Quarantined are the run's files skipped as bad input; they are among
	// Files too, so no later run reads them again.
	Quarantined map[string]Quarantined `json:"quarantined,omitempty"`
	// Tombstones is the whole tombstone set once the run commits; nil
	// leaves the state's as it is.
	Tombstones *TombstoneSet `json:"tombstones,omitempty"`
	// Forget are recorded objects a full listing found gone: the commit
	// drops their records.
	Forget []string `json:"forget,omitempty"`
	// Replace is set when the commit replaces the table's rows: a
	// ReplaceReload or ReplaceTruncate.
	Replace string `json:"replace,omitempty"`
}

// State is a table's bookmark.
type State struct {
	Format int    `json:"format"`
	Table  string `json:"table"`
	// Token is the token of the last run whose commit the table shows; empty
	// for a new bookmark and after a reset.
	Token string `json:"token"`
	// Runs counts the committed runs since the bookmark was created or reset.
	Runs int64 `json:"runs"`
	// LastRun is when the last run that recorded files started (a commit,
	// or files absorbed or quarantined without one); zero before the first.
	LastRun time.Time `json:"last_run,omitzero"`
	// Settled is the watermark, a CDC file name without ".parquet"
	// (yyyyMMdd-HHmmssSSS): every CDC file named at or before it that was
	// listed when it moved has been applied. Bookmarks of earlier versions
	// held a key here; reading one turns it into a name (and a Horizon).
	Settled string `json:"settled,omitempty"`
	// SettledFiles are the applied CDC files named at or before Settled,
	// which Files no longer holds.
	SettledFiles SettledSet `json:"settled_files,omitzero"`
	// Horizon: CDC files named at or before it count as applied without
	// being recorded, as earlier versions settled them by key. A full
	// listing records those it finds and clears it. LegacySettled is such a
	// key that is no time name: objects whose keys sort at or before it
	// count as applied the same way.
	Horizon       string `json:"horizon,omitempty"`
	LegacySettled string `json:"legacy_settled,omitempty"`
	// FullListing is when a run last listed the whole source folder; the
	// runs in between list only what is named after the watermark.
	FullListing time.Time `json:"full_listing,omitzero"`
	// NewestModTime is the latest modification time of an object applied
	// since the bookmark was created or reset.
	NewestModTime time.Time `json:"newest_mtime,omitzero"`
	// Check is what the last full listing that found something amiss
	// found: applied files gone, late files; Replaced the last commit that
	// replaced the table's rows (a reload, or a truncate emptying it).
	Check    *Check              `json:"check,omitempty"`
	Replaced *ReplaceMark        `json:"replaced,omitempty"`
	Files    map[string]FileInfo `json:"files"`
	// Tombstones keep deleted keys for a while, so older changes arriving
	// late do not revive them.
	Tombstones TombstoneSet `json:"tombstones,omitzero"`
	// Quarantined lists the objects skipped as bad input, for a person to
	// act on; Settle does not forget them.
	Quarantined map[string]Quarantined `json:"quarantined,omitempty"`
	Pending     *Pending               `json:"pending,omitempty"`
	Updated     time.Time              `json:"updated"`
	ResetAt     *time.Time             `json:"reset_at,omitempty"`
	// Rewind is the last `bookmark rewind` since the bookmark was created
	// or reset.
	Rewound *RewindMark `json:"rewound,omitempty"`
}

// Check is what a full listing found besides new files.
type Check struct {
	At time.Time `json:"at"`
	// Gone counts the applied objects no longer listed (GoneKeys names the
	// first few); AllGone: every applied object is gone.
	Gone     int      `json:"gone,omitempty"`
	GoneKeys []string `json:"gone_keys,omitempty"`
	AllGone  bool     `json:"all_gone,omitempty"`
	// Late counts the CDC files found unrecorded though named at or before
	// the watermark (LateKeys names the first few).
	Late     int      `json:"late,omitempty"`
	LateKeys []string `json:"late_keys,omitempty"`
}

// The reasons a commit replaces the table's rows.
const (
	ReplaceReload   = "reload"   // DMS wrote a new full load
	ReplaceTruncate = "truncate" // every applied object is gone: --on-truncate empty
)

// ReplaceMark records a commit that replaced the table's rows.
type ReplaceMark struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Token  string    `json:"token"`
	Files  int       `json:"files"`
}

// New returns a fresh state for a table.
func New(table string) State {
	return State{Format: Format, Table: table, Files: map[string]FileInfo{}}
}

// filesOf records objs as applied now.
func filesOf(objs []source.Object, now time.Time) map[string]FileInfo {
	files := make(map[string]FileInfo, len(objs))
	for _, o := range objs {
		files[o.Key] = FileInfo{Size: o.Size, ModTime: o.ModTime.UTC(), ETag: o.ETag, Applied: now.UTC()}
	}
	return files
}

// Applied reports whether the state has applied the object: it was
// applied in this version (the same size, and the same ETag on S3 or the
// same modification time on disk, where objects have no ETag), it is a
// settled CDC file, or it is named at or before the Horizon. A new key is
// unprocessed whatever its name or modification time; a known key whose
// version changed (DMS rewrote it: a reload writes the same LOAD names) is
// unprocessed again.
func (s State) Applied(o source.Object) bool {
	if fi, ok := s.Files[o.Key]; ok {
		return fi.Same(o)
	}
	return s.SettledFiles.Has(o.Key) || s.Assumed(o.Key)
}

// Same reports whether o is the version of the object fi recorded.
func (fi FileInfo) Same(o source.Object) bool {
	if fi.Size != o.Size {
		return false
	}
	if fi.ETag != "" && o.ETag != "" {
		return fi.ETag == o.ETag
	}
	return fi.ModTime.Equal(o.ModTime)
}

// Assumed reports whether a key counts as applied without a record: it
// lies within the settled history of a bookmark of an earlier version.
func (s State) Assumed(key string) bool {
	if s.LegacySettled != "" && key <= s.LegacySettled {
		return true
	}
	n, ok := source.CDCName(key)
	return ok && s.Horizon != "" && n <= s.Horizon
}

// Late reports whether a CDC object not applied is named at or before the
// watermark: it turned up after newer files settled.
func (s State) Late(key string) bool {
	n, ok := source.CDCName(key)
	return ok && s.Settled != "" && n <= s.Settled
}

// Recorded reports whether the state holds a record of the key, whatever
// version of the object it was.
func (s State) Recorded(key string) bool {
	_, ok := s.Files[key]
	return ok || s.SettledFiles.Has(key)
}

// AppliedCDC reports whether any CDC file has been applied since the
// bookmark was created or reset.
func (s State) AppliedCDC() bool {
	if s.Settled != "" || s.Horizon != "" || s.LegacySettled != "" || s.SettledFiles.Len() > 0 {
		return true
	}
	for k := range s.Files {
		if source.Classify(k) == merge.CDC {
			return true
		}
	}
	return false
}

// Newest is the recorded object last in source order: the one a run checks
// is still there ("" when nothing is recorded).
func (s State) Newest() string {
	best := s.SettledFiles.Newest()
	for k := range s.Files {
		if best == "" || source.CompareKeys(k, best) > 0 {
			best = k
		}
	}
	return best
}

// Forget drops the records of keys (objects found gone): from Files,
// SettledFiles and the quarantine.
func (s State) Forget(keys []string) State {
	if len(keys) == 0 {
		return s
	}
	drop := make(map[string]bool, len(keys))
	for _, k := range keys {
		drop[k] = true
	}
	files := make(map[string]FileInfo, len(s.Files))
	for k, fi := range s.Files {
		if !drop[k] {
			files[k] = fi
		}
	}
	s.Files = files
	s.SettledFiles, _ = s.SettledFiles.Without(func(k string) bool { return drop[k] })
	if len(s.Quarantined) > 0 {
		q := map[string]Quarantined{}
		for k, v := range s.Quarantined {
			if !drop[k] {
				q[k] = v
			}
		}
		if len(q) == 0 {
			q = nil
		}
		s.Quarantined = q
	}
	return s
}

// Materialize records, from a full listing, the objects the state counts
// as applied without a record (Assumed), and clears the Horizon: from then
// on every applied object is known one by one.
func (s State) Materialize(objs []source.Object, now time.Time) State {
	if s.Horizon == "" && s.LegacySettled == "" {
		return s
	}
	var settled []string
	files := maps.Clone(s.Files)
	if files == nil {
		files = map[string]FileInfo{}
	}
	for _, o := range objs {
		if source.Classify(o.Key) == merge.NotData || s.Recorded(o.Key) || !s.Assumed(o.Key) {
			continue
		}
		if Settleable(o.Key) {
			settled = append(settled, o.Key)
		} else {
			files[o.Key] = FileInfo{Size: o.Size, ModTime: o.ModTime.UTC(), ETag: o.ETag, Applied: now.UTC()}
		}
	}
	s.SettledFiles = s.SettledFiles.With(settled...)
	s.Files, s.Horizon, s.LegacySettled = files, "", ""
	return s
}

// Begin returns the state to save before committing a run that applies objs
// under token.
func (s State) Begin(token string, objs []source.Object, now time.Time) State {
	s.Pending = &Pending{Token: token, Started: now.UTC(), Files: filesOf(objs, now)}
	s.Updated = now.UTC()
	return s
}

// Finish folds the pending run into Files: the table shows its commit.
func (s State) Finish(now time.Time) State {
	p := s.Pending
	if p == nil {
		return s
	}
	s = s.Forget(p.Forget)
	files := withFiles(s.Files, p.Files)
	if p.Tombstones != nil {
		s.Tombstones = *p.Tombstones
	}
	s.Quarantined = quarantine(s.Quarantined, p.Files, p.Quarantined)
	s.NewestModTime = newestModTime(s.NewestModTime, p.Files)
	if p.Replace != "" {
		s.Replaced = &ReplaceMark{Reason: p.Replace, At: p.Started, Token: p.Token, Files: len(p.Files)}
	}
	s.LastRun = p.Started
	s.Files, s.Token, s.Pending = files, p.Token, nil
	s.Runs++
	s.Updated = now.UTC()
	return s
}

// newestModTime is the latest of t and the files' modification times.
func newestModTime(t time.Time, files map[string]FileInfo) time.Time {
	for _, fi := range files {
		if fi.ModTime.After(t) {
			t = fi.ModTime
		}
	}
	return t
}

// Settle advances the watermark (Settled) over the names of the applied
// CDC files known for at least window, so any file named before them that
// was late has had that long to appear and be applied, and moves the
// applied files named up to it from Files to SettledFiles. The assumption
// (checked by the periodic full listing, not trusted): DMS files appear in
// listings within window of the files named after them. A window of 0 or
// less never settles: every run lists the whole folder. left are the
// listed objects still unprocessed (a bounded run leaves some): the
// watermark never reaches one's name.
func (s State) Settle(now time.Time, window time.Duration, left []source.Object) State {
	if window <= 0 || s.Pending != nil {
		return s
	}
	limit := now.Add(-window)
	minLeft := ""
	for _, o := range left {
		if n, ok := source.CDCName(o.Key); ok && (minLeft == "" || n < minLeft) {
			minLeft = n
		}
	}
	eligible := func(k string, fi FileInfo) (string, bool) {
		n, ok := source.CDCName(k)
		if !ok || fi.Applied.IsZero() || fi.Applied.After(limit) || (minLeft != "" && n >= minLeft) {
			return "", false
		}
		return n, true
	}
	settled := s.Settled
	for k, fi := range s.Files {
		if n, ok := eligible(k, fi); ok && n > settled {
			settled = n
		}
	}
	var moved []string
	files := make(map[string]FileInfo, len(s.Files))
	for k, fi := range s.Files {
		if n, ok := eligible(k, fi); ok && n <= settled {
			moved = append(moved, k)
			continue
		}
		files[k] = fi
	}
	if settled == s.Settled && len(moved) == 0 {
		return s
	}
	s.Settled, s.Files, s.SettledFiles = settled, files, s.SettledFiles.With(moved...)
	return s
}

// Absorb marks objs applied without a commit: their changes leave the table
// as it is (deletes of absent keys, changes older than the table's rows), so
// the table already reflects them and the token stays.
func (s State) Absorb(objs []source.Object, now time.Time) State {
	files := filesOf(objs, now)
	s.Files = withFiles(s.Files, files)
	s.NewestModTime = newestModTime(s.NewestModTime, files)
	s.Updated, s.LastRun = now.UTC(), now.UTC()
	return s
}

// Quarantine marks objs applied without a commit, as Absorb does, and
// records q, the ones among them skipped as bad input.
func (s State) Quarantine(objs []source.Object, q map[string]Quarantined, now time.Time) State {
	s = s.Absorb(objs, now)
	s.Quarantined = quarantine(s.Quarantined, filesOf(objs, now), q)
	return s
}

// quarantine returns a copy of old in which the objects just processed
// (files) are dropped, unless q quarantines them again: a replaced object
// that applied cleanly leaves the list.
func quarantine(old map[string]Quarantined, files map[string]FileInfo, q map[string]Quarantined) map[string]Quarantined {
	out := make(map[string]Quarantined, len(old)+len(q))
	for k, v := range old {
		if _, ok := files[k]; !ok {
			out[k] = v
		}
	}
	maps.Copy(out, q)
	if len(out) == 0 {
		return nil
	}
	return out
}

// QuarantineOf records a skipped object with the reason.
func QuarantineOf(o source.Object, reason string, now time.Time) Quarantined {
	return Quarantined{Size: o.Size, ModTime: o.ModTime.UTC(), ETag: o.ETag, Reason: reason, At: now.UTC()}
}

// withFiles returns a copy of files with add added; states share no maps.
func withFiles(files, add map[string]FileInfo) map[string]FileInfo {
	out := make(map[string]FileInfo, len(files)+len(add))
	maps.Copy(out, files)
	maps.Copy(out, add)
	return out
}

// Reset returns the state after `icemerge bookmark reset`: nothing applied,
// so the next run processes every file again.
func Reset(table string, now time.Time) State {
	t := now.UTC()
	r := New(table)
	r.Updated, r.ResetAt = t, &t
	return r
}

// Outcome says what Reconcile found.
type Outcome int

const (
	// InSync: the bookmark and the table agree.
	InSync Outcome = iota
	// Fresh: a new or reset bookmark; every listed file is unprocessed.
	Fresh
	// Finalised: the last run committed but died before saving the bookmark;
	// its files are now marked applied.
	Finalised
	// Discarded: the last run died before its commit; its files will be
	// processed again.
	Discarded
)

func (o Outcome) String() string {
	return [...]string{"in sync", "fresh", "finalised a committed run", "discarded an uncommitted run"}[o]
}

// ErrMismatch means the table's last icemerge commit is not one the bookmark
// knows: the table was rolled back or recreated, or another bookmark
// location writes to it.
var ErrMismatch = errors.New("bookmark and table disagree")

// Reconcile compares the state with the token of the table's last icemerge
// commit ("" when the table has none) and returns the state to work from.
func Reconcile(s State, tableToken string, now time.Time) (State, Outcome, error) {
	if p := s.Pending; p != nil {
		switch tableToken {
		case p.Token:
			return s.Finish(now), Finalised, nil
		case s.Token:
			s.Pending = nil
			return s, Discarded, nil
		}
		return s, 0, mismatch(s, tableToken)
	}
	switch {
	case tableToken == s.Token:
		return s, InSync, nil
	case s.Token == "":
		return s, Fresh, nil
	}
	return s, 0, mismatch(s, tableToken)
}

func mismatch(s State, tableToken string) error {
	shown := tableToken
	if shown == "" {
		shown = "no icemerge commit"
	}
	return fmt.Errorf("%w: the bookmark of %s was last advanced by run %s, but the table shows %s; "+
		"the table was rolled back or recreated, or another bookmark location writes to it: "+
		"run `icemerge bookmark reset --table %s` to process every file again (the rerun leaves rows that are already current unchanged)",
		ErrMismatch, s.Table, s.Token, shown, s.Table)
}

// upgrade turns the settled key of a bookmark of an earlier version into
// a watermark name: CDC files named up to it count as applied (Horizon)
// until a full listing records them. decode calls it on every state read
// (a method on the decoded state, not an UnmarshalJSON, which would have
// the JSON decoder go over a large bookmark twice more).
func (s *State) upgrade() {
	if k := s.Settled; strings.HasSuffix(k, ".parquet") {
		if name, ok := source.CDCName(k); ok {
			s.Settled = name
			s.Horizon = max(s.Horizon, name)
		} else {
			s.Settled, s.LegacySettled = "", max(s.LegacySettled, k)
		}
	}
}

// UnmarshalJSON reads a state as decode does (upgrade).
func (s *State) UnmarshalJSON(b []byte) error {
	var p stateJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = State(p)
	s.upgrade()
	return nil
}

// stateJSON is State without its UnmarshalJSON.
type stateJSON State

// SortedFiles lists the applied keys in order, for display.
func (s State) SortedFiles() []string {
	return slices.Sorted(maps.Keys(s.Files))
}
