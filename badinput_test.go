package icemerge

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

var (
	badTS   = time.Date(2024, 8, 14, 0, 26, 42, 123456000, time.UTC)
	badCols = []dmstest.Column{
		{Name: "user_id", Type: dmstest.Int32, Required: true},
		{Name: "name", Type: dmstest.String},
		{Name: "updated_at", Type: dmstest.Timestamp},
	}
)

// dmsFile encodes rows of badCols (or cols) as one DMS file.
func dmsFile(t *testing.T, cols []dmstest.Column, ops []string, rows ...dmstest.Row) []byte {
	t.Helper()
	if cols == nil {
		cols = badCols
	}
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, ops, rows, dmstest.Options{Op: ops != nil}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// badInput is one kind of bad object and what the error must say.
type badInput struct {
	name   string
	object func(t *testing.T) []byte
	is     error
	// the error names these besides the object key: row and column where
	// there is one.
	mentions []string
}

func badInputs() []badInput {
	good := func(t *testing.T) []byte {
		rows := make([]dmstest.Row, 200)
		ops := make([]string, len(rows))
		for i := range rows {
			rows[i] = dmstest.Row{int32(i + 10), fmt.Sprintf("user %d with some text to fill pages", i), badTS}
			ops[i] = "U"
		}
		return dmsFile(t, nil, ops, rows...)
	}
	nullableKey := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32}, badCols[1], badCols[2]}
	return []badInput{
		{name: "truncated file", is: merge.ErrCorruptFile, object: func(t *testing.T) []byte {
			b := good(t)
			return b[:len(b)/2]
		}},
		{name: "corrupted footer", is: merge.ErrCorruptFile, object: func(t *testing.T) []byte {
			b := good(t)
			// The footer's Thrift metadata sits before its 4-byte length
			// and the closing PAR1.
			for i := len(b) - 40; i < len(b)-8; i++ {
				b[i] = 0xff
			}
			return b
		}},
		{name: "garbage page", is: merge.ErrCorruptFile, object: func(t *testing.T) []byte {
			b := good(t)
			// The first column chunk's page starts right after the leading
			// PAR1: overwrite its header and compressed data.
			for i := 4; i < 4+64 && i < len(b)/2; i++ {
				b[i] = byte(i*7 + 3)
			}
			return b
		}},
		{name: "zero-byte object", is: merge.ErrCorruptFile, object: func(*testing.T) []byte { return nil }},
		{name: "not parquet", is: merge.ErrCorruptFile, object: func(*testing.T) []byte {
			return []byte("Op,user_id,name\nU,1,csv by mistake\n")
		}},
		{name: "unknown op", is: merge.ErrUnknownOp, mentions: []string{"row 2", `"Op"`, `"X"`}, object: func(t *testing.T) []byte {
			return dmsFile(t, nil, []string{"U", "X"}, dmstest.Row{int32(1), "a", badTS}, dmstest.Row{int32(2), "b", badTS})
		}},
		{name: "null key", is: merge.ErrNullKey, mentions: []string{"row 2", `"user_id"`}, object: func(t *testing.T) []byte {
			return dmsFile(t, nullableKey, []string{"U", "U"}, dmstest.Row{int32(1), "a", badTS}, dmstest.Row{nil, "b", badTS})
		}},
		{name: "missing key column", is: merge.ErrMissingColumn, mentions: []string{`"user_id"`}, object: func(t *testing.T) []byte {
			return dmsFile(t, badCols[1:], []string{"U"}, dmstest.Row{"a", badTS})
		}},
		{name: "invalid utf-8", is: merge.ErrInvalidUTF8, mentions: []string{"row 3", `"name"`}, object: func(t *testing.T) []byte {
			return dmsFile(t, nil, []string{"U", "U", "U"},
				dmstest.Row{int32(1), "ok 𠮷", badTS}, dmstest.Row{int32(2), "", badTS}, dmstest.Row{int32(3), "caf\xe9", badTS})
		}},
		{name: "clashing type", is: merge.ErrSchemaClash, mentions: []string{`"email"`, "string", "long"}, object: func(t *testing.T) []byte {
			cols := []dmstest.Column{badCols[0], {Name: "email", Type: dmstest.Int64}, badCols[2]}
			return dmsFile(t, cols, []string{"U"}, dmstest.Row{int32(1), int64(5), badTS})
		}},
	}
}

// Every kind of bad input fails the run with an error naming the object
// (and row and column where there is one), commits nothing and leaves the
// bookmark as it was; once the object is gone the run goes on. So too
// without a source cache, where the first read decodes only the key and
// order columns and the second read, when the winners are written, checks
// the others.
func TestBadInputSuite(t *testing.T) {
	for _, cache := range []string{"cache", "no-cache"} {
		t.Run(cache, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, e *env) {
				if cache == "no-cache" {
					e.opts.SourceCache = 0
				}
				testBadInput(t, e)
			})
		})
	}
}

func testBadInput(t *testing.T, e *env) {
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	before, bm := e.table(), e.bookmark()
	for i, c := range badInputs() {
		key := fmt.Sprintf("20240814-0027%02d000.parquet", i)
		e.put(key, c.object(t))
		_, err := e.merge(e.deps(nil))
		t.Logf("%s: %v", c.name, err)
		switch {
		case err == nil:
			t.Errorf("%s: the run succeeded", c.name)
		case !errors.Is(err, c.is):
			t.Errorf("%s: err = %v, want %v", c.name, err, c.is)
		case !strings.Contains(err.Error(), key):
			t.Errorf("%s: the error does not name the object %s: %v", c.name, key, err)
		}
		for _, m := range c.mentions {
			if err != nil && !strings.Contains(err.Error(), m) {
				t.Errorf("%s: the error does not say %s: %v", c.name, m, err)
			}
		}
		if after := e.table(); after.SnapshotID != before.SnapshotID || !reflect.DeepEqual(after.Columns, before.Columns) {
			t.Errorf("%s: the table changed (snapshot %d → %d)", c.name, before.SnapshotID, after.SnapshotID)
		}
		if after := e.bookmark(); !reflect.DeepEqual(after, bm) {
			t.Errorf("%s: the bookmark moved", c.name)
		}
		e.remove(key)
	}
	e.copyFixture("20240814-002642123.parquet", "20240814-002800000.parquet")
	if res := e.run(); res.Files != 1 || res.Plan.WriteRows == 0 {
		t.Errorf("after the bad objects are gone: %d files, %d rows written; want the good file applied", res.Files, res.Plan.WriteRows)
	}
}

// --on-bad-file quarantine: every bad object is skipped, reported and
// recorded in the bookmark, the good ones are applied, no later run reads the
// bad ones again, and a bad object replaced by a good one is applied and
// leaves the list.
func TestQuarantine(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.opts.OnBadFile = OnBadFileQuarantine
		e.opts.SourceCache = 0 // no file kept whole: each is still checked whole before planning
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		var bad []string
		for i, c := range badInputs() {
			key := fmt.Sprintf("20240814-0027%02d000.parquet", i)
			e.put(key, c.object(t))
			bad = append(bad, key)
		}
		// A good file between them, and one after: a change to user 2 and
		// a new user 7.
		e.put("20240814-002705500.parquet", dmsFile(t, nil, []string{"U"}, dmstest.Row{int32(2), "two b", badTS}))
		e.put("20240814-002900000.parquet", dmsFile(t, nil, []string{"I"}, dmstest.Row{int32(7), "seven", badTS}))
		e.out.Reset()
		res := e.run()

		if got := slices.Sorted(maps.Keys(res.Quarantined)); !slices.Equal(got, bad) {
			t.Errorf("quarantined %v\nwant        %v", got, bad)
		}
		if res.Plan == nil || len(res.Plan.Files) != 2 {
			t.Fatalf("plan %+v: want the 2 good files applied", res.Plan)
		}
		rows := byKey(e.table().Rows, "user_id")
		if rows["2"]["name"] != "two b" || rows["7"]["name"] != "seven" {
			t.Errorf("good changes not applied: user 2 %v, user 7 %v", rows["2"], rows["7"])
		}
		for _, k := range bad {
			if !strings.Contains(e.out.String(), "QUARANTINED "+k) {
				t.Errorf("the run's output does not report %s:\n%s", k, e.out.String())
			}
		}
		st := e.bookmark()
		for _, k := range bad {
			q, ok := st.Quarantined[k]
			if !ok || q.Reason == "" || q.Reason != res.Quarantined[k] {
				t.Errorf("bookmark: %s quarantined %v (%+v)", k, ok, q)
			}
		}
		if res := e.run(); res.Files != 0 {
			t.Errorf("the next run read %d files again, want 0", res.Files)
		}

		// The person fixes one object: the new version is applied and the
		// record goes.
		fixed := bad[0]
		e.put(fixed, dmsFile(t, nil, []string{"U", "U"}, dmstest.Row{int32(3), "three b", badTS}, dmstest.Row{int32(5), "five b", badTS}))
		if res := e.run(); res.Files != 1 || len(res.Quarantined) != 0 {
			t.Errorf("after fixing %s: %d files, quarantined %v; want 1 file applied", fixed, res.Files, res.Quarantined)
		}
		st = e.bookmark()
		if _, ok := st.Quarantined[fixed]; ok || len(st.Quarantined) != len(bad)-1 {
			t.Errorf("after fixing %s the bookmark lists %d quarantined files (fixed one still there: %v)", fixed, len(st.Quarantined), ok)
		}
		if got := byKey(e.table().Rows, "user_id")["3"]["name"]; got != "three b" {
			t.Errorf("user 3 name %v, want the fixed file's", got)
		}
	})
}

// A new table whose every file is bad: nothing is created, the files are
// recorded.
func TestQuarantineEveryFileOfANewTable(t *testing.T) {
	e := newEnv(t, "local")
	e.opts.OnBadFile = OnBadFileQuarantine
	e.put("LOAD00000001.parquet", []byte("not parquet"))
	res := e.run()
	if len(res.Quarantined) != 1 || res.Created || e.table() != nil {
		t.Fatalf("quarantined %v, created %v, table %v: want the file recorded and no table", res.Quarantined, res.Created, e.table())
	}
	if _, ok := e.bookmark().Quarantined["LOAD00000001.parquet"]; !ok {
		t.Errorf("the bookmark does not record the file")
	}
}

// Without a source cache a file's first read decodes only its key and
// order columns; its other columns are checked when it is read again,
// before any commit, also where none of its rows is written: a bad value
// in a change that loses to a later one, in a run whose plan changes no
// row (a delete of a key the table does not hold), and in a dry run.
func TestUncheckedColumnsAreCheckedBeforeAnyCommit(t *testing.T) {
	e := newEnv(t, "local")
	e.opts.SourceCache = 0
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	before, bm := e.table(), e.bookmark()
	for _, c := range []struct {
		name   string
		dryRun bool
		ops    []string
		rows   []dmstest.Row
	}{
		{name: "a losing change", ops: []string{"U", "U"},
			rows: []dmstest.Row{{int32(2), "caf\xe9", badTS}, {int32(2), "two b", badTS.Add(time.Second)}}},
		{name: "a plan that changes nothing", ops: []string{"D"},
			rows: []dmstest.Row{{int32(999), "caf\xe9", badTS}}},
		{name: "a dry run", dryRun: true, ops: []string{"U"},
			rows: []dmstest.Row{{int32(2), "caf\xe9", badTS}}},
	} {
		key := "20240814-002700000.parquet"
		e.put(key, dmsFile(t, nil, c.ops, c.rows...))
		e.opts.DryRun = c.dryRun
		_, err := e.merge(e.deps(nil))
		if !errors.Is(err, merge.ErrInvalidUTF8) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "row 1") ||
			!strings.Contains(err.Error(), `"name"`) {
			t.Errorf("%s: err = %v, want invalid UTF-8 in %s, row 1, column \"name\"", c.name, err, key)
		}
		if after := e.table(); after.SnapshotID != before.SnapshotID {
			t.Errorf("%s: the table changed (snapshot %d → %d)", c.name, before.SnapshotID, after.SnapshotID)
		}
		if after := e.bookmark(); !reflect.DeepEqual(after, bm) {
			t.Errorf("%s: the bookmark moved", c.name)
		}
		e.remove(key)
	}
}
