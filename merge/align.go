package merge

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Align rewrites the file's records to the table's schema, matching columns by
// (lowercased) name. Allowed differences: a column the file lacks is filled
// with nulls when the table column is optional, and int→long, float→double
// and decimal precision widening are promoted. Anything else is refused with
// an *InputError wrapping ErrSchemaClash before any data is written. The old
// keys SplitBeforeImage took are converted like the key columns.
func Align(mem memory.Allocator, f *File, table *arrow.Schema) error {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if f.full != nil {
		// A projected file aligns to the same columns of the table.
		var fields []arrow.Field
		for _, fld := range f.Schema.Fields() {
			if is := table.FieldIndices(fld.Name); len(is) == 1 {
				fields = append(fields, table.Field(is[0]))
			} else {
				fields = append(fields, fld) // refused below
			}
		}
		table = arrow.NewSchema(fields, nil)
	}
	src := map[string]int{}
	for i, fld := range f.Schema.Fields() {
		src[fld.Name] = i
		if len(table.FieldIndices(fld.Name)) == 0 {
			return &InputError{File: f.Name, Column: fld.Name, Err: fmt.Errorf("%w: the table has no such column", ErrSchemaClash),
				Hint: "evolve the schema first (Evolve)"}
		}
	}
	for _, tf := range table.Fields() {
		i, ok := src[tf.Name]
		if !ok {
			if !tf.Nullable {
				return &InputError{File: f.Name, Column: tf.Name, Err: fmt.Errorf("%w: the file lacks required column", ErrSchemaClash)}
			}
			continue
		}
		if ft := f.Schema.Field(i).Type; !canPromote(ft, tf.Type) {
			return &InputError{File: f.Name, Column: tf.Name,
				Err:  fmt.Errorf("%w: the table's column is %s, the file has %s", ErrSchemaClash, TypeName(tf.Type), TypeName(ft)),
				Hint: "only int→long, float→double and wider decimals are promoted; fix the source or recreate the table"}
		}
	}
	if f.before != nil {
		if err := f.before.align(mem, f.Name, table); err != nil {
			return err
		}
	}
	if f.Schema.Equal(table) {
		return nil
	}
	out := make([]arrow.RecordBatch, 0, len(f.Records))
	for _, rec := range f.Records {
		cols := make([]arrow.Array, 0, table.NumFields())
		for _, tf := range table.Fields() {
			var c arrow.Array
			if i, ok := src[tf.Name]; ok {
				var err error
				c, err = convertColumn(mem, rec.Column(i), tf.Type)
				if err != nil {
					for _, c := range cols {
						c.Release()
					}
					return &InputError{File: f.Name, Column: tf.Name, Err: err}
				}
			} else {
				c = array.MakeArrayOfNull(mem, tf.Type, int(rec.NumRows()))
			}
			cols = append(cols, c)
		}
		out = append(out, array.NewRecordBatch(table, cols, rec.NumRows()))
		for _, c := range cols {
			c.Release()
		}
	}
	f.releaseRecords() // the old keys stay, converted above
	f.Records, f.Schema = out, table
	return nil
}
