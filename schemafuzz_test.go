package icemerge

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/icemerge/icemerge/merge"
)

// fuzzTypes are the column types FuzzSchemaChange draws from: what DMS
// writes, what other writers do, nested types and types Athena cannot read.
// value is a non-null value for AppendValueFromString ("": always null).
var fuzzTypes = []struct {
	dt    arrow.DataType
	value string
}{
	{arrow.PrimitiveTypes.Int32, "7"},
	{arrow.PrimitiveTypes.Int64, "7"},
	{arrow.BinaryTypes.String, "s"},
	{arrow.PrimitiveTypes.Float32, "1.5"},
	{arrow.PrimitiveTypes.Float64, "1.5"},
	{arrow.FixedWidthTypes.Boolean, "true"},
	{arrow.FixedWidthTypes.Date32, "2024-08-14"},
	{&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, "2024-08-14T00:26:42Z"},
	{&arrow.TimestampType{Unit: arrow.Millisecond}, "2024-08-14T00:26:42"},
	{&arrow.Decimal128Type{Precision: 10, Scale: 2}, "12.5"},
	{&arrow.Decimal128Type{Precision: 20, Scale: 2}, "12.5"},
	{&arrow.Decimal128Type{Precision: 38, Scale: 0}, "12"},
	{arrow.BinaryTypes.Binary, "YWI="},
	{arrow.PrimitiveTypes.Int8, "7"},
	{arrow.PrimitiveTypes.Uint64, "7"},
	{arrow.PrimitiveTypes.Uint32, "7"},
	{arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), ""},
	{arrow.ListOf(arrow.PrimitiveTypes.Int32), ""},
	{arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32), ""},
	{arrow.FixedWidthTypes.Time32ms, ""},
	{arrow.BinaryTypes.LargeString, "s"},
	{&arrow.Decimal128Type{Precision: 5, Scale: 5}, "0.5"},
	{arrow.StructOf(arrow.Field{Name: "", Type: arrow.BinaryTypes.String, Nullable: true}), ""},
}

// fuzzColumns decodes a file's extra columns: names separated by "|" (at
// most 4), each typed by the next byte of types (its high bit: the value
// is null).
func fuzzColumns(names string, types []byte) []fuzzColumn {
	if names == "" && len(types) == 0 {
		return nil
	}
	parts := strings.Split(names, "|")
	var cols []fuzzColumn
	for i, n := range parts[:min(4, len(parts))] {
		var b byte
		if i < len(types) {
			b = types[i]
		}
		cols = append(cols, fuzzColumn{name: n, typ: int(b&0x7f) % len(fuzzTypes), null: b&0x80 != 0})
	}
	return cols
}

type fuzzColumn struct {
	name string
	typ  int
	null bool
}

// fuzzFile writes a one-row DMS-shaped change file (Op first, user_id,
// then cols) with arrow-go's writer; nil when the writer refuses it.
func fuzzFile(op string, id int32, cols []fuzzColumn) []byte {
	fields := []arrow.Field{
		{Name: "Op", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "user_id", Type: arrow.PrimitiveTypes.Int32},
	}
	for _, c := range cols {
		fields = append(fields, arrow.Field{Name: c.name, Type: fuzzTypes[c.typ].dt, Nullable: true})
	}
	sc := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(op)
	b.Field(1).(*array.Int32Builder).Append(id)
	for i, c := range cols {
		fb := b.Field(i + 2)
		if v := fuzzTypes[c.typ].value; c.null || v == "" || fb.AppendValueFromString(v) != nil {
			fb.AppendNull()
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithVersion(parquet.V1_0), parquet.WithCompression(compress.Codecs.Gzip),
		parquet.WithDictionaryDefault(true), parquet.WithStats(true))
	w, err := pqarrow.NewFileWriter(sc, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil
	}
	if w.Write(rec) != nil || w.Close() != nil {
		return nil
	}
	return buf.Bytes()
}

// FuzzSchemaChange runs a new table's first file and a change file with
// fuzzed column names (empty, not UTF-8, control characters, case twins,
// names the data file writer rewrites, the Op column's), types (DMS's,
// nested, unsupported) and nulls on the SQLite catalog. Whatever the run
// does, the invariant holds: a failing run commits nothing (no table, or
// the metadata as it was), the table loads and reads, and the next run
// with a good file succeeds.
func FuzzSchemaChange(f *testing.F) {
	for _, s := range []struct {
		a  string
		at []byte
		b  string
		bt []byte
	}{
		{"name", []byte{2}, "name|", []byte{2, 2}},
		{"name", []byte{2}, "name|caf\xe9", []byte{2, 2}},
		{"", []byte{2}, "x", []byte{2}},
		{"name", []byte{0}, "name", []byte{1}},    // int → long
		{"name", []byte{1}, "name", []byte{0}},    // long, then int
		{"name", []byte{2}, "name", []byte{0}},    // string → int: refused
		{"price", []byte{9}, "price", []byte{10}}, // decimal widened
		{"n", []byte{2}, "N|n", []byte{2, 2}},     // case twins
		{"_1a", []byte{2}, "1a", []byte{2}},       // the same data file name
		{"n", []byte{2}, "nested", []byte{16}},    // struct
		{"n", []byte{2}, "m|l", []byte{18, 17}},   // map, list
		{"n", []byte{2}, "op|a\nb", []byte{2, 2}}, // the table's own op; a newline
		{"n", []byte{2}, "$ar_h_change_seq", []byte{1}},
		{"n", []byte{2}, "USER_ID", []byte{0}},
		{"n", []byte{2}, strings.Repeat("x", 256), []byte{2}},
		{"n", []byte{2}, "s", []byte{22}}, // struct with an unnamed field
	} {
		f.Add(s.a, s.at, s.b, s.bt)
	}
	f.Fuzz(func(t *testing.T, namesA string, typesA []byte, namesB string, typesB []byte) {
		a, b := fuzzColumns(namesA, typesA), fuzzColumns(namesB, typesB)
		load, change := fuzzFile("I", 1, a), fuzzFile("U", 1, b)
		if load == nil || change == nil {
			t.Skip("arrow-go cannot write these columns")
		}
		e := newEnv(plainTempDir{t}, "local")
		e.opts.OrderBy = nil
		run := func(what string) error {
			t.Helper()
			_, err := e.merge(e.deps(nil))
			// Bad input is an InputError naming the file, which
			// --on-bad-file quarantine can skip.
			var ie *merge.InputError
			if err != nil && !errors.As(err, &ie) {
				t.Errorf("%s: %v: want an InputError", what, err)
			}
			return err
		}

		e.put("LOAD00000001.parquet", load)
		if err := run("first file"); err != nil {
			if tbl := e.table(); tbl != nil {
				t.Fatalf("the failed first run (%v) created a table %v", err, tbl.Columns)
			}
			e.remove("LOAD00000001.parquet")
			e.put("LOAD00000001.parquet", fuzzFile("I", 1, nil))
			if err := run("a good first file"); err != nil {
				t.Fatal(err)
			}
		}
		before, _, err := e.cat.Load(e.ctx, e.opts.Table)
		if err != nil {
			t.Fatal(err)
		}
		e.put("20240814-002700000.parquet", change)
		if err := run("change file"); err != nil {
			now, ok, lerr := e.cat.Load(e.ctx, e.opts.Table)
			if lerr != nil || !ok {
				t.Fatalf("after the failed run (%v) the table does not load: %v", err, lerr)
			}
			if now.MetadataLocation() != before.MetadataLocation() {
				t.Fatalf("the failed run (%v) committed %s", err, now.MetadataLocation())
			}
			e.remove("20240814-002700000.parquet")
		}
		if tbl := e.table(); tbl == nil || len(tbl.Rows) != 1 {
			t.Fatalf("the table does not read back one row: %v", tbl)
		}
		// The table takes the next good file, whatever its schema now is.
		e.put("20240814-002800000.parquet", fuzzFile("I", 2, nil))
		if err := run("a good change file"); err != nil {
			t.Fatal(err)
		}
		if tbl := e.table(); len(tbl.Rows) != 2 {
			t.Fatalf("after a good file: %d rows, want 2", len(tbl.Rows))
		}
	})
}

// plainTempDir gives newEnv temporary folders without the '#' of fuzz
// seed names (FuzzX/seed#1), which a file:// URI reads as a fragment.
type plainTempDir struct{ *testing.T }

func (t plainTempDir) TempDir() string {
	dir, err := os.MkdirTemp("", "icemerge-fuzz-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
