package icemerge

import (
	"fmt"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// Finding the rows a batch replaces reads only the table's data files and
// row groups whose key bounds overlap the batch's keys, and the rows found
// there are the right ones: positions after skipped row groups still point
// at the replaced rows.
func TestLocateSkipsRowsOutsideTheKeyRange(t *testing.T) {
	e := newEnv(t, "local")
	ts := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	cols := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}, {Name: "name", Type: dmstest.String}, {Name: "updated_at", Type: dmstest.Timestamp}}
	// Written by two writers in runs of a row group (131,072 rows): one data
	// file holds keys 1–131,072 and 262,145–300,000 in two row groups, the
	// other 131,073–262,144.
	const n = 300_000
	rows := make([]dmstest.Row, n)
	for i := range rows {
		rows[i] = dmstest.Row{int32(i + 1), "v0", ts}
	}
	e.putDMS("LOAD00000001.parquet", cols, nil, rows, dmstest.Options{Compression: "snappy"})
	e.run()

	put := func(key string, ids ...int) {
		ops := make([]string, len(ids))
		rows := make([]dmstest.Row, len(ids))
		for i, id := range ids {
			ops[i], rows[i] = "U", dmstest.Row{int32(id), fmt.Sprintf("v-%s", key[9:15]), ts.Add(time.Minute)}
		}
		e.putDMS(key, cols, ops, rows, dmstest.Options{Op: true})
	}
	// Recent keys only: one file is skipped by its bounds, and in the other
	// the first row group by its statistics.
	put("20240814-000100000.parquet", 262_145, 299_500, 300_000)
	res := e.run()
	if res.Scan.RowGroups != 1 || res.Scan.RowGroupsPruned != 1 || res.Scan.FilesPruned != 1 {
		t.Errorf("recent keys: read %d row groups, pruned %d row groups and %d files; want 1, 1 and 1", res.Scan.RowGroups, res.Scan.RowGroupsPruned, res.Scan.FilesPruned)
	}
	if res.Plan.RowsUpdated != 3 || res.Plan.DeleteRows != 3 {
		t.Errorf("recent keys: %d rows updated, %d deleted; want 3 and 3", res.Plan.RowsUpdated, res.Plan.DeleteRows)
	}
	// An old key only: the data file the last run wrote (keys 262,145 to
	// 300,000) and the load's middle file are skipped whole, and so is the
	// row group of recent keys.
	put("20240814-000200000.parquet", 7)
	res = e.run()
	if res.Scan.FilesPruned != 2 || res.Scan.Files != 1 || res.Scan.RowGroups != 1 || res.Scan.RowGroupsPruned != 1 {
		t.Errorf("old key: read %d files (pruned %d), %d row groups (pruned %d); want 1 file read, 2 pruned, 1 row group read, 1 pruned",
			res.Scan.Files, res.Scan.FilesPruned, res.Scan.RowGroups, res.Scan.RowGroupsPruned)
	}

	tbl := e.table()
	if len(tbl.Rows) != n {
		t.Fatalf("%d rows, want %d", len(tbl.Rows), n)
	}
	byID := byKey(tbl.Rows, "user_id")
	for id, want := range map[int]string{1: "v0", 7: "v-000200", 131_072: "v0", 262_144: "v0", 262_145: "v-000100", 299_500: "v-000100", 299_501: "v0", 300_000: "v-000100"} {
		if got := byID[fmt.Sprint(id)]["name"]; got != want {
			t.Errorf("user %d name %v, want %s", id, got, want)
		}
	}
}
