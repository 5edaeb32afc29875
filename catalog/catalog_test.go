package catalog_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/catalog"
)

func storedSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "big", Type: &arrow.Decimal128Type{Precision: 20, Scale: 0}, Nullable: true},
		{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "local", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "l", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
}

// The stored Arrow schema survives the round trip through Iceberg, with the
// key as a required identifier field.
func TestSchemaRoundTrip(t *testing.T) {
	sc := storedSchema()
	ice, err := catalog.IcebergSchema(sc, []string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": "int", "big": "decimal(20, 0)", "at": "timestamptz", "local": "timestamp", "d": "date", "s": "string", "b": "binary", "l": "long"}
	for _, f := range ice.Fields() {
		if f.Type.String() != want[f.Name] {
			t.Errorf("%s: Iceberg type %s, want %s", f.Name, f.Type, want[f.Name])
		}
	}
	if keys := catalog.Keys(ice); len(keys) != 1 || keys[0] != "id" {
		t.Errorf("identifier fields %v", keys)
	}
	back, err := catalog.StoredSchema(ice)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(sc) {
		t.Errorf("round trip:\n got %s\nwant %s", back, sc)
	}
	if _, err := catalog.IcebergSchema(sc, []string{"missing"}); err == nil {
		t.Error("a key that is not a column was accepted")
	}
}

func open(t *testing.T) (*catalog.Catalog, *table.Table) {
	t.Helper()
	dir := t.TempDir()
	cat, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindSQL, URI: filepath.Join(dir, "c.db"),
		Warehouse: "file://" + filepath.Join(dir, "wh")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	sc, _ := catalog.IcebergSchema(arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}}, nil), []string{"id"})
	tbl, err := cat.Create(context.Background(), table.Identifier{"db", "t"}, sc)
	if err != nil {
		t.Fatal(err)
	}
	return cat, tbl
}

func ids(vals ...int32) (*arrow.Schema, func(yield func(arrow.RecordBatch, error) bool)) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}}, nil)
	return sc, func(yield func(arrow.RecordBatch, error) bool) {
		b := array.NewInt32Builder(memory.DefaultAllocator)
		b.AppendValues(vals, nil)
		yield(array.NewRecordBatch(sc, []arrow.Array{b.NewArray()}, int64(len(vals))), nil)
	}
}

// The token of the last icemerge commit is found through other writers'
// snapshots, and after its own snapshot was expired (Athena VACUUM).
func TestLastTokenSurvivesOtherWritersAndExpiry(t *testing.T) {
	ctx := context.Background()
	cat, tbl := open(t)
	if got := catalog.LastToken(tbl); got != "" {
		t.Fatalf("new table token %q", got)
	}
	_, recs := ids(1, 2)
	p, err := cat.Prepare(ctx, tbl, catalog.Change{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if tbl, err = cat.Commit(ctx, p, "run-1", map[string]string{catalog.KeyRunID: "run-1"}); err != nil {
		t.Fatal(err)
	}
	// Another writer appends: its snapshot has no token.
	arrowSc, _ := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	b := array.NewInt32Builder(memory.DefaultAllocator)
	b.Append(3)
	rdr, _ := array.NewRecordReader(arrowSc, []arrow.RecordBatch{array.NewRecordBatch(arrowSc, []arrow.Array{b.NewArray()}, 1)})
	if tbl, err = tbl.Append(ctx, rdr, iceberg.Properties{"writer": "other"}); err != nil {
		t.Fatal(err)
	}
	if got := catalog.LastToken(tbl); got != "run-1" {
		t.Errorf("through another writer's snapshot: token %q, want run-1", got)
	}
	// Expire every snapshot but the current one.
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithRetainLast(1), table.WithOlderThan(0)); err != nil {
		t.Fatal(err)
	}
	if tbl, err = tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 1 {
		t.Fatalf("%d snapshots after expiry, want 1", n)
	}
	if got := catalog.LastToken(tbl); got != "run-1" {
		t.Errorf("after expiry: token %q, want run-1 from the table property", got)
	}
}
