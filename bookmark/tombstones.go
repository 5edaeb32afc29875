package bookmark

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/icemerge/icemerge/merge"
)

// Tombstone is a key deleted by a committed run: Order is the delete's
// order value (merge's order-preserving encoding), At when it was recorded.
type Tombstone struct {
	Order []byte    `json:"o"`
	At    time.Time `json:"at"`
}

// TombstoneSet is the tombstones of a state: keys (merge's key encoding)
// deleted by committed runs, kept for a while so that older changes
// arriving late do not revive them. A TombstoneSet is a value: nothing
// changes one in place.
//
// It is held packed: per key, in key order, the key, the order value (each
// a uvarint length and its bytes) and the recording time (varint Unix
// nanoseconds), after a uvarint count. A bookmark stores it gzip'd after
// its JSON document (store.go), and a set loaded from one stays that way
// until a run plans with it: a run that finds nothing new neither inflates
// nor decodes it, and saves it again as it was read.
type TombstoneSet struct {
	n int
	d *tombData
}

// tombData holds a set's bytes: stored (gzip'd, as read or as last
// written) and packed, each made from the other on first use.
type tombData struct {
	inflate sync.Once
	deflate sync.Once
	z       []byte
	packed  []byte
	err     error // of inflating z
	zerr    error // of compressing packed
}

// errTombstones is a stored set that does not decode.
var errTombstones = errors.New("tombstones damaged: truncated or not in the packed form")

// NewTombstoneSet packs m, keyed by merge's key encoding.
func NewTombstoneSet(m map[string]Tombstone) TombstoneSet {
	var p packer
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p.add(k, m[k].Order, m[k].At.UnixNano())
	}
	return p.set()
}

// packer packs keys given in ascending order.
type packer struct {
	buf []byte
	n   int
}

func (p *packer) add(k string, order []byte, at int64) {
	p.buf = binary.AppendUvarint(p.buf, uint64(len(k)))
	p.buf = append(p.buf, k...)
	p.buf = binary.AppendUvarint(p.buf, uint64(len(order)))
	p.buf = append(p.buf, order...)
	p.buf = binary.AppendVarint(p.buf, at)
	p.n++
}

// set is the set packed: the count, then the keys.
func (p *packer) set() TombstoneSet {
	if p.n == 0 {
		return TombstoneSet{}
	}
	packed := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(p.buf)), uint64(p.n))
	return TombstoneSet{n: p.n, d: &tombData{packed: append(packed, p.buf...)}}
}

// storedTombstones is a set of n keys as a bookmark stores it: gzip'd.
func storedTombstones(z []byte, n int) TombstoneSet {
	if n == 0 {
		return TombstoneSet{}
	}
	return TombstoneSet{n: n, d: &tombData{z: z}}
}

// Len is the number of keys.
func (t TombstoneSet) Len() int { return t.n }

// IsZero reports whether the set is empty (for JSON's omitzero).
func (t TombstoneSet) IsZero() bool { return t.n == 0 }

// bytes returns the packed form, inflating and checking the stored one on
// first use.
func (t TombstoneSet) bytes() ([]byte, error) {
	if t.d == nil {
		return nil, nil
	}
	d := t.d
	d.inflate.Do(func() {
		if d.packed != nil {
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(d.z))
		if err == nil {
			d.packed, err = io.ReadAll(zr)
		}
		if err != nil {
			d.err = fmt.Errorf("%w: %w", errTombstones, err)
			return
		}
		if err := t.each(d.packed, func([]byte, []byte, int64) {}); err != nil {
			d.packed, d.err = nil, err
		}
	})
	return d.packed, d.err
}

// stored returns the set as a bookmark stores it: gzip'd.
func (t TombstoneSet) stored() ([]byte, error) {
	if t.d == nil {
		return nil, nil
	}
	d := t.d
	d.deflate.Do(func() {
		if d.z != nil {
			return
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, err := zw.Write(d.packed)
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			d.zerr = fmt.Errorf("compressing tombstones: %w", err)
			return
		}
		d.z = buf.Bytes()
	})
	return d.z, d.zerr
}

// each calls fn for every key of the packed form p in order (the key and
// its order value alias p) and checks the form as it goes (cursor.next).
func (t TombstoneSet) each(p []byte, fn func(key, order []byte, at int64)) error {
	c, err := t.cursor(p)
	for err == nil {
		var ok bool
		if ok, err = c.next(); ok {
			fn(c.key, c.order, c.at)
		} else if err == nil {
			return nil
		}
	}
	return err
}

// cursor reads the packed form p of t.
func (t TombstoneSet) cursor(p []byte) (*cursor, error) {
	if len(p) == 0 && t.n == 0 {
		return &cursor{}, nil
	}
	count, w := binary.Uvarint(p)
	if w <= 0 || count != uint64(t.n) {
		return nil, fmt.Errorf("%w: %d keys, the bookmark says %d", errTombstones, count, t.n)
	}
	return &cursor{p: p[w:], n: t.n}, nil
}

// cursor steps through a packed form, checking each length, that keys
// ascend and that nothing is left after the last.
type cursor struct {
	p     []byte
	n, i  int
	key   []byte
	order []byte
	at    int64
}

// next moves to the next key: false at the end.
func (c *cursor) next() (bool, error) {
	if c.i == c.n {
		if len(c.p) != 0 {
			return false, fmt.Errorf("%w: %d bytes after the last key", errTombstones, len(c.p))
		}
		return false, nil
	}
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(c.p)
		if w <= 0 || uint64(len(c.p)-w) < n {
			return nil, false
		}
		out := c.p[w : w+int(n) : w+int(n)]
		c.p = c.p[w+int(n):]
		return out, true
	}
	prev := c.key
	k, ok1 := field()
	o, ok2 := field()
	at, w := binary.Varint(c.p)
	if !ok1 || !ok2 || w <= 0 || (c.i > 0 && bytes.Compare(prev, k) >= 0) {
		return false, fmt.Errorf("%w: at key %d of %d", errTombstones, c.i+1, c.n)
	}
	c.p = c.p[w:]
	c.key, c.order, c.at = k, o, at
	c.i++
	return true, nil
}

// Decode returns the set keyed by merge's key encoding.
func (t TombstoneSet) Decode() (map[string]Tombstone, error) {
	p, err := t.bytes()
	if err != nil {
		return nil, err
	}
	out := make(map[string]Tombstone, t.n)
	err = t.each(p, func(k, o []byte, at int64) {
		out[string(k)] = Tombstone{Order: o, At: time.Unix(0, at).UTC()}
	})
	return out, err
}

// DecodedTombstones returns the tombstones as merge uses them.
func (s State) DecodedTombstones() (merge.Tombstones, error) {
	p, err := s.Tombstones.bytes()
	if err != nil {
		return nil, err
	}
	// The keys are copied into one string and the order values alias the
	// packed form: two allocations for all of them, not one a key.
	type entry struct {
		k0, k1 int
		order  []byte
	}
	entries := make([]entry, 0, s.Tombstones.n)
	keys := make([]byte, 0, len(p))
	err = s.Tombstones.each(p, func(k, o []byte, _ int64) {
		entries = append(entries, entry{len(keys), len(keys) + len(k), o})
		keys = append(keys, k...)
	})
	if err != nil {
		return nil, err
	}
	all := string(keys)
	out := make(merge.Tombstones, len(entries))
	for _, e := range entries {
		out[all[e.k0:e.k1]] = e.order
	}
	return out, nil
}

// EncodeTombstones turns merge's tombstones into the stored form, keeping
// the recording time of unchanged ones and dropping those older than ttl
// (ttl 0 keeps none: tombstones are off). The keys are walked in order
// beside the state's set, which is never built into a map.
func (s State) EncodeTombstones(next merge.Tombstones, now time.Time, ttl time.Duration) (TombstoneSet, error) {
	if ttl <= 0 {
		return TombstoneSet{}, nil
	}
	p, err := s.Tombstones.bytes()
	if err != nil {
		return TombstoneSet{}, err
	}
	old, err := s.Tombstones.cursor(p)
	if err != nil {
		return TombstoneSet{}, err
	}
	more, err := old.next()
	var out packer
	for _, k := range slices.Sorted(maps.Keys(next)) {
		for err == nil && more && string(old.key) < k {
			more, err = old.next()
		}
		if err != nil {
			return TombstoneSet{}, err
		}
		order, at := next[k], now.UnixNano()
		if more && string(old.key) == k && bytes.Equal(old.order, order) {
			at = old.at
		}
		if now.Sub(time.Unix(0, at)) <= ttl {
			out.add(k, order, at)
		}
	}
	return out.set(), nil
}

// MarshalJSON refuses: a bookmark stores its tombstones after its JSON
// document (encode), never in it.
func (t TombstoneSet) MarshalJSON() ([]byte, error) {
	return nil, errors.New("tombstones are stored after the bookmark's JSON document, not in it")
}

// tombstonesPacked is the version byte of the packed JSON form of earlier
// versions.
const tombstonesPacked = 1

// UnmarshalJSON reads the tombstones of a bookmark of an earlier version,
// which held them in its JSON document keyed by the base64 (unpadded) of
// merge's key encoding: as one base64 string of a packed list (a version
// byte, the count, then per key the base64 key, the order value and the
// recording time) or, earlier still, as an object. Keys that are not
// base64 are dropped, as those versions did when they planned.
func (t *TombstoneSet) UnmarshalJSON(b []byte) error {
	byBase64 := map[string]Tombstone{}
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &byBase64); err != nil {
			return err
		}
	} else {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("%w: %w", errTombstones, err)
		}
		if len(raw) == 0 || raw[0] != tombstonesPacked {
			return errTombstones
		}
		count, w := binary.Uvarint(raw[1:])
		if w <= 0 || count > uint64(len(raw)) {
			return errTombstones
		}
		// The same layout as the packed form, keys in base64 order.
		old := TombstoneSet{n: int(count)}
		if err := old.each(raw[1:], func(k, o []byte, at int64) {
			byBase64[string(k)] = Tombstone{Order: o, At: time.Unix(0, at).UTC()}
		}); err != nil {
			return err
		}
	}
	m := make(map[string]Tombstone, len(byBase64))
	for k, v := range byBase64 {
		if raw, err := base64.RawStdEncoding.DecodeString(k); err == nil {
			m[string(raw)] = v
		}
	}
	*t = NewTombstoneSet(m)
	return nil
}

// sectionName names the tombstone sets a bookmark stores after its JSON
// document.
const (
	sectionTombstones        = "tombstones"
	sectionPendingTombstones = "pending_tombstones"
)

// section is an entry of the document's table of what follows it: Bytes of
// a gzip'd tombstone set of Keys keys.
type section struct {
	Name  string `json:"name"`
	Keys  int    `json:"keys"`
	Bytes int    `json:"bytes"`
}
