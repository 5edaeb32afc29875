package icemerge

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// What real DMS writes lands right (the awkward parts of the producer, as
// its files hold them). The users table of the worked example.

// dmsUserCols are the users table's columns as DMS writes them.
var dmsUserCols = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32, Required: true},
	{Name: "email", Type: dmstest.String},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

// userIDs lists the table's keys, and each key's email.
func userIDs(t *testing.T, e *env) ([]string, map[string]any) {
	t.Helper()
	rows := byKey(e.table().Rows, "user_id")
	var ids []string
	emails := map[string]any{}
	for id, r := range rows {
		ids = append(ids, id)
		emails[id] = r["email"]
	}
	sort.Strings(ids)
	return ids, emails
}

// Key-only deletes, as DMS writes them for a PostgreSQL source with
// REPLICA IDENTITY DEFAULT: every column but the key null, updated_at too.
// Each file its own run: LOAD users 1–5; an update of 1; key-only D 1, D 2;
// an update then a key-only delete of 4 in one file; a key-only delete
// then a re-insert of 3 → the table holds 3 (re-inserted) and 5.
func TestKeyOnlyDeletes(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		t0 := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
		ts := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		put := func(key string, ops []string, rows ...dmstest.Row) {
			e.putDMS(key, dmsUserCols, ops, rows, dmstest.DMSOptions())
		}
		var load []dmstest.Row
		for id := 1; id <= 5; id++ {
			load = append(load, dmstest.Row{int32(id), fmt.Sprintf("user%d@example.com", id), t0})
		}
		put("LOAD00000001.parquet", []string{"I", "I", "I", "I", "I"}, load...)
		e.run()
		put("20240814-002600000.parquet", []string{"U"}, dmstest.Row{int32(1), "new1@example.com", ts(60)})
		e.run()
		put("20240814-002700000.parquet", []string{"D", "D"}, dmstest.Row{int32(1), nil, nil}, dmstest.Row{int32(2), nil, nil})
		e.run()
		put("20240814-002800000.parquet", []string{"U", "D"}, dmstest.Row{int32(4), "new4@example.com", ts(120)}, dmstest.Row{int32(4), nil, nil})
		e.run()
		put("20240814-002900000.parquet", []string{"D", "I"}, dmstest.Row{int32(3), nil, nil}, dmstest.Row{int32(3), "back3@example.com", ts(180)})
		e.run()
		ids, emails := userIDs(t, e)
		if !slices.Equal(ids, []string{"3", "5"}) || emails["3"] != "back3@example.com" {
			t.Errorf("users %v %v: want 3 (re-inserted) and 5", ids, emails)
		}
		// A late file of a later run, older than the key-only delete's
		// deleted row, does not revive its key (the tombstone keeps the
		// deleted row's order value).
		put("20240814-002950000.parquet", []string{"U"}, dmstest.Row{int32(1), "stale1@example.com", ts(30)})
		if res := e.run(); res.Plan.Stale != 1 {
			t.Errorf("the late older update: %d stale, want 1", res.Plan.Stale)
		}
		if ids, _ := userIDs(t, e); !slices.Equal(ids, []string{"3", "5"}) {
			t.Errorf("after a late older update of a deleted key: users %v, want 3 and 5", ids)
		}
	})
}

// Primary-key changes, as DMS writes them with the add-before-image-columns
// rule: one U with the after image and BI_user_id holding the old key. Key
// changes 1→10, 2→20 in one file and 3→30→31 across two runs → only the
// new keys remain, and no bi_user_id column exists.
func TestKeyChangesWithBeforeImages(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		t0 := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
		ts := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		cols := append(slices.Clone(dmsUserCols), dmstest.Column{Name: "BI_user_id", Type: dmstest.Int32})
		put := func(key string, ops []string, rows ...dmstest.Row) {
			e.putDMS(key, cols, ops, rows, dmstest.DMSOptions())
		}
		var load []dmstest.Row
		for id := 1; id <= 5; id++ {
			load = append(load, dmstest.Row{int32(id), fmt.Sprintf("user%d@example.com", id), t0, nil})
		}
		put("LOAD00000001.parquet", []string{"I", "I", "I", "I", "I"}, load...)
		e.run()
		put("20240814-002600000.parquet", []string{"U", "U", "U", "U"},
			dmstest.Row{int32(10), "user1@example.com", ts(60), int32(1)},
			dmstest.Row{int32(20), "user2@example.com", ts(60), int32(2)},
			dmstest.Row{int32(30), "user3@example.com", ts(61), int32(3)},
			dmstest.Row{int32(5), "new5@example.com", ts(61), int32(5)}) // an update that keeps its key
		e.run()
		put("20240814-002700000.parquet", []string{"U"}, dmstest.Row{int32(31), "user3@example.com", ts(62), int32(30)})
		e.run()
		ids, emails := userIDs(t, e)
		if want := []string{"10", "20", "31", "4", "5"}; !slices.Equal(ids, want) || emails["5"] != "new5@example.com" {
			t.Errorf("users %v %v: want %v", ids, emails, want)
		}
		for _, c := range e.table().Columns {
			if c.Name == "bi_user_id" || c.Name == "BI_user_id" {
				t.Errorf("the before-image column %s became a table column", c.Name)
			}
		}
	})
}

// Without the add-before-image-columns rule DMS names no old key: a key
// change 1→10 upserts 10 and leaves the row under 1 (the documented
// limitation, docs/semantics.md).
func TestKeyChangeWithoutBeforeImagesKeepsTheOldRow(t *testing.T) {
	e := newEnv(t, "local")
	t0 := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
	e.putDMS("LOAD00000001.parquet", dmsUserCols, []string{"I", "I"}, []dmstest.Row{{int32(1), "a@example.com", t0}, {int32(2), "b@example.com", t0}}, dmstest.DMSOptions())
	e.run()
	e.putDMS("20240814-002600000.parquet", dmsUserCols, []string{"U"}, []dmstest.Row{{int32(10), "a@example.com", t0.Add(time.Minute)}}, dmstest.DMSOptions())
	e.run()
	if ids, _ := userIDs(t, e); !slices.Equal(ids, []string{"1", "10", "2"}) {
		t.Errorf("users %v: want 1 (the old key stays), 10 and 2", ids)
	}
}
