package capture

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

func TestMain(m *testing.M) { testservers.Main(m) }

func TestValidate(t *testing.T) {
	good := Options{DSN: "root@tcp(127.0.0.1:3306)/", BinlogIndex: "/x/binlog.index", Output: "/out", Tables: []string{"db.t"}}
	cases := []struct {
		name string
		mod  func(*Options)
		want []string // substrings of the error; none: valid
	}{
		{"valid", func(*Options) {}, nil},
		{"everything missing", func(o *Options) { *o = Options{} },
			[]string{"no source DSN", "no binlog index", "no output folder", "no tables"}},
		{"bad DSN", func(o *Options) { o.DSN = "root@tcp(127.0.0.1:3306" }, []string{"source DSN"}},
		{"bad table names", func(o *Options) { o.Tables = []string{"t", "db.t", "db.t", "a.b.c"} },
			[]string{`"t" is not schema.table`, `"db.t" is named twice`, `"a.b.c" is not`}},
		{"negative sizes", func(o *Options) { o.MaxFileSize, o.MaxBatchInterval = -1, -time.Second },
			[]string{"negative MaxFileSize", "negative MaxBatchInterval"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			o.Tables = append([]string(nil), good.Tables...)
			tc.mod(&o)
			err := o.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// typesDDL has a column of every type capture maps; typeRows are values at
// the edges of each, inserted as they are written.
const typesDDL = `CREATE TABLE types (
	id INT PRIMARY KEY,
	ti TINYINT, tb TINYINT(1), tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
	mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
	f FLOAT, d DOUBLE, d10 DECIMAL(10,2), d38 DECIMAL(38,10), d50 DECIMAL(50,5),
	dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL, tm TIME, tm3 TIME(3), yr YEAR,
	c CHAR(3), vc VARCHAR(300), tx TEXT, js JSON, en ENUM('x-small','𠮷',''), st SET('a','b','c'),
	bn BINARY(4), vb VARBINARY(10), bl BLOB, lb LONGBLOB, b1 BIT(1), b9 BIT(9),
	l1 VARCHAR(10) CHARACTER SET latin1
) DEFAULT CHARSET=utf8mb4`

var typeRows = []string{
	`(1, -128, 1, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
	  3.402823466e38, -1.7976931348623157e308, -99999999.99, -9999999999999999999999999999.9999999999, 123456789012345678901234567890123456789012345.12345,
	  '1000-01-01', '1000-01-01 00:00:00', '1969-12-31 23:59:59.999999', '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999',
	  '-838:59:59', '-00:00:00.001', 1901,
	  '𠮷', '😀🎉', 'Ωmega ß', '{"k":"𠮷"}', '𠮷', 'a,c', 'x', X'00FF', X'C328', X'', 1, b'100000001', 'é')`,
	`(2, 127, 0, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
	  0.1, 0.1, 0.01, 0.0000000001, 0, '9999-12-31', '9999-12-31 23:59:59', '2024-01-01 00:00:00.000000',
	  '2024-08-14 00:00:36', '2024-08-14 00:00:36.000000', '838:59:59', '12:34:56.789', 2155,
	  '', '', '', '[]', '', '', '', X'01020304', '', X'00', 0, 0, '')`,
	`(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  '0000-00-00', '0000-00-00 00:00:00', NULL, '0000-00-00 00:00:00', NULL, NULL, NULL, 0,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
}

// Type names of the Parquet columns capture writes (docs/semantics.md, "Type mapping").
var wantParquet = map[string]string{
	"Op": "BYTE_ARRAY STRING", "id": "INT32 INT(32,true)",
	"ti": "INT32 INT(8,true)", "tb": "INT32 INT(8,true)", "tu": "INT32 INT(8,false)",
	"si": "INT32 INT(16,true)", "su": "INT32 INT(16,false)", "mi": "INT32 INT(32,true)", "mu": "INT32 INT(32,false)",
	"i": "INT32 INT(32,true)", "iu": "INT32 INT(32,false)", "bi": "INT64 INT(64,true)", "bu": "INT64 INT(64,false)",
	"f": "FLOAT", "d": "DOUBLE", "d10": "FIXED_LEN_BYTE_ARRAY DECIMAL(10,2)", "d38": "FIXED_LEN_BYTE_ARRAY DECIMAL(38,10)",
	"d50": "BYTE_ARRAY STRING", "dt": "INT32 DATE",
	"dtm":  "INT64 TIMESTAMP(isAdjustedToUTC=false,unit=MICROS)",
	"dtm6": "INT64 TIMESTAMP(isAdjustedToUTC=false,unit=MICROS)",
	"ts":   "INT64 TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "ts6": "INT64 TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)",
	"tm": "BYTE_ARRAY STRING", "tm3": "BYTE_ARRAY STRING", "yr": "INT32 INT(32,true)",
	"c": "BYTE_ARRAY STRING", "vc": "BYTE_ARRAY STRING", "tx": "BYTE_ARRAY STRING", "js": "BYTE_ARRAY STRING",
	"en": "BYTE_ARRAY STRING", "st": "BYTE_ARRAY STRING",
	"bn": "BYTE_ARRAY", "vb": "BYTE_ARRAY", "bl": "BYTE_ARRAY", "lb": "BYTE_ARRAY", "b1": "BOOLEAN", "b9": "BOOLEAN",
	"l1": "BYTE_ARRAY STRING",
}

// parquetFile is a file read back: column types and rows rendered as text.
type parquetFile struct {
	types map[string]string
	names []string
	rows  [][]string
}

func readParquet(t *testing.T, path string) parquetFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pf := parquetFile{types: map[string]string{}}
	for _, fl := range f.Schema().Fields() {
		s := fl.Type().Kind().String()
		if lt := fl.Type().LogicalType(); lt != nil && lt.Value != nil {
			s += " " + lt.String()
		}
		pf.types[fl.Name()] = s
		pf.names = append(pf.names, fl.Name())
	}
	r := parquet.NewGenericReader[any](f)
	rows := make([]parquet.Row, f.NumRows())
	n, _ := r.ReadRows(rows)
	for _, row := range rows[:n] {
		var cells []string
		for _, v := range row {
			cells = append(cells, v.GoString())
		}
		pf.rows = append(pf.rows, cells)
	}
	return pf
}

type fixture struct {
	srv  *testservers.MariaDBServer
	db   string
	exec func(string, ...any)
	opts Options
}

func newFixture(t *testing.T, ddl string) *fixture {
	srv := testservers.MariaDB(t)
	name := srv.NewDatabase(t)
	db := srv.Open(t, name)
	ctx := t.Context()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	exec := func(stmt string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, stmt, args...); err != nil {
			t.Fatalf("%.80s: %v", stmt, err)
		}
	}
	exec("SET time_zone = '+00:00', sql_mode = 'STRICT_TRANS_TABLES'")
	exec(ddl)
	return &fixture{srv: srv, db: name, exec: exec, opts: Options{DSN: srv.DSN, BinlogIndex: srv.BinlogIndex,
		Output: t.TempDir(), Tables: []string{name + ".types"}}}
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

// The full load (read with SQL) and CDC (decoded from the binlog) write
// every type with the same Parquet schema and the same values, and the
// schema is DMS's.
func TestFullLoadAndCDCAgree(t *testing.T) {
	f := newFixture(t, typesDDL)
	f.exec("INSERT INTO types VALUES " + strings.Join(typeRows, ","))
	res := f.run(t)
	tr := res.Tables[f.opts.Tables[0]]
	if !res.FullLoad || tr.LoadRows != len(typeRows) || len(tr.Files) != 1 || filepath.Base(tr.Files[0]) != "LOAD00000001.parquet" {
		t.Fatalf("full load: %+v %+v", res, tr)
	}
	load := readParquet(t, tr.Files[0])

	// The same rows again through the binlog: delete, insert, update.
	f.exec("DELETE FROM types")
	f.exec("INSERT INTO types VALUES " + strings.Join(typeRows, ","))
	f.exec("UPDATE types SET id = id + 10")
	f.exec("UPDATE types SET id = id - 10")
	res = f.run(t)
	tr = res.Tables[f.opts.Tables[0]]
	if res.FullLoad || len(tr.Files) != 1 || tr.Inserts != len(typeRows) || tr.Deletes != len(typeRows) || tr.Updates != 2*len(typeRows) {
		t.Fatalf("cdc: %+v %+v", res, tr)
	}
	cdc := readParquet(t, tr.Files[0])
	if fmt.Sprint(load.names) != fmt.Sprint(cdc.names) {
		t.Fatalf("columns: load %v, cdc %v", load.names, cdc.names)
	}
	for _, n := range load.names {
		if load.types[n] != wantParquet[n] || cdc.types[n] != wantParquet[n] {
			t.Errorf("column %s: load %s, cdc %s, want %s", n, load.types[n], cdc.types[n], wantParquet[n])
		}
	}
	if len(wantParquet) != len(load.names) {
		t.Errorf("%d columns, want %d", len(load.names), len(wantParquet))
	}
	// CDC: D×3 (the delete), I×3, then one U per key change, with the
	// after image (id+10), and U×3 back: DMS writes a primary key update as
	// one U row with the new key.
	if len(cdc.rows) != 4*len(typeRows) {
		t.Fatalf("%d CDC rows", len(cdc.rows))
	}
	var ops string
	for _, r := range cdc.rows {
		ops += r[0][len(`parquet.ByteArrayValue("`):][:1]
	}
	if ops != "DDDIIIUUUUUU" {
		t.Errorf("CDC ops %s, want the delete, the insert, then one U for each key change", ops)
	}
	for i := range typeRows {
		moved := cdc.rows[2*len(typeRows)+i]
		if want := fmt.Sprintf("parquet.Int32Value(%d).Level(0,1,1)", i+11); moved[1] != want {
			t.Errorf("row %d: the key change's U has id %s, want the new key %s", i+1, moved[1], want)
		}
		for _, img := range []struct {
			name string
			row  []string
		}{{"delete image", cdc.rows[i]}, {"insert", cdc.rows[len(typeRows)+i]}, {"last update", cdc.rows[3*len(typeRows)+i]}} {
			for c := 1; c < len(load.names); c++ { // past Op
				if img.row[c] != load.rows[i][c] {
					t.Errorf("row %d %s, column %s: cdc %s, load %s", i+1, img.name, load.names[c], img.row[c], load.rows[i][c])
				}
			}
		}
	}

	// A run with nothing new writes nothing and keeps the position.
	before := res.To
	res = f.run(t)
	if tr := res.Tables[f.opts.Tables[0]]; len(tr.Files) != 0 || res.From != before {
		t.Errorf("idle run: %+v from %s (want %s)", tr, res.From, before)
	}
}

// CDC files are cut at an ALTER TABLE (a new schema), by size and by the
// batch interval of commit time; names increase across runs.
func TestFilesAreCut(t *testing.T) {
	f := newFixture(t, "CREATE TABLE types (id INT PRIMARY KEY, v VARCHAR(100))")
	f.opts.MaxFileSize = 2000
	f.run(t)
	for i := range 60 {
		f.exec("INSERT INTO types VALUES (?, ?)", i, strings.Repeat("x", 90))
	}
	f.exec("ALTER TABLE types ADD COLUMN w INT")
	f.exec("INSERT INTO types VALUES (100, 'after', 7)")
	// A commit timestamp far from the others: the server's SET timestamp.
	f.exec("SET timestamp = UNIX_TIMESTAMP() + 3600")
	f.exec("INSERT INTO types VALUES (101, 'later', 8)")
	f.exec("SET timestamp = DEFAULT")
	res := f.run(t)
	files := res.Tables[f.opts.Tables[0]].Files
	if len(files) < 5 {
		t.Fatalf("%d files, want size cuts, the ALTER and the interval", len(files))
	}
	names := make([]string, len(files))
	for i, p := range files {
		names[i] = filepath.Base(p)
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("names not in order: %v", names)
	}
	last := readParquet(t, files[len(files)-1])
	prev := readParquet(t, files[len(files)-2])
	if len(last.rows) != 1 || len(prev.rows) != 1 || len(last.names) != 4 {
		t.Errorf("last files: %v / %v, want one row each, with column w", prev.rows, last.rows)
	}
	total := 0
	for _, p := range files {
		total += len(readParquet(t, p).rows)
	}
	if total != 62 {
		t.Errorf("%d rows in all, want 62", total)
	}
	st, err := LoadState(f.opts.Output)
	if err != nil || st.LastFile != names[len(names)-1] {
		t.Errorf("state %+v, %v", st, err)
	}
	// The next run's names come after.
	f.exec("INSERT INTO types VALUES (200, 'next', 9)")
	f.opts.Now = func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }
	res = f.run(t)
	if n := filepath.Base(res.Tables[f.opts.Tables[0]].Files[0]); n <= names[len(names)-1] {
		t.Errorf("next run's file %s is not after %s", n, names[len(names)-1])
	}
}
