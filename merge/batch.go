package merge

import (
	"context"
	"encoding/binary"
	"errors"
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
	// compared before source order. Empty means source order only. A
	// change with a null in any of them is ordered by source order alone
	// (see the package documentation).
	OrderBy []string
	// BeforeImagePrefix is the prefix of the before-image columns DMS's
	// add-before-image-columns rule adds (see File.SplitBeforeImage);
	// empty means DefaultBeforeImagePrefix. Matched case-insensitively.
	BeforeImagePrefix string
}

// Batch deduplicates the changes of one run per key. Files are added in
// source order; the winning change of each key is the greatest by (order
// columns…, file order, row order).
type Batch struct {
	reload   Reload
	opts     Options
	schema   *arrow.Schema
	keyIdx   []int
	orderIdx []int
	files    []*File
	// intKey: the key is one int or long column, indexed by its value in
	// intIndex instead of index.
	intKey   bool
	intIndex map[int64]int32
	// The winner of each key: index maps the key's encoding to its entry
	// in ws. The entries hold no pointers, and their order values live in
	// a slab of a few large chunks: few objects for the garbage collector.
	index    map[string]int32
	ws       []winner
	skeys    []string  // the key's encoding of each winner, without intKey
	orders   valueSlab // len(orderIdx) values per winner, at winner.order
	exOrders valueSlab // the same for the greatest live table row, at winner.exOrder
	paths    []string
	pathIdx  map[string]int32
	extra    map[int32][]location // table rows of a key beyond the first
	scratch  []value
	keyBuf   []byte
	// maxes holds, for a key whose winner follows a change with a null
	// order value (winner.anchored), the greatest order value of its
	// changes in the batch, when one has any. For other keys it is the
	// winner's.
	maxes map[int32][]value
	// keyChanges counts the updates that change their key, by new key.
	keyChanges int
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
	// parts > 1: the batch takes only the keys whose hash falls in
	// partition part (SetPartition).
	part, parts uint64
}

// winner holds no pointers (a string key is in Batch.skeys): the
// collector does not scan a slice of them, nor does growing one copy it
// under write barriers.
type winner struct {
	ikey           int64 // an int key (Batch.intKey)
	file, rec, row int32
	op             Op
	// anchored: the winner is, or follows, a change of the key whose order
	// value is null; it is ordered against the table by source order.
	anchored bool
	stale    bool     // set by Plan: the winner changes nothing
	order    int32    // offset in Batch.orders
	exOrder  int32    // offset in Batch.exOrders; -1: no live table row with an order value
	nEx      int32    // live table rows of the key: first, then Batch.extra
	first    location // the first of them
}

type location struct {
	path int32 // index in Batch.paths
	pos  int64
}

// Reload reads a file added to a batch again, aligned to the batch's
// schema, and hands it to each a part at a time, in order: a part holds
// whole records of the file (ReadGroups: one row group's) and their ops.
// The caller of each releases the part when each returns, so writing a
// file's winners holds one part of it in memory. An error from each is
// returned as it is.
type Reload func(ctx context.Context, name string, each func(part *File) error) error

// SetReload sets how shed files are read again.
func (b *Batch) SetReload(r Reload) { b.reload = r }

// SetPartition makes the batch take only the changes (in Add) and the table
// rows (in MatchExisting) of the keys in partition i of n, by key hash.
// Planning every partition of the same files, one batch at a time, and
// joining the plans with Plan.Absorb gives the plan of one batch of them
// all, with the memory of one partition's keys. Call it before Add.
func (b *Batch) SetPartition(i, n int) error {
	if n < 1 || i < 0 || i >= n {
		return fmt.Errorf("merge: partition %d of %d", i, n)
	}
	if len(b.files) > 0 {
		return errors.New("merge: SetPartition after Add")
	}
	b.part, b.parts = uint64(i), uint64(n)
	return nil
}

// inPartition reports whether a key of hash h is in the batch's partition.
// The high bits decide, so the filter (low bits) stays uniform within one.
func (b *Batch) inPartition(h uint64) bool {
	return b.parts <= 1 || (h>>32)%b.parts == b.part
}

// NewBatch starts a batch for a table of the given stored schema.
func NewBatch(schema *arrow.Schema, o Options) (*Batch, error) {
	b := &Batch{opts: o, schema: schema, index: map[string]int32{}, pathIdx: map[string]int32{}}
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
	b.scratch = make([]value, len(b.orderIdx))
	b.orders.width, b.exOrders.width = len(b.orderIdx), len(b.orderIdx)
	if len(b.keyIdx) == 1 {
		switch schema.Field(b.keyIdx[0]).Type.ID() {
		case arrow.INT32, arrow.INT64:
			b.intKey, b.intIndex = true, map[int64]int32{}
		}
	}
	return b, nil
}

// reserve sizes the batch for about n keys.
func (b *Batch) reserve(n int) {
	if n <= len(b.ws) {
		return
	}
	if b.intKey {
		b.intIndex = make(map[int64]int32, n)
	} else {
		b.index = make(map[string]int32, n)
	}
	// Sized once: appending would copy the entries as they grow, and hold
	// two copies meanwhile. (Order values: the slab grows without copying.)
	b.ws = make([]winner, 0, n)
}

func columnNames(sc *arrow.Schema) string {
	names := make([]string, 0, sc.NumFields())
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	return fmt.Sprint(names)
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
// been aligned to the batch's schema. A null key fails the whole batch. An
// update whose before-image key (File.SplitBeforeImage) differs from its key
// is a delete of the old key and an update of the new one, both at the
// update's place in source order and with its order value.
func (b *Batch) Add(f *File) error {
	// The file holds the table's columns (aligned), or at least its key and
	// order columns (aligned after Project).
	keyIdx, orderIdx, err := b.columnsOf(f)
	if err != nil {
		return err
	}
	before, err := b.beforeOf(f)
	if err != nil {
		return err
	}
	if n := len(b.files); n > 0 && CompareSource(b.files[n-1].Kind, b.files[n-1].Name, f.Kind, f.Name) >= 0 {
		return fmt.Errorf("merge: %s added after %s, out of source order", f.Name, b.files[n-1].Name)
	}
	b.filter = nil // built again by ResetExisting, with this file's keys
	for ri, rec := range f.Records {
		b.widenRange(rec.Column(keyIdx[0]))
		if before != nil {
			b.widenRange(before[ri][0]) // the old keys' rows are deleted too
		}
	}
	fi := int32(len(b.files))
	b.files = append(b.files, f)
	row := 0
	for ri, rec := range f.Records {
		keys, orders := pick(rec, keyIdx), pick(rec, orderIdx)
		var old []arrow.Array
		if before != nil {
			old = before[ri]
		}
		for i := 0; i < int(rec.NumRows()); i, row = i+1, row+1 {
			order := b.scratch
			for c, col := range orders {
				var err error
				if order[c], err = valueAt(col, i); err != nil {
					return &InputError{File: f.Name, Row: int64(row) + 1, Column: b.opts.OrderBy[c], Err: err}
				}
			}
			wi, isNew, nullCol, err := b.winnerOf(keys, i)
			if err != nil {
				return &InputError{File: f.Name, Row: int64(row) + 1, Column: b.opts.Keys[nullCol], Err: err}
			}
			if nullCol >= 0 {
				return &InputError{File: f.Name, Row: int64(row) + 1, Column: b.opts.Keys[nullCol], Err: ErrNullKey,
					Hint: "every change needs its full primary key; nothing was committed"}
			}
			op := f.Ops[row]
			if old != nil && op == Update && !old[0].IsNull(i) && !b.sameKey(keys, old, i) {
				// A key change: the old key is deleted here. SplitBeforeImage
				// refused before images that are partly null.
				if wi >= 0 {
					b.keyChanges++ // counted in the new key's partition
				}
				owi, oNew, _, err := b.winnerOf(old, i)
				if err != nil {
					return &InputError{File: f.Name, Row: int64(row) + 1, Column: b.opts.beforeImagePrefix() + b.opts.Keys[0], Err: err}
				}
				if owi >= 0 {
					b.apply(owi, oNew, order, fi, int32(ri), int32(i), Delete)
				}
			}
			if wi < 0 {
				continue // another partition's key
			}
			b.apply(wi, isNew, order, fi, int32(ri), int32(i), op)
		}
	}
	return nil
}

// apply folds one change into the winner of its key, in source order. A
// change with an order value wins when its value is at least the winner's
// (on equal values the later change wins) or the winner's is null; a change
// whose order value is null always wins.
func (b *Batch) apply(wi int32, isNew bool, order []value, fi, ri, i int32, op Op) {
	null := nullOrder(order)
	w := &b.ws[wi]
	switch {
	case isNew:
		w.order = b.orders.add(order)
		own(b.orderOf(wi))
		w.anchored = null
	case null:
		if !w.anchored {
			// The winner so far has the key's greatest order value: a
			// delete that follows deletes a row that new.
			b.raiseMax(wi, b.orderOf(wi))
			w.anchored = true
		}
		own(b.orderOf(wi)[:copy(b.orderOf(wi), order)])
	case !nullOrder(b.orderOf(wi)) && compareValues(order, b.orderOf(wi)) < 0:
		return // an older change: the current winner stays
	default:
		// A newer change, an equal one (the later in source order wins), or
		// any change after one with a null order value.
		own(b.orderOf(wi)[:copy(b.orderOf(wi), order)])
		if w.anchored {
			b.raiseMax(wi, order)
		}
	}
	w.file, w.rec, w.row, w.op = fi, ri, i, op
}

// raiseMax makes order the greatest order value of an anchored key's
// changes if it is greater.
func (b *Batch) raiseMax(wi int32, order []value) {
	if m, ok := b.maxes[wi]; ok && compareValues(order, m) <= 0 {
		return
	}
	if b.maxes == nil {
		b.maxes = map[int32][]value{}
	}
	m := slices.Clone(order)
	own(m)
	b.maxes[wi] = m
}

// own copies the strings of kept order values out of the Arrow buffers they
// were read from, which are released before the batch is done.
func own(vs []value) {
	for i := range vs {
		if vs[i].kind == 's' {
			vs[i].s = strings.Clone(vs[i].s)
		}
	}
}

// winnerOf finds (or adds) the winner entry of row i's key. nullCol is
// the index of a null key column, or -1.
func (b *Batch) winnerOf(keys []arrow.Array, i int) (wi int32, isNew bool, nullCol int, err error) {
	if b.intKey {
		v, ok := intKeyAt(keys[0], i)
		if !ok {
			return 0, false, 0, nil
		}
		if b.parts > 1 && !b.inPartition(intHash(v)) {
			return -1, false, -1, nil
		}
		if wi, ok := b.intIndex[v]; ok {
			return wi, false, -1, nil
		}
		wi = int32(len(b.ws))
		b.intIndex[v] = wi
		b.ws = append(b.ws, winner{ikey: v, exOrder: -1})
		return wi, true, -1, nil
	}
	buf := b.keyBuf[:0]
	for c, col := range keys {
		var ok bool
		if buf, ok, err = appendKey(buf, col, i); err != nil || !ok {
			b.keyBuf = buf
			return 0, false, c, err
		}
	}
	b.keyBuf = buf
	if b.parts > 1 && !b.inPartition(maphash.Bytes(filterSeed, buf)) {
		return -1, false, -1, nil
	}
	if wi, ok := b.index[string(buf)]; ok {
		return wi, false, -1, nil
	}
	k := string(buf)
	wi = int32(len(b.ws))
	b.index[k] = wi
	b.ws = append(b.ws, winner{exOrder: -1})
	b.skeys = append(b.skeys, k)
	return wi, true, -1, nil
}

// intKeyAt reads an int or long key; ok is false for a null or another
// type.
func intKeyAt(arr arrow.Array, i int) (int64, bool) {
	switch a := arr.(type) {
	case *array.Int32:
		return int64(a.Value(i)), a.IsValid(i)
	case *array.Int64:
		return a.Value(i), a.IsValid(i)
	}
	return 0, false
}

// keyString is winner i's key in the encoding tombstones use.
func (b *Batch) keyString(i int32) string {
	if !b.intKey {
		return b.skeys[i]
	}
	return string(binary.BigEndian.AppendUint64([]byte{'i'}, uint64(b.ws[i].ikey)))
}

// columnsOf finds the key and order columns in f, which must have the
// table's types there.
func (b *Batch) columnsOf(f *File) (keyIdx, orderIdx []int, err error) {
	find := func(names []string, tableIdx []int) ([]int, error) {
		out := make([]int, len(names))
		for c, name := range names {
			is := f.Schema.FieldIndices(name)
			if len(is) != 1 || !arrow.TypeEqual(f.Schema.Field(is[0]).Type, b.schema.Field(tableIdx[c]).Type) {
				return nil, &InputError{File: f.Name, Column: name, Err: fmt.Errorf("%w: file not aligned to the table schema", ErrSchemaClash)}
			}
			out[c] = is[0]
		}
		return out, nil
	}
	if keyIdx, err = find(b.opts.Keys, b.keyIdx); err != nil {
		return nil, nil, err
	}
	orderIdx, err = find(b.opts.OrderBy, b.orderIdx)
	return keyIdx, orderIdx, err
}

// orderOf is the order value of winner i, in the slab.
func (b *Batch) orderOf(i int32) []value {
	return b.orders.at(b.ws[i].order)
}

// exOrderOf is the greatest order value of winner i's live table rows (of
// those with one, when exOrder >= 0).
func (b *Batch) exOrderOf(i int32) []value {
	return b.exOrders.at(b.ws[i].exOrder)
}

// eachLocation calls fn for every live table row of winner i.
func (b *Batch) eachLocation(i int32, fn func(location)) {
	w := &b.ws[i]
	if w.nEx == 0 {
		return
	}
	fn(w.first)
	for _, l := range b.extra[i] {
		fn(l)
	}
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
func (b *Batch) Len() int { return len(b.ws) }

// MatchExisting reports live rows of one table data file: row i of keys and
// orders (the KeyColumns and OrderColumns, in order) sits at position
// firstPos+i of the file at path. Rows for which deleted reports true are
// already deleted and ignored, as are rows of keys the batch does not touch.
func (b *Batch) MatchExisting(path string, keys, orders []arrow.Array, firstPos int64, deleted func(pos int64) bool) error {
	if len(keys) == 0 {
		return nil
	}
	for i := 0; i < keys[0].Len(); i++ {
		var wi int32
		if b.intKey {
			v, ok := intKeyAt(keys[0], i)
			if !ok {
				continue // a null key in the table cannot match a change
			}
			if h := intHash(v); !b.inPartition(h) || !b.mayHaveHash(h) {
				continue
			}
			if wi, ok = b.intIndex[v]; !ok {
				continue
			}
		} else {
			k, ok := b.keyBytes(keys, i)
			if !ok {
				continue
			}
			if h := maphash.Bytes(filterSeed, k); !b.inPartition(h) || !b.mayHaveHash(h) {
				continue
			}
			if wi, ok = b.index[string(k)]; !ok {
				continue
			}
		}
		pos := firstPos + int64(i)
		if deleted != nil && deleted(pos) {
			continue
		}
		order := b.scratch
		for c, col := range orders {
			var err error
			if order[c], err = valueAt(col, i); err != nil {
				return fmt.Errorf("table data file %s: column %q: %w", path, b.opts.OrderBy[c], err)
			}
		}
		w := &b.ws[wi]
		switch {
		case nullOrder(order):
			// Written by a change ordered by source order: any later
			// change replaces it.
		case w.exOrder < 0:
			w.exOrder = b.exOrders.add(order)
			own(b.exOrderOf(wi))
		case compareValues(order, b.exOrderOf(wi)) > 0:
			own(b.exOrderOf(wi)[:copy(b.exOrderOf(wi), order)])
		}
		loc := location{path: b.pathIndex(path), pos: pos}
		if w.nEx == 0 {
			w.first = loc
		} else {
			if b.extra == nil {
				b.extra = map[int32][]location{}
			}
			b.extra[wi] = append(b.extra[wi], loc)
		}
		w.nEx++
	}
	return nil
}

func (b *Batch) pathIndex(path string) int32 {
	i, ok := b.pathIdx[path]
	if !ok {
		i = int32(len(b.paths))
		b.paths = append(b.paths, path)
		b.pathIdx[path] = i
	}
	return i
}

// ResetExisting forgets the table rows MatchExisting reported, so the batch
// can be matched again against a newer snapshot of the table.
func (b *Batch) ResetExisting() {
	for i := range b.ws {
		b.ws[i].exOrder, b.ws[i].nEx = -1, 0
	}
	b.exOrders.reset()
	b.extra = nil
	b.buildFilter()
}

var filterSeed = maphash.MakeSeed()

// buildFilter sizes the filter at 16 bits per key (about 6% false
// positives) and sets the bit of every key.
func (b *Batch) buildFilter() {
	n := 64
	for n < 16*len(b.ws) {
		n *= 2
	}
	b.filter = make([]uint64, n/64)
	for i := range b.ws { // not the index, whose capacity may be far larger
		var h uint64
		if b.intKey {
			h = intHash(b.ws[i].ikey)
		} else {
			h = maphash.String(filterSeed, b.skeys[i])
		}
		h &= uint64(n - 1)
		b.filter[h/64] |= 1 << (h % 64)
	}
}

// intHash mixes an int key (the finalizer of MurmurHash3).
func intHash(v int64) uint64 {
	h := uint64(v)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// mayHaveHash reports whether a key of hash h (intHash of an int key,
// maphash of a key's encoding) may be in the batch (false: it is not).
func (b *Batch) mayHaveHash(h uint64) bool {
	if b.filter == nil {
		return true
	}
	h &= uint64(len(b.filter)*64 - 1)
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
	// Stale counts winners skipped because the table holds a newer row,
	// or a tombstone a newer delete.
	Stale int
	// KeyChanges counts the updates whose before-image key differs from
	// their key (see File.SplitBeforeImage): each deletes its old key.
	KeyChanges int
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

	reload      Reload
	keyCols     []string   // the key and order columns
	once        bool       // RecordsOnce: project files kept whole once written
	tombDeleted Tombstones // keys this plan leaves deleted, with the delete's order
	tombRevived []string   // keys this plan writes
}

// Plan decides, for every key, what the run does: nothing (a stale change,
// or a delete of an absent key), delete the key's live rows, or replace them
// with the winning row.
func (b *Batch) Plan() *Plan {
	p := &Plan{schema: b.schema, files: b.files, reload: b.reload, Deletes: map[string][]int64{}, Keys: len(b.ws),
		KeyChanges: b.keyChanges, keyCols: append(slices.Clone(b.opts.Keys), b.opts.OrderBy...)}
	p.keep = make([][][]bool, len(b.files))
	for fi, f := range b.files {
		st := FileStats{Name: f.Name, Kind: f.Kind, Rows: f.Rows(), Inserts: f.Count(Insert), Updates: f.Count(Update), Deletes: f.Count(Delete)}
		p.Files = append(p.Files, st)
		p.SourceRows += st.Rows
		p.SourceInserts += st.Inserts
		p.SourceUpdates += st.Updates
		p.SourceDeletes += st.Deletes
		rows := f.recordRows()
		p.keep[fi] = make([][]bool, len(rows))
		for ri, n := range rows {
			p.keep[fi][ri] = make([]bool, n)
		}
	}
	p.tombDeleted = Tombstones{}
	ordered := len(b.orderIdx) > 0
	deletes := make([][]int64, len(b.paths)) // by path index
	for wi := range b.ws {
		w := &b.ws[wi]
		live := w.nEx > 0
		var k string // the key, as tombstones hold it: only where they need it
		if ordered && (w.op == Delete || len(b.tombstones) > 0) {
			k = b.keyString(int32(wi))
		}
		order := b.orderOf(int32(wi))
		switch w.op {
		case Insert:
			p.WinInserts++
		case Update:
			p.WinUpdates++
		case Delete:
			p.WinDeletes++
		}
		// A change never replaces a newer row, nor revives a key deleted by
		// a newer change; on equal values it wins. A winner ordered by
		// source order (anchored) follows whatever the table holds.
		w.stale = ordered && !w.anchored &&
			(w.exOrder >= 0 && compareValues(b.exOrderOf(int32(wi)), order) > 0 || !live && b.tombstoned(k, order))
		if w.stale {
			p.Stale++
			continue
		}
		b.eachLocation(int32(wi), func(l location) {
			deletes[l.path] = append(deletes[l.path], l.pos)
		})
		switch {
		case w.op != Delete && live:
			p.RowsUpdated++
		case w.op != Delete:
			p.RowsInserted++
		case live:
			p.RowsDeleted++
		}
		if w.op != Delete {
			p.keep[w.file][w.rec][w.row] = true
			p.WriteRows++
			if _, ok := b.tombstones[k]; ordered && ok {
				p.tombRevived = append(p.tombRevived, k) // only a tombstone needs forgetting
			}
		} else if ordered {
			if known := b.knownOrder(int32(wi)); known != nil {
				p.tombDeleted[k] = orderKey(known)
			}
		}
	}
	for i, ps := range deletes {
		if len(ps) == 0 {
			continue
		}
		slices.Sort(ps)
		ps = slices.Compact(ps)
		p.Deletes[b.paths[i]] = ps
		p.DeleteRows += len(ps)
	}
	return p
}

// knownOrder is what the tombstone of a delete winner records: the
// greatest order value the key is known to have had, of its changes in the
// batch and its live table rows; nil when none has one. For a delete with
// an order value that is its own (it is not stale); for a delete whose order
// value is null, it is the value of the row it deletes, as a delete carrying
// the row's image would have.
func (b *Batch) knownOrder(wi int32) []value {
	w := &b.ws[wi]
	known := b.orderOf(wi)
	if w.anchored {
		known = b.maxes[wi]
	}
	if w.exOrder >= 0 && (known == nil || compareValues(b.exOrderOf(wi), known) > 0) {
		known = b.exOrderOf(wi)
	}
	return known
}

// Absorb adds q, the plan of another partition of the same batch (see
// Batch.SetPartition), to p. The partitions' keys are disjoint, so their
// rows to write and positions to delete are too.
func (p *Plan) Absorb(q *Plan) error {
	if len(p.files) != len(q.files) || len(p.keep) != len(q.keep) {
		return errors.New("merge: absorbing the plan of another batch")
	}
	p.Keys += q.Keys
	p.WinInserts += q.WinInserts
	p.WinUpdates += q.WinUpdates
	p.WinDeletes += q.WinDeletes
	p.Stale += q.Stale
	p.KeyChanges += q.KeyChanges
	p.WriteRows += q.WriteRows
	p.RowsInserted += q.RowsInserted
	p.RowsUpdated += q.RowsUpdated
	p.RowsDeleted += q.RowsDeleted
	for fi, recs := range q.keep {
		if len(recs) != len(p.keep[fi]) {
			return errors.New("merge: absorbing the plan of another batch")
		}
		for ri, rows := range recs {
			into := p.keep[fi][ri]
			for i, k := range rows {
				if k {
					into[i] = true
				}
			}
		}
	}
	for path, ps := range q.Deletes {
		if old, ok := p.Deletes[path]; ok {
			ps = append(slices.Clone(old), ps...)
			slices.Sort(ps)
			ps = slices.Compact(ps)
			p.DeleteRows -= len(old)
		}
		p.Deletes[path] = ps
		p.DeleteRows += len(ps)
	}
	if p.tombDeleted == nil {
		p.tombDeleted = Tombstones{}
	}
	for k, v := range q.tombDeleted {
		p.tombDeleted[k] = v
	}
	p.tombRevived = append(p.tombRevived, q.tombRevived...)
	return nil
}

// Empty reports whether the plan changes nothing in the table.
func (p *Plan) Empty() bool { return p.WriteRows == 0 && p.DeleteRows == 0 }

// Schema is the schema of the records Records yields.
func (p *Plan) Schema() *arrow.Schema { return p.schema }

// RecordsOnce is Records for a consumer that writes them once: a file kept
// whole since its first read keeps only its key and order columns after its
// rows are yielded, freeing its memory; a later call reads it again.
func (p *Plan) RecordsOnce(ctx context.Context, mem memory.Allocator) iter.Seq2[arrow.RecordBatch, error] {
	q := *p
	q.once = true
	return q.Records(ctx, mem)
}

// Records yields the rows to write, in source order. The consumer owns (and
// releases) each record.
func (p *Plan) Records(ctx context.Context, mem memory.Allocator) iter.Seq2[arrow.RecordBatch, error] {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return func(yield func(arrow.RecordBatch, error) bool) {
		ctx := compute.WithAllocator(ctx, mem)
		winners := func(fi int) bool {
			return slices.ContainsFunc(p.keep[fi], func(k []bool) bool { return slices.Contains(k, true) })
		}
		if p.once {
			for fi, f := range p.files {
				if !f.shed && f.full == nil && !winners(fi) {
					f.Project(p.keyCols) // kept whole for nothing: free it first
				}
			}
		}
		var todo []int
		for fi, f := range p.files {
			if winners(fi) || f.unchecked { // otherwise: do not read it again
				todo = append(todo, fi)
			}
		}
		ahead := newRereads(ctx, p, mem)
		defer ahead.stop()
		for j, fi := range todo {
			// The next files to read again are read (and decoded) while
			// this one's rows are written.
			for _, next := range todo[j:min(j+rereadAhead, len(todo))] {
				if p.readsAgain(next) {
					ahead.start(next)
				}
			}
			f := p.files[fi]
			if !p.readsAgain(fi) {
				ok := p.yieldFile(ctx, mem, fi, 0, f, f.Records, yield)
				if p.once {
					// Once written, only its key and order columns stay: a
					// re-plan after a conflict can still add it, a second
					// write reads it again.
					f.Project(p.keyCols)
				}
				if !ok {
					return
				}
				continue
			}
			if ok, err := ahead.drain(fi, yield); err != nil {
				yield(nil, err)
				return
			} else if !ok {
				return
			}
		}
	}
}

// readsAgain reports whether the rows of file fi are read again to be
// written: it was shed, or read without all its columns.
func (p *Plan) readsAgain(fi int) bool {
	f := p.files[fi]
	return f.shed || f.full != nil
}

// Check reads again every file of the plan read without all its columns
// (ReadOptions.Check off), checking them, and writes nothing: what a run that
// commits no rows (or a dry run) does so that bad input fails it as it
// fails a run that writes. Records does the same as it writes.
func (p *Plan) Check(ctx context.Context) error {
	return CheckFiles(ctx, p.files, p.reload)
}

// CheckFiles reads again, through reload, every file of files read
// without all its columns (ReadOptions.Check off), checking them; it keeps
// nothing. A file that changed since its first read fails it.
func CheckFiles(ctx context.Context, files []*File, reload Reload) error {
	for _, f := range files {
		if !f.unchecked {
			continue
		}
		if err := readAgain(ctx, reload, f, func(int, *File) error { return nil }); err != nil {
			return err
		}
	}
	return nil
}

// errStopped ends a Reload whose consumer stopped.
var errStopped = errors.New("merge: the consumer stopped")

// reread reads a shed or projected file again and yields its winners, a
// part at a time; false: the consumer stopped.
func (p *Plan) reread(ctx context.Context, mem memory.Allocator, fi int, f *File, yield func(arrow.RecordBatch, error) bool) (bool, error) {
	err := readAgain(ctx, p.reload, f, func(first int, part *File) error {
		if !p.yieldFile(ctx, mem, fi, first, f, part.Records, yield) {
			return errStopped
		}
		return nil
	})
	if errors.Is(err, errStopped) {
		return false, nil
	}
	return err == nil, err
}

// readAgain reads f again through reload and hands each part to each,
// with the index in f of the part's first record. A part that does not
// match what the first read saw (its rows per record, its ops) fails the
// read: the object changed in between.
func readAgain(ctx context.Context, reload Reload, f *File, each func(first int, part *File) error) error {
	if reload == nil {
		return fmt.Errorf("merge: %s was shed or projected and the batch has no Reload", f.Name)
	}
	changed := &InputError{File: f.Name, Err: errors.New("the object changed during the run"),
		Hint: "DMS does not rewrite its files; if another process does, stop it; nothing was committed, rerun"}
	rows := f.recordRows()
	ri, row := 0, 0
	err := reload(ctx, f.Name, func(part *File) error {
		got := part.recordRows()
		n := len(part.Ops)
		if ri+len(got) > len(rows) || !slices.Equal(got, rows[ri:ri+len(got)]) ||
			row+n > len(f.Ops) || !slices.Equal(part.Ops, f.Ops[row:row+n]) {
			return changed
		}
		if err := each(ri, part); err != nil {
			return err
		}
		ri, row = ri+len(got), row+n
		return nil
	})
	switch {
	case err != nil:
		return err
	case ri != len(rows) || row != len(f.Ops):
		return changed
	}
	return nil
}

// yieldFile yields the rows to write of one file; false: the consumer
// stopped.
func (p *Plan) yieldFile(ctx context.Context, mem memory.Allocator, fi, first int, f *File, recs []arrow.RecordBatch, yield func(arrow.RecordBatch, error) bool) bool {
	for ri, rec := range recs {
		keep := p.keep[fi][first+ri]
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
				return false
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
			return false
		}
		if !yield(out, nil) {
			return false
		}
	}
	return true
}
