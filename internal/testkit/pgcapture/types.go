package pgcapture

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// ErrUnsupported marks a source column type whose DMS Parquet form is not
// known here: capture refuses it rather than guess.
var ErrUnsupported = errors.New("pgcapture: unsupported column type")

// Type OIDs of pg_type (src/include/catalog/pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// column is one source column as the relation (pgoutput Relation message
// or pg_attribute) describes it.
type column struct {
	name   string
	oid    uint32
	typmod int32
	array  bool // pg_type.typcategory 'A'
	typ    string
}

// The decimal DMS writes an unbounded NUMERIC as (DMS user guide, PostgreSQL
// source limitations: "DMS uses NUMERIC(28,6)"; README "Type mapping").
const unboundedPrecision, unboundedScale = 28, 6

func (c column) numeric() (precision, scale int, bounded bool) {
	if c.typmod < 4 {
		return unboundedPrecision, unboundedScale, false
	}
	m := c.typmod - 4
	return int(m>>16) & 0xffff, int(m & 0xffff), true
}

// parquet is the DMS Parquet column of c (README "Type mapping", the DMS
// user guide's PostgreSQL source data types): every column optional.
func (c column) parquet() (dmstest.Column, error) {
	out := dmstest.Column{Name: c.name}
	if c.array {
		// DMS maps ARRAY to NCLOB, a string in the S3 target: the array's
		// text form, as PostgreSQL writes it ({1,2,3}).
		out.Type = dmstest.String
		return out, nil
	}
	switch c.oid {
	case oidInt2:
		out.Type = dmstest.Int16
	case oidInt4:
		out.Type = dmstest.Int32
	case oidInt8:
		out.Type = dmstest.Int64
	case oidBool:
		out.Type = dmstest.Bool
	case oidFloat4:
		out.Type = dmstest.Float32
	case oidFloat8:
		out.Type = dmstest.Float64
	case oidNumeric:
		p, s, _ := c.numeric()
		if p > 38 {
			out.Type = dmstest.String // DMS: precision 39 or more is a STRING
			break
		}
		out.Type, out.Precision, out.Scale = dmstest.Decimal, p, s
	case oidDate:
		out.Type = dmstest.Date
	case oidTimestamp:
		out.Type = dmstest.TimestampLocal
	case oidTimestamptz:
		out.Type = dmstest.Timestamp
	case oidText, oidVarchar, oidBPChar, oidName, oidUUID, oidJSON, oidJSONB:
		out.Type = dmstest.String
	case oidBytea:
		out.Type = dmstest.Binary
	default:
		return out, fmt.Errorf("column %s (%s, oid %d): %w: its DMS Parquet form is not known here", c.name, c.typ, c.oid, ErrUnsupported)
	}
	return out, nil
}

// value turns the text form of a value of c (the output function's, as
// pgoutput and a text-format query give it, with TimeZone=UTC,
// DateStyle=ISO, extra_float_digits=3, bytea_output=hex) into the Go value
// dmstest writes for c's Parquet column.
func (c column) value(text []byte) (any, error) {
	s := string(text)
	bad := func(err error) (any, error) {
		return nil, fmt.Errorf("column %s (%s): value %.40q: %w", c.name, c.typ, s, err)
	}
	if c.array {
		return s, nil
	}
	switch c.oid {
	case oidInt2, oidInt4, oidInt8:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad(err)
		}
		return v, nil
	case oidBool:
		switch s {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return bad(errors.New("not t or f"))
	case oidFloat4:
		v, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return bad(err)
		}
		return float32(v), nil
	case oidFloat8:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad(err)
		}
		return v, nil
	case oidNumeric:
		p, _, bounded := c.numeric()
		if p > 38 || bounded {
			return s, nil // the output has exactly the column's scale
		}
		v, err := unboundedNumeric(s)
		if err != nil {
			return bad(err)
		}
		return v, nil
	case oidDate:
		t, err := parseDate(s)
		if err != nil {
			return bad(err)
		}
		return t, nil
	case oidTimestamp, oidTimestamptz:
		t, err := parseTimestamp(s, c.oid == oidTimestamptz)
		if err != nil {
			return bad(err)
		}
		return t, nil
	case oidText, oidVarchar, oidBPChar, oidName, oidUUID, oidJSON, oidJSONB:
		if !utf8.ValidString(s) {
			return bad(errors.New("not UTF-8: the database must be UTF8"))
		}
		return s, nil
	case oidBytea:
		if !strings.HasPrefix(s, `\x`) {
			return bad(errors.New(`not hex (bytea_output=hex)`))
		}
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return bad(err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("column %s (%s): %w", c.name, c.typ, ErrUnsupported)
}

// unboundedNumeric is the NUMERIC(28,6) DMS writes for a NUMERIC without
// precision. DMS's example (0.611111104488373 becomes 0.611111) does not
// tell rounding from truncation: a value where the two differ is refused,
// as are values beyond 22 integer digits and NaN or infinities.
func unboundedNumeric(s string) (string, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "", errors.New("NaN or infinity in an unbounded NUMERIC: its DMS form is not known")
	}
	rounded := r.FloatString(unboundedScale)
	neg := r.Sign() < 0
	abs := new(big.Rat).Abs(r)
	scaled := new(big.Rat).Mul(abs, new(big.Rat).SetInt64(1_000_000))
	trunc := new(big.Int).Quo(scaled.Num(), scaled.Denom())
	truncated := new(big.Rat).SetFrac(trunc, big.NewInt(1_000_000)).FloatString(unboundedScale)
	if neg && trunc.Sign() != 0 {
		truncated = "-" + truncated
	}
	if strings.TrimPrefix(rounded, "-") != strings.TrimPrefix(truncated, "-") {
		return "", fmt.Errorf("more than %d fraction digits in an unbounded NUMERIC, where DMS's NUMERIC(28,6) rounding or truncation is not known", unboundedScale)
	}
	intDigits := len(strings.TrimLeft(strings.Split(strings.TrimPrefix(truncated, "-"), ".")[0], "0"))
	if intDigits > unboundedPrecision-unboundedScale {
		return "", fmt.Errorf("more than %d integer digits do not fit DMS's NUMERIC(28,6)", unboundedPrecision-unboundedScale)
	}
	if strings.Trim(truncated, "-0.") == "" {
		truncated = strings.TrimPrefix(truncated, "-")
	}
	return truncated, nil
}

func parseDate(s string) (time.Time, error) {
	bc := strings.HasSuffix(s, " BC")
	s = strings.TrimSuffix(s, " BC")
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w (infinity is refused: its DMS form is not known)", err)
	}
	if bc {
		t = t.AddDate(1-2*t.Year(), 0, 0) // 1 BC is year 0
	}
	return t, nil
}

func parseTimestamp(s string, tz bool) (time.Time, error) {
	bc := strings.HasSuffix(s, " BC")
	s = strings.TrimSuffix(s, " BC")
	layout := "2006-01-02 15:04:05.999999"
	if tz {
		layout += "Z07:00"
		if i := strings.LastIndexAny(s, "+-"); i > 10 && len(s)-i == 3 {
			s += ":00" // +00 → +00:00
		}
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w (infinity is refused: its DMS form is not known)", err)
	}
	if bc {
		t = t.AddDate(1-2*t.Year(), 0, 0)
	}
	return t.UTC(), nil
}
