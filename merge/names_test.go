package merge_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

// arrowParquet writes one row of string columns named names (after an Op
// column when op is set) with arrow-go's writer, in DMS's shape (GZIP,
// parquet 1.0, dictionary and statistics on): dmstest refuses names no
// DMS source has, such as the empty one, which other writers produce.
func arrowParquet(t testing.TB, op string, names ...string) []byte {
	t.Helper()
	var fields []arrow.Field
	var vals []string
	if op != "" {
		fields, vals = append(fields, arrow.Field{Name: "Op", Type: arrow.BinaryTypes.String, Nullable: true}), append(vals, op)
	}
	for _, n := range names {
		fields, vals = append(fields, arrow.Field{Name: n, Type: arrow.BinaryTypes.String, Nullable: true}), append(vals, "v")
	}
	sc := arrow.NewSchema(fields, nil)
	cols := make([]arrow.Array, len(fields))
	for i, v := range vals {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		b.Append(v)
		cols[i] = b.NewArray()
	}
	rec := array.NewRecordBatch(sc, cols, 1)
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithVersion(parquet.V1_0), parquet.WithCompression(compress.Codecs.Gzip),
		parquet.WithDictionaryDefault(true), parquet.WithStats(true))
	w, err := pqarrow.NewFileWriter(sc, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A column name Glue, Athena or Iceberg's metadata cannot hold fails the
// file with an InputError naming the file and the column, before anything
// is planned; names Athena merely advises against pass.
func TestColumnNames(t *testing.T) {
	long := strings.Repeat("x", merge.MaxColumnName)
	for _, c := range []struct {
		name string
		ok   bool
		says string // in the error
	}{
		{"", false, "empty"},
		{"caf\xe9", false, "UTF-8"},
		{"line\nbreak", false, "U+000A"},
		{"nul\x00", false, "U+0000"},
		{"x\uffff", false, "U+FFFF"},
		{long + "x", false, "256 bytes"},
		{long, true, ""},
		{"$ar_h_change_seq", true, ""},
		{"with space", true, ""},
		{"tab\there", true, ""},
		{"𠮷名前", true, ""},
		{"a.b", true, ""},
		{"Mixed", true, ""},
	} {
		const file = "20240814-000001000.parquet"
		f, err := merge.ReadFile(context.Background(), file, merge.CDC, bytes.NewReader(arrowParquet(t, "I", "id", c.name)), nil)
		if c.ok {
			if err != nil {
				t.Errorf("column %q: %v", c.name, err)
			} else if got := f.Schema.Field(1).Name; got != strings.ToLower(c.name) {
				t.Errorf("column %q stored as %q", c.name, got)
			}
			continue
		}
		var ie *merge.InputError
		switch {
		case !errors.As(err, &ie) || !errors.Is(err, merge.ErrColumnName):
			t.Errorf("column %q: err = %v, want an InputError wrapping ErrColumnName", c.name, err)
		case ie.File != file || ie.Column != c.name || !strings.Contains(err.Error(), c.says):
			t.Errorf("column %q: err = %v (file %q, column %q), want it to name the file and column and say %q", c.name, err, ie.File, ie.Column, c.says)
		}
	}
}

// DMS writes Op as the first column; a full-load file without
// IncludeOpForFullLoad has none, and a source table's own column named op
// is data there, D or not.
func TestOpIsOnlyTheFirstColumn(t *testing.T) {
	t.Run("a load file of a table with its own op column", func(t *testing.T) {
		cols := []dmstest.Column{{Name: "id", Type: dmstest.Int32, Required: true}, {Name: "op", Type: dmstest.String}}
		var buf bytes.Buffer
		rows := []dmstest.Row{{int32(1), "D"}, {int32(2), "D"}, {int32(3), "U"}}
		if err := dmstest.Write(&buf, cols, nil, rows, dmstest.Options{Compression: "gzip"}); err != nil {
			t.Fatal(err)
		}
		f := read(t, "LOAD00000001.parquet", buf.Bytes())
		if f.HasOp || f.Count(merge.Insert) != 3 {
			t.Errorf("HasOp %v, %d inserts of %d rows: want every row an insert", f.HasOp, f.Count(merge.Insert), f.Rows())
		}
		if f.Schema.NumFields() != 2 || f.Schema.Field(1).Name != "op" {
			t.Fatalf("schema %v: want the op column kept as data", f.Schema)
		}
		if got := f.Records[0].Column(1).(*array.String).Value(0); got != "D" {
			t.Errorf("op of row 1 = %q, want D", got)
		}
	})
	t.Run("a CDC file of a table with its own op column", func(t *testing.T) {
		f := read(t, "20240814-000001000.parquet", arrowParquet(t, "D", "id", "op"))
		if !f.HasOp || f.Count(merge.Delete) != 1 || f.Schema.NumFields() != 2 || f.Schema.Field(1).Name != "op" {
			t.Errorf("HasOp %v, deletes %d, schema %v: want DMS's Op read and the table's op kept", f.HasOp, f.Count(merge.Delete), f.Schema)
		}
	})
	t.Run("a first column named op that is not a string", func(t *testing.T) {
		cols := []dmstest.Column{{Name: "op", Type: dmstest.Int32, Required: true}, {Name: "v", Type: dmstest.String}}
		var buf bytes.Buffer
		if err := dmstest.Write(&buf, cols, nil, []dmstest.Row{{int32(7), "x"}}, dmstest.Options{}); err != nil {
			t.Fatal(err)
		}
		f := read(t, "LOAD00000001.parquet", buf.Bytes())
		if f.HasOp || f.Schema.NumFields() != 2 || f.Schema.Field(0).Name != "op" {
			t.Errorf("HasOp %v, schema %v: want an int column op read as data", f.HasOp, f.Schema)
		}
	})
}
