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
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	Tombstones TombstoneSet `json:"tombstones,omitempty"`
}

// Tombstone is a key deleted by a committed run: Order is the delete's
// order value (merge's order-preserving encoding), At when it was recorded.
// The map key is the base64 of merge's key encoding.
type Tombstone struct {
	Order []byte    `json:"o"`
	At    time.Time `json:"at"`
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
	// Settled: every source object whose key sorts at or before it has been
	// applied, so listings start after it and Files forgets those keys.
	Settled string              `json:"settled,omitempty"`
	Files   map[string]FileInfo `json:"files"`
	// Tombstones keep deleted keys for a while, so older changes arriving
	// late do not revive them.
	Tombstones TombstoneSet `json:"tombstones,omitempty"`
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

// Applied reports whether the state has applied the object: its key is
// settled, or it was applied with the same size and ETag. A new key is
// unprocessed whatever its name or modification time; a known key whose size
// or ETag changed (DMS rewrote the object) is unprocessed again.
func (s State) Applied(o source.Object) bool {
	if s.Settled != "" && o.Key <= s.Settled {
		return true
	}
	fi, ok := s.Files[o.Key]
	return ok && fi.Size == o.Size && (fi.ETag == "" || o.ETag == "" || fi.ETag == o.ETag)
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
	if s.Pending == nil {
		return s
	}
	files := withFiles(s.Files, s.Pending.Files)
	if s.Pending.Tombstones != nil {
		s.Tombstones = s.Pending.Tombstones
	}
	s.Quarantined = quarantine(s.Quarantined, s.Pending.Files, s.Pending.Quarantined)
	s.LastRun = s.Pending.Started
	s.Files, s.Token, s.Pending = files, s.Pending.Token, nil
	s.Runs++
	s.Updated = now.UTC()
	return s
}

// Settle advances Settled over the applied CDC keys known for at least window
// (so any object that sorts before them and was late has had that long to
// appear and be applied) and forgets the applied keys at or before it. The
// assumption: DMS objects appear in listings within window of the objects
// named after them. A window of 0 or less never settles: every run lists the
// whole folder. left are the listed objects still unprocessed (a bounded
// run leaves some): Settled never reaches one.
func (s State) Settle(now time.Time, window time.Duration, left []source.Object) State {
	if window <= 0 || s.Pending != nil {
		return s
	}
	limit := now.Add(-window)
	settled := s.Settled
	minLeft, bounded := "", false
	for _, o := range left {
		if !bounded || o.Key < minLeft {
			minLeft, bounded = o.Key, true
		}
	}
	for k, fi := range s.Files {
		// Only CDC names settle: they grow with time, while full-load
		// names (LOAD…) sort after every CDC name yet come first.
		if source.Classify(k) != merge.CDC || (bounded && k >= minLeft) {
			continue
		}
		if k > settled && !fi.Applied.IsZero() && !fi.Applied.After(limit) {
			settled = k
		}
	}
	if settled == s.Settled {
		return s
	}
	files := make(map[string]FileInfo, len(s.Files))
	for k, fi := range s.Files {
		if k > settled {
			files[k] = fi
		}
	}
	s.Settled, s.Files = settled, files
	return s
}

// Absorb marks objs applied without a commit: their changes leave the table
// as it is (deletes of absent keys, changes older than the table's rows), so
// the table already reflects them and the token stays.
func (s State) Absorb(objs []source.Object, now time.Time) State {
	s.Files = withFiles(s.Files, filesOf(objs, now))
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

// DecodedTombstones returns the tombstones as merge uses them.
func (s State) DecodedTombstones() merge.Tombstones {
	out := make(merge.Tombstones, len(s.Tombstones))
	for k, t := range s.Tombstones {
		if raw, err := base64.RawStdEncoding.DecodeString(k); err == nil {
			out[string(raw)] = t.Order
		}
	}
	return out
}

// EncodeTombstones turns merge's tombstones into the stored form, keeping
// the recording time of unchanged ones and dropping those older than ttl
// (ttl 0 keeps none: tombstones are off).
func (s State) EncodeTombstones(next merge.Tombstones, now time.Time, ttl time.Duration) map[string]Tombstone {
	out := map[string]Tombstone{}
	if ttl <= 0 {
		return out
	}
	for raw, order := range next {
		k := base64.RawStdEncoding.EncodeToString([]byte(raw))
		t := Tombstone{Order: order, At: now.UTC()}
		if old, ok := s.Tombstones[k]; ok && bytes.Equal(old.Order, order) {
			t.At = old.At
		}
		if now.Sub(t.At) <= ttl {
			out[k] = t
		}
	}
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

// SortedFiles lists the applied keys in order, for display.
func (s State) SortedFiles() []string {
	return slices.Sorted(maps.Keys(s.Files))
}

// TombstoneSet is the tombstones of a state, by the base64 of merge's key
// encoding. In JSON it is one base64 string of a packed binary list, which a
// run decodes in milliseconds even with hundreds of thousands of keys; the
// object form of earlier versions is read too.
type TombstoneSet map[string]Tombstone

// tombstonesPacked is the version byte of the packed form.
const tombstonesPacked = 1

// MarshalJSON packs the set: a version byte, the count, then per key in
// order: key, order value (each uvarint length and bytes) and the
// recording time (varint Unix nanoseconds).
func (t TombstoneSet) MarshalJSON() ([]byte, error) {
	buf := binary.AppendUvarint([]byte{tombstonesPacked}, uint64(len(t)))
	for _, k := range slices.Sorted(maps.Keys(t)) {
		v := t[k]
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v.Order)))
		buf = append(buf, v.Order...)
		buf = binary.AppendVarint(buf, v.At.UnixNano())
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(buf))
}

// UnmarshalJSON reads the packed form or the object form.
func (t *TombstoneSet) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var m map[string]Tombstone
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		*t = m
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("tombstones: %w", err)
	}
	bad := errors.New("tombstones: truncated or not in the packed form")
	if len(raw) == 0 || raw[0] != tombstonesPacked {
		return bad
	}
	raw = raw[1:]
	next := func() ([]byte, bool) {
		n, w := binary.Uvarint(raw)
		if w <= 0 || uint64(len(raw)-w) < n {
			return nil, false
		}
		out := raw[w : w+int(n)]
		raw = raw[w+int(n):]
		return out, true
	}
	count, w := binary.Uvarint(raw)
	if w <= 0 || count > uint64(len(raw)) {
		return bad
	}
	raw = raw[w:]
	out := make(TombstoneSet, count)
	for range count {
		k, ok1 := next()
		o, ok2 := next()
		at, w := binary.Varint(raw)
		if !ok1 || !ok2 || w <= 0 {
			return bad
		}
		raw = raw[w:]
		out[string(k)] = Tombstone{Order: bytes.Clone(o), At: time.Unix(0, at).UTC()}
	}
	*t = out
	return nil
}
