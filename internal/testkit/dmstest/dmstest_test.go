package dmstest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

var (
	t0    = time.Date(2024, 8, 14, 0, 0, 36, 123456789, time.UTC)
	tokyo = time.FixedZone("JST", 9*3600)
	// 2024-08-14 09:00:36.5 in Tokyo is 00:00:36.5 UTC.
	tTokyo = time.Date(2024, 8, 14, 9, 0, 36, 500000000, tokyo)
	pre70  = time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

func utcDay(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// typeCase is one column of the all-types file: its values, the values read
// back (normalized: signed ints int64, unsigned uint64, times UTC, decimals
// with exactly Scale fraction digits), and the types both readers must see.
type typeCase struct {
	col     dmstest.Column
	in      []any
	want    []any
	kind    parquet.Kind
	logical string // format.LogicalType.String(), "" for none
	arrow   arrow.DataType
}

var typeCases = []typeCase{
	{
		col:  dmstest.Column{Name: "s", Type: dmstest.String},
		in:   []any{"𠮷野家", "😀", nil, ""},
		want: []any{"𠮷野家", "😀", nil, ""},
		kind: parquet.ByteArray, logical: "STRING", arrow: arrow.BinaryTypes.String,
	},
	{
		col:  dmstest.Column{Name: "i8", Type: dmstest.Int8},
		in:   []any{int8(math.MinInt8), int8(math.MaxInt8), nil, 1},
		want: []any{int64(math.MinInt8), int64(math.MaxInt8), nil, int64(1)},
		kind: parquet.Int32, logical: "INT(8,true)", arrow: arrow.PrimitiveTypes.Int8,
	},
	{
		col:  dmstest.Column{Name: "i16", Type: dmstest.Int16},
		in:   []any{int16(math.MinInt16), int16(math.MaxInt16), nil, -1},
		want: []any{int64(math.MinInt16), int64(math.MaxInt16), nil, int64(-1)},
		kind: parquet.Int32, logical: "INT(16,true)", arrow: arrow.PrimitiveTypes.Int16,
	},
	{
		col:  dmstest.Column{Name: "i32", Type: dmstest.Int32, Required: true},
		in:   []any{int32(math.MinInt32), int32(math.MaxInt32), 0, 7},
		want: []any{int64(math.MinInt32), int64(math.MaxInt32), int64(0), int64(7)},
		kind: parquet.Int32, logical: "INT(32,true)", arrow: arrow.PrimitiveTypes.Int32,
	},
	{
		col:  dmstest.Column{Name: "i64", Type: dmstest.Int64},
		in:   []any{int64(math.MinInt64), int64(math.MaxInt64), nil, uint8(3)},
		want: []any{int64(math.MinInt64), int64(math.MaxInt64), nil, int64(3)},
		kind: parquet.Int64, logical: "INT(64,true)", arrow: arrow.PrimitiveTypes.Int64,
	},
	{
		col:  dmstest.Column{Name: "u8", Type: dmstest.Uint8},
		in:   []any{uint8(0), uint8(math.MaxUint8), nil, 200},
		want: []any{uint64(0), uint64(math.MaxUint8), nil, uint64(200)},
		kind: parquet.Int32, logical: "INT(8,false)", arrow: arrow.PrimitiveTypes.Uint8,
	},
	{
		col:  dmstest.Column{Name: "u16", Type: dmstest.Uint16},
		in:   []any{uint16(0), uint16(math.MaxUint16), nil, 40000},
		want: []any{uint64(0), uint64(math.MaxUint16), nil, uint64(40000)},
		kind: parquet.Int32, logical: "INT(16,false)", arrow: arrow.PrimitiveTypes.Uint16,
	},
	{
		col:  dmstest.Column{Name: "u32", Type: dmstest.Uint32},
		in:   []any{uint32(0), uint32(math.MaxUint32), nil, 3000000000},
		want: []any{uint64(0), uint64(math.MaxUint32), nil, uint64(3000000000)},
		kind: parquet.Int32, logical: "INT(32,false)", arrow: arrow.PrimitiveTypes.Uint32,
	},
	{
		col:  dmstest.Column{Name: "u64", Type: dmstest.Uint64},
		in:   []any{uint64(0), uint64(math.MaxUint64), nil, uint64(1) << 63},
		want: []any{uint64(0), uint64(math.MaxUint64), nil, uint64(1) << 63},
		kind: parquet.Int64, logical: "INT(64,false)", arrow: arrow.PrimitiveTypes.Uint64,
	},
	{
		col:  dmstest.Column{Name: "bit", Type: dmstest.Bool},
		in:   []any{true, false, nil, true},
		want: []any{true, false, nil, true},
		kind: parquet.Boolean, arrow: arrow.FixedWidthTypes.Boolean,
	},
	{
		col:  dmstest.Column{Name: "dbl", Type: dmstest.Float64},
		in:   []any{-1.5, math.MaxFloat64, nil, float32(0.25)},
		want: []any{-1.5, math.MaxFloat64, nil, 0.25},
		kind: parquet.Double, arrow: arrow.PrimitiveTypes.Float64,
	},
	{
		col:  dmstest.Column{Name: "dec", Type: dmstest.Decimal, Precision: 10, Scale: 2},
		in:   []any{"-123.45", "99999999.99", nil, "-1.5"},
		want: []any{"-123.45", "99999999.99", nil, "-1.50"},
		kind: parquet.FixedLenByteArray, logical: "DECIMAL(10,2)", arrow: &arrow.Decimal128Type{Precision: 10, Scale: 2},
	},
	{
		col:  dmstest.Column{Name: "u64dec", Type: dmstest.Decimal, Precision: 20, Scale: 0},
		in:   []any{"18446744073709551615", "-99999999999999999999", nil, "+0"},
		want: []any{"18446744073709551615", "-99999999999999999999", nil, "0"},
		kind: parquet.FixedLenByteArray, logical: "DECIMAL(20,0)", arrow: &arrow.Decimal128Type{Precision: 20, Scale: 0},
	},
	{
		col:  dmstest.Column{Name: "dec38", Type: dmstest.Decimal, Precision: 38, Scale: 10},
		in:   []any{"-9999999999999999999999999999.9999999999", "0.0000000001", nil, "0"},
		want: []any{"-9999999999999999999999999999.9999999999", "0.0000000001", nil, "0.0000000000"},
		kind: parquet.FixedLenByteArray, logical: "DECIMAL(38,10)", arrow: &arrow.Decimal128Type{Precision: 38, Scale: 10},
	},
	{
		col:  dmstest.Column{Name: "day", Type: dmstest.Date},
		in:   []any{t0, tTokyo, nil, utcDay(1969, 12, 31)},
		want: []any{utcDay(2024, 8, 14), utcDay(2024, 8, 14), nil, utcDay(1969, 12, 31)},
		kind: parquet.Int32, logical: "DATE", arrow: arrow.FixedWidthTypes.Date32,
	},
	{
		col:  dmstest.Column{Name: "ts", Type: dmstest.Timestamp},
		in:   []any{t0, tTokyo, nil, pre70},
		want: []any{t0.Truncate(time.Microsecond), tTokyo.UTC(), nil, pre70},
		kind: parquet.Int64, logical: "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)",
		arrow: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"},
	},
	{
		col:  dmstest.Column{Name: "dt", Type: dmstest.TimestampLocal},
		in:   []any{t0, tTokyo, nil, pre70},
		want: []any{t0.Truncate(time.Microsecond), time.Date(2024, 8, 14, 9, 0, 36, 500000000, time.UTC), nil, pre70},
		kind: parquet.Int64, logical: "TIMESTAMP(isAdjustedToUTC=false,unit=MICROS)",
		arrow: &arrow.TimestampType{Unit: arrow.Microsecond},
	},
	{
		col:  dmstest.Column{Name: "tsms", Type: dmstest.TimestampMillis},
		in:   []any{t0, tTokyo, nil, pre70},
		want: []any{t0.Truncate(time.Millisecond), tTokyo.UTC(), nil, pre70.Truncate(time.Millisecond)},
		kind: parquet.Int64, logical: "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)",
		arrow: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"},
	},
	{
		col:  dmstest.Column{Name: "doc", Type: dmstest.JSON},
		in:   []any{`{"name":"𠮷"}`, `[1,2]`, nil, `null`},
		want: []any{`{"name":"𠮷"}`, `[1,2]`, nil, `null`},
		kind: parquet.ByteArray, logical: "JSON",
		// arrow-go v18.8.0 pqarrow reads the JSON logical type as plain
		// binary: neither utf8 nor an extension type. Readers of DMS files
		// must map JSON columns to strings themselves.
		arrow: arrow.BinaryTypes.Binary,
	},
	{
		col:  dmstest.Column{Name: "flt", Type: dmstest.Float32},
		in:   []any{float32(-1.5), float32(math.MaxFloat32), nil, 0.25},
		want: []any{float32(-1.5), float32(math.MaxFloat32), nil, float32(0.25)},
		kind: parquet.Float, arrow: arrow.PrimitiveTypes.Float32,
	},
	{
		col:  dmstest.Column{Name: "dtms", Type: dmstest.TimestampLocalMillis},
		in:   []any{t0, tTokyo, nil, pre70},
		want: []any{t0.Truncate(time.Millisecond), time.Date(2024, 8, 14, 9, 0, 36, 500000000, time.UTC), nil, pre70.Truncate(time.Millisecond)},
		kind: parquet.Int64, logical: "TIMESTAMP(isAdjustedToUTC=false,unit=MILLIS)",
		arrow: &arrow.TimestampType{Unit: arrow.Millisecond},
	},
	{
		col:  dmstest.Column{Name: "tsns", Type: dmstest.TimestampNanos},
		in:   []any{t0, tTokyo, nil, pre70.Add(999 * time.Nanosecond)},
		want: []any{t0, tTokyo.UTC(), nil, pre70.Add(999 * time.Nanosecond)},
		kind: parquet.Int64, logical: "TIMESTAMP(isAdjustedToUTC=true,unit=NANOS)",
		arrow: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"},
	},
	{
		col:  dmstest.Column{Name: "enum", Type: dmstest.Enum},
		in:   []any{"small", "𠮷", nil, ""},
		want: []any{"small", "𠮷", nil, ""},
		kind: parquet.ByteArray, logical: "ENUM",
		// Like JSON, pqarrow reads the ENUM logical type as plain binary.
		arrow: arrow.BinaryTypes.Binary,
	},
	{
		col:  dmstest.Column{Name: "dec9", Type: dmstest.DecimalInt32, Precision: 9, Scale: 2},
		in:   []any{"-9999999.99", "9999999.99", nil, "-0.01"},
		want: []any{"-9999999.99", "9999999.99", nil, "-0.01"},
		kind: parquet.Int32, logical: "DECIMAL(9,2)", arrow: &arrow.Decimal128Type{Precision: 9, Scale: 2},
	},
	{
		col:  dmstest.Column{Name: "dec18", Type: dmstest.DecimalInt64, Precision: 18, Scale: 4},
		in:   []any{"-99999999999999.9999", "99999999999999.9999", nil, "0"},
		want: []any{"-99999999999999.9999", "99999999999999.9999", nil, "0.0000"},
		kind: parquet.Int64, logical: "DECIMAL(18,4)", arrow: &arrow.Decimal128Type{Precision: 18, Scale: 4},
	},
	{
		col:  dmstest.Column{Name: "blob", Type: dmstest.Binary},
		in:   []any{[]byte{0, 0xff, 'a'}, []byte{}, nil, []byte("😀")},
		want: []any{[]byte{0, 0xff, 'a'}, []byte{}, nil, []byte("😀")},
		kind: parquet.ByteArray, arrow: arrow.BinaryTypes.Binary,
	},
}

var typeOps = []string{"I", "U", "D", "X"}

func allTypes() ([]dmstest.Column, []dmstest.Row) {
	cols := make([]dmstest.Column, len(typeCases))
	rows := make([]dmstest.Row, len(typeCases[0].in))
	for r := range rows {
		rows[r] = make(dmstest.Row, len(typeCases))
	}
	for c, tc := range typeCases {
		cols[c] = tc.col
		for r, v := range tc.in {
			rows[r][c] = v
		}
	}
	return cols, rows
}

func writeAllTypes(t *testing.T, o dmstest.Options) []byte {
	t.Helper()
	cols, rows := allTypes()
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, typeOps, rows, o); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestWriteReadBackParquetGo(t *testing.T) {
	tests := []struct {
		name      string
		opts      dmstest.Options
		codec     format.CompressionCodec
		rowGroups int
	}{
		{"default", dmstest.Options{Op: true}, format.Gzip, 1},
		{"gzip-rowgroups", dmstest.Options{Op: true, Compression: "gzip", RowGroupRows: 3}, format.Gzip, 2},
		{"snappy", dmstest.Options{Op: true, Compression: "snappy", RowGroupRows: 1}, format.Snappy, 4},
		{"none-no-op", dmstest.Options{Compression: "none"}, format.Uncompressed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := writeAllTypes(t, tt.opts)
			f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			md := f.Metadata()
			if len(md.RowGroups) != tt.rowGroups {
				t.Errorf("row groups = %d, want %d", len(md.RowGroups), tt.rowGroups)
			}
			for _, rg := range md.RowGroups {
				for _, cc := range rg.Columns {
					if cc.MetaData.Codec != tt.codec {
						t.Errorf("column %v codec = %v, want %v", cc.MetaData.PathInSchema, cc.MetaData.Codec, tt.codec)
					}
				}
			}

			fields := f.Schema().Fields()
			off := 0
			if tt.opts.Op {
				off = 1
				op := fields[0]
				if op.Name() != "Op" || op.Type().Kind() != parquet.ByteArray || lt(op.Type()) != "STRING" || !op.Optional() {
					t.Errorf("first column = %s %v %q optional=%v, want optional Op BYTE_ARRAY STRING",
						op.Name(), op.Type().Kind(), lt(op.Type()), op.Optional())
				}
			}
			if len(fields) != len(typeCases)+off {
				t.Fatalf("%d columns, want %d", len(fields), len(typeCases)+off)
			}
			for i, tc := range typeCases {
				fl := fields[i+off]
				if fl.Name() != tc.col.Name {
					t.Errorf("column %d = %q, want %q (order must be kept)", i+off, fl.Name(), tc.col.Name)
				}
				if fl.Type().Kind() != tc.kind {
					t.Errorf("%s: physical %v, want %v", tc.col.Name, fl.Type().Kind(), tc.kind)
				}
				if got := lt(fl.Type()); got != tc.logical {
					t.Errorf("%s: logical %q, want %q", tc.col.Name, got, tc.logical)
				}
				if fl.Required() != tc.col.Required || fl.Optional() == tc.col.Required {
					t.Errorf("%s: required=%v optional=%v, want required=%v", tc.col.Name, fl.Required(), fl.Optional(), tc.col.Required)
				}
				if fl.ID() != 0 {
					t.Errorf("%s: field id %d, DMS writes none", tc.col.Name, fl.ID())
				}
			}

			rows := readRows(t, f)
			if len(rows) != len(typeOps) {
				t.Fatalf("%d rows, want %d", len(rows), len(typeOps))
			}
			for r, row := range rows {
				if len(row) != len(fields) {
					t.Fatalf("row %d has %d values, want %d", r, len(row), len(fields))
				}
				if tt.opts.Op {
					if got := string(row[0].ByteArray()); got != typeOps[r] {
						t.Errorf("row %d Op = %q, want %q", r, got, typeOps[r])
					}
				}
				for c, tc := range typeCases {
					got := decodeParquetGo(tc.col, row[c+off])
					if !reflect.DeepEqual(got, tc.want[r]) {
						t.Errorf("row %d %s = %#v, want %#v", r, tc.col.Name, got, tc.want[r])
					}
				}
			}
		})
	}
}

func TestWriteReadBackArrow(t *testing.T) {
	for _, o := range []dmstest.Options{{Op: true}, {Op: true, RowGroupRows: 1, Compression: "snappy"}} {
		data := writeAllTypes(t, o)
		rdr, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("NewParquetReader: %v", err)
		}
		fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatalf("pqarrow.NewFileReader: %v", err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatalf("ReadTable: %v", err)
		}
		defer tbl.Release()
		sc := tbl.Schema()
		if sc.NumFields() != len(typeCases)+1 {
			t.Fatalf("%d arrow fields, want %d", sc.NumFields(), len(typeCases)+1)
		}
		if f := sc.Field(0); f.Name != "Op" || !arrow.TypeEqual(f.Type, arrow.BinaryTypes.String) {
			t.Errorf("arrow field 0 = %s %s, want Op utf8", f.Name, f.Type)
		}
		for i, tc := range typeCases {
			f := sc.Field(i + 1)
			if f.Name != tc.col.Name || !arrow.TypeEqual(f.Type, tc.arrow) {
				t.Errorf("arrow field %d = %s %s, want %s %s", i+1, f.Name, f.Type, tc.col.Name, tc.arrow)
			}
			if f.Nullable == tc.col.Required {
				t.Errorf("%s: nullable=%v, want %v", tc.col.Name, f.Nullable, !tc.col.Required)
			}
			got := arrowValues(t, tc.col, tbl.Column(i+1))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s via arrow = %#v, want %#v", tc.col.Name, got, tc.want)
			}
		}
		// 4-byte UTF-8 survives byte for byte.
		ops := arrowValues(t, dmstest.Column{Type: dmstest.String}, tbl.Column(0))
		for r, op := range ops {
			if op != typeOps[r] {
				t.Errorf("row %d Op via arrow = %v, want %q", r, op, typeOps[r])
			}
		}
		for _, s := range []string{"𠮷野家", "😀"} {
			found := false
			for _, v := range arrowValues(t, typeCases[0].col, tbl.Column(1)) {
				if v == s {
					found = true
					if !bytes.Equal([]byte(v.(string)), []byte(s)) {
						t.Errorf("%q bytes differ", s)
					}
				}
			}
			if !found {
				t.Errorf("%q (% x) not read back by arrow", s, []byte(s))
			}
		}
	}
}

func TestWriteNoRows(t *testing.T) {
	cols := []dmstest.Column{{Name: "id", Type: dmstest.Int32, Required: true}, {Name: "name", Type: dmstest.String}}
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, nil, nil, dmstest.Options{Op: true}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	if f.NumRows() != 0 || len(f.Schema().Fields()) != 3 {
		t.Errorf("rows=%d fields=%d, want 0 and 3", f.NumRows(), len(f.Schema().Fields()))
	}
	rdr, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("arrow cannot open an empty file: %v", err)
	}
	if rdr.NumRows() != 0 {
		t.Errorf("arrow rows = %d", rdr.NumRows())
	}
}

func TestWriteErrors(t *testing.T) {
	id := dmstest.Column{Name: "user_id", Type: dmstest.Int32, Required: true}
	name := dmstest.Column{Name: "name", Type: dmstest.String}
	col := func(typ dmstest.Type) []dmstest.Column { return []dmstest.Column{id, {Name: "v", Type: typ}} }
	dec := []dmstest.Column{id, {Name: "v", Type: dmstest.Decimal, Precision: 5, Scale: 2}}
	rows := func(v any) []dmstest.Row { return []dmstest.Row{{1, nil}, {2, v}} }
	ok2 := []string{"I", "U"}
	tests := []struct {
		name string
		cols []dmstest.Column
		ops  []string
		rows []dmstest.Row
		opts dmstest.Options
		want []string // substrings of the error
	}{
		{"string in int column", []dmstest.Column{id, name}, ok2, []dmstest.Row{{1, "a"}, {"2", "b"}}, dmstest.Options{Op: true}, []string{"row 1", `"user_id"`, "got string"}},
		{"int in string column", col(dmstest.String), nil, rows(5), dmstest.Options{}, []string{"row 1", `"v"`, "got int"}},
		{"bytes in string column", col(dmstest.String), nil, rows([]byte("x")), dmstest.Options{}, []string{"row 1", `"v"`}},
		{"string in binary column", col(dmstest.Binary), nil, rows("x"), dmstest.Options{}, []string{"row 1", `"v"`}},
		{"int8 overflow", col(dmstest.Int8), nil, rows(128), dmstest.Options{}, []string{"row 1", `"v"`, "out of range"}},
		{"int8 underflow", col(dmstest.Int8), nil, rows(-129), dmstest.Options{}, []string{"out of range"}},
		{"int16 overflow", col(dmstest.Int16), nil, rows(int32(40000)), dmstest.Options{}, []string{"out of range"}},
		{"int32 overflow", col(dmstest.Int32), nil, rows(int64(math.MaxInt32) + 1), dmstest.Options{}, []string{"out of range"}},
		{"int64 from big uint64", col(dmstest.Int64), nil, rows(uint64(math.MaxInt64) + 1), dmstest.Options{}, []string{"out of range"}},
		{"negative uint8", col(dmstest.Uint8), nil, rows(-1), dmstest.Options{}, []string{"out of range"}},
		{"uint8 overflow", col(dmstest.Uint8), nil, rows(256), dmstest.Options{}, []string{"out of range"}},
		{"uint32 overflow", col(dmstest.Uint32), nil, rows(uint64(math.MaxUint32) + 1), dmstest.Options{}, []string{"out of range"}},
		{"negative uint64", col(dmstest.Uint64), nil, rows(int64(-1)), dmstest.Options{}, []string{"out of range"}},
		{"float in int column", col(dmstest.Int64), nil, rows(1.0), dmstest.Options{}, []string{"got float64"}},
		{"string in bool column", col(dmstest.Bool), nil, rows("true"), dmstest.Options{}, []string{"got string"}},
		{"int in float column", col(dmstest.Float64), nil, rows(1), dmstest.Options{}, []string{"got int"}},
		{"string in timestamp", col(dmstest.Timestamp), nil, rows("2024-08-14"), dmstest.Options{}, []string{"row 1", `"v"`, "time.Time"}},
		{"pointer to time", col(dmstest.Date), nil, rows(&t0), dmstest.Options{}, []string{"*time.Time"}},
		{"far future millis", col(dmstest.TimestampMillis), nil, rows(time.Date(300000000, 1, 1, 0, 0, 0, 0, time.UTC)), dmstest.Options{}, []string{"out of range"}},
		{"decimal fraction digits", dec, nil, rows("1.234"), dmstest.Options{}, []string{"row 1", "fraction digits"}},
		{"decimal precision", dec, nil, rows("1234.5"), dmstest.Options{}, []string{"precision is 5"}},
		{"decimal syntax exp", dec, nil, rows("1e2"), dmstest.Options{}, []string{"not a plain decimal"}},
		{"decimal syntax empty", dec, nil, rows(""), dmstest.Options{}, []string{"not a plain decimal"}},
		{"decimal syntax dot", dec, nil, rows(".5"), dmstest.Options{}, []string{"not a plain decimal"}},
		{"decimal as float", dec, nil, rows(1.5), dmstest.Options{}, []string{"got float64"}},
		{"float32 inexact", col(dmstest.Float32), nil, rows(0.1), dmstest.Options{}, []string{"row 1", `"v"`, "not exactly a float32"}},
		{"string in float32 column", col(dmstest.Float32), nil, rows("1"), dmstest.Options{}, []string{"got string"}},
		{"decimal int32 precision", []dmstest.Column{{Name: "d", Type: dmstest.DecimalInt32, Precision: 10}}, nil, nil, dmstest.Options{}, []string{`"d"`, "precision 10 not in 1..9"}},
		{"decimal int64 precision", []dmstest.Column{{Name: "d", Type: dmstest.DecimalInt64, Precision: 19}}, nil, nil, dmstest.Options{}, []string{`"d"`, "precision 19 not in 1..18"}},
		{"decimal int32 digits", []dmstest.Column{id, {Name: "v", Type: dmstest.DecimalInt32, Precision: 3, Scale: 1}}, nil, rows("100.0"), dmstest.Options{}, []string{"precision is 3"}},
		{"decimal precision 0", []dmstest.Column{{Name: "d", Type: dmstest.Decimal}}, nil, nil, dmstest.Options{}, []string{`"d"`, "precision 0"}},
		{"decimal precision 39", []dmstest.Column{{Name: "d", Type: dmstest.Decimal, Precision: 39}}, nil, nil, dmstest.Options{}, []string{"precision 39"}},
		{"decimal scale", []dmstest.Column{{Name: "d", Type: dmstest.Decimal, Precision: 4, Scale: 5}}, nil, nil, dmstest.Options{}, []string{"scale 5"}},
		{"null in required", []dmstest.Column{id, name}, nil, []dmstest.Row{{1, "a"}, {nil, "b"}}, dmstest.Options{}, []string{"row 1", `"user_id"`, "null"}},
		{"short row", []dmstest.Column{id, name}, nil, []dmstest.Row{{1}}, dmstest.Options{}, []string{"row 0", "1 values for 2 columns"}},
		{"ops mismatch", []dmstest.Column{id}, []string{"I"}, []dmstest.Row{{1}, {2}}, dmstest.Options{Op: true}, []string{"1 ops for 2 rows"}},
		{"duplicate column", []dmstest.Column{id, id}, nil, nil, dmstest.Options{}, []string{`duplicate column "user_id"`}},
		{"Op column clash", []dmstest.Column{{Name: "Op", Type: dmstest.String}}, nil, nil, dmstest.Options{Op: true}, []string{`duplicate column "Op"`}},
		{"empty name", []dmstest.Column{{Type: dmstest.String}}, nil, nil, dmstest.Options{}, []string{"column 0 has no name"}},
		{"unknown type", []dmstest.Column{{Name: "x", Type: dmstest.Type(99)}}, nil, nil, dmstest.Options{}, []string{"unknown type Type(99)"}},
		{"unknown compression", []dmstest.Column{id}, nil, nil, dmstest.Options{Compression: "zstd"}, []string{`unknown compression "zstd"`}},
		{"negative row groups", []dmstest.Column{id}, nil, nil, dmstest.Options{RowGroupRows: -1}, []string{"negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := dmstest.Write(&buf, tt.cols, tt.ops, tt.rows, tt.opts)
			if err == nil {
				t.Fatal("Write succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raw_input", "test_db", "users", "LOAD00000001.parquet")
	cols := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}}
	if err := dmstest.WriteFile(path, cols, []string{"I"}, []dmstest.Row{{1}}, dmstest.Options{Op: true}); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, []string{"I"}, []dmstest.Row{{1}}, dmstest.Options{Op: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, buf.Bytes()) {
		t.Error("WriteFile and Write produced different bytes")
	}

	bad := filepath.Join(dir, "bad", "x.parquet")
	if err := dmstest.WriteFile(bad, cols, nil, []dmstest.Row{{"x"}}, dmstest.Options{}); err == nil {
		t.Fatal("WriteFile with a bad value succeeded")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("failed WriteFile left %s behind (stat: %v)", bad, err)
	}
}

func TestWriteDeterministic(t *testing.T) {
	a := sha256.Sum256(writeAllTypes(t, dmstest.Options{Op: true, RowGroupRows: 2}))
	b := sha256.Sum256(writeAllTypes(t, dmstest.Options{Op: true, RowGroupRows: 2}))
	if a != b {
		t.Error("two writes of the same rows differ")
	}
}

// Special float values keep their exact bits through both readers: NaN
// (with its payload), ±Inf, -0 and subnormals, in FLOAT and DOUBLE columns.
func TestFloatBits(t *testing.T) {
	nan32 := math.Float32frombits(0x7fc00001) // a quiet NaN with a payload
	nan64 := math.Float64frombits(0x7ff8000000000001)
	f32 := []float32{nan32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1)),
		math.SmallestNonzeroFloat32, -math.MaxFloat32}
	f64 := []float64{nan64, math.Inf(1), math.Inf(-1), math.Copysign(0, -1), math.SmallestNonzeroFloat64, -math.MaxFloat64}
	cols := []dmstest.Column{{Name: "f", Type: dmstest.Float32}, {Name: "d", Type: dmstest.Float64}}
	rows := make([]dmstest.Row, len(f32))
	for i := range rows {
		rows[i] = dmstest.Row{f32[i], f64[i]}
	}
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, nil, rows, dmstest.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for r, row := range readRows(t, f) {
		if got := math.Float32bits(row[0].Float()); got != math.Float32bits(f32[r]) {
			t.Errorf("row %d FLOAT bits %#x via parquet-go, want %#x", r, got, math.Float32bits(f32[r]))
		}
		if got := math.Float64bits(row[1].Double()); got != math.Float64bits(f64[r]) {
			t.Errorf("row %d DOUBLE bits %#x via parquet-go, want %#x", r, got, math.Float64bits(f64[r]))
		}
	}
	rdr, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	a32 := tbl.Column(0).Data().Chunk(0).(*array.Float32)
	a64 := tbl.Column(1).Data().Chunk(0).(*array.Float64)
	for r := range f32 {
		if got := math.Float32bits(a32.Value(r)); got != math.Float32bits(f32[r]) {
			t.Errorf("row %d FLOAT bits %#x via arrow, want %#x", r, got, math.Float32bits(f32[r]))
		}
		if got := math.Float64bits(a64.Value(r)); got != math.Float64bits(f64[r]) {
			t.Errorf("row %d DOUBLE bits %#x via arrow, want %#x", r, got, math.Float64bits(f64[r]))
		}
	}
}

func TestTypeString(t *testing.T) {
	if got := dmstest.TimestampLocal.String(); got != "TimestampLocal" {
		t.Errorf("TimestampLocal.String() = %q", got)
	}
	if got := dmstest.TimestampLocalMillis.String(); got != "TimestampLocalMillis" {
		t.Errorf("TimestampLocalMillis.String() = %q", got)
	}
	if got := dmstest.DecimalInt64.String(); got != "DecimalInt64" {
		t.Errorf("DecimalInt64.String() = %q", got)
	}
	if got := dmstest.Type(-1).String(); got != "Type(-1)" {
		t.Errorf("Type(-1).String() = %q", got)
	}
}

// lt is the logical type of a parquet-go type as a string, "" for none.
func lt(typ parquet.Type) string {
	if l := typ.LogicalType(); l != nil && l.Value != nil {
		return l.String()
	}
	return ""
}

func readRows(t *testing.T, f *parquet.File) []parquet.Row {
	t.Helper()
	r := parquet.NewReader(f)
	defer r.Close()
	var rows []parquet.Row
	buf := make([]parquet.Row, 2)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			rows = append(rows, row.Clone())
		}
		if err != nil {
			break // io.EOF; anything else shows up as a short result
		}
	}
	return rows
}

// decodeParquetGo turns a value read by parquet-go into the normalized form
// of typeCase.want.
func decodeParquetGo(c dmstest.Column, v parquet.Value) any {
	if v.IsNull() {
		return nil
	}
	switch c.Type {
	case dmstest.String, dmstest.JSON, dmstest.Enum:
		return string(v.ByteArray())
	case dmstest.Binary:
		return append([]byte{}, v.ByteArray()...)
	case dmstest.Int8, dmstest.Int16, dmstest.Int32:
		return int64(v.Int32())
	case dmstest.Int64:
		return v.Int64()
	case dmstest.Uint8, dmstest.Uint16, dmstest.Uint32:
		return uint64(v.Uint32())
	case dmstest.Uint64:
		return v.Uint64()
	case dmstest.Bool:
		return v.Boolean()
	case dmstest.Float64:
		return v.Double()
	case dmstest.Float32:
		return v.Float()
	case dmstest.DecimalInt32:
		return formatDecimal(big.NewInt(int64(v.Int32())), c.Scale)
	case dmstest.DecimalInt64:
		return formatDecimal(big.NewInt(v.Int64()), c.Scale)
	case dmstest.Decimal:
		b := v.ByteArray()
		n := new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		return formatDecimal(n, c.Scale)
	case dmstest.Date:
		return time.Unix(int64(v.Int32())*86400, 0).UTC()
	case dmstest.Timestamp, dmstest.TimestampLocal:
		return time.UnixMicro(v.Int64()).UTC()
	case dmstest.TimestampMillis, dmstest.TimestampLocalMillis:
		return time.UnixMilli(v.Int64()).UTC()
	case dmstest.TimestampNanos:
		return time.Unix(0, v.Int64()).UTC()
	}
	return v
}

func formatDecimal(n *big.Int, scale int) string {
	s := new(big.Int).Abs(n).String()
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	if scale > 0 {
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if n.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// arrowValues turns an arrow column into the normalized form of typeCase.want.
func arrowValues(t *testing.T, c dmstest.Column, col *arrow.Column) []any {
	t.Helper()
	var out []any
	for _, chunk := range col.Data().Chunks() {
		for i := 0; i < chunk.Len(); i++ {
			if chunk.IsNull(i) {
				out = append(out, nil)
				continue
			}
			var v any
			switch a := chunk.(type) {
			case *array.String:
				v = a.Value(i)
			case *array.Binary:
				b := append([]byte{}, a.Value(i)...)
				if c.Type == dmstest.JSON || c.Type == dmstest.Enum {
					v = string(b)
				} else {
					v = b
				}
			case *array.Int8:
				v = int64(a.Value(i))
			case *array.Int16:
				v = int64(a.Value(i))
			case *array.Int32:
				v = int64(a.Value(i))
			case *array.Int64:
				v = a.Value(i)
			case *array.Uint8:
				v = uint64(a.Value(i))
			case *array.Uint16:
				v = uint64(a.Value(i))
			case *array.Uint32:
				v = uint64(a.Value(i))
			case *array.Uint64:
				v = a.Value(i)
			case *array.Boolean:
				v = a.Value(i)
			case *array.Float64:
				v = a.Value(i)
			case *array.Float32:
				v = a.Value(i)
			case *array.Decimal128:
				v = formatDecimal(a.Value(i).BigInt(), c.Scale)
			case *array.Date32:
				v = a.Value(i).ToTime().UTC()
			case *array.Timestamp:
				unit := a.DataType().(*arrow.TimestampType).Unit
				v = a.Value(i).ToTime(unit).UTC()
			default:
				t.Fatalf("%s: unexpected arrow array %T", c.Name, chunk)
			}
			out = append(out, v)
		}
	}
	return out
}
