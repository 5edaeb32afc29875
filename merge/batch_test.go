package merge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

var t0 = time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)

// at is t0 plus s seconds; a negative s means a null updated_at.
func at(s int) any {
	if s < 0 {
		return nil
	}
	return t0.Add(time.Duration(s) * time.Second)
}

// chg is one DMS row of a table (id int, v string, updated_at timestamp).
type chg struct {
	op string
	id int32
	v  string
	ts int // seconds after t0; -1 null
}

var cols = []dmstest.Column{
	{Name: "id", Type: dmstest.Int32, Required: true},
	{Name: "v", Type: dmstest.String},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

func encode(t testing.TB, cs ...chg) []byte {
	t.Helper()
	var ops []string
	var rows []dmstest.Row
	for _, c := range cs {
		ops = append(ops, c.op)
		rows = append(rows, dmstest.Row{c.id, c.v, at(c.ts)})
	}
	var buf bytes.Buffer
	// Two rows per row group: files of several row groups, read again a
	// row group at a time (ReadGroups).
	if err := dmstest.Write(&buf, cols, ops, rows, dmstest.Options{Op: true, RowGroupRows: 2}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reloadOf reads the files again as a run does, a row group at a time,
// counting the reads.
func reloadOf(t testing.TB, reads *int, content func(name string) []byte) merge.Reload {
	var mu sync.Mutex // Records reads files again on goroutines of their own
	return func(ctx context.Context, name string, each func(*merge.File) error) error {
		mu.Lock()
		*reads++
		b := content(name)
		mu.Unlock()
		return merge.ReadGroups(ctx, name, source.Classify(name), bytes.NewReader(b), memory.DefaultAllocator, each)
	}
}

func read(t testing.TB, name string, b []byte) *merge.File {
	t.Helper()
	f, err := merge.ReadFile(context.Background(), name, source.Classify(name), bytes.NewReader(b), memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tableRow is a live row of the table before the batch.
type tableRow struct {
	id int32
	v  string
	ts int
}

type srcFile struct {
	name string
	rows []chg
}

// apply runs a batch of files over a table holding existing rows and returns
// the table afterwards: id → "v@ts".
func apply(t *testing.T, existing []tableRow, orderBy []string, files ...srcFile) (map[int32]string, *merge.Plan) {
	t.Helper()
	var objs []source.Object
	byName := map[string][]chg{}
	for _, f := range files {
		objs = append(objs, source.Object{Key: f.name})
		byName[f.name] = f.rows
	}
	var batch *merge.Batch
	for _, o := range source.SortObjects(objs) {
		f := read(t, o.Key, encode(t, byName[o.Key]...))
		if batch == nil {
			var err error
			if batch, err = merge.NewBatch(f.Schema, merge.Options{Keys: []string{"id"}, OrderBy: orderBy}); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	// The existing rows sit in one data file, at positions 0…
	ib := array.NewInt32Builder(memory.DefaultAllocator)
	tb := array.NewTimestampBuilder(memory.DefaultAllocator, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"})
	for _, r := range existing {
		ib.Append(r.id)
		if r.ts < 0 {
			tb.AppendNull()
		} else {
			tb.Append(arrow.Timestamp(at(r.ts).(time.Time).UnixMicro()))
		}
	}
	var orders []arrow.Array
	if len(orderBy) > 0 {
		orders = []arrow.Array{tb.NewArray()}
	}
	if err := batch.MatchExisting("table.parquet", []arrow.Array{ib.NewArray()}, orders, 0, nil); err != nil {
		t.Fatal(err)
	}
	plan := batch.Plan()

	out := map[int32]string{}
	deleted := plan.Deletes["table.parquet"]
	for i, r := range existing {
		if !slices.Contains(deleted, int64(i)) {
			out[r.id] = fmt.Sprintf("%s@%d", r.v, r.ts)
		}
	}
	for rec, err := range plan.Records(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		ids := rec.Column(0).(*array.Int32)
		vs := rec.Column(1).(*array.String)
		ts := rec.Column(2).(*array.Timestamp)
		for i := 0; i < int(rec.NumRows()); i++ {
			if _, dup := out[ids.Value(i)]; dup {
				t.Fatalf("key %d written while a live row remains", ids.Value(i))
			}
			sec := -1
			if !ts.IsNull(i) {
				sec = int(time.UnixMicro(int64(ts.Value(i))).Sub(t0) / time.Second)
			}
			out[ids.Value(i)] = fmt.Sprintf("%s@%d", vs.Value(i), sec)
		}
		rec.Release()
	}
	return out, plan
}

var byUpdatedAt = []string{"updated_at"}

func TestWinnerOrdering(t *testing.T) {
	tests := []struct {
		name     string
		existing []tableRow
		orderBy  []string
		files    []srcFile
		want     map[int32]string
		stale    int
	}{
		{
			name:  "same-second updates in one file: the later row wins",
			files: []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "a", 5}, {"U", 1, "b", 5}}}},
			want:  map[int32]string{1: "b@5"},
		},
		{
			name: "same-second updates in two files: the later file wins",
			files: []srcFile{
				{"20240814-000002000.parquet", []chg{{"U", 1, "b", 5}}},
				{"20240814-000001000.parquet", []chg{{"U", 1, "a", 5}}},
			},
			want: map[int32]string{1: "b@5"},
		},
		{
			name:  "an update and the delete that carries its image",
			files: []srcFile{{"20240814-000001000.parquet", []chg{{"I", 1, "a", 1}, {"U", 1, "x", 7}, {"D", 1, "x", 7}}}},
			want:  map[int32]string{},
		},
		{
			name: "a LOAD row and its CDC delete in one batch",
			files: []srcFile{
				{"20240814-000001000.parquet", []chg{{"D", 1, "a", 0}}},
				{"LOAD00000001.parquet", []chg{{"I", 1, "a", 0}, {"I", 2, "b", 0}}},
			},
			want: map[int32]string{2: "b@0"},
		},
		{
			name: "LOAD files come before CDC files whatever their folder",
			files: []srcFile{
				{"2024/08/14/20240814-000001000.parquet", []chg{{"U", 1, "cdc", 0}}},
				{"zz/LOAD00000002.parquet", []chg{{"I", 1, "load", 0}}},
			},
			want: map[int32]string{1: "cdc@0"},
		},
		{
			name:  "a newer updated_at wins over later source order",
			files: []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "new", 9}, {"U", 1, "old", 3}}}},
			want:  map[int32]string{1: "new@9"},
		},
		{
			name:  "a null updated_at is ordered by source order: it beats the change before it",
			files: []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "set", 3}, {"U", 1, "null", -1}}}},
			want:  map[int32]string{1: "null@-1"},
		},
		{
			name:  "a null updated_at is ordered by source order: it loses to the change after it",
			files: []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "null", -1}, {"U", 1, "old", 0}, {"U", 1, "older", -1}, {"U", 1, "last", 1}}}},
			want:  map[int32]string{1: "last@1"},
		},
		{
			name:     "a delete with a null updated_at deletes the newer row it follows",
			existing: []tableRow{{1, "row", 9}, {2, "keep", 9}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"D", 1, "", -1}}}},
			want:     map[int32]string{2: "keep@9"},
		},
		{
			name:    "source order only",
			orderBy: []string{},
			files:   []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "new", 9}, {"U", 1, "old", 3}}}},
			want:    map[int32]string{1: "old@3"},
		},
		{
			name:  "delete then re-insert",
			files: []srcFile{{"20240814-000001000.parquet", []chg{{"D", 1, "a", 2}, {"I", 1, "again", 2}}}},
			want:  map[int32]string{1: "again@2"},
		},
		{
			name:     "an update replaces an older table row",
			existing: []tableRow{{1, "old", 1}, {2, "keep", 1}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "new", 5}}}},
			want:     map[int32]string{1: "new@5", 2: "keep@1"},
		},
		{
			name:     "on equal order values the incoming change wins",
			existing: []tableRow{{1, "table", 5}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "incoming", 5}}}},
			want:     map[int32]string{1: "incoming@5"},
		},
		{
			name:     "a late older change leaves the newer table row alone",
			existing: []tableRow{{1, "newer", 9}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "late", 3}}}},
			want:     map[int32]string{1: "newer@9"},
			stale:    1,
		},
		{
			name:     "a replayed delete leaves a newer re-inserted row alone",
			existing: []tableRow{{1, "reinserted", 9}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"D", 1, "old", 3}}}},
			want:     map[int32]string{1: "reinserted@9"},
			stale:    1,
		},
		{
			name:     "a delete with the row's own image deletes it",
			existing: []tableRow{{1, "a", 4}, {2, "b", 4}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"D", 2, "b", 4}}}},
			want:     map[int32]string{1: "a@4"},
		},
		{
			name:     "a delete of an absent key changes nothing",
			existing: []tableRow{{1, "a", 4}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"D", 7, "x", 4}}}},
			want:     map[int32]string{1: "a@4"},
		},
		{
			name:     "source order: the incoming change always replaces",
			orderBy:  []string{},
			existing: []tableRow{{1, "newer", 9}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "late", 3}}}},
			want:     map[int32]string{1: "late@3"},
		},
		{
			name:     "duplicate live rows of a key are all replaced",
			existing: []tableRow{{1, "dup1", 1}, {1, "dup2", 2}},
			files:    []srcFile{{"20240814-000001000.parquet", []chg{{"U", 1, "one", 5}}}},
			want:     map[int32]string{1: "one@5"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orderBy := byUpdatedAt
			if tc.orderBy != nil {
				orderBy = tc.orderBy
			}
			got, plan := apply(t, tc.existing, orderBy, tc.files...)
			if !maps.Equal(got, tc.want) {
				t.Errorf("table after the batch = %v, want %v", got, tc.want)
			}
			if plan.Stale != tc.stale {
				t.Errorf("stale = %d, want %d", plan.Stale, tc.stale)
			}
		})
	}
}

// The worked users example (testdata/users/README.md), through the fixtures in testdata.
func TestUsersExamplePlan(t *testing.T) {
	got, plan := apply(t, []tableRow{{1, "u0", 0}, {2, "u1", 0}, {3, "u2", 0}, {4, "u3", 0}, {5, "u4", 0}}, byUpdatedAt,
		srcFile{"20240814-002642123.parquet", []chg{{"I", 6, "u5", 1558}, {"U", 1, "update-u0", 1566}, {"D", 4, "u3", 0}}})
	want := map[int32]string{1: "update-u0@1566", 2: "u1@0", 3: "u2@0", 5: "u4@0", 6: "u5@1558"}
	if !maps.Equal(got, want) {
		t.Errorf("table = %v, want %v", got, want)
	}
	if plan.WinInserts != 1 || plan.WinUpdates != 1 || plan.WinDeletes != 1 || plan.WriteRows != 2 || plan.DeleteRows != 2 {
		t.Errorf("plan counts: winners I %d U %d D %d, write %d delete %d; want 1 1 1, 2 2",
			plan.WinInserts, plan.WinUpdates, plan.WinDeletes, plan.WriteRows, plan.DeleteRows)
	}
}

// Checklist: two changes of one key with the same updated_at give the same
// winner in 100 shuffled runs, however the listing is ordered.
func TestShuffledListingsPickTheSameWinner(t *testing.T) {
	files := []srcFile{
		{"LOAD00000001.parquet", []chg{{"I", 1, "load", 0}, {"I", 2, "load", 0}}},
		{"2024/08/14/20240814-000001000.parquet", []chg{{"U", 1, "first", 5}, {"U", 2, "first", 5}}},
		{"2024/08/14/20240814-000002000.parquet", []chg{{"U", 1, "second", 5}, {"D", 2, "first", 5}}},
		{"2024/08/15/20240815-000000000.parquet", []chg{{"U", 1, "third", 5}}},
	}
	want := map[int32]string{1: "third@5"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		r.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
		got, _ := apply(t, nil, byUpdatedAt, files...)
		if !maps.Equal(got, want) {
			t.Fatalf("shuffle %d: table = %v, want %v", i, got, want)
		}
	}
}

func TestOpColumn(t *testing.T) {
	t.Run("matched case-insensitively", func(t *testing.T) {
		got, _ := apply(t, []tableRow{{2, "x", 0}}, byUpdatedAt, srcFile{"20240814-000001000.parquet",
			[]chg{{"i", 1, "a", 1}, {"u", 1, "b", 2}, {"d", 2, "x", 0}}})
		if want := map[int32]string{1: "b@2"}; !maps.Equal(got, want) {
			t.Errorf("table = %v, want %v", got, want)
		}
	})
	t.Run("an unknown Op names the file, row and value", func(t *testing.T) {
		_, err := merge.ReadFile(context.Background(), "raw/20240814-000001000.parquet", merge.CDC,
			bytes.NewReader(encode(t, chg{"I", 1, "a", 1}, chg{"X", 2, "b", 1})), nil)
		var ie *merge.InputError
		if !errors.As(err, &ie) || !errors.Is(err, merge.ErrUnknownOp) {
			t.Fatalf("err = %v, want an InputError wrapping ErrUnknownOp", err)
		}
		for _, s := range []string{"raw/20240814-000001000.parquet", "row 2", `"X"`, `"Op"`} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %s", err, s)
			}
		}
	})
	t.Run("an unknown Op in a later row group names its row in the file", func(t *testing.T) {
		// Two rows a row group: row 5 is in the third; Op is read as a
		// dictionary, its values parsed once a row group.
		_, err := merge.ReadFile(context.Background(), "20240814-000001000.parquet", merge.CDC,
			bytes.NewReader(encode(t, chg{"I", 1, "a", 1}, chg{"U", 1, "b", 2}, chg{"U", 1, "c", 3}, chg{"D", 1, "c", 3}, chg{"Q", 2, "b", 1})), nil)
		if !errors.Is(err, merge.ErrUnknownOp) || !strings.Contains(err.Error(), "row 5") || !strings.Contains(err.Error(), `"Q"`) {
			t.Errorf("err = %v, want an unknown Op at row 5, \"Q\"", err)
		}
	})
	t.Run("a file without Op holds inserts", func(t *testing.T) {
		var buf bytes.Buffer
		if err := dmstest.Write(&buf, cols, nil, []dmstest.Row{{int32(1), "a", at(0)}}, dmstest.Options{}); err != nil {
			t.Fatal(err)
		}
		f := read(t, "LOAD00000001.parquet", buf.Bytes())
		if f.HasOp || f.Rows() != 1 || f.Count(merge.Insert) != 1 {
			t.Errorf("HasOp %v, rows %d, inserts %d; want false, 1, 1", f.HasOp, f.Rows(), f.Count(merge.Insert))
		}
	})
}

func TestNullKeyFailsTheBatch(t *testing.T) {
	nullable := slices.Clone(cols)
	nullable[0].Required = false
	var buf bytes.Buffer
	err := dmstest.Write(&buf, nullable, []string{"I", "U"}, []dmstest.Row{{int32(1), "a", at(0)}, {nil, "b", at(0)}}, dmstest.Options{Op: true})
	if err != nil {
		t.Fatal(err)
	}
	f := read(t, "20240814-000001000.parquet", buf.Bytes())
	b, err := merge.NewBatch(f.Schema, merge.Options{Keys: []string{"id"}, OrderBy: byUpdatedAt})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Add(f)
	if !errors.Is(err, merge.ErrNullKey) || !strings.Contains(err.Error(), "row 2") || !strings.Contains(err.Error(), `"id"`) {
		t.Fatalf("err = %v, want ErrNullKey naming row 2 and column id", err)
	}
}

func TestMissingKeyOrOrderColumn(t *testing.T) {
	f := read(t, "20240814-000001000.parquet", encode(t, chg{"I", 1, "a", 0}))
	for _, o := range []merge.Options{{Keys: []string{"user_id"}}, {Keys: []string{"id"}, OrderBy: []string{"modified"}}, {}} {
		if _, err := merge.NewBatch(f.Schema, o); !errors.Is(err, merge.ErrMissingColumn) {
			t.Errorf("NewBatch(%+v) err = %v, want ErrMissingColumn", o, err)
		}
	}
}

// A batch sheds its files' rows after reading their keys and reads a file
// again only to write its winners; the rows written are the same as without
// shedding, and a file that changed in between fails the write.
func TestShedFilesAreReadAgain(t *testing.T) {
	load := encode(t, chg{"I", 1, "a", 0}, chg{"I", 2, "b", 0})
	cdc := encode(t, chg{"U", 1, "a2", 5}, chg{"D", 2, "b", 5}, chg{"I", 3, "c", 5})
	files := map[string][]byte{"LOAD00000001.parquet": load, "20240814-000001000.parquet": cdc}
	rowsOf := func(shed bool, changed []byte) ([]string, error) {
		first := read(t, "LOAD00000001.parquet", load)
		b, err := merge.NewBatch(first.Schema, merge.Options{Keys: []string{"id"}, OrderBy: []string{"updated_at"}})
		if err != nil {
			t.Fatal(err)
		}
		reads := 0
		b.SetReload(reloadOf(t, &reads, func(name string) []byte {
			if changed != nil && name != "LOAD00000001.parquet" {
				return changed
			}
			return files[name]
		}))
		for _, name := range []string{"LOAD00000001.parquet", "20240814-000001000.parquet"} {
			f := read(t, name, files[name])
			if err := b.Add(f); err != nil {
				t.Fatal(err)
			}
			if shed {
				f.Shed()
			}
		}
		var out []string
		for rec, err := range b.Plan().Records(context.Background(), nil) {
			if err != nil {
				return nil, err
			}
			for i := 0; i < int(rec.NumRows()); i++ {
				out = append(out, fmt.Sprint(rec.Column(0).ValueStr(i), "=", rec.Column(1).ValueStr(i)))
			}
			rec.Release()
		}
		if !shed && reads != 0 {
			t.Errorf("read files again without shedding: %d", reads)
		}
		return out, nil
	}
	want, err := rowsOf(false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rowsOf(true, nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("shed: rows %v, %v; want %v", got, err, want)
	}
	_, err = rowsOf(true, encode(t, chg{"U", 1, "a2", 5}, chg{"U", 2, "b", 5}, chg{"I", 3, "c", 5}))
	var ie *merge.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "changed during the run") {
		t.Errorf("changed object: err = %v, want an input error saying it changed", err)
	}
}

// RecordsOnce writes files kept whole without reading them, then keeps only
// their key and order columns: a second write reads them again and yields
// the same rows, and the batch's files still serve a re-plan.
func TestRecordsOnceFreesWholeFiles(t *testing.T) {
	load := encode(t, chg{"I", 1, "a", 0}, chg{"I", 2, "b", 0})
	cdc := encode(t, chg{"U", 1, "a2", 5}, chg{"D", 2, "b", 5}, chg{"I", 3, "c", 5})
	files := map[string][]byte{"LOAD00000001.parquet": load, "20240814-000001000.parquet": cdc}
	var whole []*merge.File
	var b *merge.Batch
	reads := 0
	for _, name := range []string{"LOAD00000001.parquet", "20240814-000001000.parquet"} {
		f := read(t, name, files[name])
		if b == nil {
			var err error
			if b, err = merge.NewBatch(f.Schema, merge.Options{Keys: []string{"id"}, OrderBy: []string{"updated_at"}}); err != nil {
				t.Fatal(err)
			}
			b.SetReload(reloadOf(t, &reads, func(name string) []byte { return files[name] }))
		}
		if err := b.Add(f); err != nil {
			t.Fatal(err)
		}
		whole = append(whole, f)
	}
	rows := func(recs iter.Seq2[arrow.RecordBatch, error]) []string {
		var out []string
		for rec, err := range recs {
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < int(rec.NumRows()); i++ {
				out = append(out, fmt.Sprint(rec.Column(0).ValueStr(i), "=", rec.Column(1).ValueStr(i)))
			}
			rec.Release()
		}
		return out
	}
	p := b.Plan()
	first := rows(p.RecordsOnce(context.Background(), nil))
	if reads != 0 || len(first) != 2 {
		t.Fatalf("first write: rows %v after %d reads; want 2 rows and no read", first, reads)
	}
	for _, f := range whole {
		if !f.Projected() || f.Schema.NumFields() != 2 {
			t.Errorf("%s after RecordsOnce: projected %v, %d columns; want its key and order columns only", f.Name, f.Projected(), f.Schema.NumFields())
		}
	}
	if again := rows(p.RecordsOnce(context.Background(), nil)); !reflect.DeepEqual(again, first) || reads != 1 {
		t.Errorf("second write: rows %v after %d reads; want %v after reading the file with winners", again, reads, first)
	}
}

// Records reads the next files again while one is written: the rows still
// come out in source order, an error of a later file comes after the rows
// of the files before it, and a consumer that stops early leaves nothing
// allocated and no read running.
func TestRecordsReadAheadInSourceOrder(t *testing.T) {
	names := []string{"20240814-000001000.parquet", "20240814-000002000.parquet", "20240814-000003000.parquet", "20240814-000004000.parquet"}
	files := map[string][]byte{}
	for i, name := range names {
		var cs []chg
		for k := range 5 {
			cs = append(cs, chg{"U", int32(i*10 + k), fmt.Sprintf("f%d-%d", i, k), 1})
		}
		files[name] = encode(t, cs...)
	}
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	plan := func(failOn string) *merge.Plan {
		var b *merge.Batch
		for _, name := range names {
			f := read(t, name, files[name])
			if b == nil {
				var err error
				if b, err = merge.NewBatch(f.Schema, merge.Options{Keys: []string{"id"}, OrderBy: byUpdatedAt}); err != nil {
					t.Fatal(err)
				}
				b.SetReload(func(ctx context.Context, name string, each func(*merge.File) error) error {
					if name == failOn {
						return fmt.Errorf("reading %s: injected", name)
					}
					return merge.ReadGroups(ctx, name, source.Classify(name), bytes.NewReader(files[name]), mem, each)
				})
			}
			if err := b.Add(f); err != nil {
				t.Fatal(err)
			}
			f.Shed()
		}
		return b.Plan()
	}
	collect := func(p *merge.Plan, stopAfter int) ([]string, error) {
		var out []string
		for rec, err := range p.Records(context.Background(), mem) {
			if err != nil {
				return out, err
			}
			for i := 0; i < int(rec.NumRows()); i++ {
				out = append(out, rec.Column(1).ValueStr(i))
			}
			rec.Release()
			if stopAfter > 0 && len(out) >= stopAfter {
				break
			}
		}
		return out, nil
	}
	var want []string
	for i := range names {
		for k := range 5 {
			want = append(want, fmt.Sprintf("f%d-%d", i, k))
		}
	}
	if got, err := collect(plan(""), 0); err != nil || !slices.Equal(got, want) {
		t.Errorf("rows %v, %v\nwant %v", got, err, want)
	}
	got, err := collect(plan(names[2]), 0)
	if err == nil || !strings.Contains(err.Error(), "injected") || !slices.Equal(got, want[:10]) {
		t.Errorf("a failing third file: rows %v, err %v; want the first two files' rows, then its error", got, err)
	}
	if got, err := collect(plan(""), 2); err != nil || len(got) != 2 {
		t.Errorf("stopped early: rows %v, %v", got, err)
	}
	mem.AssertSize(t, 0)
}
