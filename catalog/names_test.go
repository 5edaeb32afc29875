package catalog_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/icemerge/icemerge/merge"
)

// The catalog's own guard: a schema whose names Glue, Athena, Iceberg's
// metadata or the data file writer cannot take is refused before any
// commit, on a new table (nothing created) and on a schema change (the
// metadata stays as it was), whatever the caller checked before.
func TestBadNamesAreNeverCommitted(t *testing.T) {
	ctx := context.Background()
	cat := openURI(t, filepath.Join(t.TempDir(), "icemerge.db"))
	str := arrow.BinaryTypes.String
	for _, c := range []struct {
		what  string
		names []string
	}{
		{"empty", []string{""}},
		{"not UTF-8", []string{"caf\xe9"}},
		{"upper case", []string{"Email"}},
		{"a control character", []string{"a\nb"}},
		{"too long", []string{string(make([]byte, 256))}},
		// The data file writer makes names Avro-compatible: 1a becomes _1a.
		{"colliding in the data files", []string{"1a", "_1a"}},
	} {
		fields := []arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}}
		for _, n := range c.names {
			fields = append(fields, arrow.Field{Name: n, Type: str, Nullable: true})
		}
		if _, err := cat.Create(ctx, "db.t", arrow.NewSchema(fields, nil), []string{"id"}, nil); !errors.Is(err, merge.ErrColumnName) {
			t.Errorf("create with %s names: err = %v, want ErrColumnName", c.what, err)
		}
		if _, ok, err := cat.Load(ctx, "db.t"); ok || err != nil {
			t.Fatalf("create with %s names: a table exists (%v, %v)", c.what, ok, err)
		}
	}

	tbl, err := cat.Create(ctx, "db.t", arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int32}, {Name: "_1a", Type: str, Nullable: true}, {Name: "email", Type: str, Nullable: true}}, nil), []string{"id"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		add  string
	}{
		{"empty", ""},
		{"not UTF-8", "caf\xe9"},
		{"upper case", "Email"},
		{"colliding in the data files", "1a"},
		{"an existing column", "email"},
	} {
		_, err := cat.Evolve(ctx, tbl, []arrow.Field{{Name: c.add, Type: str, Nullable: true}}, nil)
		if !errors.Is(err, merge.ErrColumnName) {
			t.Errorf("adding a column %s (%q): err = %v, want ErrColumnName", c.what, c.add, err)
		}
		now, ok, err := cat.Load(ctx, "db.t")
		if !ok || err != nil {
			t.Fatalf("after adding a column %s: the table does not load (%v, %v)", c.what, ok, err)
		}
		if now.MetadataLocation() != tbl.MetadataLocation() {
			t.Errorf("adding a column %s: new metadata %s was committed", c.what, now.MetadataLocation())
		}
	}
	if _, err := cat.Evolve(ctx, tbl, []arrow.Field{{Name: "$ar_h_change_seq", Type: str, Nullable: true}}, nil); err != nil {
		t.Errorf("adding $ar_h_change_seq: %v", err)
	}
}
