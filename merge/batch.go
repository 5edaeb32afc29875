package merge

import (
	"context"
	"fmt"
	"hash/maphash"
	"iter"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Options are the semantics of one table's merge.
type Options struct {
	// Keys are the primary key columns (lowercase, as stored).
	Keys []string
	// OrderBy are the columns whose values order the changes of one key,
	// compared before source order. Empty means source order only.
	OrderBy []string
}

// Batch deduplicates the changes of one run per key. Files are added in
// source order; the winning change of each key is the greatest by (order
// columns…, file order, row order).
type Batch struct {
	opts     Options
	schema   *arrow.Schema
	keyIdx   []int
	orderIdx []int
	files    []*File
	winners  map[string]*winner
	keyBuf   []byte
	// tombstones of earlier runs; only consulted with order-by columns.
	tombstones Tombstones
	// filter has a bit set for the hash of every key in winners: most table
	// rows the batch does not touch are ruled out without a map lookup.
	filter []uint64
	// The range of the first key column's values, for pruning the table's
	// files: ints (int and long) or strings.
	rangeOK  bool
	loI, hiI int64
	loS, hiS string
}

type winner struct {
	file, rec, row int32
	op             Op
	order          []value
	existing       []location // live table rows of the key
	existingOrder  []value    // the greatest order value among them
}

type location struct {
	path string
	pos  int64
}

// NewBatch starts a batch for a table of the given stored schema.
func NewBatch(schema *arrow.Schema, o Options) (*Batch, error) {
	b := &Batch{opts: o, schema: schema, winners: map[string]*winner{}}
	if len(o.Keys) == 0 {
		return nil, fmt.Errorf("%w: no primary key given; pass --key", ErrMissingColumn)
	}
	idx := func(col, what string) (int, error) {
		is := schema.FieldIndices(col)
		if len(is) != 1 {
			return 0, fmt.Errorf("%w: %s column %q is not in the table (columns: %s)", ErrMissingColumn, what, col, columnNames(schema))
		}
		return is[0], nil
	}
	for _, k := range o.Keys {
		i, err := idx(k, "key")
		if err != nil {
			return nil, err
		}
		b.keyIdx = append(b.keyIdx, i)
	}
	for _, k := range o.OrderBy {
		i, err := idx(k, "order-by")
		if err != nil {
			return nil, err
		}
		b.orderIdx = append(b.orderIdx, i)
	}
	return b, nil
}

func columnNames(sc *arrow.Schema) string {
	names := make([]string, 0, sc.NumFields())
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	return fmt.Sprint(names)
}

// key encodes the key of row i of the given key columns; column is the index
// (into cols) of a null key column, or -1.
func (b *Batch) key(cols []arrow.Array, i int) (string, int, error) {
	buf := b.keyBuf[:0]
	for c, col := range cols {
		var ok bool
		var err error
		buf, ok, err = appendKey(buf, col, i)
		if err != nil {
			return "", c, err
		}
		if !ok {
			return "", c, nil
		}
	}
	b.keyBuf = buf
	return string(buf), -1, nil
}

// keyBytes encodes the key of row i into the batch's buffer, valid until
// the next call; ok is false for a null or unencodable key.
func (b *Batch) keyBytes(cols []arrow.Array, i int) ([]byte, bool) {
	buf := b.keyBuf[:0]
	for _, col := range cols {
		var ok bool
		var err error
		if buf, ok, err = appendKey(buf, col, i); err != nil || !ok {
			b.keyBuf = buf
			return nil, false
		}
	}
	b.keyBuf = buf
	return buf, true
}

func pick(rec arrow.RecordBatch, idx []int) []arrow.Array {
	cols := make([]arrow.Array, len(idx))
	for i, j := range idx {
		cols[i] = rec.Column(j)
	}
	return cols
}

// Add adds the changes of the next file in source order. The file must have
// been aligned to the batch's schema. A null key fails the whole batch.
func (b *Batch) Add(f *File) error {
	if !f.Schema.Equal(b.schema) {
		return &InputError{File: f.Name, Err: fmt.Errorf("%w: file not aligned to the table schema", ErrSchemaClash)}
	}
	if n := len(b.files); n > 0 && CompareObjects(Object{Key: b.files[n-1].Name}, Object{Key: f.Name}) >= 0 {
		return fmt.Errorf("merge: %s added after %s, out of source order", f.Name, b.files[n-1].Name)
	}
	b.filter = nil // built again by ResetExisting, with this file's keys
	for _, rec := range f.Records {
		b.widenRange(rec.Column(b.keyIdx[0]))
	}
	fi := int32(len(b.files))
	b.files = append(b.files, f)
	row := 0
	for ri, rec := range f.Records {
		keys, orders := pick(rec, b.keyIdx), pick(rec, b.orderIdx)
		for i := 0; i < int(rec.NumRows()); i, row = i+1, row+1 {
			k, nullCol, err := b.key(keys, i)
			if err != nil {
				return &InputError{File: f.Name, Row: int64(row) + 1, Column: b.opts.Keys[nullCol], Err: err}
			}
			if nullCol >= 0 {
				return &InputError{File: f.Name, Row: int64(row) + 1, Column: b.opts.Keys[nullCol], Err: ErrNullKey,
					Hint: "every change needs its full primary key; nothing was committed"}
			}
			order := make([]value, len(orders))
			for c, col := range orders {
				if order[c], err = valueAt(col, i); err != nil {
					return &InputError{File: f.Name, Row: int64(row) + 1, Column: b.opts.OrderBy[c], Err: err}
				}
			}
			w := b.winners[k]
			if w == nil {
				w = &winner{}
				b.winners[k] = w
			} else if compareValues(order, w.order) < 0 {
				continue // an older change: the current winner stays
			}
			// Equal order values: the later change in source order wins.
			w.file, w.rec, w.row, w.op, w.order = fi, int32(ri), int32(i), f.Ops[row], order
		}
	}
	return nil
}

// widenRange extends the key range over the non-null values of col.
func (b *Batch) widenRange(col arrow.Array) {
	switch a := col.(type) {
	case *array.Int32:
		for i, v := range a.Int32Values() {
			if a.IsValid(i) {
				b.widenInt(int64(v))
			}
		}
	case *array.Int64:
		for i, v := range a.Int64Values() {
			if a.IsValid(i) {
				b.widenInt(v)
			}
		}
	case *array.String:
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) {
				v := a.Value(i)
				if !b.rangeOK || v < b.loS {
					b.loS = strings.Clone(v)
				}
				if !b.rangeOK || v > b.hiS {
					b.hiS = strings.Clone(v)
				}
				b.rangeOK = true
			}
		}
	}
}

func (b *Batch) widenInt(v int64) {
	if !b.rangeOK || v < b.loI {
		b.loI = v
	}
	if !b.rangeOK || v > b.hiI {
		b.hiI = v
	}
	b.rangeOK = true
}

// KeyRange returns the smallest and greatest value of the first key column
// in the batch, typed as the column (int32, int64 or string); ok is false
// for other types or an empty batch. Only table rows in this range can
// match a change.
func (b *Batch) KeyRange() (column string, lo, hi any, ok bool) {
	if !b.rangeOK {
		return "", nil, nil, false
	}
	col := b.opts.Keys[0]
	switch b.schema.Field(b.keyIdx[0]).Type.ID() {
	case arrow.INT32:
		return col, int32(b.loI), int32(b.hiI), true
	case arrow.INT64:
		return col, b.loI, b.hiI, true
	case arrow.STRING:
		return col, b.loS, b.hiS, true
	}
	return "", nil, nil, false
}

// KeyColumns and OrderColumns are the columns MatchExisting expects, in order.
func (b *Batch) KeyColumns() []string   { return b.opts.Keys }
func (b *Batch) OrderColumns() []string { return b.opts.OrderBy }

// Len is the number of distinct keys in the batch.
func (b *Batch) Len() int { return len(b.winners) }

// MatchExisting reports live rows of one table data file: row i of keys and
// orders (the KeyColumns and OrderColumns, in order) sits at position
// firstPos+i of the file at path. Rows for which deleted reports true are
// already deleted and ignored, as are rows of keys the batch does not touch.
func (b *Batch) MatchExisting(path string, keys, orders []arrow.Array, firstPos int64, deleted func(pos int64) bool) error {
	if len(keys) == 0 {
		return nil
	}
	for i := 0; i < keys[0].Len(); i++ {
		k, ok := b.keyBytes(keys, i)
		if !ok || !b.mayHave(k) {
			continue // a null key in the table cannot match a change
		}
		w := b.winners[string(k)]
		if w == nil {
			continue
		}
		pos := firstPos + int64(i)
		if deleted != nil && deleted(pos) {
			continue
		}
		order := make([]value, len(orders))
		for c, col := range orders {
			var err error
			if order[c], err = valueAt(col, i); err != nil {
				return fmt.Errorf("table data file %s: column %q: %w", path, b.opts.OrderBy[c], err)
			}
		}
		if len(w.existing) == 0 || compareValues(order, w.existingOrder) > 0 {
			w.existingOrder = order
		}
		w.existing = append(w.existing, location{path: path, pos: pos})
	}
	return nil
}

// ResetExisting forgets the table rows MatchExisting reported, so the batch
// can be matched again against a newer snapshot of the table.
func (b *Batch) ResetExisting() {
	for _, w := range b.winners {
		w.existing, w.existingOrder = nil, nil
	}
	b.buildFilter()
}

var filterSeed = maphash.MakeSeed()

// buildFilter sizes the filter at 16 bits per key (about 6% false
// positives) and sets the bit of every key.
func (b *Batch) buildFilter() {
	n := 64
	for n < 16*len(b.winners) {
		n *= 2
	}
	b.filter = make([]uint64, n/64)
	for k := range b.winners {
		h := maphash.String(filterSeed, k) & uint64(n-1)
		b.filter[h/64] |= 1 << (h % 64)
	}
}

// mayHave reports whether key may be in the batch (false: it is not).
func (b *Batch) mayHave(key []byte) bool {
	if b.filter == nil {
		return true
	}
	h := maphash.Bytes(filterSeed, key) & uint64(len(b.filter)*64-1)
	return b.filter[h/64]&(1<<(h%64)) != 0
}

// FileStats counts the rows of one source file by op.
type FileStats struct {
	Name                      string
	Kind                      Kind
	Rows                      int
	Inserts, Updates, Deletes int
}

// Plan is what a batch does to the table.
type Plan struct {
	Files []FileStats
	// SourceRows counts all rows read; the three op counts split them.
	SourceRows, SourceInserts, SourceUpdates, SourceDeletes int
	// Keys is the number of distinct keys; the winners split them by op.
	Keys, WinInserts, WinUpdates, WinDeletes int
	// Stale counts winners skipped because the table holds a newer row.
	Stale int
	// Deletes maps each table data file to the sorted positions to delete.
	Deletes    map[string][]int64
	DeleteRows int
	// WriteRows is the number of rows Records yields.
	WriteRows int
	// The effect on the table, by key: rows inserted (no live row before),
	// updated (a live row replaced) and deleted (a D winner removing a live
	// row).
	RowsInserted, RowsUpdated, RowsDeleted int

	schema *arrow.Schema
	files  []*File
	keep   [][][]bool // file → record → row: write this row

	tombDeleted Tombstones // keys this plan leaves deleted, with the delete's order
	tombRevived []string   // keys this plan writes
}

// Plan decides, for every key, what the run does: nothing (a stale change,
// or a delete of an absent key), delete the key's live rows, or replace them
// with the winning row.
func (b *Batch) Plan() *Plan {
	p := &Plan{schema: b.schema, files: b.files, Deletes: map[string][]int64{}, Keys: len(b.winners)}
	p.keep = make([][][]bool, len(b.files))
	for fi, f := range b.files {
		st := FileStats{Name: f.Name, Kind: f.Kind, Rows: f.Rows(), Inserts: f.Count(Insert), Updates: f.Count(Update), Deletes: f.Count(Delete)}
		p.Files = append(p.Files, st)
		p.SourceRows += st.Rows
		p.SourceInserts += st.Inserts
		p.SourceUpdates += st.Updates
		p.SourceDeletes += st.Deletes
		p.keep[fi] = make([][]bool, len(f.Records))
		for ri, rec := range f.Records {
			p.keep[fi][ri] = make([]bool, rec.NumRows())
		}
	}
	p.tombDeleted = Tombstones{}
	ordered := len(b.orderIdx) > 0
	for k, w := range b.winners {
		switch w.op {
		case Insert:
			p.WinInserts++
		case Update:
			p.WinUpdates++
		case Delete:
			p.WinDeletes++
		}
		// A change never replaces a newer row, nor revives a key deleted by
		// a newer change; on equal values it wins.
		if ordered && len(w.existing) > 0 && compareValues(w.existingOrder, w.order) > 0 {
			p.Stale++
			continue
		}
		if ordered && len(w.existing) == 0 && b.tombstoned(k, w.order) {
			p.Stale++
			continue
		}
		for _, l := range w.existing {
			p.Deletes[l.path] = append(p.Deletes[l.path], l.pos)
		}
		switch {
		case w.op != Delete && len(w.existing) > 0:
			p.RowsUpdated++
		case w.op != Delete:
			p.RowsInserted++
		case len(w.existing) > 0:
			p.RowsDeleted++
		}
		if w.op != Delete {
			p.keep[w.file][w.rec][w.row] = true
			p.WriteRows++
			if ordered {
				p.tombRevived = append(p.tombRevived, k)
			}
		} else if ordered {
			p.tombDeleted[k] = orderKey(w.order)
		}
	}
	for path, ps := range p.Deletes {
		slices.Sort(ps)
		ps = slices.Compact(ps)
		p.Deletes[path] = ps
		p.DeleteRows += len(ps)
	}
	return p
}

// Empty reports whether the plan changes nothing in the table.
func (p *Plan) Empty() bool { return p.WriteRows == 0 && p.DeleteRows == 0 }

// Schema is the schema of the records Records yields.
func (p *Plan) Schema() *arrow.Schema { return p.schema }

// Records yields the rows to write, in source order. The consumer owns (and
// releases) each record.
func (p *Plan) Records(ctx context.Context, mem memory.Allocator) iter.Seq2[arrow.RecordBatch, error] {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return func(yield func(arrow.RecordBatch, error) bool) {
		ctx := compute.WithAllocator(ctx, mem)
		for fi, f := range p.files {
			for ri, rec := range f.Records {
				keep := p.keep[fi][ri]
				n := 0
				for _, k := range keep {
					if k {
						n++
					}
				}
				if n == 0 {
					continue
				}
				if n == len(keep) {
					rec.Retain()
					if !yield(rec, nil) {
						return
					}
					continue
				}
				mb := array.NewBooleanBuilder(mem)
				mb.AppendValues(keep, nil)
				mask := mb.NewBooleanArray()
				mb.Release()
				out, err := compute.FilterRecordBatch(ctx, rec, mask, compute.DefaultFilterOptions())
				mask.Release()
				if err != nil {
					yield(nil, fmt.Errorf("selecting rows of %s: %w", f.Name, err))
					return
				}
				if !yield(out, nil) {
					return
				}
			}
		}
	}
}
