package icemerge

import (
	"bytes"
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

// dbRun runs the whole schema folder of e, with the config file, and
// returns the error's class and the report.
func dbRun(t *testing.T, e *env, config string) (Class, Report) {
	t.Helper()
	o := DatabaseOptions{RunOptions: e.opts, Config: config}
	o.Table, o.Keys = "", nil
	o.Source = strings.TrimSuffix(e.opts.Source, "/users")
	o.Namespace = strings.Split(e.opts.Table, ".")[0]
	runs, err := RunDatabase(e.ctx, o, e.op)
	rep := Report{OK: err == nil}
	for _, r := range runs {
		rep.Tables = append(rep.Tables, TableReportOf(r.Table, r.Result, r.Err))
	}
	t.Logf("database run: %v", err)
	return Classify(e.ctx, err), rep
}

// A schema folder of three tables (and one excluded) runs in one command:
// each table is created with its settings from --config, the report has
// one entry per table, and a table failing does not stop the others.
func TestWholeDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		fixture := func(name string) []byte {
			b, err := os.ReadFile(filepath.Join("testdata", "users", name))
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

		class, rep := dbRun(t, e, cfg)
		if class != OK || !rep.OK {
			t.Fatalf("error class %d, report %+v", class, rep)
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
		class, rep = dbRun(t, e, cfg)
		if class != Failed || rep.OK {
			t.Errorf("with a bad orders file: error class %d, ok %v; want Failed (exit 1), not ok", class, rep.OK)
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
