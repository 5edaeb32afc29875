package icemerge

import (
	"cmp"
	"context"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/icemerge/icemerge/merge"
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
	// Total is the number of rows the table holds (of those matching
	// --where, when given); TotalKnown is false when reading stopped at
	// --limit and the snapshot's summary does not tell.
	Total      int64
	TotalKnown bool
	// More: rows were left unread (--limit).
	More bool
	// Where is the lookup, "" for every row.
	Where string
	// Scan says how much of the table was read.
	Scan merge.ScanStats
}

// Len is the number of rows read.
func (r *Rows) Len() int { return len(r.Order) }

// Release frees the columns.
func (r *Rows) Release() {
	for _, c := range r.Columns {
		c.Release()
	}
}

// Show reads a table's rows (`icemerge show`): those of --where, at most
// --limit of them (reading stops there), ordered by primary key. A lookup
// reads only the data files and row groups whose statistics may hold the
// value, as a run's locate phase does.
func Show(ctx context.Context, o ShowOptions, d Deps) (*Rows, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	tbl, err := tableOf(ctx, d.Catalog, o.Table)
	if err != nil {
		return nil, err
	}
	col, text := o.where()
	var value any
	if col != "" {
		if value, err = tbl.ParseValue(col, text); err != nil {
			return nil, usage(err)
		}
	}
	sc, cols, more, st, err := tbl.Rows(ctx, col, value, o.Limit)
	if err != nil {
		return nil, err
	}
	rows := &Rows{Table: tbl.Name(), Snapshot: tbl.SnapshotID(), Schema: sc, Columns: cols, More: more, Where: o.Where, Scan: st}
	n := 0
	if len(cols) > 0 {
		n = cols[0].Len()
	}
	rows.Total, rows.TotalKnown = int64(n), true
	if more && col == "" {
		rows.Total, rows.TotalKnown = tbl.LiveRows()
	} else if more {
		rows.TotalKnown = false
	}
	var keyCols []arrow.Array
	for _, k := range tbl.Keys() {
		if is := sc.FieldIndices(k); len(is) == 1 {
			keyCols = append(keyCols, cols[is[0]])
		}
	}
	rows.Order = make([]int, n)
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
