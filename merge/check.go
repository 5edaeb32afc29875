package merge

import "fmt"

// CheckKeys reports the first problem with the file's primary key columns:
// a key column the file lacks (ErrMissingColumn) or a null key value
// (ErrNullKey, naming the row). It reads only the key columns' null counts,
// so it is cheap enough to run on every file before anything else, and it
// lets a caller decide about the whole file before adding any of it to a
// Batch.
func CheckKeys(f *File, keys []string) error {
	for _, k := range keys {
		idx := f.Schema.FieldIndices(k)
		if len(idx) != 1 {
			var cols []string
			for _, fld := range f.Schema.Fields() {
				cols = append(cols, fld.Name)
			}
			return &InputError{File: f.Name, Column: k,
				Err:  fmt.Errorf("%w: the file has no primary key column %q (it has %v)", ErrMissingColumn, k, cols),
				Hint: "every DMS file of a table carries its primary key; check the task's table mapping, fix or remove the file, then rerun; nothing was committed"}
		}
		row := int64(0)
		for _, rec := range f.Records {
			col := rec.Column(idx[0])
			if col.NullN() > 0 {
				i := 0
				for i < col.Len() && !col.IsNull(i) {
					i++
				}
				return &InputError{File: f.Name, Row: row + int64(i) + 1, Column: k, Err: ErrNullKey,
					Hint: "every change needs its full primary key; fix or remove the file, then rerun; nothing was committed"}
			}
			row += rec.NumRows()
		}
	}
	return nil
}
