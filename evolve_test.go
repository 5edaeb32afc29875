package icemerge

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

// Schema changes at the source, each case of the issue: a new column is
// added (older rows read null), a column no longer sent stays (new rows hold
// null), int→long, float→double and decimal precision are widened, field ids
// stay, Glue's columns follow; every other change fails the run naming the
// table, column and both types, before anything is written.
func TestSchemaEvolution(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ts := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
		id := dmstest.Column{Name: "user_id", Type: dmstest.Int32, Required: true}
		name := dmstest.Column{Name: "name", Type: dmstest.String}
		upd := dmstest.Column{Name: "updated_at", Type: dmstest.Timestamp}
		n := dmstest.Column{Name: "n", Type: dmstest.Int32}
		score := dmstest.Column{Name: "score", Type: dmstest.Float32}
		amount := dmstest.Column{Name: "amount", Type: dmstest.Decimal, Precision: 10, Scale: 2}
		gone := dmstest.Column{Name: "gone", Type: dmstest.String}
		write := func(key string, cols []dmstest.Column, rows ...dmstest.Row) {
			ops := make([]string, len(rows))
			for i := range ops {
				ops[i] = "U"
			}
			e.putDMS(key, cols, ops, rows, dmstest.Options{Op: true})
		}

		write("LOAD00000001.parquet", []dmstest.Column{id, name, n, score, amount, gone, upd},
			dmstest.Row{int32(1), "one", int32(7), float32(1.5), "12345678.91", "old", ts},
			dmstest.Row{int32(2), "two", int32(8), float32(2.5), "-0.01", "old", ts})
		e.run()
		before := e.table()

		// ALTER TABLE at the source: phone added, gone dropped, n BIGINT,
		// score DOUBLE, amount DECIMAL(12,2).
		wide := []dmstest.Column{id, name, {Name: "n", Type: dmstest.Int64}, {Name: "score", Type: dmstest.Float64},
			{Name: "amount", Type: dmstest.Decimal, Precision: 12, Scale: 2}, upd, {Name: "phone", Type: dmstest.String}}
		write("20240814-000100000.parquet", wide,
			dmstest.Row{int32(2), "two b", int64(1) << 40, 0.1, "9999999999.99", ts.Add(time.Second), "+49 𠮷"},
			dmstest.Row{int32(3), "three", int64(-1) << 40, 1e300, "-0.50", ts.Add(time.Second), ""})
		res := e.run()
		var changes []string
		for _, c := range res.SchemaChanges {
			changes = append(changes, c.String())
		}
		want := []string{"widen column n from int to long", "widen column score from float to double",
			"widen column amount from decimal(10,2) to decimal(12,2)", "add column phone string"}
		if !reflect.DeepEqual(changes, want) {
			t.Errorf("schema changes %q\nwant %q", changes, want)
		}
		after := e.table()
		cols := map[string]string{}
		ids := map[string]int{}
		for _, c := range after.Columns {
			cols[c.Name], ids[c.Name] = c.Type, c.ID
		}
		wantTypes := map[string]string{"user_id": "int", "name": "string", "n": "long", "score": "double",
			"amount": "decimal(12, 2)", "gone": "string", "updated_at": "timestamptz", "phone": "string"}
		if !reflect.DeepEqual(cols, wantTypes) {
			t.Errorf("columns %v\nwant    %v", cols, wantTypes)
		}
		for _, c := range before.Columns {
			if ids[c.Name] != c.ID {
				t.Errorf("field id of %s changed from %d to %d", c.Name, c.ID, ids[c.Name])
			}
		}
		rows := byKey(after.Rows, "user_id")
		check := func(key, col string, want any) {
			t.Helper()
			if got := rows[key][col]; !reflect.DeepEqual(got, want) {
				t.Errorf("user %s %s = %#v, want %#v", key, col, got, want)
			}
		}
		check("1", "phone", nil) // older row: null in the new column
		check("1", "n", int64(7))
		check("1", "score", 1.5)
		check("1", "amount", "12345678.91")
		check("1", "gone", "old")
		check("2", "gone", nil) // new row: null in the column no longer sent
		check("2", "n", int64(1)<<40)
		check("2", "score", 0.1)
		check("2", "amount", "9999999999.99")
		check("2", "phone", "+49 𠮷")
		check("3", "score", 1e300)
		check("3", "amount", "-0.50")
		check("3", "phone", "")

		// A file with the old, narrower types still fits the wider columns:
		// a source rolled back to INT is no reason to stop the pipeline.
		write("20240814-000150000.parquet", []dmstest.Column{id, n, score, amount, upd},
			dmstest.Row{int32(1), int32(-3), float32(0.25), "1.00", ts.Add(2 * time.Second)})
		if res := e.run(); len(res.SchemaChanges) != 0 {
			t.Errorf("narrower file: schema changes %v, want none", res.SchemaChanges)
		}
		rows = byKey(e.table().Rows, "user_id")
		check("1", "n", int64(-3))
		check("1", "amount", "1.00")

		if e.backend == "minio-glue" {
			glueColumns(t, e, map[string]string{"n": "bigint", "score": "double", "amount": "decimal(12,2)", "phone": "string", "gone": "string"})
		}

		// Changes Iceberg cannot make: refused before anything is written.
		refused := []struct {
			name     string
			col      dmstest.Column
			value    any
			from, to string
		}{
			{"string to int", dmstest.Column{Name: "name", Type: dmstest.Int32}, int32(5), "string", "int"},
			{"string to long", dmstest.Column{Name: "phone", Type: dmstest.Int64}, int64(5), "string", "long"},
			{"decimal scale", dmstest.Column{Name: "amount", Type: dmstest.Decimal, Precision: 12, Scale: 3}, "1.000", "decimal(12,2)", "decimal(12,3)"},
			{"long to double", dmstest.Column{Name: "n", Type: dmstest.Float64}, 1.5, "long", "double"},
			{"timestamptz to timestamp", dmstest.Column{Name: "updated_at", Type: dmstest.TimestampLocal}, ts, "timestamptz", "timestamp"},
			{"key int to string", dmstest.Column{Name: "user_id", Type: dmstest.String, Required: true}, "1", "int", "string"},
		}
		for _, c := range refused {
			snap, md, bm := e.snapshotID(), e.metadataLocation(), e.bookmark()
			key := "20240814-000200000.parquet"
			cols, row := []dmstest.Column{id, upd, c.col}, dmstest.Row{int32(1), ts.Add(3 * time.Second), c.value}
			if c.col.Name == "user_id" || c.col.Name == "updated_at" {
				cols, row = []dmstest.Column{c.col, upd}, dmstest.Row{c.value, ts}
				if c.col.Name == "updated_at" {
					cols, row = []dmstest.Column{id, c.col}, dmstest.Row{int32(1), c.value}
				}
			}
			write(key, cols, row)
			_, err := e.merge(e.deps(nil))
			if !errors.Is(err, merge.ErrSchemaClash) {
				t.Errorf("%s: err = %v, want a schema clash", c.name, err)
				e.remove(key)
				continue
			}
			msg := err.Error()
			for _, part := range []string{e.opts.Table, key, `"` + c.col.Name + `"`, "column is " + c.from, "file has " + c.to, "recreate the table"} {
				if !strings.Contains(msg, part) {
					t.Errorf("%s: the error does not say %q: %s", c.name, part, msg)
				}
			}
			if e.snapshotID() != snap || e.metadataLocation() != md {
				t.Errorf("%s: the table changed", c.name)
			}
			if !reflect.DeepEqual(e.bookmark(), bm) {
				t.Errorf("%s: the bookmark moved", c.name)
			}
			e.remove(key)
		}
	})
}

// glueColumns checks the Glue table's current columns against want (name →
// Hive type), for the columns want names.
func glueColumns(t *testing.T, e *env, want map[string]string) {
	t.Helper()
	db, tbl, _ := strings.Cut(e.opts.Table, ".")
	out, err := glue.NewFromConfig(*e.aws).GetTable(e.ctx, &glue.GetTableInput{DatabaseName: aws.String(db), Name: aws.String(tbl)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range out.Table.StorageDescriptor.Columns {
		if c.Parameters["iceberg.field.current"] != "false" {
			got[aws.ToString(c.Name)] = aws.ToString(c.Type)
		}
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("Glue column %s: %q, want %q (current columns %v)", name, got[name], typ, got)
		}
	}
}
