package merge

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// value is one order-by value. Values of one column compare by their natural
// order; a null sorts before everything (for orderKey), but the batch never
// compares an order tuple holding one: see nullOrder.
type value struct {
	null bool
	kind byte // 'i' integer-like, 'd' decimal, 'f' float, 's' string or binary
	i    int64
	lo   uint64 // low bits of a decimal, whose high bits are in i
	f    float64
	s    string
}

func compareValue(a, b value) int {
	switch {
	case a.null && b.null:
		return 0
	case a.null:
		return -1
	case b.null:
		return 1
	}
	switch a.kind {
	case 'i':
		return cmp.Compare(a.i, b.i)
	case 'd':
		return decimal128.New(a.i, a.lo).Cmp(decimal128.New(b.i, b.lo))
	case 'f':
		return cmp.Compare(a.f, b.f)
	default:
		return cmp.Compare(a.s, b.s)
	}
}

// nullOrder reports whether an order tuple holds a null: such a change is
// ordered by source order alone (the package documentation has the rule).
// An empty tuple (no order columns) is not null.
func nullOrder(vs []value) bool {
	for _, v := range vs {
		if v.null {
			return true
		}
	}
	return false
}

// compareValues compares order tuples lexicographically.
func compareValues(a, b []value) int {
	for i := range a {
		if c := compareValue(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// valueAt reads arr[i] as an order value. Integer-like types (ints, dates,
// timestamps, booleans) share one kind so a promoted column still compares
// with values read from files written before the promotion.
func valueAt(arr arrow.Array, i int) (value, error) {
	if arr.IsNull(i) {
		return value{null: true}, nil
	}
	if v, ok := intValue(arr, i); ok {
		return value{kind: 'i', i: v}, nil
	}
	switch a := arr.(type) {
	case *array.Timestamp:
		return value{kind: 'i', i: int64(a.Value(i))}, nil
	case *array.Date32:
		return value{kind: 'i', i: int64(a.Value(i))}, nil
	case *array.Boolean:
		if a.Value(i) {
			return value{kind: 'i', i: 1}, nil
		}
		return value{kind: 'i'}, nil
	case *array.Decimal128:
		n := a.Value(i)
		return value{kind: 'd', i: n.HighBits(), lo: n.LowBits()}, nil
	case *array.Float32:
		return value{kind: 'f', f: float64(a.Value(i))}, nil
	case *array.Float64:
		return value{kind: 'f', f: a.Value(i)}, nil
	case *array.Uint64:
		n := decimal128.FromU64(a.Value(i))
		return value{kind: 'd', i: n.HighBits(), lo: n.LowBits()}, nil
	}
	if s, ok := stringAt(arr, i); ok {
		return value{kind: 's', s: s}, nil
	}
	return value{}, fmt.Errorf("%w: cannot order by %s", ErrUnsupportedType, arr.DataType())
}

// appendKey appends an injective encoding of arr[i] to buf. Integer-like
// values share one encoding, as in valueAt. ok is false for a null.
func appendKey(buf []byte, arr arrow.Array, i int) (_ []byte, ok bool, err error) {
	// Fast paths for the usual keys; the same bytes as below.
	switch a := arr.(type) {
	case *array.Int32:
		if a.IsNull(i) {
			return buf, false, nil
		}
		return binary.BigEndian.AppendUint64(append(buf, 'i'), uint64(int64(a.Value(i)))), true, nil
	case *array.Int64:
		if a.IsNull(i) {
			return buf, false, nil
		}
		return binary.BigEndian.AppendUint64(append(buf, 'i'), uint64(a.Value(i))), true, nil
	}
	v, err := valueAt(arr, i)
	if err != nil || v.null {
		return buf, false, err
	}
	buf = append(buf, v.kind)
	switch v.kind {
	case 'i':
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.i))
	case 'd':
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.i))
		buf = binary.BigEndian.AppendUint64(buf, v.lo)
	case 'f':
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(v.f))
	default:
		buf = binary.AppendUvarint(buf, uint64(len(v.s)))
		buf = append(buf, v.s...)
	}
	return buf, true, nil
}
