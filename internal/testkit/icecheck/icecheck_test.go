package icecheck_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"
	_ "modernc.org/sqlite"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/icecheck"
)

// schema covers every primitive type icecheck reads.
var schema = iceberg.NewSchemaWithIdentifiers(0, []int{1},
	iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
	iceberg.NestedField{ID: 2, Name: "name", Type: iceberg.PrimitiveTypes.String},
	iceberg.NestedField{ID: 3, Name: "small", Type: iceberg.PrimitiveTypes.Int32},
	iceberg.NestedField{ID: 4, Name: "f32", Type: iceberg.PrimitiveTypes.Float32},
	iceberg.NestedField{ID: 5, Name: "f64", Type: iceberg.PrimitiveTypes.Float64},
	iceberg.NestedField{ID: 6, Name: "ok", Type: iceberg.PrimitiveTypes.Bool},
	iceberg.NestedField{ID: 7, Name: "price", Type: iceberg.DecimalTypeOf(10, 2)},
	iceberg.NestedField{ID: 8, Name: "u64", Type: iceberg.DecimalTypeOf(20, 0)},
	iceberg.NestedField{ID: 9, Name: "day", Type: iceberg.PrimitiveTypes.Date},
	iceberg.NestedField{ID: 10, Name: "ts", Type: iceberg.PrimitiveTypes.Timestamp},
	iceberg.NestedField{ID: 11, Name: "tstz", Type: iceberg.PrimitiveTypes.TimestampTz},
	iceberg.NestedField{ID: 12, Name: "blob", Type: iceberg.PrimitiveTypes.Binary},
	iceberg.NestedField{ID: 13, Name: "fx", Type: iceberg.FixedTypeOf(3)},
	iceberg.NestedField{ID: 14, Name: "uid", Type: iceberg.PrimitiveTypes.UUID},
)

// row builds one JSON row of the test table; i picks the values.
func row(id int, name string) string {
	return fmt.Sprintf(`{"id": %d, "name": %q, "small": %d, "f32": %d.5, "f64": -%d.25, "ok": %t,
		"price": "-%d.05", "u64": "18446744073709551%03d", "day": "2024-08-%02d",
		"ts": "2024-08-14 00:00:%02d.123456", "tstz": "2024-08-14 00:26:%02d.5Z",
		"blob": "AAEC", "fx": "YWJj", "uid": "0190f1c2-0000-7000-8000-0000000000%02d"}`,
		id, name, id*10, id, id, id%2 == 0, id, 600+id, id, id, id, id)
}

type env struct {
	ctx context.Context
	dir string
	cat *sqlcat.Catalog
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cat, err := sqlcat.NewCatalog("t", db, sqlcat.SQLite, iceberg.Properties{
		"uri":       "file://" + filepath.Join(dir, "catalog.db"),
		"warehouse": "file://" + dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateSQLTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateNamespace(ctx, table.Identifier{"db"}, nil); err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, dir: dir, cat: cat}
}

func (e *env) create(t *testing.T, name string, props iceberg.Properties) *table.Table {
	t.Helper()
	tbl, err := e.cat.CreateTable(e.ctx, table.Identifier{"db", name}, schema, catalog.WithProperties(props))
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	return tbl
}

func appendJSON(t *testing.T, ctx context.Context, tbl *table.Table, rows ...string) *table.Table {
	t.Helper()
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, false, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, sc, strings.NewReader("["+strings.Join(rows, ",")+"]"))
	if err != nil {
		t.Fatalf("RecordFromJSON: %v", err)
	}
	defer rec.Release()
	rdr, err := array.NewRecordReader(sc, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	tbl, err = tbl.Append(ctx, rdr, nil)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return tbl
}

func TestReadAgainstIcebergGo(t *testing.T) {
	e := newEnv(t)
	tbl := e.create(t, "users", iceberg.Properties{table.WriteDeleteModeKey: table.WriteModeMergeOnRead})
	tbl = appendJSON(t, e.ctx, tbl, row(1, "user0"), row(2, "𠮷野家"), row(3, "😀"), row(4, "user3"))
	tbl = appendJSON(t, e.ctx, tbl, row(5, "user4"), row(6, "user5"))
	var err error
	tbl, err = tbl.Delete(e.ctx, iceberg.EqualTo(iceberg.Reference("id"), int64(2)), nil)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	tbl, err = tbl.Delete(e.ctx, iceberg.IsIn(iceberg.Reference("id"), int64(4), int64(6)), nil)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	tbl = appendJSON(t, e.ctx, tbl, row(7, "user6"))

	got, err := icecheck.Read(e.ctx, tbl.MetadataLocation())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	t.Logf("data files %d, delete files %d, summary %v", got.DataFiles, got.DeleteFiles, got.Summary)
	if got.DeleteFiles == 0 {
		t.Fatal("merge-on-read Delete produced no position delete files")
	}
	want := scanRows(t, e.ctx, tbl)
	sortRows(got.Rows)
	if !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("icecheck rows differ from the iceberg-go scan:\n got %v\nwant %v", got.Rows, want)
	}
	ids := []int64{}
	for _, r := range got.Rows {
		ids = append(ids, r["id"].(int64))
	}
	if !reflect.DeepEqual(ids, []int64{1, 3, 5, 7}) {
		t.Errorf("ids = %v, want [1 3 5 7]", ids)
	}
}

// scanRows reads the table with iceberg-go's own scan and converts the rows
// to icecheck's value types, sorted by id.
func scanRows(t *testing.T, ctx context.Context, tbl *table.Table) []map[string]any {
	t.Helper()
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatalf("ToArrowTable: %v", err)
	}
	defer at.Release()
	var rows []map[string]any
	tr := array.NewTableReader(at, 1024)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		for r := 0; r < int(rec.NumRows()); r++ {
			m := map[string]any{}
			for c := 0; c < int(rec.NumCols()); c++ {
				m[rec.Schema().Field(c).Name] = arrowValue(t, rec.Column(c), r)
			}
			rows = append(rows, m)
		}
	}
	sortRows(rows)
	return rows
}

func sortRows(rows []map[string]any) {
	sort.Slice(rows, func(i, j int) bool { return rows[i]["id"].(int64) < rows[j]["id"].(int64) })
}

func arrowValue(t *testing.T, arr arrow.Array, i int) any {
	t.Helper()
	v, err := dmstest.ArrowValue(arr, i)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadEmptyTable(t *testing.T) {
	e := newEnv(t)
	tbl := e.create(t, "empty", iceberg.Properties{"owner": "icemerge"})
	got, err := icecheck.Read(e.ctx, tbl.MetadataLocation())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got.Rows == nil || len(got.Rows) != 0 || got.SnapshotID != 0 || got.DataFiles != 0 || got.Summary != nil {
		t.Errorf("empty table read as %+v", got)
	}
	if got.Properties["owner"] != "icemerge" {
		t.Errorf("properties = %v", got.Properties)
	}
	want := []icecheck.Column{
		{1, "id", "long", true}, {2, "name", "string", false}, {3, "small", "int", false},
		{4, "f32", "float", false}, {5, "f64", "double", false}, {6, "ok", "boolean", false},
		{7, "price", "decimal(10, 2)", false}, {8, "u64", "decimal(20, 0)", false},
		{9, "day", "date", false}, {10, "ts", "timestamp", false}, {11, "tstz", "timestamptz", false},
		{12, "blob", "binary", false}, {13, "fx", "fixed[3]", false}, {14, "uid", "uuid", false},
	}
	if !reflect.DeepEqual(got.Columns, want) {
		t.Errorf("columns:\n got %v\nwant %v", got.Columns, want)
	}
}

func TestReadValues(t *testing.T) {
	e := newEnv(t)
	tbl := e.create(t, "values", nil)
	tbl = appendJSON(t, e.ctx, tbl, row(1, "𠮷😀"), `{"id": 2}`)
	got, err := icecheck.Read(e.ctx, tbl.MetadataLocation())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sortRows(got.Rows)
	want := []map[string]any{{
		"id": int64(1), "name": "𠮷😀", "small": int64(10), "f32": 1.5, "f64": -1.25, "ok": false,
		"price": "-1.05", "u64": "18446744073709551601", "day": time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC),
		"ts":   time.Date(2024, 8, 14, 0, 0, 1, 123456000, time.UTC),
		"tstz": time.Date(2024, 8, 14, 0, 26, 1, 500000000, time.UTC),
		"blob": []byte{0, 1, 2}, "fx": []byte("abc"), "uid": "0190f1c2-0000-7000-8000-000000000001",
	}, {
		"id": int64(2), "name": nil, "small": nil, "f32": nil, "f64": nil, "ok": nil, "price": nil,
		"u64": nil, "day": nil, "ts": nil, "tstz": nil, "blob": nil, "fx": nil, "uid": nil,
	}}
	if !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("rows:\n got %#v\nwant %#v", got.Rows, want)
	}
	if name := got.Rows[0]["name"].(string); !bytesEqual(name, "\xf0\xa0\xae\xb7\xf0\x9f\x98\x80") {
		t.Errorf("4-byte UTF-8 changed: % x", name)
	}
	if got.Summary["operation"] != "append" || got.DataFiles != 1 || got.DeleteFiles != 0 {
		t.Errorf("summary %v, %d data files, %d delete files", got.Summary, got.DataFiles, got.DeleteFiles)
	}
	if got.SnapshotID != tbl.CurrentSnapshot().SnapshotID {
		t.Errorf("snapshot id %d, want %d", got.SnapshotID, tbl.CurrentSnapshot().SnapshotID)
	}
}

func bytesEqual(a, b string) bool { return a == b && len(a) == len(b) }

// TestHandWrittenPositionDeletes writes position delete files with
// parquet-go and commits them with a RowDelta: the way to produce position
// deletes without iceberg-go's Delete. One file carries the reserved field
// ids, the other only the column names.
func TestHandWrittenPositionDeletes(t *testing.T) {
	for _, withIDs := range []bool{true, false} {
		t.Run(fmt.Sprintf("field-ids=%v", withIDs), func(t *testing.T) {
			e := newEnv(t)
			tbl := e.create(t, "pos", nil)
			tbl = appendJSON(t, e.ctx, tbl, row(1, "a"), row(2, "b"), row(3, "c"))
			tbl = appendJSON(t, e.ctx, tbl, row(4, "d"), row(5, "e"))
			tasks, err := tbl.Scan().PlanFiles(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var dels []posDelete
			for _, task := range tasks {
				switch task.File.Count() {
				case 3: // ids 1..3: delete ids 1 and 3
					dels = append(dels, posDelete{task.File.FilePath(), 0}, posDelete{task.File.FilePath(), 2})
				case 2: // ids 4, 5: delete id 5
					dels = append(dels, posDelete{task.File.FilePath(), 1})
				}
			}
			path := filepath.Join(e.dir, "deletes", "pos-deletes.parquet")
			size := writePositionDeletes(t, path, dels, withIDs)
			df, err := iceberg.NewDataFileBuilder(tbl.Spec(), iceberg.EntryContentPosDeletes, "file://"+path,
				iceberg.ParquetFile, nil, nil, nil, int64(len(dels)), size)
			if err != nil {
				t.Fatal(err)
			}
			tx := tbl.NewTransaction()
			if err := tx.NewRowDelta(nil).AddDeletes(df.Build()).Commit(e.ctx); err != nil {
				t.Fatalf("RowDelta: %v", err)
			}
			if tbl, err = tx.Commit(e.ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}

			got, err := icecheck.Read(e.ctx, tbl.MetadataLocation())
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			sortRows(got.Rows)
			if ids := idsOf(got.Rows); !reflect.DeepEqual(ids, []int64{2, 4}) {
				t.Errorf("icecheck ids = %v, want [2 4]", ids)
			}
			if got.DeleteFiles != 1 {
				t.Errorf("%d delete files, want 1", got.DeleteFiles)
			}
			want := scanRows(t, e.ctx, tbl)
			if !reflect.DeepEqual(got.Rows, want) {
				t.Errorf("icecheck and iceberg-go disagree:\n got %v\nwant %v", idsOf(got.Rows), idsOf(want))
			}
		})
	}
}

func idsOf(rows []map[string]any) []int64 {
	ids := []int64{}
	for _, r := range rows {
		ids = append(ids, r["id"].(int64))
	}
	return ids
}

type posDelete struct {
	path string
	pos  int64
}

// writePositionDeletes writes a position delete file (file_path, pos),
// sorted as the spec requires, and returns its size.
func writePositionDeletes(t *testing.T, path string, dels []posDelete, withIDs bool) int64 {
	t.Helper()
	sort.Slice(dels, func(i, j int) bool {
		if dels[i].path != dels[j].path {
			return dels[i].path < dels[j].path
		}
		return dels[i].pos < dels[j].pos
	})
	filePath, pos := parquet.String(), parquet.Int(64)
	if withIDs {
		filePath = parquet.FieldID(filePath, 2147483546)
		pos = parquet.FieldID(pos, 2147483545)
	}
	// parquet.Group sorts its fields by name, which happens to be the
	// order the spec wants: file_path, then pos.
	sc := parquet.NewSchema("schema", parquet.Group{"file_path": filePath, "pos": pos})
	rows := make([]parquet.Row, len(dels))
	for i, d := range dels {
		rows[i] = parquet.Row{
			parquet.ByteArrayValue([]byte(d.path)).Level(0, 0, 0),
			parquet.Int64Value(d.pos).Level(0, 0, 1),
		}
	}
	return writeParquet(t, path, sc, rows)
}

func writeParquet(t *testing.T, path string, sc *parquet.Schema, rows []parquet.Row) int64 {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewWriter(f, sc)
	if _, err := w.WriteRows(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestEqualityDeletesUnsupported(t *testing.T) {
	e := newEnv(t)
	tbl := e.create(t, "eq", nil)
	tbl = appendJSON(t, e.ctx, tbl, row(1, "a"), row(2, "b"))
	path := filepath.Join(e.dir, "deletes", "eq-deletes.parquet")
	sc := parquet.NewSchema("schema", parquet.Group{"id": parquet.FieldID(parquet.Int(64), 1)})
	size := writeParquet(t, path, sc, []parquet.Row{{parquet.Int64Value(2).Level(0, 0, 0)}})
	b, err := iceberg.NewDataFileBuilder(tbl.Spec(), iceberg.EntryContentEqDeletes, "file://"+path,
		iceberg.ParquetFile, nil, nil, nil, 1, size)
	if err != nil {
		t.Fatal(err)
	}
	tx := tbl.NewTransaction()
	if err := tx.NewRowDelta(nil).AddDeletes(b.EqualityFieldIDs([]int{1}).Build()).Commit(e.ctx); err != nil {
		t.Fatalf("RowDelta: %v", err)
	}
	if tbl, err = tx.Commit(e.ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	_, err = icecheck.Read(e.ctx, tbl.MetadataLocation())
	if !errors.Is(err, icecheck.ErrUnsupported) || !strings.Contains(err.Error(), "equality delete") {
		t.Fatalf("Read = %v, want an equality deletes unsupported error", err)
	}
}

func TestSchemaEvolution(t *testing.T) {
	e := newEnv(t)
	tbl := e.create(t, "evolve", nil)
	tbl = appendJSON(t, e.ctx, tbl, row(1, "a"))
	tx := tbl.NewTransaction()
	us := tx.UpdateSchema(true, false).
		AddColumn([]string{"extra"}, iceberg.PrimitiveTypes.String, "", false, nil).
		UpdateColumn([]string{"small"}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Val: iceberg.PrimitiveTypes.Int64, Valid: true}}).
		UpdateColumn([]string{"f32"}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Val: iceberg.PrimitiveTypes.Float64, Valid: true}}).
		RenameColumn([]string{"name"}, "full_name")
	if err := us.Commit(); err != nil {
		t.Fatalf("UpdateSchema: %v", err)
	}
	var err error
	if tbl, err = tx.Commit(e.ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	tbl = appendJSON(t, e.ctx, tbl, `{"id": 2, "full_name": "𠮷", "small": 5000000000, "f32": 0.1, "extra": "x"}`)

	got, err := icecheck.Read(e.ctx, tbl.MetadataLocation())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sortRows(got.Rows)
	want := scanRows(t, e.ctx, tbl)
	if !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("icecheck and iceberg-go disagree:\n got %v\nwant %v", got.Rows, want)
	}
	r1 := got.Rows[0]
	if r1["full_name"] != "a" || r1["small"] != int64(10) || r1["f32"] != 1.5 || r1["extra"] != nil {
		t.Errorf("old row after evolution = %v", r1)
	}
}

func TestReadLocations(t *testing.T) {
	e := newEnv(t)
	tbl := appendJSON(t, e.ctx, e.create(t, "loc", nil), row(1, "a"))
	loc := tbl.MetadataLocation()
	if !strings.HasPrefix(loc, "file://") {
		t.Fatalf("metadata location %q is not a file:// URL", loc)
	}
	for _, l := range []string{loc, strings.TrimPrefix(loc, "file://"), "file:" + strings.TrimPrefix(loc, "file://")} {
		got, err := icecheck.Read(e.ctx, l)
		if err != nil || len(got.Rows) != 1 {
			t.Errorf("Read(%q) = %v rows, %v", l, got, err)
		}
	}

	for _, bad := range []struct{ loc, want string }{
		{"s3://bucket/warehouse/db/t/metadata/00001.metadata.json", "s3://"},
		{"gs://bucket/x.metadata.json", "gs://"},
	} {
		_, err := icecheck.Read(e.ctx, bad.loc)
		if !errors.Is(err, icecheck.ErrUnsupported) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Read(%q) = %v, want unsupported %s", bad.loc, err, bad.want)
		}
	}
	if _, err := icecheck.Read(e.ctx, "relative/x.metadata.json"); err == nil {
		t.Error("Read of a relative path succeeded")
	}
	if _, err := icecheck.Read(e.ctx, filepath.Join(e.dir, "missing.metadata.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing file = %v, want os.ErrNotExist", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := icecheck.Read(ctx, loc); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a canceled context = %v", err)
	}
}

// TestCorruptFiles damages each kind of file and expects an error, never a
// panic.
func TestCorruptFiles(t *testing.T) {
	e := newEnv(t)
	tbl := e.create(t, "corrupt", iceberg.Properties{table.WriteDeleteModeKey: table.WriteModeMergeOnRead})
	tbl = appendJSON(t, e.ctx, tbl, row(1, "a"), row(2, "b"))
	tbl, err := tbl.Delete(e.ctx, iceberg.EqualTo(iceberg.Reference("id"), int64(2)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every file the current snapshot reaches: its metadata file and
	// manifest list, the manifests (no other snapshot wrote any) and all
	// data and delete files.
	loc := strings.TrimPrefix(tbl.MetadataLocation(), "file://")
	list := strings.TrimPrefix(tbl.CurrentSnapshot().ManifestList, "file://")
	var files []string
	filepath.Walk(e.dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		base := filepath.Base(p)
		if strings.HasSuffix(p, ".parquet") || p == loc || p == list ||
			(strings.HasSuffix(p, ".avro") && !strings.HasPrefix(base, "snap-")) {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	damages := map[string]func([]byte) []byte{
		"truncated":   func(b []byte) []byte { return b[:len(b)/2] },
		"footer-flip": func(b []byte) []byte { b[len(b)-9] ^= 0xff; return b },
		"garbage": func(b []byte) []byte {
			for i := len(b) / 4; i < len(b)*3/4; i++ {
				b[i] = byte(i * 7)
			}
			return b
		},
	}
	for _, f := range files {
		orig, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for name, damage := range damages {
			if err := os.WriteFile(f, damage(append([]byte{}, orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := icecheck.Read(e.ctx, tbl.MetadataLocation())
			switch {
			case err != nil:
			case name == "truncated":
				t.Errorf("%s %s: read without error", name, filepath.Base(f))
			default:
				// A changed byte may land where no reader looks (Avro header
				// metadata other than the schema, a JSON string): no crash is
				// all that can be asked.
				t.Logf("%s %s: read without error", name, filepath.Base(f))
			}
		}
		if err := os.WriteFile(f, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := icecheck.Read(e.ctx, tbl.MetadataLocation()); err != nil {
		t.Fatalf("Read after restoring the files: %v", err)
	}
}

// TestAddedFilesWithoutFieldIDs imports a Parquet file that has no field ids
// (as DMS writes them) with AddFiles: icecheck must match columns by name.
func TestAddedFilesWithoutFieldIDs(t *testing.T) {
	e := newEnv(t)
	sc := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: "name", Type: iceberg.PrimitiveTypes.String},
	)
	tbl, err := e.cat.CreateTable(e.ctx, table.Identifier{"db", "imported"}, sc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.dir, "import", "part-0.parquet")
	psc := parquet.NewSchema("schema", parquet.Group{"id": parquet.Int(64), "name": parquet.Optional(parquet.String())})
	writeParquet(t, path, psc, []parquet.Row{
		{parquet.Int64Value(1).Level(0, 0, 0), parquet.ByteArrayValue([]byte("𠮷")).Level(0, 1, 1)},
		{parquet.Int64Value(2).Level(0, 0, 0), parquet.NullValue().Level(0, 0, 1)},
	})
	tx := tbl.NewTransaction()
	if err := tx.AddFiles(e.ctx, []string{"file://" + path}, nil, false); err != nil {
		t.Fatalf("AddFiles: %v", err)
	}
	if tbl, err = tx.Commit(e.ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	got, err := icecheck.Read(e.ctx, tbl.MetadataLocation())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sortRows(got.Rows)
	want := []map[string]any{{"id": int64(1), "name": "𠮷"}, {"id": int64(2), "name": nil}}
	if !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("rows = %v, want %v", got.Rows, want)
	}
	if scan := scanRows(t, e.ctx, tbl); !reflect.DeepEqual(scan, want) {
		t.Errorf("iceberg-go scan = %v, want %v", scan, want)
	}
}
