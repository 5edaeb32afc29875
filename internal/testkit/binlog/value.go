package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Date is a DATE as stored: MySQL allows the zero date 0000-00-00 and,
// without NO_ZERO_IN_DATE, zero months and days.
type Date struct {
	Year, Month, Day int
}

// Time returns the date at midnight UTC; ok is false for the zero date and
// dates with zero or impossible parts, which no calendar holds.
func (d Date) Time() (t time.Time, ok bool) {
	if d.Year < 1 || d.Month < 1 || d.Month > 12 || d.Day < 1 {
		return time.Time{}, false
	}
	t = time.Date(d.Year, time.Month(d.Month), d.Day, 0, 0, 0, 0, time.UTC)
	if t.Day() != d.Day { // 02-31 normalised into March
		return time.Time{}, false
	}
	return t, true
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// DateTime is a DATETIME as stored: a wall clock without a time zone.
type DateTime struct {
	Date
	Hour, Minute, Second, Microsecond int
}

// Time returns the wall clock as a time in UTC; ok is false when the date
// part is not a calendar date (see [Date.Time]).
func (dt DateTime) Time() (t time.Time, ok bool) {
	d, ok := dt.Date.Time()
	if !ok || dt.Hour > 23 || dt.Minute > 59 || dt.Second > 59 {
		return time.Time{}, false
	}
	return d.Add(time.Duration(dt.Hour)*time.Hour + time.Duration(dt.Minute)*time.Minute +
		time.Duration(dt.Second)*time.Second + time.Duration(dt.Microsecond)*time.Microsecond), true
}

func (dt DateTime) String() string {
	return fmt.Sprintf("%s %02d:%02d:%02d.%06d", dt.Date, dt.Hour, dt.Minute, dt.Second, dt.Microsecond)
}

var errUnsupported = errors.New("unsupported column type")

// value decodes one non-null value of column c.
func (d *decoder) value(c *Column) (any, error) {
	switch c.Type {
	case TypeTiny, TypeShort, TypeInt24, TypeLong, TypeLongLong:
		size := map[ColumnType]int{TypeTiny: 1, TypeShort: 2, TypeInt24: 3, TypeLong: 4, TypeLongLong: 8}[c.Type]
		u, err := d.uintN(size)
		if err != nil {
			return nil, err
		}
		if c.Unsigned {
			return u, nil
		}
		shift := 64 - 8*size
		return int64(u<<shift) >> shift, nil // sign-extend
	case TypeFloat:
		u, err := d.uintN(4)
		return math.Float32frombits(uint32(u)), err
	case TypeDouble:
		u, err := d.uintN(8)
		return math.Float64frombits(u), err
	case TypeNewDecimal:
		return d.decimal(c.Precision, c.Scale)
	case TypeYear:
		y, err := d.uint8()
		if err != nil || y == 0 {
			return int64(0), err
		}
		return int64(y) + 1900, nil
	case TypeDate, TypeNewDate:
		v, err := d.uintN(3)
		return Date{Year: int(v >> 9), Month: int(v>>5) & 15, Day: int(v & 31)}, err
	case TypeDateTime2:
		return d.datetime2(c.FSP)
	case TypeTimestamp2:
		b, err := d.take(4)
		if err != nil {
			return nil, err
		}
		us, err := d.fraction(c.FSP)
		if err != nil {
			return nil, err
		}
		return time.Unix(int64(binary.BigEndian.Uint32(b)), int64(us)*1000).UTC(), nil
	case TypeTime2:
		return d.time2(c.FSP)
	case TypeTimestamp:
		v, err := d.uintN(4)
		return time.Unix(int64(v), 0).UTC(), err
	case TypeDateTime:
		v, err := d.uintN(8)
		if err != nil {
			return nil, err
		}
		ymd, hms := v/1000000, v%1000000
		return DateTime{Date: Date{Year: int(ymd / 10000), Month: int(ymd/100) % 100, Day: int(ymd % 100)},
			Hour: int(hms / 10000), Minute: int(hms/100) % 100, Second: int(hms % 100)}, nil
	case TypeTime:
		u, err := d.uintN(3)
		if err != nil {
			return nil, err
		}
		v := int64(u<<40) >> 40
		neg := v < 0
		if neg {
			v = -v
		}
		dur := time.Duration(v/10000)*time.Hour + time.Duration(v/100%100)*time.Minute + time.Duration(v%100)*time.Second
		if neg {
			dur = -dur
		}
		return dur, nil
	case TypeBit:
		b, err := d.take((c.Length + 7) / 8)
		return be(b), err
	case TypeVarchar, TypeVarString:
		size := 1
		if c.Length > 255 {
			size = 2
		}
		return d.bytes(c, size, 0)
	case TypeString:
		size := 1
		if c.Length > 255 {
			size = 2
		}
		pad := 0
		if c.Collation == BinaryCollation {
			pad = c.Length // BINARY(n) is logged without its trailing zero bytes
		}
		return d.bytes(c, size, pad)
	case TypeBlob, TypeTinyBlob, TypeMediumBlob, TypeLongBlob, TypeGeometry:
		return d.bytes(c, c.Length, 0)
	case TypeEnum:
		i, err := d.uintN(c.Length)
		if err != nil {
			return nil, err
		}
		if c.Members == nil {
			return i, nil
		}
		if i == 0 {
			return "", nil // the error value of an invalid ENUM insert
		}
		if i > uint64(len(c.Members)) {
			return nil, fmt.Errorf("ENUM index %d of %d members: %w", i, len(c.Members), ErrCorrupt)
		}
		return c.Members[i-1], nil
	case TypeSet:
		mask, err := d.uintN(c.Length)
		if err != nil {
			return nil, err
		}
		if c.Members == nil {
			return mask, nil
		}
		if len(c.Members) < 64 && mask>>len(c.Members) != 0 {
			return nil, fmt.Errorf("SET bits %#x beyond its %d members: %w", mask, len(c.Members), ErrCorrupt)
		}
		var parts []string
		for k, m := range c.Members {
			if mask&(1<<k) != 0 {
				parts = append(parts, m)
			}
		}
		return strings.Join(parts, ","), nil
	case TypeNull:
		return nil, nil
	}
	return nil, fmt.Errorf("%w %s", errUnsupported, c.Type)
}

// bytes reads a value with a little-endian length prefix of size bytes,
// padded with zero bytes to pad: a string for text columns, else []byte.
func (d *decoder) bytes(c *Column, size, pad int) (any, error) {
	n, err := d.uintN(size)
	if err != nil {
		return nil, err
	}
	if n > uint64(d.rest()) {
		return nil, fmt.Errorf("%w (a %d-byte value, %d bytes left): %w", errShort, n, d.rest(), ErrCorrupt)
	}
	b, _ := d.take(int(n))
	if c.IsText() {
		return string(b), nil
	}
	out := make([]byte, max(len(b), pad))
	copy(out, b)
	return out, nil
}

// fraction reads the fractional seconds of a TIME2, DATETIME2 or
// TIMESTAMP2: big-endian, (fsp+1)/2 bytes, in microseconds.
func (d *decoder) fraction(fsp int) (int, error) {
	n := (fsp + 1) / 2
	if n == 0 {
		return 0, nil
	}
	b, err := d.take(n)
	if err != nil {
		return 0, err
	}
	us := int(be(b)) * []int{0, 10000, 100, 1}[n]
	if us > 999999 {
		return 0, fmt.Errorf("fractional seconds %d: %w", us, ErrCorrupt)
	}
	return us, nil
}

func (d *decoder) datetime2(fsp int) (any, error) {
	b, err := d.take(5)
	if err != nil {
		return nil, err
	}
	v := int64(be(b)) - 0x8000000000
	if v < 0 {
		return nil, fmt.Errorf("negative DATETIME: %w", ErrCorrupt)
	}
	us, err := d.fraction(fsp)
	if err != nil {
		return nil, err
	}
	ymd, hms := v>>17, v&(1<<17-1)
	ym := ymd >> 5
	return DateTime{
		Date: Date{Year: int(ym / 13), Month: int(ym % 13), Day: int(ymd & 31)},
		Hour: int(hms >> 12), Minute: int(hms>>6) & 63, Second: int(hms & 63), Microsecond: us,
	}, nil
}

// time2 decodes a TIME2: a packed signed integer, hours, minutes, seconds
// in the integer part and microseconds in the low 24 bits.
func (d *decoder) time2(fsp int) (any, error) {
	var packed int64
	switch (fsp + 1) / 2 {
	case 0:
		b, err := d.take(3)
		if err != nil {
			return nil, err
		}
		packed = (int64(be(b)) - 0x800000) << 24
	case 1, 2:
		n := (fsp + 1) / 2
		b, err := d.take(3 + n)
		if err != nil {
			return nil, err
		}
		intpart := int64(be(b[:3])) - 0x800000
		frac := int64(be(b[3:]))
		if intpart < 0 && frac != 0 {
			intpart++
			frac -= 1 << (8 * n)
		}
		packed = intpart<<24 + frac*[]int64{0, 10000, 100}[n]
	case 3:
		b, err := d.take(6)
		if err != nil {
			return nil, err
		}
		packed = int64(be(b)) - 0x800000000000
	}
	neg := packed < 0
	if neg {
		packed = -packed
	}
	hms, us := packed>>24, packed&(1<<24-1)
	if us > 999999 {
		return nil, fmt.Errorf("TIME fractional seconds %d: %w", us, ErrCorrupt)
	}
	dur := time.Duration((hms>>12)&1023)*time.Hour + time.Duration((hms>>6)&63)*time.Minute +
		time.Duration(hms&63)*time.Second + time.Duration(us)*time.Microsecond
	if neg {
		dur = -dur
	}
	return dur, nil
}

// digitBytes is the size of a group of n < 9 decimal digits in the binary
// DECIMAL format.
var digitBytes = [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}

var pow10 = [10]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// decimal decodes MySQL's binary DECIMAL: the integer and fraction digits
// in groups of nine per four bytes (fewer at the outer ends), big-endian,
// the sign in the top bit (set for positive) and negative values inverted.
func (d *decoder) decimal(precision, scale int) (string, error) {
	intg := precision - scale
	intg0, intg0x := intg/9, intg%9
	frac0, frac0x := scale/9, scale%9
	size := intg0*4 + digitBytes[intg0x] + frac0*4 + digitBytes[frac0x]
	raw, err := d.take(size)
	if err != nil {
		return "", err
	}
	b := append([]byte(nil), raw...)
	neg := b[0]&0x80 == 0
	b[0] ^= 0x80
	if neg {
		for i := range b {
			b[i] ^= 0xff
		}
	}
	var sb strings.Builder
	group := func(n, digits int, pad bool) error {
		v := be(b[:n])
		b = b[n:]
		if v >= pow10[digits] {
			return fmt.Errorf("DECIMAL(%d,%d) digit group %d has more than %d digits: %w", precision, scale, v, digits, ErrCorrupt)
		}
		s := strconv.FormatUint(v, 10)
		if pad {
			s = strings.Repeat("0", digits-len(s)) + s
		}
		sb.WriteString(s)
		return nil
	}
	if intg0x > 0 {
		if err := group(digitBytes[intg0x], intg0x, true); err != nil {
			return "", err
		}
	}
	for range intg0 {
		if err := group(4, 9, true); err != nil {
			return "", err
		}
	}
	whole := strings.TrimLeft(sb.String(), "0")
	if whole == "" {
		whole = "0"
	}
	sb.Reset()
	for range frac0 {
		if err := group(4, 9, true); err != nil {
			return "", err
		}
	}
	if frac0x > 0 {
		if err := group(digitBytes[frac0x], frac0x, true); err != nil {
			return "", err
		}
	}
	frac := sb.String()
	s := whole
	if scale > 0 {
		s += "." + frac
	}
	if neg && strings.Trim(s, "0.") != "" {
		s = "-" + s
	}
	return s, nil
}
