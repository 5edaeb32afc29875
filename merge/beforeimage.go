package merge

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// DefaultBeforeImagePrefix is the column prefix of DMS's transformation
// rule add-before-image-columns when the rule sets none.
const DefaultBeforeImagePrefix = "BI_"

// beforeImagePrefix is the prefix of before-image columns, lowercase as
// stored names are.
func (o Options) beforeImagePrefix() string {
	return strings.ToLower(cmp.Or(o.BeforeImagePrefix, DefaultBeforeImagePrefix))
}

// KeyColumns are the key and order columns: what a batch needs of a file.
func (o Options) KeyColumns() []string {
	return append(slices.Clone(o.Keys), o.OrderBy...)
}

// Keeps reports whether a batch needs a column of a file it does not keep
// whole (ReadOptions.Keep): the key and order columns, and any column that
// may be a key's before image (SplitBeforeImage sorts them out).
func (o Options) Keeps(column string) bool {
	return slices.Contains(o.Keys, column) || slices.Contains(o.OrderBy, column) ||
		strings.HasPrefix(column, o.beforeImagePrefix())
}

// beforeImage holds the before-image key of a file's rows: for each record
// of File.Records, one array per key column, in the order of keys.
type beforeImage struct {
	keys []string
	recs [][]arrow.Array
}

func (bi *beforeImage) release() {
	for _, cols := range bi.recs {
		for _, c := range cols {
			c.Release()
		}
	}
	bi.recs = nil
}

// ErrBeforeImage: a file's before-image columns do not say what DMS writes
// in them.
var ErrBeforeImage = errors.New("before-image columns do not match what DMS writes")

// SplitBeforeImage takes the file's before-image columns out of its Schema
// and Records, so they never become table columns, and keeps the old key of
// every update that changes its key for the Batch. Call it right after
// ReadFile, before Project, CheckKeys, Evolve and Align, with the batch's
// Options.
//
// A before-image column is one named o.BeforeImagePrefix (DefaultBeforeImagePrefix
// when empty; matched case-insensitively) followed by the name of another
// column of the file: what DMS's transformation rule add-before-image-columns
// adds after the table's columns, BI_<column>. With column-filter pk-only, the
// rule's usual setting, they are the key columns' before images: null in I
// rows (and in full-load files), the old key in U rows (the key itself when
// it did not change), the deleted key in D rows. Before images of other
// columns are dropped. A file with before images of some key columns but not
// all, of another type than the key, partly null, or in an I or D row with a
// key other than the row's, is refused (an *InputError wrapping
// ErrBeforeImage or ErrSchemaClash): that is not what DMS writes, and
// guessing would delete the wrong row.
func (f *File) SplitBeforeImage(o Options) error {
	if f.shed {
		return fmt.Errorf("merge: %s: SplitBeforeImage after Shed", f.Name)
	}
	prefix := o.beforeImagePrefix()
	names := map[string]int{}
	for i, fld := range f.Schema.Fields() {
		names[fld.Name] = i
	}
	// A file read with ReadOptions.Keep holds fewer columns than it has:
	// a before image is told by the columns of the file.
	all := map[string]bool{}
	for _, fld := range f.FullSchema().Fields() {
		all[fld.Name] = true
	}
	before := func(name string) bool {
		base, ok := strings.CutPrefix(name, prefix)
		return ok && all[base] && base != name
	}
	isBefore := make([]bool, f.Schema.NumFields())
	found := false
	for i, fld := range f.Schema.Fields() {
		if before(fld.Name) {
			isBefore[i], found = true, true
		}
	}
	if f.full != nil {
		var fields []arrow.Field
		for _, fld := range f.full.Fields() {
			if base, _ := strings.CutPrefix(fld.Name, prefix); before(fld.Name) && slices.Contains(o.Keys, base) {
				if _, ok := names[fld.Name]; !ok {
					return fmt.Errorf("merge: %s: SplitBeforeImage after a Project that dropped the before image %s (keep Options.Keeps)", f.Name, fld.Name)
				}
			}
			if !before(fld.Name) {
				fields = append(fields, fld)
			}
		}
		if len(fields) < f.full.NumFields() {
			f.full = arrow.NewSchema(fields, nil)
		}
	}
	if !found {
		return nil
	}
	keyIdx, biIdx, err := f.beforeImageKeys(o.Keys, prefix, names, isBefore)
	if err != nil {
		return err
	}
	var bi *beforeImage
	if biIdx != nil {
		changed, err := f.checkBeforeImage(o.Keys, keyIdx, biIdx)
		if err != nil {
			return err
		}
		if changed { // else nothing to remember: every before image is null or the key
			bi = &beforeImage{keys: slices.Clone(o.Keys)}
			for _, rec := range f.Records {
				cols := pick(rec, biIdx)
				for _, c := range cols {
					c.Retain()
				}
				bi.recs = append(bi.recs, cols)
			}
		}
	}
	var fields []arrow.Field
	var keep []int
	for i, fld := range f.Schema.Fields() {
		if !isBefore[i] {
			fields, keep = append(fields, fld), append(keep, i)
		}
	}
	sc := arrow.NewSchema(fields, nil)
	for i, rec := range f.Records {
		f.Records[i] = array.NewRecordBatch(sc, pick(rec, keep), rec.NumRows())
		rec.Release()
	}
	f.Schema, f.before = sc, bi
	return nil
}

// beforeImageKeys finds the key columns and their before images; biIdx is
// nil when no key column has one.
func (f *File) beforeImageKeys(keys []string, prefix string, names map[string]int, isBefore []bool) (keyIdx, biIdx []int, err error) {
	var with, without []string
	for _, k := range keys {
		ki, ok := names[k]
		if !ok {
			return nil, nil, nil // CheckKeys refuses the file
		}
		bi, ok := names[prefix+k]
		if !ok || !isBefore[bi] {
			without = append(without, k)
			continue
		}
		with = append(with, k)
		if kt, bt := f.Schema.Field(ki).Type, f.Schema.Field(bi).Type; !arrow.TypeEqual(kt, bt) {
			return nil, nil, &InputError{File: f.Name, Column: prefix + k,
				Err:  fmt.Errorf("%w: the before image of key column %s is %s, the key is %s", ErrSchemaClash, k, TypeName(bt), TypeName(kt)),
				Hint: "DMS writes a key's before image in the key's type; fix or remove the file, then rerun; nothing was committed"}
		}
		keyIdx, biIdx = append(keyIdx, ki), append(biIdx, bi)
	}
	if len(with) > 0 && len(without) > 0 {
		return nil, nil, &InputError{File: f.Name, Column: prefix + without[0],
			Err: fmt.Errorf("%w: the file has before images of key columns %v but not of %v", ErrBeforeImage, with, without),
			Hint: "a key change needs the old value of every key column: give the DMS rule add-before-image-columns " +
				"every primary key column (column-filter pk-only) and the same --key; nothing was committed"}
	}
	return keyIdx, biIdx, nil
}

// checkBeforeImage checks every row's before-image key against what DMS
// writes; changed reports an update whose before-image key differs from its
// key.
func (f *File) checkBeforeImage(keys []string, keyIdx, biIdx []int) (changed bool, err error) {
	var kb, bb []byte
	row := int64(0)
	for _, rec := range f.Records {
		kcols, bcols := pick(rec, keyIdx), pick(rec, biIdx)
		for i := 0; i < int(rec.NumRows()); i, row = i+1, row+1 {
			nulls := 0
			for _, c := range bcols {
				if c.IsNull(i) {
					nulls++
				}
			}
			if nulls == len(bcols) {
				continue
			}
			fail := func(col int, format string, args ...any) error {
				return &InputError{File: f.Name, Row: row + 1, Column: f.Schema.Field(biIdx[col]).Name,
					Value: bcols[col].ValueStr(i), Err: fmt.Errorf("%w: "+format, append([]any{ErrBeforeImage}, args...)...),
					Hint: "DMS writes the old key in every before-image column of an update, the key itself in a delete, " +
						"nulls in an insert; fix or remove the file, then rerun; nothing was committed"}
			}
			if nulls > 0 {
				c := slices.IndexFunc(bcols, func(a arrow.Array) bool { return a.IsNull(i) })
				return false, fail(c, "the before image of key column %s is null, others are not", keys[c])
			}
			same, diff := true, 0
			for c := range kcols {
				kb, _, _ = appendKey(kb[:0], kcols[c], i)
				bb, _, _ = appendKey(bb[:0], bcols[c], i)
				if !bytes.Equal(kb, bb) {
					same, diff = false, c
					break
				}
			}
			switch op := f.Ops[row]; {
			case same:
			case op == Update:
				changed = true
			case op == Insert:
				return false, fail(diff, "an insert (I) whose before-image key is not null and differs from its key (%s)", kcols[diff].ValueStr(i))
			default:
				return false, fail(diff, "a delete (D) whose before-image key differs from its key (%s)", kcols[diff].ValueStr(i))
			}
		}
	}
	return changed, nil
}

// align converts the before-image keys to the types of the table's key
// columns, as Align converts the keys.
func (bi *beforeImage) align(mem memory.Allocator, file string, table *arrow.Schema) error {
	for c, k := range bi.keys {
		is := table.FieldIndices(k)
		if len(is) != 1 {
			return &InputError{File: file, Column: k, Err: fmt.Errorf("%w: the table has no key column %s", ErrSchemaClash, k)}
		}
		to := table.Field(is[0]).Type
		for _, cols := range bi.recs {
			if arrow.TypeEqual(cols[c].DataType(), to) {
				continue
			}
			if !canPromote(cols[c].DataType(), to) {
				return &InputError{File: file, Column: k,
					Err: fmt.Errorf("%w: the table's key column is %s, the file's before image has %s", ErrSchemaClash, TypeName(to), TypeName(cols[c].DataType()))}
			}
			conv, err := convertColumn(mem, cols[c], to)
			if err != nil {
				return &InputError{File: file, Column: k, Err: err}
			}
			cols[c].Release()
			cols[c] = conv
		}
	}
	return nil
}

// beforeOf returns the before-image key columns of f's records, in the
// order of the batch's keys and of its table's types; nil when no update of
// f changes its key.
func (b *Batch) beforeOf(f *File) ([][]arrow.Array, error) {
	if f.before == nil {
		return nil, nil
	}
	idx := make([]int, len(b.opts.Keys))
	for c, k := range b.opts.Keys {
		if idx[c] = slices.Index(f.before.keys, k); idx[c] < 0 {
			return nil, fmt.Errorf("merge: %s was split with keys %v, the batch has %v", f.Name, f.before.keys, b.opts.Keys)
		}
	}
	out := make([][]arrow.Array, len(f.before.recs))
	for ri, cols := range f.before.recs {
		out[ri] = make([]arrow.Array, len(idx))
		for c, j := range idx {
			if want := b.schema.Field(b.keyIdx[c]).Type; !arrow.TypeEqual(cols[j].DataType(), want) {
				return nil, &InputError{File: f.Name, Column: b.opts.Keys[c], Err: fmt.Errorf("%w: before image not aligned to the table schema", ErrSchemaClash)}
			}
			out[ri][c] = cols[j]
		}
	}
	return out, nil
}

// sameKey reports whether row i has the same key in the columns a and c.
func (b *Batch) sameKey(a, c []arrow.Array, i int) bool {
	for j := range a {
		var ok bool
		b.keyBuf, ok, _ = appendKey(b.keyBuf[:0], a[j], i)
		n := len(b.keyBuf)
		var ok2 bool
		b.keyBuf, ok2, _ = appendKey(b.keyBuf, c[j], i)
		if ok != ok2 || !bytes.Equal(b.keyBuf[:n], b.keyBuf[n:]) {
			return false
		}
	}
	return true
}
