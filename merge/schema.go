package merge

import (
	"cmp"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// OpColumn is the name of the DMS column holding I, U or D.
const OpColumn = "op"

// Stored types. Every column of a table is one of these Arrow types; they map
// one to one to the Iceberg types Athena reads (int, long, float, double,
// decimal, boolean, string, binary, date, timestamp, timestamptz).
var (
	typeInt         = arrow.PrimitiveTypes.Int32
	typeLong        = arrow.PrimitiveTypes.Int64
	typeFloat       = arrow.PrimitiveTypes.Float32
	typeDouble      = arrow.PrimitiveTypes.Float64
	typeBool        = arrow.FixedWidthTypes.Boolean
	typeString      = arrow.BinaryTypes.String
	typeBinary      = arrow.BinaryTypes.Binary
	typeDate        = arrow.FixedWidthTypes.Date32
	typeTimestamp   = &arrow.TimestampType{Unit: arrow.Microsecond}
	typeTimestampTZ = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	typeUint64      = &arrow.Decimal128Type{Precision: 20, Scale: 0}
)

// StoredType maps the Arrow type a DMS column is read as to the type the table
// stores: int8/int16/uint8/uint16 widen to int, uint32 to long, uint64 to
// decimal(20,0); decimals stay exact; UTC-adjusted timestamps become
// timestamptz and others timestamp, both in microseconds; JSON and strings
// become string; binary stays binary.
func StoredType(dt arrow.DataType) (arrow.DataType, error) {
	switch t := dt.(type) {
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Uint8Type, *arrow.Uint16Type:
		return typeInt, nil
	case *arrow.Int64Type, *arrow.Uint32Type:
		return typeLong, nil
	case *arrow.Uint64Type:
		return typeUint64, nil
	case *arrow.Float16Type, *arrow.Float32Type:
		return typeFloat, nil
	case *arrow.Float64Type:
		return typeDouble, nil
	case *arrow.BooleanType:
		return typeBool, nil
	case *arrow.StringType, *arrow.LargeStringType, *arrow.StringViewType:
		return typeString, nil
	case *arrow.BinaryType, *arrow.LargeBinaryType, *arrow.BinaryViewType, *arrow.FixedSizeBinaryType:
		return typeBinary, nil
	case *arrow.Date32Type, *arrow.Date64Type:
		return typeDate, nil
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return typeTimestampTZ, nil
		}
		return typeTimestamp, nil
	case *arrow.Decimal128Type:
		return &arrow.Decimal128Type{Precision: t.Precision, Scale: t.Scale}, nil
	case *arrow.Decimal32Type:
		return &arrow.Decimal128Type{Precision: t.Precision, Scale: t.Scale}, nil
	case *arrow.Decimal64Type:
		return &arrow.Decimal128Type{Precision: t.Precision, Scale: t.Scale}, nil
	case arrow.ExtensionType:
		// JSON (and other extensions over strings) are stored as their storage.
		return StoredType(t.StorageType())
	case *arrow.DictionaryType:
		return StoredType(t.ValueType)
	}
	return nil, fmt.Errorf("%w: %s (Athena reads int, long, float, double, decimal(p<=38), boolean, string, binary, date, timestamp)",
		ErrUnsupportedType, dt)
}

// StoredSchema maps the Arrow schema of a file's data columns (the Op
// column left out) to the schema the table stores: names lowercased and
// checked by CheckColumnName, types mapped by StoredType. The fields keep
// their nullability; key columns are made required by the caller.
func StoredSchema(file string, sc *arrow.Schema) (*arrow.Schema, error) {
	fields := make([]arrow.Field, 0, sc.NumFields())
	seen := map[string]string{}
	for i, f := range sc.Fields() {
		// Lowercasing turns invalid UTF-8 into U+FFFD: check the name as
		// the file has it, then as stored.
		name := strings.ToLower(f.Name)
		if err := cmp.Or(CheckColumnName(f.Name), CheckColumnName(name)); err != nil {
			if f.Name == "" && i > 0 {
				err = fmt.Errorf("%w (the column after %q)", err, sc.Field(i-1).Name)
			}
			return nil, &InputError{File: file, Column: f.Name, Err: err,
				Hint: "rename the column at the source or with a DMS transformation rule, or remove the file, then rerun; nothing was committed"}
		}
		if prev, ok := seen[name]; ok {
			return nil, &InputError{File: file, Column: f.Name, Err: ErrSchemaClash,
				Hint: fmt.Sprintf("columns %q and %q are the same name once lowercased, as Glue and Athena store it", prev, f.Name)}
		}
		seen[name] = f.Name
		dt, err := StoredType(f.Type)
		if err != nil {
			return nil, &InputError{File: file, Column: f.Name, Err: err}
		}
		fields = append(fields, arrow.Field{Name: name, Type: dt, Nullable: f.Nullable})
	}
	return arrow.NewSchema(fields, nil), nil
}

// MaxColumnName is the longest column name, in bytes, Glue stores and
// Athena queries.
const MaxColumnName = 255

// CheckColumnName checks a stored (lowercased) column name against what
// the table's readers accept: non-empty, valid UTF-8 (Iceberg's JSON
// metadata would silently turn other bytes into U+FFFD), at most 255 bytes
// and only the characters of Glue's single-line string pattern (tab and
// U+0020 upwards, not U+FFFE or U+FFFF). Athena advises against other
// special characters but queries them in double quotes, and DMS's own
// $AR_H_CHANGE_SEQ needs one, so they pass. The error wraps ErrColumnName.
func CheckColumnName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrColumnName)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: the name is not valid UTF-8", ErrColumnName)
	case len(name) > MaxColumnName:
		return fmt.Errorf("%w: the name is %d bytes long; Glue and Athena allow %d", ErrColumnName, len(name), MaxColumnName)
	}
	for _, r := range name {
		if (r < 0x20 && r != '\t') || r == 0xFFFE || r == 0xFFFF {
			return fmt.Errorf("%w: the name holds the control character %U, which Glue refuses", ErrColumnName, r)
		}
	}
	return nil
}

// canPromote reports whether values stored as from fit a table column of type
// to without loss, as Iceberg's type promotion allows.
func canPromote(from, to arrow.DataType) bool {
	if arrow.TypeEqual(from, to) {
		return true
	}
	switch to.ID() {
	case arrow.INT64:
		return from.ID() == arrow.INT32
	case arrow.FLOAT64:
		return from.ID() == arrow.FLOAT32
	case arrow.DECIMAL128:
		f, ok := from.(*arrow.Decimal128Type)
		t := to.(*arrow.Decimal128Type)
		return ok && f.Scale == t.Scale && f.Precision <= t.Precision
	}
	return false
}

// convertColumn returns arr, as read from a file, converted to the stored type
// to. The caller releases the result.
func convertColumn(mem memory.Allocator, arr arrow.Array, to arrow.DataType) (arrow.Array, error) {
	if arrow.TypeEqual(arr.DataType(), to) {
		arr.Retain()
		return arr, nil
	}
	b := array.NewBuilder(mem, to)
	defer b.Release()
	b.Reserve(arr.Len())
	for i := 0; i < arr.Len(); i++ {
		if err := appendConverted(b, arr, i); err != nil {
			return nil, err
		}
	}
	return b.NewArray(), nil
}

// appendConverted appends src[i] to b, converting between the types
// StoredType and canPromote allow.
func appendConverted(b array.Builder, src arrow.Array, i int) error {
	if src.IsNull(i) {
		b.AppendNull()
		return nil
	}
	switch s := src.(type) {
	case *array.Dictionary:
		return appendConverted(b, s.Dictionary(), s.GetValueIndex(i))
	case array.ExtensionArray:
		return appendConverted(b, s.Storage(), i)
	}
	switch b := b.(type) {
	case *array.Int32Builder:
		if v, ok := intValue(src, i); ok && v >= -1<<31 && v < 1<<31 {
			b.Append(int32(v))
			return nil
		}
	case *array.Int64Builder:
		if v, ok := intValue(src, i); ok {
			b.Append(v)
			return nil
		}
	case *array.Decimal128Builder:
		to := b.Type().(*arrow.Decimal128Type)
		switch s := src.(type) {
		case *array.Uint64:
			if to.Scale == 0 {
				b.Append(decimal128.FromU64(s.Value(i)))
				return nil
			}
		case *array.Decimal128:
			if s.DataType().(*arrow.Decimal128Type).Scale == to.Scale {
				b.Append(s.Value(i))
				return nil
			}
		case *array.Decimal64:
			if s.DataType().(*arrow.Decimal64Type).Scale == to.Scale {
				b.Append(decimal128.FromI64(int64(s.Value(i))))
				return nil
			}
		case *array.Decimal32:
			if s.DataType().(*arrow.Decimal32Type).Scale == to.Scale {
				b.Append(decimal128.FromI64(int64(s.Value(i))))
				return nil
			}
		}
	case *array.Float32Builder:
		switch s := src.(type) {
		case *array.Float16:
			b.Append(s.Value(i).Float32())
			return nil
		case *array.Float32:
			b.Append(s.Value(i))
			return nil
		}
	case *array.Float64Builder:
		switch s := src.(type) {
		case *array.Float32:
			b.Append(float64(s.Value(i)))
			return nil
		case *array.Float64:
			b.Append(s.Value(i))
			return nil
		}
	case *array.StringBuilder:
		switch s := src.(type) {
		case *array.String:
			b.Append(s.Value(i))
			return nil
		case *array.LargeString:
			b.Append(s.Value(i))
			return nil
		case *array.StringView:
			b.Append(s.Value(i))
			return nil
		case *array.Binary: // JSON and ENUM columns
			b.Append(string(s.Value(i)))
			return nil
		}
	case *array.BinaryBuilder:
		switch s := src.(type) {
		case *array.Binary:
			b.Append(s.Value(i))
			return nil
		case *array.LargeBinary:
			b.Append(s.Value(i))
			return nil
		case *array.BinaryView:
			b.Append(s.Value(i))
			return nil
		case *array.FixedSizeBinary:
			b.Append(s.Value(i))
			return nil
		}
	case *array.Date32Builder:
		switch s := src.(type) {
		case *array.Date32:
			b.Append(s.Value(i))
			return nil
		case *array.Date64:
			b.Append(arrow.Date32(int64(s.Value(i)) / 86_400_000))
			return nil
		}
	case *array.TimestampBuilder:
		if s, ok := src.(*array.Timestamp); ok {
			v := int64(s.Value(i))
			switch s.DataType().(*arrow.TimestampType).Unit {
			case arrow.Second:
				v *= 1_000_000
			case arrow.Millisecond:
				v *= 1_000
			case arrow.Nanosecond:
				// Floor, as DMS truncates: dividing towards zero would move
				// 1969-12-31 23:59:59.999999999 to 1970-01-01 00:00:00.
				if v%1_000 < 0 {
					v = v/1_000 - 1
				} else {
					v /= 1_000
				}
			}
			b.Append(arrow.Timestamp(v))
			return nil
		}
	case *array.BooleanBuilder:
		if s, ok := src.(*array.Boolean); ok {
			b.Append(s.Value(i))
			return nil
		}
	}
	return fmt.Errorf("%w: cannot store %s value %s as %s", ErrSchemaClash, src.DataType(), src.ValueStr(i), b.Type())
}

// intValue returns src[i] for every integer type that fits an int64.
func intValue(src arrow.Array, i int) (int64, bool) {
	switch s := src.(type) {
	case *array.Int8:
		return int64(s.Value(i)), true
	case *array.Int16:
		return int64(s.Value(i)), true
	case *array.Int32:
		return int64(s.Value(i)), true
	case *array.Int64:
		return s.Value(i), true
	case *array.Uint8:
		return int64(s.Value(i)), true
	case *array.Uint16:
		return int64(s.Value(i)), true
	case *array.Uint32:
		return int64(s.Value(i)), true
	}
	return 0, false
}

// TypeName is the Iceberg (and Athena) name of a stored type, as messages
// show it: int, long, decimal(10,2), timestamptz… Other Arrow types keep
// their Arrow name.
func TypeName(dt arrow.DataType) string {
	switch t := dt.(type) {
	case *arrow.Int32Type:
		return "int"
	case *arrow.Int64Type:
		return "long"
	case *arrow.Float32Type:
		return "float"
	case *arrow.Float64Type:
		return "double"
	case *arrow.BooleanType:
		return "boolean"
	case *arrow.StringType:
		return "string"
	case *arrow.BinaryType:
		return "binary"
	case *arrow.Date32Type:
		return "date"
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "timestamptz"
		}
		return "timestamp"
	case *arrow.Decimal128Type:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	}
	return dt.String()
}
