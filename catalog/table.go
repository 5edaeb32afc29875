package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/icemerge/icemerge/merge"
)

// Snapshot summary and table property keys icemerge writes. The token is
// also kept as a table property so it survives the expiry of the snapshot
// that recorded it (Athena VACUUM) and commits by other writers.
const (
	KeyToken        = "icemerge.bookmark-token"
	KeyRunID        = "icemerge.run-id"
	KeySourceFiles  = "icemerge.source-files"
	KeySourceRows   = "icemerge.source-rows"
	KeySourceInsert = "icemerge.source-inserts"
	KeySourceUpdate = "icemerge.source-updates"
	KeySourceDelete = "icemerge.source-deletes"
	KeyRowsWritten  = "icemerge.rows-written"
	KeyRowsDeleted  = "icemerge.rows-deleted"
	KeyStale        = "icemerge.stale-changes"
)

// Properties of the tables icemerge creates.
var createProps = iceberg.Properties{
	"format-version":                  "2",
	"commit.manifest-merge.enabled":   "true",
	"write.delete.mode":               "merge-on-read",
	"write.update.mode":               "merge-on-read",
	"write.merge.mode":                "merge-on-read",
	"write.parquet.compression-codec": "zstd",
	// zstd's fastest level: twice the speed of the default for a few
	// percent more bytes; compaction can recompress.
	"write.parquet.compression-level": "1",
	// Row groups of 128 Ki rows: a run finds the rows it replaces by key
	// range, and skips the row groups whose statistics rule its keys out;
	// the two writers each buffer one row group (about 40 MB of 300-byte
	// rows).
	"write.parquet.row-group-limit": strconv.Itoa(rowGroupRows),
	// icemerge re-plans a conflicting commit itself (the rows it replaces may
	// have changed); a blind replay by the library would not re-check them.
	"commit.retry.num-retries": "0",
}

// Load loads the table NAMESPACE.NAME; ok is false when it does not exist.
func (c *Catalog) Load(ctx context.Context, name string) (*Table, bool, error) {
	ident, err := Ident(name)
	if err != nil {
		return nil, false, err
	}
	tbl, ok, err := c.load(ctx, ident)
	return wrap(tbl), ok, err
}

func (c *Catalog) load(ctx context.Context, ident table.Identifier) (*table.Table, bool, error) {
	tbl, err := c.LoadTable(ctx, ident)
	switch {
	case errors.Is(err, icecat.ErrNoSuchTable), errors.Is(err, icecat.ErrNoSuchNamespace):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("loading table %s: %w", ident, err)
	}
	return tbl, true, nil
}

// Create creates the format-v2 table NAMESPACE.NAME, and its namespace
// when missing: its columns are the stored schema sc, keys its identifier
// fields (required), partition its partition spec as Iceberg transforms
// (day(created_at), bucket(16, id); none: unpartitioned). A bad partition
// spec is an error wrapping ErrPartitionSpec, before anything is created.
func (c *Catalog) Create(ctx context.Context, name string, stored *arrow.Schema, keys, partition []string) (*Table, error) {
	ident, err := Ident(name)
	if err != nil {
		return nil, err
	}
	sc, err := IcebergSchema(stored, keys)
	if err != nil {
		return nil, err
	}
	spec, err := ParsePartitionSpec(sc, partition)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	tbl, err := c.create(ctx, ident, sc, spec)
	return wrap(tbl), err
}

// create creates a format-v2 table partitioned by spec (built against sc by
// [ParsePartitionSpec]; *iceberg.UnpartitionedSpec for none), and its
// namespace when missing.
func (c *Catalog) create(ctx context.Context, ident table.Identifier, sc *iceberg.Schema, spec iceberg.PartitionSpec) (*table.Table, error) {
	opts := []icecat.CreateTableOpt{icecat.WithProperties(maps.Clone(createProps))}
	if !spec.IsUnpartitioned() {
		for _, f := range spec.Fields() {
			if _, ok := sc.FindFieldByID(f.SourceID()); !ok {
				return nil, fmt.Errorf("creating table %s: partition %s has source column %d, which the schema lacks: build the spec with ParsePartitionSpec on this schema", ident, f.Name, f.SourceID())
			}
		}
		opts = append(opts, icecat.WithPartitionSpec(&spec))
	}
	ns := table.Identifier{ident[0]}
	if err := c.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, icecat.ErrNamespaceAlreadyExists) {
		return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	// An explicit location, so both catalogs lay tables out alike:
	// <warehouse>/<namespace>.db/<name>.
	loc := strings.TrimSuffix(c.warehouse, "/") + "/" + ident[0] + ".db/" + ident[1]
	tbl, err := c.CreateTable(ctx, ident, sc, append(opts, icecat.WithLocation(loc))...)
	if err != nil {
		return nil, fmt.Errorf("creating table %s: %w", ident, err)
	}
	return tbl, nil
}

// LastToken returns the bookmark token of the table's last icemerge commit:
// from the newest snapshot in the current ancestry that carries one, else
// from the table property (the snapshot may have been expired).
func LastToken(tbl *table.Table) string {
	md := tbl.Metadata()
	for s := md.CurrentSnapshot(); s != nil; {
		if s.Summary != nil {
			if t, ok := s.Summary.Properties[KeyToken]; ok {
				return t
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return tbl.Properties()[KeyToken]
}

// Position delete file columns, with their reserved field IDs.
const (
	fieldFilePath = 2147483546
	fieldPos      = 2147483545
)

// ScanLive reads the named columns of the data files of the current
// snapshot that may hold a key in rng (all of them when rng is nil), with
// the positions of their rows, for finding the rows a batch replaces. Only
// these columns are read. Partitioned tables are scanned alike: files are
// pruned by their column bounds, and iceberg-go's planning may also skip
// whole identity or truncate partitions of the key column (it projects the
// range onto them); a bucket partition of the key is not used to prune.
func ScanLive(ctx context.Context, tbl *table.Table, cols []string, rng *merge.KeyRange, fn merge.LiveRowsFunc) (merge.ScanStats, error) {
	var st merge.ScanStats
	if tbl.CurrentSnapshot() == nil {
		return st, nil
	}
	opts := []table.ScanOption{table.WithSelectedFields(cols...)}
	var prune *rowGroupPruner
	if rng != nil {
		filter, err := rangeFilter(rng)
		if err != nil {
			return st, err
		}
		opts = append(opts, table.WithRowFilter(filter))
		f, ok := tbl.Schema().FindFieldByName(rng.Column)
		if !ok {
			return st, fmt.Errorf("table %s has no column %q", Name(tbl), rng.Column)
		}
		prune = &rowGroupPruner{fieldID: f.ID, lo: rng.Lo, hi: rng.Hi}
	}
	tasks, err := tbl.Scan(opts...).PlanFiles(ctx)
	if err != nil {
		return st, fmt.Errorf("planning scan of %s: %w", Name(tbl), err)
	}
	if n, err := strconv.Atoi(tbl.CurrentSnapshot().Summary.Properties["total-data-files"]); err == nil {
		st.FilesPruned = n // less the files read, below
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return st, fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	sc := tbl.Schema()
	ids := make([]int, len(cols))
	for i, c := range cols {
		f, ok := sc.FindFieldByName(c)
		if !ok {
			return st, fmt.Errorf("table %s has no column %q", Name(tbl), c)
		}
		ids[i] = f.ID
	}
	// One goroutine reads and decodes the files while the caller matches
	// the rows already read: the two halves of the work overlap.
	type chunk struct {
		path    string
		arrs    []arrow.Array
		first   int64
		deleted func(int64) bool
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 2)
	produced := make(chan error, 1)
	go func() {
		defer close(chunks)
		produced <- func() error {
			deleteCache := map[string]map[string][]int64{} // delete file → data file → positions
			seen := map[string]bool{}
			for _, task := range tasks {
				if err := ctx.Err(); err != nil {
					return err // the caller has enough, or gave up
				}
				path := task.File.FilePath()
				if seen[path] {
					continue // a split of a file already read whole
				}
				seen[path] = true
				st.Files++
				var deleted []int64
				for _, df := range task.DeleteFiles {
					if df.ContentType() != iceberg.EntryContentPosDeletes || table.IsDeletionVector(df) {
						return fmt.Errorf("table %s has %s delete file %s: icemerge reads position deletes only; compact the table (Athena OPTIMIZE) first",
							Name(tbl), df.ContentType(), df.FilePath())
					}
					byFile, ok := deleteCache[df.FilePath()]
					if !ok {
						var err error
						if byFile, err = readPositionDeletes(ctx, fs, df.FilePath()); err != nil {
							return err
						}
						deleteCache[df.FilePath()] = byFile
					}
					deleted = append(deleted, byFile[path]...)
				}
				slices.Sort(deleted)
				isDeleted := func(pos int64) bool { _, ok := slices.BinarySearch(deleted, pos); return ok }
				err := readColumns(ctx, fs, path, ids, prune, &st, func(arrs []arrow.Array, first int64) error {
					if err := ctx.Err(); err != nil {
						return err
					}
					for _, a := range arrs {
						a.Retain()
					}
					select {
					case chunks <- chunk{path: path, arrs: arrs, first: first, deleted: isDeleted}:
						return nil
					case <-ctx.Done():
						releaseAll(arrs)
						return ctx.Err()
					}
				})
				if err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	var consumeErr error
	for c := range chunks {
		if consumeErr == nil {
			if consumeErr = fn(c.path, c.arrs, c.first, c.deleted); consumeErr != nil {
				cancel()
			}
		}
		releaseAll(c.arrs)
	}
	if err := <-produced; consumeErr == nil && err != nil {
		return st, err
	}
	if consumeErr != nil {
		return st, consumeErr
	}
	st.FilesPruned = max(0, st.FilesPruned-st.Files)
	return st, nil
}

func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		a.Release()
	}
}

// rangeFilter is the scan filter lo <= column <= hi.
func rangeFilter(r *merge.KeyRange) (iceberg.BooleanExpression, error) {
	ref := iceberg.Reference(r.Column)
	switch lo := r.Lo.(type) {
	case int32:
		return iceberg.NewAnd(iceberg.GreaterThanEqual(ref, lo), iceberg.LessThanEqual(ref, r.Hi.(int32))), nil
	case int64:
		return iceberg.NewAnd(iceberg.GreaterThanEqual(ref, lo), iceberg.LessThanEqual(ref, r.Hi.(int64))), nil
	case string:
		return iceberg.NewAnd(iceberg.GreaterThanEqual(ref, lo), iceberg.LessThanEqual(ref, r.Hi.(string))), nil
	}
	return nil, fmt.Errorf("key range of column %q: unsupported type %T", r.Column, r.Lo)
}

// rowGroupPruner skips row groups whose statistics for one column show no
// value in [lo, hi].
type rowGroupPruner struct {
	fieldID int
	lo, hi  any
}

// skip reports whether the row group cannot hold a value in range; without
// statistics it reads the row group.
func (p *rowGroupPruner) skip(rg *metadata.RowGroupMetaData, leaf map[int]int) bool {
	if p == nil {
		return false
	}
	i, ok := leaf[p.fieldID]
	if !ok {
		return false
	}
	cc, err := rg.ColumnChunk(i)
	if err != nil {
		return false
	}
	stats, err := cc.Statistics()
	if err != nil || stats == nil || !stats.HasMinMax() {
		return false
	}
	switch s := stats.(type) {
	case *metadata.Int32Statistics:
		lo, ok1 := p.lo.(int32)
		hi, ok2 := p.hi.(int32)
		return ok1 && ok2 && (s.Max() < lo || s.Min() > hi)
	case *metadata.Int64Statistics:
		lo, ok1 := p.lo.(int64)
		hi, ok2 := p.hi.(int64)
		return ok1 && ok2 && (s.Max() < lo || s.Min() > hi)
	case *metadata.ByteArrayStatistics:
		lo, ok1 := p.lo.(string)
		hi, ok2 := p.hi.(string)
		return ok1 && ok2 && (string(s.Max()) < lo || string(s.Min()) > hi)
	}
	return false
}

// readColumns reads the columns with the given field IDs from a data file,
// one row group at a time; a column the file lacks (added later) reads as
// nulls.
func readColumns(ctx context.Context, fs iceio.IO, path string, ids []int, prune *rowGroupPruner, st *merge.ScanStats, fn func([]arrow.Array, int64) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading table data file %s: corrupt Parquet: %v", path, p)
		}
	}()
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("opening table data file %s: %w", path, err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return fmt.Errorf("reading table data file %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("reading table data file %s: %w", path, err)
	}
	leaf := map[int]int{}
	psc := pf.MetaData().Schema
	for i := 0; i < psc.NumColumns(); i++ {
		leaf[int(psc.Column(i).SchemaNode().FieldID())] = i
	}
	var present []int
	for _, id := range ids {
		if i, ok := leaf[id]; ok {
			present = append(present, i)
		}
	}
	var first int64
	for rg := 0; rg < pf.NumRowGroups(); rg++ {
		rgm := pf.MetaData().RowGroup(rg)
		n := rgm.NumRows()
		if prune.skip(rgm, leaf) {
			st.RowGroupsPruned++
			first += n
			continue
		}
		st.RowGroups++
		for _, i := range present {
			if cc, err := rgm.ColumnChunk(i); err == nil {
				st.Bytes += cc.TotalCompressedSize()
			}
		}
		tbl, err := fr.ReadRowGroups(ctx, present, []int{rg})
		if err != nil {
			return fmt.Errorf("reading table data file %s: %w", path, err)
		}
		arrs := make([]arrow.Array, len(ids))
		var release []arrow.Array
		j := 0
		for i, id := range ids {
			if _, ok := leaf[id]; !ok {
				arrs[i] = array.MakeArrayOfNull(memory.DefaultAllocator, arrow.Null, int(n))
			} else {
				arrs[i], err = array.Concatenate(tbl.Column(j).Data().Chunks(), memory.DefaultAllocator)
				j++
				if err != nil {
					tbl.Release()
					return fmt.Errorf("reading table data file %s: %w", path, err)
				}
			}
			release = append(release, arrs[i])
		}
		tbl.Release()
		err = fn(arrs, first)
		for _, a := range release {
			a.Release()
		}
		if err != nil {
			return err
		}
		first += n
	}
	return nil
}

// readPositionDeletes reads a position delete file into data file → sorted
// positions.
func readPositionDeletes(ctx context.Context, fs iceio.IO, path string) (map[string][]int64, error) {
	out := map[string][]int64{}
	err := readColumns(ctx, fs, path, []int{fieldFilePath, fieldPos}, nil, &merge.ScanStats{}, func(arrs []arrow.Array, _ int64) error {
		paths, ok1 := arrs[0].(*array.String)
		pos, ok2 := arrs[1].(*array.Int64)
		if !ok1 || !ok2 {
			return fmt.Errorf("position delete file %s: unexpected column types %s, %s", path, arrs[0].DataType(), arrs[1].DataType())
		}
		for i := 0; i < paths.Len(); i++ {
			p := paths.Value(i)
			out[p] = append(out[p], pos.Value(i))
		}
		return nil
	})
	return out, err
}

// Change is what one run commits.
type Change struct {
	Records iter.Seq2[arrow.RecordBatch, error] // rows to write, in the table's stored schema
	Deletes map[string][]int64                  // data file → sorted positions
}

// Prepared is a change whose data and delete files are written and which
// can now be committed. Nothing references the files until the commit:
// if the run dies here they are orphans, invisible to readers.
type Prepared struct {
	tbl         *table.Table
	dataFiles   []iceberg.DataFile
	deleteFiles []iceberg.DataFile
	Stats       WriteStats
}

// WriteStats says what Prepare wrote and how long it took.
type WriteStats struct {
	DataFiles, DeleteFiles int
	DataBytes, DeleteBytes int64
	DataTime, DeleteTime   time.Duration
}

// Prepare writes the change's data files and its position delete files:
// one for an unpartitioned table, one per partition of the data files it
// deletes rows of otherwise.
func (c *Catalog) Prepare(ctx context.Context, t *Table, ch Change) (*Prepared, error) {
	tbl := t.t
	p := &Prepared{tbl: tbl}
	var err error
	start := time.Now()
	if p.dataFiles, err = writeData(ctx, tbl, ch); err != nil {
		return nil, err
	}
	p.Stats.DataTime = time.Since(start)
	for _, df := range p.dataFiles {
		p.Stats.DataFiles++
		p.Stats.DataBytes += df.FileSizeBytes()
	}
	if len(ch.Deletes) > 0 {
		start = time.Now()
		groups, err := groupDeletes(ctx, tbl, ch.Deletes)
		if err != nil {
			return nil, err
		}
		if p.deleteFiles, err = writeDeleteGroups(ctx, tbl, groups, ch.Deletes); err != nil {
			return nil, err
		}
		p.Stats.DeleteTime = time.Since(start)
		for _, df := range p.deleteFiles {
			p.Stats.DeleteFiles++
			p.Stats.DeleteBytes += df.FileSizeBytes()
		}
	}
	return p, nil
}

// deleteWriters is how many position delete files a run writes at once: a
// partitioned table gets one per partition, mostly small, so the time goes
// in object-store round trips more than in compression.
const deleteWriters = 4

// writeDeleteGroups writes one position delete file per group, a few at a
// time, and returns them in the groups' order.
func writeDeleteGroups(ctx context.Context, tbl *table.Table, groups []deleteGroup, deletes map[string][]int64) ([]iceberg.DataFile, error) {
	out := make([]iceberg.DataFile, len(groups))
	errs := make([]error, len(groups))
	sem := make(chan struct{}, deleteWriters)
	var wg sync.WaitGroup
	for i := range groups {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			out[i], errs[i] = writePositionDeletes(ctx, tbl, groups[i], deletes)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// ErrCommitConflict means another writer committed to the table between
// this run's read and its commit; nothing was committed and the run can be
// planned again.
var ErrCommitConflict = errors.New("the table changed during the run")

// Commit commits the prepared files as one snapshot whose summary holds
// summary and the run's token, and sets the token property in the same
// commit. When the outcome is unknown (an error after the request was
// sent) it reloads the table and reports success if the table shows the
// token: the commit happened.
func (c *Catalog) Commit(ctx context.Context, p *Prepared, token string, summary map[string]string) (*Table, error) {
	t, err := c.commit(ctx, p, token, summary)
	return wrap(t), err
}

func (c *Catalog) commit(ctx context.Context, p *Prepared, token string, summary map[string]string) (*table.Table, error) {
	tbl := p.tbl
	props := iceberg.Properties{KeyToken: token}
	maps.Copy(props, summary)
	tx := tbl.NewTransaction()
	rd := tx.NewRowDelta(props)
	rd.AddRows(p.dataFiles...)
	rd.AddDeletes(p.deleteFiles...)
	if err := rd.Commit(ctx); err != nil {
		return nil, fmt.Errorf("staging the commit of %s: %w", Name(tbl), err)
	}
	if err := tx.SetProperties(iceberg.Properties{KeyToken: token}); err != nil {
		return nil, fmt.Errorf("staging the commit of %s: %w", Name(tbl), err)
	}
	committed, err := tx.Commit(ctx)
	if err == nil {
		return committed, nil
	}
	// The catalog may have applied the commit even though we got an error
	// (a timeout, a retried request that met its own first attempt): the
	// table is the judge.
	reloaded, found, lerr := c.load(context.WithoutCancel(ctx), tbl.Identifier())
	if lerr == nil && found && LastToken(reloaded) == token {
		c.log.Warn("the commit reported an error but the table shows this run's token: it committed",
			"table", Name(tbl), "token", token, "error", err)
		return reloaded, nil
	}
	// Another writer moved the table on (the catalogs report a failed
	// requirement in different ways): the run can re-plan against it.
	if errors.Is(err, table.ErrCommitFailed) || (lerr == nil && found && snapshotID(reloaded) != snapshotID(tbl)) {
		return nil, fmt.Errorf("%w: %w", ErrCommitConflict, err)
	}
	if lerr != nil {
		return nil, fmt.Errorf("committing to %s: %w; and reloading it to check the outcome failed: %w (rerun: the next run finds out whether this one committed)", Name(tbl), err, lerr)
	}
	return nil, fmt.Errorf("committing to %s: %w (nothing was committed; rerun)", Name(tbl), err)
}

// Name is the table's NAMESPACE.NAME, for messages.
func Name(t *table.Table) string { return strings.Join(t.Identifier(), ".") }

func snapshotID(t *table.Table) int64 {
	if s := t.CurrentSnapshot(); s != nil {
		return s.SnapshotID
	}
	return 0
}

func writeData(ctx context.Context, tbl *table.Table, ch Change) ([]iceberg.DataFile, error) {
	if ch.Records == nil {
		return nil, nil
	}
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, fmt.Errorf("table schema of %s: %w", Name(tbl), err)
	}
	// Same columns and types as the stored schema, with the field IDs the
	// writer maps them by.
	records := func(yield func(arrow.RecordBatch, error) bool) {
		for rec, err := range ch.Records {
			if err != nil {
				yield(nil, err)
				return
			}
			out := array.NewRecordBatch(sc, rec.Columns(), rec.NumRows())
			rec.Release()
			if !yield(out, nil) {
				return
			}
		}
	}
	if !tbl.Spec().IsUnpartitioned() {
		// iceberg-go's partitioned fanout writer keeps one rolling writer
		// per partition, each compressing on its own goroutine: the cores
		// are used across partitions. Two writers side by side would write
		// two files per partition; one fanout worker keeps each partition's
		// rows in source order, so its row groups' key bounds stay tight.
		return writeParallel(ctx, tbl, sc, records, 1, table.WithMaxWriteWorkers(1))
	}
	return writeParallel(ctx, tbl, sc, records, min(writeWorkers, runtime.GOMAXPROCS(0)))
}

// rowGroupRows is write.parquet.row-group-limit of the tables icemerge
// creates.
const rowGroupRows = 131072 // 128 Ki

// writeWorkers is how many data files a run writes at once: compressing
// Parquet is most of the cost of writing, and it uses one core per file.
const writeWorkers = 2

// writeParallel deals the records out to n concurrent writers, each
// writing its own data files.
func writeParallel(ctx context.Context, tbl *table.Table, sc *arrow.Schema, records iter.Seq2[arrow.RecordBatch, error], n int, extra ...table.WriteRecordOption) ([]iceberg.DataFile, error) {
	// Each writer holds few batches in flight: memory stays bounded by the
	// row groups being compressed, not by the batch.
	opts := append([]table.WriteRecordOption{table.WithRecordBatchBufferSize(2)}, extra...)
	collect := func(recs iter.Seq2[arrow.RecordBatch, error]) ([]iceberg.DataFile, error) {
		var files []iceberg.DataFile
		for df, err := range table.WriteRecords(ctx, tbl, sc, recs, opts...) {
			if err != nil {
				return nil, fmt.Errorf("writing data files of %s: %w", Name(tbl), err)
			}
			files = append(files, df)
		}
		return files, nil
	}
	if n <= 1 {
		return collect(records)
	}
	// An error of one writer stops the dealing, not the other writers:
	// they finish the files they have open, which completes their uploads
	// (orphan files for maintain to remove) instead of leaving multipart
	// uploads open on S3.
	feed, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chans := make([]chan arrow.RecordBatch, n)
	results := make([][]iceberg.DataFile, n)
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan arrow.RecordBatch, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = collect(func(yield func(arrow.RecordBatch, error) bool) {
				for rec := range chans[i] {
					if !yield(rec, nil) {
						break
					}
				}
			})
			if errs[i] != nil {
				cancel(errs[i])
			}
			for rec := range chans[i] { // after an error: free what is still sent
				rec.Release()
			}
		}()
	}
	// Each writer gets runs of a row group's worth of rows, in order, so the
	// rows of a row group stay contiguous in the source order (by key, for
	// a full load) and its statistics stay tight for pruning.
	i, rows := 0, int64(0)
	for rec, err := range records {
		if err != nil {
			errs[n] = err
			cancel(err)
			break
		}
		if rows >= rowGroupRows {
			i, rows = (i+1)%n, 0
		}
		rows += rec.NumRows()
		select {
		case chans[i] <- rec:
			continue
		case <-feed.Done():
			rec.Release()
		}
		break
	}
	for _, c := range chans {
		close(c)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var files []iceberg.DataFile
	for _, r := range results {
		files = append(files, r...)
	}
	return files, nil
}

var posDeleteSchema = arrow.NewSchema([]arrow.Field{
	{Name: "file_path", Type: arrow.BinaryTypes.String, Metadata: arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{strconv.Itoa(fieldFilePath)})},
	{Name: "pos", Type: arrow.PrimitiveTypes.Int64, Metadata: arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{strconv.Itoa(fieldPos)})},
}, nil)

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writePositionDeletes writes the Parquet position delete file (format v2,
// what Athena reads) of one group's data files, with the rows sorted by
// file and position, and the group's spec and partition in its entry.
func writePositionDeletes(ctx context.Context, tbl *table.Table, g deleteGroup, deletes map[string][]int64) (iceberg.DataFile, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return nil, fmt.Errorf("the file system of %s is read-only", Name(tbl))
	}
	lp, err := tbl.LocationProvider()
	if err != nil {
		return nil, fmt.Errorf("locations of %s: %w", Name(tbl), err)
	}
	name := fmt.Sprintf("%s-deletes.parquet", uuid.New())
	if dir := partitionPath(g.spec, tbl.Schema(), g.partition); dir != "" {
		name = dir + "/" + name
	}
	location := lp.NewDataLocation(name)

	paths := g.paths
	var rows int64
	for _, p := range paths {
		rows += int64(len(deletes[p]))
	}

	out, err := wfs.Create(location)
	if err != nil {
		return nil, fmt.Errorf("creating position delete file %s: %w", location, err)
	}
	cw := &countingWriter{w: out}
	if err := writePositionRows(cw, paths, deletes); err != nil {
		out.Close()
		return nil, fmt.Errorf("writing position delete file %s: %w", location, err)
	}
	// The Parquet writer does not close what it writes to (the counting
	// wrapper hides it); closing is what uploads an S3 object.
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("writing position delete file %s: %w", location, err)
	}

	first, last := paths[0], paths[len(paths)-1]
	// The partition of the data files the deletes apply to: v2 readers
	// (Athena, iceberg-go) match a delete file to data files of its own
	// spec and partition only.
	b, err := iceberg.NewDataFileBuilder(g.spec, iceberg.EntryContentPosDeletes, location,
		iceberg.ParquetFile, g.partition, partitionLogicalTypes(g.spec, tbl.Schema()), nil, rows, cw.n)
	if err != nil {
		return nil, fmt.Errorf("describing position delete file %s: %w", location, err)
	}
	minPos, maxPos := deletes[first][0], deletes[first][0]
	for _, p := range paths {
		ps := deletes[p]
		minPos, maxPos = min(minPos, ps[0]), max(maxPos, ps[len(ps)-1])
	}
	b.ValueCounts(map[int]int64{fieldFilePath: rows, fieldPos: rows}).
		NullValueCounts(map[int]int64{fieldFilePath: 0, fieldPos: 0}).
		LowerBoundValues(map[int][]byte{fieldFilePath: []byte(first), fieldPos: littleEndian(minPos)}).
		UpperBoundValues(map[int][]byte{fieldFilePath: []byte(last), fieldPos: littleEndian(maxPos)})
	if len(paths) == 1 {
		b.ReferencedDataFile(first)
	}
	return b.Build(), nil
}

// deleteRowGroupRows is the rows of each row group of a position delete
// file: the file is built and written a row group at a time, so a run
// deleting millions of rows holds one row group's paths in memory, not all.
const deleteRowGroupRows = 256 << 10

// writePositionRows writes the (file_path, pos) rows of deletes, in the
// order of paths, as Parquet.
func writePositionRows(w io.Writer, paths []string, deletes map[string][]int64) error {
	fw, err := pqarrow.NewFileWriter(posDeleteSchema, w,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd)),
		pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	pb := array.NewStringBuilder(memory.DefaultAllocator)
	defer pb.Release()
	ib := array.NewInt64Builder(memory.DefaultAllocator)
	defer ib.Release()
	flush := func() error {
		n := ib.Len()
		if n == 0 {
			return nil
		}
		pa, ia := pb.NewArray(), ib.NewArray()
		defer pa.Release()
		defer ia.Release()
		rec := array.NewRecordBatch(posDeleteSchema, []arrow.Array{pa, ia}, int64(n))
		defer rec.Release()
		return fw.Write(rec)
	}
	for _, p := range paths {
		for _, pos := range deletes[p] {
			pb.Append(p)
			ib.Append(pos)
			if ib.Len() == deleteRowGroupRows {
				if err := flush(); err != nil {
					fw.Close()
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		fw.Close()
		return err
	}
	return fw.Close()
}

func littleEndian(v int64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[i] = byte(uint64(v) >> (8 * i))
	}
	return b
}
