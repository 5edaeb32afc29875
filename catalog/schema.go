package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/merge"
)

// icebergType maps a stored Arrow type (see merge.StoredType) to Iceberg.
func icebergType(dt arrow.DataType) (iceberg.Type, error) {
	switch t := dt.(type) {
	case *arrow.Int32Type:
		return iceberg.PrimitiveTypes.Int32, nil
	case *arrow.Int64Type:
		return iceberg.PrimitiveTypes.Int64, nil
	case *arrow.Float32Type:
		return iceberg.PrimitiveTypes.Float32, nil
	case *arrow.Float64Type:
		return iceberg.PrimitiveTypes.Float64, nil
	case *arrow.BooleanType:
		return iceberg.PrimitiveTypes.Bool, nil
	case *arrow.StringType:
		return iceberg.PrimitiveTypes.String, nil
	case *arrow.BinaryType:
		return iceberg.PrimitiveTypes.Binary, nil
	case *arrow.Date32Type:
		return iceberg.PrimitiveTypes.Date, nil
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return iceberg.PrimitiveTypes.TimestampTz, nil
		}
		return iceberg.PrimitiveTypes.Timestamp, nil
	case *arrow.Decimal128Type:
		if t.Precision < 1 || t.Precision > 38 || t.Scale < 0 || t.Scale > t.Precision {
			return nil, fmt.Errorf("decimal(%d,%d) does not fit Iceberg's decimal(p<=38)", t.Precision, t.Scale)
		}
		return iceberg.DecimalTypeOf(int(t.Precision), int(t.Scale)), nil
	}
	return nil, fmt.Errorf("no Iceberg type for %s", dt)
}

// arrowType maps an Iceberg column type back to the stored Arrow type.
func arrowType(t iceberg.Type) (arrow.DataType, error) {
	switch t := t.(type) {
	case iceberg.Int32Type:
		return arrow.PrimitiveTypes.Int32, nil
	case iceberg.Int64Type:
		return arrow.PrimitiveTypes.Int64, nil
	case iceberg.Float32Type:
		return arrow.PrimitiveTypes.Float32, nil
	case iceberg.Float64Type:
		return arrow.PrimitiveTypes.Float64, nil
	case iceberg.BooleanType:
		return arrow.FixedWidthTypes.Boolean, nil
	case iceberg.StringType:
		return arrow.BinaryTypes.String, nil
	case iceberg.BinaryType:
		return arrow.BinaryTypes.Binary, nil
	case iceberg.DateType:
		return arrow.FixedWidthTypes.Date32, nil
	case iceberg.TimestampType:
		return &arrow.TimestampType{Unit: arrow.Microsecond}, nil
	case iceberg.TimestampTzType:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, nil
	case iceberg.DecimalType:
		return &arrow.Decimal128Type{Precision: int32(t.Precision()), Scale: int32(t.Scale())}, nil
	}
	return nil, fmt.Errorf("icemerge cannot write Iceberg type %s", t)
}

// IcebergSchema builds the schema of a new table from a stored Arrow schema:
// field IDs from 1, key columns required and the identifier fields.
func IcebergSchema(sc *arrow.Schema, keys []string) (*iceberg.Schema, error) {
	fields := make([]iceberg.NestedField, 0, sc.NumFields())
	var ids []int
	for i, f := range sc.Fields() {
		t, err := icebergType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
		isKey := slices.Contains(keys, f.Name)
		fields = append(fields, iceberg.NestedField{ID: i + 1, Name: f.Name, Type: t, Required: isKey})
		if isKey {
			ids = append(ids, i+1)
		}
	}
	for _, k := range keys {
		if len(sc.FieldIndices(k)) == 0 {
			return nil, fmt.Errorf("key column %q is not in the source files (columns: %v)", k, fieldNames(sc))
		}
	}
	// Identifier fields in --key order.
	slices.SortFunc(ids, func(a, b int) int {
		return slices.Index(keys, sc.Field(a-1).Name) - slices.Index(keys, sc.Field(b-1).Name)
	})
	out := iceberg.NewSchemaWithIdentifiers(0, ids, fields...)
	if err := CheckNewColumns(nil, fieldNames(sc)); err != nil {
		return nil, err
	}
	if err := checkSchema(out); err != nil {
		return nil, err
	}
	return out, nil
}

// ColumnNameError is a column the catalog would not add: its name is one
// Glue, Athena or the data file writer refuses. It wraps
// merge.ErrColumnName.
type ColumnNameError struct {
	Column string
	Reason string
}

func (e *ColumnNameError) Error() string {
	return fmt.Sprintf("column %q: %v: %s", e.Column, merge.ErrColumnName, e.Reason)
}

func (e *ColumnNameError) Unwrap() error { return merge.ErrColumnName }

// CheckNewColumns checks the names of columns about to be created or
// added next to a table's existing ones (none for a new table), as Create
// and Evolve do before any commit: each a name merge.CheckColumnName
// accepts, in lower case, no two the same once lowercased (Glue and
// Athena store names lowercased), and no two the same once the data file
// writer makes them Avro-compatible (1a and _1a both become _1a). A run
// checks each file's new columns so the error can name the file (merge
// has checked the file's own names already); this is also the catalog's
// own guard, so no commit ever writes a schema its readers refuse. The
// error is a *ColumnNameError.
func CheckNewColumns(existing, added []string) error {
	lower, avro := map[string]string{}, map[string]string{}
	for _, n := range existing {
		lower[strings.ToLower(n)] = n
		avro[avroName(n)] = n
	}
	for _, n := range added {
		if err := merge.CheckColumnName(n); err != nil {
			return &ColumnNameError{Column: n, Reason: strings.TrimPrefix(err.Error(), merge.ErrColumnName.Error()+": ")}
		}
		if n != strings.ToLower(n) {
			return &ColumnNameError{Column: n, Reason: "Glue and Athena store names in lower case"}
		}
		if prev, ok := lower[n]; ok {
			return &ColumnNameError{Column: n, Reason: fmt.Sprintf("the table has column %q, the same name to Glue and Athena", prev)}
		}
		a := avroName(n)
		if prev, ok := avro[a]; ok {
			return &ColumnNameError{Column: n, Reason: fmt.Sprintf("column %q has the same name %q in the data files (Iceberg writes Avro-compatible names)", prev, a)}
		}
		lower[n], avro[a] = n, n
	}
	return nil
}

// avroName is the name the data file writer gives a column in Parquet
// files (iceberg.SanitizeColumnNames); the name itself when it refuses it.
func avroName(n string) string {
	sc, err := iceberg.SanitizeColumnNames(iceberg.NewSchema(0, iceberg.NestedField{ID: 1, Name: n, Type: iceberg.PrimitiveTypes.String}))
	if err != nil {
		return n
	}
	return sc.Field(0).Name
}

// checkSchema checks, before a schema is committed, that the table stays
// loadable and writable with it: its JSON form (as metadata stores it)
// reads back as the same schema, and the data file writer accepts its
// names (iceberg-go turns them into Avro-compatible Parquet names and
// refuses empty, invalid or colliding ones).
func checkSchema(sc *iceberg.Schema) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return fmt.Errorf("%w: %w", merge.ErrColumnName, err)
	}
	var back iceberg.Schema
	if err := json.Unmarshal(b, &back); err != nil {
		return fmt.Errorf("%w: the schema does not read back from its metadata: %w", merge.ErrColumnName, err)
	}
	if !back.Equals(sc) {
		return fmt.Errorf("%w: the schema changes when written to metadata and read back (%v, then %v)", merge.ErrColumnName, icebergNames(sc), icebergNames(&back))
	}
	if _, err := iceberg.SanitizeColumnNames(sc); err != nil {
		return fmt.Errorf("%w: the data file writer refuses the names: %w", merge.ErrColumnName, err)
	}
	return nil
}

func fieldNames(sc *arrow.Schema) []string {
	var names []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	return names
}

// StoredSchema is the Arrow schema of a table's rows as merge handles them.
func StoredSchema(sc *iceberg.Schema) (*arrow.Schema, error) {
	fields := make([]arrow.Field, 0, sc.NumFields())
	for _, f := range sc.Fields() {
		t, err := arrowType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("table column %q: %w", f.Name, err)
		}
		fields = append(fields, arrow.Field{Name: f.Name, Type: t, Nullable: !f.Required})
	}
	return arrow.NewSchema(fields, nil), nil
}

// Keys returns the names of the table's identifier fields, in order.
func Keys(sc *iceberg.Schema) []string {
	var keys []string
	for _, id := range sc.IdentifierFieldIDs {
		if f, ok := sc.FindFieldByID(id); ok {
			keys = append(keys, f.Name)
		}
	}
	return keys
}

// Evolve adds the columns adds (optional) and widens the columns in widen
// to their new types, in one schema-only commit (no snapshot: readers see
// the new columns as null). The run's data commit follows.
func (c *Catalog) Evolve(ctx context.Context, t *Table, adds []arrow.Field, widen map[string]arrow.DataType) (*Table, error) {
	tbl, err := c.evolve(ctx, t.t, adds, widen)
	return wrap(tbl), err
}

func (c *Catalog) evolve(ctx context.Context, tbl *table.Table, adds []arrow.Field, widen map[string]arrow.DataType) (*table.Table, error) {
	var names []string
	for _, f := range adds {
		names = append(names, f.Name)
	}
	if err := CheckNewColumns(icebergNames(tbl.Schema()), names); err != nil {
		return nil, fmt.Errorf("evolving the schema of %s: %w (nothing was committed)", Name(tbl), err)
	}
	tx := tbl.NewTransaction()
	us := tx.UpdateSchema(true, false)
	for _, f := range adds {
		t, err := icebergType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("new column %q: %w", f.Name, err)
		}
		us.AddColumn([]string{f.Name}, t, "", false, nil)
	}
	for _, name := range slices.Sorted(maps.Keys(widen)) {
		t, err := icebergType(widen[name])
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", name, err)
		}
		us.UpdateColumn([]string{name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Val: t, Valid: true}})
	}
	if err := us.Commit(); err != nil {
		return nil, fmt.Errorf("evolving the schema of %s: %w", Name(tbl), err)
	}
	// The whole new metadata, checked as the next load will read it.
	staged, err := tx.StagedTable()
	if err != nil {
		return nil, fmt.Errorf("evolving the schema of %s: %w", Name(tbl), err)
	}
	if err := checkMetadata(staged.Metadata()); err != nil {
		return nil, fmt.Errorf("evolving the schema of %s: %w (nothing was committed)", Name(tbl), err)
	}
	out, err := tx.Commit(ctx)
	if err != nil {
		return nil, fmt.Errorf("committing the schema change of %s: %w (nothing else was written; rerun)", Name(tbl), err)
	}
	return out, nil
}

// checkMetadata checks that metadata about to be committed reads back
// (every later load parses it) with the same current schema, and that
// the schema passes checkSchema.
func checkMetadata(md table.Metadata) error {
	b, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("%w: %w", merge.ErrColumnName, err)
	}
	back, err := table.ParseMetadataBytes(b)
	if err != nil {
		return fmt.Errorf("%w: the new metadata does not read back: %w", merge.ErrColumnName, err)
	}
	if !back.CurrentSchema().Equals(md.CurrentSchema()) {
		return fmt.Errorf("%w: the schema changes when written to metadata and read back", merge.ErrColumnName)
	}
	return checkSchema(md.CurrentSchema())
}

// icebergNames are the names of sc's columns.
func icebergNames(sc *iceberg.Schema) []string {
	var names []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	return names
}
