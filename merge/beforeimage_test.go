package merge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

// biCols is a table (id, v, updated_at) with DMS's before-image columns of
// every column (column-filter all), after the table's.
var biCols = append(slices.Clone(cols),
	dmstest.Column{Name: "BI_id", Type: dmstest.Int32},
	dmstest.Column{Name: "BI_v", Type: dmstest.String},
	dmstest.Column{Name: "BI_updated_at", Type: dmstest.Timestamp})

func biFile(t *testing.T, name string, columns []dmstest.Column, ops []string, rows ...dmstest.Row) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, columns, ops, rows, dmstest.DMSOptions()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fieldNames(sc *arrow.Schema) []string {
	var names []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	return names
}

// Before-image columns never become table columns: after SplitBeforeImage
// the file's schema (also FullSchema after Project) holds the table's
// columns only, Evolve adds none of them, and the plan writes none; the
// key change still deletes the old key, read from the projected file.
func TestSplitBeforeImageKeepsColumnsOutOfTheTable(t *testing.T) {
	data := biFile(t, "20240814-000001000.parquet", biCols, []string{"I", "U", "D"},
		dmstest.Row{int32(2), "b", at(1), nil, nil, nil},
		dmstest.Row{int32(10), "a", at(5), int32(1), "a", at(0)},
		dmstest.Row{int32(2), nil, nil, int32(2), nil, nil})
	opts := merge.Options{Keys: []string{"id"}, OrderBy: byUpdatedAt}
	reread := func() *merge.File {
		f := read(t, "20240814-000001000.parquet", data)
		if err := f.SplitBeforeImage(opts); err != nil {
			t.Fatal(err)
		}
		return f
	}
	// The first read keeps the file whole, then projects it; or (a file
	// beyond the source cache) keeps only what Options.Keeps names from
	// the start, a row group at a time.
	firsts := map[string]func() *merge.File{
		"whole, then projected": reread,
		"read with Keep": func() *merge.File {
			f, err := merge.ReadFileWith(context.Background(), "20240814-000001000.parquet", merge.CDC, bytes.NewReader(data), nil,
				merge.ReadOptions{Keep: func(int64) func(string) bool { return opts.Keeps }})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.SplitBeforeImage(opts); err != nil {
				t.Fatal(err)
			}
			return f
		},
	}
	for name, first := range firsts {
		t.Run(name, func(t *testing.T) {
			f := first()
			want := []string{"id", "v", "updated_at"}
			if got := fieldNames(f.FullSchema()); !slices.Equal(got, want) {
				t.Fatalf("schema after SplitBeforeImage: %v, want %v", got, want)
			}
			table := arrow.NewSchema([]arrow.Field{
				{Name: "id", Type: arrow.PrimitiveTypes.Int32},
				{Name: "v", Type: arrow.BinaryTypes.String, Nullable: true},
				{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
			}, nil)
			if _, changes, err := merge.Evolve(table, []*merge.File{f}); err != nil || len(changes) != 0 {
				t.Fatalf("Evolve: changes %v, %v; want none", changes, err)
			}
			f.Project([]string{"id", "updated_at"})
			if got := fieldNames(f.FullSchema()); !slices.Equal(got, want) {
				t.Fatalf("FullSchema after Project: %v, want %v", got, want)
			}
			if err := merge.Align(nil, f, table); err != nil {
				t.Fatal(err)
			}
			reloads := 0
			pl := merge.NewPlanner(table, opts, []*merge.File{f}, merge.PlannerOptions{
				Reload: func(ctx context.Context, name string, each func(*merge.File) error) error {
					reloads++
					return merge.ReadGroups(ctx, name, merge.CDC, bytes.NewReader(data), nil, func(part *merge.File) error {
						if err := part.SplitBeforeImage(opts); err != nil {
							return err
						}
						if err := merge.Align(nil, part, table); err != nil {
							return err
						}
						return each(part)
					})
				},
			})
			live := &fakeLive{rows: []liveRow{{1, 0}, {3, 0}}}
			p, _, err := pl.Plan(context.Background(), live)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Deletes["table.parquet"], []int64{0}) || p.KeyChanges != 1 {
				t.Errorf("deletes %v, key changes %d; want the old key's row (position 0), 1", p.Deletes, p.KeyChanges)
			}
			var written []string
			for rec, err := range p.Records(context.Background(), nil) {
				if err != nil {
					t.Fatal(err)
				}
				if got := fieldNames(rec.Schema()); !slices.Equal(got, want) {
					t.Errorf("the plan writes columns %v, want %v", got, want)
				}
				for i := range int(rec.NumRows()) {
					written = append(written, rec.Column(0).ValueStr(i)+"="+rec.Column(1).ValueStr(i))
				}
				rec.Release()
			}
			if !slices.Equal(written, []string{"10=a"}) || reloads != 1 {
				t.Errorf("written %v after %d reloads, want [10=a] after 1", written, reloads)
			}

		})
	}
}

// A before-image key is converted to the table's key type, as the key is:
// a table whose key was widened to long still finds the old key's row.
func TestBeforeImageAlignedToAWidenedKey(t *testing.T) {
	f := read(t, "20240814-000001000.parquet", biFile(t, "", biCols[:4], []string{"U"}, dmstest.Row{int32(10), "a", at(5), int32(1)}))
	if err := f.SplitBeforeImage(merge.Options{Keys: []string{"id"}}); err != nil {
		t.Fatal(err)
	}
	table := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "v", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	if err := merge.Align(nil, f, table); err != nil {
		t.Fatal(err)
	}
	b, err := merge.NewBatch(table, merge.Options{Keys: []string{"id"}, OrderBy: byUpdatedAt})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(f); err != nil {
		t.Fatal(err)
	}
	if col, lo, hi, ok := b.KeyRange(); !ok || col != "id" || lo != int64(1) || hi != int64(10) {
		t.Errorf("KeyRange = %s [%v, %v] %v, want id [1, 10]: the table's rows of the old key must be scanned", col, lo, hi, ok)
	}
	ib := array.NewInt64Builder(memory.DefaultAllocator)
	ib.AppendValues([]int64{1, 2}, nil)
	keys := ib.NewArray()
	defer keys.Release()
	tb := array.NewTimestampBuilder(memory.DefaultAllocator, table.Field(2).Type.(*arrow.TimestampType))
	tb.AppendValues([]arrow.Timestamp{0, 0}, nil)
	orders := tb.NewArray()
	defer orders.Release()
	if err := b.MatchExisting("t.parquet", []arrow.Array{keys}, []arrow.Array{orders}, 0, nil); err != nil {
		t.Fatal(err)
	}
	if p := b.Plan(); !slices.Equal(p.Deletes["t.parquet"], []int64{0}) || p.WriteRows != 1 {
		t.Errorf("deletes %v, writes %d; want the old key 1's row and the new row", p.Deletes, p.WriteRows)
	}
}

// What DMS does not write is refused, naming the file, row and column.
func TestSplitBeforeImageRefuses(t *testing.T) {
	composite := []dmstest.Column{
		{Name: "a", Type: dmstest.Int32, Required: true},
		{Name: "b", Type: dmstest.String, Required: true},
		{Name: "v", Type: dmstest.String},
	}
	cases := []struct {
		name    string
		columns []dmstest.Column
		keys    []string
		ops     []string
		rows    []dmstest.Row
		is      error
		says    []string
	}{
		{
			name:    "before images of some key columns only",
			columns: append(slices.Clone(composite), dmstest.Column{Name: "BI_a", Type: dmstest.Int32}),
			keys:    []string{"a", "b"},
			ops:     []string{"U"}, rows: []dmstest.Row{{int32(1), "x", "v", int32(1)}},
			is: merge.ErrBeforeImage, says: []string{`"bi_b"`, "[a]", "[b]"},
		},
		{
			name:    "a before image of another type than the key",
			columns: append(slices.Clone(composite), dmstest.Column{Name: "BI_a", Type: dmstest.String}, dmstest.Column{Name: "BI_b", Type: dmstest.String}),
			keys:    []string{"a", "b"},
			ops:     []string{"U"}, rows: []dmstest.Row{{int32(1), "x", "v", "1", "x"}},
			is: merge.ErrSchemaClash, says: []string{`"bi_a"`, "string", "int"},
		},
		{
			name:    "a partly null before-image key",
			columns: append(slices.Clone(composite), dmstest.Column{Name: "BI_a", Type: dmstest.Int32}, dmstest.Column{Name: "BI_b", Type: dmstest.String}),
			keys:    []string{"a", "b"},
			ops:     []string{"I", "U"}, rows: []dmstest.Row{{int32(1), "x", "v", nil, nil}, {int32(1), "y", "v", int32(1), nil}},
			is: merge.ErrBeforeImage, says: []string{"row 2", `"bi_b"`, "null"},
		},
		{
			name:    "an insert with another key's before image",
			columns: biCols[:4],
			keys:    []string{"id"},
			ops:     []string{"U", "I"}, rows: []dmstest.Row{{int32(1), "a", at(0), int32(1)}, {int32(2), "a", at(0), int32(1)}},
			is: merge.ErrBeforeImage, says: []string{"row 2", `"bi_id"`, `value "1"`, "insert"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := read(t, "cdc/20240814-000001000.parquet", biFile(t, "", c.columns, c.ops, c.rows...))
			err := f.SplitBeforeImage(merge.Options{Keys: c.keys})
			var ie *merge.InputError
			if !errors.As(err, &ie) || !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want an InputError wrapping %v", err, c.is)
			}
			for _, s := range append(c.says, "cdc/20240814-000001000.parquet") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %s", err, s)
				}
			}
		})
	}
	t.Run("after Project", func(t *testing.T) {
		f := read(t, "20240814-000001000.parquet", biFile(t, "", biCols[:4], []string{"U"}, dmstest.Row{int32(10), "a", at(5), int32(1)}))
		f.Project([]string{"id"})
		if err := f.SplitBeforeImage(merge.Options{Keys: []string{"id"}}); err == nil {
			t.Fatal("SplitBeforeImage after Project: no error; the old keys are gone")
		}
	})
}

// liveRow is a row of fakeLive: id and updated_at (seconds after t0).
type liveRow struct {
	id int32
	ts int
}

// fakeLive is a table of one data file, table.parquet, honouring the key
// range.
type fakeLive struct{ rows []liveRow }

func (l *fakeLive) ScanLive(_ context.Context, cols []string, rng *merge.KeyRange, fn merge.LiveRowsFunc) (merge.ScanStats, error) {
	if !slices.Equal(cols, []string{"id", "updated_at"}) {
		return merge.ScanStats{}, fmt.Errorf("scan of %v", cols)
	}
	ib := array.NewInt32Builder(memory.DefaultAllocator)
	tb := array.NewTimestampBuilder(memory.DefaultAllocator, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"})
	for _, r := range l.rows {
		ib.Append(r.id)
		tb.Append(arrow.Timestamp(t0.UnixMicro() + int64(r.ts)*1e6))
	}
	ids, ts := ib.NewArray(), tb.NewArray()
	defer ids.Release()
	defer ts.Release()
	if rng != nil && !slices.ContainsFunc(l.rows, func(r liveRow) bool { return r.id >= rng.Lo.(int32) && r.id <= rng.Hi.(int32) }) {
		return merge.ScanStats{FilesPruned: 1}, nil // as the file's bounds would tell
	}
	return merge.ScanStats{Files: 1}, fn("table.parquet", []arrow.Array{ids, ts}, 0, nil)
}
