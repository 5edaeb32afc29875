package pgcapture

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parquet-go/parquet-go"

	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

func TestMain(m *testing.M) { testservers.Main(m) }

type fixture struct {
	conn *pgx.Conn
	opts Options
}

func newFixture(t *testing.T, ddl ...string) *fixture {
	t.Helper()
	srv := testservers.PostgresOwn(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	f := &fixture{conn: conn, opts: Options{ConnString: srv.URL, Output: t.TempDir()}}
	for _, d := range ddl {
		f.exec(t, d)
	}
	return f
}

func (f *fixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := f.conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%.80s: %v", sql, err)
	}
}

func (f *fixture) run(t *testing.T) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, f.opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// fileRows reads a file's column names, Parquet types and rows (maps of
// column name to nil, int64, string, bool, float32, float64 or []byte).
func fileRows(t *testing.T, path string) (names []string, types map[string]string, rows []map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	types = map[string]string{}
	for _, fl := range f.Schema().Fields() {
		names = append(names, fl.Name())
		s := fl.Type().Kind().String()
		if lt := fl.Type().LogicalType(); lt != nil && lt.Value != nil {
			s += " " + lt.String()
		}
		types[fl.Name()] = s
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
			case v.Kind() == parquet.Boolean:
				x = v.Boolean()
			case v.Kind() == parquet.Float:
				x = v.Float()
			case v.Kind() == parquet.Double:
				x = v.Double()
			case v.Kind() == parquet.ByteArray && strings.Contains(types[names[i]], "STRING"):
				x = string(v.ByteArray())
			default:
				x = slices.Clone(v.ByteArray())
			}
			m[names[i]] = x
		}
		rows = append(rows, m)
	}
	return names, types, rows
}

func folder(t *testing.T, out, table string) []string {
	t.Helper()
	schema, name, _ := strings.Cut(table, ".")
	ents, err := os.ReadDir(filepath.Join(out, schema, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// sameValue compares floats bit for bit (NaN equals NaN), the rest deeply.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	}
	return reflect.DeepEqual(a, b)
}

func checkRows(t *testing.T, what string, got []map[string]any, want ...map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

const typesDDL = `CREATE TABLE types (
	id int PRIMARY KEY, s smallint, b bigint, n numeric(10,2), n38 numeric(38,10), n50 numeric(50,5), nu numeric,
	ok boolean, r real, d double precision, dt date, ts timestamp(6), tz timestamptz,
	tx text, vc varchar(20), ch char(3), u uuid, j json, jb jsonb, by bytea, ai int[], at text[])`

const typesRows = `INSERT INTO types VALUES
	(1, -32768, -9223372036854775808, -99999999.99, 1234567890123456789012345678.0123456789, 123456789012345678901234567890123456789012345.12345, 0.611111,
	 true, 3.4028235e38, -1.7976931348623157e308, '0001-01-01', '1969-12-31 23:59:59.999999', '2024-08-14 09:00:36.5+09',
	 '𠮷野家 😀', 'Ωmega', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": "𠮷"}', '{"b": 1, "a": [1, 2]}', '\x00ff', '{1,NULL,3}', '{"a b","𠮷"}'),
	(2, 32767, 9223372036854775807, 0.01, 0, 0, -12345678901234567890.5,
	 false, 'NaN', '-Infinity', '9999-12-31', '2024-01-01 00:00:00', '1970-01-01 00:00:00+00',
	 '', '', '', NULL, '[]', '{}', '\x', '{}', '{}'),
	(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`

var wantTypes = map[string]string{
	"Op": "BYTE_ARRAY STRING", "id": "INT32 INT(32,true)", "s": "INT32 INT(16,true)", "b": "INT64 INT(64,true)",
	"n": "FIXED_LEN_BYTE_ARRAY DECIMAL(10,2)", "n38": "FIXED_LEN_BYTE_ARRAY DECIMAL(38,10)", "n50": "BYTE_ARRAY STRING",
	"nu": "FIXED_LEN_BYTE_ARRAY DECIMAL(28,6)", "ok": "BOOLEAN", "r": "FLOAT", "d": "DOUBLE", "dt": "INT32 DATE",
	"ts": "INT64 TIMESTAMP(isAdjustedToUTC=false,unit=MICROS)", "tz": "INT64 TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)",
	"tx": "BYTE_ARRAY STRING", "vc": "BYTE_ARRAY STRING", "ch": "BYTE_ARRAY STRING", "u": "BYTE_ARRAY STRING",
	"j": "BYTE_ARRAY STRING", "jb": "BYTE_ARRAY STRING", "by": "BYTE_ARRAY", "ai": "BYTE_ARRAY STRING", "at": "BYTE_ARRAY STRING",
}

// Every mapped type: the full load (a text-format SELECT in the slot's
// snapshot) and CDC (pgoutput) write the same Parquet schema, DMS's, and
// the same values.
func TestTypesLoadAndCDCAgree(t *testing.T) {
	f := newFixture(t, typesDDL, typesRows)
	f.opts.Tables = []string{"public.types"}
	res := f.run(t)
	tr := res.Tables["public.types"]
	if !res.FullLoad || tr.LoadRows != 3 || len(tr.Files) != 1 || filepath.Base(tr.Files[0]) != "LOAD00000001.parquet" {
		t.Fatalf("full load: %+v %+v", res, tr)
	}
	names, types, load := fileRows(t, tr.Files[0])
	for _, n := range names {
		if types[n] != wantTypes[n] {
			t.Errorf("column %s: %s, want %s", n, types[n], wantTypes[n])
		}
	}
	if len(names) != len(wantTypes) {
		t.Errorf("columns %v", names)
	}
	r1 := load[0]
	for col, want := range map[string]any{"tx": "𠮷野家 😀", "ch": "ab ", "jb": `{"a": [1, 2], "b": 1}`, "ai": "{1,NULL,3}",
		"at": `{"a b",𠮷}`, "by": []byte{0, 0xff}, "r": float32(3.4028235e38), "s": int64(-32768),
		"tz": time.Date(2024, 8, 14, 0, 0, 36, 500_000_000, time.UTC).UnixMicro(),
		"ts": time.Date(1969, 12, 31, 23, 59, 59, 999_999_000, time.UTC).UnixMicro(),
		"dt": int64(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400)} {
		if !reflect.DeepEqual(r1[col], want) {
			t.Errorf("row 1 column %s: %#v, want %#v", col, r1[col], want)
		}
	}
	for c, v := range load[2] {
		if c != "Op" && c != "id" && v != nil {
			t.Errorf("row 3 column %s: %v, want null", c, v)
		}
	}

	f.exec(t, "DELETE FROM types")
	f.exec(t, typesRows)
	res = f.run(t)
	tr = res.Tables["public.types"]
	if len(tr.Files) != 1 || tr.Inserts != 3 || tr.Deletes != 3 {
		t.Fatalf("cdc: %+v", tr)
	}
	cnames, ctypes, cdc := fileRows(t, tr.Files[0])
	if !slices.Equal(names, cnames) || !reflect.DeepEqual(types, ctypes) {
		t.Fatalf("CDC schema %v %v, LOAD %v %v", cnames, ctypes, names, types)
	}
	for i := range 3 {
		ins := cdc[3+i]
		if ins["Op"] != "I" {
			t.Errorf("row %d: op %v", 3+i, ins["Op"])
		}
		for _, n := range names[1:] {
			if !sameValue(ins[n], load[i][n]) {
				t.Errorf("row %d column %s: cdc %#v, load %#v", i+1, n, ins[n], load[i][n])
			}
		}
	}
}

// As DMS writes a PostgreSQL source: under REPLICA IDENTITY DEFAULT a D
// row carries the key only (updated_at null too); under FULL the whole old
// row; a key change is one U with the new row, and with
// add-before-image-columns the old key in BI_ columns (after the table's
// columns; null in inserts); 4-byte UTF-8 in keys and values.
func TestDeletesKeyChangesAndBeforeImage(t *testing.T) {
	f := newFixture(t,
		"CREATE TABLE d (k text, n int, v text, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (k, n))",
		"CREATE TABLE full_id (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now())",
		"ALTER TABLE full_id REPLICA IDENTITY FULL",
		"INSERT INTO d VALUES ('a', 1, 'x', '2024-01-01 00:00:00+00')")
	f.opts.Tables = []string{"public.d", "public.full_id"}
	f.opts.BeforeImage = map[string]string{"public.d": ""}
	res := f.run(t)
	names, _, load := fileRows(t, res.Tables["public.d"].Files[0])
	if want := []string{"Op", "k", "n", "v", "updated_at", "BI_k", "BI_n"}; !slices.Equal(names, want) {
		t.Fatalf("columns %v, want %v", names, want)
	}
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	checkRows(t, "LOAD", load, map[string]any{"Op": "I", "k": "a", "n": int64(1), "v": "x", "updated_at": ts, "BI_k": nil, "BI_n": nil})

	f.exec(t, "INSERT INTO d VALUES ('𠮷', 2, '😀', '2024-01-02 00:00:00+00')")
	f.exec(t, "UPDATE d SET k = 'b', updated_at = '2024-01-03 00:00:00+00' WHERE k = 'a'")
	f.exec(t, "UPDATE d SET v = 'y' WHERE k = 'b'")
	f.exec(t, "DELETE FROM d WHERE k = '𠮷'")
	f.exec(t, "INSERT INTO full_id VALUES (1, 'p', '2024-01-04 00:00:00+00')")
	f.exec(t, "DELETE FROM full_id")
	res = f.run(t)
	_, _, cdc := fileRows(t, res.Tables["public.d"].Files[0])
	t2 := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC).UnixMicro()
	t3 := time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC).UnixMicro()
	checkRows(t, "CDC of d (DEFAULT)", cdc,
		map[string]any{"Op": "I", "k": "𠮷", "n": int64(2), "v": "😀", "updated_at": t2, "BI_k": nil, "BI_n": nil},
		map[string]any{"Op": "U", "k": "b", "n": int64(1), "v": "x", "updated_at": t3, "BI_k": "a", "BI_n": int64(1)},
		map[string]any{"Op": "U", "k": "b", "n": int64(1), "v": "y", "updated_at": t3, "BI_k": "b", "BI_n": int64(1)},
		map[string]any{"Op": "D", "k": "𠮷", "n": int64(2), "v": nil, "updated_at": nil, "BI_k": "𠮷", "BI_n": int64(2)},
	)
	_, _, full := fileRows(t, res.Tables["public.full_id"].Files[0])
	t4 := time.Date(2024, 1, 4, 0, 0, 0, 0, time.UTC).UnixMicro()
	checkRows(t, "CDC of full_id (FULL)", full,
		map[string]any{"Op": "I", "id": int64(1), "v": "p", "updated_at": t4},
		map[string]any{"Op": "D", "id": int64(1), "v": "p", "updated_at": t4},
	)
}

// With HandleSourceTableTruncated a TRUNCATE deletes every object of the
// table's folder, and its later CDC files start from the empty table.
func TestTruncateDeletesObjects(t *testing.T) {
	f := newFixture(t, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE TABLE o (id int PRIMARY KEY)",
		"INSERT INTO t VALUES (1)", "INSERT INTO o VALUES (1)")
	f.opts.Tables = []string{"public.t", "public.o"}
	f.opts.HandleSourceTableTruncated = true
	f.run(t)
	f.exec(t, "INSERT INTO t VALUES (2)")
	f.run(t)
	before := folder(t, f.opts.Output, "public.t")
	f.exec(t, "INSERT INTO t VALUES (3)")
	f.exec(t, "TRUNCATE t")
	f.exec(t, "INSERT INTO t VALUES (4)")
	f.exec(t, "INSERT INTO o VALUES (2)")
	res := f.run(t)
	tr := res.Tables["public.t"]
	after := folder(t, f.opts.Output, "public.t")
	if tr.Truncates != 1 || len(before) != 2 || len(tr.Deleted) != 2 || len(after) != 1 {
		t.Fatalf("truncate: %+v, before %v, after %v", tr, before, after)
	}
	_, _, rows := fileRows(t, filepath.Join(f.opts.Output, "public", "t", after[0]))
	checkRows(t, "after the truncate", rows, map[string]any{"Op": "I", "id": int64(4)})
	if got := folder(t, f.opts.Output, "public.o"); len(got) != 2 {
		t.Errorf("the other table's files: %v", got)
	}
}

// An ADD COLUMN mid-stream starts a new file with the new column; the
// changes before it keep the old schema.
func TestAddColumnMidStream(t *testing.T) {
	f := newFixture(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	f.opts.Tables = []string{"public.t"}
	f.run(t)
	f.exec(t, "INSERT INTO t VALUES (1, 'a')")
	f.exec(t, "ALTER TABLE t ADD COLUMN w numeric(5,1)")
	f.exec(t, "INSERT INTO t VALUES (2, 'b', 2.5)")
	f.exec(t, "UPDATE t SET w = 1.0 WHERE id = 1")
	res := f.run(t)
	files := res.Tables["public.t"].Files
	if len(files) != 2 {
		t.Fatalf("files %v, want one per schema", files)
	}
	n1, _, r1 := fileRows(t, files[0])
	n2, _, r2 := fileRows(t, files[1])
	if !slices.Equal(n1, []string{"Op", "id", "v"}) || !slices.Equal(n2, []string{"Op", "id", "v", "w"}) {
		t.Fatalf("columns %v then %v", n1, n2)
	}
	checkRows(t, "before the ALTER", r1, map[string]any{"Op": "I", "id": int64(1), "v": "a"})
	if len(r2) != 2 || r2[1]["Op"] != "U" || r2[1]["v"] != "a" {
		t.Errorf("after the ALTER: %v", r2)
	}
}

// A TOASTed value (8 kB, stored out of line) that an UPDATE does not
// change: under REPLICA IDENTITY FULL the U row carries it (from the old
// row); under DEFAULT pgoutput does not send it and what DMS writes is not
// known, so the run fails with ErrUnchangedTOAST and writes nothing.
func TestUnchangedTOAST(t *testing.T) {
	raw := make([]byte, 4096)
	_, _ = rand.Read(raw)
	big := hex.EncodeToString(raw) + "𠮷"
	for _, full := range []bool{true, false} {
		f := newFixture(t, "CREATE TABLE t (id int PRIMARY KEY, n int, big text)",
			"ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL")
		if full {
			f.exec(t, "ALTER TABLE t REPLICA IDENTITY FULL")
		}
		f.exec(t, "INSERT INTO t VALUES (1, 0, $1)", big)
		f.opts.Tables = []string{"public.t"}
		f.run(t)
		f.exec(t, "UPDATE t SET n = 1")
		res, err := Run(t.Context(), f.opts, nil)
		if !full {
			if !errors.Is(err, ErrUnchangedTOAST) {
				t.Fatalf("DEFAULT: %v, want ErrUnchangedTOAST", err)
			}
			if got := folder(t, f.opts.Output, "public.t"); len(got) != 1 {
				t.Errorf("DEFAULT: files %v, want the LOAD file only", got)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _, rows := fileRows(t, res.Tables["public.t"].Files[0])
		checkRows(t, "FULL", rows, map[string]any{"Op": "U", "id": int64(1), "n": int64(1), "big": big})
	}
}

// Reload writes the changes before its snapshot, deletes the table's
// objects, writes a new LOAD00000001 from the snapshot; later changes
// follow in CDC files named after every earlier one.
func TestReload(t *testing.T) {
	f := newFixture(t, "CREATE TABLE t (id int PRIMARY KEY, v text)", "CREATE TABLE o (id int PRIMARY KEY)",
		"INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	f.opts.Tables = []string{"public.t", "public.o"}
	f.run(t)
	f.exec(t, "UPDATE t SET v = 'A' WHERE id = 1")
	last := filepath.Base(f.run(t).Tables["public.t"].Files[0])
	f.exec(t, "INSERT INTO t VALUES (3, 'c')")
	f.exec(t, "DELETE FROM t WHERE id = 2")
	f.exec(t, "INSERT INTO o VALUES (1)")
	res, err := Reload(t.Context(), f.opts, nil, "public.t")
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Tables["public.t"]; !tr.Reloaded || tr.LoadRows != 2 {
		t.Fatalf("reload: %+v", tr)
	}
	if got := folder(t, f.opts.Output, "public.t"); !slices.Equal(got, []string{"LOAD00000001.parquet"}) {
		t.Fatalf("folder after the reload: %v", got)
	}
	_, _, rows := fileRows(t, filepath.Join(f.opts.Output, "public", "t", "LOAD00000001.parquet"))
	checkRows(t, "reloaded LOAD", rows,
		map[string]any{"Op": "I", "id": int64(1), "v": "A"}, map[string]any{"Op": "I", "id": int64(3), "v": "c"})
	if o := res.Tables["public.o"]; o.Inserts != 1 || len(o.Files) != 1 {
		t.Errorf("other table: %+v", o)
	}
	f.exec(t, "INSERT INTO t VALUES (4, 'd')")
	files := f.run(t).Tables["public.t"].Files
	if len(files) != 1 || filepath.Base(files[0]) <= last {
		t.Fatalf("after the reload: %v (last before %s)", files, last)
	}
	_, _, rows = fileRows(t, files[0])
	checkRows(t, "CDC after the reload", rows, map[string]any{"Op": "I", "id": int64(4), "v": "d"})
}
