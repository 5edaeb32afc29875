package dmstest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
)

// Type is the source type of a column, named after what DMS writes for it.
type Type int

// The column types DMS writes. See the package documentation for the Parquet
// physical and logical type each one becomes.
const (
	String          Type = iota // BYTE_ARRAY STRING; value string
	Int8                        // INT32 INT(8,true); MySQL TINYINT, TINYINT(1)
	Int16                       // INT32 INT(16,true)
	Int32                       // INT32 INT(32,true); MySQL INT
	Int64                       // INT64 INT(64,true); MySQL BIGINT
	Uint8                       // INT32 INT(8,false)
	Uint16                      // INT32 INT(16,false)
	Uint32                      // INT32 INT(32,false)
	Uint64                      // INT64 INT(64,false); MySQL BIGINT UNSIGNED
	Bool                        // BOOLEAN; MySQL BIT
	Float64                     // DOUBLE
	Decimal                     // FIXED_LEN_BYTE_ARRAY DECIMAL(Precision,Scale); value a string like "-123.45"
	Date                        // INT32 DATE; value time.Time, its date part
	Timestamp                   // INT64 TIMESTAMP(MICROS,isAdjustedToUTC=true); value time.Time
	TimestampLocal              // INT64 TIMESTAMP(MICROS,isAdjustedToUTC=false), MySQL DATETIME; value time.Time, its wall clock
	TimestampMillis             // INT64 TIMESTAMP(MILLIS,isAdjustedToUTC=true); value time.Time
	JSON                        // BYTE_ARRAY JSON; value string
	Binary                      // BYTE_ARRAY; value []byte
	// Appended, so the constants above keep their values.
	Float32              // FLOAT; MySQL FLOAT, PostgreSQL REAL; value float32
	TimestampLocalMillis // INT64 TIMESTAMP(MILLIS,isAdjustedToUTC=false), DATETIME with ParquetTimestampInMillisecond; value time.Time, its wall clock
	Enum                 // BYTE_ARRAY ENUM; value string
	DecimalInt32         // INT32 DECIMAL(Precision<=9,Scale), as Spark and other writers store small decimals; value as for Decimal
	DecimalInt64         // INT64 DECIMAL(Precision<=18,Scale); value as for Decimal
	TimestampNanos       // INT64 TIMESTAMP(NANOS,isAdjustedToUTC=true), as Spark and pandas write (DMS never does); value time.Time
)

var typeNames = [...]string{
	String: "String", Int8: "Int8", Int16: "Int16", Int32: "Int32", Int64: "Int64",
	Uint8: "Uint8", Uint16: "Uint16", Uint32: "Uint32", Uint64: "Uint64",
	Bool: "Bool", Float64: "Float64", Decimal: "Decimal", Date: "Date",
	Timestamp: "Timestamp", TimestampLocal: "TimestampLocal",
	TimestampMillis: "TimestampMillis", JSON: "JSON", Binary: "Binary",
	Float32: "Float32", TimestampLocalMillis: "TimestampLocalMillis", Enum: "Enum",
	DecimalInt32: "DecimalInt32", DecimalInt64: "DecimalInt64", TimestampNanos: "TimestampNanos",
}

// String returns the name of the type constant, e.g. "Int32".
func (t Type) String() string {
	if t >= 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Column describes one source column.
type Column struct {
	Name string
	Type Type
	// Precision and Scale apply to the decimal types only: 1 <= Precision <=
	// 38 (9 for DecimalInt32, 18 for DecimalInt64) and 0 <= Scale <=
	// Precision.
	Precision, Scale int
	// Required makes the column REQUIRED instead of OPTIONAL; a nil value in
	// it is then an error.
	Required bool
}

// Row holds one value per column, in column order; nil is a null.
//
// Go types by column type: String, JSON and Enum string; Decimal,
// DecimalInt32 and DecimalInt64 a string in plain decimal notation
// ("-123.45", at most Scale fraction digits); Bool bool; Float64 float64 (or
// float32); Float32 float32 (or a float64 a float32 holds exactly, or NaN);
// Binary []byte; Date and the timestamp types time.Time. Integer columns
// accept any Go integer type (int, int8..int64, uint, uint8..uint64) whose
// value fits the column's range. Sub-microsecond (sub-millisecond for
// TimestampMillis and TimestampLocalMillis) precision is truncated, as DMS
// does; TimestampNanos keeps nanoseconds. Float bits (NaN payloads, -0) are written as given.
type Row []any

// Options controls the layout of the file.
type Options struct {
	// Op writes a leading "Op" string column whose values come from the ops
	// argument of Write, as DMS does in CDC files and in full load files with
	// IncludeOpForFullLoad=true.
	Op bool
	// RowGroupRows is the number of rows per row group; 0 writes a single
	// row group.
	RowGroupRows int
	// Compression is "gzip" (the default, as DMS is configured in the
	// pipeline), "snappy" or "none".
	Compression string
	// PageSize is the target size of a data page before encoding (DMS's
	// DataPageSize); 0 keeps parquet-go's default of 256 KiB.
	PageSize int
	// DictPageSizeLimit caps a column chunk's dictionary (DMS's
	// DictPageSizeLimit): past it the column falls back to PLAIN for the
	// rest of the row group, as parquet-cpp does. 0: no limit.
	DictPageSizeLimit int64
}

// The S3 endpoint's Parquet defaults (CONTEXT.md §2): RowGroupLength,
// DataPageSize and DictPageSizeLimit.
const (
	DMSRowGroupLength    = 10_000
	DMSDataPageSize      = 1 << 20
	DMSDictPageSizeLimit = 1 << 20
)

// DMSOptions is the shape of the files DMS writes with the pipeline's
// settings: an Op column, GZIP, ParquetVersion parquet-1-0 (data page v1),
// 10,000-row row groups, 1 MiB data pages and dictionaries, dictionary
// encoding and statistics on (parquet-go writes column chunk and page
// statistics by default).
func DMSOptions() Options {
	return Options{Op: true, RowGroupRows: DMSRowGroupLength, Compression: "gzip",
		PageSize: DMSDataPageSize, DictPageSizeLimit: DMSDictPageSizeLimit}
}

// opColumn is the name DMS gives the operation column.
const opColumn = "Op"

// WriteFile writes the file to path, creating parent directories as needed.
// On error the partial file is removed.
func WriteFile(path string, cols []Column, ops []string, rows []Row, o Options) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("dmstest: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dmstest: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("dmstest: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	return Write(f, cols, ops, rows, o)
}

// Write writes rows as one DMS Parquet file to w. ops[i] is the Op value of
// rows[i]; any string is accepted (for negative tests) and ops must have one
// entry per row when o.Op is set. It is ignored otherwise.
//
// Every value is validated before anything is written to w.
func Write(w io.Writer, cols []Column, ops []string, rows []Row, o Options) (err error) {
	codec, err := codecOf(o.Compression)
	if err != nil {
		return err
	}
	if o.RowGroupRows < 0 {
		return fmt.Errorf("dmstest: RowGroupRows %d is negative", o.RowGroupRows)
	}
	if o.PageSize < 0 || o.DictPageSizeLimit < 0 {
		return fmt.Errorf("dmstest: negative PageSize %d or DictPageSizeLimit %d", o.PageSize, o.DictPageSizeLimit)
	}
	if o.Op && len(ops) != len(rows) {
		return fmt.Errorf("dmstest: %d ops for %d rows", len(ops), len(rows))
	}
	encs, err := encodersOf(cols, o.Op)
	if err != nil {
		return err
	}
	prows, err := buildRows(encs, cols, ops, rows, o.Op)
	if err != nil {
		return err
	}

	fields := make(group, len(encs))
	for i, e := range encs {
		fields[i] = field{Node: e.node, name: e.name}
	}
	// parquet-go panics on some inputs it considers programming errors;
	// everything known is validated above, this keeps a surprise an error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("dmstest: parquet-go: %v", r)
		}
	}()
	schema := parquet.NewSchema("schema", fields)
	wopts := []parquet.WriterOption{
		parquet.Compression(codec),
		parquet.DataPageVersion(1),
		parquet.DataPageStatistics(true),
	}
	if o.PageSize > 0 {
		wopts = append(wopts, parquet.PageBufferSize(o.PageSize))
	}
	if o.DictPageSizeLimit > 0 {
		wopts = append(wopts, parquet.DictionaryMaxBytes(o.DictPageSizeLimit))
	}
	pw := parquet.NewWriter(w, append([]parquet.WriterOption{schema}, wopts...)...)
	step := o.RowGroupRows
	if step == 0 {
		step = len(prows)
	}
	for start := 0; start < len(prows); start += step {
		end := min(start+step, len(prows))
		if _, err := pw.WriteRows(prows[start:end]); err != nil {
			return fmt.Errorf("dmstest: writing rows %d..%d: %w", start, end-1, err)
		}
		if err := pw.Flush(); err != nil {
			return fmt.Errorf("dmstest: flushing row group: %w", err)
		}
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("dmstest: closing writer: %w", err)
	}
	return nil
}

func codecOf(name string) (compress.Codec, error) {
	switch strings.ToLower(name) {
	case "", "gzip":
		return &parquet.Gzip, nil
	case "snappy":
		return &parquet.Snappy, nil
	case "none", "uncompressed":
		return &parquet.Uncompressed, nil
	default:
		return nil, fmt.Errorf("dmstest: unknown compression %q (want gzip, snappy or none)", name)
	}
}

// buildRows validates and converts every value into a parquet.Row.
func buildRows(encs []encoder, cols []Column, ops []string, rows []Row, withOp bool) ([]parquet.Row, error) {
	out := make([]parquet.Row, len(rows))
	off := 0
	if withOp {
		off = 1
	}
	for r, row := range rows {
		if len(row) != len(cols) {
			return nil, fmt.Errorf("dmstest: row %d has %d values for %d columns", r, len(row), len(cols))
		}
		prow := make(parquet.Row, 0, len(encs))
		if withOp {
			prow = append(prow, parquet.ByteArrayValue([]byte(ops[r])).Level(0, 1, 0))
		}
		for c, v := range row {
			e := encs[c+off]
			idx := c + off
			if v == nil {
				if e.required {
					return nil, fmt.Errorf("dmstest: row %d, column %q: null in a required column", r, e.name)
				}
				prow = append(prow, parquet.NullValue().Level(0, 0, idx))
				continue
			}
			pv, err := e.encode(v)
			if err != nil {
				return nil, fmt.Errorf("dmstest: row %d, column %q (%s): %w", r, e.name, e.typ, err)
			}
			def := 1
			if e.required {
				def = 0
			}
			prow = append(prow, pv.Level(0, def, idx))
		}
		out[r] = prow
	}
	return out, nil
}

// group is a parquet group node whose fields keep the order they are given
// in; parquet.Group is a map and sorts its fields by name.
type group []parquet.Field

func (g group) ID() int                           { return 0 }
func (g group) String() string                    { return parquet.NewSchema("", g).String() }
func (g group) Type() parquet.Type                { return parquet.Group{}.Type() }
func (g group) Optional() bool                    { return false }
func (g group) Repeated() bool                    { return false }
func (g group) Required() bool                    { return true }
func (g group) Leaf() bool                        { return false }
func (g group) Fields() []parquet.Field           { return g }
func (g group) Encoding() encoding.Encoding       { return nil }
func (g group) Compression() compress.Codec       { return nil }
func (g group) GoType() reflect.Type              { return reflect.TypeFor[map[string]any]() }
func (f field) Name() string                      { return f.name }
func (f field) Value(reflect.Value) reflect.Value { return reflect.Value{} }

type field struct {
	parquet.Node
	name string
}
