package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/icecheck"
	"github.com/icemerge/icemerge/merge"
)

var partSchema = iceberg.NewSchemaWithIdentifiers(0, []int{1},
	iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int32, Required: true},
	iceberg.NestedField{ID: 2, Name: "user_id", Type: iceberg.PrimitiveTypes.Int64},
	iceberg.NestedField{ID: 3, Name: "created_at", Type: iceberg.PrimitiveTypes.TimestampTz},
	iceberg.NestedField{ID: 4, Name: "ts", Type: iceberg.PrimitiveTypes.Timestamp},
	iceberg.NestedField{ID: 5, Name: "d", Type: iceberg.PrimitiveTypes.Date},
	iceberg.NestedField{ID: 6, Name: "name", Type: iceberg.PrimitiveTypes.String},
	iceberg.NestedField{ID: 7, Name: "region", Type: iceberg.PrimitiveTypes.String},
	iceberg.NestedField{ID: 8, Name: "price", Type: iceberg.DecimalTypeOf(10, 2)},
	iceberg.NestedField{ID: 9, Name: "f", Type: iceberg.PrimitiveTypes.Float64},
	iceberg.NestedField{ID: 10, Name: "ok", Type: iceberg.PrimitiveTypes.Bool},
	iceberg.NestedField{ID: 11, Name: "blob", Type: iceberg.PrimitiveTypes.Binary},
)

func TestParsePartitionSpec(t *testing.T) {
	type field struct{ name, transform, source string }
	good := []struct {
		exprs []string
		want  []field
	}{
		{nil, nil},
		{[]string{"day(created_at)"}, []field{{"created_at_day", "day", "created_at"}}},
		{[]string{"bucket(16, user_id)"}, []field{{"user_id_bucket", "bucket[16]", "user_id"}}},
		{[]string{" bucket( 4 ,id ) "}, []field{{"id_bucket", "bucket[4]", "id"}}},
		{[]string{"month(ts)"}, []field{{"ts_month", "month", "ts"}}},
		{[]string{"year(d)"}, []field{{"d_year", "year", "d"}}},
		{[]string{"day(d)"}, []field{{"d_day", "day", "d"}}},
		{[]string{"hour(created_at)"}, []field{{"created_at_hour", "hour", "created_at"}}},
		{[]string{"truncate(10, name)"}, []field{{"name_trunc", "truncate[10]", "name"}}},
		{[]string{"truncate(100, price)"}, []field{{"price_trunc", "truncate[100]", "price"}}},
		{[]string{"identity(region)"}, []field{{"region", "identity", "region"}}},
		{[]string{"region"}, []field{{"region", "identity", "region"}}},
		{[]string{"Days(CREATED_AT)"}, []field{{"created_at_day", "day", "created_at"}}},
		{[]string{"REGION"}, []field{{"region", "identity", "region"}}},
		{[]string{"f"}, []field{{"f", "identity", "f"}}},
		{[]string{"bucket(8, blob)"}, []field{{"blob_bucket", "bucket[8]", "blob"}}},
		{[]string{"region", "day(created_at)", "bucket(4, id)"}, []field{
			{"region", "identity", "region"}, {"created_at_day", "day", "created_at"}, {"id_bucket", "bucket[4]", "id"}}},
	}
	for _, tt := range good {
		t.Run(strings.Join(tt.exprs, ";"), func(t *testing.T) {
			spec, err := catalog.ParsePartitionSpec(partSchema, tt.exprs)
			if err != nil {
				t.Fatal(err)
			}
			var got []field
			for i, f := range spec.Fields() {
				src, _ := partSchema.FindColumnName(f.SourceID())
				got = append(got, field{f.Name, f.Transform.String(), src})
				if f.FieldID != iceberg.PartitionDataIDStart+i {
					t.Errorf("field %s: id %d, want %d", f.Name, f.FieldID, iceberg.PartitionDataIDStart+i)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if spec.IsUnpartitioned() != (len(tt.want) == 0) {
				t.Errorf("unpartitioned %v", spec.IsUnpartitioned())
			}
		})
	}

	bad := []struct {
		exprs []string
		want  string // in the error, besides the expression
	}{
		{[]string{"day(nope)"}, `no column "nope" (columns: id, user_id`},
		{[]string{"nope"}, `no column "nope"`},
		{[]string{"hour(d)"}, `hour cannot partition column "d" of type date: it takes timestamp and timestamptz columns`},
		{[]string{"day(name)"}, `day cannot partition column "name" of type string`},
		{[]string{"bucket(16, f)"}, `bucket cannot partition column "f" of type double`},
		{[]string{"bucket(4, ok)"}, `bucket cannot partition column "ok" of type boolean`},
		{[]string{"truncate(10, created_at)"}, `truncate cannot partition column "created_at" of type timestamptz`},
		{[]string{"bucket(0, id)"}, `the bucket count "0" is not a whole number from 1 to 2147483647`},
		{[]string{"bucket(-3, id)"}, `bucket count "-3"`},
		{[]string{"bucket(x, id)"}, `bucket count "x"`},
		{[]string{"bucket(99999999999, id)"}, `bucket count "99999999999"`},
		{[]string{"bucket(id)"}, `bucket takes a bucket count and a column: bucket(N, column)`},
		{[]string{"bucket(id, 16)"}, `bucket count "id"`},
		{[]string{"truncate(0, name)"}, `the width "0"`},
		{[]string{"truncate(name)"}, `truncate takes a width and a column`},
		{[]string{"day(created_at, ts)"}, `day takes one column`},
		{[]string{"day()"}, `day takes one column`},
		{[]string{"frob(id)"}, `unknown transform "frob"`},
		{[]string{"void(id)"}, `void partitions nothing`},
		{[]string{"day(created_at"}, `no closing parenthesis`},
		{[]string{"region, name"}, `not a column name nor a transform`},
		{[]string{""}, `partition "": empty`},
		{[]string{"region", "identity(region)"}, `partition "identity(region)" repeats "region"`},
		{[]string{"day(created_at)", "day(created_at)"}, `repeats`},
		{[]string{"day(created_at)", "month(created_at)"}, `day(created_at), month(created_at)`},
	}
	for _, tt := range bad {
		t.Run("bad/"+strings.Join(tt.exprs, ";"), func(t *testing.T) {
			_, err := catalog.ParsePartitionSpec(partSchema, tt.exprs)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, catalog.ErrPartitionSpec) {
				t.Errorf("error does not wrap ErrPartitionSpec: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, tt.exprs[len(tt.exprs)-1]) {
				t.Errorf("error %q lacks %q or the expression", msg, tt.want)
			}
		})
	}
}

// rowsSchema is the table of the round-trip tests: a key, the partition
// source columns and a value.
var rowsSchema = iceberg.NewSchemaWithIdentifiers(0, []int{1},
	iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int32, Required: true},
	iceberg.NestedField{ID: 2, Name: "created_at", Type: iceberg.PrimitiveTypes.TimestampTz},
	iceberg.NestedField{ID: 3, Name: "name", Type: iceberg.PrimitiveTypes.String},
)

type partRow struct {
	createdAt time.Time
	name      string
}

func (r partRow) String() string {
	return fmt.Sprintf("{%s %q}", r.createdAt.Format(time.DateTime), r.name)
}

var day0 = time.Date(2024, 8, 14, 10, 30, 0, 0, time.UTC)

// records renders model rows as a batch of the table's stored schema.
func records(rows map[int32]partRow, ids ...int32) func(yield func(arrow.RecordBatch, error) bool) {
	sc, _ := catalog.StoredSchema(rowsSchema)
	return func(yield func(arrow.RecordBatch, error) bool) {
		ib := array.NewInt32Builder(memory.DefaultAllocator)
		tb := array.NewTimestampBuilder(memory.DefaultAllocator, sc.Field(1).Type.(*arrow.TimestampType))
		nb := array.NewStringBuilder(memory.DefaultAllocator)
		for _, id := range ids {
			ib.Append(id)
			tb.Append(arrow.Timestamp(rows[id].createdAt.UnixMicro()))
			nb.Append(rows[id].name)
		}
		yield(array.NewRecordBatch(sc, []arrow.Array{ib.NewArray(), tb.NewArray(), nb.NewArray()}, int64(len(ids))), nil)
	}
}

type partEnv struct {
	t     *testing.T
	ctx   context.Context
	cat   *catalog.Catalog
	tbl   *catalog.Table
	spec  iceberg.PartitionSpec
	model map[int32]partRow
	// seenDeletes are the delete files of earlier commits.
	seenDeletes map[string]bool
}

func newPartEnv(t *testing.T, exprs []string) *partEnv {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, catalog.Config{Kind: catalog.KindSQL, URI: filepath.Join(dir, "c.db"),
		Warehouse: "file://" + filepath.Join(dir, "wh")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	stored, err := catalog.StoredSchema(rowsSchema)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := cat.Create(ctx, "db.t", stored, catalog.Keys(rowsSchema), exprs)
	if err != nil {
		t.Fatal(err)
	}
	return &partEnv{t: t, ctx: ctx, cat: cat, tbl: tbl, spec: tbl.Iceberg().Spec(), model: map[int32]partRow{}, seenDeletes: map[string]bool{}}
}

// locate finds the live position of each key.
func (e *partEnv) locate() map[int32]struct {
	path string
	pos  int64
} {
	e.t.Helper()
	out := map[int32]struct {
		path string
		pos  int64
	}{}
	_, err := e.tbl.ScanLive(e.ctx, []string{"id"}, nil, func(path string, cols []arrow.Array, first int64, deleted func(int64) bool) error {
		ids := cols[0].(*array.Int32)
		for i := range ids.Len() {
			if pos := first + int64(i); !deleted(pos) {
				if _, dup := out[ids.Value(i)]; dup {
					return fmt.Errorf("key %d live twice", ids.Value(i))
				}
				out[ids.Value(i)] = struct {
					path string
					pos  int64
				}{path, pos}
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// apply deletes the rows of del and upserts the rows of put (already in
// the model), as a run does: one commit of new rows and position deletes.
func (e *partEnv) apply(del []int32, put []int32) {
	e.t.Helper()
	live := e.locate()
	deletes := map[string][]int64{}
	for _, id := range append(slices.Clone(del), put...) {
		if l, ok := live[id]; ok {
			deletes[l.path] = append(deletes[l.path], l.pos)
		}
	}
	for p := range deletes {
		slices.Sort(deletes[p])
	}
	for _, id := range del {
		delete(e.model, id)
	}
	ch := catalog.Change{Deletes: deletes}
	if len(put) > 0 {
		ch.Records = records(e.model, put...)
	}
	p, err := e.cat.Prepare(e.ctx, e.tbl, ch)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.tbl, err = e.cat.Commit(e.ctx, p, fmt.Sprint(time.Now().UnixNano()), nil); err != nil {
		e.t.Fatal(err)
	}
	e.check(deletes)
}

// check compares the table, read by icecheck and by iceberg-go, with the
// model, and checks the partitions of its files.
func (e *partEnv) check(deletes map[string][]int64) {
	e.t.Helper()
	want := map[int32]partRow{}
	maps.Copy(want, e.model)

	ice, err := icecheck.Read(e.ctx, e.tbl.MetadataLocation())
	if err != nil {
		e.t.Fatalf("icecheck: %v", err)
	}
	got := map[int32]partRow{}
	for _, r := range ice.Rows {
		got[int32(r["id"].(int64))] = partRow{r["created_at"].(time.Time), r["name"].(string)}
	}
	if len(ice.Rows) != len(got) || !maps.Equal(got, want) {
		e.t.Errorf("icecheck reads %d rows %v,\nwant %v", len(ice.Rows), got, want)
	}

	_, recs, err := e.tbl.Iceberg().Scan().ToArrowRecords(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	got = map[int32]partRow{}
	n := 0
	for rec, err := range recs {
		if err != nil {
			e.t.Fatal(err)
		}
		ids := rec.Column(0).(*array.Int32)
		ts := rec.Column(1).(*array.Timestamp)
		names := rec.Column(2).(*array.String)
		for i := range int(rec.NumRows()) {
			got[ids.Value(i)] = partRow{time.UnixMicro(int64(ts.Value(i))).UTC(), names.Value(i)}
			n++
		}
		rec.Release()
	}
	if n != len(got) || !maps.Equal(got, want) {
		e.t.Errorf("iceberg-go scans %d rows %v,\nwant %v", n, got, want)
	}

	// The spec is in the metadata, as Athena reads it.
	if len(ice.PartitionSpecs) != 1 || ice.DefaultSpecID != ice.PartitionSpecs[0].SpecID {
		e.t.Fatalf("partition specs %+v, default %d", ice.PartitionSpecs, ice.DefaultSpecID)
	}
	var wantFields []string
	for _, f := range e.spec.Fields() {
		wantFields = append(wantFields, fmt.Sprintf("%s:%s:%d", f.Name, f.Transform, f.SourceID()))
	}
	var gotFields []string
	for _, f := range ice.PartitionSpecs[0].Fields {
		gotFields = append(gotFields, fmt.Sprintf("%s:%s:%d", f.Name, f.Transform, f.SourceID))
	}
	if !slices.Equal(gotFields, wantFields) {
		e.t.Errorf("spec in metadata %v, want %v", gotFields, wantFields)
	}

	// Every data file's partition holds its rows' partition values.
	partOf := map[string]icecheck.File{}
	for _, f := range ice.Files {
		if !f.Deletes {
			partOf[f.Path] = f
		}
	}
	_, err = e.tbl.ScanLive(e.ctx, []string{"id", "created_at"}, nil, func(path string, cols []arrow.Array, first int64, deleted func(int64) bool) error {
		f, ok := partOf[path]
		if !ok {
			return fmt.Errorf("scanned data file %s is not in the manifests", path)
		}
		ids := cols[0].(*array.Int32)
		ts := cols[1].(*array.Timestamp)
		for i := range ids.Len() {
			if w := partitionOf(e.spec, ids.Value(i), time.UnixMicro(int64(ts.Value(i))).UTC()); !maps.Equal(f.Partition, w) {
				e.t.Errorf("data file %s has partition %v, its row %d belongs in %v", path, f.Partition, ids.Value(i), w)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}

	// The new delete files: one per partition of the data files they
	// delete from, with that partition.
	wantParts := map[string]bool{}
	for p := range deletes {
		wantParts[fmt.Sprint(partOf[p].SpecID, partOf[p].Partition)] = true
	}
	gotParts := map[string]bool{}
	newFiles := 0
	for _, f := range ice.Files {
		if !f.Deletes || e.seenDeletes[f.Path] {
			continue
		}
		e.seenDeletes[f.Path] = true
		newFiles++
		gotParts[fmt.Sprint(f.SpecID, f.Partition)] = true
	}
	if newFiles != len(wantParts) || !maps.Equal(gotParts, wantParts) {
		e.t.Errorf("%d new delete files with partitions %v, want one for each of %v", newFiles, gotParts, wantParts)
	}
}

// partitionOf is the partition tuple of a row as icecheck reports it.
func partitionOf(spec iceberg.PartitionSpec, id int32, createdAt time.Time) map[string]any {
	out := map[string]any{}
	for _, f := range spec.Fields() {
		switch tr := f.Transform.(type) {
		case iceberg.DayTransform:
			out[f.Name] = createdAt.Truncate(24 * time.Hour)
		case iceberg.TruncateTransform:
			out[f.Name] = int64(id - id%int32(tr.Width))
		case iceberg.BucketTransform:
			v := tr.Apply(iceberg.Optional[iceberg.Literal]{Valid: true, Val: iceberg.NewLiteral(id)})
			out[f.Name] = int64(v.Val.(iceberg.Int32Literal))
		}
	}
	return out
}

// A partitioned table takes inserts, updates (one moving a row to another
// partition), deletes and delete-and-reinsert, and both readers see the
// model after every commit; delete files carry their data files'
// partitions.
func TestPartitionedTableRoundTrip(t *testing.T) {
	for _, exprs := range [][]string{{"day(created_at)"}, {"bucket(4, id)"}, {"bucket(4, id)", "day(created_at)"}, nil} {
		t.Run(strings.Join(append([]string{"spec"}, exprs...), ","), func(t *testing.T) {
			e := newPartEnv(t, exprs)
			var ids []int32
			for i := range int32(40) {
				id := i + 1
				e.model[id] = partRow{day0.Add(time.Duration(i%5) * 24 * time.Hour).Add(time.Duration(i) * time.Minute), fmt.Sprint("row", id)}
				ids = append(ids, id)
			}
			e.apply(nil, ids)

			// Updates: 5 moves three days on (another day partition); 8
			// stays. Deletes: 3, 7, 12.
			r := e.model[5]
			r.createdAt, r.name = r.createdAt.Add(72*time.Hour), "moved"
			e.model[5] = r
			r = e.model[8]
			r.name = "renamed"
			e.model[8] = r
			e.apply([]int32{3, 7, 12}, []int32{5, 8})

			// Delete the moved row; reinsert 3 in a new partition; insert 41.
			e.model[3] = partRow{day0.Add(-48 * time.Hour), "back"}
			e.model[41] = partRow{day0.Add(10 * time.Hour), "new"}
			e.apply([]int32{5}, []int32{3, 41})

			// Delete and reinsert one key in the same commit's partition,
			// and delete from many partitions at once.
			e.model[9] = partRow{day0, "reinserted"}
			e.apply([]int32{1, 2, 4, 6, 10, 11}, []int32{9})
		})
	}
}

// Create refuses a partition spec naming a column the table lacks, and
// creates nothing.
func TestCreateRefusesAForeignSpec(t *testing.T) {
	dir := t.TempDir()
	cat, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindSQL, URI: filepath.Join(dir, "c.db"),
		Warehouse: "file://" + filepath.Join(dir, "wh")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	if _, err := catalog.ParsePartitionSpec(partSchema, []string{"bucket(2, blob)"}); err != nil {
		t.Fatal(err) // valid for another schema
	}
	stored, err := catalog.StoredSchema(rowsSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Create(context.Background(), "db.t", stored, []string{"id"}, []string{"bucket(2, blob)"}); !errors.Is(err, catalog.ErrPartitionSpec) {
		t.Errorf("a spec of another schema: err = %v, want ErrPartitionSpec", err)
	}
	if _, ok, err := cat.Load(context.Background(), "db.t"); err != nil || ok {
		t.Errorf("after the refusal the table exists (%v, %v)", ok, err)
	}
}

// Key-range pruning works on partitioned tables: by column bounds for any
// spec, and by whole partitions for truncate (iceberg-go projects the
// range onto it).
func TestScanLivePrunesPartitionedTables(t *testing.T) {
	for _, exprs := range [][]string{{"bucket(4, id)"}, {"truncate(10, id)"}, {"day(created_at)"}} {
		t.Run(exprs[0], func(t *testing.T) {
			e := newPartEnv(t, exprs)
			// Three commits of ids 1-10, 11-20, 21-30: files with disjoint bounds.
			for c := range int32(3) {
				var ids []int32
				for i := range int32(10) {
					id := c*10 + i + 1
					e.model[id] = partRow{day0.Add(time.Duration(i%3) * 24 * time.Hour), fmt.Sprint(id)}
					ids = append(ids, id)
				}
				e.apply(nil, ids)
			}
			var seen []int32
			st, err := e.tbl.ScanLive(e.ctx, []string{"id"}, &merge.KeyRange{Column: "id", Lo: int32(12), Hi: int32(14)},
				func(_ string, cols []arrow.Array, _ int64, _ func(int64) bool) error {
					seen = append(seen, cols[0].(*array.Int32).Int32Values()...)
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []int32{12, 13, 14} {
				if !slices.Contains(seen, id) {
					t.Errorf("key %d not scanned", id)
				}
			}
			if slices.ContainsFunc(seen, func(id int32) bool { return id <= 10 || id > 20 }) {
				t.Errorf("files of other commits were read: %v", seen)
			}
			if st.FilesPruned == 0 || st.Files == 0 {
				t.Errorf("stats %+v: want files read and pruned", st)
			}
		})
	}
}
