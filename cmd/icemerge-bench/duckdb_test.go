//go:build cgo

package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// change is one row of a hand-made DMS file: its email tells which change
// (variant) a table row came from.
type change struct {
	op      byte
	key     int32
	ts      int64
	variant uint64
}

func writeChanges(t *testing.T, path string, rows []change) {
	t.Helper()
	p := genParams{Seed: 1, Shape: shapeDMS}
	_, err := writeParquet(path, p.format(), cdcSchema, len(rows), bioPool(1), func(g *rowGroup, from, to int) {
		for _, c := range rows[from:to] {
			g.add(1, dmsStreamID, c.op, c.key, c.ts, c.ts, c.variant)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDuckDBMergeIsTheSameMerge runs the DuckDB peer on a table and two
// CDC files with every tie icemerge breaks: per key the latest change by
// updated_at wins, then the later file, then the later row; a D deletes,
// an I or U replaces the row; keys no change names stay.
func TestDuckDBMergeIsTheSameMerge(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	const t0, t1, t2 = 1_000_000, 2_000_000, 3_000_000
	load := filepath.Join(dir, "LOAD00000001.parquet")
	writeChanges(t, load, []change{{'I', 1, t0, 0}, {'I', 2, t0, 0}, {'I', 3, t0, 0}, {'I', 6, t0, 0}})
	a := filepath.Join(dir, "20240814-000000001.parquet")
	writeChanges(t, a, []change{
		{'U', 1, t1, 11}, // newer than b's change of key 1
		{'D', 2, t0, 0},  // the delete carries the load row's image and updated_at
		{'U', 3, t2, 31},
		{'I', 4, t1, 41},
	})
	b := filepath.Join(dir, "20240814-000000002.parquet")
	writeChanges(t, b, []change{
		{'U', 3, t2, 32}, // same updated_at as a's: the later file wins
		{'D', 4, t1, 41}, // same updated_at as the insert: deleted
		{'U', 1, t0, 12}, // older than a's: loses
		{'I', 5, t1, 51},
		{'U', 5, t1, 52}, // same updated_at, later row: wins
	})
	table, out := filepath.Join(dir, "table.parquet"), filepath.Join(dir, "out.parquet")
	if err := duckdbMain(ctx, []string{"-mode", "load", "-out", table, "-report", filepath.Join(dir, "load.json"), load}); err != nil {
		t.Fatal(err)
	}
	if err := duckdbMain(ctx, []string{"-mode", "merge", "-table", table, "-out", out, "-report", filepath.Join(dir, "merge.json"), a, b}); err != nil {
		t.Fatal(err)
	}
	rec := readAll(t, out)
	defer rec.Release()
	if rec.Schema().Field(0).Name != "user_id" || rec.NumCols() != 8 {
		t.Errorf("the table's columns start with %s, %d in all; want user_id first, Op dropped, 8", rec.Schema().Field(0).Name, rec.NumCols())
	}
	got := map[int32]string{}
	for i := range int(rec.NumRows()) {
		email := rec.Column(3).(*array.String).Value(i)
		v, _, _ := strings.Cut(email, "@")
		_, v, _ = strings.Cut(v, "+")
		got[rec.Column(0).(*array.Int32).Value(i)] = v
	}
	// Variants in base 36, as the email holds them: 11 → b, 32 → w, 52 → 1g;
	// the load rows' emails have none.
	want := map[int32]string{1: "b", 3: "w", 5: "1g", 6: ""}
	if !maps.Equal(got, want) {
		t.Errorf("table after the merge: key → winning change %v, want %v", got, want)
	}
	var rep duckdbReport
	raw, err := os.ReadFile(filepath.Join(dir, "merge.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.RowsWritten != int64(len(want)) || rep.Files != 2 || rep.Version == "" {
		t.Errorf("report: %d rows written, %d files, version %q; want %d, 2, a version", rep.RowsWritten, rep.Files, rep.Version, len(want))
	}

	if err := duckdbMain(ctx, []string{"-mode", "merge", "-table", table, "-out", out, b, a}); err == nil || !strings.Contains(err.Error(), "name order") {
		t.Errorf("files out of name order: %v, want refused", err)
	}
}
