package binlog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// session is one connection of a test database, its time zone UTC so
// TIMESTAMP literals are instants.
type session struct {
	t    *testing.T
	srv  *testservers.MariaDBServer
	conn *sql.Conn
	ctx  context.Context
	db   string
}

func newSession(t *testing.T) *session {
	t.Helper()
	srv := testservers.MariaDB(t)
	name := srv.NewDatabase(t)
	db := srv.Open(t, name)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s := &session{t: t, srv: srv, conn: conn, ctx: ctx, db: name}
	s.exec("SET time_zone = '+00:00'")
	return s
}

func (s *session) exec(stmt string, args ...any) {
	s.t.Helper()
	if _, err := s.conn.ExecContext(s.ctx, stmt, args...); err != nil {
		s.t.Fatalf("%s: %v", stmt, err)
	}
}

func (s *session) position() Position {
	s.t.Helper()
	var file string
	var pos uint32
	rows, err := s.conn.QueryContext(s.ctx, "SHOW MASTER STATUS")
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	vals[0], vals[1] = &file, &pos
	for i := 2; i < len(vals); i++ {
		vals[i] = new(sql.RawBytes)
	}
	if !rows.Next() {
		s.t.Fatal("SHOW MASTER STATUS: no row (binary log off?)")
	}
	if err := rows.Scan(vals...); err != nil {
		s.t.Fatal(err)
	}
	return Position{File: file, Offset: pos}
}

// events reads every event from..until of the server's binlog.
func (s *session) events(from, until Position) []*Event {
	s.t.Helper()
	r, err := Open(Options{Index: s.srv.BinlogIndex, From: from, Until: until})
	if err != nil {
		s.t.Fatal(err)
	}
	defer r.Close()
	var evs []*Event
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return evs
		}
		if err != nil {
			s.t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

// rowsOf returns the rows events of table in evs.
func (s *session) rowsOf(evs []*Event, table string) []*Rows {
	var out []*Rows
	for _, ev := range evs {
		if r, ok := ev.Body.(*Rows); ok && r.Table.Schema == s.db && r.Table.Table == table {
			out = append(out, r)
		}
	}
	return out
}

func utc(y int, mo time.Month, d, h, mi, sec, us int) time.Time {
	return time.Date(y, mo, d, h, mi, sec, us*1000, time.UTC)
}

func dt(y, mo, d, h, mi, sec, us int) DateTime {
	return DateTime{Date: Date{y, mo, d}, Hour: h, Minute: mi, Second: sec, Microsecond: us}
}

const dec38 = "9999999999999999999999999999.9999999999"

var blob70k = func() []byte {
	b := make([]byte, 70000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

var enum260 = func() string {
	var m []string
	for i := range 260 {
		m = append(m, fmt.Sprintf("'m%d'", i))
	}
	return strings.Join(m, ",")
}()

// typeCases: a column definition, values inserted (SQL literals, or
// arguments for ?) and the Go values the decoder must give.
var typeCases = []struct {
	name     string
	def      string
	in       []string // SQL expressions; "?" takes the next arg
	args     []any
	want     []any
	unsigned bool
	text     bool // a text column (a non-binary collation)
}{
	{name: "tinyint", def: "TINYINT", in: []string{"-128", "127", "0", "NULL"}, want: []any{int64(-128), int64(127), int64(0), nil}},
	{name: "tinyint(1)", def: "TINYINT(1)", in: []string{"1", "0", "-1"}, want: []any{int64(1), int64(0), int64(-1)}},
	{name: "tinyint unsigned", def: "TINYINT UNSIGNED", unsigned: true, in: []string{"0", "255", "128"}, want: []any{uint64(0), uint64(255), uint64(128)}},
	{name: "smallint", def: "SMALLINT", in: []string{"-32768", "32767"}, want: []any{int64(-32768), int64(32767)}},
	{name: "smallint unsigned", def: "SMALLINT UNSIGNED", unsigned: true, in: []string{"65535", "0"}, want: []any{uint64(65535), uint64(0)}},
	{name: "mediumint", def: "MEDIUMINT", in: []string{"-8388608", "8388607", "-1"}, want: []any{int64(-8388608), int64(8388607), int64(-1)}},
	{name: "mediumint unsigned", def: "MEDIUMINT UNSIGNED", unsigned: true, in: []string{"16777215"}, want: []any{uint64(16777215)}},
	{name: "int", def: "INT", in: []string{"-2147483648", "2147483647"}, want: []any{int64(math.MinInt32), int64(math.MaxInt32)}},
	{name: "int unsigned", def: "INT UNSIGNED", unsigned: true, in: []string{"4294967295", "2147483648"}, want: []any{uint64(math.MaxUint32), uint64(1 << 31)}},
	{name: "bigint", def: "BIGINT", in: []string{"-9223372036854775808", "9223372036854775807", "NULL"}, want: []any{int64(math.MinInt64), int64(math.MaxInt64), nil}},
	{name: "bigint unsigned", def: "BIGINT UNSIGNED", unsigned: true, in: []string{"18446744073709551615", "9223372036854775808", "0"},
		want: []any{uint64(math.MaxUint64), uint64(1 << 63), uint64(0)}},
	{name: "float", def: "FLOAT", in: []string{"-1.5", "0.1", "3.402823466e38", "1.175494351e-38", "0", "NULL"},
		want: []any{float32(-1.5), float32(0.1), float32(math.MaxFloat32), float32(1.175494351e-38), float32(0), nil}},
	{name: "double", def: "DOUBLE", in: []string{"0.1", "-1.7976931348623157e308", "2.2250738585072014e-308", "-0"},
		want: []any{0.1, -math.MaxFloat64, 2.2250738585072014e-308, 0.0}},
	{name: "decimal(10,2)", def: "DECIMAL(10,2)", in: []string{"99999999.99", "-99999999.99", "0.01", "-0.01", "0", "-12.5"},
		want: []any{"99999999.99", "-99999999.99", "0.01", "-0.01", "0.00", "-12.50"}},
	{name: "decimal(38,10)", def: "DECIMAL(38,10)",
		in:   []string{dec38, "-" + dec38, "0.0000000001", "-0.0000000001", "0", "1234567890123456789012345678.0123456789", "-1"},
		want: []any{dec38, "-" + dec38, "0.0000000001", "-0.0000000001", "0.0000000000", "1234567890123456789012345678.0123456789", "-1.0000000000"}},
	{name: "decimal(65,30)", def: "DECIMAL(65,30)", in: []string{"-" + strings.Repeat("9", 35) + "." + strings.Repeat("9", 30), "0.000000000000000000000000000001"},
		want: []any{"-" + strings.Repeat("9", 35) + "." + strings.Repeat("9", 30), "0.000000000000000000000000000001"}},
	{name: "decimal(5,0)", def: "DECIMAL(5,0)", in: []string{"12345", "-1", "0"}, want: []any{"12345", "-1", "0"}},
	{name: "decimal(4,4)", def: "DECIMAL(4,4)", in: []string{"0.9999", "-0.0001"}, want: []any{"0.9999", "-0.0001"}},
	{name: "date", def: "DATE", in: []string{"'1000-01-01'", "'9999-12-31'", "'2024-02-29'", "'1969-12-31'", "'0000-00-00'", "NULL"},
		want: []any{Date{1000, 1, 1}, Date{9999, 12, 31}, Date{2024, 2, 29}, Date{1969, 12, 31}, Date{}, nil}},
	{name: "datetime", def: "DATETIME", in: []string{"'1000-01-01 00:00:00'", "'9999-12-31 23:59:59'", "'0000-00-00 00:00:00'"},
		want: []any{dt(1000, 1, 1, 0, 0, 0, 0), dt(9999, 12, 31, 23, 59, 59, 0), dt(0, 0, 0, 0, 0, 0, 0)}},
	{name: "datetime(6)", def: "DATETIME(6)", in: []string{"'2024-08-14 00:00:36.123456'", "'1969-12-31 23:59:59.999999'", "'2024-01-01 00:00:00.000000'", "'9999-12-31 23:59:59.999999'"},
		want: []any{dt(2024, 8, 14, 0, 0, 36, 123456), dt(1969, 12, 31, 23, 59, 59, 999999), dt(2024, 1, 1, 0, 0, 0, 0), dt(9999, 12, 31, 23, 59, 59, 999999)}},
	{name: "datetime(3)", def: "DATETIME(3)", in: []string{"'2024-08-14 00:00:36.123'", "'2024-08-14 00:00:36.999'"},
		want: []any{dt(2024, 8, 14, 0, 0, 36, 123000), dt(2024, 8, 14, 0, 0, 36, 999000)}},
	{name: "datetime(1)", def: "DATETIME(1)", in: []string{"'2024-08-14 00:00:36.5'"}, want: []any{dt(2024, 8, 14, 0, 0, 36, 500000)}},
	{name: "timestamp", def: "TIMESTAMP NULL", in: []string{"'1970-01-01 00:00:01'", "'2038-01-19 03:14:07'", "NULL"},
		want: []any{utc(1970, 1, 1, 0, 0, 1, 0), utc(2038, 1, 19, 3, 14, 7, 0), nil}},
	{name: "timestamp(6)", def: "TIMESTAMP(6) NULL", in: []string{"'2038-01-19 03:14:07.999999'", "'2024-08-14 00:00:36.000001'", "'2024-08-14 00:00:36.000000'"},
		want: []any{utc(2038, 1, 19, 3, 14, 7, 999999), utc(2024, 8, 14, 0, 0, 36, 1), utc(2024, 8, 14, 0, 0, 36, 0)}},
	{name: "timestamp(2)", def: "TIMESTAMP(2) NULL", in: []string{"'2024-08-14 00:00:36.99'"}, want: []any{utc(2024, 8, 14, 0, 0, 36, 990000)}},
	{name: "time", def: "TIME", in: []string{"'838:59:59'", "'-838:59:59'", "'00:00:00'", "'-00:00:01'"},
		want: []any{838*time.Hour + 59*time.Minute + 59*time.Second, -(838*time.Hour + 59*time.Minute + 59*time.Second), time.Duration(0), -time.Second}},
	{name: "time(6)", def: "TIME(6)", in: []string{"'-838:59:59.000000'", "'12:34:56.789012'", "'-00:00:00.000001'", "'-01:00:00.5'"},
		want: []any{-(838*time.Hour + 59*time.Minute + 59*time.Second), 12*time.Hour + 34*time.Minute + 56*time.Second + 789012*time.Microsecond,
			-time.Microsecond, -(time.Hour + 500*time.Millisecond)}},
	{name: "time(2)", def: "TIME(2)", in: []string{"'-01:00:00.50'", "'00:00:00.01'", "'-00:00:00.99'"},
		want: []any{-(time.Hour + 500*time.Millisecond), 10 * time.Millisecond, -990 * time.Millisecond}},
	{name: "time(4)", def: "TIME(4)", in: []string{"'-00:00:01.0001'", "'23:59:59.9999'"},
		want: []any{-(time.Second + 100*time.Microsecond), 23*time.Hour + 59*time.Minute + 59*time.Second + 999900*time.Microsecond}},
	{name: "year", def: "YEAR", in: []string{"1901", "2155", "0"}, want: []any{int64(1901), int64(2155), int64(0)}},
	{name: "char utf8mb4", def: "CHAR(3) CHARACTER SET utf8mb4", text: true, in: []string{"'𠮷'", "'ab'", "''", "'a  '"},
		want: []any{"𠮷", "ab", "", "a"}}, // CHAR drops trailing spaces, as SELECT shows it
	{name: "char(100) utf8mb4", def: "CHAR(100) CHARACTER SET utf8mb4", text: true, in: []string{"?"}, args: []any{strings.Repeat("😀", 100)},
		want: []any{strings.Repeat("😀", 100)}},
	{name: "varchar utf8mb4", def: "VARCHAR(10) CHARACTER SET utf8mb4", text: true, in: []string{"'😀🎉'", "''", "'a\tb\\nc'", "NULL"},
		want: []any{"😀🎉", "", "a\tb\nc", nil}},
	{name: "varchar(300) utf8mb4", def: "VARCHAR(300) CHARACTER SET utf8mb4", text: true, in: []string{"?"}, args: []any{strings.Repeat("𠮷", 300)},
		want: []any{strings.Repeat("𠮷", 300)}},
	{name: "binary", def: "BINARY(4)", in: []string{"'x'", "X'00FF'", "''", "X'01020304'"},
		want: []any{[]byte("x\x00\x00\x00"), []byte{0, 0xff, 0, 0}, []byte{0, 0, 0, 0}, []byte{1, 2, 3, 4}}},
	{name: "varbinary", def: "VARBINARY(10)", in: []string{"X'00FF80'", "''", "NULL"}, want: []any{[]byte{0, 0xff, 0x80}, []byte{}, nil}},
	{name: "tinytext", def: "TINYTEXT CHARACTER SET utf8mb4", text: true, in: []string{"'𠮷野家'", "''"}, want: []any{"𠮷野家", ""}},
	{name: "text", def: "TEXT CHARACTER SET utf8mb4", text: true, in: []string{"?"}, args: []any{strings.Repeat("𠮷😀a", 5000)},
		want: []any{strings.Repeat("𠮷😀a", 5000)}},
	{name: "mediumtext", def: "MEDIUMTEXT CHARACTER SET utf8mb4", text: true, in: []string{"'Ωmega'"}, want: []any{"Ωmega"}},
	{name: "longtext", def: "LONGTEXT CHARACTER SET utf8mb4", text: true, in: []string{"'x'", "''"}, want: []any{"x", ""}},
	{name: "json", def: "JSON", text: true, in: []string{`'{"name":"𠮷","e":"😀"}'`, "'[]'", "'null'"},
		want: []any{`{"name":"𠮷","e":"😀"}`, "[]", "null"}},
	{name: "tinyblob", def: "TINYBLOB", in: []string{"X'00FF'", "''"}, want: []any{[]byte{0, 0xff}, []byte{}}},
	{name: "blob", def: "BLOB", in: []string{"X'C328'", "?"}, args: []any{[]byte("𠮷")}, want: []any{[]byte{0xc3, 0x28}, []byte("𠮷")}},
	{name: "mediumblob", def: "MEDIUMBLOB", in: []string{"?"}, args: []any{blob70k}, want: []any{blob70k}},
	{name: "longblob", def: "LONGBLOB", in: []string{"X'00'"}, want: []any{[]byte{0}}},
	{name: "enum", def: "ENUM('x-small','𠮷','b') CHARACTER SET utf8mb4", in: []string{"'x-small'", "'𠮷'", "'b'", "NULL"},
		want: []any{"x-small", "𠮷", "b", nil}},
	{name: "enum of 260", def: "ENUM(" + enum260 + ")", in: []string{"'m0'", "'m259'"}, want: []any{"m0", "m259"}},
	{name: "set", def: "SET('a','b','c')", in: []string{"'a,c'", "''", "'a,b,c'", "'b'"}, want: []any{"a,c", "", "a,b,c", "b"}},
	{name: "bit(1)", def: "BIT(1)", in: []string{"1", "0", "NULL"}, want: []any{uint64(1), uint64(0), nil}},
	{name: "bit(10)", def: "BIT(10)", in: []string{"b'1000000001'"}, want: []any{uint64(513)}},
	{name: "bit(64)", def: "BIT(64)", in: []string{"18446744073709551615"}, want: []any{uint64(math.MaxUint64)}},
}

// Every column type, with the edge values of its range, decodes from the
// server's own binlog to the value inserted, in insert, update (before and
// after) and delete images.
func TestDecodeEveryType(t *testing.T) {
	s := newSession(t)
	s.exec("SET sql_mode = 'STRICT_TRANS_TABLES'") // allows the zero date
	for i, tc := range typeCases {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			table := fmt.Sprintf("t%d", i)
			s.exec(fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, v %s) DEFAULT CHARSET=utf8mb4", table, tc.def))
			var vals []string
			for j, in := range tc.in {
				vals = append(vals, fmt.Sprintf("(%d, %s)", j+1, in))
			}
			from := s.position()
			s.exec(fmt.Sprintf("INSERT INTO %s VALUES %s", table, strings.Join(vals, ",")), tc.args...)
			s.exec(fmt.Sprintf("UPDATE %s SET id = id + 100", table))
			s.exec(fmt.Sprintf("DELETE FROM %s", table))
			rows := s.rowsOf(s.events(from, s.position()), table)
			if len(rows) != 3 {
				t.Fatalf("%d rows events, want insert, update, delete", len(rows))
			}
			col := rows[0].Table.Columns[1]
			if col.Name != "v" || col.Unsigned != tc.unsigned || col.IsText() != tc.text || !col.Nullable {
				t.Errorf("column %+v: want name v, unsigned %v, text %v, nullable", col, tc.unsigned, tc.text)
			}
			if pk := rows[0].Table.PrimaryKey; !reflect.DeepEqual(pk, []int{0}) {
				t.Errorf("primary key %v, want [0]", pk)
			}
			images := map[string]func(c Change) []any{
				"insert": func(c Change) []any { return c.After },
				"before": func(c Change) []any { return c.Before },
				"after":  func(c Change) []any { return c.After },
				"delete": func(c Change) []any { return c.Before },
			}
			for name, ev := range map[string]*Rows{"insert": rows[0], "before": rows[1], "after": rows[1], "delete": rows[2]} {
				if len(ev.Rows) != len(tc.want) {
					t.Fatalf("%s: %d rows, want %d", name, len(ev.Rows), len(tc.want))
				}
				for j, c := range ev.Rows {
					img := images[name](c)
					wantID := int64(j + 1)
					if name == "after" || name == "delete" {
						wantID += 100
					}
					if img[0] != wantID {
						t.Errorf("%s row %d: id %v, want %d", name, j+1, img[0], wantID)
					}
					if !same(img[1], tc.want[j]) {
						t.Errorf("%s row %d: got %s, want %s", name, j+1, show(img[1]), show(tc.want[j]))
					}
				}
			}
		})
	}
}

func same(got, want any) bool {
	switch w := want.(type) {
	case float32:
		g, ok := got.(float32)
		return ok && math.Float32bits(g) == math.Float32bits(w)
	case float64:
		g, ok := got.(float64)
		return ok && math.Float64bits(g) == math.Float64bits(w)
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w) && g.Location() == time.UTC
	}
	return reflect.DeepEqual(got, want)
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 60 {
			return fmt.Sprintf("%q… (%d bytes)", x[:60], len(x))
		}
		return fmt.Sprintf("%q", x)
	case []byte:
		if len(x) > 30 {
			return fmt.Sprintf("[% x]… (%d bytes)", x[:30], len(x))
		}
		return fmt.Sprintf("[% x]", x)
	}
	return fmt.Sprintf("%#v (%T)", v, v)
}

// The optional metadata of binlog_row_metadata=FULL: names, signedness of
// numeric columns in order (after DECIMAL and FLOAT columns too), the
// collation of each character column (text, binary, latin1) and ENUM, and
// a composite primary key in key order.
func TestTableMapMetadata(t *testing.T) {
	s := newSession(t)
	s.exec(`CREATE TABLE m (
		a DECIMAL(5,2), b INT UNSIGNED NOT NULL, c FLOAT, d BIGINT, e TINYINT UNSIGNED,
		f VARCHAR(5) CHARACTER SET latin1, g BLOB, h TEXT, i ENUM('p','q'), j BINARY(2), k CHAR(2), l DATETIME(6),
		PRIMARY KEY (e, b)) DEFAULT CHARSET=utf8mb4`)
	from := s.position()
	s.exec("INSERT INTO m VALUES (1.5, 7, 2.5, -3, 200, 'é', X'00', '𠮷', 'q', 'z', 'yy', '2024-01-02 03:04:05.000006')")
	rows := s.rowsOf(s.events(from, s.position()), "m")
	if len(rows) != 1 {
		t.Fatalf("%d rows events", len(rows))
	}
	tm := rows[0].Table
	if !tm.HasFullMetadata() {
		t.Error("no full metadata")
	}
	var names []string
	for _, c := range tm.Columns {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c,d,e,f,g,h,i,j,k,l" {
		t.Errorf("names %s", got)
	}
	unsigned := map[string]bool{"b": true, "e": true}
	text := map[string]bool{"f": true, "h": true, "k": true}
	for _, c := range tm.Columns {
		if c.Unsigned != unsigned[c.Name] {
			t.Errorf("%s: unsigned %v", c.Name, c.Unsigned)
		}
		if c.IsText() != text[c.Name] {
			t.Errorf("%s: text %v (collation %d)", c.Name, c.IsText(), c.Collation)
		}
	}
	if c := tm.Columns[5]; c.Collation == tm.Columns[7].Collation {
		t.Errorf("latin1 and utf8mb4 columns share collation %d", c.Collation)
	}
	if c := tm.Columns[8]; c.Collation == 0 || !reflect.DeepEqual(c.Members, []string{"p", "q"}) {
		t.Errorf("enum: collation %d members %q", c.Collation, c.Members)
	}
	if b := tm.Columns[1]; b.Nullable {
		t.Error("b NOT NULL is nullable")
	}
	if !reflect.DeepEqual(tm.PrimaryKey, []int{4, 1}) {
		t.Errorf("primary key %v, want [4 1]", tm.PrimaryKey)
	}
	want := []any{"1.50", uint64(7), float32(2.5), int64(-3), uint64(200), "\xe9", []byte{0}, "𠮷", "q", []byte("z\x00"), "yy", dt(2024, 1, 2, 3, 4, 5, 6)}
	if got := rows[0].Rows[0].After; !reflect.DeepEqual(got, want) {
		t.Errorf("row %#v, want %#v", got, want)
	}
}

// The reader follows rotations (FLUSH BINARY LOGS, and the server's own at
// max_binlog_size), resumes at any event boundary it returned, and an ALTER
// TABLE mid-stream shows in the next table map.
func TestRotationResumeAndAlter(t *testing.T) {
	s := newSession(t)
	s.exec("CREATE TABLE r (id INT PRIMARY KEY, v MEDIUMTEXT)")
	from := s.position()
	big := strings.Repeat("x", 100_000) // three rows cross the 256 KiB max_binlog_size
	for i := range 6 {
		s.exec("INSERT INTO r (id, v) VALUES (?, ?)", i, big)
		if i == 2 {
			s.exec("FLUSH BINARY LOGS")
			s.exec("ALTER TABLE r ADD COLUMN w INT DEFAULT 7")
		}
	}
	until := s.position()
	if until.File == from.File {
		t.Fatalf("no rotation between %s and %s", from, until)
	}
	evs := s.events(from, until)
	rows := s.rowsOf(evs, "r")
	if len(rows) != 6 {
		t.Fatalf("%d rows events, want 6", len(rows))
	}
	for i, r := range rows {
		wantCols := 2
		if i >= 3 {
			wantCols = 3
		}
		if len(r.Table.Columns) != wantCols || r.Rows[0].After[0] != int64(i) {
			t.Errorf("insert %d: %d columns, row %v", i, len(r.Table.Columns), r.Rows[0].After[0])
		}
		if i >= 3 && (r.Table.Columns[2].Name != "w" || r.Rows[0].After[2] != int64(7)) {
			t.Errorf("insert %d after ALTER: column %q = %v", i, r.Table.Columns[2].Name, r.Rows[0].After[2])
		}
	}
	rotations := 0
	for _, ev := range evs {
		if _, ok := ev.Body.(*Rotate); ok {
			rotations++
		}
	}
	if rotations < 2 {
		t.Errorf("%d rotations, want the FLUSH and at least one for size", rotations)
	}
	// Resuming at the end of each event group (where the next GTID
	// starts) gives the rest of the stream.
	for i, ev := range evs {
		if i+1 < len(evs) && evs[i+1].Header.Type != MariaGTIDEvent {
			continue
		}
		rest := s.events(ev.End, until)
		if len(rest) != len(evs)-i-1 || (len(rest) > 0 && rest[0].Pos != evs[i+1].Pos) {
			t.Fatalf("resuming at %s: %d events, want %d", ev.End, len(rest), len(evs)-i-1)
		}
	}
}

// copyBinlog copies the server's files into a directory of the test, with
// an index listing them, and returns the index and the files' names.
func copyBinlog(t *testing.T, srv *testservers.MariaDBServer, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(srv.BinlogDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	index := filepath.Join(dir, "binlog.index")
	if err := os.WriteFile(index, []byte("./"+strings.Join(files, "\n./")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return index
}

func readAll(index string, from Position) (n int, err error) {
	r, err := Open(Options{Index: index, From: from})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	for {
		_, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// A truncated file, a flipped byte anywhere: an error naming the file and
// offset (wrapping ErrCorrupt), never a panic, never a silently different
// stream.
func TestCorruptFiles(t *testing.T) {
	s := newSession(t)
	s.exec("CREATE TABLE c (id INT PRIMARY KEY, v VARCHAR(20), d DECIMAL(38,10), e ENUM('a','b'), s SET('x','y'))")
	s.exec("FLUSH BINARY LOGS")
	start := s.position()
	s.exec("INSERT INTO c VALUES (1, '𠮷', -1.5, 'b', 'x,y'), (2, NULL, 0, 'a', '')")
	s.exec("UPDATE c SET v = 'z'")
	s.exec("DELETE FROM c WHERE id = 1")
	end := s.position()
	s.exec("FLUSH BINARY LOGS") // end the file with a ROTATE
	index := copyBinlog(t, s.srv, start.File)
	orig, err := os.ReadFile(filepath.Join(filepath.Dir(index), start.File))
	if err != nil {
		t.Fatal(err)
	}
	total, err := readAll(index, Position{})
	if err != nil {
		t.Fatalf("intact copy: %v", err)
	}
	path := filepath.Join(filepath.Dir(index), start.File)
	write := func(b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Truncation at every byte inside an event is an error naming the file.
	bounds := map[int]bool{}
	for _, ev := range s.events(Position{File: start.File, Offset: 4}, Position{File: start.File, Offset: uint32(len(orig))}) {
		bounds[int(ev.Pos.Offset)] = true
	}
	for cut := 0; cut < len(orig); cut++ {
		write(orig[:cut])
		n, err := readAll(index, Position{})
		if bounds[cut] && cut > 4 {
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("cut at event boundary %d: %v", cut, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("cut at %d: no error, %d of %d events", cut, n, total)
		}
		if !strings.Contains(err.Error(), start.File) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: error %q does not name %s or wrap ErrCorrupt", cut, err, start.File)
		}
	}
	// A flipped byte: CRC32 catches it.
	for off := 4; off < len(orig); off++ {
		b := bytes.Clone(orig)
		b[off] ^= 0x5a
		write(b)
		if _, err := readAll(index, Position{}); err == nil {
			t.Fatalf("byte %d flipped: no error", off)
		}
	}
	// Reading up to a position inside an event, or past the files' end.
	write(orig)
	r, err := Open(Options{Index: index, From: start, Until: Position{File: start.File, Offset: end.Offset - 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
	}
	if err == io.EOF || !errors.Is(err, ErrCorrupt) {
		t.Errorf("until inside an event: %v", err)
	}
	if _, err := Open(Options{Index: index, From: Position{File: "binlog.999999", Offset: 4}}); err == nil {
		t.Error("a file not in the index opened")
	}
}

// FuzzRows feeds arbitrary bodies to the rows and table map parsers: an
// error or a result, never a panic.
func FuzzRows(f *testing.F) {
	tm := &TableMap{ID: 1, Columns: []Column{{Type: TypeLong}, {Type: TypeNewDecimal, Precision: 38, Scale: 10},
		{Type: TypeVarchar, Length: 400, Collation: 45}, {Type: TypeTime2, FSP: 6}, {Type: TypeDateTime2, FSP: 3},
		{Type: TypeEnum, Length: 1, Members: []string{"a"}}, {Type: TypeSet, Length: 1, Members: []string{"a", "b"}},
		{Type: TypeBlob, Length: 3}, {Type: TypeBit, Length: 10}, {Type: TypeString, Length: 4, Collation: 63}}}
	f.Add([]byte{1, 0, 0, 0, 0, 0, 1, 0, 10, 0xff, 0x03, 0, 0, 1, 2, 3, 4})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseRows(UpdateRowsEventV1, b, 8, map[uint64]*TableMap{1: tm})
		_, _ = parseRows(WriteRowsEventV2, b, 10, map[uint64]*TableMap{1: tm})
		_, _ = parseTableMap(b, 8)
		_, _ = parseQuery(b, 13)
	})
}
