package capture

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/icemerge/icemerge/internal/testkit/binlog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// column is one source column, described the same way whether it comes
// from a binlog table map (CDC) or from information_schema (full load), so
// both give a table the same Parquet schema.
type column struct {
	name      string
	typ       binlog.ColumnType // the old temporal types folded into TIMESTAMP2, DATETIME2, TIME2
	unsigned  bool
	binary    bool   // a string column of the binary character set
	charset   string // of a text, ENUM or SET column: "utf8mb4", "latin1", …
	precision int    // DECIMAL
	scale     int
}

func (c column) String() string { return fmt.Sprintf("%s %s", c.name, c.typ) }

// errUnsupported marks a source column type capture cannot carry.
var errUnsupported = errors.New("unsupported column type")

// parquet is the DMS Parquet column of c (docs/semantics.md, "Type
// mapping"): every column optional, as DMS writes them.
func (c column) parquet() (dmstest.Column, error) {
	out := dmstest.Column{Name: c.name}
	pick := func(signed, unsigned dmstest.Type) dmstest.Type {
		if c.unsigned {
			return unsigned
		}
		return signed
	}
	switch c.typ {
	case binlog.TypeTiny:
		out.Type = pick(dmstest.Int8, dmstest.Uint8) // TINYINT(1) too: DMS keeps it a number
	case binlog.TypeShort:
		out.Type = pick(dmstest.Int16, dmstest.Uint16)
	case binlog.TypeInt24, binlog.TypeLong:
		out.Type = pick(dmstest.Int32, dmstest.Uint32)
	case binlog.TypeLongLong:
		out.Type = pick(dmstest.Int64, dmstest.Uint64)
	case binlog.TypeYear:
		out.Type = dmstest.Int32
	case binlog.TypeFloat:
		out.Type = dmstest.Float32
	case binlog.TypeDouble:
		out.Type = dmstest.Float64
	case binlog.TypeNewDecimal:
		if c.precision > 38 {
			// Beyond Iceberg's decimal(38): carried exactly, as text.
			out.Type = dmstest.String
			break
		}
		out.Type, out.Precision, out.Scale = dmstest.Decimal, c.precision, c.scale
	case binlog.TypeDate, binlog.TypeNewDate:
		out.Type = dmstest.Date
	case binlog.TypeDateTime2:
		out.Type = dmstest.TimestampLocal // the wall clock, no time zone applied
	case binlog.TypeTimestamp2:
		out.Type = dmstest.Timestamp // an instant, UTC
	case binlog.TypeTime2:
		out.Type = dmstest.String // "838:59:59.000000"
	case binlog.TypeBit:
		out.Type = dmstest.Bool
	case binlog.TypeString, binlog.TypeVarchar, binlog.TypeVarString,
		binlog.TypeBlob, binlog.TypeTinyBlob, binlog.TypeMediumBlob, binlog.TypeLongBlob:
		out.Type = dmstest.String
		if c.binary {
			out.Type = dmstest.Binary
		}
	case binlog.TypeEnum, binlog.TypeSet:
		out.Type = dmstest.String
	default:
		return out, fmt.Errorf("column %s: %w %s", c.name, errUnsupported, c.typ)
	}
	return out, nil
}

// fromTableMap describes a column of a binlog table map; collations maps
// collation ids to character set names.
func fromTableMap(bc *binlog.Column, collations map[uint64]string) (column, error) {
	c := column{name: bc.Name, typ: bc.Type, unsigned: bc.Unsigned, precision: bc.Precision, scale: bc.Scale}
	switch c.typ {
	case binlog.TypeTimestamp:
		c.typ = binlog.TypeTimestamp2
	case binlog.TypeDateTime:
		c.typ = binlog.TypeDateTime2
	case binlog.TypeTime:
		c.typ = binlog.TypeTime2
	}
	if bc.Collation == binlog.BinaryCollation {
		c.binary = true
	} else if bc.Collation != 0 {
		cs, ok := collations[bc.Collation]
		if !ok {
			return c, fmt.Errorf("column %s: collation id %d is not in information_schema.COLLATIONS", bc.Name, bc.Collation)
		}
		c.charset = cs
	}
	return c, nil
}

// fromBinlog turns a decoded binlog value of c into the Go value dmstest
// writes for c's Parquet type; nil is a null.
func (c column) fromBinlog(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case binlog.Date:
		return timeOrNull(x.Time())
	case binlog.DateTime:
		return timeOrNull(x.Time())
	case time.Time:
		if x.Unix() == 0 && x.Nanosecond() == 0 {
			return nil, nil // the zero TIMESTAMP, 0000-00-00 00:00:00: DMS writes null
		}
		return x, nil
	case time.Duration:
		return formatTime(x), nil
	case string:
		if c.typ == binlog.TypeNewDecimal {
			return x, nil
		}
		return c.text([]byte(x))
	case []byte:
		if !c.binary {
			return nil, fmt.Errorf("column %s: bytes for a text column without a known character set (binlog_row_metadata=FULL?)", c.name)
		}
		return x, nil
	case uint64:
		switch c.typ {
		case binlog.TypeBit:
			return x != 0, nil
		case binlog.TypeEnum, binlog.TypeSet:
			return nil, fmt.Errorf("column %s: %s without its member names: start the server with --binlog-row-metadata=FULL", c.name, c.typ)
		}
		return x, nil
	case int64, float32, float64:
		return x, nil
	}
	return nil, fmt.Errorf("column %s: unexpected %T from the binlog", c.name, v)
}

func timeOrNull(t time.Time, ok bool) (any, error) {
	if !ok {
		return nil, nil // zero dates (0000-00-00, 2024-00-00): DMS writes null
	}
	return t, nil
}

// text converts the bytes of a text column to UTF-8: utf8mb4 and utf8mb3
// are UTF-8 already, latin1 is MySQL's cp1252.
func (c column) text(b []byte) (string, error) {
	switch c.charset {
	case "utf8mb4", "utf8mb3", "utf8", "ascii", "":
		if !utf8.Valid(b) {
			return "", fmt.Errorf("column %s: %q is not valid UTF-8 (%s)", c.name, truncate(b), c.charset)
		}
		return string(b), nil
	case "latin1":
		s, err := charmap.Windows1252.NewDecoder().Bytes(b)
		if err != nil {
			return "", fmt.Errorf("column %s: latin1 %q: %w", c.name, truncate(b), err)
		}
		return string(s), nil
	}
	return "", fmt.Errorf("column %s: character set %s is not supported: convert the column to utf8mb4", c.name, c.charset)
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// formatTime writes a TIME as DMS does: [-]H:MM:SS.ffffff, hours unbounded
// to 838.
func formatTime(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	us := d / time.Microsecond
	return fmt.Sprintf("%s%02d:%02d:%02d.%06d", sign, us/3_600_000_000, us/60_000_000%60, us/1_000_000%60, us%1_000_000)
}

// fromSQL turns a value of c read by go-sql-driver/mysql with the binary
// protocol (a prepared statement; parseTime off; session time zone UTC)
// into the same Go value fromBinlog gives.
func (c column) fromSQL(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func() (any, error) {
		return nil, fmt.Errorf("column %s (%s): unexpected %T %v from the server", c.name, c.typ, v, v)
	}
	switch c.typ {
	case binlog.TypeTiny, binlog.TypeShort, binlog.TypeInt24, binlog.TypeLong, binlog.TypeLongLong, binlog.TypeYear:
		switch x := v.(type) {
		case int64:
			if c.unsigned {
				if x < 0 {
					return bad()
				}
				return uint64(x), nil
			}
			return x, nil
		case []byte: // BIGINT UNSIGNED above MaxInt64
			u, err := strconv.ParseUint(string(x), 10, 64)
			if err != nil || !c.unsigned {
				return bad()
			}
			return u, nil
		}
	case binlog.TypeFloat:
		if x, ok := v.(float32); ok {
			return x, nil
		}
	case binlog.TypeDouble:
		if x, ok := v.(float64); ok {
			return x, nil
		}
	case binlog.TypeNewDecimal:
		if x, ok := v.([]byte); ok {
			return canonicalDecimal(string(x), c.scale)
		}
	case binlog.TypeDate, binlog.TypeNewDate, binlog.TypeDateTime2, binlog.TypeTimestamp2:
		if x, ok := v.([]byte); ok {
			t, ok, err := parseDateTime(string(x))
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", c.name, err)
			}
			return timeOrNull(t, ok)
		}
	case binlog.TypeTime2:
		if x, ok := v.([]byte); ok {
			d, err := parseTime(string(x))
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", c.name, err)
			}
			return formatTime(d), nil
		}
	case binlog.TypeBit:
		if x, ok := v.([]byte); ok {
			return len(bytes.Trim(x, "\x00")) > 0, nil
		}
	default:
		x, ok := v.([]byte)
		if !ok {
			return bad()
		}
		if c.binary {
			return bytes.Clone(x), nil
		}
		if !utf8.Valid(x) { // the connection's character set is utf8mb4
			return nil, fmt.Errorf("column %s: %q from the server is not valid UTF-8", c.name, truncate(x))
		}
		return string(x), nil
	}
	return bad()
}

var dateTimeSyntax = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?$`)

// parseDateTime parses the server's text of a DATE, DATETIME or TIMESTAMP;
// ok is false for zero dates.
func parseDateTime(s string) (time.Time, bool, error) {
	m := dateTimeSyntax.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false, fmt.Errorf("date/time %q not understood", s)
	}
	n := make([]int, 7)
	for i := 1; i <= 6; i++ {
		if m[i] != "" {
			n[i-1], _ = strconv.Atoi(m[i])
		}
	}
	if m[7] != "" {
		frac := (m[7] + "00000")[:6]
		n[6], _ = strconv.Atoi(frac)
	}
	dt := binlog.DateTime{Date: binlog.Date{Year: n[0], Month: n[1], Day: n[2]}, Hour: n[3], Minute: n[4], Second: n[5], Microsecond: n[6]}
	t, ok := dt.Time()
	return t, ok, nil
}

var timeSyntax = regexp.MustCompile(`^(-)?(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$`)

func parseTime(s string) (time.Duration, error) {
	m := timeSyntax.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("time %q not understood", s)
	}
	h, _ := strconv.Atoi(m[2])
	mi, _ := strconv.Atoi(m[3])
	sec, _ := strconv.Atoi(m[4])
	us := 0
	if m[5] != "" {
		us, _ = strconv.Atoi((m[5] + "00000")[:6])
	}
	d := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(sec)*time.Second + time.Duration(us)*time.Microsecond
	if m[1] == "-" {
		d = -d
	}
	return d, nil
}

// canonicalDecimal writes a decimal with exactly scale fraction digits, no
// leading zeros and no negative zero: the binlog decoder's form.
func canonicalDecimal(s string, scale int) (string, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "", fmt.Errorf("decimal %q not understood", s)
	}
	out := r.FloatString(scale)
	if strings.Trim(out, "-0.") == "" {
		out = strings.TrimPrefix(out, "-")
	}
	return out, nil
}
