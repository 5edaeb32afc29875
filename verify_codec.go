package icemerge

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/icemerge/icemerge/catalog"
)

// The canonical encoding of a row, which `icemerge verify` hashes on both
// sides: the value the table holds for each compared column, in the
// table's type (docs/semantics.md, Type mapping), so a row read from the
// source database and the same row read from the table encode to the same
// bytes. A value is a tag byte (0 null, 1 a value) and then, by the
// column's class: 8 bytes for integers, dates (days) and timestamps
// (microseconds), big-endian with the sign bit flipped so that bytes sort
// as numbers do; 4 or 8 bytes of a float's bits (every NaN as one); 16
// bytes of a decimal's unscaled value at the table's scale, sorting as
// numbers do; 1 byte for a boolean; a length and the bytes for strings and
// binaries. The encoding is lossless: a repair decodes it back into the
// table's Arrow types.

// vclass is how a column's values are encoded: its table type's family.
type vclass uint8

const (
	cInt  vclass = iota // int, long
	cF32                // float
	cF64                // double
	cDec                // decimal(p,s)
	cDate               // date
	cTS                 // timestamp, timestamptz
	cStr                // string
	cBin                // binary
	cBool               // boolean
)

// skind is how a source database's text of a column becomes the table's
// value, where the type mapping needs more than a parse.
type skind uint8

const (
	sPlain   skind = iota
	sFloat32       // a 4-byte float (FLOAT, REAL): parsed as float32, then widened
	sMyBit         // MySQL BIT: bytes, true when any bit is set
	sMyTime        // MySQL TIME: DMS writes [-]HH:MM:SS.ffffff
	sMyDate        // MySQL DATE, DATETIME, TIMESTAMP: zero and invalid dates are null
	sPgDate        // PostgreSQL date and timestamps: BC, infinity, the +00 of timestamptz
	sPgBytea       // PostgreSQL bytea in hex output: \x…
	sPgBool        // PostgreSQL boolean: t or f
)

// vcol is one compared column: the table's column and the source's.
type vcol struct {
	name    string         // the table's column
	typ     arrow.DataType // the table's stored type
	class   vclass
	prec    int32  // cDec
	scale   int32  // cDec
	int32   bool   // cInt: the table's int (32 bits)
	src     string // the source's column, as the source spells it
	srcType string // the source's type name, upper case
	skind   skind
	json    bool // compared as canonical JSON (MySQL's JSON type)
}

// classOf is the encoding class of a stored table type.
func classOf(dt arrow.DataType) (vclass, error) {
	switch dt.ID() {
	case arrow.INT32, arrow.INT64:
		return cInt, nil
	case arrow.FLOAT32:
		return cF32, nil
	case arrow.FLOAT64:
		return cF64, nil
	case arrow.DECIMAL128:
		return cDec, nil
	case arrow.DATE32:
		return cDate, nil
	case arrow.TIMESTAMP:
		return cTS, nil
	case arrow.STRING:
		return cStr, nil
	case arrow.BINARY:
		return cBin, nil
	case arrow.BOOL:
		return cBool, nil
	}
	return 0, fmt.Errorf("icemerge verify cannot compare the table type %s", dt)
}

func newVCol(name string, dt arrow.DataType) (*vcol, error) {
	cl, err := classOf(dt)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", name, err)
	}
	c := &vcol{name: name, typ: dt, class: cl, int32: dt.ID() == arrow.INT32}
	if d, ok := dt.(*arrow.Decimal128Type); ok {
		c.prec, c.scale = d.Precision, d.Scale
	}
	return c, nil
}

// ---- fixed-width helpers

func appendI64(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63))
}

func readI64(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func appendDec(dst []byte, n decimal128.Num) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(n.HighBits())^(1<<63))
	return binary.BigEndian.AppendUint64(dst, n.LowBits())
}

func readDec(b []byte) decimal128.Num {
	return decimal128.New(int64(binary.BigEndian.Uint64(b)^(1<<63)), binary.BigEndian.Uint64(b[8:]))
}

func appendF32(dst []byte, f float32) []byte {
	bits := math.Float32bits(f)
	if f != f {
		bits = 0x7fc00000
	}
	return binary.BigEndian.AppendUint32(dst, bits)
}

func appendF64(dst []byte, f float64) []byte {
	bits := math.Float64bits(f)
	if f != f {
		bits = 0x7ff8000000000000
	}
	return binary.BigEndian.AppendUint64(dst, bits)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// str views b as a string for a parse that does not keep it.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// ---- the table's side

// tableGetter appends the canonical value of row i of one column chunk.
type tableGetter func(dst []byte, i int) []byte

// getter reads a column chunk of the table as c's canonical values. Files
// written before a column was widened hold the narrower type (int for a
// long, float for a double): they read as the wider value, as the table
// shows them; a column added after a file was written reads as nulls.
func (c *vcol) getter(a arrow.Array) (tableGetter, error) {
	if a.DataType().ID() == arrow.NULL {
		return func(dst []byte, _ int) []byte { return append(dst, 0) }, nil
	}
	valid := func(i int) bool { return a.IsValid(i) }
	wrap := func(f func(dst []byte, i int) []byte) tableGetter {
		return func(dst []byte, i int) []byte {
			if !valid(i) {
				return append(dst, 0)
			}
			return f(append(dst, 1), i)
		}
	}
	mismatch := fmt.Errorf("column %s: a table data file holds %s where the table's type is %s", c.name, a.DataType(), c.typ)
	switch c.class {
	case cInt:
		switch x := a.(type) {
		case *array.Int32:
			return wrap(func(dst []byte, i int) []byte { return appendI64(dst, int64(x.Value(i))) }), nil
		case *array.Int64:
			return wrap(func(dst []byte, i int) []byte { return appendI64(dst, x.Value(i)) }), nil
		}
	case cF32:
		if x, ok := a.(*array.Float32); ok {
			return wrap(func(dst []byte, i int) []byte { return appendF32(dst, x.Value(i)) }), nil
		}
	case cF64:
		switch x := a.(type) {
		case *array.Float32:
			return wrap(func(dst []byte, i int) []byte { return appendF64(dst, float64(x.Value(i))) }), nil
		case *array.Float64:
			return wrap(func(dst []byte, i int) []byte { return appendF64(dst, x.Value(i)) }), nil
		}
	case cDec:
		if x, ok := a.(*array.Decimal128); ok {
			from := x.DataType().(*arrow.Decimal128Type).Scale
			if from == c.scale {
				return wrap(func(dst []byte, i int) []byte { return appendDec(dst, x.Value(i)) }), nil
			}
			return wrap(func(dst []byte, i int) []byte {
				n, err := x.Value(i).Rescale(from, c.scale)
				if err != nil { // cannot happen for a widened decimal; keep the raw value, it will differ
					n = x.Value(i)
				}
				return appendDec(dst, n)
			}), nil
		}
	case cDate:
		if x, ok := a.(*array.Date32); ok {
			return wrap(func(dst []byte, i int) []byte { return appendI64(dst, int64(x.Value(i))) }), nil
		}
	case cTS:
		if x, ok := a.(*array.Timestamp); ok {
			div, mul := int64(1), int64(1)
			switch x.DataType().(*arrow.TimestampType).Unit {
			case arrow.Second:
				mul = 1_000_000
			case arrow.Millisecond:
				mul = 1_000
			case arrow.Nanosecond:
				div = 1_000
			}
			return wrap(func(dst []byte, i int) []byte {
				v := int64(x.Value(i))
				if div > 1 {
					v = floorDiv(v, div)
				}
				return appendI64(dst, v*mul)
			}), nil
		}
	case cStr, cBin:
		var val func(i int) []byte
		switch x := a.(type) {
		case *array.String:
			val = func(i int) []byte { return unsafe.Slice(unsafe.StringData(x.Value(i)), len(x.Value(i))) }
		case *array.Binary:
			val = x.Value
		case *array.LargeString:
			val = func(i int) []byte { return []byte(x.Value(i)) }
		default:
			return nil, mismatch
		}
		if c.json {
			return wrap(func(dst []byte, i int) []byte { return appendBytes(dst, canonicalJSON(val(i))) }), nil
		}
		return wrap(func(dst []byte, i int) []byte { return appendBytes(dst, val(i)) }), nil
	case cBool:
		if x, ok := a.(*array.Boolean); ok {
			return wrap(func(dst []byte, i int) []byte {
				if x.Value(i) {
					return append(dst, 1)
				}
				return append(dst, 0)
			}), nil
		}
	}
	return nil, mismatch
}

// streamGetter reads a column of a batch of the table's rows (StreamLive)
// as c's canonical values, exactly as getter reads the same column as
// Arrow (a repair locates rows with getter): the same widenings, nulls for
// a column the file lacks, and the same types refused.
func (c *vcol) streamGetter(v *catalog.ColumnValues) (tableGetter, error) {
	if v.Kind == catalog.KindNull {
		return func(dst []byte, _ int) []byte { return append(dst, 0) }, nil
	}
	wrap := func(f func(dst []byte, i int) []byte) tableGetter {
		if len(v.Null) == 0 {
			return func(dst []byte, i int) []byte { return f(append(dst, 1), i) }
		}
		null := v.Null
		return func(dst []byte, i int) []byte {
			if null[i] {
				return append(dst, 0)
			}
			return f(append(dst, 1), i)
		}
	}
	plainInt := func(bits int8) bool {
		return v.Logical == catalog.LogicalNone || (v.Logical == catalog.LogicalInt && v.IntBits == bits && v.Signed)
	}
	mismatch := fmt.Errorf("column %s: a table data file holds %s where the table's type is %s", c.name, v.Type, c.typ)
	switch c.class {
	case cInt:
		switch {
		case v.Kind == catalog.KindInt32 && plainInt(32):
			x := v.Int32
			return wrap(func(dst []byte, i int) []byte { return appendI64(dst, int64(x[i])) }), nil
		case v.Kind == catalog.KindInt64 && plainInt(64):
			x := v.Int64
			return wrap(func(dst []byte, i int) []byte { return appendI64(dst, x[i]) }), nil
		}
	case cF32:
		if v.Kind == catalog.KindFloat32 && v.Logical == catalog.LogicalNone {
			x := v.Float32
			return wrap(func(dst []byte, i int) []byte { return appendF32(dst, x[i]) }), nil
		}
	case cF64:
		switch {
		case v.Kind == catalog.KindFloat32 && v.Logical == catalog.LogicalNone:
			x := v.Float32
			return wrap(func(dst []byte, i int) []byte { return appendF64(dst, float64(x[i])) }), nil
		case v.Kind == catalog.KindFloat64 && v.Logical == catalog.LogicalNone:
			x := v.Float64
			return wrap(func(dst []byte, i int) []byte { return appendF64(dst, x[i]) }), nil
		}
	case cDec:
		if v.Logical != catalog.LogicalDecimal {
			break
		}
		var num func(i int) decimal128.Num
		switch v.Kind {
		case catalog.KindInt32:
			x := v.Int32
			num = func(i int) decimal128.Num { return decimal128.FromI64(int64(x[i])) }
		case catalog.KindInt64:
			x := v.Int64
			num = func(i int) decimal128.Num { return decimal128.FromI64(x[i]) }
		case catalog.KindBytes:
			x := v.Bytes
			for i, b := range x {
				if len(b) > 16 && (len(v.Null) == 0 || !v.Null[i]) {
					return nil, fmt.Errorf("column %s: a table data file holds a decimal of %d bytes: more than decimal(38) holds", c.name, len(b))
				}
			}
			num = func(i int) decimal128.Num { return decimalFromBigEndian(x[i]) }
		default:
			return nil, mismatch
		}
		if from := v.Scale; from != c.scale {
			return wrap(func(dst []byte, i int) []byte {
				n, err := num(i).Rescale(from, c.scale)
				if err != nil { // cannot happen for a widened decimal; keep the raw value, it will differ
					n = num(i)
				}
				return appendDec(dst, n)
			}), nil
		}
		return wrap(func(dst []byte, i int) []byte { return appendDec(dst, num(i)) }), nil
	case cDate:
		if v.Kind == catalog.KindInt32 && v.Logical == catalog.LogicalDate {
			x := v.Int32
			return wrap(func(dst []byte, i int) []byte { return appendI64(dst, int64(x[i])) }), nil
		}
	case cTS:
		if v.Kind == catalog.KindInt64 && v.Logical == catalog.LogicalTimestamp {
			x := v.Int64
			switch v.PerSecond {
			case 1_000:
				return wrap(func(dst []byte, i int) []byte { return appendI64(dst, x[i]*1_000) }), nil
			case 1_000_000:
				return wrap(func(dst []byte, i int) []byte { return appendI64(dst, x[i]) }), nil
			case 1_000_000_000:
				return wrap(func(dst []byte, i int) []byte { return appendI64(dst, floorDiv(x[i], 1_000)) }), nil
			}
		}
	case cStr, cBin:
		// Strings, binaries and byte strings of another annotation (JSON,
		// ENUM) alike, as Arrow reads them as strings or binaries.
		if v.Kind != catalog.KindBytes || v.Fixed || v.Logical == catalog.LogicalDecimal {
			break
		}
		x := v.Bytes
		if c.json {
			return wrap(func(dst []byte, i int) []byte { return appendBytes(dst, canonicalJSON(x[i])) }), nil
		}
		return wrap(func(dst []byte, i int) []byte { return appendBytes(dst, x[i]) }), nil
	case cBool:
		if v.Kind == catalog.KindBool {
			x := v.Bool
			return wrap(func(dst []byte, i int) []byte { return append(dst, b2u(x[i])) }), nil
		}
	}
	return nil, mismatch
}

// decimalFromBigEndian is a Parquet decimal's unscaled value: big-endian
// two's complement of at most 16 bytes.
func decimalFromBigEndian(b []byte) decimal128.Num {
	if len(b) == 0 {
		return decimal128.Num{}
	}
	var buf [16]byte
	if b[0]&0x80 != 0 {
		for i := range buf {
			buf[i] = 0xff
		}
	}
	copy(buf[16-len(b):], b)
	return decimal128.New(int64(binary.BigEndian.Uint64(buf[:8])), binary.BigEndian.Uint64(buf[8:]))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// canonicalJSON is a JSON text with its object keys sorted and no
// insignificant white space, numbers as written: MySQL's JSON type
// returns its own normalised text, which need not be the text DMS wrote.
// Text that does not parse is kept as it is.
func canonicalJSON(b []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return b
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

// ---- the source database's side

// unverifiable is why a source value cannot be compared: DMS's mapping of
// it is not known (or it does not fit the table's type), so icemerge
// refuses to guess.
type unverifiable string

// appendSource appends the canonical value of the source's text v (nil: a
// null) of column c; a non-empty reason says the value cannot be mapped.
func (c *vcol) appendSource(dst, v []byte) ([]byte, unverifiable) {
	if v == nil {
		return append(dst, 0), ""
	}
	switch c.class {
	case cInt:
		n, err := strconv.ParseInt(str(v), 10, 64)
		if err != nil {
			return dst, c.bad(v, "not an integer")
		}
		if c.int32 && (n < math.MinInt32 || n > math.MaxInt32) {
			return dst, c.bad(v, "does not fit the table's int")
		}
		return appendI64(append(dst, 1), n), ""
	case cF32, cF64:
		bits := 64
		if c.class == cF32 || c.skind == sFloat32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(str(v), bits)
		if err != nil && !isRangeErr(err) {
			return dst, c.bad(v, "not a number")
		}
		if c.class == cF32 {
			return appendF32(append(dst, 1), float32(f)), ""
		}
		return appendF64(append(dst, 1), f), ""
	case cDec:
		n, why := parseDecimal(v, c.prec, c.scale)
		if why != "" {
			return dst, c.bad(v, why)
		}
		return appendDec(append(dst, 1), n), ""
	case cDate, cTS:
		us, null, why := c.parseTime(v)
		if why != "" {
			return dst, c.bad(v, why)
		}
		if null {
			return append(dst, 0), ""
		}
		if c.class == cDate {
			return appendI64(append(dst, 1), floorDiv(us, 86_400_000_000)), ""
		}
		return appendI64(append(dst, 1), us), ""
	case cStr, cBin:
		switch {
		case c.skind == sMyTime && c.class == cStr:
			t, ok := dmsTime(v)
			if !ok {
				return dst, c.bad(v, "not a TIME")
			}
			return appendBytes(append(dst, 1), t), ""
		case c.skind == sPgBytea:
			b, err := hex.DecodeString(strings.TrimPrefix(str(v), `\x`))
			if err != nil {
				return dst, c.bad(v, "not hex bytea output")
			}
			return appendBytes(append(dst, 1), b), ""
		case c.json:
			return appendBytes(append(dst, 1), canonicalJSON(v)), ""
		}
		return appendBytes(append(dst, 1), v), ""
	case cBool:
		switch c.skind {
		case sMyBit:
			return append(dst, 1, b2u(len(bytes.Trim(v, "\x00")) > 0)), ""
		case sPgBool:
			switch str(v) {
			case "t", "true":
				return append(dst, 1, 1), ""
			case "f", "false":
				return append(dst, 1, 0), ""
			}
		default:
			if n, err := strconv.ParseInt(str(v), 10, 64); err == nil && (n == 0 || n == 1) {
				return append(dst, 1, byte(n)), ""
			}
		}
		return dst, c.bad(v, "not a boolean")
	}
	return dst, c.bad(v, "no mapping")
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func (c *vcol) bad(v []byte, why string) unverifiable {
	s := string(v)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return unverifiable(fmt.Sprintf("column %s (%s) value %q: %s", c.name, c.srcType, s, why))
}

var pow10 = func() [19]uint64 {
	var p [19]uint64
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// parseDecimal reads a decimal text ([-]digits[.digits]) as its unscaled
// value at scale. Fraction digits beyond the scale are dropped when they
// are zeros, or when truncating and rounding give the same value (the
// first dropped digit is below 5): whether DMS rounds or truncates (a
// PostgreSQL NUMERIC without precision becomes NUMERIC(28,6)) is not
// known, so a value where the two differ cannot be verified. It allocates
// nothing but its reasons: it runs for every decimal of every source row.
func parseDecimal(v []byte, prec, scale int32) (decimal128.Num, string) {
	s := v
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	intPart, frac := s, []byte(nil)
	if i := bytes.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
	}
	if len(intPart) == 0 && len(frac) == 0 {
		return decimal128.Num{}, "not a decimal"
	}
	if !allDigits(intPart) || !allDigits(frac) {
		return decimal128.Num{}, "not a decimal (NaN and infinity have no known DMS form)"
	}
	if int32(len(frac)) > scale {
		extra := frac[scale:]
		if len(bytes.TrimLeft(extra, "0")) != 0 && extra[0] >= '5' {
			return decimal128.Num{}, fmt.Sprintf("more than %d fraction digits, where DMS's rounding or truncation is not known", scale)
		}
		frac = frac[:scale]
	}
	// The unscaled value's digits are intPart, frac and scale-len(frac)
	// zeros; leading zeros do not count against the precision.
	intPart = bytes.TrimLeft(intPart, "0")
	pad := int(scale) - len(frac)
	if len(intPart) == 0 {
		frac = bytes.TrimLeft(frac, "0")
		if len(frac) == 0 {
			pad = 0
		}
	}
	if int32(len(intPart)+len(frac)+pad) > prec {
		return decimal128.Num{}, fmt.Sprintf("does not fit the table's decimal(%d,%d)", prec, scale)
	}
	if len(intPart)+len(frac)+pad > 38 {
		return decimal128.Num{}, "not a decimal" // more digits than 128 bits hold
	}
	var hi, lo uint64
	for _, part := range [2][]byte{intPart, frac} {
		for _, ch := range part {
			h, l := bits.Mul64(lo, 10)
			var c uint64
			lo, c = bits.Add64(l, uint64(ch-'0'), 0)
			hi = hi*10 + h + c
		}
	}
	for range pad {
		h, l := bits.Mul64(lo, 10)
		lo, hi = l, hi*10+h
	}
	n := decimal128.New(int64(hi), lo)
	if neg {
		n = n.Negate()
	}
	return n, ""
}

func allDigits(b []byte) bool {
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return true
}

// parseTime reads a source date or timestamp text (YYYY-MM-DD[ HH:MM:SS[.f]])
// as microseconds since the epoch of its wall clock (the session is in
// UTC, so a timestamptz's wall clock is its instant). null: a MySQL zero
// or invalid date, which DMS writes as null.
func (c *vcol) parseTime(v []byte) (us int64, null bool, why string) {
	s := str(v)
	bc := false
	if c.skind == sPgDate {
		if s == "infinity" || s == "-infinity" {
			return 0, false, "infinity has no known DMS form"
		}
		if t, ok := strings.CutSuffix(s, " BC"); ok {
			s, bc = t, true
		}
		s = strings.TrimSuffix(s, "+00") // timestamptz in a UTC session
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false, "not a date or timestamp"
	}
	y, ok1 := atoi(s[0:4])
	mo, ok2 := atoi(s[5:7])
	d, ok3 := atoi(s[8:10])
	if !ok1 || !ok2 || !ok3 {
		return 0, false, "not a date or timestamp"
	}
	var h, mi, sec, micro int
	if rest := s[10:]; rest != "" {
		if len(rest) < 9 || (rest[0] != ' ' && rest[0] != 'T') || rest[3] != ':' || rest[6] != ':' {
			return 0, false, "not a timestamp"
		}
		var ok4, ok5, ok6 bool
		h, ok4 = atoi(rest[1:3])
		mi, ok5 = atoi(rest[4:6])
		sec, ok6 = atoi(rest[7:9])
		if !ok4 || !ok5 || !ok6 {
			return 0, false, "not a timestamp"
		}
		if f := rest[9:]; f != "" {
			if f[0] != '.' || len(f) < 2 || len(f) > 7 {
				return 0, false, "not a timestamp (more than microseconds?)"
			}
			var ok7 bool
			if micro, ok7 = atoi(f[1:]); !ok7 {
				return 0, false, "not a timestamp"
			}
			micro *= int(pow10[7-len(f)]) // to microseconds, without a concatenation's allocation
		}
	}
	if c.skind == sMyDate {
		// Zero dates (0000-00-00), dates with a zero part and dates the
		// calendar lacks (02-31 under ALLOW_INVALID_DATES): DMS writes null.
		if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || y < 1 || h > 23 || mi > 59 || sec > 59 {
			return 0, true, ""
		}
	} else if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || sec > 60 {
		return 0, false, "not a calendar date"
	}
	if bc {
		y = 1 - y // 1 BC is year 0
	}
	days := daysFromCivil(y, mo, d)
	return days*86_400_000_000 + int64(h)*3_600_000_000 + int64(mi)*60_000_000 + int64(sec)*1_000_000 + int64(micro), false, ""
}

func atoi(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, len(s) > 0
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// dmsTime writes a MySQL TIME text as DMS does: [-]HH:MM:SS.ffffff, hours
// unbounded (to 838).
func dmsTime(v []byte) ([]byte, bool) {
	s := str(v)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 || len(frac) > 6 {
		return nil, false
	}
	h, ok1 := atoi(parts[0])
	m, ok2 := atoi(parts[1])
	sec, ok3 := atoi(parts[2])
	us := 0
	ok4 := true
	if frac != "" {
		us, ok4 = atoi((frac + "00000")[:6])
	}
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, false
	}
	if h == 0 && m == 0 && sec == 0 && us == 0 {
		sign = ""
	}
	return fmt.Appendf(nil, "%s%02d:%02d:%02d.%06d", sign, h, m, sec, us), true
}

// ---- decoding, for keys shown to people and for a repair's rows

// skipValue returns the bytes of enc after one value of class cl.
func skipValue(cl vclass, enc []byte) []byte {
	if enc[0] == 0 {
		return enc[1:]
	}
	enc = enc[1:]
	switch cl {
	case cF32:
		return enc[4:]
	case cDec:
		return enc[16:]
	case cBool:
		return enc[1:]
	case cStr, cBin:
		n, k := binary.Uvarint(enc)
		return enc[k+int(n):]
	}
	return enc[8:]
}

// value decodes one value of c: nil, int64, float32, float64, a decimal
// text, a date text, a time.Time (UTC), a string, []byte or bool.
func (c *vcol) value(enc []byte) (any, []byte) {
	if enc[0] == 0 {
		return nil, enc[1:]
	}
	b := enc[1:]
	switch c.class {
	case cInt:
		return readI64(b), b[8:]
	case cF32:
		return math.Float32frombits(binary.BigEndian.Uint32(b)), b[4:]
	case cF64:
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:]
	case cDec:
		return readDec(b).ToString(c.scale), b[16:]
	case cDate:
		return time.UnixMicro(0).UTC().AddDate(0, 0, int(readI64(b))).Format(time.DateOnly), b[8:]
	case cTS:
		return time.UnixMicro(readI64(b)).UTC(), b[8:]
	case cBool:
		return b[0] == 1, b[1:]
	}
	n, k := binary.Uvarint(b)
	v := b[k : k+int(n)]
	if c.class == cStr {
		return string(v), b[k+int(n):]
	}
	return append([]byte(nil), v...), b[k+int(n):]
}

// appendTo decodes one value of c into b, a builder of the table's type,
// and returns the rest of enc.
func (c *vcol) appendTo(bld array.Builder, enc []byte) []byte {
	if enc[0] == 0 {
		bld.AppendNull()
		return enc[1:]
	}
	b := enc[1:]
	switch x := bld.(type) {
	case *array.Int32Builder:
		x.Append(int32(readI64(b)))
		return b[8:]
	case *array.Int64Builder:
		x.Append(readI64(b))
		return b[8:]
	case *array.Float32Builder:
		x.Append(math.Float32frombits(binary.BigEndian.Uint32(b)))
		return b[4:]
	case *array.Float64Builder:
		x.Append(math.Float64frombits(binary.BigEndian.Uint64(b)))
		return b[8:]
	case *array.Decimal128Builder:
		x.Append(readDec(b))
		return b[16:]
	case *array.Date32Builder:
		x.Append(arrow.Date32(readI64(b)))
		return b[8:]
	case *array.TimestampBuilder:
		x.Append(arrow.Timestamp(readI64(b)))
		return b[8:]
	case *array.BooleanBuilder:
		x.Append(b[0] == 1)
		return b[1:]
	case *array.StringBuilder:
		n, k := binary.Uvarint(b)
		x.BinaryBuilder.Append(b[k : k+int(n)])
		return b[k+int(n):]
	case *array.BinaryBuilder:
		n, k := binary.Uvarint(b)
		x.Append(b[k : k+int(n)])
		return b[k+int(n):]
	}
	panic(fmt.Sprintf("icemerge verify: no decoder for builder %T of column %s (this is a bug)", bld, c.name))
}

// orderable reports whether c's canonical bytes sort as its values do, so
// it can order changes for the lag check.
func (c *vcol) orderable() bool {
	switch c.class {
	case cInt, cDec, cDate, cTS, cBool, cStr, cBin:
		return true
	}
	return false
}

// appendOrder appends one canonical value (enc, of an orderable column) in
// a form whose bytes sort as the values do when several columns are
// concatenated: strings escaped and terminated.
func (c *vcol) appendOrder(dst, enc []byte) []byte {
	if enc[0] == 0 || (c.class != cStr && c.class != cBin) {
		return append(dst, enc[:len(enc)-len(skipValue(c.class, enc))]...)
	}
	n, k := binary.Uvarint(enc[1:])
	dst = append(dst, 1)
	for _, ch := range enc[1+k : 1+k+int(n)] {
		dst = append(dst, ch)
		if ch == 0 {
			dst = append(dst, 0xff)
		}
	}
	return append(dst, 0, 0)
}

// text renders a value for people.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case []byte:
		return "0x" + hex.EncodeToString(x)
	case time.Time:
		return x.Format("2006-01-02T15:04:05.999999Z07:00")
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	return fmt.Sprint(v)
}
