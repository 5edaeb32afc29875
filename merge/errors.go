package merge

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, matched with errors.Is. Every error the package returns for
// bad input is an *InputError wrapping one of them.
var (
	// ErrCorruptFile: the object is not a readable Parquet file.
	ErrCorruptFile = errors.New("not a readable Parquet file")
	// ErrUnknownOp: the Op column holds something other than I, U or D.
	ErrUnknownOp = errors.New("unknown change operation")
	// ErrNullKey: a primary key column is null.
	ErrNullKey = errors.New("null primary key")
	// ErrSchemaClash: a column's type does not fit the table, or a column is
	// missing that the table requires.
	ErrSchemaClash = errors.New("schema does not match the table")
	// ErrUnsupportedType: a column type icemerge cannot store for Athena.
	ErrUnsupportedType = errors.New("unsupported column type")
	// ErrInvalidUTF8: a string column holds bytes that are not UTF-8.
	ErrInvalidUTF8 = errors.New("string value is not valid UTF-8")
	// ErrMissingColumn: a key or order-by column is not in the file.
	ErrMissingColumn = errors.New("missing column")
	// ErrColumnName: a column name Glue, Athena or Iceberg cannot store
	// (see CheckColumnName).
	ErrColumnName = errors.New("column name not allowed")
)

// InputError locates bad input: the object, the 1-based row (0 when the
// problem is not in one row), the column and the offending value.
type InputError struct {
	File   string
	Row    int64
	Column string
	Value  string
	Hint   string // what the user can do
	Err    error
}

func (e *InputError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", e.File)
	if e.Row > 0 {
		fmt.Fprintf(&b, ": row %d", e.Row)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ": column %q", e.Column)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, ": value %q", e.Value)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

func (e *InputError) Unwrap() error { return e.Err }
