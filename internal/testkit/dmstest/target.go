package dmstest

import (
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
)

// Target is the S3 target of a DMS task, written to a local folder (the
// BucketFolder): each table "schema.table" in Dir/schema/table/, its full
// load as LOAD00000001.parquet… (hex counter) and its changes as CDC files
// named by the time they are written, yyyyMMdd-HHmmssSSS.parquet, cut as
// DMS cuts them. It is what the capture harnesses (internal/testkit/capture
// for MariaDB, internal/testkit/pgcapture for PostgreSQL) share; they turn
// a source's change stream into calls of [Target.Change], [Target.NewLoad]
// and [Target.DeleteTable].
//
// Every file has the shape of [DMSOptions] and is written to a dot-named
// temporary file, synced and renamed, so a reader (icemerge ignores names
// starting with a dot) never sees half a file.
type Target struct {
	o       TargetOptions
	names   cdcNamer
	batches map[string]*cdcBatch
	files   map[string][]string // written or deleted in this session, by table
}

// TargetOptions configures a [Target].
type TargetOptions struct {
	// Dir is the folder DMS writes to (its BucketFolder).
	Dir string
	// MaxFileSize cuts a file once its rows are estimated at this many
	// bytes (DMS's CdcMinFileSize for CDC files, default 32 MB); full-load
	// files are cut at the same size.
	MaxFileSize int64
	// MaxBatchInterval cuts a CDC file once it holds changes committed
	// this long apart (DMS's CdcMaxBatchInterval, default 60 s).
	MaxBatchInterval time.Duration
	// Now is the clock CDC files are named by (DMS names them by the time
	// it writes them, UTC); time.Now when nil. Names stay strictly
	// increasing whatever it returns.
	Now func() time.Time
	// LastFile is the name of the last CDC file an earlier session wrote:
	// later names are greater.
	LastFile string
	// Log receives a line per file written or deleted; none when nil.
	Log *slog.Logger
}

// Defaults DMS uses for its S3 target.
const (
	DefaultMaxFileSize      = 32 << 20
	DefaultMaxBatchInterval = 60 * time.Second
)

// NewTarget checks o and returns a Target writing to o.Dir.
func NewTarget(o TargetOptions) (*Target, error) {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("dmstest: target: no folder"))
	}
	if o.MaxFileSize < 0 {
		errs = append(errs, fmt.Errorf("dmstest: target: negative MaxFileSize %d", o.MaxFileSize))
	}
	if o.MaxBatchInterval < 0 {
		errs = append(errs, fmt.Errorf("dmstest: target: negative MaxBatchInterval %v", o.MaxBatchInterval))
	}
	if o.MaxFileSize == 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxBatchInterval == 0 {
		o.MaxBatchInterval = DefaultMaxBatchInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &Target{o: o, names: cdcNamer{now: o.Now}, batches: map[string]*cdcBatch{}, files: map[string][]string{}}
	if o.LastFile != "" {
		last, err := ParseCDCName(o.LastFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("dmstest: target: LastFile: %w", err))
		}
		t.names.last = last
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// LastFile is the name of the last CDC file written (or o.LastFile), ""
// when none was.
func (t *Target) LastFile() string {
	if t.names.last.IsZero() {
		return ""
	}
	return FormatCDCName(t.names.last)
}

// Files returns the paths of table's files written since the Target was
// made, in order.
func (t *Target) Files(table string) []string { return slices.Clone(t.files[table]) }

// TableDir is the folder of table ("schema.table").
func (t *Target) TableDir(table string) string {
	schema, name, _ := strings.Cut(table, ".")
	return filepath.Join(t.o.Dir, schema, name)
}

// cdcBatch is the changes of one table waiting for their file: one
// schema, the rows in commit order.
type cdcBatch struct {
	cols  []Column
	ops   []string
	rows  []Row
	bytes int64
	first time.Time // commit time of the first change
}

// Change adds one row change of table, committed at commit, to the table's
// current CDC file. A change of columns (an ALTER TABLE) starts a new
// file, as do MaxBatchInterval of commit time and MaxFileSize of data.
func (t *Target) Change(table string, cols []Column, op string, row Row, commit time.Time) error {
	b := t.batches[table]
	if b != nil && (!slices.Equal(b.cols, cols) || commit.Sub(b.first) >= t.o.MaxBatchInterval) {
		if err := t.Flush(table); err != nil {
			return err
		}
		b = nil
	}
	if b == nil {
		b = &cdcBatch{cols: slices.Clone(cols), first: commit}
		t.batches[table] = b
	}
	b.ops = append(b.ops, op)
	b.rows = append(b.rows, row)
	b.bytes += EstimateRow(row)
	if b.bytes >= t.o.MaxFileSize {
		return t.Flush(table)
	}
	return nil
}

// Flush writes table's pending changes as a CDC file.
func (t *Target) Flush(table string) error {
	b := t.batches[table]
	delete(t.batches, table)
	if b == nil || len(b.rows) == 0 {
		return nil
	}
	path := filepath.Join(t.TableDir(table), t.names.next())
	if err := writeAtomic(path, b.cols, b.ops, b.rows); err != nil {
		return fmt.Errorf("dmstest: %s: %w", table, err)
	}
	t.files[table] = append(t.files[table], path)
	t.o.Log.Info("dms target: cdc file", "table", table, "file", path, "rows", len(b.rows))
	return nil
}

// FlushAll writes every table's pending changes, tables in name order, as
// DMS does at the end of a batch.
func (t *Target) FlushAll() error {
	tables := make([]string, 0, len(t.batches))
	for name := range t.batches {
		tables = append(tables, name)
	}
	slices.Sort(tables)
	for _, name := range tables {
		if err := t.Flush(name); err != nil {
			return err
		}
	}
	return nil
}

// DeleteTable deletes every object in table's folder and drops its pending
// changes: what DMS does to the target of a table reloaded, or truncated at
// the source with HandleSourceTableTruncated. Files whose names start with
// a dot (temporary files) are left alone. It returns the paths deleted.
func (t *Target) DeleteTable(table string) ([]string, error) {
	delete(t.batches, table)
	dir := t.TableDir(table)
	var deleted []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		deleted = append(deleted, path)
		return nil
	})
	if err != nil {
		return deleted, fmt.Errorf("dmstest: deleting the objects of %s: %w", table, err)
	}
	t.o.Log.Info("dms target: table objects deleted", "table", table, "files", len(deleted))
	return deleted, nil
}

// Load writes one table's full load: LOAD00000001.parquet, LOAD00000002…
// cut at MaxFileSize, every row Op I (IncludeOpForFullLoad=true).
type Load struct {
	t     *Target
	table string
	b     cdcBatch
	n     int // files written
	rows  int
	files []string
}

// NewLoad starts the full load of table with the given columns. The
// caller deletes the table's earlier objects first when it reloads.
func (t *Target) NewLoad(table string, cols []Column) *Load {
	return &Load{t: t, table: table, b: cdcBatch{cols: slices.Clone(cols)}}
}

// Add adds a row to the load.
func (l *Load) Add(row Row) error {
	l.b.ops = append(l.b.ops, "I")
	l.b.rows = append(l.b.rows, row)
	l.b.bytes += EstimateRow(row)
	l.rows++
	if l.b.bytes >= l.t.o.MaxFileSize {
		return l.flush()
	}
	return nil
}

func (l *Load) flush() error {
	if len(l.b.rows) == 0 {
		return nil
	}
	l.n++
	path := filepath.Join(l.t.TableDir(l.table), fmt.Sprintf("LOAD%08X.parquet", l.n))
	if err := writeAtomic(path, l.b.cols, l.b.ops, l.b.rows); err != nil {
		return fmt.Errorf("dmstest: full load of %s: %w", l.table, err)
	}
	l.files = append(l.files, path)
	l.t.files[l.table] = append(l.t.files[l.table], path)
	l.t.o.Log.Info("dms target: full load file", "table", l.table, "file", path, "rows", len(l.b.rows))
	l.b = cdcBatch{cols: l.b.cols}
	return nil
}

// Close writes the last LOAD file and returns the files and rows of the
// load. An empty table gets no LOAD file, as with DMS.
func (l *Load) Close() (files []string, rows int, err error) {
	if err := l.flush(); err != nil {
		return nil, 0, err
	}
	return l.files, l.rows, nil
}

// cdcNameLayout is DMS's CDC file name, yyyyMMdd-HHmmssSSS, without the
// dot Go's layout needs.
const cdcNameLayout = "20060102-150405.000"

// FormatCDCName is DMS's name of a CDC file written at t (UTC, to the
// millisecond).
func FormatCDCName(t time.Time) string {
	return strings.Replace(t.UTC().Format(cdcNameLayout), ".", "", 1) + ".parquet"
}

var cdcNameSyntax = regexp.MustCompile(`^\d{8}-\d{9}\.parquet$`)

// ParseCDCName is the time in a CDC file name (its base name).
func ParseCDCName(name string) (time.Time, error) {
	base := filepath.Base(name)
	if !cdcNameSyntax.MatchString(base) {
		return time.Time{}, fmt.Errorf("%q is not a CDC file name (yyyyMMdd-HHmmssSSS.parquet)", name)
	}
	base = strings.TrimSuffix(base, ".parquet")
	return time.Parse(cdcNameLayout, base[:15]+"."+base[15:])
}

// cdcNamer hands out CDC file names from the clock, strictly increasing
// even when many files are cut in one millisecond or the clock steps back,
// so icemerge (which orders CDC files by name) applies them in commit
// order.
type cdcNamer struct {
	now  func() time.Time
	last time.Time // of the last name given; zero before the first
}

func (n *cdcNamer) next() string {
	t := n.now().UTC().Truncate(time.Millisecond)
	if !t.After(n.last) {
		t = n.last.Add(time.Millisecond)
	}
	n.last = t
	return FormatCDCName(t)
}

// EstimateRow is a rough size of a row in a file, for cutting files by
// size.
func EstimateRow(row Row) int64 {
	n := int64(1)
	for _, v := range row {
		switch x := v.(type) {
		case string:
			n += int64(len(x)) + 4
		case []byte:
			n += int64(len(x)) + 4
		default:
			n += 8
		}
	}
	return n
}

// writeAtomic writes one DMS Parquet file (DMSOptions) into a dot-named
// temporary file, synced, then renamed into place.
func writeAtomic(path string, cols []Column, ops []string, rows []Row) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := Write(f, cols, ops, rows, DMSOptions()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
