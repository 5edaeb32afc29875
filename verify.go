package icemerge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/icemerge/icemerge/catalog"
)

// VerifyOptions are the settings of `icemerge verify`: prove that a table
// holds what its source database holds, row for row, and mend it.
type VerifyOptions struct {
	Common `embed:""`

	// SourceDB is the database DMS reads: mysql://… or postgres://….
	SourceDB string `name:"source-db" help:"The source database: mysql://USER[:PASSWORD]@HOST:PORT/DATABASE (MySQL, MariaDB, Aurora MySQL; ?tls=true) or postgres://USER[:PASSWORD]@HOST:PORT/DATABASE. The user needs SELECT on the table only." placeholder:"URL"`
	// SourceTable is SCHEMA.NAME or NAME; empty: the table's name, in the
	// URL's database (MySQL) or on the search path (PostgreSQL).
	SourceTable string `help:"The source table, SCHEMA.NAME (default: the Iceberg table's name, in the URL's database)." placeholder:"SCHEMA.NAME"`
	// OrderBy is the runs' --order-by: source rows whose order value is
	// newer than the newest the table holds are lag, not differences.
	OrderBy Columns `name:"order-by" help:"The column(s) the runs order changes by: source rows newer than the newest value in the table are reported as lag, not as differences ('source': no lag check)." default:"updated_at" placeholder:"COL,..."`
	// SkipColumns are not compared (a repair keeps the table's values).
	SkipColumns Columns `name:"skip-columns" help:"Columns not to compare, comma-separated (a repair keeps the table's values of them)." placeholder:"COL,..."`
	Repair      bool    `help:"Make the table equal to the database for the keys that differ, in one commit under the table's run lock; the bookmark is untouched."`
	MaxKeys     int     `help:"List at most this many keys of each kind of difference." default:"20" placeholder:"N"`
	MaxRepair   int     `help:"Refuse a repair of more keys than this (a larger one is a reload: reset the bookmark and load the table again)." default:"1000000" placeholder:"N"`
	TempDir     string  `help:"Where the comparison spills keys and row hashes: about 25 bytes per row and side, more for long keys (default: the system's temporary folder)." placeholder:"DIR"`
	// Wait and LockTTL apply to --repair, which holds the run lock.
	Wait    time.Duration `help:"--repair: wait this long for a run of the table to finish (0: exit 3 at once)." default:"0s"`
	LockTTL time.Duration `name:"lock-ttl" help:"--repair: the lease of the table's run lock, renewed while verifying." default:"10m"`
}

// NewVerifyOptions are the defaults of a verification.
func NewVerifyOptions() VerifyOptions {
	var o VerifyOptions
	applyDefaults(&o)
	return o
}

// Validate reports every problem at once.
func (o VerifyOptions) Validate() error {
	errs := []error{o.Common.validate(true)}
	if o.SourceDB == "" {
		errs = append(errs, errors.New("--source-db is required: mysql://USER[:PASSWORD]@HOST:PORT/DATABASE or postgres://USER[:PASSWORD]@HOST:PORT/DATABASE"))
	} else if engine, err := sourceEngine(o.SourceDB); err != nil {
		errs = append(errs, fmt.Errorf("--source-db: %w", err))
	} else if engine == engineMySQL {
		if _, err := mysqlConfig(o.SourceDB); err != nil {
			errs = append(errs, err)
		}
	} else if err := catalog.CheckPostgresURI(o.SourceDB); err != nil {
		errs = append(errs, fmt.Errorf("--source-db: %w", err))
	}
	if o.SourceTable != "" {
		if _, err := o.sourceTable(""); err != nil {
			errs = append(errs, err)
		}
	}
	if o.MaxKeys < 0 {
		errs = append(errs, errors.New("--max-keys must be 0 or more"))
	}
	if o.MaxRepair < 1 {
		errs = append(errs, errors.New("--max-repair must be at least 1"))
	}
	if o.Wait < 0 {
		errs = append(errs, errors.New("--wait cannot be negative"))
	}
	if o.Repair && o.LockTTL < minLockTTL {
		errs = append(errs, fmt.Errorf("--lock-ttl %s: use at least %s", o.LockTTL, minLockTTL))
	}
	return usage(errors.Join(errs...))
}

// sourceTable is the source table: --source-table, else the table's name
// in the URL's database (MySQL: database; PostgreSQL: the search path).
func (o VerifyOptions) sourceTable(engine string) (srcTable, error) {
	if o.SourceTable == "" {
		_, name, _ := catalog.ParseName(o.Table)
		t := srcTable{Name: name}
		if engine == engineMySQL {
			if cfg, err := mysqlConfig(o.SourceDB); err == nil {
				t.Schema = cfg.DBName
			}
			if t.Schema == "" {
				return t, usage(errors.New("--source-db names no database: add /DATABASE to the URL or pass --source-table SCHEMA.NAME"))
			}
		}
		return t, nil
	}
	schema, name, ok := strings.Cut(o.SourceTable, ".")
	if !ok {
		schema, name = "", o.SourceTable
		if engine == engineMySQL {
			cfg, err := mysqlConfig(o.SourceDB)
			if err != nil || cfg.DBName == "" {
				return srcTable{}, usage(fmt.Errorf("--source-table %q names no schema and --source-db no database: pass SCHEMA.NAME", o.SourceTable))
			}
			schema = cfg.DBName
		}
	}
	if name == "" || (ok && schema == "") {
		return srcTable{}, usage(fmt.Errorf("--source-table %q: want SCHEMA.NAME or NAME", o.SourceTable))
	}
	return srcTable{Schema: schema, Name: name}, nil
}

// ErrNotEqual is what a verification that found differences wraps (as a
// *NotEqualError): the command exits 1.
var ErrNotEqual = errors.New("the table differs from its source database")

// NotEqualError says how a table differs from its source database.
type NotEqualError struct{ Result *VerifyResult }

func (e *NotEqualError) Error() string {
	r := e.Result
	var parts []string
	for _, k := range []struct {
		what string
		l    KeyList
	}{{"missing from the table", r.Missing}, {"extra in the table", r.Extra}, {"with other values", r.Differ},
		{"more than once in the table", r.Duplicate}, {"not verifiable", r.Unverifiable}} {
		if k.l.Count == 0 {
			continue
		}
		keys := make([]string, 0, 3)
		for _, key := range k.l.Keys[:min(3, len(k.l.Keys))] {
			keys = append(keys, key.String())
		}
		more := ""
		if k.l.Count > int64(len(keys)) {
			more = ", …"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s%s)", count(int(k.l.Count), "row"), k.what, strings.Join(keys, "; "), more))
	}
	what := "rerun with --repair to make the table equal for these keys"
	if r.Unverifiable.Count > 0 && r.Unverifiable.Count == r.Missing.Count+r.Extra.Count+r.Differ.Count+r.Duplicate.Count+r.Unverifiable.Count {
		what = "a value with no known DMS form (leave its column out with --skip-columns), or a key the source holds more than once"
	}
	return fmt.Sprintf("table %s differs from %s in %s: %s: %s", r.Table, r.SourceTable, r.Source, strings.Join(parts, ", "), what)
}

func (e *NotEqualError) Unwrap() error { return ErrNotEqual }

// VerifyResult is what a verification found, and what its repair did.
type VerifyResult struct {
	Table       string `json:"table"`
	Source      string `json:"source_db"` // the URL, without its password
	SourceTable string `json:"source_table"`
	Snapshot    int64  `json:"snapshot_id"`
	// Equal: no row is missing, extra, different, duplicated or
	// unverifiable (lag is not a difference). After a repair it says
	// whether the table was equal before it.
	Equal      bool  `json:"equal"`
	TableRows  int64 `json:"table_rows"`
	SourceRows int64 `json:"source_rows"`

	Missing      KeyList `json:"missing"`
	Extra        KeyList `json:"extra"`
	Differ       KeyList `json:"differ"`
	Duplicate    KeyList `json:"duplicate"`
	Lag          KeyList `json:"lag"`
	Unverifiable KeyList `json:"unverifiable"`
	// Reasons are why the first unverifiable rows could not be mapped.
	Reasons []string `json:"unverifiable_reasons,omitempty"`

	// OrderBy and Horizon: source rows whose order value is after the
	// table's newest (Horizon) are lag. LagNote says why there is no lag
	// check, if there is none.
	OrderBy []string `json:"order_by,omitempty"`
	Horizon string   `json:"horizon,omitempty"`
	LagNote string   `json:"lag_note,omitempty"`

	Compared    []string `json:"columns_compared"`
	NotInSource []string `json:"table_columns_not_in_source,omitempty"`
	NotInTable  []string `json:"source_columns_not_in_table,omitempty"`
	Skipped     []string `json:"columns_skipped,omitempty"`

	Buckets          int   `json:"buckets"`
	DifferingBuckets int   `json:"buckets_differing"`
	Partitions       int   `json:"spill_ranges"`
	PartitionsRead   int   `json:"spill_ranges_read"`
	SpillBytes       int64 `json:"spill_bytes"`

	Time   VerifyTimings `json:"-"`
	Repair *RepairResult `json:"repair,omitempty"`
}

// KeyList counts the rows of one kind of difference and names the first
// keys (in key order).
type KeyList struct {
	Count int64       `json:"count"`
	Keys  []VerifyKey `json:"keys"`
}

// VerifyKey is a row's key: its columns and values.
type VerifyKey struct {
	Columns []string
	Values  []any
}

// String is column=value, … .
func (k VerifyKey) String() string {
	parts := make([]string, len(k.Columns))
	for i, c := range k.Columns {
		parts[i] = c + "=" + text(k.Values[i])
	}
	return strings.Join(parts, ", ")
}

// MarshalJSON writes the key as an object, in key order.
func (k VerifyKey) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range k.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(c)
		v := k.Values[i]
		switch x := v.(type) {
		case []byte:
			v = "0x" + fmt.Sprintf("%x", x)
		case time.Time:
			v = x.Format("2006-01-02T15:04:05.999999Z07:00")
		}
		val, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// VerifyTimings are the durations of a verification's phases; the table
// and the source are read at the same time.
type VerifyTimings struct {
	Table, Source, Compare, Repair, Total time.Duration
}

// RepairResult is what --repair changed.
type RepairResult struct {
	ID          string `json:"id"`
	Snapshot    int64  `json:"snapshot_id"`
	Keys        int    `json:"keys"`
	RowsWritten int64  `json:"rows_written"`
	RowsDeleted int64  `json:"rows_deleted"`
}

// Verify compares every row of the table's current snapshot with the
// source database, by key and by value under the type mapping, and with
// o.Repair makes the table equal for the keys that differ (one commit,
// under the table's run lock, the bookmark untouched). It returns a
// *NotEqualError (ErrNotEqual) when the table differs and was not
// repaired. The source is read in one consistent, read-only snapshot,
// taken after the table's snapshot is loaded, so the source is never older
// than the table.
func Verify(ctx context.Context, o VerifyOptions, d Deps) (*VerifyResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !o.Repair {
		return verify(ctx, o, d)
	}
	spec := lockSpec{table: o.Table, command: "icemerge verify --repair", refuse: "repair", wait: o.Wait, ttl: o.LockTTL}
	return withLock(ctx, d.Lock, spec, d.Now, d.Log, func(ctx context.Context) (*VerifyResult, error) {
		return verify(ctx, o, d)
	})
}

// verification is one run of Verify.
type verification struct {
	o    VerifyOptions
	d    Deps
	res  *VerifyResult
	tbl  *catalog.Table
	db   sourceDB
	src  srcTable
	cols []*vcol // read on both sides, in the table's order
	// Positions in cols: the compared columns (in order), the key columns
	// (in key order) and the order columns.
	compared, keys, order []int
	allCompared           bool
	cmp                   *comparer
	horizon               []byte
}

func verify(ctx context.Context, o VerifyOptions, d Deps) (*VerifyResult, error) {
	began := time.Now()
	v := &verification{o: o, d: d, res: &VerifyResult{Table: o.Table, Source: catalog.RedactURI(o.SourceDB)}}
	defer func() { v.res.Time.Total = time.Since(began) }()
	var err error
	if v.tbl, err = tableOf(ctx, d.Catalog, o.Table); err != nil {
		return nil, err
	}
	v.res.Snapshot = v.tbl.SnapshotID()
	engine, _ := sourceEngine(o.SourceDB)
	if v.src, err = o.sourceTable(engine); err != nil {
		return nil, err
	}
	v.res.SourceTable = v.src.String()
	if v.db, err = openSourceDB(ctx, o.SourceDB); err != nil {
		return nil, err
	}
	defer v.db.close()
	if err := v.planColumns(ctx); err != nil {
		return v.res, err
	}
	dir := o.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	if v.cmp, err = newComparer(tableRows(v.tbl), dir); err != nil {
		return v.res, err
	}
	defer v.cmp.close()
	v.res.Buckets, v.res.Partitions = int(v.cmp.buckets), v.cmp.parts
	if err := v.readBoth(ctx); err != nil {
		return v.res, err
	}
	start := time.Now()
	var horizon []byte
	if v.res.LagNote == "" {
		if horizon = v.horizon; horizon == nil {
			v.res.LagNote = "the table holds no order value yet"
		} else {
			v.res.Horizon = v.renderOrder(horizon)
		}
	}
	out, err := v.cmp.compare(horizon, o.MaxKeys, o.Repair, o.MaxRepair)
	v.res.Time.Compare = time.Since(start)
	if out != nil {
		v.fill(out)
	}
	if errors.Is(err, errTooManyToRepair) {
		return v.res, fmt.Errorf("table %s differs from %s in more than --max-repair %d rows: a repair this large is a reload (icemerge bookmark reset, then a run over the full load), or raise --max-repair: %w",
			o.Table, v.res.SourceTable, o.MaxRepair, &NotEqualError{v.res})
	}
	if err != nil {
		return v.res, err
	}
	if v.res.Equal {
		d.Log.Info("the table equals its source database", "table", o.Table, "rows", v.res.TableRows, "lag", v.res.Lag.Count)
		return v.res, nil
	}
	if !o.Repair || out.repairKeys == 0 {
		return v.res, &NotEqualError{v.res}
	}
	start = time.Now()
	v.res.Repair, err = v.repair(ctx, out)
	v.res.Time.Repair = time.Since(start)
	if err != nil {
		return v.res, fmt.Errorf("repairing %s: %w", o.Table, err)
	}
	if v.res.Unverifiable.Count > 0 {
		return v.res, &NotEqualError{v.res}
	}
	return v.res, nil
}

// tableRows is the table's row count from its snapshot summary (0 when
// unknown): it sizes the buckets.
func tableRows(t *catalog.Table) int64 {
	s := t.Current()
	if s == nil {
		return 0
	}
	n, _ := s.Count("total-records")
	return n
}

// planColumns matches the table's columns with the source's.
func (v *verification) planColumns(ctx context.Context) error {
	stored, err := v.tbl.Schema()
	if err != nil {
		return err
	}
	srcCols, err := v.db.columns(ctx, v.src)
	if err != nil {
		return err
	}
	byName := map[string]srcColumn{}
	for _, c := range srcCols {
		lc := strings.ToLower(c.Name)
		if _, dup := byName[lc]; dup {
			return fmt.Errorf("source table %s has two columns named %q in different cases: the table's lower-case column cannot tell them apart", v.src, lc)
		}
		byName[lc] = c
	}
	keys := v.tbl.Keys()
	if len(keys) == 0 {
		return fmt.Errorf("table %s has no identifier fields (primary key): verify matches rows by key", v.o.Table)
	}
	orderBy := v.o.OrderBy
	inTable := map[string]bool{}
	for _, f := range stored.Fields() {
		inTable[f.Name] = true
	}
	var lagNote string
	for _, k := range orderBy {
		if !inTable[k] {
			lagNote = fmt.Sprintf("the table has no order column %q (--order-by)", k)
		} else if _, ok := byName[k]; !ok {
			lagNote = fmt.Sprintf("the source has no order column %q (--order-by)", k)
		}
	}
	if len(orderBy) == 0 {
		lagNote = "--order-by source: no lag check"
	}
	for _, f := range stored.Fields() {
		sc, ok := byName[f.Name]
		isKey, isOrder, skipped := slices.Contains(keys, f.Name), slices.Contains(orderBy, f.Name), slices.Contains(v.o.SkipColumns, f.Name)
		switch {
		case !ok && isKey:
			return usage(fmt.Errorf("the source table %s has no key column %q of table %s: check --source-table", v.src, f.Name, v.o.Table))
		case !ok:
			v.res.NotInSource = append(v.res.NotInSource, f.Name)
			continue
		case skipped && isKey:
			return usage(fmt.Errorf("--skip-columns %s: a key column is always compared", f.Name))
		case skipped:
			v.res.Skipped = append(v.res.Skipped, f.Name)
			if !isOrder || lagNote != "" {
				continue
			}
		}
		c, err := newVCol(f.Name, f.Type)
		if err == nil {
			err = bindSourceColumn(c, sc, v.db.engine())
		}
		if err != nil {
			return usage(fmt.Errorf("table %s: %w: leave it out with --skip-columns %s", v.o.Table, err, f.Name))
		}
		if isOrder && !c.orderable() {
			lagNote = fmt.Sprintf("the order column %q is a %s, which does not order the lag check", f.Name, f.Type)
		}
		if !skipped {
			v.compared = append(v.compared, len(v.cols))
			v.res.Compared = append(v.res.Compared, f.Name)
		}
		v.cols = append(v.cols, c)
	}
	v.allCompared = len(v.compared) == len(v.cols)
	for _, c := range srcCols {
		if !inTable[strings.ToLower(c.Name)] {
			v.res.NotInTable = append(v.res.NotInTable, c.Name)
		}
	}
	index := func(name string) int {
		return slices.IndexFunc(v.cols, func(c *vcol) bool { return c.name == name })
	}
	for _, k := range keys {
		v.keys = append(v.keys, index(k))
	}
	v.res.LagNote = lagNote
	if lagNote == "" {
		v.res.OrderBy = orderBy
		for _, k := range orderBy {
			v.order = append(v.order, index(k))
		}
	}
	return nil
}

// rowScratch assembles one row's encodings from its columns' values.
type rowScratch struct {
	buf, row, key, order []byte
	off                  []int
}

// assemble returns the key, row and order encodings of the values in
// s.buf (column j at s.off[j]:s.off[j+1]).
func (v *verification) assemble(s *rowScratch, withOrder bool) (key, row, order []byte) {
	val := func(j int) []byte { return s.buf[s.off[j]:s.off[j+1]] }
	s.key = s.key[:0]
	for _, j := range v.keys {
		s.key = append(s.key, val(j)...)
	}
	row = s.buf
	if !v.allCompared {
		s.row = s.row[:0]
		for _, j := range v.compared {
			s.row = append(s.row, val(j)...)
		}
		row = s.row
	}
	if withOrder && len(v.order) > 0 {
		// A null order value orders nothing: it is neither the table's
		// newest nor lag.
		s.order = s.order[:0]
		for _, j := range v.order {
			if val(j)[0] == 0 {
				return s.key, row, nil
			}
			s.order = v.cols[j].appendOrder(s.order, val(j))
		}
		order = s.order
	}
	return s.key, row, order
}

// readBoth reads the table and the source at the same time into the
// comparer; the first error stops both.
func (v *verification) readBoth(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, read := range []func(context.Context) error{v.readTable, v.readSource} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = read(ctx); errs[i] != nil {
				cancel(errs[i])
			}
		}()
	}
	wg.Wait()
	// The error that stopped the other side, else either.
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	v.res.TableRows, v.res.SourceRows = v.cmp.table.rows, v.cmp.source.rows
	v.res.SpillBytes = v.cmp.table.spill.bytes + v.cmp.source.spill.bytes
	if err := v.cmp.table.spill.flush(); err != nil {
		return err
	}
	return v.cmp.source.spill.flush()
}

func (v *verification) names() []string {
	names := make([]string, len(v.cols))
	for i, c := range v.cols {
		names[i] = c.name
	}
	return names
}

// tableBatchRows is the rows of one batch of the table's side: enough to
// make a batch's overhead nothing, few enough that its columns stay in
// the caches.
const tableBatchRows = 4096

// readTable reads every live row of the table's snapshot.
func (v *verification) readTable(ctx context.Context) error {
	start := time.Now()
	defer func() { v.res.Time.Table = time.Since(start) }()
	s := &rowScratch{off: make([]int, len(v.cols)+1)}
	getters := make([]tableGetter, len(v.cols))
	withOrder := len(v.order) > 0
	return v.tbl.StreamLive(ctx, v.names(), tableBatchRows, func(b *catalog.LiveBatch) error {
		for j := range b.Cols {
			g, err := v.cols[j].streamGetter(&b.Cols[j])
			if err != nil {
				return fmt.Errorf("table %s, data file %s: %w", v.o.Table, b.Path, err)
			}
			getters[j] = g
		}
		for i := range b.Rows {
			if b.Deleted != nil && b.Deleted[i] {
				continue
			}
			s.buf = s.buf[:0]
			for j, g := range getters {
				s.off[j] = len(s.buf)
				s.buf = g(s.buf, i)
			}
			s.off[len(getters)] = len(s.buf)
			key, row, order := v.assemble(s, withOrder)
			if order != nil && (v.horizon == nil || bytes.Compare(order, v.horizon) > 0) {
				v.horizon = append(v.horizon[:0], order...)
			}
			if err := v.cmp.add(&v.cmp.table, key, row, nil, 0); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
}

// readSource reads every row of the source table in the snapshot.
func (v *verification) readSource(ctx context.Context) error {
	start := time.Now()
	defer func() { v.res.Time.Source = time.Since(start) }()
	s := &rowScratch{off: make([]int, len(v.cols)+1)}
	var rows int64
	return v.db.scan(ctx, v.src, v.cols, func(vals [][]byte) error {
		if rows++; rows%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		s.buf = s.buf[:0]
		var flags byte
		var why unverifiable
		for j, c := range v.cols {
			s.off[j] = len(s.buf)
			var w unverifiable
			if s.buf, w = c.appendSource(s.buf, vals[j]); w != "" {
				s.buf = append(s.buf, 0)
				if why == "" {
					why, flags = w, flagUnverifiable
				}
			}
		}
		s.off[len(v.cols)] = len(s.buf)
		key, row, order := v.assemble(s, flags == 0)
		if why != "" && len(v.res.Reasons) < max(v.o.MaxKeys, 1) {
			v.res.Reasons = append(v.res.Reasons, v.keyOf(key).String()+": "+string(why))
		}
		return v.cmp.add(&v.cmp.source, key, row, order, flags)
	})
}

// keyOf decodes a key encoding.
func (v *verification) keyOf(enc []byte) VerifyKey {
	k := VerifyKey{}
	for _, j := range v.keys {
		c := v.cols[j]
		var val any
		val, enc = c.value(enc)
		k.Columns = append(k.Columns, c.name)
		k.Values = append(k.Values, val)
	}
	return k
}

// renderOrder shows an order value (of fixed-width columns, or one
// string) for people.
func (v *verification) renderOrder(enc []byte) string {
	var parts []string
	for _, j := range v.order {
		c := v.cols[j]
		if c.class == cStr || c.class == cBin {
			if len(v.order) > 1 {
				return fmt.Sprintf("%x", enc)
			}
			s := bytes.ReplaceAll(bytes.TrimSuffix(enc[1:], []byte{0, 0}), []byte{0, 0xff}, []byte{0})
			return c.name + "=" + text(string(s))
		}
		var val any
		val, enc = c.value(enc)
		parts = append(parts, c.name+"="+text(val))
	}
	return strings.Join(parts, ", ")
}

// fill writes the comparison's outcome into the result.
func (v *verification) fill(out *outcome) {
	r := v.res
	r.DifferingBuckets, r.PartitionsRead = out.diffBucket, out.partsRead
	list := func(f found) KeyList {
		l := KeyList{Count: f.count, Keys: []VerifyKey{}}
		for _, k := range f.keys {
			l.Keys = append(l.Keys, v.keyOf(k))
		}
		return l
	}
	r.Missing, r.Extra, r.Differ = list(out.kinds[kindMissing]), list(out.kinds[kindExtra]), list(out.kinds[kindDiffer])
	r.Lag, r.Duplicate, r.Unverifiable = list(out.kinds[kindLag]), list(out.kinds[kindDuplicate]), list(out.kinds[kindUnverifiable])
	r.Equal = r.Missing.Count+r.Extra.Count+r.Differ.Count+r.Duplicate.Count+r.Unverifiable.Count == 0
}

// WriteVerify writes what a verification found and repaired.
func WriteVerify(w io.Writer, r *VerifyResult) {
	if r == nil {
		return
	}
	what := "EQUAL"
	if !r.Equal {
		what = "NOT EQUAL"
	}
	fmt.Fprintf(w, "%s: %s to %s in %s (snapshot %d: %s in the table, %d in the source)\n",
		r.Table, what, r.SourceTable, r.Source, r.Snapshot, count(int(r.TableRows), "row"), r.SourceRows)
	for _, k := range []struct {
		what string
		l    KeyList
	}{{"missing from the table", r.Missing}, {"extra in the table (deleted in the source)", r.Extra}, {"with other values", r.Differ},
		{"more than once in the table", r.Duplicate}, {"not verifiable (see below), or more than once in the source", r.Unverifiable}, {"lag: newer in the source than the table's newest change (" + r.Horizon + "), not a difference", r.Lag}} {
		if k.l.Count == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s %s\n", count(int(k.l.Count), "row"), k.what)
		for _, key := range k.l.Keys {
			fmt.Fprintf(w, "    %s\n", key)
		}
		if k.l.Count > int64(len(k.l.Keys)) {
			fmt.Fprintf(w, "    … and %d more\n", k.l.Count-int64(len(k.l.Keys)))
		}
	}
	for _, reason := range r.Reasons {
		fmt.Fprintf(w, "  not verifiable: %s\n", reason)
	}
	if r.LagNote != "" {
		fmt.Fprintf(w, "  no lag check: %s\n", r.LagNote)
	}
	if len(r.NotInSource) > 0 {
		fmt.Fprintf(w, "  not compared (not in the source): %s\n", strings.Join(r.NotInSource, ", "))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "  not compared (--skip-columns): %s\n", strings.Join(r.Skipped, ", "))
	}
	if len(r.NotInTable) > 0 {
		fmt.Fprintf(w, "  source columns the table lacks: %s\n", strings.Join(r.NotInTable, ", "))
	}
	if rp := r.Repair; rp != nil {
		fmt.Fprintf(w, "%s: REPAIRED %s: %s written, %s deleted in snapshot %d (repair %s; the bookmark is unchanged)\n",
			r.Table, count(rp.Keys, "key"), count(int(rp.RowsWritten), "row"), count(int(rp.RowsDeleted), "row"), rp.Snapshot, rp.ID)
	}
}

// VerifyReport is the JSON document `icemerge verify --report` writes.
type VerifyReport struct {
	Started time.Time `json:"started"`
	// OK: the table equals the source (or was repaired to).
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	*VerifyResult
	// Durations in seconds: table, source (read at the same time),
	// compare, repair, total.
	Durations map[string]float64 `json:"durations"`
}

// VerifyReportOf is the report of a verification.
func VerifyReportOf(started time.Time, r *VerifyResult, err error) VerifyReport {
	rep := VerifyReport{Started: started.UTC(), OK: err == nil, VerifyResult: r}
	if err != nil {
		rep.Error = err.Error()
	}
	if r != nil {
		t := r.Time
		rep.Durations = map[string]float64{"table": t.Table.Seconds(), "source": t.Source.Seconds(),
			"compare": t.Compare.Seconds(), "repair": t.Repair.Seconds(), "total": t.Total.Seconds()}
	}
	return rep
}
