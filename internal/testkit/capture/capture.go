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
	"reflect"
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
}

// Defaults DMS uses for its S3 target.
const (
	DefaultMaxFileSize      = 32 << 20
	DefaultMaxBatchInterval = 60 * time.Second
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
	return errors.Join(errs...)
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
	Files                     []string // paths written, in order
}

// Run captures: on the first run into o.Output a full load of every table
// (LOAD files, Op I) at a consistent snapshot, then the changes committed
// since the last run (or the snapshot) up to the current end of the binlog,
// as CDC files. It saves its position with the output, so the next run
// continues there; a run that fails leaves the state as it was, and the
// next run writes the failed run's changes again, in new files, as a DMS
// task restart does.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Result, error) {
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
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("capture: connecting to the source: %w", err)
	}
	defer conn.Close()
	// TIMESTAMP values of the full load in UTC, as the binlog holds them.
	if _, err := conn.ExecContext(ctx, "SET time_zone = '+00:00'"); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
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

	st, err := LoadState(o.Output)
	switch {
	case errors.Is(err, ErrNoState):
		if st, err = fullLoad(ctx, conn, o, res, log); err != nil {
			return nil, err
		}
		res.FullLoad = true
	case err != nil:
		return nil, err
	default:
		if !slices.Equal(sorted(st.Tables), sorted(o.Tables)) {
			return nil, fmt.Errorf("capture: %s captures %s, not %s: use a new output folder to capture other tables",
				o.Output, strings.Join(st.Tables, ","), strings.Join(o.Tables, ","))
		}
	}
	c := &cdc{o: o, log: log, res: res, colls: colls, tracked: map[string]bool{}, batches: map[string]*batch{},
		names: &namer{now: o.Now}}
	for _, t := range o.Tables {
		c.tracked[t] = true
	}
	if st.LastFile != "" {
		if c.names.last, err = parseCDCName(st.LastFile); err != nil {
			return nil, fmt.Errorf("capture: state: %w", err)
		}
	}
	until, err := masterStatus(ctx, conn)
	if err != nil {
		return nil, err
	}
	res.From, res.To = st.Position, until
	if err := c.run(ctx, st.Position, until); err != nil {
		return nil, err
	}
	st.Position = until
	if !c.names.last.IsZero() {
		st.LastFile = strings.Replace(c.names.last.Format(cdcNameLayout), ".", "", 1) + ".parquet"
	}
	if err := saveState(o.Output, st); err != nil {
		return nil, err
	}
	log.Info("capture: done", "from", res.From, "to", res.To, "transactions", res.Transactions)
	return res, nil
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

// fullLoad writes every table's LOAD files from one consistent snapshot and
// returns the state positioned at the snapshot's binlog position.
func fullLoad(ctx context.Context, conn *sql.Conn, o Options, res *Result, log *slog.Logger) (*State, error) {
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return nil, fmt.Errorf("capture: starting the full load's snapshot: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only
	// MariaDB gives the binlog position of the snapshot: changes after it
	// are in the binlog from there, none before it.
	var pos binlog.Position
	for name, dst := range map[string]any{"binlog_snapshot_file": &pos.File, "binlog_snapshot_position": &pos.Offset} {
		var n string
		if err := conn.QueryRowContext(ctx, "SHOW STATUS LIKE '"+name+"'").Scan(&n, dst); err != nil {
			return nil, fmt.Errorf("capture: reading %s (MariaDB is needed for a consistent full load): %w", name, err)
		}
	}
	st := &State{Version: 1, Position: pos, Tables: slices.Clone(o.Tables), LoadFiles: map[string]int{}}
	for _, t := range o.Tables {
		schema, table, _ := strings.Cut(t, ".")
		cols, err := tableColumns(ctx, conn, schema, table)
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		pcols := make([]dmstest.Column, len(cols))
		for i, c := range cols {
			if pcols[i], err = c.parquet(); err != nil {
				return nil, fmt.Errorf("capture: %s: %w", t, err)
			}
		}
		tr := res.Tables[t]
		b := &batch{cols: pcols}
		flush := func() error {
			st.LoadFiles[t]++
			path := filepath.Join(o.Output, schema, table, fmt.Sprintf("LOAD%08X.parquet", st.LoadFiles[t]))
			if err := writeFile(path, b.cols, b.ops, b.rows); err != nil {
				return fmt.Errorf("capture: full load of %s: %w", t, err)
			}
			tr.Files = append(tr.Files, path)
			log.Info("capture: full load file", "table", t, "file", path, "rows", len(b.rows))
			b = &batch{cols: pcols}
			return nil
		}
		err = selectAll(ctx, conn, schema, table, cols, func(row []any) error {
			b.ops = append(b.ops, "I")
			b.rows = append(b.rows, row)
			b.bytes += estimate(row)
			tr.LoadRows++
			if b.bytes >= o.MaxFileSize {
				return flush()
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		if len(b.rows) > 0 { // an empty table gets no LOAD file, as with DMS
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("capture: ending the full load's snapshot: %w", err)
	}
	if err := saveState(o.Output, st); err != nil {
		return nil, err
	}
	return st, nil
}

// cdc turns binlog transactions into CDC files.
type cdc struct {
	o       Options
	log     *slog.Logger
	res     *Result
	colls   map[uint64]string
	tracked map[string]bool
	batches map[string]*batch // by table
	names   *namer

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

var tableDDL = regexp.MustCompile(`(?i)^\s*(TRUNCATE|DROP\s+TABLE|RENAME\s+TABLE)\b`)

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
	for t := range c.batches {
		if err := c.flush(t); err != nil {
			return err
		}
	}
	return nil
}

func (c *cdc) begin() { c.inTx, c.pending = true, c.pending[:0] }

// rows converts a rows event of a captured table into changes: I with the
// after image, U with the after image, D with the before image.
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
	pcols := make([]dmstest.Column, len(tm.Columns))
	for i := range tm.Columns {
		var err error
		if cols[i], err = fromTableMap(&tm.Columns[i], c.colls); err != nil {
			return fmt.Errorf("capture: %s: %s: %w", ev.Pos, name, err)
		}
		if pcols[i], err = cols[i].parquet(); err != nil {
			return fmt.Errorf("capture: %s: %s: %w", ev.Pos, name, err)
		}
	}
	convert := func(img []any) (dmstest.Row, error) {
		row := make(dmstest.Row, len(img))
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
	add := func(op string, row dmstest.Row) {
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
			add("I", after)
		case binlog.Delete:
			add("D", before)
		case binlog.Update:
			if keyChanged(tm.PrimaryKey, before, after) {
				// DMS writes only the U, which would leave the old key's
				// row in the target: delete it explicitly.
				add("D", before)
				add("I", after)
				break
			}
			add("U", after)
		}
	}
	return nil
}

func keyChanged(pk []int, before, after dmstest.Row) bool {
	for _, i := range pk {
		if !reflect.DeepEqual(before[i], after[i]) {
			return true
		}
	}
	return false
}

// commit moves a committed transaction's changes into their tables'
// batches, cutting files by schema, size and time.
func (c *cdc) commit() error {
	c.res.Transactions++
	for _, ch := range c.pending {
		b := c.batches[ch.table]
		if b != nil && (!sameColumns(b.cols, ch.cols) || time.Duration(ch.ts-b.first)*time.Second >= c.o.MaxBatchInterval && ch.ts > b.first) {
			// A new schema (ALTER TABLE) starts a new file, as does the
			// batch interval.
			if err := c.flush(ch.table); err != nil {
				return err
			}
			b = nil
		}
		if b == nil {
			b = &batch{cols: ch.cols, first: ch.ts}
			c.batches[ch.table] = b
		}
		b.ops = append(b.ops, ch.op)
		b.rows = append(b.rows, ch.row)
		b.bytes += estimate(ch.row)
		tr := c.res.Tables[ch.table]
		switch ch.op {
		case "I":
			tr.Inserts++
		case "U":
			tr.Updates++
		case "D":
			tr.Deletes++
		}
		if b.bytes >= c.o.MaxFileSize {
			if err := c.flush(ch.table); err != nil {
				return err
			}
		}
	}
	c.inTx, c.pending = false, c.pending[:0]
	return nil
}

// flush writes a table's batch as a CDC file.
func (c *cdc) flush(table string) error {
	b := c.batches[table]
	delete(c.batches, table)
	if b == nil || len(b.rows) == 0 {
		return nil
	}
	schema, name, _ := strings.Cut(table, ".")
	path := filepath.Join(c.o.Output, schema, name, c.names.next())
	if err := writeFile(path, b.cols, b.ops, b.rows); err != nil {
		return fmt.Errorf("capture: %s: %w", table, err)
	}
	tr := c.res.Tables[table]
	tr.Files = append(tr.Files, path)
	c.log.Info("capture: cdc file", "table", table, "file", path, "rows", len(b.rows))
	return nil
}
