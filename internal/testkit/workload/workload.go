// Package workload is a seeded random workload for icemerge's end-to-end
// tests, against MariaDB or PostgreSQL: a few tables covering the README's
// type mapping (a composite key with 4-byte UTF-8 in it, a table without
// updated_at, decimals, timestamps, timestamptz, jsonb, uuid, bytea, 4-byte
// and large text), random statements and transactions (multi-row
// statements, same-second updates of one key, deletes and re-inserts, key
// updates, rolled-back transactions), and the events a test schedules:
// ALTER TABLE ADD COLUMN ([Workload.AddColumn]) and TRUNCATE
// ([Workload.Truncate]); a reload is the capture harness's
// (capture.Reload, pgcapture.Reload). [Workload.Rows] reads SELECT * of a
// table in the form internal/testkit/icecheck gives an Iceberg table's
// values, by key, so a test compares the two directly.
//
// A typical test: create the tables ([Workload.Create]), insert the
// initial rows ([Workload.Seed]), then rounds of [Workload.Steps], a
// capture run (capture.Run / pgcapture.Run with [Workload.CaptureTables]
// and [Workload.BeforeImage]), an icemerge run per table (keys
// [Table.Keys], --order-by [Table.OrderBy] or source), and a comparison of
// [Workload.Rows] with the table read by icecheck.
package workload

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Engine is the source database.
type Engine int

// The engines.
const (
	MariaDB Engine = iota
	Postgres
)

func (e Engine) String() string { return [...]string{"MariaDB", "PostgreSQL"}[e] }

// Kinds of column: how a value read from the source becomes the value the
// Iceberg table holds (icecheck's Go types).
const (
	KInt     = "int"     // int64
	KFloat32 = "float32" // float64, widened exactly
	KFloat64 = "float64"
	KDecimal = "decimal" // string with the column's scale
	KDate    = "date"    // time.Time, midnight UTC
	KWall    = "wall"    // timestamp without time zone: the wall clock as UTC
	KInstant = "instant" // timestamptz / MySQL TIMESTAMP: the instant in UTC
	KText    = "text"    // string (json, jsonb, uuid too)
	KBytes   = "bytes"   // []byte
	KBool    = "bool"
)

// Column is a source column.
type Column struct {
	Name string
	Def  string // the column's SQL type and constraints for the engine
	Kind string
	// Ice is the Iceberg type the README's mapping gives the column.
	Ice   string
	Scale int                    // KDecimal
	gen   func(r *rand.Rand) any // a random value; nil: not written by statements
}

// Table is a source table of the workload.
type Table struct {
	Name string
	Keys []string
	// OrderBy is icemerge's --order-by for the table; nil means source
	// order (the table has no updated_at).
	OrderBy []string
	Columns []Column
	// ReplicaFull: PostgreSQL REPLICA IDENTITY FULL (the table with large
	// text, whose unchanged TOASTed values pgcapture refuses under
	// DEFAULT). Other tables keep DEFAULT: their deletes carry the key only.
	ReplicaFull bool
}

// Column returns the named column, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// Workload drives random changes against one database.
type Workload struct {
	Engine Engine
	Tables []*Table
	// Schema is the database (MariaDB) or schema (PostgreSQL, "public")
	// the tables are in, for capture's "schema.table" names.
	Schema string
	// Counters.
	Statements, Transactions, RolledBack int
	RowsChanged                          int64

	db      *sql.DB
	conn    *sql.Conn
	r       *rand.Rand
	live    map[string][][]any // table → key values of live rows
	deleted map[string][][]any // keys deleted, for re-inserts
	nextID  int64
	added   bool
}

// New opens the database (driverName "mysql" with a go-sql-driver DSN
// naming the database, or "pgx" with a PostgreSQL URL) and returns a
// workload seeded with seed. schema is the MariaDB database or
// PostgreSQL schema of the tables.
func New(ctx context.Context, e Engine, dsn, schema string, seed uint64) (*Workload, error) {
	driver := map[Engine]string{MariaDB: "mysql", Postgres: "pgx"}[e]
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("workload: connecting: %w", err)
	}
	w := &Workload{Engine: e, Tables: tables(e), Schema: schema, db: db, conn: conn,
		r: rand.New(rand.NewPCG(seed, 1)), live: map[string][][]any{}, deleted: map[string][][]any{}}
	return w, nil
}

// Close closes the connections.
func (w *Workload) Close() error {
	_ = w.conn.Close()
	return w.db.Close()
}

// Table returns the named table, or nil.
func (w *Workload) Table(name string) *Table {
	for _, t := range w.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// CaptureTables are the tables as the capture harnesses name them.
func (w *Workload) CaptureTables() []string {
	out := make([]string, len(w.Tables))
	for i, t := range w.Tables {
		out[i] = w.Schema + "." + t.Name
	}
	return out
}

// BeforeImage configures add-before-image-columns (prefix BI_) on every
// table, for capture.Options.BeforeImage and pgcapture.Options.BeforeImage:
// with key updates in the workload, the BI_ columns are how a consumer
// learns the old key.
func (w *Workload) BeforeImage() map[string]string {
	out := map[string]string{}
	for _, t := range w.CaptureTables() {
		out[t] = ""
	}
	return out
}

// LiveRows is the number of rows the workload believes each table has.
func (w *Workload) LiveRows(table string) int { return len(w.live[table]) }

func (w *Workload) q(name string) string {
	if w.Engine == MariaDB {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// ph is the n-th placeholder (1-based).
func (w *Workload) ph(n int) string {
	if w.Engine == MariaDB {
		return "?"
	}
	return fmt.Sprintf("$%d", n)
}

func (w *Workload) now() string {
	if w.Engine == MariaDB {
		return "CURRENT_TIMESTAMP(6)"
	}
	return "now()"
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (w *Workload) exec(ctx context.Context, q execer, stmt string, args ...any) error {
	res, err := q.ExecContext(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("workload: %.200s: %w", stmt, err)
	}
	n, _ := res.RowsAffected()
	w.Statements++
	w.RowsChanged += n
	return nil
}

// Create creates the tables.
func (w *Workload) Create(ctx context.Context) error {
	for _, t := range w.Tables {
		var defs []string
		for _, c := range t.Columns {
			defs = append(defs, w.q(c.Name)+" "+c.Def)
		}
		keys := make([]string, len(t.Keys))
		for i, k := range t.Keys {
			keys[i] = w.q(k)
		}
		defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
		stmt := fmt.Sprintf("CREATE TABLE %s (%s)", w.q(t.Name), strings.Join(defs, ", "))
		if w.Engine == MariaDB {
			stmt += " DEFAULT CHARSET=utf8mb4"
		}
		if err := w.exec(ctx, w.conn, stmt); err != nil {
			return err
		}
		if w.Engine == Postgres {
			for _, c := range t.Columns {
				if c.Def == "text" && c.Name == "bio" {
					// Out of line without compression: a large value is
					// TOASTed, as a real one would be.
					if err := w.exec(ctx, w.conn, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET STORAGE EXTERNAL", w.q(t.Name), w.q(c.Name))); err != nil {
						return err
					}
				}
			}
			if t.ReplicaFull {
				if err := w.exec(ctx, w.conn, "ALTER TABLE "+w.q(t.Name)+" REPLICA IDENTITY FULL"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Seed inserts n rows into every table, before the capture's full load.
func (w *Workload) Seed(ctx context.Context, n int) error {
	for _, t := range w.Tables {
		for range n / 8 {
			if err := w.insert(ctx, w.conn, t, 8, false); err != nil {
				return err
			}
		}
		if n%8 > 0 {
			if err := w.insert(ctx, w.conn, t, n%8, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Workload) newKey(t *Table) []any {
	w.nextID++
	if len(t.Keys) == 1 {
		return []any{w.nextID}
	}
	skus := []string{"𠮷-", "😀-", "a-", "Z-"}
	return []any{w.nextID % 37, fmt.Sprintf("%s%d", skus[w.r.IntN(len(skus))], w.nextID)}
}

func written(t *Table) []Column {
	var out []Column
	for _, c := range t.Columns {
		if c.gen != nil {
			out = append(out, c)
		}
	}
	return out
}

// insert adds rows (new keys, or keys deleted before) in one statement.
func (w *Workload) insert(ctx context.Context, q execer, t *Table, n int, reuse bool) error {
	cols := written(t)
	names := make([]string, 0, len(t.Keys)+len(cols)+1)
	for _, k := range t.Keys {
		names = append(names, w.q(k))
	}
	for _, c := range cols {
		names = append(names, w.q(c.Name))
	}
	var values []string
	var args []any
	var keys [][]any
	for range n {
		var key []any
		if reuse && len(w.deleted[t.Name]) > 0 {
			i := w.r.IntN(len(w.deleted[t.Name]))
			key = w.deleted[t.Name][i]
			w.deleted[t.Name] = slices.Delete(w.deleted[t.Name], i, i+1)
		} else {
			key = w.newKey(t)
		}
		var phs []string
		for _, v := range key {
			args = append(args, v)
			phs = append(phs, w.ph(len(args)))
		}
		for _, c := range cols {
			args = append(args, c.gen(w.r))
			phs = append(phs, w.ph(len(args)))
		}
		values = append(values, "("+strings.Join(phs, ", ")+")")
		keys = append(keys, key)
	}
	if err := w.exec(ctx, q, fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", w.q(t.Name), strings.Join(names, ", "), strings.Join(values, ", ")), args...); err != nil {
		return err
	}
	w.live[t.Name] = append(w.live[t.Name], keys...)
	return nil
}

func (w *Workload) keyWhere(t *Table, keys [][]any, args []any) (string, []any) {
	var conds []string
	for _, k := range keys {
		var parts []string
		for i, name := range t.Keys {
			args = append(args, k[i])
			parts = append(parts, w.q(name)+" = "+w.ph(len(args)))
		}
		conds = append(conds, "("+strings.Join(parts, " AND ")+")")
	}
	return strings.Join(conds, " OR "), args
}

// pick returns up to n distinct live keys of t.
func (w *Workload) pick(t *Table, n int) [][]any {
	live := w.live[t.Name]
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

func (w *Workload) touch(t *Table) string {
	if t.Column("updated_at") != nil {
		return ", " + w.q("updated_at") + " = " + w.now()
	}
	return ""
}

// update changes a few random columns of up to n rows in one statement
// (and updated_at to now, when the table has one).
func (w *Workload) update(ctx context.Context, q execer, t *Table, n int) error {
	keys := w.pick(t, n)
	if keys == nil {
		return nil
	}
	cols := written(t)
	var sets []string
	var args []any
	for _, j := range w.r.Perm(len(cols))[:1+w.r.IntN(min(3, len(cols)))] {
		args = append(args, cols[j].gen(w.r))
		sets = append(sets, w.q(cols[j].Name)+" = "+w.ph(len(args)))
	}
	where, args := w.keyWhere(t, keys, args)
	return w.exec(ctx, q, fmt.Sprintf("UPDATE %s SET %s%s WHERE %s", w.q(t.Name), strings.Join(sets, ", "), w.touch(t), where), args...)
}

func (w *Workload) delete(ctx context.Context, q execer, t *Table, n int) error {
	keys := w.pick(t, n)
	if keys == nil {
		return nil
	}
	where, args := w.keyWhere(t, keys, nil)
	if err := w.exec(ctx, q, fmt.Sprintf("DELETE FROM %s WHERE %s", w.q(t.Name), where), args...); err != nil {
		return err
	}
	for _, k := range keys {
		w.live[t.Name] = slices.DeleteFunc(w.live[t.Name], func(x []any) bool { return fmt.Sprint(x) == fmt.Sprint(k) })
		w.deleted[t.Name] = append(w.deleted[t.Name], k)
	}
	return nil
}

// updateKey moves one row to a new key: DMS writes one U with the new key.
func (w *Workload) updateKey(ctx context.Context, q execer, t *Table) error {
	keys := w.pick(t, 1)
	if keys == nil {
		return nil
	}
	old, nk := keys[0], w.newKey(t)
	var sets []string
	var args []any
	for i, name := range t.Keys {
		args = append(args, nk[i])
		sets = append(sets, w.q(name)+" = "+w.ph(len(args)))
	}
	where, args := w.keyWhere(t, [][]any{old}, args)
	if err := w.exec(ctx, q, fmt.Sprintf("UPDATE %s SET %s%s WHERE %s", w.q(t.Name), strings.Join(sets, ", "), w.touch(t), where), args...); err != nil {
		return err
	}
	w.live[t.Name] = slices.DeleteFunc(w.live[t.Name], func(x []any) bool { return fmt.Sprint(x) == fmt.Sprint(old) })
	w.live[t.Name] = append(w.live[t.Name], nk)
	w.deleted[t.Name] = append(w.deleted[t.Name], old)
	return nil
}

// Steps runs n random pieces of work: single and multi-row statements,
// same-second updates of one key, deletes, deletes and re-inserts, key
// updates, and transactions over several rows and tables, some rolled
// back.
func (w *Workload) Steps(ctx context.Context, n int) error {
	for range n {
		if err := w.step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (w *Workload) step(ctx context.Context) error {
	t := w.Tables[w.r.IntN(len(w.Tables))]
	switch p := w.r.IntN(100); {
	case p < 18:
		return w.insert(ctx, w.conn, t, 1, false)
	case p < 26:
		return w.insert(ctx, w.conn, t, 2+w.r.IntN(6), false)
	case p < 44:
		return w.update(ctx, w.conn, t, 1)
	case p < 50:
		return w.update(ctx, w.conn, t, 2+w.r.IntN(5))
	case p < 56:
		keys := w.pick(t, 1)
		for range 2 + w.r.IntN(3) { // one key again and again, within a second
			if keys == nil {
				break
			}
			cols := written(t)
			c := cols[w.r.IntN(len(cols))]
			where, args := w.keyWhere(t, keys, []any{c.gen(w.r)})
			if err := w.exec(ctx, w.conn, fmt.Sprintf("UPDATE %s SET %s = %s%s WHERE %s", w.q(t.Name), w.q(c.Name), w.ph(1), w.touch(t), where), args...); err != nil {
				return err
			}
		}
		return nil
	case p < 63:
		return w.delete(ctx, w.conn, t, 1+w.r.IntN(3))
	case p < 69:
		if err := w.delete(ctx, w.conn, t, 1); err != nil {
			return err
		}
		return w.insert(ctx, w.conn, t, 1, true)
	case p < 75:
		return w.updateKey(ctx, w.conn, t)
	case p < 95:
		return w.transaction(ctx, true)
	default:
		return w.transaction(ctx, false)
	}
}

func (w *Workload) transaction(ctx context.Context, commit bool) error {
	tx, err := w.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	live, deleted := cloneKeys(w.live), cloneKeys(w.deleted)
	for range 2 + w.r.IntN(6) {
		t := w.Tables[w.r.IntN(len(w.Tables))]
		switch w.r.IntN(6) {
		case 0:
			err = w.insert(ctx, tx, t, 1+w.r.IntN(3), false)
		case 1, 2:
			err = w.update(ctx, tx, t, 1+w.r.IntN(3))
		case 3:
			err = w.delete(ctx, tx, t, 1)
		case 4:
			if err = w.delete(ctx, tx, t, 1); err == nil {
				err = w.insert(ctx, tx, t, 1, true)
			}
		case 5:
			err = w.updateKey(ctx, tx, t)
		}
		if err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if commit {
		w.Transactions++
		err = tx.Commit()
	} else {
		w.RolledBack++
		w.live, w.deleted = live, deleted
		err = tx.Rollback()
	}
	if err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	return nil
}

func cloneKeys(m map[string][][]any) map[string][][]any {
	out := make(map[string][][]any, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// AddColumn adds a nullable column (DECIMAL(12,3), no default) to table
// mid-stream, and writes it from then on; rows written before read null
// in the source as in the table.
func (w *Workload) AddColumn(ctx context.Context, table string) error {
	t := w.Table(table)
	if t == nil {
		return fmt.Errorf("workload: no table %s", table)
	}
	if t.Column("loyalty") != nil {
		return errors.New("workload: AddColumn runs once per table")
	}
	def := "DECIMAL(12,3) NULL"
	if w.Engine == Postgres {
		def = "numeric(12,3)"
	}
	if err := w.exec(ctx, w.conn, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", w.q(t.Name), w.q("loyalty"), def)); err != nil {
		return err
	}
	t.Columns = append(t.Columns, Column{Name: "loyalty", Def: def, Kind: KDecimal, Ice: "decimal(12,3)", Scale: 3,
		gen: func(r *rand.Rand) any { return maybeNull(r, randDecimal(r, 9, 3)) }})
	return nil
}

// Truncate empties table with TRUNCATE.
func (w *Workload) Truncate(ctx context.Context, table string) error {
	t := w.Table(table)
	if t == nil {
		return fmt.Errorf("workload: no table %s", table)
	}
	if err := w.exec(ctx, w.conn, "TRUNCATE TABLE "+w.q(t.Name)); err != nil {
		return err
	}
	w.deleted[t.Name] = append(w.deleted[t.Name], w.live[t.Name]...)
	w.live[t.Name] = nil
	return nil
}
