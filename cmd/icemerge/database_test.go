package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

const dbPrefix = "raw_input/test_db"

// putDB writes an object under the schema folder of env e.
func putDB(e *env, key string, b []byte) {
	e.t.Helper()
	if e.s3 != nil {
		if _, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(dbPrefix + "/" + key), Body: bytes.NewReader(b)}); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	p := filepath.Join(e.dir, dbPrefix, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func putDBDMS(e *env, key string, cols []dmstest.Column, ops []string, rows []dmstest.Row) {
	e.t.Helper()
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, ops, rows, dmstest.Options{Op: true}); err != nil {
		e.t.Fatal(err)
	}
	putDB(e, key, buf.Bytes())
}

// dbRun runs `icemerge run` on the whole schema folder of e, with the
// extra flags, and returns the exit code and the report.
func dbRun(t *testing.T, e *env, extra ...string) (int, Report, string) {
	t.Helper()
	src := strings.TrimSuffix(e.opts.Source, "/users")
	ns := strings.Split(e.opts.Table, ".")[0]
	args := append([]string{"run", "--source", src, "--namespace", ns, "--catalog", e.opts.Catalog, "--catalog-uri", e.opts.CatalogURI,
		"--warehouse", e.opts.Warehouse, "--bookmark", e.opts.Bookmark, "--report", "-", "--log-level", "warn"}, extra...)
	var out, errOut bytes.Buffer
	code := cli(context.Background(), args, func(string) (string, bool) { return "", false }, &out, &errOut)
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d: the report is not JSON: %v\nstdout %s\nstderr %s", code, err, out.String(), errOut.String())
	}
	return code, rep, errOut.String()
}

// A schema folder of three tables (and one excluded) runs in one command:
// each table is created with its settings from --config, the report has
// one entry per table, and a table failing does not stop the others.
func TestWholeDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		fixture := func(name string) []byte {
			b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "users", name))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		// users: the worked example. orders: a composite key. events: no
		// updated_at, ordered by source order, renamed by the config.
		putDB(e, "users/LOAD00000001.parquet", fixture("LOAD00000001.parquet"))
		putDB(e, "users/20240814-002642123.parquet", fixture("20240814-002642123.parquet"))
		orderCols := []dmstest.Column{{Name: "order_id", Type: dmstest.Int32}, {Name: "line", Type: dmstest.Int32},
			{Name: "qty", Type: dmstest.Int32}, {Name: "updated_at", Type: dmstest.Timestamp}}
		t0 := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
		putDBDMS(e, "orders/20240814-000100000.parquet", orderCols, []string{"I", "I", "I", "U", "U"}, []dmstest.Row{
			{int32(1), int32(1), int32(5), t0}, {int32(1), int32(2), int32(1), t0}, {int32(2), int32(1), int32(7), t0},
			{int32(1), int32(2), int32(3), t0.Add(time.Second)}, {int32(1), int32(2), int32(4), t0.Add(time.Second)}, // a same-second tie: the later wins
		})
		eventCols := []dmstest.Column{{Name: "event_id", Type: dmstest.Int64}, {Name: "kind", Type: dmstest.String}}
		putDBDMS(e, "events/20240814-000200000.parquet", eventCols, []string{"I", "U", "I", "D"}, []dmstest.Row{
			{int64(10), "signup"}, {int64(10), "login"}, {int64(11), "signup"}, {int64(11), "signup"},
		})
		putDBDMS(e, "tmp_scratch/20240814-000300000.parquet", eventCols, []string{"I"}, []dmstest.Row{{int64(1), "x"}})

		cfg := filepath.Join(t.TempDir(), "icemerge.yaml")
		os.WriteFile(cfg, []byte(`# the test database
exclude: [tmp_*]
parallel: 2
defaults:
  order_by: [updated_at]
tables:
  users:
    key: user_id
  orders:
    key: [order_id, line]
    partition: ["bucket(4, order_id)"]
  events:
    key: event_id
    order_by: [source]
    target: app_events
`), 0o644)

		code, rep, stderr := dbRun(t, e, "--config", cfg)
		if code != exitOK || !rep.OK {
			t.Fatalf("exit %d, report %+v\n%s", code, rep, stderr)
		}
		ns := strings.Split(e.opts.Table, ".")[0]
		byTable := map[string]TableReport{}
		var names []string
		for _, r := range rep.Tables {
			byTable[r.Table] = r
			names = append(names, r.Table)
		}
		sort.Strings(names)
		if want := []string{ns + ".app_events", ns + ".orders", ns + ".users"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("tables in the report %v, want %v (tmp_scratch excluded)", names, want)
		}
		for name, want := range map[string]TableReport{
			ns + ".users":      {Outcome: "committed", Files: 2, RowsRead: 8, Keys: 6, Duplicates: 2, RowsInserted: 5},
			ns + ".orders":     {Outcome: "committed", Files: 1, RowsRead: 5, Keys: 3, Duplicates: 2, RowsInserted: 3},
			ns + ".app_events": {Outcome: "committed", Files: 1, RowsRead: 4, Keys: 2, Duplicates: 2, RowsInserted: 1},
		} {
			r := byTable[name]
			got := TableReport{Outcome: r.Outcome, Files: r.Files, RowsRead: r.RowsRead, Keys: r.Keys, Duplicates: r.Duplicates, RowsInserted: r.RowsInserted}
			if !reflect.DeepEqual(got, want) || r.SnapshotID == 0 {
				t.Errorf("%s: report %+v, want %+v and a snapshot", name, got, want)
			}
		}
		rowsOf := func(table string) map[string]map[string]any {
			e.opts.Table = table
			tbl := e.table()
			if tbl == nil {
				t.Fatalf("table %s does not exist", table)
			}
			out := map[string]map[string]any{}
			for _, r := range tbl.Rows {
				k := fmt.Sprint(r["user_id"], r["order_id"], r["line"], r["event_id"])
				out[k] = r
			}
			return out
		}
		users := rowsOf(ns + ".users")
		if len(users) != 5 {
			t.Errorf("users: %d rows, want 5", len(users))
		}
		// orders is created partitioned, as the config says; the others not.
		e.opts.Table = ns + ".orders"
		ot := e.table()
		var transforms []string
		for _, ps := range ot.PartitionSpecs {
			if ps.SpecID == ot.DefaultSpecID {
				for _, f := range ps.Fields {
					transforms = append(transforms, f.Name+" "+f.Transform)
				}
			}
		}
		if want := []string{"order_id_bucket bucket[4]"}; !reflect.DeepEqual(transforms, want) {
			t.Errorf("orders partitioned by %v, want %v", transforms, want)
		}
		orders := rowsOf(ns + ".orders")
		if len(orders) != 3 || fmt.Sprint(orders["<nil> 1 2 <nil>"]["qty"]) != "4" {
			t.Errorf("orders %v: want 3 rows, order 1 line 2 with qty 4 (the later of two same-second updates)", orders)
		}
		events := rowsOf(ns + ".app_events")
		if len(events) != 1 || events["<nil> <nil> <nil> 10"]["kind"] != "login" {
			t.Errorf("app_events %v: want event 10 (login) alone", events)
		}

		// One table's bad file fails that table; the others still apply
		// their new files, and the exit code says a table failed.
		putDB(e, "orders/20240814-000400000.parquet", []byte("not parquet"))
		putDBDMS(e, "events/20240814-000500000.parquet", eventCols, []string{"I"}, []dmstest.Row{{int64(12), "signup"}})
		code, rep, _ = dbRun(t, e, "--config", cfg)
		if code != exitFailed || rep.OK {
			t.Errorf("with a bad orders file: exit %d, ok %v; want exit 1, not ok", code, rep.OK)
		}
		outcomes := map[string]string{}
		for _, r := range rep.Tables {
			outcomes[r.Table] = r.Outcome
			if r.Outcome == "failed" && !strings.Contains(r.Error, "20240814-000400000.parquet") {
				t.Errorf("%s: error %q does not name the bad file", r.Table, r.Error)
			}
		}
		if want := map[string]string{ns + ".users": "nothing new", ns + ".orders": "failed", ns + ".app_events": "committed"}; !reflect.DeepEqual(outcomes, want) {
			t.Errorf("outcomes %v, want %v", outcomes, want)
		}
		if events := rowsOf(ns + ".app_events"); len(events) != 2 {
			t.Errorf("app_events: %d rows after the second run, want 2", len(events))
		}
	})
}

// The config is checked before anything runs: unknown settings, bad
// patterns and two folders mapped to one table are usage errors.
func TestDatabaseConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(dir, "src", f), 0o755)
	}
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown field", "tables:\n  a:\n    keys: [id]\n", "keys"},
		{"bad pattern", "include: ['[']\n", "pattern"},
		{"same target", "tables:\n  a:\n    target: t\n  b:\n    target: t\n", "both map to table"},
		{"upper-case target", "tables:\n  a:\n    target: T\n", "lower-case"},
		{"source and a column", "defaults:\n  order_by: [source, updated_at]\n", "stands alone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c.yaml")
			os.WriteFile(cfg, []byte(c.yaml), 0o644)
			var out, errOut bytes.Buffer
			code := cli(context.Background(), []string{"run", "--source", filepath.Join(dir, "src"), "--config", cfg,
				"--warehouse", "file://" + filepath.Join(dir, "wh"), "--catalog-uri", filepath.Join(dir, "c.db")},
				func(string) (string, bool) { return "", false }, &out, &errOut)
			if code != exitUsage || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, errOut.String(), c.want)
			}
		})
	}
	// A partition spec naming no column fails its table before anything is
	// written, with the column named.
	load, err := os.ReadFile(filepath.Join("..", "..", "testdata", "users", "LOAD00000001.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "db2", "users"), 0o755)
	os.WriteFile(filepath.Join(dir, "db2", "users", "LOAD00000001.parquet"), load, 0o644)
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("tables:\n  users:\n    key: user_id\n    partition: [\"bucket(4, nope)\"]\n"), 0o644)
	{
		var out, errOut bytes.Buffer
		code := cli(context.Background(), []string{"run", "--source", filepath.Join(dir, "db2"), "--config", cfg,
			"--warehouse", "file://" + filepath.Join(dir, "wh2"), "--catalog-uri", filepath.Join(dir, "c2.db")},
			func(string) (string, bool) { return "", false }, &out, &errOut)
		if code != exitFailed || !strings.Contains(out.String()+errOut.String(), "nope") {
			t.Errorf("bad partition spec: exit %d, stdout %q, stderr %q; want exit 1 naming the column", code, out.String(), errOut.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "wh2", "db2.db", "users")); err == nil {
			t.Error("the table was created despite its bad partition spec")
		}
	}
	// The database flags with --table: a usage error, not silently ignored.
	var out, errOut bytes.Buffer
	code := cli(context.Background(), []string{"run", "--source", dir, "--table", "a.b", "--parallel", "3"},
		func(string) (string, bool) { return "", false }, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "whole-database") {
		t.Errorf("--parallel with --table: exit %d, stderr %q", code, errOut.String())
	}
}
