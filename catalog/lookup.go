package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	iceio "github.com/apache/iceberg-go/io"

	"github.com/icemerge/icemerge/merge"
)

// What a table's files say before a table is created, and the rows
// `icemerge show` reads: a key lookup and a bounded read.

// TableLocation is where Create puts the table NAMESPACE.NAME:
// <warehouse>/<namespace>.db/<name>; "" when the catalog places its
// tables itself (S3 Tables).
func (c *Catalog) TableLocation(name string) (string, error) {
	ident, err := Ident(name)
	if err != nil {
		return "", err
	}
	if c.warehouse == "" {
		return "", nil
	}
	return strings.TrimSuffix(c.warehouse, "/") + "/" + ident[0] + ".db/" + ident[1], nil
}

// ExistingMetadata lists the Iceberg metadata files
// (metadata/*.metadata.json) at the location where Create would put the
// table: a table created there through another catalog (another
// --catalog-uri, or one since lost). A run must not create a second table
// over them. Empty when there are none.
func (c *Catalog) ExistingMetadata(ctx context.Context, name string) ([]string, error) {
	loc, err := c.TableLocation(name)
	if err != nil || loc == "" {
		return nil, err
	}
	dir := loc + "/metadata"
	fsys, err := iceio.LoadFS(ctx, c.props, dir)
	if err != nil {
		return nil, fmt.Errorf("opening the location of table %s (%s): %w", name, loc, err)
	}
	lister, ok := fsys.(iceio.ListableIO)
	if !ok {
		return nil, nil // cannot list: the catalog's own create checks what it can
	}
	var found []string
	err = lister.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path.Base(p), ".metadata.json") {
			found = append(found, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return found, fmt.Errorf("listing the metadata files of table %s at %s: %w", name, dir, err)
	}
	return found, nil
}

// LiveRows is the number of live rows of the current snapshot, from its
// summary (records less position deletes); ok is false when the summary
// does not say.
func (t *Table) LiveRows() (n int64, ok bool) {
	snap := t.t.CurrentSnapshot()
	if snap == nil {
		return 0, true
	}
	if snap.Summary == nil {
		return 0, false
	}
	p := snap.Summary.Properties
	recs, err := strconv.ParseInt(p["total-records"], 10, 64)
	if err != nil {
		return 0, false
	}
	if eq := p["total-equality-deletes"]; eq != "" && eq != "0" {
		return 0, false // rows an equality delete removes are not counted
	}
	del, _ := strconv.ParseInt(p["total-position-deletes"], 10, 64)
	return recs - del, true
}

// ParseValue reads text as a value of the table's column col, for a
// lookup: int, bigint and string columns (the types a key range prunes
// by).
func (t *Table) ParseValue(col, text string) (any, error) {
	sc, err := t.Schema()
	if err != nil {
		return nil, err
	}
	idx := sc.FieldIndices(col)
	if len(idx) != 1 {
		var names []string
		for _, f := range sc.Fields() {
			names = append(names, f.Name)
		}
		return nil, fmt.Errorf("table %s has no column %q (columns: %s)", t.Name(), col, strings.Join(names, ", "))
	}
	switch typ := sc.Field(idx[0]).Type; typ.ID() {
	case arrow.INT32:
		v, err := strconv.ParseInt(text, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("column %s is an int: %q is not one", col, text)
		}
		return int32(v), nil
	case arrow.INT64:
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s is a bigint: %q is not one", col, text)
		}
		return v, nil
	case arrow.STRING:
		return text, nil
	default:
		return nil, fmt.Errorf("column %s is a %s: a lookup takes int, bigint and string columns", col, typ)
	}
}

// errEnough stops a scan once enough rows are found.
var errEnough = errors.New("enough rows")

// Rows reads every column of the live rows of the current snapshot whose
// column col equals value (every row when col is ""), and stops once limit
// rows are found (0: no limit). value is of the column's type, as
// ParseValue reads it. Data files and row groups whose statistics rule the
// value out are not read, as a run's locate phase skips them; with a limit
// the read stops early. more reports that rows were left unread.
func (t *Table) Rows(ctx context.Context, col string, value any, limit int) (sc *arrow.Schema, cols []arrow.Array, more bool, st merge.ScanStats, err error) {
	stored, err := t.Schema()
	if err != nil {
		return nil, nil, false, st, err
	}
	names := make([]string, stored.NumFields())
	for i, f := range stored.Fields() {
		names[i] = f.Name
	}
	var rng *merge.KeyRange
	match := -1
	if col != "" {
		idx := stored.FieldIndices(col)
		if len(idx) != 1 {
			return nil, nil, false, st, fmt.Errorf("table %s has no column %q", t.Name(), col)
		}
		match = idx[0]
		rng = &merge.KeyRange{Column: col, Lo: value, Hi: value}
	}
	parts := make([][]arrow.Array, len(names))
	defer func() {
		for _, ps := range parts {
			for _, a := range ps {
				a.Release()
			}
		}
	}()
	found := 0
	st, err = t.ScanLive(ctx, names, rng, func(_ string, arrs []arrow.Array, first int64, deleted func(int64) bool) error {
		n := arrs[0].Len()
		for i := 0; i < n; {
			// The next run of rows to keep, [i, j).
			for i < n && !keep(arrs, match, value, i, first, deleted) {
				i++
			}
			j := i
			for j < n && keep(arrs, match, value, j, first, deleted) && (limit == 0 || found+(j-i) < limit) {
				j++
			}
			if j > i {
				for c, a := range arrs {
					parts[c] = append(parts[c], array.NewSlice(a, int64(i), int64(j)))
				}
				found += j - i
			}
			if limit > 0 && found >= limit {
				return errEnough
			}
			i = j
		}
		return nil
	})
	more = errors.Is(err, errEnough)
	if more {
		err = nil
	}
	if err != nil {
		return nil, nil, false, st, err
	}
	fields := make([]arrow.Field, len(names))
	cols = make([]arrow.Array, len(names))
	for c, ps := range parts {
		typ := stored.Field(c).Type
		for _, p := range ps {
			if p.DataType().ID() != arrow.NULL {
				typ = p.DataType()
				break
			}
		}
		fields[c] = arrow.Field{Name: names[c], Type: typ, Nullable: true}
		var typed []arrow.Array
		for _, p := range ps {
			if p.DataType().ID() == arrow.NULL && typ.ID() != arrow.NULL {
				// A column the file lacks (added later) reads as nulls.
				p = array.MakeArrayOfNull(memory.DefaultAllocator, typ, p.Len())
				defer p.Release()
			}
			typed = append(typed, p)
		}
		if len(typed) == 0 {
			cols[c] = array.MakeArrayOfNull(memory.DefaultAllocator, typ, 0)
			continue
		}
		if cols[c], err = array.Concatenate(typed, memory.DefaultAllocator); err != nil {
			for _, a := range cols[:c] {
				a.Release()
			}
			return nil, nil, false, st, fmt.Errorf("reading table %s: %w", t.Name(), err)
		}
	}
	return arrow.NewSchema(fields, nil), cols, more, st, nil
}

// keep reports whether row i of a chunk is live and, when match >= 0,
// holds value in column match.
func keep(arrs []arrow.Array, match int, value any, i int, first int64, deleted func(int64) bool) bool {
	if deleted(first + int64(i)) {
		return false
	}
	if match < 0 {
		return true
	}
	a := arrs[match]
	if a.IsNull(i) {
		return false
	}
	switch c := a.(type) {
	case *array.Int32:
		v, ok := value.(int32)
		return ok && c.Value(i) == v
	case *array.Int64:
		v, ok := value.(int64)
		return ok && c.Value(i) == v
	case *array.String:
		v, ok := value.(string)
		return ok && c.Value(i) == v
	case *array.LargeString:
		v, ok := value.(string)
		return ok && c.Value(i) == v
	}
	return false
}
