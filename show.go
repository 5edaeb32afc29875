package icemerge

import (
	"cmp"
	"context"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/icemerge/icemerge/catalog"
)

// Rows are a table's rows, read by Show: one array per column, and the
// order of the rows by primary key.
type Rows struct {
	Table    string
	Snapshot int64
	Schema   *arrow.Schema
	Columns  []arrow.Array
	// Order lists the row indexes in primary key order.
	Order []int
	Total int
}

// Release frees the columns.
func (r *Rows) Release() {
	for _, c := range r.Columns {
		c.Release()
	}
}

// Show reads a table's rows (`icemerge show`), ordered by primary key.
func Show(ctx context.Context, o ShowOptions, d Deps) (*Rows, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	tbl, err := tableOf(ctx, d.Catalog, o.Table)
	if err != nil {
		return nil, err
	}
	return readRows(ctx, tbl)
}

func readRows(ctx context.Context, tbl *catalog.Table) (*Rows, error) {
	sc, cols, err := tbl.ReadAll(ctx)
	if err != nil {
		return nil, err
	}
	rows := &Rows{Table: tbl.Name(), Snapshot: tbl.SnapshotID(), Schema: sc, Columns: cols}
	if len(cols) > 0 {
		rows.Total = cols[0].Len()
	}
	var keyCols []arrow.Array
	for _, k := range tbl.Keys() {
		if is := sc.FieldIndices(k); len(is) == 1 {
			keyCols = append(keyCols, cols[is[0]])
		}
	}
	rows.Order = make([]int, rows.Total)
	for i := range rows.Order {
		rows.Order[i] = i
	}
	slices.SortStableFunc(rows.Order, func(a, b int) int {
		for _, c := range keyCols {
			if r := compareCell(c, a, b); r != 0 {
				return r
			}
		}
		return 0
	})
	return rows, nil
}

func compareCell(a arrow.Array, x, y int) int {
	switch c := a.(type) {
	case *array.Int32:
		return cmp.Compare(c.Value(x), c.Value(y))
	case *array.Int64:
		return cmp.Compare(c.Value(x), c.Value(y))
	}
	return cmp.Compare(a.ValueStr(x), a.ValueStr(y))
}
