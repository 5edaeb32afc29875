package icemerge

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/icecheck"
)

// Runs into a table pre-created partitioned (until the config sets the
// spec of a new table): random inserts, updates that move rows to another
// day, deletes and delete-and-reinsert over several runs. After every run
// the table read by icecheck and by iceberg-go's own scan equals the model,
// each data file's rows belong to its partition, and each delete file
// carries the partition of the data files it deletes from.

var partCols = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32, Required: true},
	{Name: "created_at", Type: dmstest.TimestampLocal},
	{Name: "name", Type: dmstest.String},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

type partModelRow struct {
	createdAt time.Time
	name      string
	updatedAt time.Time
}

func (r partModelRow) String() string {
	return fmt.Sprintf("{%s %q %s}", r.createdAt.Format(time.DateTime), r.name, r.updatedAt.Format(time.TimeOnly))
}

func TestPartitionedRuns(t *testing.T) {
	specs := [][]string{{"day(created_at)"}, {"bucket(4, user_id)"}}
	for _, backend := range []string{"local", "minio-sql"} {
		for i, spec := range specs {
			t.Run(backend+"/"+strings.Join(spec, ","), func(t *testing.T) { partitionedRun(t, backend, spec, i) })
		}
	}
}

func partitionedRun(t *testing.T, backend string, exprs []string, seed int) {
	e := newEnv(t, backend)
	if seed%2 == 1 {
		e.opts.PartitionRows = 7 // plan in key-hash partitions too
	}
	stored := arrow.NewSchema([]arrow.Field{
		{Name: "user_id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "created_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	sc, err := catalog.IcebergSchema(stored, e.opts.Keys)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := catalog.ParsePartitionSpec(sc, exprs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.Create(e.ctx, e.opts.Table, stored, e.opts.Keys, exprs); err != nil {
		t.Fatal(err)
	}

	r := rand.New(rand.NewPCG(uint64(seed), 7))
	rows := map[int32]partModelRow{}
	var deleted []int32
	clock := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
	day0 := time.Date(2024, 8, 1, 9, 0, 0, 0, time.UTC)
	newRow := func() partModelRow {
		clock = clock.Add(time.Second)
		return partModelRow{day0.Add(time.Duration(r.IntN(6*24)) * time.Hour), fmt.Sprint("n", r.IntN(1000)), clock}
	}
	put := func(key string, ops []string, ids []int32, rs []partModelRow) {
		drows := make([]dmstest.Row, len(ids))
		for i, id := range ids {
			drows[i] = dmstest.Row{id, rs[i].createdAt, rs[i].name, rs[i].updatedAt}
		}
		e.putDMS(key, partCols, ops, drows, dmstest.Options{Op: true, RowGroupRows: 1 + r.IntN(5)})
	}

	// Full load.
	var ids []int32
	var rs []partModelRow
	for id := int32(1); id <= 30; id++ {
		rows[id] = newRow()
		ids, rs = append(ids, id), append(rs, rows[id])
	}
	put("LOAD00000001.parquet", slices.Repeat([]string{"I"}, len(ids)), ids, rs)
	if res := e.run(); res.Created || len(res.SchemaChanges) > 0 {
		t.Fatalf("the run created (%v) or changed (%v) the pre-created table", res.Created, res.SchemaChanges)
	}
	checkPartitioned(t, e, spec, rows, "after the full load", map[string]bool{})

	seen := map[string]bool{}
	next := int32(31)
	fileT := time.Date(2024, 8, 14, 0, 1, 0, 0, time.UTC)
	for run := range 5 {
		var ops []string
		ids, rs = nil, nil
		keys := slices.Sorted(maps.Keys(rows))
		for range 8 + r.IntN(8) {
			var op string
			var id int32
			var row partModelRow
			switch p := r.IntN(100); {
			case p < 25 && len(keys) > 0: // update in place (same created_at)
				id = keys[r.IntN(len(keys))]
				row = rows[id]
				clock = clock.Add(time.Second)
				row.name, row.updatedAt, op = row.name+"'", clock, "U"
			case p < 45 && len(keys) > 0: // update moving the row to another partition
				id = keys[r.IntN(len(keys))]
				row = rows[id]
				clock = clock.Add(time.Second)
				row.createdAt, row.updatedAt, op = row.createdAt.Add(time.Duration(1+r.IntN(3))*24*time.Hour), clock, "U"
			case p < 65 && len(keys) > 0:
				id, op = keys[r.IntN(len(keys))], "D"
				row = rows[id]
			case p < 80 && len(deleted) > 0: // reinsert a deleted key, elsewhere
				id, row, op = deleted[r.IntN(len(deleted))], newRow(), "I"
			default:
				id, row, op = next, newRow(), "I"
				next++
			}
			if op == "D" {
				delete(rows, id)
				deleted = append(deleted, id)
			} else {
				rows[id] = row
				deleted = slices.DeleteFunc(deleted, func(d int32) bool { return d == id })
			}
			keys = slices.Sorted(maps.Keys(rows))
			ops, ids, rs = append(ops, op), append(ids, id), append(rs, row)
		}
		// A delete and a reinsert of one key in the same file.
		if len(keys) > 0 {
			id := keys[r.IntN(len(keys))]
			img := rows[id]
			back := newRow()
			rows[id] = back
			ops, ids, rs = append(ops, "D", "I"), append(ids, id, id), append(rs, img, back)
		}
		fileT = fileT.Add(time.Minute)
		put(strings.Replace(fileT.Format("20060102-150405.000"), ".", "", 1)+".parquet", ops, ids, rs)
		e.run()
		checkPartitioned(t, e, spec, rows, fmt.Sprintf("after run %d", run+1), seen)
		if t.Failed() {
			return
		}
	}
	// Compaction folds the deletes into rewritten files, partition by
	// partition: the same rows, every data file still in its partition.
	if res := e.maintain(e.maintainOptions()); res.Compact == nil || res.Compact.DeletedRows == 0 {
		t.Errorf("maintain folded no deletes: %+v", res.Compact)
	}
	checkPartitioned(t, e, spec, rows, "after maintain", seen)
	if ice := e.table(); ice.DeleteFiles != 0 {
		t.Errorf("after maintain: %d delete files left, want 0", ice.DeleteFiles)
	}
}

// checkPartitioned compares the table with the model through both readers
// and checks its partition metadata. seen holds the delete files of
// earlier runs.
func checkPartitioned(t *testing.T, e *env, spec iceberg.PartitionSpec, want map[int32]partModelRow, when string, seen map[string]bool) {
	t.Helper()
	ice := e.table()
	got := map[int32]partModelRow{}
	for _, r := range ice.Rows {
		got[int32(r["user_id"].(int64))] = partModelRow{r["created_at"].(time.Time), r["name"].(string), r["updated_at"].(time.Time)}
	}
	if len(got) != len(ice.Rows) || !maps.Equal(got, want) {
		t.Errorf("%s: icecheck reads %d rows %v\nwant %v", when, len(ice.Rows), got, want)
	}

	tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	got = map[int32]partModelRow{}
	n := 0
	_, recs, err := tbl.Iceberg().Scan().ToArrowRecords(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for rec, err := range recs {
		if err != nil {
			t.Fatal(err)
		}
		ids := rec.Column(0).(*array.Int32)
		created := rec.Column(1).(*array.Timestamp)
		names := rec.Column(2).(*array.String)
		updated := rec.Column(3).(*array.Timestamp)
		for i := range int(rec.NumRows()) {
			got[ids.Value(i)] = partModelRow{time.UnixMicro(int64(created.Value(i))).UTC(), names.Value(i), time.UnixMicro(int64(updated.Value(i))).UTC()}
			n++
		}
		rec.Release()
	}
	if n != len(got) || !maps.Equal(got, want) {
		t.Errorf("%s: iceberg-go scans %d rows %v\nwant %v", when, n, got, want)
	}

	checkPartitionMetadata(t, e, tbl.Iceberg(), spec, ice, when, seen)
}

// checkPartitionMetadata checks what Athena relies on: the spec in the
// metadata, every data file's partition holding its rows (live or not), and
// each delete file in the partition of the data files it names.
func checkPartitionMetadata(t *testing.T, e *env, tbl *table.Table, spec iceberg.PartitionSpec, ice *icecheck.Table, when string, seen map[string]bool) {
	t.Helper()
	if len(ice.PartitionSpecs) != 1 || ice.DefaultSpecID != ice.PartitionSpecs[0].SpecID || len(ice.PartitionSpecs[0].Fields) != spec.NumFields() {
		t.Fatalf("%s: partition specs %+v, default %d", when, ice.PartitionSpecs, ice.DefaultSpecID)
	}
	for i, f := range ice.PartitionSpecs[0].Fields {
		if w := spec.Field(i); f.Name != w.Name || f.Transform != w.Transform.String() || f.FieldID != w.FieldID {
			t.Errorf("%s: partition field %+v in the metadata, want %s %s %d", when, f, w.Name, w.Transform, w.FieldID)
		}
	}
	files := map[string]icecheck.File{}
	for _, f := range ice.Files {
		if !f.Deletes {
			files[f.Path] = f
		}
	}
	field := spec.Field(0)
	_, err := catalog.ScanLive(e.ctx, tbl, []string{"user_id", "created_at"}, nil, func(path string, cols []arrow.Array, first int64, deleted func(int64) bool) error {
		f := files[path]
		ids := cols[0].(*array.Int32)
		created := cols[1].(*array.Timestamp)
		for i := range ids.Len() {
			var lit iceberg.Literal = iceberg.NewLiteral(ids.Value(i))
			if _, ok := field.Transform.(iceberg.DayTransform); ok {
				lit = iceberg.NewLiteral(iceberg.Timestamp(created.Value(i)))
			}
			var w any
			switch v := field.Transform.Apply(iceberg.Optional[iceberg.Literal]{Valid: true, Val: lit}).Val.(type) {
			case iceberg.Int32Literal:
				w = int64(v)
			case iceberg.DateLiteral:
				w = time.Unix(int64(v)*86400, 0).UTC()
			default:
				return fmt.Errorf("partition value %T", v)
			}
			if g := f.Partition[field.Name]; g != w {
				t.Errorf("%s: data file %s has %s=%v, its row %d has %v", when, path, field.Name, g, ids.Value(i), w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The delete files of this run: each in a partition of data files.
	parts := map[string]bool{}
	for _, f := range files {
		parts[fmt.Sprint(f.SpecID, f.Partition)] = true
	}
	for _, f := range ice.Files {
		if !f.Deletes || seen[f.Path] {
			continue
		}
		seen[f.Path] = true
		if !parts[fmt.Sprint(f.SpecID, f.Partition)] {
			t.Errorf("%s: delete file %s has partition %d %v, which no data file has", when, f.Path, f.SpecID, f.Partition)
		}
		if !strings.Contains(f.Path, "/"+field.Name+"=") {
			t.Errorf("%s: delete file %s is not in its partition's folder", when, f.Path)
		}
	}
}
