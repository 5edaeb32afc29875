package icemerge

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

// extraColumnFile is a one-row change file of badCols (with Op first, as
// DMS writes it) plus a string column named extra, written with arrow-go
// in DMS's Parquet shape: dmstest refuses names no DMS source has, which
// other writers produce.
func extraColumnFile(t *testing.T, op string, id int32, name, extra string) []byte {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "Op", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "user_id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: extra, Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(op)
	b.Field(1).(*array.Int32Builder).Append(id)
	b.Field(2).(*array.StringBuilder).Append(name)
	b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(badTS.Add(time.Hour).UnixMicro()))
	b.Field(4).(*array.StringBuilder).Append("x")
	rec := b.NewRecordBatch()
	defer rec.Release()
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

// A file with a column named "" or with a name that is not UTF-8 fails the
// run with an InputError naming the file and column, before any commit:
// no schema change, no new table; the table stays readable and the next
// run, once the file is gone, applies the rest. With quarantine the file
// is skipped.
func TestBadColumnNames(t *testing.T) {
	for _, backend := range []string{"local", "minio-glue"} {
		for _, bad := range []string{"", "caf\xe9"} {
			// Subtest names without the '#' of repeats: a file:// URI
			// would read it as a fragment.
			t.Run(fmt.Sprintf("%s/%x", backend, bad), func(t *testing.T) {
				e := newEnv(t, backend)
				const key = "20240814-002700000.parquet"
				// A new table: nothing is created.
				e.put("LOAD00000001.parquet", extraColumnFile(t, "I", 1, "one", bad))
				checkBadName(t, e, "LOAD00000001.parquet", bad)
				if tbl := e.table(); tbl != nil {
					t.Fatalf("a table was created: %v", tbl.Columns)
				}
				e.remove("LOAD00000001.parquet")
				e.put("LOAD00000001.parquet", extraColumnFile(t, "I", 1, "one", "extra"))
				e.run()

				// An existing table: no schema change is committed.
				before, bm := e.table(), e.bookmark()
				loaded, _, err := e.cat.Load(e.ctx, e.opts.Table)
				if err != nil {
					t.Fatal(err)
				}
				e.put(key, extraColumnFile(t, "U", 1, "one b", bad))
				checkBadName(t, e, key, bad)
				after, _, err := e.cat.Load(e.ctx, e.opts.Table)
				if err != nil {
					t.Fatalf("the table does not load after the failed run: %v", err)
				}
				if after.MetadataLocation() != loaded.MetadataLocation() {
					t.Errorf("the failed run committed new metadata %s", after.MetadataLocation())
				}
				if got := e.table(); got.SnapshotID != before.SnapshotID || len(got.Columns) != len(before.Columns) || len(got.Rows) != 1 {
					t.Errorf("the table changed: %v, %v", got.Columns, got.Rows)
				}
				if got := e.bookmark(); got.Token != bm.Token || len(got.Files) != len(bm.Files) {
					t.Errorf("the bookmark moved")
				}

				// Quarantined, the file is skipped and a good one applied.
				e.opts.OnBadFile = OnBadFileQuarantine
				e.put("20240814-002800000.parquet", extraColumnFile(t, "I", 2, "two", "extra"))
				res := e.run()
				if _, ok := res.Quarantined[key]; !ok || res.Files != 2 {
					t.Errorf("quarantine: %d files, quarantined %v; want %s skipped", res.Files, res.Quarantined, key)
				}
				if rows := byKey(e.table().Rows, "user_id"); len(rows) != 2 || rows["1"]["name"] != "one" || rows["2"]["name"] != "two" {
					t.Errorf("table %v", rows)
				}
			})
		}
	}
}

// checkBadName runs over the bad file and checks the error.
func checkBadName(t *testing.T, e *env, key, bad string) {
	t.Helper()
	_, err := e.merge(e.deps(nil))
	t.Logf("%v", err)
	var ie *merge.InputError
	if !errors.As(err, &ie) || !errors.Is(err, merge.ErrColumnName) || ie.File != key || ie.Column != bad {
		t.Fatalf("err = %v, want an InputError wrapping ErrColumnName naming %s and column %q", err, key, bad)
	}
}

// A full load without IncludeOpForFullLoad (no Op column) of a source
// table with its own column named op: every row is an insert and op is
// data, D or not; the CDC files after it (Op first) keep the table's op.
func TestLoadOfATableWithAnOpColumn(t *testing.T) {
	e := newEnv(t, "local")
	cols := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}, {Name: "op", Type: dmstest.String}, {Name: "updated_at", Type: dmstest.Timestamp}}
	e.putDMS("LOAD00000001.parquet", cols, nil, []dmstest.Row{{int32(1), "D", badTS}, {int32(2), "U", badTS}}, dmstest.Options{Compression: "gzip"})
	e.run()
	e.putDMS("20240814-002700000.parquet", cols, []string{"U"}, []dmstest.Row{{int32(2), "D", badTS.Add(time.Minute)}}, dmstest.DMSOptions())
	e.run()
	rows := byKey(e.table().Rows, "user_id")
	if len(rows) != 2 || rows["1"]["op"] != "D" || rows["2"]["op"] != "D" {
		t.Errorf("table %v: want users 1 and 2, both with op D", rows)
	}
}
