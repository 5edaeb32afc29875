package workload_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/icemerge/icemerge/internal/testkit/capture"
	"github.com/icemerge/icemerge/internal/testkit/pgcapture"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
	"github.com/icemerge/icemerge/internal/testkit/workload"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// harness runs the capture of one engine.
type harness struct {
	run    func(ctx context.Context) error
	reload func(ctx context.Context, table string) error
	out    string
}

// The workload against each engine, captured as DMS writes it (full load,
// key updates, an ADD COLUMN, a TRUNCATE with HandleSourceTableTruncated,
// a reload), and the DMS files replayed in order into a model keyed by
// primary key (D deletes the key, U replaces the row and drops its BI_
// old key): after every round each table's model equals SELECT * read by
// Workload.Rows. This checks the workload's canonical reading and both
// capture harnesses against each other.
func TestWorkloadReplaysToSource(t *testing.T) {
	for _, e := range []workload.Engine{workload.MariaDB, workload.Postgres} {
		t.Run(e.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
			defer cancel()
			out := t.TempDir()
			var w *workload.Workload
			var h harness
			var err error
			switch e {
			case workload.MariaDB:
				srv := testservers.MariaDB(t)
				db := srv.NewDatabase(t)
				if w, err = workload.New(ctx, e, srv.DSN+db, db, 7); err != nil {
					t.Fatal(err)
				}
				o := capture.Options{DSN: srv.DSN, BinlogIndex: srv.BinlogIndex, Output: out, MaxFileSize: 32 << 10,
					Tables: w.CaptureTables(), BeforeImage: w.BeforeImage(), HandleSourceTableTruncated: true}
				h = harness{out: out,
					run:    func(ctx context.Context) error { _, err := capture.Run(ctx, o, nil); return err },
					reload: func(ctx context.Context, tb string) error { _, err := capture.Reload(ctx, o, nil, tb); return err }}
			case workload.Postgres:
				srv := testservers.PostgresOwn(t)
				if w, err = workload.New(ctx, e, srv.URL, "public", 7); err != nil {
					t.Fatal(err)
				}
				o := pgcapture.Options{ConnString: srv.URL, Output: out, MaxFileSize: 32 << 10,
					Tables: w.CaptureTables(), BeforeImage: w.BeforeImage(), HandleSourceTableTruncated: true}
				h = harness{out: out,
					run:    func(ctx context.Context) error { _, err := pgcapture.Run(ctx, o, nil); return err },
					reload: func(ctx context.Context, tb string) error { _, err := pgcapture.Reload(ctx, o, nil, tb); return err }}
			}
			defer w.Close()
			check := func(round string) {
				t.Helper()
				for _, tb := range w.Tables {
					_, want, err := w.Rows(ctx, tb.Name)
					if err != nil {
						t.Fatal(err)
					}
					if len(want) != w.LiveRows(tb.Name) {
						t.Errorf("%s: %s: SELECT gives %d rows, the workload believes %d", round, tb.Name, len(want), w.LiveRows(tb.Name))
					}
					got := replay(t, filepath.Join(out, w.Schema, tb.Name), tb)
					compare(t, round+" "+tb.Name, tb, want, got)
				}
				if t.Failed() {
					t.FailNow()
				}
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(w.Create(ctx))
			must(w.Seed(ctx, 20))
			must(h.run(ctx))
			check("full load")
			must(w.Steps(ctx, 120))
			must(w.AddColumn(ctx, "customers"))
			must(w.Steps(ctx, 80))
			must(h.run(ctx))
			check("round 1")
			must(w.Steps(ctx, 40))
			must(w.Truncate(ctx, "events"))
			must(w.Steps(ctx, 60))
			must(h.run(ctx))
			check("round 2 (truncate)")
			must(w.Steps(ctx, 60))
			must(h.reload(ctx, w.Schema+".order_lines"))
			check("reload")
			must(w.Steps(ctx, 60))
			must(h.run(ctx))
			check("round 3")
			t.Logf("%s: %d statements, %d rows changed, %d transactions (%d rolled back); every round equal",
				e, w.Statements, w.RowsChanged, w.Transactions, w.RolledBack)
		})
	}
}

// replay applies a table folder's DMS files, LOAD files first, then CDC
// files by name.
func replay(t *testing.T, dir string, tb *workload.Table) map[string]map[string]any {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var loads, cdcs []string
	for _, e := range ents {
		switch n := e.Name(); {
		case strings.HasPrefix(n, "."):
		case strings.HasPrefix(n, "LOAD"):
			loads = append(loads, n)
		default:
			cdcs = append(cdcs, n)
		}
	}
	sort.Strings(loads)
	sort.Strings(cdcs)
	model := map[string]map[string]any{}
	for _, n := range append(loads, cdcs...) {
		for _, row := range readFile(t, filepath.Join(dir, n)) {
			op := row["Op"]
			delete(row, "Op")
			bi := map[string]any{}
			for k, v := range row {
				if strings.HasPrefix(k, "BI_") {
					bi[strings.TrimPrefix(k, "BI_")] = v
					delete(row, k)
				}
			}
			key := workload.RowKey(tb.Keys, row)
			switch op {
			case "D":
				delete(model, key)
			case "U":
				if bi[tb.Keys[0]] != nil {
					delete(model, workload.RowKey(tb.Keys, bi))
				}
				model[key] = row
			case "I":
				model[key] = row
			default:
				t.Fatalf("%s: op %v", n, op)
			}
		}
	}
	return model
}

// readFile reads a DMS file's rows in icecheck's Go types.
func readFile(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	fields := f.Schema().Fields()
	r := parquet.NewGenericReader[any](f)
	prows := make([]parquet.Row, f.NumRows())
	n, _ := r.ReadRows(prows)
	var out []map[string]any
	for _, row := range prows[:n] {
		m := map[string]any{}
		for i, v := range row {
			m[fields[i].Name()] = value(t, fields[i].Type(), v)
		}
		out = append(out, m)
	}
	return out
}

func value(t *testing.T, typ parquet.Type, v parquet.Value) any {
	if v.IsNull() {
		return nil
	}
	var lv format.LogicalTypeValue
	if lt := typ.LogicalType(); lt != nil {
		lv = lt.Value
	}
	switch x := lv.(type) {
	case *format.DecimalType:
		raw := v.ByteArray()
		u := new(big.Int).SetBytes(raw)
		if len(raw) > 0 && raw[0]&0x80 != 0 {
			u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
		}
		return new(big.Rat).SetFrac(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(x.Scale)), nil)).FloatString(int(x.Scale))
	case *format.DateType:
		return time.Unix(int64(v.Int32())*86400, 0).UTC()
	case *format.TimestampType:
		return time.UnixMicro(v.Int64()).UTC()
	case *format.StringType:
		return string(v.ByteArray())
	}
	switch v.Kind() {
	case parquet.Int32:
		return int64(v.Int32())
	case parquet.Int64:
		return v.Int64()
	case parquet.Float:
		return float64(v.Float())
	case parquet.Double:
		return v.Double()
	case parquet.Boolean:
		return v.Boolean()
	case parquet.ByteArray:
		return slices.Clone(v.ByteArray())
	}
	t.Fatalf("unexpected %v %v", typ, v)
	return nil
}

func same(a, b any) bool {
	if x, ok := a.(float64); ok {
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	}
	if x, ok := a.(time.Time); ok {
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return reflect.DeepEqual(a, b)
}

func compare(t *testing.T, what string, tb *workload.Table, want, got map[string]map[string]any) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: source %d rows, files %d", what, len(want), len(got))
	}
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: key %q missing from the files", what, k)
			bad++
			continue
		}
		for _, c := range tb.Columns {
			if !same(g[c.Name], w[c.Name]) {
				t.Errorf("%s key %q column %s: files %v, source %v", what, k, c.Name, show(g[c.Name]), show(w[c.Name]))
				bad++
			}
		}
		if bad > 10 {
			t.Fatalf("%s: too many differences", what)
		}
	}
}

func show(v any) string {
	s := fmt.Sprintf("%T %v", v, v)
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
