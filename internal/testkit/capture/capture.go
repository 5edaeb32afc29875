package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/icemerge/icemerge/internal/testkit/binlog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// Options configures a capture run.
type Options struct {
	// DSN is the source database, as go-sql-driver/mysql spells it
	// (user:password@tcp(host:port)/). The user needs SELECT on the
	// tables and the right to run SHOW MASTER STATUS.
	DSN string
	// BinlogIndex is the path of the server's binlog index file
	// (<datadir>/binlog.index); the binlog files are read next to it.
	BinlogIndex string
	// Output is the local folder DMS would write to (its BucketFolder):
	// each table's files go to Output/<schema>/<table>/, and the capture
	// state to Output/.capture-state.json.
	Output string
	// Tables are the captured tables, "schema.table", as the server
	// spells them.
	Tables []string
	// MaxFileSize cuts a CDC file once its rows are estimated at this many
	// bytes, as DMS's CdcMinFileSize does (default 32 MB); full-load files
	// are cut at the same size.
	MaxFileSize int64
	// MaxBatchInterval cuts a CDC file once it holds changes committed
	// this long apart, as DMS's CdcMaxBatchInterval does (default 60 s).
	MaxBatchInterval time.Duration
	// Now is the clock CDC files are named by (DMS names them by the time
	// it writes them, UTC); time.Now when nil. Names stay strictly
	// increasing whatever it returns.
	Now func() time.Time
	// BeforeImage names the tables ("schema.table", as in Tables) that
	// have DMS's transformation rule add-before-image-columns with
	// column-filter pk-only, each with its column-prefix ("" is DMS's
	// default, "BI_"). See the package documentation for what the
	// columns hold.
	BeforeImage map[string]string
	// HandleSourceTableTruncated is DMS's task setting of that name: a
	// TRUNCATE of a captured table deletes every object of the table's
	// folder, and the table's later CDC files start from an empty table.
	// Without it a TRUNCATE is not replicated (a warning is logged), as
	// DMS ignores it.
	HandleSourceTableTruncated bool
}

// Defaults DMS uses for its S3 target.
const (
	DefaultMaxFileSize      = dmstest.DefaultMaxFileSize
	DefaultMaxBatchInterval = dmstest.DefaultMaxBatchInterval
	// DefaultBeforeImagePrefix is DMS's default column-prefix of
	// add-before-image-columns.
	DefaultBeforeImagePrefix = "BI_"
)

var tableName = regexp.MustCompile(`^[^.\s` + "`" + `]+\.[^.\s` + "`" + `]+$`)

// Validate reports every problem of o at once, before any I/O.
func (o *Options) Validate() error {
	var errs []error
	if o.DSN == "" {
		errs = append(errs, errors.New("capture: no source DSN (user:password@tcp(host:port)/)"))
	} else if _, err := mysql.ParseDSN(o.DSN); err != nil {
		errs = append(errs, fmt.Errorf("capture: source DSN: %w", err))
	}
	if o.BinlogIndex == "" {
		errs = append(errs, errors.New("capture: no binlog index file (the server's <datadir>/binlog.index)"))
	}
	if o.Output == "" {
		errs = append(errs, errors.New("capture: no output folder"))
	}
	if len(o.Tables) == 0 {
		errs = append(errs, errors.New("capture: no tables (schema.table, …)"))
	}
	seen := map[string]bool{}
	for _, t := range o.Tables {
		if !tableName.MatchString(t) {
			errs = append(errs, fmt.Errorf("capture: table %q is not schema.table", t))
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("capture: table %q is named twice", t))
		}
		seen[t] = true
	}
	if o.MaxFileSize < 0 {
		errs = append(errs, fmt.Errorf("capture: negative MaxFileSize %d", o.MaxFileSize))
	}
	if o.MaxBatchInterval < 0 {
		errs = append(errs, fmt.Errorf("capture: negative MaxBatchInterval %v", o.MaxBatchInterval))
	}
	for _, t := range sorted(mapKeys(o.BeforeImage)) {
		if !seen[t] {
			errs = append(errs, fmt.Errorf("capture: BeforeImage names %q, which is not in Tables", t))
		}
	}
	return errors.Join(errs...)
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// beforeImagePrefix is the prefix of table's before-image columns, and
// whether it has any.
func (o *Options) beforeImagePrefix(table string) (string, bool) {
	p, ok := o.BeforeImage[table]
	if ok && p == "" {
		p = DefaultBeforeImagePrefix
	}
	return p, ok
}

func (o *Options) defaults() {
	if o.MaxFileSize == 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxBatchInterval == 0 {
		o.MaxBatchInterval = DefaultMaxBatchInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// State is what a run leaves for the next one, next to the files it wrote:
// where in the binlog the next run continues, and the last CDC file name.
type State struct {
	Version int `json:"version"`
	// Position is the end of the last transaction written to files.
	Position binlog.Position `json:"position"`
	Tables   []string        `json:"tables"`
	// LastFile is the name of the last CDC file written; later names are
	// greater.
	LastFile string `json:"last_file,omitempty"`
	// LoadFiles is the number of LOAD files written per table.
	LoadFiles map[string]int `json:"load_files"`
}

const stateFile = ".capture-state.json"

// ErrNoState is returned by LoadState for an output folder no run has
// written to.
var ErrNoState = errors.New("capture: no state")

// LoadState reads the state of the output folder dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("capture: reading the state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("capture: state %s is corrupt (%w): remove the output folder and start again from a full load", filepath.Join(dir, stateFile), err)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("capture: state %s has version %d, this program writes 1", filepath.Join(dir, stateFile), s.Version)
	}
	return &s, nil
}

func saveState(dir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("capture: writing the state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("capture: writing the state: %w", err)
	}
	return nil
}

// Result says what a run did.
type Result struct {
	FullLoad     bool
	From, To     binlog.Position
	Transactions int // committed transactions read (of any table)
	Tables       map[string]*TableResult
}

// TableResult counts one table's output of a run.
type TableResult struct {
	LoadRows                  int
	Inserts, Updates, Deletes int
	// Truncates counts the source TRUNCATEs of the table the run read;
	// with HandleSourceTableTruncated each deleted the table's objects.
	Truncates int
	// Reloaded is set when the run reloaded the table (Reload).
	Reloaded bool
	// Files are the paths written, in order (some may be deleted since:
	// see Deleted).
	Files []string
	// Deleted are the paths deleted by a truncate or a reload, in order.
	Deleted []string
}

// Run captures: on the first run into o.Output a full load of every table
// (LOAD files, Op I) at a consistent snapshot, then the changes committed
// since the last run (or the snapshot) up to the current end of the binlog,
// as CDC files. It saves its position with the output, so the next run
// continues there; a run that fails leaves the state as it was, and the
// next run writes the failed run's changes again, in new files, as a DMS
// task restart does.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Result, error) {
	return run(ctx, o, log, nil)
}

// Reload does what DMS's "Reload table" does to the named tables (each
// one of o.Tables) of an output folder a Run already wrote: it captures
// the changes committed since the last run up to a consistent snapshot,
// as Run does, then deletes every object of each table's folder and writes
// a new full load (LOAD00000001.parquet…, the same names with new
// content) from that snapshot. The tables' later changes are in CDC files
// written after their load, by the next Run.
func Reload(ctx context.Context, o Options, log *slog.Logger, tables ...string) (*Result, error) {
	if len(tables) == 0 {
		return nil, errors.New("capture: Reload: no table named")
	}
	for _, t := range tables {
		if !slices.Contains(o.Tables, t) {
			return nil, fmt.Errorf("capture: Reload: %q is not one of the captured tables %s", t, strings.Join(o.Tables, ","))
		}
	}
	return run(ctx, o, log, tables)
}

func run(ctx context.Context, o Options, log *slog.Logger, reload []string) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.defaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	db, err := sql.Open("mysql", o.DSN)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	defer db.Close()
	conn, err := sourceConn(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := checkServer(ctx, conn); err != nil {
		return nil, err
	}
	colls, err := collations(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	res := &Result{Tables: map[string]*TableResult{}}
	for _, t := range o.Tables {
		res.Tables[t] = &TableResult{}
	}
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}

	st, err := LoadState(o.Output)
	switch {
	case errors.Is(err, ErrNoState):
		if reload != nil {
			return nil, fmt.Errorf("capture: Reload: %s has no full load yet: call Run first", o.Output)
		}
	case err != nil:
		return nil, err
	default:
		if !slices.Equal(sorted(st.Tables), sorted(o.Tables)) {
			return nil, fmt.Errorf("capture: %s captures %s, not %s: use a new output folder to capture other tables",
				o.Output, strings.Join(st.Tables, ","), strings.Join(o.Tables, ","))
		}
	}
	lastFile := ""
	if st != nil {
		lastFile = st.LastFile
	}
	target, err := dmstest.NewTarget(dmstest.TargetOptions{Dir: o.Output, MaxFileSize: o.MaxFileSize,
		MaxBatchInterval: o.MaxBatchInterval, Now: o.Now, LastFile: lastFile, Log: log})
	if err != nil {
		return nil, fmt.Errorf("capture: state: %w", err)
	}
	defer func() {
		for t, tr := range res.Tables {
			tr.Files = target.Files(t)
		}
	}()

	if st == nil {
		if st, err = fullLoad(ctx, conn, o, target, res); err != nil {
			return nil, err
		}
		res.FullLoad = true
	}

	// A reload reads its tables at a snapshot whose binlog position ends
	// this run's CDC: changes before it are in the files it deletes,
	// changes after it are the next run's.
	var snap *sql.Conn
	until := binlog.Position{}
	if reload != nil {
		if snap, err = sourceConn(ctx, db); err != nil {
			return nil, err
		}
		defer snap.Close()
		if until, err = startSnapshot(ctx, snap); err != nil {
			return nil, err
		}
		defer snap.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only
	} else if until, err = masterStatus(ctx, conn); err != nil {
		return nil, err
	}

	c := &cdc{o: o, log: log, res: res, colls: colls, tracked: map[string]bool{}, target: target}
	for _, t := range o.Tables {
		c.tracked[t] = true
	}
	res.From, res.To = st.Position, until
	if err := c.run(ctx, st.Position, until); err != nil {
		return nil, err
	}
	if err := target.FlushAll(); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	for _, t := range reload {
		deleted, err := target.DeleteTable(t)
		res.Tables[t].Deleted = append(res.Tables[t].Deleted, deleted...)
		if err != nil {
			return nil, fmt.Errorf("capture: reload: %w", err)
		}
		n, err := loadTable(ctx, snap, o, target, t, res.Tables[t])
		if err != nil {
			return nil, err
		}
		st.LoadFiles[t] = n
		res.Tables[t].Reloaded = true
	}
	st.Position = until
	st.LastFile = target.LastFile()
	if err := saveState(o.Output, st); err != nil {
		return nil, err
	}
	log.Info("capture: done", "from", res.From, "to", res.To, "transactions", res.Transactions, "reloaded", reload)
	return res, nil
}

// sourceConn is a connection whose TIMESTAMP values are in UTC, as the
// binlog holds them.
func sourceConn(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("capture: connecting to the source: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SET time_zone = '+00:00'"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("capture: %w", err)
	}
	return conn, nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// checkServer refuses a server whose binlog cannot give what DMS needs.
func checkServer(ctx context.Context, q querier) error {
	want := map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
	var errs []error
	for _, name := range []string{"log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata"} {
		var n, v string
		if err := q.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE '"+name+"'").Scan(&n, &v); err != nil {
			return fmt.Errorf("capture: reading %s: %w (MariaDB 10.5 or later is needed)", name, err)
		}
		if !strings.EqualFold(v, want[name]) {
			errs = append(errs, fmt.Errorf("capture: the server has %s=%s; start it with --%s=%s",
				name, v, strings.ReplaceAll(name, "_", "-"), want[name]))
		}
	}
	return errors.Join(errs...)
}

func masterStatus(ctx context.Context, q querier) (binlog.Position, error) {
	rows, err := q.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return binlog.Position{}, fmt.Errorf("capture: SHOW MASTER STATUS: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return binlog.Position{}, err
	}
	if !rows.Next() {
		return binlog.Position{}, errors.New("capture: SHOW MASTER STATUS gives nothing: is the binary log on (--log-bin)?")
	}
	var p binlog.Position
	vals := make([]any, len(cols))
	vals[0], vals[1] = &p.File, &p.Offset
	for i := 2; i < len(vals); i++ {
		vals[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(vals...); err != nil {
		return binlog.Position{}, fmt.Errorf("capture: SHOW MASTER STATUS: %w", err)
	}
	return p, rows.Err()
}

// startSnapshot starts a consistent snapshot on conn and returns its
// binlog position, which MariaDB reports: changes after it are in the
// binlog from there, none before it.
func startSnapshot(ctx context.Context, conn *sql.Conn) (binlog.Position, error) {
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return binlog.Position{}, fmt.Errorf("capture: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return binlog.Position{}, fmt.Errorf("capture: starting a consistent snapshot: %w", err)
	}
	var pos binlog.Position
	for name, dst := range map[string]any{"binlog_snapshot_file": &pos.File, "binlog_snapshot_position": &pos.Offset} {
		var n string
		if err := conn.QueryRowContext(ctx, "SHOW STATUS LIKE '"+name+"'").Scan(&n, dst); err != nil {
			return binlog.Position{}, fmt.Errorf("capture: reading %s (MariaDB is needed for a consistent full load): %w", name, err)
		}
	}
	return pos, nil
}

// fullLoad writes every table's LOAD files from one consistent snapshot and
// returns the state positioned at the snapshot's binlog position.
func fullLoad(ctx context.Context, conn *sql.Conn, o Options, target *dmstest.Target, res *Result) (*State, error) {
	pos, err := startSnapshot(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only
	st := &State{Version: 1, Position: pos, Tables: slices.Clone(o.Tables), LoadFiles: map[string]int{}}
	for _, t := range o.Tables {
		n, err := loadTable(ctx, conn, o, target, t, res.Tables[t])
		if err != nil {
			return nil, err
		}
		st.LoadFiles[t] = n
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("capture: ending the full load's snapshot: %w", err)
	}
	if err := saveState(o.Output, st); err != nil {
		return nil, err
	}
	return st, nil
}

// loadTable writes table's LOAD files from the snapshot open on conn and
// returns how many it wrote. Before-image columns are null in a full load:
// no row of it has a before image.
func loadTable(ctx context.Context, conn *sql.Conn, o Options, target *dmstest.Target, table string, tr *TableResult) (int, error) {
	schema, name, _ := strings.Cut(table, ".")
	cols, pk, err := tableColumns(ctx, conn, schema, name)
	if err != nil {
		return 0, fmt.Errorf("capture: %w", err)
	}
	pcols, err := parquetColumns(cols)
	if err != nil {
		return 0, fmt.Errorf("capture: %s: %w", table, err)
	}
	prefix, bi := o.beforeImagePrefix(table)
	if bi {
		if pcols, err = withBeforeImage(table, pcols, pk, prefix); err != nil {
			return 0, err
		}
	}
	load := target.NewLoad(table, pcols)
	err = selectAll(ctx, conn, schema, name, cols, func(row []any) error {
		if bi {
			row = append(row, make([]any, len(pk))...)
		}
		return load.Add(row)
	})
	if err != nil {
		return 0, fmt.Errorf("capture: %w", err)
	}
	files, rows, err := load.Close()
	if err != nil {
		return 0, fmt.Errorf("capture: %w", err)
	}
	tr.LoadRows += rows
	return len(files), nil
}

func parquetColumns(cols []column) ([]dmstest.Column, error) {
	out := make([]dmstest.Column, len(cols))
	for i, c := range cols {
		var err error
		if out[i], err = c.parquet(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// withBeforeImage appends table's before-image columns to its Parquet
// columns: prefix+name for each primary key column (column-filter
// pk-only), of the key column's type, in table order, after the table's
// columns. Where DMS puts them is from an AWS answer showing DMS's output
// for a composite key (re:Post "How to determine which record was updated
// when primary key is updated": "I,30004,1,11,," then
// "U,30004,66,11,30004,1"): after the table's columns, in the key
// columns' order, null in inserts.
func withBeforeImage(table string, pcols []dmstest.Column, pk []int, prefix string) ([]dmstest.Column, error) {
	if len(pk) == 0 {
		return nil, fmt.Errorf("capture: %s has add-before-image-columns (pk-only) but no primary key", table)
	}
	out := slices.Clone(pcols)
	for _, i := range sortedInts(pk) {
		c := pcols[i]
		c.Name = prefix + c.Name
		c.Required = false
		out = append(out, c)
	}
	return out, nil
}

func sortedInts(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// cdc turns binlog transactions into CDC files.
type cdc struct {
	o       Options
	log     *slog.Logger
	res     *Result
	colls   map[uint64]string
	tracked map[string]bool
	target  *dmstest.Target

	inTx    bool
	pending []change
}

// change is one row change of a transaction, converted.
type change struct {
	table string
	op    string
	cols  []dmstest.Column
	row   dmstest.Row
	ts    uint32
}

// statementDML matches the statements that change rows: in a ROW-format
// binlog they never appear as QUERY events inside a transaction.
var statementDML = regexp.MustCompile(`(?i)^\s*(INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA)\b`)

var tableDDL = regexp.MustCompile(`(?i)^\s*(DROP\s+TABLE|RENAME\s+TABLE)\b`)

// truncateDDL matches TRUNCATE [TABLE] name, the name bare or quoted, with
// or without its schema.
var truncateDDL = regexp.MustCompile("(?is)^\\s*TRUNCATE\\s+(?:TABLE\\s+)?(`(?:[^`]|``)+`|[^\\s.`;]+)(?:\\s*\\.\\s*(`(?:[^`]|``)+`|[^\\s.`;]+))?\\s*;?\\s*$")

func unquoteIdent(s string) string {
	if strings.HasPrefix(s, "`") {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

func (c *cdc) run(ctx context.Context, from, until binlog.Position) error {
	r, err := binlog.Open(binlog.Options{Index: c.o.BinlogIndex, From: from, Until: until})
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer r.Close()
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		switch b := ev.Body.(type) {
		case *binlog.GTID:
			if !b.Standalone {
				c.begin()
			}
		case *binlog.Query:
			sqlText := strings.TrimSpace(b.SQL)
			switch strings.ToUpper(sqlText) {
			case "BEGIN":
				c.begin()
			case "COMMIT":
				if err := c.commit(); err != nil {
					return err
				}
			case "ROLLBACK":
				c.inTx, c.pending = false, nil
			default:
				if c.inTx && statementDML.MatchString(sqlText) {
					return fmt.Errorf("capture: %s: a statement logged as text inside a transaction (%.60q): the server must run with --binlog-format=ROW", ev.Pos, sqlText)
				}
				if m := truncateDDL.FindStringSubmatch(sqlText); m != nil {
					if err := c.truncate(ev, b, m); err != nil {
						return err
					}
				}
				if tableDDL.MatchString(sqlText) {
					c.log.Warn("capture: DDL that DMS turns into a dropped table folder; icemerge keeps the table's rows", "at", ev.Pos, "sql", sqlText)
				}
			}
		case *binlog.XID:
			if err := c.commit(); err != nil {
				return err
			}
		case *binlog.Rows:
			if err := c.rows(ev, b); err != nil {
				return err
			}
		}
	}
	if c.inTx {
		return fmt.Errorf("capture: the binlog ends at %s inside a transaction: %w", until, binlog.ErrCorrupt)
	}
	return nil
}

// truncate handles a TRUNCATE statement: for a captured table, with
// HandleSourceTableTruncated, the deletion of every object of its folder
// (its pending changes included), as DMS does.
func (c *cdc) truncate(ev *binlog.Event, q *binlog.Query, m []string) error {
	schema, table := q.Schema, unquoteIdent(m[1])
	if m[2] != "" {
		schema, table = table, unquoteIdent(m[2])
	}
	name := schema + "." + table
	if !c.tracked[name] {
		return nil
	}
	tr := c.res.Tables[name]
	tr.Truncates++
	if !c.o.HandleSourceTableTruncated {
		c.log.Warn("capture: TRUNCATE of a captured table is not replicated (DMS without HandleSourceTableTruncated): the target keeps the table's rows", "at", ev.Pos, "table", name)
		return nil
	}
	deleted, err := c.target.DeleteTable(name)
	tr.Deleted = append(tr.Deleted, deleted...)
	if err != nil {
		return fmt.Errorf("capture: %s: TRUNCATE %s: %w", ev.Pos, name, err)
	}
	return nil
}

func (c *cdc) begin() { c.inTx, c.pending = true, c.pending[:0] }

// rows converts a rows event of a captured table into changes, as DMS
// writes them for a MySQL source with binlog_row_image=FULL: I with the
// after image, U with the after image (one U also when the primary key
// changes: DMS does not name the old key), D with the before image; with
// before-image columns, the key's values before the change after them.
func (c *cdc) rows(ev *binlog.Event, rows *binlog.Rows) error {
	tm := rows.Table
	name := tm.Schema + "." + tm.Table
	if !c.tracked[name] {
		return nil
	}
	if !tm.HasFullMetadata() {
		return fmt.Errorf("capture: %s: the table map of %s has no column names or character sets: start the server with --binlog-row-metadata=FULL", ev.Pos, name)
	}
	cols := make([]column, len(tm.Columns))
	for i := range tm.Columns {
		var err error
		if cols[i], err = fromTableMap(&tm.Columns[i], c.colls); err != nil {
			return fmt.Errorf("capture: %s: %s: %w", ev.Pos, name, err)
		}
	}
	pcols, err := parquetColumns(cols)
	if err != nil {
		return fmt.Errorf("capture: %s: %s: %w", ev.Pos, name, err)
	}
	prefix, bi := c.o.beforeImagePrefix(name)
	var pk []int
	if bi {
		pk = sortedInts(tm.PrimaryKey)
		if pcols, err = withBeforeImage(name, pcols, pk, prefix); err != nil {
			return fmt.Errorf("%w (at %s)", err, ev.Pos)
		}
	}
	convert := func(img []any) (dmstest.Row, error) {
		row := make(dmstest.Row, len(img), len(img)+len(pk))
		for i, v := range img {
			if v == binlog.Absent {
				return nil, fmt.Errorf("column %s is not in the row image: the server must run with --binlog-row-image=FULL", cols[i].name)
			}
			var err error
			if row[i], err = cols[i].fromBinlog(v); err != nil {
				return nil, err
			}
		}
		return row, nil
	}
	add := func(op string, row, before dmstest.Row) {
		if bi {
			for _, i := range pk {
				if before == nil {
					row = append(row, nil) // an insert has no before image
				} else {
					row = append(row, before[i])
				}
			}
		}
		c.pending = append(c.pending, change{table: name, op: op, cols: pcols, row: row, ts: ev.Header.Timestamp})
	}
	for i, ch := range rows.Rows {
		var before, after dmstest.Row
		var err error
		if ch.Before != nil {
			before, err = convert(ch.Before)
		}
		if err == nil && ch.After != nil {
			after, err = convert(ch.After)
		}
		if err != nil {
			return fmt.Errorf("capture: %s: %s row %d: %w", ev.Pos, name, i+1, err)
		}
		switch rows.Kind {
		case binlog.Insert:
			add("I", after, nil)
		case binlog.Delete:
			add("D", before, before)
		case binlog.Update:
			add("U", after, before)
		}
	}
	return nil
}

// commit moves a committed transaction's changes into the target, which
// cuts files by schema, size and time.
func (c *cdc) commit() error {
	c.res.Transactions++
	for _, ch := range c.pending {
		if err := c.target.Change(ch.table, ch.cols, ch.op, ch.row, time.Unix(int64(ch.ts), 0)); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		tr := c.res.Tables[ch.table]
		switch ch.op {
		case "I":
			tr.Inserts++
		case "U":
			tr.Updates++
		case "D":
			tr.Deletes++
		}
	}
	c.inTx, c.pending = false, c.pending[:0]
	return nil
}
