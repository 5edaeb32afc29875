package icemerge

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/parquet-go/parquet-go"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

// sourceType is one source column type: the column DMS writes for it, values
// at the edges of its range, and what the table must hold. The "Type
// mapping" table of docs/semantics.md is checked against this list
// (TestTypeMappingDoc).
type sourceType struct {
	// name is the source database and type, lower case, as the type
	// mapping table of docs/semantics.md spells it: "mysql tinyint(1)", "postgresql timestamptz". Names
	// starting with "parquet " are not DMS output but encodings other
	// writers use, which the reader must accept too; the table does not
	// list them.
	name    string
	col     dmstest.Column // Name is set by the test
	parquet string         // the Parquet type written, physical and logical: "INT32 INT(8,true)"
	iceberg string         // the table's column type: "int", "decimal(20,0)"
	in      []any          // values written, nil for null
	// want are the values read back, in icecheck's Go types; nil: in, with
	// Go integers as int64. Floats compare bit for bit (a float32 in want
	// against a float column), times to the microsecond and in UTC.
	want []any
}

// utc is a time in UTC with microseconds.
func utc(y int, mo time.Month, d, h, mi, s, us int) time.Time {
	return time.Date(y, mo, d, h, mi, s, us*1000, time.UTC)
}

func day(y int, mo time.Month, d int) time.Time { return utc(y, mo, d, 0, 0, 0, 0) }

var (
	nan32    = math.Float32frombits(0x7fc00001) // quiet NaN with a payload
	nan64    = math.Float64frombits(0x7ff8000000000001)
	negZero  = math.Copysign(0, -1)
	longText = strings.Repeat("𠮷😀a", 5000) // 45 000 bytes of 4-byte UTF-8
	bigBlob  = func() []byte {
		b := make([]byte, 70000)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}()
	decimal38 = "9999999999999999999999999999.9999999999"
	datetimes = []any{utc(1000, 1, 1, 0, 0, 0, 0), utc(1969, 12, 31, 23, 59, 59, 999999), utc(1970, 1, 1, 0, 0, 0, 0),
		utc(2024, 8, 14, 0, 0, 36, 123456), utc(9999, 12, 31, 23, 59, 59, 999999), nil}
	datetimesMillis = []any{utc(1000, 1, 1, 0, 0, 0, 0), utc(1969, 12, 31, 23, 59, 59, 999000), utc(1970, 1, 1, 0, 0, 0, 0),
		utc(2024, 8, 14, 0, 0, 36, 123000), utc(9999, 12, 31, 23, 59, 59, 999000), nil}
	// MySQL TIMESTAMP covers 1970-01-01 00:00:01 to 2038-01-19 03:14:07.999999 UTC.
	instants = []any{utc(1970, 1, 1, 0, 0, 1, 0), utc(2038, 1, 19, 3, 14, 7, 999999), utc(2024, 8, 14, 0, 0, 36, 123456), nil}
	// PostgreSQL timestamptz goes far before 1970.
	instantsPG = []any{utc(1, 1, 1, 0, 0, 0, 0), utc(1900, 1, 1, 0, 0, 0, 1), utc(1969, 12, 31, 23, 59, 59, 999999),
		utc(2024, 8, 14, 0, 0, 36, 123456), utc(9999, 12, 31, 23, 59, 59, 999999), nil}
	textValues = []any{"𠮷野家", "😀🎉👩‍👩‍👧", "", nil, "tab\tnewline\nquote'\"backslash\\", "Ωmega ß ç √", longText}
)

const (
	tsMicrosUTC    = "INT64 TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"
	tsMillisUTC    = "INT64 TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)"
	tsMicrosLocal  = "INT64 TIMESTAMP(isAdjustedToUTC=false,unit=MICROS)"
	tsMillisLocal  = "INT64 TIMESTAMP(isAdjustedToUTC=false,unit=MILLIS)"
	parquetString  = "BYTE_ARRAY STRING"
	parquetDecimal = "FIXED_LEN_BYTE_ARRAY DECIMAL"
)

var sourceTypes = []sourceType{
	// MySQL (Aurora MySQL): the Parquet types DMS writes for MySQL columns.
	{name: "mysql tinyint", col: dmstest.Column{Type: dmstest.Int8}, parquet: "INT32 INT(8,true)", iceberg: "int",
		in: []any{int8(math.MinInt8), int8(math.MaxInt8), 0, nil}},
	{name: "mysql tinyint(1)", col: dmstest.Column{Type: dmstest.Int8}, parquet: "INT32 INT(8,true)", iceberg: "int",
		in: []any{1, 0, nil, int8(math.MinInt8), int8(math.MaxInt8)}},
	{name: "mysql smallint", col: dmstest.Column{Type: dmstest.Int16}, parquet: "INT32 INT(16,true)", iceberg: "int",
		in: []any{int16(math.MinInt16), int16(math.MaxInt16), 0, nil}},
	{name: "mysql mediumint", col: dmstest.Column{Type: dmstest.Int32}, parquet: "INT32 INT(32,true)", iceberg: "int",
		in: []any{-8388608, 8388607, 0, nil}},
	{name: "mysql int", col: dmstest.Column{Type: dmstest.Int32}, parquet: "INT32 INT(32,true)", iceberg: "int",
		in: []any{int32(math.MinInt32), int32(math.MaxInt32), 0, nil}},
	{name: "mysql bigint", col: dmstest.Column{Type: dmstest.Int64}, parquet: "INT64 INT(64,true)", iceberg: "long",
		in: []any{int64(math.MinInt64), int64(math.MaxInt64), 0, nil}},
	{name: "mysql tinyint unsigned", col: dmstest.Column{Type: dmstest.Uint8}, parquet: "INT32 INT(8,false)", iceberg: "int",
		in: []any{0, uint8(math.MaxUint8), 128, nil}},
	{name: "mysql smallint unsigned", col: dmstest.Column{Type: dmstest.Uint16}, parquet: "INT32 INT(16,false)", iceberg: "int",
		in: []any{0, uint16(math.MaxUint16), 32768, nil}},
	{name: "mysql mediumint unsigned", col: dmstest.Column{Type: dmstest.Uint32}, parquet: "INT32 INT(32,false)", iceberg: "long",
		in: []any{0, 16777215, nil}},
	{name: "mysql int unsigned", col: dmstest.Column{Type: dmstest.Uint32}, parquet: "INT32 INT(32,false)", iceberg: "long",
		in: []any{0, uint32(math.MaxUint32), uint32(math.MaxInt32) + 1, nil}},
	{name: "mysql bigint unsigned", col: dmstest.Column{Type: dmstest.Uint64}, parquet: "INT64 INT(64,false)", iceberg: "decimal(20,0)",
		in:   []any{0, uint64(math.MaxUint64), uint64(math.MaxInt64) + 1, uint64(math.MaxInt64), nil},
		want: []any{"0", "18446744073709551615", "9223372036854775808", "9223372036854775807", nil}},
	{name: "mysql bit", col: dmstest.Column{Type: dmstest.Bool}, parquet: "BOOLEAN", iceberg: "boolean",
		in: []any{true, false, nil}},
	{name: "mysql float", col: dmstest.Column{Type: dmstest.Float32}, parquet: "FLOAT", iceberg: "float",
		in: []any{float32(-1.5), float32(math.MaxFloat32), float32(-math.MaxFloat32), float32(math.SmallestNonzeroFloat32),
			float32(0), float32(negZero), float32(3.4028235e+38), float32(0.1), nil}},
	{name: "mysql double", col: dmstest.Column{Type: dmstest.Float64}, parquet: "DOUBLE", iceberg: "double",
		in: []any{-1.5, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 0.0, negZero, 0.1, nil}},
	{name: "mysql decimal(10,2)", col: dmstest.Column{Type: dmstest.Decimal, Precision: 10, Scale: 2},
		parquet: parquetDecimal + "(10,2)", iceberg: "decimal(10,2)",
		in: []any{"99999999.99", "-99999999.99", "0.01", "-0.01", "0.00", "12345678.90", nil}},
	{name: "mysql decimal(38,10)", col: dmstest.Column{Type: dmstest.Decimal, Precision: 38, Scale: 10},
		parquet: parquetDecimal + "(38,10)", iceberg: "decimal(38,10)",
		in: []any{decimal38, "-" + decimal38, "0.0000000001", "-0.0000000001", "0.0000000000",
			"1234567890123456789012345678.0123456789", nil}},
	{name: "mysql decimal(20,0)", col: dmstest.Column{Type: dmstest.Decimal, Precision: 20, Scale: 0},
		parquet: parquetDecimal + "(20,0)", iceberg: "decimal(20,0)",
		in: []any{"99999999999999999999", "-99999999999999999999", "18446744073709551615", "0", nil}},
	{name: "mysql date", col: dmstest.Column{Type: dmstest.Date}, parquet: "INT32 DATE", iceberg: "date",
		// A zero date (0000-00-00) arrives from DMS as a null.
		in: []any{day(1000, 1, 1), day(1969, 12, 31), day(1970, 1, 1), day(2024, 2, 29), day(9999, 12, 31), nil}},
	{name: "mysql datetime", col: dmstest.Column{Type: dmstest.TimestampLocal}, parquet: tsMicrosLocal, iceberg: "timestamp",
		in: datetimes},
	{name: "mysql datetime (millis)", col: dmstest.Column{Type: dmstest.TimestampLocalMillis}, parquet: tsMillisLocal, iceberg: "timestamp",
		in: datetimesMillis},
	{name: "mysql timestamp", col: dmstest.Column{Type: dmstest.Timestamp}, parquet: tsMicrosUTC, iceberg: "timestamptz",
		in: instants},
	{name: "mysql timestamp (millis)", col: dmstest.Column{Type: dmstest.TimestampMillis}, parquet: tsMillisUTC, iceberg: "timestamptz",
		in: []any{utc(1970, 1, 1, 0, 0, 1, 0), utc(2038, 1, 19, 3, 14, 7, 999000), utc(2024, 8, 14, 0, 0, 36, 123000), nil}},
	{name: "mysql time", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string",
		in: []any{"838:59:59.000000", "-838:59:59.000000", "00:00:00", "12:34:56.789012", nil}},
	{name: "mysql char", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string", in: textValues},
	{name: "mysql varchar", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string", in: textValues},
	{name: "mysql text", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string", in: textValues},
	{name: "mysql json", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string",
		in: []any{`{"name":"𠮷","e":"😀"}`, `[]`, `null`, `""`, nil}},
	{name: "mysql enum", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string",
		in: []any{"x-small", "𠮷", "", nil}}, // "" is MySQL's error value of an ENUM
	{name: "mysql set", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string",
		in: []any{"a,b,c", "a", "", nil}},
	{name: "mysql blob", col: dmstest.Column{Type: dmstest.Binary}, parquet: "BYTE_ARRAY", iceberg: "binary",
		in: []any{[]byte{0, 0xff, 0x80, 0}, []byte{}, nil, []byte{0xc3, 0x28}, []byte("𠮷"), bigBlob}},
	{name: "mysql binary", col: dmstest.Column{Type: dmstest.Binary}, parquet: "BYTE_ARRAY", iceberg: "binary",
		in: []any{make([]byte, 16), bytes.Repeat([]byte{0xff}, 16), nil}},
	{name: "mysql varbinary", col: dmstest.Column{Type: dmstest.Binary}, parquet: "BYTE_ARRAY", iceberg: "binary",
		in: []any{[]byte{1}, []byte{}, nil}},

	// PostgreSQL.
	{name: "postgresql smallint", col: dmstest.Column{Type: dmstest.Int16}, parquet: "INT32 INT(16,true)", iceberg: "int",
		in: []any{int16(math.MinInt16), int16(math.MaxInt16), nil}},
	{name: "postgresql integer", col: dmstest.Column{Type: dmstest.Int32}, parquet: "INT32 INT(32,true)", iceberg: "int",
		in: []any{int32(math.MinInt32), int32(math.MaxInt32), nil}},
	{name: "postgresql bigint", col: dmstest.Column{Type: dmstest.Int64}, parquet: "INT64 INT(64,true)", iceberg: "long",
		in: []any{int64(math.MinInt64), int64(math.MaxInt64), nil}},
	{name: "postgresql boolean", col: dmstest.Column{Type: dmstest.Bool}, parquet: "BOOLEAN", iceberg: "boolean",
		in: []any{true, false, nil}},
	{name: "postgresql real", col: dmstest.Column{Type: dmstest.Float32}, parquet: "FLOAT", iceberg: "float",
		in: []any{nan32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(negZero), float32(math.MaxFloat32),
			float32(math.SmallestNonzeroFloat32), nil}},
	{name: "postgresql double precision", col: dmstest.Column{Type: dmstest.Float64}, parquet: "DOUBLE", iceberg: "double",
		in: []any{nan64, math.Inf(1), math.Inf(-1), negZero, math.MaxFloat64, math.SmallestNonzeroFloat64, nil}},
	{name: "postgresql numeric(38,0)", col: dmstest.Column{Type: dmstest.Decimal, Precision: 38, Scale: 0},
		parquet: parquetDecimal + "(38,0)", iceberg: "decimal(38,0)",
		in: []any{strings.Repeat("9", 38), "-" + strings.Repeat("9", 38), "0", nil}},
	{name: "postgresql numeric(5,5)", col: dmstest.Column{Type: dmstest.Decimal, Precision: 5, Scale: 5},
		parquet: parquetDecimal + "(5,5)", iceberg: "decimal(5,5)",
		in: []any{"0.99999", "-0.99999", "0.00001", "0.00000", nil}},
	// Unbounded NUMERIC: DMS uses NUMERIC(28,6).
	{name: "postgresql numeric", col: dmstest.Column{Type: dmstest.Decimal, Precision: 28, Scale: 6},
		parquet: parquetDecimal + "(28,6)", iceberg: "decimal(28,6)",
		in: []any{"9999999999999999999999.999999", "-9999999999999999999999.999999", "0.000001", nil}},
	// MONEY: DMS uses NUMERIC(38,4).
	{name: "postgresql money", col: dmstest.Column{Type: dmstest.Decimal, Precision: 38, Scale: 4},
		parquet: parquetDecimal + "(38,4)", iceberg: "decimal(38,4)",
		in: []any{"-92233720368547758.0800", "92233720368547758.0700", "0.0100", nil}},
	{name: "postgresql date", col: dmstest.Column{Type: dmstest.Date}, parquet: "INT32 DATE", iceberg: "date",
		in: []any{day(1, 1, 1), day(1969, 12, 31), day(1582, 10, 4), day(9999, 12, 31), nil}},
	{name: "postgresql timestamp", col: dmstest.Column{Type: dmstest.TimestampLocal}, parquet: tsMicrosLocal, iceberg: "timestamp",
		in: instantsPG},
	{name: "postgresql timestamp (millis)", col: dmstest.Column{Type: dmstest.TimestampLocalMillis}, parquet: tsMillisLocal, iceberg: "timestamp",
		in: datetimesMillis},
	{name: "postgresql timestamptz", col: dmstest.Column{Type: dmstest.Timestamp}, parquet: tsMicrosUTC, iceberg: "timestamptz",
		in: instantsPG},
	{name: "postgresql timestamptz (millis)", col: dmstest.Column{Type: dmstest.TimestampMillis}, parquet: tsMillisUTC, iceberg: "timestamptz",
		in: datetimesMillis},
	{name: "postgresql char", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string", in: textValues},
	{name: "postgresql varchar", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string", in: textValues},
	{name: "postgresql text", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string", in: textValues},
	{name: "postgresql uuid", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string",
		in: []any{"123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000", nil}},
	{name: "postgresql json", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string",
		in: []any{`{"name": "𠮷", "e": "😀"}`, `null`, nil}},
	{name: "postgresql jsonb", col: dmstest.Column{Type: dmstest.String}, parquet: parquetString, iceberg: "string",
		in: []any{`{"e": "😀", "name": "𠮷"}`, `[]`, nil}},
	{name: "postgresql bytea", col: dmstest.Column{Type: dmstest.Binary}, parquet: "BYTE_ARRAY", iceberg: "binary",
		in: []any{[]byte{0, 0xff, 0x80, 0}, []byte{}, nil, bigBlob}},

	// Encodings other Parquet writers use for the same values.
	{name: "parquet json", col: dmstest.Column{Type: dmstest.JSON}, parquet: "BYTE_ARRAY JSON", iceberg: "string",
		in: []any{`{"name":"𠮷"}`, `null`, "", nil}},
	{name: "parquet enum", col: dmstest.Column{Type: dmstest.Enum}, parquet: "BYTE_ARRAY ENUM", iceberg: "string",
		in: []any{"small", "😀", "", nil}},
	// Nanoseconds: never written by DMS; stored as microseconds, truncated
	// towards the past like DMS truncates (pre-1970 values included).
	{name: "parquet timestamp nanos", col: dmstest.Column{Type: dmstest.TimestampNanos},
		parquet: "INT64 TIMESTAMP(isAdjustedToUTC=true,unit=NANOS)", iceberg: "timestamptz",
		in: []any{utc(2024, 8, 14, 0, 0, 36, 123456).Add(789), utc(1969, 12, 31, 23, 59, 59, 999999).Add(999),
			utc(1969, 12, 31, 23, 59, 59, 0).Add(1), utc(1970, 1, 1, 0, 0, 0, 0), nil},
		want: []any{utc(2024, 8, 14, 0, 0, 36, 123456), utc(1969, 12, 31, 23, 59, 59, 999999),
			utc(1969, 12, 31, 23, 59, 59, 0), utc(1970, 1, 1, 0, 0, 0, 0), nil}},
	{name: "parquet int32 decimal(9,2)", col: dmstest.Column{Type: dmstest.DecimalInt32, Precision: 9, Scale: 2},
		parquet: "INT32 DECIMAL(9,2)", iceberg: "decimal(9,2)",
		in: []any{"9999999.99", "-9999999.99", "0.01", "0.00", nil}},
	{name: "parquet int64 decimal(18,4)", col: dmstest.Column{Type: dmstest.DecimalInt64, Precision: 18, Scale: 4},
		parquet: "INT64 DECIMAL(18,4)", iceberg: "decimal(18,4)",
		in: []any{"99999999999999.9999", "-99999999999999.9999", "0.0001", nil}},
}

// expected is what the table must hold for st's values.
func (st sourceType) expected() []any {
	if st.want != nil {
		return st.want
	}
	out := make([]any, len(st.in))
	for i, v := range st.in {
		switch x := v.(type) {
		case int:
			out[i] = int64(x)
		case int8:
			out[i] = int64(x)
		case int16:
			out[i] = int64(x)
		case int32:
			out[i] = int64(x)
		case uint8:
			out[i] = int64(x)
		case uint16:
			out[i] = int64(x)
		case uint32:
			out[i] = int64(x)
		default:
			out[i] = v
		}
	}
	return out
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// column is the name of st's column in the combined file: "mysql_tinyint_1".
func (st sourceType) column() string {
	return strings.Trim(nonIdent.ReplaceAllString(st.name, "_"), "_")
}

// sameValue compares a value read back with the one expected: floats by
// their bits, times to the microsecond and in UTC, bytes exactly.
func sameValue(got, want any) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	switch w := want.(type) {
	case float32:
		g, ok := got.(float64)
		return ok && math.Float32bits(float32(g)) == math.Float32bits(w) && (math.IsNaN(g) || float64(float32(g)) == g)
	case float64:
		g, ok := got.(float64)
		return ok && math.Float64bits(g) == math.Float64bits(w)
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Location() == time.UTC && g.Nanosecond()%1000 == 0 && g.UnixMicro() == w.UnixMicro()
	case []byte:
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, w)
	}
	return reflect.DeepEqual(got, want)
}

// show renders a value for a failure message, floats with their bits.
func show(v any) string {
	switch x := v.(type) {
	case float32:
		return fmt.Sprintf("%v (float32 bits %#08x)", x, math.Float32bits(x))
	case float64:
		return fmt.Sprintf("%v (bits %#016x)", x, math.Float64bits(x))
	case time.Time:
		return x.Format(time.RFC3339Nano) + " " + x.Location().String()
	case string:
		if len(x) > 80 {
			return fmt.Sprintf("%q… (%d bytes)", x[:80], len(x))
		}
		return fmt.Sprintf("%q", x)
	case []byte:
		if len(x) > 40 {
			return fmt.Sprintf("% x… (%d bytes)", x[:40], len(x))
		}
		return fmt.Sprintf("[% x]", x)
	}
	return fmt.Sprintf("%#v", v)
}

// parquetType is the type of column col of a Parquet file as the type
// mapping table spells it: physical type, then logical type ("INT32 INT(8,true)").
func parquetType(t *testing.T, data []byte, col string) string {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, fl := range f.Schema().Fields() {
		if fl.Name() != col {
			continue
		}
		s := fl.Type().Kind().String()
		if lt := fl.Type().LogicalType(); lt != nil && lt.Value != nil {
			s += " " + lt.String()
		}
		return s
	}
	t.Fatalf("no column %q in the file", col)
	return ""
}

func normType(s string) string { return strings.ReplaceAll(s, " ", "") }

// typeFile builds the DMS file of sources: a required int key "id" and one
// column per source type (named by column()), with one row per value of the
// longest list; shorter lists are padded with nulls. rotate shifts the rows'
// values, so a second file gives every key new values.
func typeFile(sources []sourceType, names []string, rotate int) ([]dmstest.Column, []dmstest.Row, [][]any) {
	n := 0
	for _, st := range sources {
		n = max(n, len(st.in))
	}
	cols := []dmstest.Column{{Name: "id", Type: dmstest.Int32, Required: true}}
	for i, st := range sources {
		c := st.col
		c.Name = names[i]
		cols = append(cols, c)
	}
	rows := make([]dmstest.Row, n)
	want := make([][]any, n)
	for r := range rows {
		rows[r] = dmstest.Row{int32(r + 1)}
		want[r] = []any{int64(r + 1)}
		for _, st := range sources {
			var in, out any
			if k := (r + rotate) % n; k < len(st.in) {
				in, out = st.in[k], st.expected()[k]
			}
			rows[r] = append(rows[r], in)
			want[r] = append(want[r], out)
		}
	}
	return cols, rows, want
}

// checkTypes compares e's table with want (rows by id) through the
// independent reader and through iceberg-go's own scan.
func checkTypes(t *testing.T, e *env, sources []sourceType, names []string, want [][]any) {
	t.Helper()
	tbl := e.table()
	if tbl == nil {
		t.Fatal("no table")
	}
	types := map[string]string{}
	for _, c := range tbl.Columns {
		types[c.Name] = normType(c.Type)
		if c.Required != (c.Name == "id") {
			t.Errorf("column %s: required=%v, want only the key required", c.Name, c.Required)
		}
	}
	for i, st := range sources {
		if got := types[names[i]]; got != st.iceberg {
			t.Errorf("%s: Iceberg type %q, want %q", st.name, got, st.iceberg)
		}
	}
	compare := func(reader string, rows []map[string]any) {
		t.Helper()
		if len(rows) != len(want) {
			t.Errorf("%s: %d rows, want %d", reader, len(rows), len(want))
		}
		byID := byKey(rows, "id")
		for _, w := range want {
			row := byID[fmt.Sprint(w[0])]
			if row == nil {
				t.Errorf("%s: row id %v missing", reader, w[0])
				continue
			}
			for i, st := range sources {
				if got := row[names[i]]; !sameValue(got, w[i+1]) {
					t.Errorf("%s: %s (id %v): got %s, want %s", reader, st.name, w[0], show(got), show(w[i+1]))
				}
			}
		}
	}
	compare("icecheck", tbl.Rows)
	compare("iceberg-go scan", scanRows(t, e))
}

// scanRows reads e's table with iceberg-go's scan (as icemerge show does),
// in icecheck's Go types.
func scanRows(t *testing.T, e *env) []map[string]any {
	t.Helper()
	tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Iceberg().Scan().ToArrowTable(e.ctx)
	if err != nil {
		t.Fatalf("iceberg-go scan: %v", err)
	}
	defer at.Release()
	tr := array.NewTableReader(at, 1024)
	defer tr.Release()
	var rows []map[string]any
	for tr.Next() {
		rec := tr.RecordBatch()
		for r := 0; r < int(rec.NumRows()); r++ {
			row := map[string]any{}
			for c, f := range rec.Schema().Fields() {
				row[f.Name] = arrowValue(t, rec.Column(c), r)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func arrowValue(t *testing.T, arr arrow.Array, i int) any {
	t.Helper()
	v, err := dmstest.ArrowValue(arr, i)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Every source type DMS writes, with the edge values of its range, round-trips
// exactly through a table: one table per type on the local backend, then all
// types in one table on every backend, loaded and then rewritten by updates.
func TestEveryTypeRoundTrips(t *testing.T) {
	for _, st := range sourceTypes {
		t.Run(st.name, func(t *testing.T) {
			e := newEnv(t, "local")
			e.opts.Table = "types_db." + st.column()
			e.opts.Keys, e.opts.OrderBy = []string{"id"}, nil
			e.reopen()
			names := []string{"v"}
			cols, rows, want := typeFile([]sourceType{st}, names, 0)
			var buf bytes.Buffer
			if err := dmstest.Write(&buf, cols, repeatOp("I", len(rows)), rows, dmstest.Options{Op: true}); err != nil {
				t.Fatal(err)
			}
			if got := parquetType(t, buf.Bytes(), "v"); got != st.parquet {
				t.Errorf("Parquet type written %q, want %q", got, st.parquet)
			}
			e.put("LOAD00000001.parquet", buf.Bytes())
			e.run()
			checkTypes(t, e, []sourceType{st}, names, want)
		})
	}

	t.Run("all types in one table", func(t *testing.T) {
		eachBackend(t, func(t *testing.T, e *env) {
			ns, _, _ := strings.Cut(e.opts.Table, ".")
			e.opts.Table = ns + ".every_type"
			e.opts.Keys, e.opts.OrderBy = []string{"id"}, nil
			e.reopen()
			names := make([]string, len(sourceTypes))
			for i, st := range sourceTypes {
				names[i] = st.column()
			}
			cols, rows, want := typeFile(sourceTypes, names, 0)
			e.putDMS("LOAD00000001.parquet", cols, repeatOp("I", len(rows)), rows, dmstest.Options{Op: true})
			e.run()
			checkTypes(t, e, sourceTypes, names, want)

			// Every key updated with another row's values: the rows are
			// rewritten (position deletes plus new data files).
			cols, rows, want = typeFile(sourceTypes, names, 1)
			e.putDMS("20240814-000100000.parquet", cols, repeatOp("U", len(rows)), rows, dmstest.Options{Op: true})
			if res := e.run(); res.Plan.WriteRows != len(rows) {
				t.Errorf("update run wrote %d rows, want %d", res.Plan.WriteRows, len(rows))
			}
			checkTypes(t, e, sourceTypes, names, want)
		})
	})
}

func repeatOp(op string, n int) []string {
	ops := make([]string, n)
	for i := range ops {
		ops[i] = op
	}
	return ops
}

// readmeRow is one row of the type mapping table (docs/semantics.md).
type readmeRow struct {
	line             int
	mysql, postgres  []string // source types, lower case
	parquet, iceberg string
}

// readmeTypeMapping parses the first table under "## Type mapping".
func readmeTypeMapping(t *testing.T) []readmeRow {
	t.Helper()
	b, err := os.ReadFile("docs/semantics.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "## Type mapping" {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatal(`docs/semantics.md has no "## Type mapping" section`)
	}
	var rows []readmeRow
	inTable := false
	for i := start + 1; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "#") {
			break
		}
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for c := range cells {
			cells[c] = strings.TrimSpace(strings.ReplaceAll(cells[c], "`", ""))
		}
		if !inTable { // the header
			inTable = true
			want := []string{"MySQL source type", "PostgreSQL source type", "Parquet written by DMS", "Iceberg type (as Athena shows it)", "Notes"}
			if !reflect.DeepEqual(cells, want) {
				t.Fatalf("docs/semantics.md:%d: type mapping header %q, want %q", i+1, cells, want)
			}
			continue
		}
		if strings.Trim(cells[0], "-: ") == "" {
			continue // the delimiter row
		}
		if len(cells) != 5 {
			t.Fatalf("docs/semantics.md:%d: %d cells, want 5", i+1, len(cells))
		}
		rows = append(rows, readmeRow{line: i + 1, mysql: sourceList(cells[0]), postgres: sourceList(cells[1]),
			parquet: cells[2], iceberg: cells[3]})
	}
	if len(rows) == 0 {
		t.Fatal("docs/semantics.md: the type mapping table has no rows")
	}
	return rows
}

// sourceList splits "DECIMAL(p,s), NUMERIC" at the commas outside
// parentheses, lower case; "—" is none.
func sourceList(cell string) []string {
	var out []string
	depth, start := 0, 0
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && s != "—" && s != "-" {
			out = append(out, s)
		}
	}
	for i, r := range cell {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				add(cell[start:i])
				start = i + 1
			}
		}
	}
	add(cell[start:])
	return out
}

// matchSource matches a source type of the table against a test case name:
// the table may write "(p,s)" for any precision and scale. It returns the
// row's Parquet and Iceberg cells with p and s filled in.
func matchSource(pattern, name string, r readmeRow) (parquetType, icebergType string, ok bool) {
	re := regexp.QuoteMeta(pattern)
	re = strings.ReplaceAll(re, `\(p,s\)`, `\((\d+),(\d+)\)`)
	m := regexp.MustCompile("^" + re + "$").FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	parquetType, icebergType = r.parquet, r.iceberg
	if len(m) == 3 {
		ps := "(" + m[1] + "," + m[2] + ")"
		parquetType = strings.ReplaceAll(parquetType, "(p,s)", ps)
		icebergType = strings.ReplaceAll(icebergType, "(p,s)", ps)
	}
	return parquetType, icebergType, true
}

// The type mapping table of docs/semantics.md says what the code does: each
// source type it lists is a case of TestEveryTypeRoundTrips with the Parquet
// type the table names, and icemerge gives its column the Iceberg type the
// table names; every DMS case of that test is in the table.
func TestTypeMappingDoc(t *testing.T) {
	rows := readmeTypeMapping(t)
	byName := map[string]sourceType{}
	for _, st := range sourceTypes {
		byName[st.name] = st
	}
	covered := map[string]int{}
	for _, r := range rows {
		if len(r.mysql)+len(r.postgres) == 0 {
			t.Errorf("docs/semantics.md:%d: a row without a source type", r.line)
		}
		var names []string
		for _, typ := range r.mysql {
			names = append(names, "mysql "+typ)
		}
		for _, typ := range r.postgres {
			names = append(names, "postgresql "+typ)
		}
		for _, name := range names {
			matched := false
			for _, st := range sourceTypes {
				pq, ice, ok := matchSource(name, st.name, r)
				if !ok {
					continue
				}
				matched = true
				covered[st.name]++
				if pq != st.parquet {
					t.Errorf("docs/semantics.md:%d: %s: Parquet %q, but the test writes %q", r.line, st.name, pq, st.parquet)
				}
				if got := storedIcebergType(t, st); got != normType(ice) {
					t.Errorf("docs/semantics.md:%d: %s: Iceberg %q, but icemerge stores %q", r.line, st.name, ice, got)
				}
				if st.iceberg != normType(ice) {
					t.Errorf("docs/semantics.md:%d: %s: Iceberg %q, TestEveryTypeRoundTrips expects %q", r.line, st.name, ice, st.iceberg)
				}
			}
			if !matched {
				t.Errorf("docs/semantics.md:%d: %s has no case in TestEveryTypeRoundTrips (sourceTypes)", r.line, name)
			}
		}
	}
	for _, st := range sourceTypes {
		if strings.HasPrefix(st.name, "parquet ") {
			continue
		}
		if covered[st.name] != 1 {
			t.Errorf("%s is in %d rows of the type mapping in docs/semantics.md, want 1", st.name, covered[st.name])
		}
	}
}

// storedIcebergType is the Iceberg type icemerge gives st's column, from
// the Parquet reader and the schema mapping alone (no table).
func storedIcebergType(t *testing.T, st sourceType) string {
	t.Helper()
	cols, rows, _ := typeFile([]sourceType{st}, []string{"v"}, 0)
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, repeatOp("I", len(rows)), rows, dmstest.Options{Op: true}); err != nil {
		t.Fatal(err)
	}
	f, err := merge.ReadFile(context.Background(), "LOAD00000001.parquet", merge.CDC, bytes.NewReader(buf.Bytes()), memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("%s: %v", st.name, err)
	}
	defer f.Release()
	sc, err := catalog.IcebergSchema(f.Schema, []string{"id"})
	if err != nil {
		t.Fatalf("%s: %v", st.name, err)
	}
	fld, ok := sc.FindFieldByName("v")
	if !ok {
		t.Fatalf("%s: no column v in %s", st.name, sc)
	}
	return normType(fld.Type.String())
}
