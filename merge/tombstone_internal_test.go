package merge

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// orderKey orders tuples exactly as compareValues does, for every kind.
func TestOrderKeyPreservesOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	gen := func(kind byte) value {
		if r.IntN(8) == 0 {
			return value{null: true}
		}
		switch kind {
		case 'i':
			return value{kind: 'i', i: []int64{math.MinInt64, -1, 0, 1, math.MaxInt64, r.Int64() - r.Int64()}[r.IntN(6)]}
		case 'd':
			return value{kind: 'd', i: int64(r.IntN(5)) - 2, lo: r.Uint64()}
		case 'f':
			return value{kind: 'f', f: []float64{math.Inf(-1), -1.5, 0, 2.25, math.Inf(1), r.NormFloat64()}[r.IntN(6)]}
		}
		s := []string{"", "a", "a\x00", "a\x00b", "ab", "\xff", "𠮷", "😀"}[r.IntN(8)]
		return value{kind: 's', s: s}
	}
	for _, kinds := range []string{"i", "d", "f", "s", "si", "is"} {
		for range 2000 {
			a, b := make([]value, len(kinds)), make([]value, len(kinds))
			for i := range kinds {
				a[i], b[i] = gen(kinds[i]), gen(kinds[i])
			}
			if got, want := bytes.Compare(orderKey(a), orderKey(b)), compareValues(a, b); got != want {
				t.Fatalf("kinds %s: %v vs %v: orderKey compares %d, values %d", kinds, a, b, got, want)
			}
		}
	}
}

func TestNextTombstones(t *testing.T) {
	p := &Plan{tombDeleted: Tombstones{"k1": {2}, "k2": {1}}, tombRevived: []string{"k3"}}
	prev := Tombstones{"k1": {5}, "k2": {0}, "k3": {9}, "k4": {4}}
	next := p.NextTombstones(prev)
	want := Tombstones{"k1": {5}, "k2": {1}, "k4": {4}}
	if len(next) != len(want) {
		t.Fatalf("next %v, want %v", next, want)
	}
	for k, v := range want {
		if !bytes.Equal(next[k], v) {
			t.Errorf("%s: %v, want %v (a newer tombstone stays, a revived key goes)", k, next[k], v)
		}
	}
	if len(prev) != 4 {
		t.Error("prev was modified")
	}
}
