package icemerge

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/capture"
	"github.com/icemerge/icemerge/internal/testkit/pgcapture"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
	"github.com/icemerge/icemerge/internal/testkit/workload"
)

// The end-to-end tests from a real database: SQL against a database of the
// test's own (MariaDB with the binlog on; PostgreSQL with wal_level=logical),
// a capture harness writing exactly what DMS writes for that engine (full
// load from one consistent snapshot, CDC files in commit order, a key
// change as one U with BI_ key columns, PostgreSQL's key-only deletes, a
// TRUNCATE as the deletion of the table's objects, a reload as a new full
// load), icemerge runs, and after every round every table read back by two
// readers equals SELECT * value for value.

// e2eHarness is one engine's database and capture.
type e2eHarness struct {
	w      *workload.Workload
	out    string
	run    func(ctx context.Context) error
	reload func(ctx context.Context, table string) error
}

func newE2EHarness(t *testing.T, ctx context.Context, e workload.Engine, seed uint64) *e2eHarness {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := &e2eHarness{out: t.TempDir()}
	var err error
	switch e {
	case workload.MariaDB:
		srv := testservers.MariaDB(t)
		db := srv.NewDatabase(t)
		if h.w, err = workload.New(ctx, e, srv.DSN+db, db, seed); err != nil {
			t.Fatal(err)
		}
		o := capture.Options{DSN: srv.DSN, BinlogIndex: srv.BinlogIndex, Output: h.out, MaxFileSize: 64 << 10,
			Tables: h.w.CaptureTables(), BeforeImage: h.w.BeforeImage(), HandleSourceTableTruncated: true}
		h.run = func(ctx context.Context) error { _, err := capture.Run(ctx, o, log); return err }
		h.reload = func(ctx context.Context, tb string) error { _, err := capture.Reload(ctx, o, log, tb); return err }
	case workload.Postgres:
		srv := testservers.PostgresOwn(t)
		if h.w, err = workload.New(ctx, e, srv.URL, "public", seed); err != nil {
			t.Fatal(err)
		}
		o := pgcapture.Options{ConnString: srv.URL, Output: h.out, MaxFileSize: 64 << 10,
			Tables: h.w.CaptureTables(), BeforeImage: h.w.BeforeImage(), HandleSourceTableTruncated: true}
		h.run = func(ctx context.Context) error { _, err := pgcapture.Run(ctx, o, log); return err }
		h.reload = func(ctx context.Context, tb string) error { _, err := pgcapture.Reload(ctx, o, log, tb); return err }
	}
	t.Cleanup(func() { h.w.Close() })
	return h
}

func TestMariaDBEndToEnd(t *testing.T) { testEndToEnd(t, workload.MariaDB) }

func TestPostgresEndToEnd(t *testing.T) { testEndToEnd(t, workload.Postgres) }

func testEndToEnd(t *testing.T, engine workload.Engine) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	const seed = 20240814
	h := newE2EHarness(t, ctx, engine, seed)
	w := h.w
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Create(ctx))
	envs := map[string]*env{}
	ns := strings.ToLower("e2e_" + engine.String())
	for _, tb := range w.Tables {
		e := newEnv(t, "local")
		e.opts.Source = filepath.Join(h.out, w.Schema, tb.Name)
		e.opts.Table = ns + "." + tb.Name
		e.opts.Keys, e.opts.OrderBy = tb.Keys, tb.OrderBy
		e.opts.OnTruncate = OnTruncateEmpty
		e.reopen()
		envs[tb.Name] = e
	}
	files := map[string]int{}
	round := func(name string) {
		t.Helper()
		for _, tb := range w.Tables {
			e := envs[tb.Name]
			res := e.run()
			files[tb.Name] += res.Files
			names, want, err := w.Rows(ctx, tb.Name)
			must(err)
			compareWorkloadTable(t, e, tb, names, want, name)
		}
		if t.Failed() {
			t.Fatalf("%s: the tables differ from the source", name)
		}
	}

	// The initial rows, there before capture starts: the full load.
	must(w.Seed(ctx, 40))
	must(h.run(ctx))
	round("full load")
	for r := 1; r <= 6; r++ {
		must(w.Steps(ctx, 120))
		switch r {
		case 2:
			// A column added mid-stream, between a round's changes.
			must(w.AddColumn(ctx, "customers"))
			must(w.Steps(ctx, 60))
		case 3:
			// TRUNCATE with HandleSourceTableTruncated: DMS deletes the
			// table's objects; the table is emptied (--on-truncate empty).
			must(w.Truncate(ctx, "events"))
			must(w.Steps(ctx, 60))
		}
		must(h.run(ctx))
		if r == 5 {
			// A reload of one table: a new full load under the same names,
			// then CDC goes on; the run replaces the table's rows.
			must(h.reload(ctx, w.Schema+".order_lines"))
			must(w.Steps(ctx, 40))
			must(h.run(ctx))
		}
		round(fmt.Sprintf("round %d", r))
		t.Logf("round %d: every table equals SELECT *", r)
	}
	live := 0
	for _, tb := range w.Tables {
		live += w.LiveRows(tb.Name)
	}
	t.Logf("%s workload (seed %d): %d statements, %d rows changed, %d transactions (%d rolled back), a full load and 6 rounds "+
		"(an ADD COLUMN, a TRUNCATE, a reload), %d DMS files applied (%v), %d rows at the end; every round equal; %.1fs",
		engine, seed, w.Statements, w.RowsChanged, w.Transactions, w.RolledBack, sum(files), files, live, time.Since(start).Seconds())
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// compareWorkloadTable compares e's table, read by icecheck and by
// iceberg-go's scan, with the source's rows.
func compareWorkloadTable(t *testing.T, e *env, tb *workload.Table, names []string, want map[string]map[string]any, when string) {
	t.Helper()
	tbl := e.table()
	if tbl == nil {
		t.Fatalf("%s: %s: no table", when, tb.Name)
	}
	var cols []string
	for _, c := range tbl.Columns {
		cols = append(cols, c.Name)
		if sc := tb.Column(c.Name); sc != nil && normType(c.Type) != normType(sc.Ice) {
			t.Errorf("%s: %s column %s: Iceberg type %s, want %s", when, tb.Name, c.Name, c.Type, sc.Ice)
		}
	}
	// An added column goes last in the table, where the source may have it
	// elsewhere; no BI_ column is a table column.
	if !slices.Equal(sortedNames(cols), sortedNames(names)) {
		t.Errorf("%s: %s: table columns %v, source %v", when, tb.Name, cols, names)
	}
	compareWorkloadRows(t, tb, names, want, tbl.Rows, when+", icecheck")
	compareWorkloadRows(t, tb, names, want, scanRows(t, e), when+", iceberg-go scan")
}

func sortedNames(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func compareWorkloadRows(t *testing.T, tb *workload.Table, names []string, want map[string]map[string]any, rows []map[string]any, when string) {
	t.Helper()
	got := map[string]map[string]any{}
	for _, r := range rows {
		got[workload.RowKey(tb.Keys, r)] = r
	}
	if len(got) != len(rows) {
		t.Errorf("%s: %s: %d rows, %d distinct keys", when, tb.Name, len(rows), len(got))
	}
	if len(got) != len(want) {
		t.Errorf("%s: %s: table has %d rows, source %d", when, tb.Name, len(got), len(want))
	}
	bad := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		w := want[k]
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: %s: key %q missing", when, tb.Name, k)
			bad++
			continue
		}
		for _, name := range names {
			if !sameValue(g[name], w[name]) {
				t.Errorf("%s: %s key %q column %s: table %s, source %s", when, tb.Name, k, name, show(g[name]), show(w[name]))
				bad++
			}
		}
		if bad > 20 {
			t.Fatalf("%s: too many differences", when)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s: key %q in the table, not in the source", when, tb.Name, k)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
