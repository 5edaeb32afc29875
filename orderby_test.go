package icemerge

import (
	"fmt"
	"testing"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// DMS's TimestampColumnName column (a string "yyyy-MM-dd HH:mm:ss.SSSSSS")
// and a column holding $AR_H_CHANGE_SEQ (a 35-digit string, added by a
// transformation rule under a name the user picks) order the changes of a
// key: within a batch, against the table's rows, and where they disagree
// with the file order.
func TestStringOrderColumns(t *testing.T) {
	seq := func(n int) string { return fmt.Sprintf("20240814002642%021d", n) }
	cases := []struct {
		column string
		at     func(n int) string // the n-th change's order value; larger n is later
	}{
		{"dms_timestamp", func(n int) string { return fmt.Sprintf("2024-08-14 00:26:42.%06d", n) }},
		{"ar_h_change_seq", seq},
	}
	for _, c := range cases {
		t.Run(c.column, func(t *testing.T) {
			e := newEnv(t, "local")
			e.opts.OrderBy = []string{c.column}
			cols := []dmstest.Column{{Name: "id", Type: dmstest.Int32, Required: true}, {Name: "v", Type: dmstest.String}, {Name: c.column, Type: dmstest.String}}
			e.opts.Keys = []string{"id"}
			put := func(key string, ops []string, rows ...dmstest.Row) {
				e.putDMS(key, cols, ops, rows, dmstest.Options{Op: true})
			}
			// Full load: the column is the transfer time, or null for the
			// sequence; either sorts before every CDC value.
			var loadOrder any
			if c.column == "dms_timestamp" {
				loadOrder = c.at(0)
			}
			put("LOAD00000001.parquet", []string{"I", "I", "I"}, dmstest.Row{int32(1), "load", loadOrder}, dmstest.Row{int32(2), "load", loadOrder}, dmstest.Row{int32(3), "load", loadOrder})
			e.run()

			// In one batch, same second: the later file carries the older
			// change of key 1, so key 1 keeps the first file's value; key 2
			// resolves in file order; key 3's delete is older than its
			// update and loses.
			put("20240814-002642000.parquet", []string{"U", "U", "U"},
				dmstest.Row{int32(1), "newest", c.at(20)}, dmstest.Row{int32(2), "first", c.at(5)}, dmstest.Row{int32(3), "updated", c.at(30)})
			put("20240814-002643000.parquet", []string{"U", "U", "D"},
				dmstest.Row{int32(1), "older", c.at(10)}, dmstest.Row{int32(2), "second", c.at(6)}, dmstest.Row{int32(3), "updated", c.at(29)})
			e.run()
			rows := byKey(e.table().Rows, "id")
			for k, want := range map[string]string{"1": "newest", "2": "second", "3": "updated"} {
				if rows[k] == nil || rows[k]["v"] != want {
					t.Errorf("key %s: %v, want v=%s", k, rows[k], want)
				}
			}

			// A later run with a change older than the table's row (a
			// replay): skipped as stale.
			put("20240814-002700000.parquet", []string{"U", "U"}, dmstest.Row{int32(1), "replayed", c.at(19)}, dmstest.Row{int32(2), "later", c.at(7)})
			if res := e.run(); res.Plan.Stale != 1 {
				t.Errorf("stale changes %d, want 1", res.Plan.Stale)
			}
			rows = byKey(e.table().Rows, "id")
			if rows["1"]["v"] != "newest" || rows["2"]["v"] != "later" {
				t.Errorf("after the replay: key 1 %v (want newest), key 2 %v (want later)", rows["1"]["v"], rows["2"]["v"])
			}
		})
	}
}
