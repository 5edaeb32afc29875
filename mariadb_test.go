package icemerge

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/capture"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// The end-to-end test from a real database: SQL against a dedicated
// MariaDB with the binlog on, the capture harness writing what DMS writes
// (full load, then CDC files read from the binlog), icemerge applying them,
// and after every round the Iceberg table, read back with the independent
// reader, equal value for value to SELECT * of the source table.

// e2eColumn is a source column and how its values compare: kind says how a
// value read from MariaDB becomes the value the table must hold.
type e2eColumn struct {
	name, def, kind string
	ice             string                 // the Iceberg type the type mapping (docs/semantics.md) gives the column
	gen             func(r *rand.Rand) any // a random value, as a statement argument; nil when the column is not written
}

// The kinds of e2eColumn, each with the Go type icecheck reads.
const (
	kInt     = "int"     // int64
	kUint64  = "uint64"  // decimal(20,0): the digits as a string
	kFloat32 = "float32" // float, bit for bit
	kFloat64 = "float64"
	kDecimal = "decimal" // string with the column's scale
	kDate    = "date"    // time.Time, midnight UTC
	kWall    = "wall"    // DATETIME: the wall clock, as a UTC time
	kInstant = "instant" // TIMESTAMP: the instant (read in UTC)
	kTime    = "time"    // TIME: text with six fraction digits
	kText    = "text"
	kBytes   = "bytes"
	kBit     = "bit" // bool
)

type e2eTable struct {
	name    string
	keys    []string
	orderBy []string // nil: source order
	cols    []e2eColumn
	ddl     string // table options after the columns
}

func (tb *e2eTable) col(name string) *e2eColumn {
	for i := range tb.cols {
		if tb.cols[i].name == name {
			return &tb.cols[i]
		}
	}
	return nil
}

var e2eTexts = []string{"plain", "𠮷野家", "emoji 😀🎉👩‍👩‍👧", "Ωmega ß ç √", "", "tab\tnewline\nquote'\"back\\slash", "a,b;c"}

func pickText(r *rand.Rand) string {
	return e2eTexts[r.IntN(len(e2eTexts))] + fmt.Sprint(r.IntN(1000))
}

func maybeNull(r *rand.Rand, v any) any {
	if r.IntN(8) == 0 {
		return nil
	}
	return v
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func randDecimal(r *rand.Rand, intDigits, scale int) string {
	if r.IntN(10) == 0 { // the extremes
		s := strings.Repeat("9", intDigits) + "." + strings.Repeat("9", scale)
		if r.IntN(2) == 0 {
			s = "-" + s
		}
		return s
	}
	var b strings.Builder
	if r.IntN(2) == 0 {
		b.WriteByte('-')
	}
	n := 1 + r.IntN(intDigits)
	for i := range n {
		d := r.IntN(10)
		if i == 0 && n > 1 && d == 0 {
			d = 1
		}
		b.WriteByte(byte('0' + d))
	}
	b.WriteByte('.')
	for range scale {
		b.WriteByte(byte('0' + r.IntN(10)))
	}
	return b.String()
}

func randWall(r *rand.Rand, from, to int) string {
	y := from + r.IntN(to-from+1)
	t := time.Date(y, time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1_000_000)*1000, time.UTC)
	if r.IntN(4) == 0 {
		t = t.Truncate(time.Second) // a zero fraction
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

func e2eTables() []*e2eTable {
	i64 := func(lo, hi int64) func(r *rand.Rand) any {
		return func(r *rand.Rand) any { return maybeNull(r, lo+r.Int64N(hi-lo+1)) }
	}
	return []*e2eTable{
		{
			// Nearly every MySQL type; updated_at in whole seconds, so many
			// changes of a key tie and source order decides.
			name: "customers", keys: []string{"id"}, orderBy: []string{"updated_at"},
			ddl: "DEFAULT CHARSET=utf8mb4",
			cols: []e2eColumn{
				{name: "id", def: "INT NOT NULL", kind: kInt, ice: "int"},
				{name: "name", def: "VARCHAR(100)", kind: kText, ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, pickText(r)) }},
				{name: "bio", def: "TEXT", kind: kText, ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, strings.Repeat(pickText(r), 1+r.IntN(50))) }},
				{name: "tiny", def: "TINYINT", kind: kInt, ice: "int", gen: i64(math.MinInt8, math.MaxInt8)},
				{name: "flag", def: "TINYINT(1)", kind: kInt, ice: "int", gen: i64(0, 1)},
				{name: "small_u", def: "SMALLINT UNSIGNED", kind: kInt, ice: "int", gen: i64(0, math.MaxUint16)},
				{name: "med", def: "MEDIUMINT", kind: kInt, ice: "int", gen: i64(-8388608, 8388607)},
				{name: "int_u", def: "INT UNSIGNED", kind: kInt, ice: "long", gen: i64(0, math.MaxUint32)},
				{name: "big", def: "BIGINT", kind: kInt, ice: "long", gen: func(r *rand.Rand) any {
					return maybeNull(r, []int64{math.MinInt64, math.MaxInt64, int64(r.Uint64())}[r.IntN(3)])
				}},
				{name: "big_u", def: "BIGINT UNSIGNED", kind: kUint64, ice: "decimal(20,0)", gen: func(r *rand.Rand) any {
					return maybeNull(r, []uint64{math.MaxUint64, 0, r.Uint64()}[r.IntN(3)])
				}},
				{name: "f", def: "FLOAT", kind: kFloat32, ice: "float", gen: func(r *rand.Rand) any {
					return maybeNull(r, []float32{-1.5, 0.1, math.MaxFloat32, 1e-30, float32(r.NormFloat64() * 1000)}[r.IntN(5)])
				}},
				{name: "d", def: "DOUBLE", kind: kFloat64, ice: "double", gen: func(r *rand.Rand) any {
					return maybeNull(r, []float64{0.1, -math.MaxFloat64, 5e-324, r.NormFloat64() * 1e10}[r.IntN(4)])
				}},
				{name: "price", def: "DECIMAL(10,2)", kind: kDecimal, ice: "decimal(10,2)", gen: func(r *rand.Rand) any { return maybeNull(r, randDecimal(r, 8, 2)) }},
				{name: "born", def: "DATE", kind: kDate, ice: "date", gen: func(r *rand.Rand) any { return maybeNull(r, randWall(r, 1000, 9999)[:10]) }},
				{name: "seen", def: "DATETIME(6)", kind: kWall, ice: "timestamp", gen: func(r *rand.Rand) any { return maybeNull(r, randWall(r, 1000, 9999)) }},
				{name: "dur", def: "TIME(3)", kind: kTime, ice: "string", gen: func(r *rand.Rand) any {
					sign := []string{"", "-"}[r.IntN(2)]
					return maybeNull(r, fmt.Sprintf("%s%d:%02d:%02d.%03d", sign, r.IntN(838), r.IntN(60), r.IntN(60), r.IntN(1000)))
				}},
				{name: "yr", def: "YEAR", kind: kInt, ice: "int", gen: i64(1901, 2155)},
				{name: "doc", def: "JSON", kind: kText, ice: "string", gen: func(r *rand.Rand) any {
					return maybeNull(r, fmt.Sprintf(`{"name": %q, "n": %d, "e": "😀"}`, pickText(r), r.IntN(100)))
				}},
				{name: "size", def: "ENUM('s','m','l','𠮷')", kind: kText, ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, []string{"s", "m", "l", "𠮷"}[r.IntN(4)]) }},
				{name: "tags", def: "SET('a','b','😀')", kind: kText, ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, []string{"", "a", "a,b", "a,b,😀", "😀"}[r.IntN(5)]) }},
				{name: "raw", def: "BLOB", kind: kBytes, ice: "binary", gen: func(r *rand.Rand) any { return maybeNull(r, randBytes(r, r.IntN(300))) }},
				{name: "code", def: "BINARY(4)", kind: kBytes, ice: "binary", gen: func(r *rand.Rand) any { return maybeNull(r, randBytes(r, r.IntN(5))) }},
				{name: "ok", def: "BIT(1)", kind: kBit, ice: "boolean", gen: i64(0, 1)},
				{name: "updated_at", def: "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP", kind: kInstant, ice: "timestamptz"},
			},
		},
		{
			// A composite key with 4-byte UTF-8 in it, a DECIMAL(38,10), and a
			// DATETIME(6) updated_at (the server's wall clock, not UTC).
			name: "order_lines", keys: []string{"order_id", "sku"}, orderBy: []string{"updated_at"},
			ddl: "DEFAULT CHARSET=utf8mb4",
			cols: []e2eColumn{
				{name: "order_id", def: "BIGINT NOT NULL", kind: kInt, ice: "long"},
				{name: "sku", def: "VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL", kind: kText, ice: "string"},
				{name: "qty", def: "INT", kind: kInt, ice: "int", gen: i64(math.MinInt32, math.MaxInt32)},
				{name: "amount", def: "DECIMAL(38,10)", kind: kDecimal, ice: "decimal(38,10)", gen: func(r *rand.Rand) any { return maybeNull(r, randDecimal(r, 28, 10)) }},
				{name: "note", def: "VARCHAR(50)", kind: kText, ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, pickText(r)) }},
				{name: "updated_at", def: "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)", kind: kWall, ice: "timestamp"},
			},
		},
		{
			// No updated_at: icemerge runs with --order-by source.
			name: "events", keys: []string{"id"},
			ddl: "DEFAULT CHARSET=utf8mb4",
			cols: []e2eColumn{
				{name: "id", def: "INT NOT NULL", kind: kInt, ice: "int"},
				{name: "kind", def: "ENUM('click','view','😀')", kind: kText, ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, []string{"click", "view", "😀"}[r.IntN(3)]) }},
				{name: "payload", def: "MEDIUMBLOB", kind: kBytes, ice: "binary", gen: func(r *rand.Rand) any { return maybeNull(r, randBytes(r, r.IntN(2000))) }},
				{name: "at", def: "TIMESTAMP(6) NULL", kind: kInstant, ice: "timestamptz", gen: func(r *rand.Rand) any { return maybeNull(r, randWall(r, 1971, 2037)) }},
				{name: "n", def: "DOUBLE", kind: kFloat64, ice: "double", gen: func(r *rand.Rand) any { return maybeNull(r, r.NormFloat64()) }},
				{name: "note", def: "TINYTEXT", kind: kText, ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, pickText(r)) }},
			},
		},
	}
}

// key is a row's key, rendered the same from MariaDB's values and the
// table's.
func rowKey(keys []string, row map[string]any) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprint(row[k])
	}
	return strings.Join(parts, "\x00")
}

// workload runs random statements against the source and keeps the keys
// that exist, to pick rows to change.
type workload struct {
	t          *testing.T
	r          *rand.Rand
	conn       *sql.Conn
	ctx        context.Context
	tables     []*e2eTable
	live       map[string][][]any // table → key values of live rows
	deleted    map[string][][]any // keys deleted, for re-inserts
	nextID     int64
	statements int
	rows       int64 // rows affected, rolled-back statements included
	txs        int   // committed transactions
	rolledBack int
}

func (w *workload) exec(q sqlExecer, stmt string, args ...any) int64 {
	w.t.Helper()
	res, err := q.ExecContext(w.ctx, stmt, args...)
	if err != nil {
		w.t.Fatalf("%.200s: %v", stmt, err)
	}
	n, _ := res.RowsAffected()
	w.statements++
	w.rows += n
	return n
}

type sqlExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (w *workload) newKey(tb *e2eTable) []any {
	w.nextID++
	if len(tb.keys) == 1 {
		return []any{w.nextID}
	}
	skus := []string{"𠮷-", "😀-", "a-", "Z-"}
	return []any{w.nextID % 37, fmt.Sprintf("%s%d", skus[w.r.IntN(len(skus))], w.nextID)}
}

// written are the columns a statement sets: every generated column.
func written(tb *e2eTable) []e2eColumn {
	var out []e2eColumn
	for _, c := range tb.cols {
		if c.gen != nil {
			out = append(out, c)
		}
	}
	return out
}

// insert adds rows (new keys, or keys deleted before) in one statement.
func (w *workload) insert(q sqlExecer, tb *e2eTable, n int, reuse bool) {
	cols := written(tb)
	names := append(slices.Clone(tb.keys), colNames(cols)...)
	var values []string
	var args []any
	for range n {
		var key []any
		if reuse && len(w.deleted[tb.name]) > 0 {
			i := w.r.IntN(len(w.deleted[tb.name]))
			key = w.deleted[tb.name][i]
			w.deleted[tb.name] = slices.Delete(w.deleted[tb.name], i, i+1)
		} else {
			key = w.newKey(tb)
		}
		args = append(args, key...)
		for _, c := range cols {
			args = append(args, c.gen(w.r))
		}
		values = append(values, "("+strings.TrimSuffix(strings.Repeat("?,", len(names)), ",")+")")
		w.live[tb.name] = append(w.live[tb.name], key)
	}
	w.exec(q, fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", tb.name, quoteList(names), strings.Join(values, ",")), args...)
}

func colNames(cols []e2eColumn) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}

func (w *workload) keyWhere(tb *e2eTable, keys [][]any) (string, []any) {
	var conds []string
	var args []any
	for _, k := range keys {
		var parts []string
		for i, name := range tb.keys {
			parts = append(parts, "`"+name+"` = ?")
			args = append(args, k[i])
		}
		conds = append(conds, "("+strings.Join(parts, " AND ")+")")
	}
	return strings.Join(conds, " OR "), args
}

// pick returns up to n distinct live keys of tb.
func (w *workload) pick(tb *e2eTable, n int) [][]any {
	live := w.live[tb.name]
	if len(live) == 0 {
		return nil
	}
	idx := w.r.Perm(len(live))[:min(n, len(live))]
	out := make([][]any, len(idx))
	for i, j := range idx {
		out[i] = live[j]
	}
	return out
}

// update changes a few random columns of up to n rows in one statement.
func (w *workload) update(q sqlExecer, tb *e2eTable, n int) {
	keys := w.pick(tb, n)
	if keys == nil {
		return
	}
	cols := written(tb)
	var sets []string
	var args []any
	for _, j := range w.r.Perm(len(cols))[:1+w.r.IntN(3)] {
		sets = append(sets, "`"+cols[j].name+"` = ?")
		args = append(args, cols[j].gen(w.r))
	}
	where, wargs := w.keyWhere(tb, keys)
	w.exec(q, fmt.Sprintf("UPDATE %s SET %s WHERE %s", tb.name, strings.Join(sets, ", "), where), append(args, wargs...)...)
}

func (w *workload) delete(q sqlExecer, tb *e2eTable, n int) {
	keys := w.pick(tb, n)
	if keys == nil {
		return
	}
	where, args := w.keyWhere(tb, keys)
	w.exec(q, fmt.Sprintf("DELETE FROM %s WHERE %s", tb.name, where), args...)
	for _, k := range keys {
		w.live[tb.name] = slices.DeleteFunc(w.live[tb.name], func(x []any) bool { return fmt.Sprint(x) == fmt.Sprint(k) })
		w.deleted[tb.name] = append(w.deleted[tb.name], k)
	}
}

// step runs one random piece of work: single and multi-row statements,
// same-second updates of one key, delete-and-reinsert, transactions over
// several rows and tables, and a rolled-back transaction.
func (w *workload) step() {
	tb := w.tables[w.r.IntN(len(w.tables))]
	switch p := w.r.IntN(100); {
	case p < 20:
		w.insert(w.conn, tb, 1, false)
	case p < 30:
		w.insert(w.conn, tb, 2+w.r.IntN(6), false) // multi-row INSERT
	case p < 50:
		w.update(w.conn, tb, 1)
	case p < 58:
		w.update(w.conn, tb, 2+w.r.IntN(5)) // multi-row UPDATE
	case p < 64:
		if keys := w.pick(tb, 1); keys != nil {
			for range 2 + w.r.IntN(3) { // one key, again and again, within a second
				w.updateKey(tb, keys[0])
			}
		}
	case p < 72:
		w.delete(w.conn, tb, 1+w.r.IntN(3))
	case p < 78:
		w.delete(w.conn, tb, 1) // delete and re-insert the key
		w.insert(w.conn, tb, 1, true)
	case p < 95:
		w.transaction(true)
	default:
		w.transaction(false)
	}
}

func (w *workload) updateKey(tb *e2eTable, key []any) {
	cols := written(tb)
	c := cols[w.r.IntN(len(cols))]
	where, args := w.keyWhere(tb, [][]any{key})
	w.exec(w.conn, fmt.Sprintf("UPDATE %s SET `%s` = ? WHERE %s", tb.name, c.name, where), append([]any{c.gen(w.r)}, args...)...)
}

// transaction touches several rows of several tables, committed or rolled
// back (a rolled-back one never reaches the binlog).
func (w *workload) transaction(commit bool) {
	tx, err := w.conn.BeginTx(w.ctx, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	live := map[string][][]any{}
	deleted := map[string][][]any{}
	for k, v := range w.live {
		live[k] = slices.Clone(v)
	}
	for k, v := range w.deleted {
		deleted[k] = slices.Clone(v)
	}
	for range 2 + w.r.IntN(6) {
		tb := w.tables[w.r.IntN(len(w.tables))]
		switch w.r.IntN(5) {
		case 0:
			w.insert(tx, tb, 1+w.r.IntN(3), false)
		case 1, 2:
			w.update(tx, tb, 1+w.r.IntN(3))
		case 3:
			w.delete(tx, tb, 1)
		case 4:
			w.delete(tx, tb, 1) // delete and re-insert in one transaction
			w.insert(tx, tb, 1, true)
		}
	}
	if commit {
		err = tx.Commit()
		w.txs++
	} else {
		err = tx.Rollback()
		w.live, w.deleted = live, deleted
		w.rolledBack++
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

// sourceRows reads SELECT * of tb with the binary protocol (FLOAT bit for
// bit), the session in UTC (TIMESTAMP as instants), as the table must hold
// them, by key. It returns the column names too.
func sourceRows(t *testing.T, ctx context.Context, conn *sql.Conn, tb *e2eTable) ([]string, map[string]map[string]any) {
	t.Helper()
	rows, err := conn.QueryContext(ctx, "SELECT * FROM "+tb.name+" WHERE ? = 1", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	ctypes, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	raw := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]any{}
		for i, name := range names {
			c := tb.col(name)
			if c == nil {
				t.Fatalf("%s: column %s is not in the test's schema", tb.name, name)
			}
			_, scale, _ := ctypes[i].DecimalSize()
			row[name] = expectedValue(t, c, raw[i], int(scale))
		}
		out[rowKey(tb.keys, row)] = row
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names, out
}

// expectedValue is what the table holds for a value MariaDB returned, by
// the type mapping of docs/semantics.md.
func expectedValue(t *testing.T, c *e2eColumn, v any, scale int) any {
	t.Helper()
	if v == nil {
		return nil
	}
	fail := func() any {
		t.Fatalf("column %s (%s): unexpected %T %v from MariaDB", c.name, c.kind, v, v)
		return nil
	}
	b, isBytes := v.([]byte)
	switch c.kind {
	case kInt:
		if x, ok := v.(int64); ok {
			return x
		}
	case kUint64:
		switch x := v.(type) {
		case int64:
			return fmt.Sprint(x)
		case []byte:
			return string(x)
		}
	case kFloat32, kFloat64:
		return v // float32 or float64, compared bit for bit
	case kDecimal:
		if isBytes {
			r, ok := new(big.Rat).SetString(string(b))
			if !ok {
				return fail()
			}
			return r.FloatString(scale)
		}
	case kDate, kWall, kInstant:
		if isBytes {
			layout := "2006-01-02 15:04:05.999999"
			if c.kind == kDate {
				layout = "2006-01-02"
			}
			ts, err := time.ParseInLocation(layout, string(b), time.UTC)
			if err != nil {
				t.Fatalf("column %s: %v", c.name, err)
			}
			return ts
		}
	case kTime:
		if isBytes {
			s, frac, _ := strings.Cut(string(b), ".")
			return s + "." + (frac + "000000")[:6]
		}
	case kText:
		if isBytes {
			return string(b)
		}
	case kBytes:
		if isBytes {
			return slices.Clone(b)
		}
	case kBit:
		if isBytes {
			return strings.Trim(string(b), "\x00") != ""
		}
	}
	return fail()
}

func sortedNames(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// compareTable checks that the table holds exactly the source's rows.
func compareTable(t *testing.T, e *env, tb *e2eTable, names []string, want map[string]map[string]any, when string) {
	t.Helper()
	tbl := e.table()
	if tbl == nil {
		t.Fatalf("%s: %s: no table", when, tb.name)
	}
	var cols []string
	for _, c := range tbl.Columns {
		cols = append(cols, c.Name)
		if sc := tb.col(c.Name); sc != nil && normType(c.Type) != sc.ice {
			t.Errorf("%s: %s column %s (%s): Iceberg type %s, want %s", when, tb.name, c.Name, sc.def, c.Type, sc.ice)
		}
	}
	// An added column goes last in the table, where the source may have it
	// elsewhere (ALTER TABLE … AFTER).
	if !slices.Equal(sortedNames(cols), sortedNames(names)) {
		t.Errorf("%s: %s: table columns %v, source %v", when, tb.name, cols, names)
	}
	compareRows(t, tb, names, want, tbl.Rows, when+", icecheck")
	compareRows(t, tb, names, want, scanRows(t, e), when+", iceberg-go scan")
}

// compareRows checks that rows, read from the table by one reader, are
// exactly the source's.
func compareRows(t *testing.T, tb *e2eTable, names []string, want map[string]map[string]any, rows []map[string]any, when string) {
	t.Helper()
	got := map[string]map[string]any{}
	for _, r := range rows {
		got[rowKey(tb.keys, r)] = r
	}
	if len(got) != len(rows) {
		t.Errorf("%s: %s: %d rows, %d distinct keys", when, tb.name, len(rows), len(got))
	}
	if len(got) != len(want) {
		t.Errorf("%s: %s: table has %d rows, source %d", when, tb.name, len(got), len(want))
	}
	bad := 0
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := want[k]
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: %s: key %q missing", when, tb.name, k)
			bad++
			continue
		}
		for _, name := range names {
			if !sameValue(g[name], w[name]) {
				t.Errorf("%s: %s key %q column %s: table %s, source %s", when, tb.name, k, name, show(g[name]), show(w[name]))
				bad++
			}
		}
		if bad > 20 {
			t.Fatalf("%s: too many differences", when)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s: key %q in the table, not in the source", when, tb.name, k)
		}
	}
}

// TestMariaDBEndToEnd: real SQL (multi-row statements, transactions, same-
// second updates, deletes and re-inserts, 4-byte UTF-8, an ALTER TABLE
// mid-stream) against a MariaDB with the binlog on; rounds of capture →
// icemerge run; after each, every table equals SELECT * of its source.
func TestMariaDBEndToEnd(t *testing.T) {
	start := time.Now()
	srv := testservers.MariaDB(t)
	dbName := srv.NewDatabase(t)
	db := srv.Open(t, dbName)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx) // the application's session, in the server's time zone
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	check, err := db.Conn(ctx) // the comparison's session, in UTC
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	if _, err := check.ExecContext(ctx, "SET time_zone = '+00:00'"); err != nil {
		t.Fatal(err)
	}

	tables := e2eTables()
	for _, tb := range tables {
		var defs []string
		for _, c := range tb.cols {
			defs = append(defs, "`"+c.name+"` "+c.def)
		}
		defs = append(defs, "PRIMARY KEY ("+quoteList(tb.keys)+")")
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s) %s", tb.name, strings.Join(defs, ", "), tb.ddl)); err != nil {
			t.Fatal(err)
		}
	}
	seed := uint64(20240814)
	w := &workload{t: t, r: rand.New(rand.NewPCG(seed, 1)), conn: conn, ctx: ctx, tables: tables,
		live: map[string][][]any{}, deleted: map[string][][]any{}}

	out := t.TempDir()
	copts := capture.Options{DSN: srv.DSN, BinlogIndex: srv.BinlogIndex, Output: out,
		MaxFileSize: 64 << 10} // small files: several per round
	for _, tb := range tables {
		copts.Tables = append(copts.Tables, dbName+"."+tb.name)
	}
	envs := map[string]*env{}
	for _, tb := range tables {
		e := newEnv(t, "local")
		e.opts.Source = filepath.Join(out, dbName, tb.name)
		e.opts.Table = "mariadb_e2e." + tb.name
		e.opts.Keys, e.opts.OrderBy = tb.keys, tb.orderBy
		e.reopen()
		envs[tb.name] = e
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The initial rows, there before capture starts: the full load.
	for _, tb := range tables {
		for range 5 {
			w.insert(conn, tb, 8, false)
		}
	}
	const rounds = 6
	const stepsPerRound = 150
	files := 0
	for round := 0; round <= rounds; round++ {
		if round > 0 {
			for s := range stepsPerRound {
				w.step()
				if round == 3 && s == stepsPerRound/2 {
					// A column added mid-stream, in the middle of a round's
					// changes; nullable without a default, so rows written
					// before it read null in the source as in the table.
					w.exec(conn, "ALTER TABLE customers ADD COLUMN loyalty DECIMAL(38,10) NULL AFTER name")
					cust := tables[0]
					cust.cols = slices.Insert(cust.cols, 2, e2eColumn{name: "loyalty", def: "DECIMAL(38,10)", kind: kDecimal, ice: "decimal(38,10)",
						gen: func(r *rand.Rand) any { return maybeNull(r, randDecimal(r, 28, 10)) }})
				}
			}
		}
		res, err := capture.Run(ctx, copts, log)
		if err != nil {
			t.Fatalf("round %d: capture: %v", round, err)
		}
		if round == 0 != res.FullLoad {
			t.Fatalf("round %d: full load %v", round, res.FullLoad)
		}
		for _, tb := range tables {
			files += len(res.Tables[dbName+"."+tb.name].Files)
			e := envs[tb.name]
			e.run()
			names, want := sourceRows(t, ctx, check, tb)
			compareTable(t, e, tb, names, want, fmt.Sprintf("round %d", round))
		}
		if t.Failed() {
			t.Fatalf("round %d: the tables differ from the source", round)
		}
		t.Logf("round %d: capture %s → %s, %d transactions; every table equals SELECT *", round, res.From, res.To, res.Transactions)
	}
	var liveRows int
	for _, tb := range tables {
		liveRows += len(w.live[tb.name])
	}
	t.Logf("workload (seed %d): %d statements, %d rows changed, %d explicit transactions (%d more rolled back), "+
		"%d rounds of capture and icemerge run after the full load, %d DMS files, %d rows at the end; every round equal; %.1fs",
		seed, w.statements, w.rows, w.txs, w.rolledBack, rounds, files, liveRows, time.Since(start).Seconds())
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
