package merge

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// SchemaChange is one change a batch needs in the table's schema: a new
// optional column, or a column widened as Iceberg allows.
type SchemaChange struct {
	Column string
	Add    bool           // a new column, of type To
	From   arrow.DataType // the table's type, when widened
	To     arrow.DataType
}

func (c SchemaChange) String() string {
	if c.Add {
		return fmt.Sprintf("add column %s %s", c.Column, TypeName(c.To))
	}
	return fmt.Sprintf("widen column %s from %s to %s", c.Column, TypeName(c.From), TypeName(c.To))
}

// Evolve returns the table schema the files need and the changes that lead
// there: columns the table lacks are added (optional, in the order first
// seen), and a column a file carries in a wider type (int→long,
// float→double, a wider decimal) is widened. A column whose type fits
// neither way is refused with an *InputError wrapping ErrSchemaClash, before
// anything is written. Columns the files lack stay (their rows read null).
// Before-image columns are not among a file's columns once
// File.SplitBeforeImage took them out, so they are never added.
func Evolve(table *arrow.Schema, files []*File) (*arrow.Schema, []SchemaChange, error) {
	fields := table.Fields()
	index := map[string]int{}
	for i, f := range fields {
		index[f.Name] = i
	}
	var changes []SchemaChange
	for _, file := range files {
		for _, f := range file.FullSchema().Fields() {
			i, ok := index[f.Name]
			if !ok {
				index[f.Name] = len(fields)
				fields = append(fields, arrow.Field{Name: f.Name, Type: f.Type, Nullable: true})
				changes = append(changes, SchemaChange{Column: f.Name, Add: true, To: f.Type})
				continue
			}
			cur := fields[i].Type
			switch {
			case canPromote(f.Type, cur):
			case canPromote(cur, f.Type):
				fields[i].Type = f.Type
				changes = append(changes, SchemaChange{Column: f.Name, From: cur, To: f.Type})
			default:
				return nil, nil, &InputError{File: file.Name, Column: f.Name,
					Err: fmt.Errorf("%w: the table's column is %s, the file has %s", ErrSchemaClash, TypeName(cur), TypeName(f.Type)),
					Hint: "Iceberg widens only int→long, float→double and decimal precision at equal scale, so nothing was written; " +
						"revert the column's type at the source, or recreate the table under a new name (icemerge run --table NS.NEW) and reset its bookmark"}
			}
		}
	}
	// A change widened twice (int→long in one file, then a wider decimal in
	// another) is one change from the table's type.
	return arrow.NewSchema(fields, nil), mergeChanges(changes), nil
}

func mergeChanges(changes []SchemaChange) []SchemaChange {
	var out []SchemaChange
	last := map[string]int{}
	for _, c := range changes {
		if i, ok := last[c.Column]; ok {
			out[i].To = c.To
			continue
		}
		last[c.Column] = len(out)
		out = append(out, c)
	}
	return out
}
