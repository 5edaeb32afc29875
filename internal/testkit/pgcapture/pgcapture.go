package pgcapture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// Options configures a capture run.
type Options struct {
	// ConnString is the source database, a libpq URI or key=value string.
	// The user needs REPLICATION (or superuser), SELECT on the tables and
	// CREATE on the database (for the publication).
	ConnString string
	// Output is the local folder DMS would write to (its BucketFolder):
	// each table's files go to Output/<schema>/<table>/, the state to
	// Output/.pgcapture-state.json.
	Output string
	// Tables are the captured tables, "schema.table".
	Tables []string
	// Slot and Publication name the logical replication slot and the
	// publication capture makes (default "icemerge_capture" both).
	Slot, Publication string
	// MaxFileSize, MaxBatchInterval and Now: as DMS's CdcMinFileSize,
	// CdcMaxBatchInterval and its clock (see dmstest.TargetOptions).
	MaxFileSize      int64
	MaxBatchInterval time.Duration
	Now              func() time.Time
	// BeforeImage names the tables with DMS's transformation rule
	// add-before-image-columns (column-filter pk-only), each with its
	// column-prefix ("" is DMS's default, "BI_").
	BeforeImage map[string]string
	// HandleSourceTableTruncated is DMS's task setting: a TRUNCATE deletes
	// every object of the table's folder. Without it a TRUNCATE is not
	// replicated (a warning is logged).
	HandleSourceTableTruncated bool
}

// DefaultBeforeImagePrefix is DMS's default column-prefix of
// add-before-image-columns.
const DefaultBeforeImagePrefix = "BI_"

var (
	tableName = regexp.MustCompile(`^[^.\s"]+\.[^.\s"]+$`)
	slotName  = regexp.MustCompile(`^[a-z0-9_]{1,50}$`)
)

// Validate reports every problem of o at once, before any I/O.
func (o *Options) Validate() error {
	var errs []error
	if o.ConnString == "" {
		errs = append(errs, errors.New("pgcapture: no source connection string (postgres://user@host:5432/db)"))
	} else if _, err := pgconn.ParseConfig(o.ConnString); err != nil {
		errs = append(errs, fmt.Errorf("pgcapture: source connection string: %w", err))
	}
	if o.Output == "" {
		errs = append(errs, errors.New("pgcapture: no output folder"))
	}
	if len(o.Tables) == 0 {
		errs = append(errs, errors.New("pgcapture: no tables (schema.table, …)"))
	}
	seen := map[string]bool{}
	for _, t := range o.Tables {
		if !tableName.MatchString(t) {
			errs = append(errs, fmt.Errorf("pgcapture: table %q is not schema.table", t))
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("pgcapture: table %q is named twice", t))
		}
		seen[t] = true
	}
	for _, n := range []string{o.Slot, o.Publication} {
		if n != "" && !slotName.MatchString(n) {
			errs = append(errs, fmt.Errorf("pgcapture: slot or publication name %q: use 1-50 of a-z, 0-9, _", n))
		}
	}
	for t := range o.BeforeImage {
		if !seen[t] {
			errs = append(errs, fmt.Errorf("pgcapture: BeforeImage names %q, which is not in Tables", t))
		}
	}
	if o.MaxFileSize < 0 || o.MaxBatchInterval < 0 {
		errs = append(errs, fmt.Errorf("pgcapture: negative MaxFileSize %d or MaxBatchInterval %v", o.MaxFileSize, o.MaxBatchInterval))
	}
	return errors.Join(errs...)
}

func (o *Options) defaults() {
	if o.Slot == "" {
		o.Slot = "icemerge_capture"
	}
	if o.Publication == "" {
		o.Publication = "icemerge_capture"
	}
}

func (o *Options) beforeImagePrefix(table string) (string, bool) {
	p, ok := o.BeforeImage[table]
	if ok && p == "" {
		p = DefaultBeforeImagePrefix
	}
	return p, ok
}

// State is what a run leaves for the next one, next to the files.
type State struct {
	Version int `json:"version"`
	// LSN is where the next run streams from: the end of the last run.
	LSN       string         `json:"lsn"`
	Slot      string         `json:"slot"`
	Tables    []string       `json:"tables"`
	LastFile  string         `json:"last_file,omitempty"`
	LoadFiles map[string]int `json:"load_files"`
}

const stateFile = ".pgcapture-state.json"

// ErrNoState is returned by LoadState for an output folder no run has
// written to.
var ErrNoState = errors.New("pgcapture: no state")

// ErrUnchangedTOAST is returned for an UPDATE whose new row lacks a
// TOASTed value it did not change (pgoutput's 'u'), under a replica
// identity that gives no old value to take it from: what DMS writes for
// such a column is not known (see the package documentation).
var ErrUnchangedTOAST = errors.New("pgcapture: unchanged TOASTed value without its old value")

// LoadState reads the state of the output folder dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("pgcapture: reading the state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil || s.Version != 1 {
		return nil, fmt.Errorf("pgcapture: state %s is corrupt or of another version (%v): remove the output folder and the slot, and start again", filepath.Join(dir, stateFile), err)
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
		return fmt.Errorf("pgcapture: writing the state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("pgcapture: writing the state: %w", err)
	}
	return nil
}

// Result says what a run did.
type Result struct {
	FullLoad     bool
	From, To     string // LSNs
	Transactions int
	Tables       map[string]*TableResult
}

// TableResult counts one table's output of a run.
type TableResult struct {
	LoadRows                  int
	Inserts, Updates, Deletes int
	Truncates                 int
	Reloaded                  bool
	Files                     []string // written, in order (some may be deleted since)
	Deleted                   []string // deleted by a truncate or a reload
}

// Run captures: on the first run into o.Output it makes the publication
// and the slot, writes every table's full load from the slot's exported
// snapshot, then streams the changes committed since (or since the last
// run) up to now from the slot, as CDC files in commit order. The slot's
// position is confirmed only after the files and the state are written, so
// a run that fails is repeated by the next one, in new files, as a DMS task
// restart does.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Result, error) {
	return run(ctx, o, log, nil)
}

// Reload does what DMS's "Reload table" does to the named tables: the
// changes committed before a consistent snapshot are written as in Run,
// then each table's objects are deleted and a new full load is written
// from the snapshot (the same LOAD names), then the changes after the
// snapshot follow in CDC files.
func Reload(ctx context.Context, o Options, log *slog.Logger, tables ...string) (*Result, error) {
	if len(tables) == 0 {
		return nil, errors.New("pgcapture: Reload: no table named")
	}
	for _, t := range tables {
		if !slices.Contains(o.Tables, t) {
			return nil, fmt.Errorf("pgcapture: Reload: %q is not one of the captured tables %s", t, strings.Join(o.Tables, ","))
		}
	}
	return run(ctx, o, log, tables)
}

// sessionParams fix the text forms values arrive in, on every connection.
var sessionParams = map[string]string{"TimeZone": "UTC", "DateStyle": "ISO, YMD", "extra_float_digits": "3",
	"bytea_output": "hex", "client_encoding": "UTF8"}

func connect(ctx context.Context, connString string, replication bool) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgcapture: %w", err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgcapture: connecting to the source: %w", err)
	}
	return conn, nil
}

func run(ctx context.Context, o Options, log *slog.Logger, reload []string) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.defaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		return nil, fmt.Errorf("pgcapture: %w", err)
	}
	res := &Result{Tables: map[string]*TableResult{}}
	for _, t := range o.Tables {
		res.Tables[t] = &TableResult{}
	}
	st, err := LoadState(o.Output)
	switch {
	case errors.Is(err, ErrNoState):
		if reload != nil {
			return nil, fmt.Errorf("pgcapture: Reload: %s has no full load yet: call Run first", o.Output)
		}
		st = nil
	case err != nil:
		return nil, err
	default:
		if !slices.Equal(sorted(st.Tables), sorted(o.Tables)) || st.Slot != o.Slot {
			return nil, fmt.Errorf("pgcapture: %s captures %s with slot %s, not %s with slot %s: use a new output folder",
				o.Output, strings.Join(st.Tables, ","), st.Slot, strings.Join(o.Tables, ","), o.Slot)
		}
	}
	lastFile := ""
	if st != nil {
		lastFile = st.LastFile
	}
	target, err := dmstest.NewTarget(dmstest.TargetOptions{Dir: o.Output, MaxFileSize: o.MaxFileSize,
		MaxBatchInterval: o.MaxBatchInterval, Now: o.Now, LastFile: lastFile, Log: log})
	if err != nil {
		return nil, fmt.Errorf("pgcapture: state: %w", err)
	}
	defer func() {
		for t, tr := range res.Tables {
			tr.Files = target.Files(t)
		}
	}()

	db, err := connect(ctx, o.ConnString, false)
	if err != nil {
		return nil, err
	}
	defer db.Close(context.WithoutCancel(ctx))
	repl, err := connect(ctx, o.ConnString, true)
	if err != nil {
		return nil, err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	cat := &catalog{conn: db, types: map[uint32]typeInfo{}}

	if st == nil {
		if st, err = fullLoad(ctx, o, db, repl, cat, target, res, log); err != nil {
			return nil, err
		}
		res.FullLoad = true
	}

	s := &stream{o: o, log: log, res: res, cat: cat, target: target, rels: map[uint32]*relation{}}
	for _, t := range o.Tables {
		s.tracked = append(s.tracked, t)
	}
	if reload != nil {
		// The snapshot of a temporary slot: commits before its consistent
		// point are in it, later ones in the stream after it.
		snap, err := connect(ctx, o.ConnString, false)
		if err != nil {
			return nil, err
		}
		defer snap.Close(context.WithoutCancel(ctx))
		tmp, err := connect(ctx, o.ConnString, true)
		if err != nil {
			return nil, err
		}
		slot, err := pglogrepl.CreateReplicationSlot(ctx, tmp, o.Slot+"_reload_"+nonce()[:8], "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT"})
		if err != nil {
			tmp.Close(ctx)
			return nil, fmt.Errorf("pgcapture: reload: creating a slot for its snapshot: %w", err)
		}
		err = importSnapshot(ctx, snap, slot.SnapshotName)
		tmp.Close(ctx) // the snapshot lives on in snap's transaction
		if err != nil {
			return nil, err
		}
		if s.reloadAt, err = pglogrepl.ParseLSN(slot.ConsistentPoint); err != nil {
			return nil, fmt.Errorf("pgcapture: reload: %w", err)
		}
		s.reload, s.snap, s.st = reload, snap, st
	}

	from, err := pglogrepl.ParseLSN(st.LSN)
	if err != nil {
		return nil, fmt.Errorf("pgcapture: state LSN %q: %w", st.LSN, err)
	}
	res.From = from.String()
	// The end of this run: a non-transactional message written now, which
	// the slot decodes after every transaction committed before it.
	mark := nonce()
	var endText string
	if err := queryOne(ctx, db, "SELECT pg_logical_emit_message(false, '"+markPrefix+"', '"+mark+"')::text", &endText); err != nil {
		return nil, fmt.Errorf("pgcapture: writing the end mark (PostgreSQL 14 or later is needed): %w", err)
	}
	end, _ := pglogrepl.ParseLSN(endText)
	if err := s.run(ctx, repl, from, mark); err != nil {
		return nil, err
	}
	if err := target.FlushAll(); err != nil {
		return nil, fmt.Errorf("pgcapture: %w", err)
	}
	st.LSN = end.String()
	st.LastFile = target.LastFile()
	if err := saveState(o.Output, st); err != nil {
		return nil, err
	}
	// Only now may the slot forget what this run read.
	if err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: end}); err != nil {
		return nil, fmt.Errorf("pgcapture: confirming %s to the slot: %w", end, err)
	}
	res.To = end.String()
	log.Info("pgcapture: done", "from", res.From, "to", res.To, "transactions", res.Transactions)
	return res, nil
}

const markPrefix = "icemerge-pgcapture"

func nonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func quoteTable(t string) string {
	schema, name, _ := strings.Cut(t, ".")
	return pgx.Identifier{schema, name}.Sanitize()
}

// queryOne runs a query returning one text value.
func queryOne(ctx context.Context, conn *pgconn.PgConn, sql string, dst *string) error {
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return fmt.Errorf("%.60s: %d rows", sql, len(res.Rows))
	}
	*dst = string(res.Rows[0][0])
	return nil
}

func exec(ctx context.Context, conn *pgconn.PgConn, sql string) error {
	_, err := conn.Exec(ctx, sql).ReadAll()
	return err
}

func importSnapshot(ctx context.Context, conn *pgconn.PgConn, name string) error {
	if err := exec(ctx, conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"); err != nil {
		return fmt.Errorf("pgcapture: %w", err)
	}
	if err := exec(ctx, conn, "SET TRANSACTION SNAPSHOT '"+name+"'"); err != nil {
		return fmt.Errorf("pgcapture: importing the slot's snapshot %s: %w", name, err)
	}
	return nil
}

// fullLoad makes the publication and the slot, and writes every table's
// LOAD files from the snapshot the slot exports: the changes the slot
// streams from its consistent point are exactly those after the load.
func fullLoad(ctx context.Context, o Options, db, repl *pgconn.PgConn, cat *catalog, target *dmstest.Target, res *Result, log *slog.Logger) (*State, error) {
	names := make([]string, len(o.Tables))
	for i, t := range o.Tables {
		names[i] = quoteTable(t)
	}
	var exists string
	if err := queryOne(ctx, db, "SELECT count(*)::text FROM pg_publication WHERE pubname = '"+o.Publication+"'", &exists); err != nil {
		return nil, fmt.Errorf("pgcapture: %w", err)
	}
	if exists == "0" {
		if err := exec(ctx, db, "CREATE PUBLICATION "+o.Publication+" FOR TABLE "+strings.Join(names, ", ")); err != nil {
			return nil, fmt.Errorf("pgcapture: creating publication %s: %w", o.Publication, err)
		}
	}
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, o.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, fmt.Errorf("pgcapture: creating slot %s (drop a stale one with pg_drop_replication_slot): %w", o.Slot, err)
	}
	load, err := connect(ctx, o.ConnString, false)
	if err != nil {
		return nil, err
	}
	defer load.Close(context.WithoutCancel(ctx))
	if err := importSnapshot(ctx, load, slot.SnapshotName); err != nil {
		return nil, err
	}
	st := &State{Version: 1, LSN: slot.ConsistentPoint, Slot: o.Slot, Tables: slices.Clone(o.Tables), LoadFiles: map[string]int{}}
	for _, t := range o.Tables {
		n, err := loadTable(ctx, o, load, cat, target, t, res.Tables[t])
		if err != nil {
			return nil, err
		}
		st.LoadFiles[t] = n
	}
	if err := exec(ctx, load, "COMMIT"); err != nil {
		return nil, fmt.Errorf("pgcapture: %w", err)
	}
	if err := saveState(o.Output, st); err != nil {
		return nil, err
	}
	log.Info("pgcapture: full load", "slot", o.Slot, "consistent_point", slot.ConsistentPoint)
	return st, nil
}

// loadTable writes table's LOAD files from the snapshot of conn's open
// transaction, reading every value in text form, as pgoutput sends them.
func loadTable(ctx context.Context, o Options, conn *pgconn.PgConn, cat *catalog, target *dmstest.Target, table string, tr *TableResult) (int, error) {
	rel, err := cat.table(ctx, table)
	if err != nil {
		return 0, err
	}
	pcols, err := rel.parquet(o)
	if err != nil {
		return 0, err
	}
	_, bi := o.beforeImagePrefix(table)
	quoted := make([]string, len(rel.cols))
	for i, c := range rel.cols {
		quoted[i] = pgx.Identifier{c.name}.Sanitize()
	}
	load := target.NewLoad(table, pcols)
	rr := conn.ExecParams(ctx, "SELECT "+strings.Join(quoted, ", ")+" FROM "+quoteTable(table), nil, nil, nil, nil)
	n := 0
	for rr.NextRow() {
		n++
		vals := rr.Values()
		row := make(dmstest.Row, len(rel.cols), len(pcols))
		for i, c := range rel.cols {
			if vals[i] == nil {
				continue
			}
			if row[i], err = c.value(vals[i]); err != nil {
				rr.Close()
				return 0, fmt.Errorf("pgcapture: full load of %s, row %d: %w", table, n, err)
			}
		}
		if bi {
			row = append(row, make(dmstest.Row, len(rel.pk))...) // no before image in a full load
		}
		if err := load.Add(row); err != nil {
			rr.Close()
			return 0, fmt.Errorf("pgcapture: %w", err)
		}
	}
	if _, err := rr.Close(); err != nil {
		return 0, fmt.Errorf("pgcapture: full load of %s: %w", table, err)
	}
	files, rows, err := load.Close()
	if err != nil {
		return 0, fmt.Errorf("pgcapture: %w", err)
	}
	tr.LoadRows += rows
	return len(files), nil
}
