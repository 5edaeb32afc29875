package icecheck

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// Reserved field ids of the position delete file columns.
const (
	fieldIDDeleteFilePath = 2147483546
	fieldIDDeletePos      = 2147483545
)

// columnReader reads one schema field out of data files.
type columnReader struct {
	id       int
	name     string
	typ      icebergType
	required bool
}

type icebergType struct {
	name             string // "decimal" for decimal(p, s), "fixed" for fixed[n]
	precision, scale int
	length           int
}

var (
	decimalType = regexp.MustCompile(`^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$`)
	fixedType   = regexp.MustCompile(`^fixed\[\s*(\d+)\s*\]$`)
)

func parseType(s string) (icebergType, error) {
	switch s {
	case "boolean", "int", "long", "float", "double", "date", "timestamp", "timestamptz",
		"timestamp_ns", "timestamptz_ns", "string", "uuid", "binary":
		return icebergType{name: s}, nil
	}
	if m := decimalType.FindStringSubmatch(s); m != nil {
		p, _ := strconv.Atoi(m[1])
		sc, _ := strconv.Atoi(m[2])
		if p < 1 || p > 38 || sc > p {
			return icebergType{}, fmt.Errorf("invalid type %q", s)
		}
		return icebergType{name: "decimal", precision: p, scale: sc}, nil
	}
	if m := fixedType.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return icebergType{}, fmt.Errorf("invalid type %q", s)
		}
		return icebergType{name: "fixed", length: n}, nil
	}
	return icebergType{}, fmt.Errorf("type %q is %w", s, ErrUnsupported)
}

func columnReaders(s *schema) ([]columnReader, error) {
	cols := make([]columnReader, len(s.Fields))
	for i, f := range s.Fields {
		t, err := parseType(f.typeName())
		if err != nil {
			return nil, fmt.Errorf("icecheck: column %q: %w", f.Name, err)
		}
		cols[i] = columnReader{id: f.ID, name: f.Name, typ: t, required: f.Required}
	}
	return cols, nil
}

// parquetFile is an open Parquet file and its top-level leaf columns.
type parquetFile struct {
	path   string
	pf     *parquet.File
	byID   map[int]*parquet.Column
	byName map[string]*parquet.Column
}

func openParquet(fetch func(string) ([]byte, error), loc string) (_ *parquetFile, err error) {
	data, err := fetch(loc)
	if err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true))
	if err != nil {
		return nil, fmt.Errorf("opening Parquet: %w", err)
	}
	f := &parquetFile{path: loc, pf: pf, byID: map[int]*parquet.Column{}, byName: map[string]*parquet.Column{}}
	for _, c := range pf.Root().Columns() {
		if c.ID() != 0 {
			f.byID[c.ID()] = c
		} else {
			f.byName[c.Name()] = c
		}
	}
	return f, nil
}

func (f *parquetFile) Close() error { return nil }

// column finds the Parquet column of a field: by field id, or by name among
// the columns that have no field id. It returns nil when the file has none.
func (f *parquetFile) column(id int, name string) *parquet.Column {
	if c, ok := f.byID[id]; ok {
		return c
	}
	return f.byName[name]
}

// values reads every value of a top-level, non-repeated leaf column, one per
// row, nulls included.
func (f *parquetFile) values(c *parquet.Column) ([]parquet.Value, error) {
	if !c.Leaf() || c.MaxRepetitionLevel() != 0 {
		return nil, fmt.Errorf("column %q is nested or repeated: %w", c.Name(), ErrUnsupported)
	}
	out := make([]parquet.Value, 0, f.pf.NumRows())
	buf := make([]parquet.Value, 512)
	for _, rg := range f.pf.RowGroups() {
		start := len(out)
		pages := rg.ColumnChunks()[c.Index()].Pages()
		for {
			page, err := pages.ReadPage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				pages.Close()
				return nil, fmt.Errorf("column %q: %w", c.Name(), err)
			}
			vr := page.Values()
			for {
				n, err := vr.ReadValues(buf)
				for _, v := range buf[:n] {
					out = append(out, v.Clone()) // page buffers are reused
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					pages.Close()
					return nil, fmt.Errorf("column %q: %w", c.Name(), err)
				}
			}
		}
		if err := pages.Close(); err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name(), err)
		}
		if got := int64(len(out) - start); got != rg.NumRows() {
			return nil, fmt.Errorf("column %q: %d values in a row group of %d rows", c.Name(), got, rg.NumRows())
		}
	}
	return out, nil
}

// guard turns a panic inside parquet-go (a corrupt file) into an error.
func guard(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("icecheck: %s: parquet-go panicked: %v", what, r)
	}
}

// positionDeletes maps a data file (its partition scope and path) to the
// deleted positions in it, each with the highest data sequence number of
// the delete files naming it.
type positionDeletes map[string]map[int64]int64

func (d positionDeletes) add(path string, pos, seq int64) {
	m := d[path]
	if m == nil {
		m = make(map[int64]int64)
		d[path] = m
	}
	if old, ok := m[pos]; !ok || seq > old {
		m[pos] = seq
	}
}

// deleted reports whether row pos of the data file path with data sequence
// number seq is deleted: a position delete applies to data files whose data
// sequence number is less than or equal to its own.
func (d positionDeletes) deleted(path string, pos, seq int64) bool {
	delSeq, ok := d[path][pos]
	return ok && seq <= delSeq
}

func readPositionDeletes(fetch func(string) ([]byte, error), lf liveFile, into positionDeletes) (err error) {
	defer guard(&err, "position delete file "+lf.path)
	f, err := openParquet(fetch, lf.path)
	if err != nil {
		return fmt.Errorf("icecheck: position delete file %s: %w", lf.path, err)
	}
	defer f.Close()
	if n := f.pf.NumRows(); n != lf.recordCount {
		return fmt.Errorf("icecheck: position delete file %s: %d rows, the manifest says %d", lf.path, n, lf.recordCount)
	}
	pathCol := f.column(fieldIDDeleteFilePath, "file_path")
	posCol := f.column(fieldIDDeletePos, "pos")
	if pathCol == nil || posCol == nil {
		return fmt.Errorf("icecheck: position delete file %s: no file_path and pos columns", lf.path)
	}
	paths, err := f.values(pathCol)
	if err != nil {
		return fmt.Errorf("icecheck: position delete file %s: %w", lf.path, err)
	}
	positions, err := f.values(posCol)
	if err != nil {
		return fmt.Errorf("icecheck: position delete file %s: %w", lf.path, err)
	}
	if posCol.Type().Kind() != parquet.Int64 || pathCol.Type().Kind() != parquet.ByteArray {
		return fmt.Errorf("icecheck: position delete file %s: file_path is %s and pos %s, want BYTE_ARRAY and INT64",
			lf.path, pathCol.Type().Kind(), posCol.Type().Kind())
	}
	for i := range paths {
		if paths[i].IsNull() || positions[i].IsNull() {
			return fmt.Errorf("icecheck: position delete file %s: row %d: null file_path or pos", lf.path, i)
		}
		into.add(lf.scope+"\x00"+string(paths[i].ByteArray()), positions[i].Int64(), lf.seq)
	}
	return nil
}

func readDataFile(fetch func(string) ([]byte, error), lf liveFile, cols []columnReader, deletes positionDeletes) (rows []map[string]any, err error) {
	defer guard(&err, "data file "+lf.path)
	f, err := openParquet(fetch, lf.path)
	if err != nil {
		return nil, fmt.Errorf("icecheck: data file %s: %w", lf.path, err)
	}
	defer f.Close()
	n := f.pf.NumRows()
	if n != lf.recordCount {
		return nil, fmt.Errorf("icecheck: data file %s: %d rows, the manifest says %d", lf.path, n, lf.recordCount)
	}
	columns := make([][]any, len(cols))
	for i, c := range cols {
		pc := f.column(c.id, c.name)
		if pc == nil {
			continue // a column added after the file was written: all null
		}
		conv, err := converter(c.typ, pc)
		if err != nil {
			return nil, fmt.Errorf("icecheck: data file %s: column %q: %w", lf.path, c.name, err)
		}
		vals, err := f.values(pc)
		if err != nil {
			return nil, fmt.Errorf("icecheck: data file %s: %w", lf.path, err)
		}
		columns[i] = make([]any, len(vals))
		for r, v := range vals {
			if v.IsNull() {
				continue
			}
			if columns[i][r], err = conv(v); err != nil {
				return nil, fmt.Errorf("icecheck: data file %s: row %d, column %q: %w", lf.path, r, c.name, err)
			}
		}
	}
	for r := int64(0); r < n; r++ {
		if deletes.deleted(lf.scope+"\x00"+lf.path, r, lf.seq) {
			continue
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			var v any
			if columns[i] != nil {
				v = columns[i][r]
			}
			if v == nil && c.required {
				return nil, fmt.Errorf("icecheck: data file %s: row %d: null in required column %q", lf.path, r, c.name)
			}
			row[c.name] = v
		}
		rows = append(rows, row)
	}
	return rows, nil
}

type convertFunc func(parquet.Value) (any, error)

// converter returns the function turning values of Parquet column pc into
// the Go value of Iceberg type t, or an error when the physical type cannot
// hold t (type promotions int→long, float→double are accepted).
func converter(t icebergType, pc *parquet.Column) (convertFunc, error) {
	kind := pc.Type().Kind()
	bad := func() (convertFunc, error) {
		return nil, fmt.Errorf("Parquet %s cannot hold Iceberg %s", kind, t.name)
	}
	switch t.name {
	case "boolean":
		if kind == parquet.Boolean {
			return func(v parquet.Value) (any, error) { return v.Boolean(), nil }, nil
		}
	case "int", "long":
		switch {
		case kind == parquet.Int32:
			return func(v parquet.Value) (any, error) { return int64(v.Int32()), nil }, nil
		case kind == parquet.Int64 && t.name == "long":
			return func(v parquet.Value) (any, error) { return v.Int64(), nil }, nil
		}
	case "float", "double":
		switch {
		case kind == parquet.Float:
			return func(v parquet.Value) (any, error) { return float64(v.Float()), nil }, nil
		case kind == parquet.Double && t.name == "double":
			return func(v parquet.Value) (any, error) { return v.Double(), nil }, nil
		}
	case "decimal":
		scale := t.scale
		switch kind {
		case parquet.Int32:
			return func(v parquet.Value) (any, error) { return formatDecimal(big.NewInt(int64(v.Int32())), scale), nil }, nil
		case parquet.Int64:
			return func(v parquet.Value) (any, error) { return formatDecimal(big.NewInt(v.Int64()), scale), nil }, nil
		case parquet.FixedLenByteArray, parquet.ByteArray:
			return func(v parquet.Value) (any, error) {
				b := v.ByteArray()
				if len(b) == 0 || len(b) > 16 {
					return nil, fmt.Errorf("decimal of %d bytes", len(b))
				}
				return formatDecimal(twosComplement(b), scale), nil
			}, nil
		}
	case "date":
		if kind == parquet.Int32 {
			return func(v parquet.Value) (any, error) { return time.Unix(int64(v.Int32())*86400, 0).UTC(), nil }, nil
		}
	case "timestamp", "timestamptz", "timestamp_ns", "timestamptz_ns":
		if kind == parquet.Int64 {
			unit := timestampUnit(pc, strings.HasSuffix(t.name, "_ns"))
			return func(v parquet.Value) (any, error) {
				x := v.Int64()
				switch unit {
				case time.Millisecond:
					return time.UnixMilli(x).UTC(), nil
				case time.Nanosecond:
					return time.Unix(0, x).UTC(), nil
				}
				return time.UnixMicro(x).UTC(), nil
			}, nil
		}
	case "string":
		if kind == parquet.ByteArray {
			return func(v parquet.Value) (any, error) { return string(v.ByteArray()), nil }, nil
		}
	case "uuid":
		if kind == parquet.FixedLenByteArray {
			return func(v parquet.Value) (any, error) {
				b := v.ByteArray()
				if len(b) != 16 {
					return nil, fmt.Errorf("uuid of %d bytes", len(b))
				}
				h := hex.EncodeToString(b)
				return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
			}, nil
		}
	case "binary":
		if kind == parquet.ByteArray {
			return func(v parquet.Value) (any, error) { return append([]byte{}, v.ByteArray()...), nil }, nil
		}
	case "fixed":
		if kind == parquet.FixedLenByteArray {
			n := t.length
			return func(v parquet.Value) (any, error) {
				b := v.ByteArray()
				if len(b) != n {
					return nil, fmt.Errorf("fixed[%d] value of %d bytes", n, len(b))
				}
				return append([]byte{}, b...), nil
			}, nil
		}
	}
	return bad()
}

// timestampUnit is the unit of an INT64 timestamp column: from its TIMESTAMP
// logical type, else its legacy converted type, else what Iceberg mandates.
func timestampUnit(pc *parquet.Column, nanos bool) time.Duration {
	if lt := pc.Type().LogicalType(); lt != nil {
		if ts, ok := lt.Value.(*format.TimestampType); ok && ts.Unit.Value != nil {
			return ts.Unit.Value.Duration()
		}
	}
	if ct := pc.Type().ConvertedType(); ct != nil && *ct == deprecated.TimestampMillis {
		return time.Millisecond
	}
	if nanos {
		return time.Nanosecond
	}
	return time.Microsecond
}

// twosComplement decodes a big-endian two's complement integer.
func twosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// formatDecimal writes unscaled × 10^-scale in plain notation with exactly
// scale fraction digits.
func formatDecimal(unscaled *big.Int, scale int) string {
	digits := new(big.Int).Abs(unscaled).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if unscaled.Sign() < 0 {
		return "-" + digits
	}
	return digits
}
