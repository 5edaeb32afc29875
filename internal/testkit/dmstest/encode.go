package dmstest

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// encoder turns the Go values of one column into parquet values.
type encoder struct {
	name     string
	typ      Type
	required bool
	node     parquet.Node
	encode   func(v any) (parquet.Value, error)
}

// encodersOf checks the columns and builds one encoder per file column,
// the Op column first when withOp is set.
func encodersOf(cols []Column, withOp bool) ([]encoder, error) {
	encs := make([]encoder, 0, len(cols)+1)
	seen := make(map[string]bool, len(cols)+1)
	if withOp {
		e, err := encoderOf(Column{Name: opColumn, Type: String})
		if err != nil {
			return nil, err
		}
		encs = append(encs, e)
		seen[opColumn] = true
	}
	for i, c := range cols {
		if c.Name == "" {
			return nil, fmt.Errorf("dmstest: column %d has no name", i)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("dmstest: duplicate column %q", c.Name)
		}
		seen[c.Name] = true
		e, err := encoderOf(c)
		if err != nil {
			return nil, err
		}
		encs = append(encs, e)
	}
	return encs, nil
}

func encoderOf(c Column) (encoder, error) {
	e := encoder{name: c.Name, typ: c.Type, required: c.Required}
	var node parquet.Node
	switch c.Type {
	case String:
		node, e.encode = parquet.String(), encodeString
	case JSON:
		node, e.encode = parquet.JSON(), encodeString
	case Enum:
		node, e.encode = parquet.Enum(), encodeString
	case Binary:
		node, e.encode = parquet.Leaf(parquet.ByteArrayType), encodeBinary
	case Int8:
		node, e.encode = parquet.Int(8), signed(8)
	case Int16:
		node, e.encode = parquet.Int(16), signed(16)
	case Int32:
		node, e.encode = parquet.Int(32), signed(32)
	case Int64:
		node, e.encode = parquet.Int(64), signed(64)
	case Uint8:
		node, e.encode = parquet.Uint(8), unsigned(8)
	case Uint16:
		node, e.encode = parquet.Uint(16), unsigned(16)
	case Uint32:
		node, e.encode = parquet.Uint(32), unsigned(32)
	case Uint64:
		node, e.encode = parquet.Uint(64), unsigned(64)
	case Bool:
		node, e.encode = parquet.Leaf(parquet.BooleanType), encodeBool
	case Float64:
		node, e.encode = parquet.Leaf(parquet.DoubleType), encodeFloat64
	case Float32:
		node, e.encode = parquet.Leaf(parquet.FloatType), encodeFloat32
	case Decimal, DecimalInt32, DecimalInt64:
		maxPrecision := map[Type]int{Decimal: 38, DecimalInt32: 9, DecimalInt64: 18}[c.Type]
		if c.Precision < 1 || c.Precision > maxPrecision {
			return e, fmt.Errorf("dmstest: column %q: decimal precision %d not in 1..%d", c.Name, c.Precision, maxPrecision)
		}
		if c.Scale < 0 || c.Scale > c.Precision {
			return e, fmt.Errorf("dmstest: column %q: decimal scale %d not in 0..%d", c.Name, c.Scale, c.Precision)
		}
		switch c.Type {
		case DecimalInt32:
			node = parquet.Decimal(c.Scale, c.Precision, parquet.Int32Type)
			e.encode = decimalIntEncoder(c.Precision, c.Scale, 32)
		case DecimalInt64:
			node = parquet.Decimal(c.Scale, c.Precision, parquet.Int64Type)
			e.encode = decimalIntEncoder(c.Precision, c.Scale, 64)
		default:
			n := decimalBytes(c.Precision)
			node = parquet.Decimal(c.Scale, c.Precision, parquet.FixedLenByteArrayType(n))
			e.encode = decimalEncoder(c.Precision, c.Scale, n)
		}
	case Date:
		node, e.encode = parquet.Date(), encodeDate
	case Timestamp:
		node, e.encode = parquet.TimestampAdjusted(parquet.Microsecond, true), timestampEncoder(time.Microsecond, false)
	case TimestampLocal:
		node, e.encode = parquet.TimestampAdjusted(parquet.Microsecond, false), timestampEncoder(time.Microsecond, true)
	case TimestampMillis:
		node, e.encode = parquet.TimestampAdjusted(parquet.Millisecond, true), timestampEncoder(time.Millisecond, false)
	case TimestampLocalMillis:
		node, e.encode = parquet.TimestampAdjusted(parquet.Millisecond, false), timestampEncoder(time.Millisecond, true)
	case TimestampNanos:
		node, e.encode = parquet.TimestampAdjusted(parquet.Nanosecond, true), timestampEncoder(time.Nanosecond, false)
	default:
		return e, fmt.Errorf("dmstest: column %q: unknown type %s", c.Name, c.Type)
	}
	if c.Type != Bool { // booleans have no dictionary encoding
		node = parquet.Encoded(node, &parquet.RLEDictionary)
	}
	if !c.Required {
		node = parquet.Optional(node)
	}
	e.node = node
	return e, nil
}

func typeError(v any, want string) error {
	return fmt.Errorf("got %T, want %s", v, want)
}

func encodeString(v any) (parquet.Value, error) {
	s, ok := v.(string)
	if !ok {
		return parquet.Value{}, typeError(v, "string")
	}
	return parquet.ByteArrayValue([]byte(s)), nil
}

func encodeBinary(v any) (parquet.Value, error) {
	b, ok := v.([]byte)
	if !ok {
		return parquet.Value{}, typeError(v, "[]byte")
	}
	if b == nil {
		b = []byte{} // a nil slice is an empty value here; nulls are a nil any
	}
	return parquet.ByteArrayValue(b), nil
}

func encodeBool(v any) (parquet.Value, error) {
	b, ok := v.(bool)
	if !ok {
		return parquet.Value{}, typeError(v, "bool")
	}
	return parquet.BooleanValue(b), nil
}

func encodeFloat64(v any) (parquet.Value, error) {
	switch f := v.(type) {
	case float64:
		return parquet.DoubleValue(f), nil
	case float32:
		return parquet.DoubleValue(float64(f)), nil
	}
	return parquet.Value{}, typeError(v, "float64")
}

func encodeFloat32(v any) (parquet.Value, error) {
	switch f := v.(type) {
	case float32:
		return parquet.FloatValue(f), nil
	case float64:
		// Only values a MySQL FLOAT can hold: a float64 literal like 0.1 would
		// silently become another number.
		if float64(float32(f)) == f || math.IsNaN(f) {
			return parquet.FloatValue(float32(f)), nil
		}
		return parquet.Value{}, fmt.Errorf("%v is not exactly a float32", f)
	}
	return parquet.Value{}, typeError(v, "float32")
}

// integerOf returns the sign and magnitude of any Go integer.
func integerOf(v any) (neg bool, abs uint64, ok bool) {
	var i int64
	switch x := v.(type) {
	case int:
		i = int64(x)
	case int8:
		i = int64(x)
	case int16:
		i = int64(x)
	case int32:
		i = int64(x)
	case int64:
		i = x
	case uint:
		return false, uint64(x), true
	case uint8:
		return false, uint64(x), true
	case uint16:
		return false, uint64(x), true
	case uint32:
		return false, uint64(x), true
	case uint64:
		return false, x, true
	default:
		return false, 0, false
	}
	if i < 0 {
		return true, uint64(-(i + 1)) + 1, true // no overflow at MinInt64
	}
	return false, uint64(i), true
}

func signed(bits uint) func(any) (parquet.Value, error) {
	limit := uint64(1) << (bits - 1) // |min|; max is limit-1
	return func(v any) (parquet.Value, error) {
		neg, abs, ok := integerOf(v)
		if !ok {
			return parquet.Value{}, typeError(v, "an integer")
		}
		if (neg && abs > limit) || (!neg && abs >= limit) {
			return parquet.Value{}, fmt.Errorf("%v out of range for a %d-bit signed integer", v, bits)
		}
		i := int64(abs)
		if neg {
			i = -int64(abs-1) - 1
		}
		if bits == 64 {
			return parquet.Int64Value(i), nil
		}
		return parquet.Int32Value(int32(i)), nil
	}
}

func unsigned(bits uint) func(any) (parquet.Value, error) {
	max := uint64(math.MaxUint64) >> (64 - bits)
	return func(v any) (parquet.Value, error) {
		neg, abs, ok := integerOf(v)
		if !ok {
			return parquet.Value{}, typeError(v, "an integer")
		}
		if neg || abs > max {
			return parquet.Value{}, fmt.Errorf("%v out of range for a %d-bit unsigned integer", v, bits)
		}
		if bits == 64 {
			// Parquet stores INT(64,false) in INT64 as the same 64 bits.
			return parquet.Int64Value(int64(abs)), nil
		}
		// INT(32,false) is stored in INT32 as the same 32 bits.
		return parquet.Int32Value(int32(uint32(abs))), nil
	}
}

func encodeDate(v any) (parquet.Value, error) {
	t, ok := v.(time.Time)
	if !ok {
		return parquet.Value{}, typeError(v, "time.Time")
	}
	y, m, d := t.Date()
	days := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
	if days < math.MinInt32 || days > math.MaxInt32 {
		return parquet.Value{}, fmt.Errorf("date %s out of range", t.Format(time.DateOnly))
	}
	return parquet.Int32Value(int32(days)), nil
}

// timestampEncoder encodes a time.Time as a count of units since the Unix
// epoch. With local set the wall clock of t is stored as if it were UTC, the
// way a DATETIME (no time zone) is stored.
func timestampEncoder(unit time.Duration, local bool) func(any) (parquet.Value, error) {
	perSec := int64(time.Second / unit)
	return func(v any) (parquet.Value, error) {
		t, ok := v.(time.Time)
		if !ok {
			return parquet.Value{}, typeError(v, "time.Time")
		}
		if local {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
		}
		sec := t.Unix()
		if sec > math.MaxInt64/perSec-1 || sec < math.MinInt64/perSec+1 {
			return parquet.Value{}, fmt.Errorf("timestamp %s out of range", t.Format(time.RFC3339))
		}
		// Nanosecond() is never negative, so this floors like DMS truncation.
		return parquet.Int64Value(sec*perSec + int64(t.Nanosecond())/int64(unit)), nil
	}
}

// decimalBytes is the smallest FIXED_LEN_BYTE_ARRAY width holding every
// unscaled value of the given precision in two's complement.
func decimalBytes(precision int) int {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	max.Sub(max, big.NewInt(1))
	// A signed n-byte integer holds up to 2^(8n-1)-1.
	return (max.BitLen() + 1 + 7) / 8
}

var decimalSyntax = regexp.MustCompile(`^([+-]?)([0-9]+)(?:\.([0-9]+))?$`)

// unscaledDecimal parses a decimal string of a DECIMAL(precision, scale)
// column into its unscaled integer.
func unscaledDecimal(v any, precision, scale int) (*big.Int, error) {
	s, ok := v.(string)
	if !ok {
		return nil, typeError(v, "a decimal string")
	}
	m := decimalSyntax.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("%q is not a plain decimal number", s)
	}
	sign, whole, frac := m[1], m[2], m[3]
	if len(frac) > scale {
		return nil, fmt.Errorf("%q has %d fraction digits, scale is %d", s, len(frac), scale)
	}
	digits := strings.TrimLeft(whole+frac+strings.Repeat("0", scale-len(frac)), "0")
	if len(digits) > precision {
		return nil, fmt.Errorf("%q needs %d digits, precision is %d", s, len(digits), precision)
	}
	unscaled := new(big.Int)
	if digits != "" {
		unscaled.SetString(digits, 10) // digits are checked by decimalSyntax
	}
	if sign == "-" {
		unscaled.Neg(unscaled)
	}
	return unscaled, nil
}

func decimalEncoder(precision, scale, width int) func(any) (parquet.Value, error) {
	modulus := new(big.Int).Lsh(big.NewInt(1), uint(8*width))
	return func(v any) (parquet.Value, error) {
		unscaled, err := unscaledDecimal(v, precision, scale)
		if err != nil {
			return parquet.Value{}, err
		}
		if unscaled.Sign() < 0 {
			unscaled.Add(unscaled, modulus)
		}
		return parquet.FixedLenByteArrayValue(unscaled.FillBytes(make([]byte, width))), nil
	}
}

// decimalIntEncoder stores the unscaled value in an INT32 or INT64, as
// Parquet allows for precision up to 9 and 18; the precision check keeps it
// in range.
func decimalIntEncoder(precision, scale, bits int) func(any) (parquet.Value, error) {
	return func(v any) (parquet.Value, error) {
		unscaled, err := unscaledDecimal(v, precision, scale)
		if err != nil {
			return parquet.Value{}, err
		}
		if bits == 32 {
			return parquet.Int32Value(int32(unscaled.Int64())), nil
		}
		return parquet.Int64Value(unscaled.Int64()), nil
	}
}
