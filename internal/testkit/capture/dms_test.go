package capture

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// fileRows reads a file's rows as maps of column name to value: nil, int64,
// string (BYTE_ARRAY), bool, float64 or []byte (FIXED_LEN_BYTE_ARRAY).
func fileRows(t *testing.T, path string) (names []string, rows []map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, fl := range f.Schema().Fields() {
		names = append(names, fl.Name())
	}
	r := parquet.NewGenericReader[any](f)
	prows := make([]parquet.Row, f.NumRows())
	n, _ := r.ReadRows(prows)
	for _, row := range prows[:n] {
		m := map[string]any{}
		for i, v := range row {
			var x any
			switch {
			case v.IsNull():
			case v.Kind() == parquet.Int32:
				x = int64(v.Int32())
			case v.Kind() == parquet.Int64:
				x = v.Int64()
			case v.Kind() == parquet.ByteArray:
				x = string(v.ByteArray())
			case v.Kind() == parquet.Boolean:
				x = v.Boolean()
			case v.Kind() == parquet.Double:
				x = v.Double()
			default:
				x = slices.Clone(v.ByteArray())
			}
			m[names[i]] = x
		}
		rows = append(rows, m)
	}
	return names, rows
}

// folder lists the base names of the Parquet files in table's folder.
func folder(t *testing.T, out, table string) []string {
	t.Helper()
	schema, name, _ := strings.Cut(table, ".")
	ents, err := os.ReadDir(filepath.Join(out, schema, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".parquet") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

func checkRows(t *testing.T, what string, got []map[string]any, want ...map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// A primary key update is one U row with the after image; with
// add-before-image-columns (pk-only) every CDC row carries BI_<key column>
// after the table's columns, in table order: the key before the change
// (null in inserts and in the full load).
func TestBeforeImageAndKeyUpdate(t *testing.T) {
	f := newFixture(t, "CREATE TABLE types (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (b, a))")
	f.opts.BeforeImage = map[string]string{f.opts.Tables[0]: ""}
	f.exec("INSERT INTO types VALUES (1, 'x', 10)")
	res := f.run(t)
	tr := res.Tables[f.opts.Tables[0]]
	names, load := fileRows(t, tr.Files[0])
	if want := []string{"Op", "a", "b", "v", "BI_a", "BI_b"}; !slices.Equal(names, want) {
		t.Fatalf("LOAD columns %v, want %v", names, want)
	}
	checkRows(t, "LOAD", load, map[string]any{"Op": "I", "a": int64(1), "b": "x", "v": int64(10), "BI_a": nil, "BI_b": nil})

	f.exec("INSERT INTO types VALUES (2, 'y', 20)")
	f.exec("UPDATE types SET a = 3 WHERE a = 2")
	f.exec("UPDATE types SET v = 21 WHERE a = 3")
	f.exec("UPDATE types SET b = '𠮷', v = 22 WHERE a = 3")
	f.exec("DELETE FROM types WHERE a = 1")
	res = f.run(t)
	tr = res.Tables[f.opts.Tables[0]]
	if len(tr.Files) != 1 || tr.Inserts != 1 || tr.Updates != 3 || tr.Deletes != 1 {
		t.Fatalf("cdc: %+v", tr)
	}
	names, cdc := fileRows(t, tr.Files[0])
	if want := []string{"Op", "a", "b", "v", "BI_a", "BI_b"}; !slices.Equal(names, want) {
		t.Fatalf("CDC columns %v, want %v", names, want)
	}
	checkRows(t, "CDC", cdc,
		map[string]any{"Op": "I", "a": int64(2), "b": "y", "v": int64(20), "BI_a": nil, "BI_b": nil},
		map[string]any{"Op": "U", "a": int64(3), "b": "y", "v": int64(20), "BI_a": int64(2), "BI_b": "y"},
		map[string]any{"Op": "U", "a": int64(3), "b": "y", "v": int64(21), "BI_a": int64(3), "BI_b": "y"},
		map[string]any{"Op": "U", "a": int64(3), "b": "𠮷", "v": int64(22), "BI_a": int64(3), "BI_b": "y"},
		map[string]any{"Op": "D", "a": int64(1), "b": "x", "v": int64(10), "BI_a": int64(1), "BI_b": "x"},
	)

	// A custom prefix; a table without a primary key is refused.
	f.opts.BeforeImage[f.opts.Tables[0]] = "OLD_"
	f.exec("UPDATE types SET a = 4")
	res = f.run(t)
	if names, _ := fileRows(t, res.Tables[f.opts.Tables[0]].Files[0]); !slices.Contains(names, "OLD_a") {
		t.Errorf("columns %v, want OLD_a", names)
	}
}

// With HandleSourceTableTruncated a TRUNCATE deletes every object of the
// table's folder (LOAD and CDC files, earlier runs' too); the table's
// later CDC files start from the empty table; other tables keep theirs.
// Without it the TRUNCATE is not replicated.
func TestTruncateDeletesObjects(t *testing.T) {
	for _, handle := range []bool{true, false} {
		t.Run(fmt.Sprintf("HandleSourceTableTruncated=%v", handle), func(t *testing.T) {
			f := newFixture(t, "CREATE TABLE types (id INT PRIMARY KEY, v VARCHAR(10))")
			f.exec("CREATE TABLE other (id INT PRIMARY KEY)")
			tbl, other := f.opts.Tables[0], f.db+".other"
			f.opts.Tables = append(f.opts.Tables, other)
			f.opts.HandleSourceTableTruncated = handle
			f.exec("INSERT INTO types VALUES (1, 'a'), (2, 'b')")
			f.exec("INSERT INTO other VALUES (1)")
			f.run(t)
			f.exec("INSERT INTO types VALUES (3, 'c')")
			f.exec("INSERT INTO other VALUES (2)")
			f.run(t)
			before := folder(t, f.opts.Output, tbl)
			if len(before) != 2 {
				t.Fatalf("files before the truncate: %v", before)
			}
			f.exec("INSERT INTO types VALUES (4, 'd')")
			f.exec("TRUNCATE TABLE types")
			f.exec("INSERT INTO types VALUES (5, 'e')")
			f.exec("INSERT INTO other VALUES (3)")
			res := f.run(t)
			tr := res.Tables[tbl]
			if tr.Truncates != 1 {
				t.Errorf("truncates %d, want 1", tr.Truncates)
			}
			after := folder(t, f.opts.Output, tbl)
			if len(folder(t, f.opts.Output, other)) != 3 {
				t.Errorf("the other table's files: %v, want its LOAD and two CDC files", folder(t, f.opts.Output, other))
			}
			if !handle {
				if len(tr.Deleted) != 0 || len(after) != 3 {
					t.Errorf("without HandleSourceTableTruncated: deleted %v, folder %v", tr.Deleted, after)
				}
				return
			}
			if len(tr.Deleted) != 2 || len(after) != 1 {
				t.Fatalf("deleted %v, folder %v; want the 2 earlier files deleted and one new CDC file", tr.Deleted, after)
			}
			for _, d := range tr.Deleted {
				if !slices.Contains(before, filepath.Base(d)) {
					t.Errorf("deleted %s, not a file from before the truncate", d)
				}
			}
			_, rows := fileRows(t, filepath.Join(filepath.Dir(tr.Deleted[0]), after[0]))
			checkRows(t, "CDC after the truncate", rows, map[string]any{"Op": "I", "id": int64(5), "v": "e"})
		})
	}
}

// Reload deletes the table's objects and writes a new full load, with the
// same LOAD names, from a snapshot that holds every change before it; the
// table's later changes come in CDC files after it, named after every
// earlier file; other tables go on as in a Run.
func TestReload(t *testing.T) {
	f := newFixture(t, "CREATE TABLE types (id INT PRIMARY KEY, v VARCHAR(10))")
	f.exec("CREATE TABLE other (id INT PRIMARY KEY)")
	tbl, other := f.opts.Tables[0], f.db+".other"
	f.opts.Tables = append(f.opts.Tables, other)
	if _, err := Reload(t.Context(), f.opts, nil, tbl); err == nil || !strings.Contains(err.Error(), "Run first") {
		t.Fatalf("Reload before any Run: %v", err)
	}
	f.exec("INSERT INTO types VALUES (1, 'a'), (2, 'b')")
	f.run(t)
	f.exec("UPDATE types SET v = 'A' WHERE id = 1")
	res := f.run(t)
	lastCDC := filepath.Base(res.Tables[tbl].Files[0])
	f.exec("INSERT INTO types VALUES (3, 'c')")
	f.exec("DELETE FROM types WHERE id = 2")
	f.exec("INSERT INTO other VALUES (1)")
	res, err := Reload(t.Context(), f.opts, nil, tbl)
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Tables[tbl]
	if !tr.Reloaded || tr.LoadRows != 2 {
		t.Fatalf("reload: %+v", tr)
	}
	if got := folder(t, f.opts.Output, tbl); !slices.Equal(got, []string{"LOAD00000001.parquet"}) {
		t.Fatalf("folder after the reload: %v", got)
	}
	_, rows := fileRows(t, filepath.Join(f.opts.Output, f.db, "types", "LOAD00000001.parquet"))
	checkRows(t, "reloaded LOAD", rows,
		map[string]any{"Op": "I", "id": int64(1), "v": "A"},
		map[string]any{"Op": "I", "id": int64(3), "v": "c"})
	if got := res.Tables[other]; len(got.Files) != 1 || got.Inserts != 1 || got.Reloaded {
		t.Errorf("other table during the reload: %+v", got)
	}
	st, err := LoadState(f.opts.Output)
	if err != nil || st.LoadFiles[tbl] != 1 {
		t.Errorf("state %+v, %v", st, err)
	}

	f.exec("INSERT INTO types VALUES (4, 'd')")
	res = f.run(t)
	files := res.Tables[tbl].Files
	if len(files) != 1 || filepath.Base(files[0]) <= lastCDC {
		t.Fatalf("CDC after the reload: %v (last before: %s)", files, lastCDC)
	}
	_, rows = fileRows(t, files[0])
	checkRows(t, "CDC after the reload", rows, map[string]any{"Op": "I", "id": int64(4), "v": "d"})
}

// Files have DMS's Parquet shape: 10,000-row row groups, GZIP, data page
// v1, dictionary pages, column statistics.
func TestParquetShape(t *testing.T) {
	f := newFixture(t, "CREATE TABLE types (id INT PRIMARY KEY, v VARCHAR(10))")
	f.exec("INSERT INTO types SELECT seq, IF(seq % 2 = 0, 'even', 'odd') FROM seq_1_to_25000")
	res := f.run(t)
	files := res.Tables[f.opts.Tables[0]].Files
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	md := pf.Metadata()
	var groups []int64
	for _, rg := range md.RowGroups {
		groups = append(groups, rg.NumRows)
		for _, cc := range rg.Columns {
			m := cc.MetaData
			if m.Codec != format.Gzip {
				t.Errorf("column %v: codec %v, want GZIP", m.PathInSchema, m.Codec)
			}
			if m.DictionaryPageOffset == 0 {
				t.Errorf("column %v: no dictionary page", m.PathInSchema)
			}
			if len(m.Statistics.MinValue) == 0 || len(m.Statistics.MaxValue) == 0 {
				t.Errorf("column %v: no min/max statistics", m.PathInSchema)
			}
		}
	}
	if !slices.Equal(groups, []int64{10000, 10000, 5000}) {
		t.Errorf("row groups %v, want 10000, 10000, 5000", groups)
	}
}
