package catalog

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// StreamLive reads every live row of the current snapshot, in batches of
// about batchRows rows of one data file, for `icemerge verify`, which
// reads a whole table: it decodes the Parquet column chunks itself, a
// page at a time, into plain Go slices (strings point into a buffer the
// batch reuses), where ScanLive materialises each row group as Arrow
// arrays. Memory holds a few batches, never a row group. The batch
// passed to fn is valid until fn returns.
func (t *Table) StreamLive(ctx context.Context, cols []string, batchRows int, fn func(*LiveBatch) error) error {
	tbl := t.t
	if tbl.CurrentSnapshot() == nil {
		return nil
	}
	tasks, err := tbl.Scan(table.WithSelectedFields(cols...)).PlanFiles(ctx)
	if err != nil {
		return fmt.Errorf("planning scan of %s: %w", Name(tbl), err)
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	ids := make([]int, len(cols))
	for i, c := range cols {
		f, ok := tbl.Schema().FindFieldByName(c)
		if !ok {
			return fmt.Errorf("table %s has no column %q", Name(tbl), c)
		}
		ids[i] = f.ID
	}
	// One goroutine reads and decodes the files while fn consumes the
	// batches already read; three batches circulate between them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free, full := make(chan *LiveBatch, 3), make(chan *LiveBatch, 3)
	for range 3 {
		free <- &LiveBatch{Cols: make([]ColumnValues, len(cols))}
	}
	produced := make(chan error, 1)
	go func() {
		defer close(full)
		produced <- func() error {
			deleteCache := map[string]map[string][]int64{}
			seen := map[string]bool{}
			for _, task := range tasks {
				path := task.File.FilePath()
				if seen[path] {
					continue // a split of a file already read whole
				}
				seen[path] = true
				deleted, err := positionDeletes(ctx, tbl, fs, task, deleteCache)
				if err != nil {
					return err
				}
				f, err := fs.Open(path)
				if err != nil {
					return fmt.Errorf("opening table data file %s: %w", path, err)
				}
				err = streamFile(ctx, f, path, ids, max(batchRows, 1), deleted, free, full)
				f.Close()
				if err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	var consumeErr error
	for b := range full {
		if consumeErr == nil {
			if consumeErr = fn(b); consumeErr != nil {
				cancel()
			}
		}
		free <- b
	}
	if err := <-produced; consumeErr == nil && err != nil {
		return err
	}
	return consumeErr
}

// positionDeletes are the sorted positions of the rows of task's data
// file its delete files delete; cache holds the delete files read.
func positionDeletes(ctx context.Context, tbl *table.Table, fs iceio.IO, task table.FileScanTask, cache map[string]map[string][]int64) ([]int64, error) {
	var deleted []int64
	for _, df := range task.DeleteFiles {
		if df.ContentType() != iceberg.EntryContentPosDeletes || table.IsDeletionVector(df) {
			return nil, fmt.Errorf("table %s has %s delete file %s: icemerge reads position deletes only; compact the table (Athena OPTIMIZE) first",
				Name(tbl), df.ContentType(), df.FilePath())
		}
		byFile, ok := cache[df.FilePath()]
		if !ok {
			var err error
			if byFile, err = readPositionDeletes(ctx, fs, df.FilePath()); err != nil {
				return nil, err
			}
			cache[df.FilePath()] = byFile
		}
		deleted = append(deleted, byFile[task.File.FilePath()]...)
	}
	slices.Sort(deleted)
	return deleted, nil
}

// LiveBatch is a run of consecutive rows of one data file.
type LiveBatch struct {
	Path string
	// Rows is the batch's row count, deleted rows included; Deleted[i]
	// says row i is deleted (nil: none is).
	Rows    int
	Deleted []bool
	// Cols are the columns asked for, in their order: one value per row.
	Cols []ColumnValues
}

// ColumnKind is the Parquet physical type a column's values are read as.
type ColumnKind uint8

const (
	KindNull    ColumnKind = iota // the file lacks the column (added later): every value is null
	KindBool                      // BOOLEAN
	KindInt32                     // INT32
	KindInt64                     // INT64
	KindFloat32                   // FLOAT
	KindFloat64                   // DOUBLE
	KindBytes                     // BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY
	KindOther                     // INT96, or a nested column: not read
)

// LogicalKind is a column's Parquet logical type, where it matters.
type LogicalKind uint8

const (
	LogicalNone LogicalKind = iota
	LogicalString
	LogicalDate
	LogicalTimestamp
	LogicalDecimal
	LogicalInt
	LogicalOther
)

// ColumnValues are one column of a batch, as the data file holds them.
type ColumnValues struct {
	Kind    ColumnKind
	Logical LogicalKind
	Fixed   bool  // KindBytes: FIXED_LEN_BYTE_ARRAY
	Scale   int32 // LogicalDecimal
	// PerSecond is LogicalTimestamp's unit: 1_000, 1_000_000 or
	// 1_000_000_000 a second.
	PerSecond int64
	IntBits   int8 // LogicalInt
	Signed    bool // LogicalInt
	// Type describes the column's type, for messages.
	Type string
	// Null[i] says row i is null (empty: no value is). A null row's value
	// in the slice of its kind is the zero value.
	Null    []bool
	Bool    []bool
	Int32   []int32
	Int64   []int64
	Float32 []float32
	Float64 []float64
	Bytes   [][]byte
	arena   []byte
	defs    []int16
	raw     []parquet.ByteArray
	rawFix  []parquet.FixedLenByteArray
}

// describe fills v's type from a file's column.
func (v *ColumnValues) describe(c *schema.Column) {
	v.Logical, v.Fixed, v.Scale, v.PerSecond, v.IntBits, v.Signed = LogicalNone, false, 0, 0, 0, false
	v.Type = c.PhysicalType().String()
	if lt := c.LogicalType(); lt != nil && lt.IsValid() && !lt.Equals(schema.NoLogicalType{}) {
		v.Type += " " + lt.String()
	}
	switch c.PhysicalType() {
	case parquet.Types.Boolean:
		v.Kind = KindBool
	case parquet.Types.Int32:
		v.Kind = KindInt32
	case parquet.Types.Int64:
		v.Kind = KindInt64
	case parquet.Types.Float:
		v.Kind = KindFloat32
	case parquet.Types.Double:
		v.Kind = KindFloat64
	case parquet.Types.ByteArray:
		v.Kind = KindBytes
	case parquet.Types.FixedLenByteArray:
		v.Kind, v.Fixed = KindBytes, true
	default:
		v.Kind = KindOther
	}
	if c.MaxRepetitionLevel() > 0 || c.MaxDefinitionLevel() > 1 {
		v.Kind = KindOther
	}
	switch lt := c.LogicalType().(type) {
	case nil, schema.NoLogicalType, *schema.NoLogicalType:
	case *schema.StringLogicalType:
		v.Logical = LogicalString
	case schema.StringLogicalType:
		v.Logical = LogicalString
	case *schema.DateLogicalType:
		v.Logical = LogicalDate
	case schema.DateLogicalType:
		v.Logical = LogicalDate
	case *schema.DecimalLogicalType:
		v.Logical, v.Scale = LogicalDecimal, lt.Scale()
	case schema.DecimalLogicalType:
		v.Logical, v.Scale = LogicalDecimal, lt.Scale()
	case *schema.TimestampLogicalType:
		v.Logical, v.PerSecond = LogicalTimestamp, perSecond(lt.TimeUnit())
	case schema.TimestampLogicalType:
		v.Logical, v.PerSecond = LogicalTimestamp, perSecond(lt.TimeUnit())
	case *schema.IntLogicalType:
		v.Logical, v.IntBits, v.Signed = LogicalInt, lt.BitWidth(), lt.IsSigned()
	case schema.IntLogicalType:
		v.Logical, v.IntBits, v.Signed = LogicalInt, lt.BitWidth(), lt.IsSigned()
	default:
		v.Logical = LogicalOther
	}
	if v.Logical == LogicalTimestamp && v.PerSecond == 0 {
		v.Logical = LogicalOther
	}
}

func perSecond(u schema.TimeUnitType) int64 {
	switch u {
	case schema.TimeUnitMillis:
		return 1_000
	case schema.TimeUnitMicros:
		return 1_000_000
	case schema.TimeUnitNanos:
		return 1_000_000_000
	}
	return 0
}

// streamFile reads the columns ids of one data file in batches of n rows,
// taking empty batches from free and sending them, filled, to full.
func streamFile(ctx context.Context, r parquet.ReaderAtSeeker, path string, ids []int, n int, deleted []int64,
	free <-chan *LiveBatch, full chan<- *LiveBatch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading table data file %s: corrupt Parquet: %v", path, p)
		}
	}()
	pf, err := file.NewParquetReader(r)
	if err != nil {
		return fmt.Errorf("reading table data file %s: %w", path, err)
	}
	defer pf.Close()
	psc := pf.MetaData().Schema
	leaf := map[int]int{}
	for i := 0; i < psc.NumColumns(); i++ {
		leaf[int(psc.Column(i).SchemaNode().FieldID())] = i
	}
	readers := make([]file.ColumnChunkReader, len(ids))
	var first int64 // the position of the batch's first row in the file
	for rg := 0; rg < pf.NumRowGroups(); rg++ {
		rgr := pf.RowGroup(rg)
		for j, id := range ids {
			readers[j] = nil
			if i, ok := leaf[id]; ok {
				if readers[j], err = rgr.Column(i); err != nil {
					return fmt.Errorf("reading table data file %s: %w", path, err)
				}
			}
		}
		rows := rgr.NumRows()
		for done := int64(0); done < rows; {
			m := int(min(int64(n), rows-done))
			var b *LiveBatch
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			b.Path, b.Rows = path, m
			b.Deleted = markDeleted(b.Deleted, deleted, first, m)
			for j, cr := range readers {
				v := &b.Cols[j]
				if cr == nil {
					v.Kind, v.Logical, v.Type, v.Null = KindNull, LogicalNone, "null", nullRun(v.Null, m)
					continue
				}
				v.describe(cr.Descriptor())
				if v.Kind == KindOther {
					continue // no values: the caller refuses the type
				}
				if err := v.read(cr, m); err != nil {
					return fmt.Errorf("reading table data file %s, column %s: %w", path, cr.Descriptor().Name(), err)
				}
			}
			select {
			case full <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			done += int64(m)
			first += int64(m)
		}
	}
	return nil
}

// markDeleted is the deleted flags of rows [first, first+m) (nil: none).
func markDeleted(dst []bool, deleted []int64, first int64, m int) []bool {
	i, _ := slices.BinarySearch(deleted, first)
	if i == len(deleted) || deleted[i] >= first+int64(m) {
		return nil
	}
	dst = slices.Grow(dst[:0], m)[:m]
	clear(dst)
	for ; i < len(deleted) && deleted[i] < first+int64(m); i++ {
		dst[deleted[i]-first] = true
	}
	return dst
}

func nullRun(dst []bool, m int) []bool {
	dst = slices.Grow(dst[:0], m)[:m]
	for i := range dst {
		dst[i] = true
	}
	return dst
}

// read reads the next m values of the column chunk into v.
func (v *ColumnValues) read(cr file.ColumnChunkReader, m int) error {
	var defs []int16
	if cr.Descriptor().MaxDefinitionLevel() > 0 {
		v.defs = slices.Grow(v.defs[:0], m)[:m]
		defs = v.defs
	}
	var levels int64
	var vals int
	var err error
	switch cr := cr.(type) {
	case *file.BooleanColumnChunkReader:
		v.Bool = slices.Grow(v.Bool[:0], m)[:m]
		levels, vals, err = cr.ReadBatch(int64(m), v.Bool, defs, nil)
		spread(v.Bool, defs, vals)
	case *file.Int32ColumnChunkReader:
		v.Int32 = slices.Grow(v.Int32[:0], m)[:m]
		levels, vals, err = cr.ReadBatch(int64(m), v.Int32, defs, nil)
		spread(v.Int32, defs, vals)
	case *file.Int64ColumnChunkReader:
		v.Int64 = slices.Grow(v.Int64[:0], m)[:m]
		levels, vals, err = cr.ReadBatch(int64(m), v.Int64, defs, nil)
		spread(v.Int64, defs, vals)
	case *file.Float32ColumnChunkReader:
		v.Float32 = slices.Grow(v.Float32[:0], m)[:m]
		levels, vals, err = cr.ReadBatch(int64(m), v.Float32, defs, nil)
		spread(v.Float32, defs, vals)
	case *file.Float64ColumnChunkReader:
		v.Float64 = slices.Grow(v.Float64[:0], m)[:m]
		levels, vals, err = cr.ReadBatch(int64(m), v.Float64, defs, nil)
		spread(v.Float64, defs, vals)
	case *file.ByteArrayColumnChunkReader:
		v.raw, v.arena, levels, vals, err = readPaged(cr.ReadBatchInPage, v.raw, v.arena, defs, m)
		v.Bytes = fillBytes(v.Bytes, v.raw[:vals], v.arena, m)
		spread(v.Bytes, defs, vals)
	case *file.FixedLenByteArrayColumnChunkReader:
		v.rawFix, v.arena, levels, vals, err = readPaged(cr.ReadBatchInPage, v.rawFix, v.arena, defs, m)
		v.Bytes = fillBytes(v.Bytes, v.rawFix[:vals], v.arena, m)
		spread(v.Bytes, defs, vals)
	default:
		return fmt.Errorf("no reader for %T (this is a bug)", cr)
	}
	if err != nil {
		return err
	}
	if levels != int64(m) {
		return fmt.Errorf("%d values where the row group has %d more rows: corrupt Parquet", levels, m)
	}
	v.Null = v.Null[:0]
	if defs != nil && vals < m {
		v.Null = slices.Grow(v.Null, m)[:m]
		for i, d := range defs {
			v.Null[i] = d == 0
		}
	}
	return nil
}

// readPaged reads the next m values of a byte-array column a page at a
// time: the values point into the page's buffer, which the next page
// reuses, so they are copied into arena.
func readPaged[T ~[]byte](readPage func(int64, []T, []int16, []int16) (int64, int, error), raw []T, arena []byte, defs []int16, m int) ([]T, []byte, int64, int, error) {
	raw = slices.Grow(raw[:0], m)[:m]
	arena = arena[:0]
	var levels int64
	var vals int
	var err error
	for levels < int64(m) && err == nil {
		var d []int16
		if defs != nil {
			d = defs[levels:]
		}
		var l int64
		var k int
		l, k, err = readPage(int64(m)-levels, raw[vals:], d, nil)
		if l == 0 && err == nil {
			break
		}
		for _, b := range raw[vals : vals+k] {
			arena = append(arena, b...)
		}
		levels, vals = levels+l, vals+k
	}
	return raw, arena, levels, vals, err
}

// fillBytes points dst (m long) at the values copied, one after the
// other, into arena.
func fillBytes[T ~[]byte](dst [][]byte, raw []T, arena []byte, m int) [][]byte {
	dst = slices.Grow(dst[:0], m)[:m]
	off := 0
	for i, b := range raw {
		dst[i] = arena[off : off+len(b) : off+len(b)]
		off += len(b)
	}
	return dst
}

// spread moves the first n values of vals, the non-null ones, to the
// positions of the rows whose definition level says they are set (a
// column of max definition level 1), zeroing the null rows.
func spread[T any](vals []T, defs []int16, n int) {
	if defs == nil || n == len(defs) {
		return
	}
	var zero T
	k := n - 1
	for i := len(defs) - 1; i >= 0; i-- {
		if defs[i] == 0 {
			vals[i] = zero
			continue
		}
		vals[i] = vals[k]
		k--
	}
}
