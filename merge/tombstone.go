package merge

import (
	"bytes"
	"encoding/binary"
	"math"
)

// Tombstones remember the order value of keys a run deleted, so that a
// change older than the delete, arriving in a later run (a late file with
// an older name), does not bring the row back. The value is the greatest the
// key is known to have had when deleted: for a key-only delete, whose order
// value is null, the deleted row's (see the package documentation). Keys and order values are
// opaque bytes: the key encoding of the batch, and an order-preserving
// encoding of the order tuple (bytes.Compare orders them like the values).
type Tombstones map[string][]byte

// orderKey encodes an order tuple so that bytes.Compare orders encodings as
// compareValues orders tuples: a null is 0x00, any value 0x01 then its
// bytes; integers with the sign bit flipped, big endian; floats in IEEE
// total order; strings with 0x00 escaped as 0x00 0xFF and ended by 0x00 0x00.
func orderKey(vals []value) []byte {
	var b []byte
	for _, v := range vals {
		if v.null {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		switch v.kind {
		case 'i':
			b = binary.BigEndian.AppendUint64(b, uint64(v.i)^(1<<63))
		case 'd':
			b = binary.BigEndian.AppendUint64(b, uint64(v.i)^(1<<63))
			b = binary.BigEndian.AppendUint64(b, v.lo)
		case 'f':
			u := math.Float64bits(v.f)
			if u&(1<<63) != 0 {
				u = ^u
			} else {
				u |= 1 << 63
			}
			b = binary.BigEndian.AppendUint64(b, u)
		default:
			for i := 0; i < len(v.s); i++ {
				if v.s[i] == 0 {
					b = append(b, 0, 0xFF)
				} else {
					b = append(b, v.s[i])
				}
			}
			b = append(b, 0, 0)
		}
	}
	return b
}

// SetTombstones gives the batch the tombstones of earlier runs.
func (b *Batch) SetTombstones(t Tombstones) { b.tombstones = t }

// tombstoned reports whether a tombstone holds a delete newer than order.
func (b *Batch) tombstoned(key string, order []value) bool {
	t, ok := b.tombstones[key]
	return ok && bytes.Compare(t, orderKey(order)) > 0
}

// NextTombstones returns the tombstones after the plan is committed: the
// keys it deletes (or finds already absent) get the greatest order value
// known for them (the delete's own, when it has one) unless theirs is
// greater, the keys it writes lose theirs. Stale changes change nothing. prev is not
// modified.
func (p *Plan) NextTombstones(prev Tombstones) Tombstones {
	next := make(Tombstones, len(prev)+len(p.tombDeleted))
	for k, v := range prev {
		next[k] = v
	}
	for k, v := range p.tombDeleted {
		if old, ok := next[k]; !ok || bytes.Compare(v, old) > 0 {
			next[k] = v
		}
	}
	for _, k := range p.tombRevived {
		delete(next, k)
	}
	return next
}
