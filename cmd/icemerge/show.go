package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/catalog"
)

func cmdShow(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	limit := 100
	c, err := commonCommand("icemerge show", args, env, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&limit, "limit", 100, "print at most this many rows")
	})
	if err != nil {
		return err
	}
	ctx, op, err := c.open(ctx, c.logger(stderr), nil, "")
	if err != nil {
		return err
	}
	defer op.cat.Close()
	tbl, err := tableOf(ctx, op.cat, c.Table)
	if err != nil {
		return err
	}
	return showTable(ctx, stdout, tbl, limit)
}

// showTable prints the table's rows ordered by primary key.
func showTable(ctx context.Context, w io.Writer, tbl *table.Table, limit int) error {
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		return fmt.Errorf("reading table %s: %w", catalog.Name(tbl), err)
	}
	defer at.Release()
	cols := make([]arrow.Array, at.NumCols())
	for i := range cols {
		a, err := array.Concatenate(at.Column(i).Data().Chunks(), memory.DefaultAllocator)
		if err != nil {
			return fmt.Errorf("reading table %s: %w", catalog.Name(tbl), err)
		}
		defer a.Release()
		cols[i] = a
	}
	n := int(at.NumRows())
	var keyCols []arrow.Array
	for _, k := range catalog.Keys(tbl.Schema()) {
		if is := at.Schema().FieldIndices(k); len(is) == 1 {
			keyCols = append(keyCols, cols[is[0]])
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		for _, c := range keyCols {
			if r := compareCell(c, a, b); r != 0 {
				return r
			}
		}
		return 0
	})

	snap := "none"
	if s := tbl.CurrentSnapshot(); s != nil {
		snap = fmt.Sprint(s.SnapshotID)
	}
	fmt.Fprintf(w, "%s: %d rows (snapshot %s)\n", catalog.Name(tbl), n, snap)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var head []string
	for _, f := range at.Schema().Fields() {
		head = append(head, f.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for i, r := range order {
		if i == limit {
			break
		}
		cells := make([]string, len(cols))
		for c, col := range cols {
			cells[c] = cell(col, r)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n > limit {
		fmt.Fprintf(w, "… %d more rows (raise --limit)\n", n-limit)
	}
	return nil
}

func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	if ts, ok := a.(*array.Timestamp); ok {
		unit := ts.DataType().(*arrow.TimestampType).Unit
		t := ts.Value(i).ToTime(unit)
		if ts.DataType().(*arrow.TimestampType).TimeZone != "" {
			return t.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
		}
		return t.UTC().Format("2006-01-02 15:04:05.999999")
	}
	return a.ValueStr(i)
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

// tableOf loads a table that must exist.
func tableOf(ctx context.Context, cat *catalog.Catalog, name string) (*table.Table, error) {
	ident, err := catalog.Ident(name)
	if err != nil {
		return nil, err
	}
	tbl, ok, err := cat.Load(ctx, ident)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("table %s does not exist in the catalog (check --table, --catalog and --catalog-uri)", name)
	}
	return tbl, nil
}
