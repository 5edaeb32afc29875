package icemerge

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/icemerge/icemerge/catalog"
)

// The source side's parsing is allocation-free since verify had to keep
// up with SELECT *. These tests hold the new code to the old code it
// replaced (kept here as the reference), value for value, on the edge
// cases and on random input.

// oldParseDecimal is parseDecimal as it was: strings, concatenation and
// math/big.
func oldParseDecimal(v []byte, prec, scale int32) (decimal128.Num, string) {
	s := string(v)
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return decimal128.Num{}, "not a decimal"
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return decimal128.Num{}, "not a decimal (NaN and infinity have no known DMS form)"
			}
		}
	}
	if int32(len(frac)) > scale {
		extra := frac[scale:]
		if strings.Trim(extra, "0") != "" && extra[0] >= '5' {
			return decimal128.Num{}, fmt.Sprintf("more than %d fraction digits, where DMS's rounding or truncation is not known", scale)
		}
		frac = frac[:scale]
	}
	digits := strings.TrimLeft(intPart+frac+strings.Repeat("0", int(scale)-len(frac)), "0")
	if int32(len(digits)) > prec {
		return decimal128.Num{}, fmt.Sprintf("does not fit the table's decimal(%d,%d)", prec, scale)
	}
	var n decimal128.Num
	if len(digits) <= 18 {
		var u uint64
		for i := 0; i < len(digits); i++ {
			u = u*10 + uint64(digits[i]-'0')
		}
		n = decimal128.FromU64(u)
	} else {
		b, ok := new(big.Int).SetString(digits, 10)
		if !ok {
			return decimal128.Num{}, "not a decimal"
		}
		n = decimal128.FromBigInt(b)
	}
	if neg {
		n = n.Negate()
	}
	return n, ""
}

func TestParseDecimalAsBefore(t *testing.T) {
	type pc struct{ prec, scale int32 }
	precs := []pc{{12, 2}, {5, 0}, {20, 0}, {38, 0}, {38, 10}, {28, 6}, {1, 0}, {3, 3}, {38, 38}}
	inputs := []string{"", "-", "+", ".", "-.", "0", "-0", "+0", "00", "0.0", "-0.00", ".5", "-.5", "5.", "-5.",
		"123.45", "-123.45", "+123.45", "0.005", "-0.005", "0.004", "1.0000005", "1.0000004", "1.2300000",
		"99999", "-99999", "100000", "999.999", "12a", "1.2.3", "1e5", "NaN", "Infinity", " 1", "1 ",
		"18446744073709551615", "-18446744073709551616", "99999999999999999999999999999999999999",
		"-99999999999999999999999999999999999999", "999999999999999999", "1000000000000000000",
		"0000000000000000000000000000000000000000001", "0.00000000000000000000000000000000000001",
		"170141183460469231731687303715884105727", "9999999999999999999999999999999999999999",
		"-0.5", "0.5", "0.50", "0.05", "123456.7", "٣", "１"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		var b strings.Builder
		if r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		for range r.IntN(25) {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		if r.IntN(2) == 0 {
			b.WriteByte('.')
			for range r.IntN(15) {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
		inputs = append(inputs, b.String())
	}
	for _, in := range inputs {
		for _, p := range precs {
			got, gotWhy := parseDecimal([]byte(in), p.prec, p.scale)
			want, wantWhy := oldParseDecimal([]byte(in), p.prec, p.scale)
			if got != want || gotWhy != wantWhy {
				t.Errorf("%q as decimal(%d,%d): %s %q, before %s %q", in, p.prec, p.scale, got.ToString(p.scale), gotWhy, want.ToString(p.scale), wantWhy)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseDecimal([]byte("-12345678901234567890.12"), 38, 2) }); n != 0 {
		t.Errorf("parseDecimal allocates %v times a value", n)
	}
}

func TestParseTimeAsBefore(t *testing.T) {
	my := &vcol{class: cTS, skind: sMyDate}
	pg := &vcol{class: cTS, skind: sPgDate}
	inputs := []string{"2024-08-14 00:26:42", "2024-08-14 00:26:42.", "2024-08-14 00:26:42.1", "2024-08-14 00:26:42.12",
		"2024-08-14 00:26:42.123", "2024-08-14 00:26:42.1234", "2024-08-14 00:26:42.12345", "2024-08-14 00:26:42.123456",
		"2024-08-14 00:26:42.1234567", "2024-08-14 00:26:42.000001", "2024-08-14 00:26:42.999999", "2016-12-31 23:59:60.5+00",
		"2016-12-31 23:59:60", "1969-12-31 23:59:59.999999", "1970-01-01 00:00:00.000001", "0001-01-01 00:00:00",
		"9999-12-31 23:59:59.999999", "2024-02-29 12:00:00.5", "2023-02-29", "0000-00-00 00:00:00", "2024-08-14 00:26:42.12a",
		"2024-08-14 00:26:42.-1", "2024-08-14T00:26:42.5", "0044-03-15 12:00:00.25 BC", "2024-08-14 00:26:42.5+00"}
	for _, in := range inputs {
		for _, c := range []*vcol{my, pg} {
			us, null, why := c.parseTime([]byte(in))
			wus, wnull, wwhy := oldParseTime(c, []byte(in))
			if us != wus || null != wnull || why != wwhy {
				t.Errorf("%q (skind %d): %d %v %q, before %d %v %q", in, c.skind, us, null, why, wus, wnull, wwhy)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { my.parseTime([]byte("2024-08-14 00:26:42.123")) }); n != 0 {
		t.Errorf("parseTime allocates %v times a value", n)
	}
}

// oldParseTime is parseTime as it was: the fraction padded by
// concatenation.
func oldParseTime(c *vcol, v []byte) (us int64, null bool, why string) {
	s := str(v)
	bc := false
	if c.skind == sPgDate {
		if s == "infinity" || s == "-infinity" {
			return 0, false, "infinity has no known DMS form"
		}
		if t, ok := strings.CutSuffix(s, " BC"); ok {
			s, bc = t, true
		}
		s = strings.TrimSuffix(s, "+00") // timestamptz in a UTC session
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false, "not a date or timestamp"
	}
	y, ok1 := atoi(s[0:4])
	mo, ok2 := atoi(s[5:7])
	d, ok3 := atoi(s[8:10])
	if !ok1 || !ok2 || !ok3 {
		return 0, false, "not a date or timestamp"
	}
	var h, mi, sec, micro int
	if rest := s[10:]; rest != "" {
		if len(rest) < 9 || (rest[0] != ' ' && rest[0] != 'T') || rest[3] != ':' || rest[6] != ':' {
			return 0, false, "not a timestamp"
		}
		var ok4, ok5, ok6 bool
		h, ok4 = atoi(rest[1:3])
		mi, ok5 = atoi(rest[4:6])
		sec, ok6 = atoi(rest[7:9])
		if !ok4 || !ok5 || !ok6 {
			return 0, false, "not a timestamp"
		}
		if f := rest[9:]; f != "" {
			if f[0] != '.' || len(f) < 2 || len(f) > 7 {
				return 0, false, "not a timestamp (more than microseconds?)"
			}
			fd := (f[1:] + "00000")[:6]
			var ok7 bool
			if micro, ok7 = atoi(fd); !ok7 {
				return 0, false, "not a timestamp"
			}
		}
	}
	if c.skind == sMyDate {
		// Zero dates (0000-00-00), dates with a zero part and dates the
		// calendar lacks (02-31 under ALLOW_INVALID_DATES): DMS writes null.
		if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || y < 1 || h > 23 || mi > 59 || sec > 59 {
			return 0, true, ""
		}
	} else if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || sec > 60 {
		return 0, false, "not a calendar date"
	}
	if bc {
		y = 1 - y // 1 BC is year 0
	}
	days := daysFromCivil(y, mo, d)
	return days*86_400_000_000 + int64(h)*3_600_000_000 + int64(mi)*60_000_000 + int64(sec)*1_000_000 + int64(micro), false, ""
}

// rawText gives what database/sql's sql.RawBytes held, for every kind of
// value the driver returns: checked through database/sql itself, with a
// driver that returns the values.
func TestRawTextAsRawBytes(t *testing.T) {
	vals := []driver.Value{nil, []byte{}, []byte("x"), []byte("😀 4-byte"), "", "text", int64(0), int64(-1), int64(math.MinInt64),
		int64(math.MaxInt64), 1.5, -0.0, math.Inf(1), math.NaN(), 1e-300, float64(float32(0.1)), float32(0.1), float32(-3.4e38),
		float32(math.Inf(-1)), true, false, time.Date(2024, 8, 14, 0, 26, 42, 123456000, time.UTC),
		[]byte("18446744073709551615")}
	db := sql.OpenDB(valuesConnector{vals})
	defer db.Close()
	rows, err := db.Query("q")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(vals))
	ptrs := make([]any, len(vals))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	var scratch []byte
	got := make([][]byte, len(vals))
	for i, v := range vals {
		var ok bool
		if got[i], scratch, ok = rawText(v, scratch); !ok {
			t.Fatalf("%T: not taken", v)
		}
	}
	for i, v := range vals {
		if (got[i] == nil) != (raw[i] == nil) || string(got[i]) != string(raw[i]) {
			t.Errorf("%T %v: %q (nil %v), database/sql %q (nil %v)", v, v, got[i], got[i] == nil, raw[i], raw[i] == nil)
		}
	}
	if _, _, ok := rawText(struct{}{}, nil); ok {
		t.Error("an unknown type was taken")
	}
}

// valuesConnector is a database/sql driver whose every query returns one
// row of vals.
type valuesConnector struct{ vals []driver.Value }

func (c valuesConnector) Connect(context.Context) (driver.Conn, error) { return valuesConn(c), nil }
func (c valuesConnector) Driver() driver.Driver                        { return nil }

type valuesConn valuesConnector

func (c valuesConn) Prepare(string) (driver.Stmt, error) { return valuesStmt(c), nil }
func (c valuesConn) Close() error                        { return nil }
func (c valuesConn) Begin() (driver.Tx, error)           { return nil, driver.ErrSkip }

type valuesStmt valuesConn

func (s valuesStmt) Close() error                               { return nil }
func (s valuesStmt) NumInput() int                              { return 0 }
func (s valuesStmt) Exec([]driver.Value) (driver.Result, error) { return nil, driver.ErrSkip }
func (s valuesStmt) Query([]driver.Value) (driver.Rows, error) {
	return &valuesRows{vals: s.vals}, nil
}

type valuesRows struct {
	vals []driver.Value
	done bool
}

func (r *valuesRows) Columns() []string {
	cols := make([]string, len(r.vals))
	for i := range cols {
		cols[i] = fmt.Sprint("c", i)
	}
	return cols
}
func (r *valuesRows) Close() error { return nil }
func (r *valuesRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	copy(dest, r.vals)
	return nil
}

// The MySQL scan reads the driver's rows itself: every value is the text
// database/sql's sql.RawBytes held, on the edge cases of each type.
func TestMySQLScanAsRawBytes(t *testing.T) {
	db, uri := sourceMariaDB(t)
	name := uniqueName("verify_raw")
	mustExec(t, db, `CREATE TABLE `+name+` (id INT PRIMARY KEY, d DECIMAL(12,2), d0 DECIMAL(20,0), ub BIGINT UNSIGNED, b BIGINT,
		f FLOAT, g DOUBLE, ts TIMESTAMP(6) NULL, dt DATETIME(6), da DATE, tm TIME(6), s VARCHAR(50), tx TEXT, bl BLOB, bt BIT(3),
		j JSON, y YEAR, ti TINYINT UNSIGNED) DEFAULT CHARSET=utf8mb4`)
	t.Cleanup(func() { mustExec(t, db, "DROP TABLE IF EXISTS "+name) })
	mustExec(t, db, `INSERT INTO `+name+` VALUES
		(1, -1234567890.12, 0, 18446744073709551615, -9223372036854775808, 0.1, 0.1, '2024-08-14 00:26:42.000001', '1000-01-01 00:00:00', '9999-12-31', '-838:59:59.000000', '', '', '', b'101', '{"b": 1, "a": "😀"}', 2155, 255),
		(2, -0.01, -12345678901234567890, 0, 9223372036854775807, -3.4e38, 1e-300, '1970-01-01 00:00:01', '2016-12-31 23:59:59.999999', '2024-02-29', '00:00:00', '😀 four bytes', 'ß😀', x'00ff', b'000', '[]', 1901, 0),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(4, 0, 1, 1, 0, 1.5, -0.0, '2038-01-19 03:14:07.999999', '2024-08-14 00:26:42.5', '0000-00-00', '12:34:56.7', 'a''b', 'x', 'y', b'111', 'null', 2000, 1)`)
	src, err := openMySQL(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	colNames := []string{"id", "d", "d0", "ub", "b", "f", "g", "ts", "dt", "da", "tm", "s", "tx", "bl", "bt", "j", "y", "ti"}
	cols := make([]*vcol, len(colNames))
	for i, n := range colNames {
		cols[i] = &vcol{name: n, src: n}
	}
	var got [][]*string
	str := func(b []byte) *string {
		if b == nil {
			return nil
		}
		s := string(b)
		return &s
	}
	table := srcTable{Name: name}
	if err := src.scan(context.Background(), table, cols, func(vals [][]byte) error {
		row := make([]*string, len(vals))
		for i, v := range vals {
			row[i] = str(v)
		}
		got = append(got, row)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The old way: database/sql, a prepared statement, sql.RawBytes.
	stmt, err := src.conn.PrepareContext(context.Background(), "SELECT "+strings.Join(colNames, ", ")+" FROM "+table.mysql())
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	rows, err := stmt.Query()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(colNames))
	ptrs := make([]any, len(colNames))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	n := 0
	for ; rows.Next(); n++ {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if n >= len(got) {
			t.Fatalf("the scan read %d rows, database/sql more", len(got))
		}
		for i, r := range raw {
			want, g := str(r), got[n][i]
			if (want == nil) != (g == nil) || (want != nil && *want != *g) {
				t.Errorf("row %d column %s: %s, database/sql %s", n, colNames[i], showNullable(g), showNullable(want))
			}
		}
	}
	if err := rows.Err(); err != nil || n != len(got) || n != 4 {
		t.Fatalf("%d rows read, database/sql %d (%v)", len(got), n, err)
	}
	// The callback's error comes back as it is.
	stop := fmt.Errorf("stop here")
	if err := src.scan(context.Background(), table, cols, func([][]byte) error { return stop }); err != stop {
		t.Errorf("the callback's error came back as %v", err)
	}
}

func showNullable(s *string) string {
	if s == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *s)
}

// checkStreamAsArrow reads every live row of e's table as verify reads it
// (StreamLive, streamGetter) and as the repair locates rows (ScanLive,
// getter): the encodings must be the same, row for row, for the repair
// to find the keys verify found.
func checkStreamAsArrow(t *testing.T, e *env) {
	t.Helper()
	tbl, err := tableOf(e.ctx, e.cat, e.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := tbl.Schema()
	if err != nil {
		t.Fatal(err)
	}
	var cols []*vcol
	var names []string
	for _, f := range sc.Fields() {
		c, err := newVCol(f.Name, f.Type)
		if err != nil {
			t.Fatal(err)
		}
		cols, names = append(cols, c), append(names, f.Name)
	}
	var arrowRows, streamRows []string
	getters := make([]tableGetter, len(cols))
	if _, err := tbl.ScanLive(e.ctx, names, nil, func(path string, arrs []arrow.Array, first int64, deleted func(int64) bool) error {
		for j, a := range arrs {
			if getters[j], err = cols[j].getter(a); err != nil {
				return err
			}
		}
		for i := range arrs[0].Len() {
			if deleted(first + int64(i)) {
				continue
			}
			var row []byte
			for _, g := range getters {
				row = g(row, i)
			}
			arrowRows = append(arrowRows, string(row))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tbl.StreamLive(e.ctx, names, 3, func(b *catalog.LiveBatch) error { // 3 rows: batches end inside pages
		for j := range b.Cols {
			if getters[j], err = cols[j].streamGetter(&b.Cols[j]); err != nil {
				return err
			}
		}
		for i := range b.Rows {
			if b.Deleted != nil && b.Deleted[i] {
				continue
			}
			var row []byte
			for _, g := range getters {
				row = g(row, i)
			}
			streamRows = append(streamRows, string(row))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(arrowRows) == 0 || !reflect.DeepEqual(arrowRows, streamRows) {
		t.Errorf("the table's rows read as Arrow and streamed differ:\n%x\n%x", arrowRows, streamRows)
	}
}
