package merge

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// Op is the change a DMS row records.
type Op byte

const (
	Insert Op = 'I'
	Update Op = 'U'
	Delete Op = 'D'
)

func (o Op) String() string { return string(rune(o)) }

// ParseOp matches DMS's Op values case-insensitively.
func ParseOp(s string) (Op, bool) {
	switch s {
	case "I", "i":
		return Insert, true
	case "U", "u":
		return Update, true
	case "D", "d":
		return Delete, true
	}
	return 0, false
}

// File is one DMS file read into memory: its rows converted to the stored
// types, and the Op of every row.
type File struct {
	Name    string // object key, used in every message about the file
	Kind    Kind
	Schema  *arrow.Schema // StoredSchema of the file
	Records []arrow.RecordBatch
	Ops     []Op // one per row, across Records
	HasOp   bool // false: the file had no Op column and holds inserts

	shed    bool    // Records released by Shed
	recRows []int64 // rows per record, kept by Shed
	full    *arrow.Schema
	first   int64 // ReadGroups: the file's row number of the part's first row
	// unchecked: the columns the file does not keep were never decoded
	// (ReadOptions.Check off): bad input there (a damaged page, invalid
	// UTF-8) is found when the file is read again, which Plan.Records,
	// Plan.Check and CheckFiles do, winners or not, before any commit.
	unchecked bool
	// before holds the old keys of updates that change their key, taken
	// out of Records by SplitBeforeImage; nil when none does.
	before *beforeImage
}

// FullSchema is the StoredSchema of the whole file, also after Project.
func (f *File) FullSchema() *arrow.Schema {
	if f.full != nil {
		return f.full
	}
	return f.Schema
}

// Project keeps only the named columns (those the file has) in Records and
// Schema; FullSchema still describes the file, and the old keys
// SplitBeforeImage took stay. A batch needs only the key
// and order columns of a file, and the file was validated whole when read.
func (f *File) Project(cols []string) {
	f.projectFrom(0, func(c string) bool { return slices.Contains(cols, c) })
}

// projectFrom keeps the columns keep names in Records[from:], which
// hold every column of FullSchema (from 0: those of Schema), and in Schema.
func (f *File) projectFrom(from int, keep func(string) bool) {
	full := f.FullSchema()
	in := f.Schema
	if from > 0 {
		in = full
	}
	var idx []int
	var fields []arrow.Field
	for i, fld := range in.Fields() {
		if keep(fld.Name) {
			idx, fields = append(idx, i), append(fields, fld)
		}
	}
	if len(idx) == in.NumFields() {
		return
	}
	sc := arrow.NewSchema(fields, nil)
	for i := from; i < len(f.Records); i++ {
		rec := f.Records[i]
		arrs := make([]arrow.Array, len(idx))
		for j, k := range idx {
			arrs[j] = rec.Column(k)
		}
		f.Records[i] = array.NewRecordBatch(sc, arrs, rec.NumRows())
		rec.Release()
	}
	f.Schema, f.full = sc, full
}

// Projected reports whether Project dropped columns of the file.
func (f *File) Projected() bool { return f.full != nil }

// Shed releases the file's records once it is added to a Batch, keeping its
// ops and the row count of each record: a Plan reads the file again (the
// Batch's Reload) when it writes the file's winning rows. A batch then holds
// only keys and order values in memory, not every row of every file.
func (f *File) Shed() {
	f.recRows = f.recordRows()
	f.Release()
	f.shed = true
}

// recordRows returns the row count of each record.
func (f *File) recordRows() []int64 {
	if f.shed {
		return f.recRows
	}
	rows := make([]int64, len(f.Records))
	for i, r := range f.Records {
		rows[i] = r.NumRows()
	}
	return rows
}

// Rows is the number of rows in the file.
func (f *File) Rows() int { return len(f.Ops) }

// Count returns the number of rows with the given op.
func (f *File) Count(op Op) int {
	n := 0
	for _, o := range f.Ops {
		if o == op {
			n++
		}
	}
	return n
}

// Release frees the file's records and old keys.
func (f *File) Release() {
	f.releaseRecords()
	if f.before != nil {
		f.before.release()
		f.before = nil
	}
}

func (f *File) releaseRecords() {
	for _, r := range f.Records {
		r.Release()
	}
	f.Records = nil
}

// readBatchRows bounds the rows held per Arrow record.
const readBatchRows = 64 * 1024

// ReadFile reads one DMS Parquet file. Every problem with the input comes back
// as an *InputError naming the file (and row and column where there is one);
// corrupt files give ErrCorruptFile, never a panic: the reader runs in this
// goroutine (no parallel column reads) so a panic deep in the Parquet decoder
// is recovered here and turned into an error.
func ReadFile(ctx context.Context, name string, kind Kind, r parquet.ReaderAtSeeker, mem memory.Allocator) (*File, error) {
	return ReadFileWith(ctx, name, kind, r, mem, ReadOptions{})
}

// ReadOptions tune ReadFileWith.
type ReadOptions struct {
	// Keep, when set, is called once the file's footer is read, with the
	// file's rows' size as the footer gives it (the sum of its column
	// chunks' uncompressed sizes, an estimate of their decoded size). It
	// returns which columns to keep (nil: every column). FullSchema still
	// describes the file.
	Keep func(estimate int64) func(column string) bool
	// Check decodes and checks the columns Keep drops too, a row group at
	// a time, dropping them before the next row group is read: a bad file
	// is found now, whatever column its damage is in (what
	// --on-bad-file quarantine needs to set it aside before planning).
	// Without it those columns are not even decompressed (the pages of a
	// DMS file's wide text columns are most of its GZIP inflation), and the
	// file is left unchecked: its second read checks them, before any
	// commit (Plan.Records, Plan.Check, CheckFiles).
	Check bool
}

// ReadFileWith is ReadFile with options.
func ReadFileWith(ctx context.Context, name string, kind Kind, r parquet.ReaderAtSeeker, mem memory.Allocator, ro ReadOptions) (*File, error) {
	f := &File{Name: name, Kind: kind}
	if err := readGroups(ctx, f, r, mem, ro, nil); err != nil {
		f.Release()
		return nil, err
	}
	return f, nil
}

// ReadGroups reads a file as ReadFile does, but hands it to each one row
// group at a time: part holds that row group's records and their ops, and
// is released when each returns, so memory holds one row group of the file.
// An error from each ends the read and is returned as it is.
func ReadGroups(ctx context.Context, name string, kind Kind, r parquet.ReaderAtSeeker, mem memory.Allocator, each func(part *File) error) error {
	return readGroups(ctx, &File{Name: name, Kind: kind}, r, mem, ReadOptions{}, each)
}

// errEach carries an error of ReadGroups' each through readGroups, so it is
// returned unwrapped.
type errEach struct{ err error }

func (e errEach) Error() string { return e.err.Error() }

// readGroups reads the file into f a row group at a time; with each, every
// row group goes into a part of its own handed to each instead.
func readGroups(ctx context.Context, f *File, r parquet.ReaderAtSeeker, mem memory.Allocator, ro ReadOptions, each func(*File) error) (err error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	name := f.Name
	defer func() {
		if p := recover(); p != nil {
			err = &InputError{File: name, Err: fmt.Errorf("%w: %v", ErrCorruptFile, p),
				Hint: "the object is damaged or not Parquet; remove or replace it, then rerun"}
		}
	}()
	corrupt := func(e error) error {
		return &InputError{File: name, Err: fmt.Errorf("%w: %w", ErrCorruptFile, e),
			Hint: "the object is damaged or not Parquet; remove or replace it, then rerun"}
	}

	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return &InputError{File: name, Err: fmt.Errorf("finding the size of the object: %w", err)}
	}
	pf, err := file.NewParquetReader(r)
	if err != nil {
		return corrupt(err)
	}
	defer pf.Close()
	// The reader allocates a column chunk's buffer at the size the footer
	// states before reading it: a damaged footer could ask for gigabytes (or
	// more than the machine has, a fatal error no recover catches).
	if err := chunksWithin(pf.MetaData(), size); err != nil {
		return corrupt(err)
	}
	props := pqarrow.ArrowReadProperties{Parallel: false, BatchSize: readBatchRows}
	if psc := pf.MetaData().Schema; psc.NumColumns() > 0 && strings.EqualFold(psc.Column(0).Name(), OpColumn) &&
		psc.Column(0).PhysicalType() == parquet.Types.ByteArray && psc.Column(0).LogicalType().Equals(schema.StringLogicalType{}) {
		// What may be DMS's Op column is read as a dictionary: a few
		// distinct values, parsed once each instead of once a row.
		props.SetReadDict(0, true)
	}
	fr, err := pqarrow.NewFileReader(pf, props, mem)
	if err != nil {
		return corrupt(err)
	}
	fileSchema, err := fr.Schema()
	if err != nil {
		return corrupt(err)
	}
	fileSchema = textAsString(pf, fileSchema)
	opIdx := OpIndex(fileSchema)
	data := fileSchema.Fields()
	if opIdx >= 0 {
		data = slices.Delete(data, opIdx, opIdx+1)
	}
	stored, err := StoredSchema(name, arrow.NewSchema(data, nil))
	if err != nil {
		return err
	}
	f.Schema = stored
	f.HasOp = opIdx >= 0
	var kept func(string) bool
	if ro.Keep != nil {
		est := int64(0)
		for rg := 0; rg < pf.NumRowGroups(); rg++ {
			est += pf.MetaData().RowGroup(rg).TotalByteSize()
		}
		kept = ro.Keep(est)
	}

	// The file's columns are flat (StoredSchema refuses nested ones), one
	// leaf each, Op first when there is one.
	leaves := make([]int, 0, pf.MetaData().Schema.NumColumns())
	recSchema := stored // the schema of the records read
	if kept != nil && !ro.Check && pf.MetaData().Schema.NumColumns() == fileSchema.NumFields() {
		var fields []arrow.Field
		if opIdx >= 0 {
			leaves = append(leaves, opIdx)
		}
		for i, fld := range stored.Fields() {
			if kept(fld.Name) {
				leaves, fields = append(leaves, i+opIdx+1), append(fields, fld)
			}
		}
		if len(fields) < stored.NumFields() {
			recSchema = arrow.NewSchema(fields, nil)
			f.Schema, f.full, f.unchecked = recSchema, stored, true
			kept = nil // nothing more to drop
		} else {
			leaves = leaves[:0]
		}
	}
	if len(leaves) == 0 {
		for i := range pf.MetaData().Schema.NumColumns() {
			leaves = append(leaves, i)
		}
	}
	rows := int64(0)
	for rg := 0; rg < pf.NumRowGroups(); rg++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		tbl, err := fr.ReadRowGroups(ctx, leaves, []int{rg})
		if err != nil {
			return corrupt(err)
		}
		into := f
		if each != nil {
			into = &File{Name: name, Kind: f.Kind, Schema: stored, HasOp: f.HasOp, first: rows}
		}
		from := len(into.Records)
		err = into.addTable(mem, tbl, opIdx, recSchema)
		tbl.Release()
		if err == nil && kept != nil {
			into.projectFrom(from, kept)
		}
		if each != nil {
			if err == nil {
				rows += int64(len(into.Ops))
				if err = each(into); err != nil {
					err = errEach{err}
				}
			}
			into.Release() // each's part, also when it failed to fill
		}
		if e, ok := err.(errEach); ok {
			return e.err
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// OpIndex is the index of DMS's Op column in a file's schema, or -1. DMS
// writes Op as the first column, a string (CDC files, and full-load files
// with IncludeOpForFullLoad); a full-load file without it has no Op column
// and every row is an insert. So only a first string column named Op
// (any case) is the Op column: a source table's own column named op
// elsewhere, or of another type, is data. (A table whose first column is
// a string named op, loaded without IncludeOpForFullLoad, cannot be told
// from DMS's Op: a value other than I, U or D then fails the file loudly.)
func OpIndex(sc *arrow.Schema) int {
	if sc.NumFields() == 0 || !strings.EqualFold(sc.Field(0).Name, OpColumn) {
		return -1
	}
	dt := sc.Field(0).Type
	if d, ok := dt.(*arrow.DictionaryType); ok {
		dt = d.ValueType
	}
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW, arrow.BINARY, arrow.LARGE_BINARY:
		return 0
	}
	return -1
}

// chunksWithin checks that every column chunk the footer describes lies
// inside the object.
func chunksWithin(md *metadata.FileMetaData, size int64) error {
	for rg := 0; rg < md.NumRowGroups(); rg++ {
		rgm := md.RowGroup(rg)
		for c := 0; c < rgm.NumColumns(); c++ {
			cc, err := rgm.ColumnChunk(c)
			if err != nil {
				return err
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			n := cc.TotalCompressedSize()
			if start < 0 || n < 0 || start > size || n > size-start {
				return fmt.Errorf("row group %d column %d claims bytes %d..%d of a %d-byte object", rg, c, start, start+n, size)
			}
		}
	}
	return nil
}

// addTable converts one row group to stored records of schema sc (tbl's
// columns but Op, in the stored types) and collects its ops.
func (f *File) addTable(mem memory.Allocator, tbl arrow.Table, opIdx int, sc *arrow.Schema) error {
	tr := array.NewTableReader(tbl, readBatchRows)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		base := f.first + int64(len(f.Ops))
		if opIdx < 0 {
			for range rec.NumRows() {
				f.Ops = append(f.Ops, Insert)
			}
		} else if d, ok := rec.Column(opIdx).(*array.Dictionary); ok {
			if err := f.addDictOps(d, base, rec.Schema().Field(opIdx).Name); err != nil {
				return err
			}
		} else {
			col := rec.Column(opIdx)
			for i := 0; i < int(rec.NumRows()); i++ {
				s, ok := stringAt(col, i)
				if !ok {
					return &InputError{File: f.Name, Row: base + int64(i) + 1, Column: rec.Schema().Field(opIdx).Name,
						Err: fmt.Errorf("%w: Op is null", ErrUnknownOp), Hint: "DMS writes I, U or D in every row; nothing was committed"}
				}
				op, ok := ParseOp(s)
				if !ok {
					return &InputError{File: f.Name, Row: base + int64(i) + 1, Column: rec.Schema().Field(opIdx).Name, Value: s,
						Err: ErrUnknownOp, Hint: "DMS writes I, U or D; fix or remove the file, then rerun; nothing was committed"}
				}
				f.Ops = append(f.Ops, op)
			}
		}
		cols := make([]arrow.Array, 0, sc.NumFields())
		release := func() {
			for _, c := range cols {
				c.Release()
			}
		}
		for i := 0; i < rec.Schema().NumFields(); i++ {
			if i == opIdx {
				continue
			}
			c, err := convertColumn(mem, rec.Column(i), sc.Field(len(cols)).Type)
			if err != nil {
				release()
				return &InputError{File: f.Name, Column: rec.Schema().Field(i).Name, Err: err}
			}
			if row, ok := validUTF8(c); !ok {
				c.Release()
				release()
				return &InputError{File: f.Name, Row: base + int64(row) + 1, Column: rec.Schema().Field(i).Name,
					Err:  ErrInvalidUTF8,
					Hint: "DMS writes text as UTF-8; check the source column's character set, fix or remove the file, then rerun; nothing was committed"}
			}
			cols = append(cols, c)
		}
		f.Records = append(f.Records, array.NewRecordBatch(sc, cols, rec.NumRows()))
		release()
	}
	return tr.Err()
}

// addDictOps collects the ops of a dictionary-encoded Op column, each
// dictionary value parsed once; base is the file's row number of its
// first row, less one.
func (f *File) addDictOps(d *array.Dictionary, base int64, column string) error {
	dict := d.Dictionary()
	ops := make([]Op, dict.Len()) // 0: not an op
	for j := range ops {
		if s, ok := stringAt(dict, j); ok {
			ops[j], _ = ParseOp(s)
		}
	}
	for i := 0; i < d.Len(); i++ {
		if d.IsNull(i) {
			return &InputError{File: f.Name, Row: base + int64(i) + 1, Column: column,
				Err: fmt.Errorf("%w: Op is null", ErrUnknownOp), Hint: "DMS writes I, U or D in every row; nothing was committed"}
		}
		j := d.GetValueIndex(i)
		if ops[j] == 0 {
			s, _ := stringAt(dict, j)
			return &InputError{File: f.Name, Row: base + int64(i) + 1, Column: column, Value: s,
				Err: ErrUnknownOp, Hint: "DMS writes I, U or D; fix or remove the file, then rerun; nothing was committed"}
		}
		f.Ops = append(f.Ops, ops[j])
	}
	return nil
}

// RecordBytes is the memory of a record's buffers.
func RecordBytes(r arrow.RecordBatch) int64 {
	n := int64(0)
	for _, c := range r.Columns() {
		for _, b := range c.Data().Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
	}
	return n
}

// validUTF8 checks every value of a string column; on failure it returns
// the index of the first invalid one. Binary and other columns pass.
func validUTF8(arr arrow.Array) (int, bool) {
	a, ok := arr.(*array.String)
	if !ok {
		return 0, true
	}
	// Fast path: the values buffer is valid UTF-8 and no value starts inside
	// a character, so every value is valid on its own.
	if buf := a.ValueBytes(); utf8.Valid(buf) {
		offs := a.ValueOffsets()
		base := offs[0]
		ok := true
		for i := 0; i < a.Len() && ok; i++ {
			if o := int(offs[i] - base); o < len(buf) {
				ok = utf8.RuneStart(buf[o])
			}
		}
		if ok {
			return 0, true
		}
	}
	for i := 0; i < a.Len(); i++ {
		if a.IsValid(i) && !utf8.ValidString(a.Value(i)) {
			return i, false
		}
	}
	return 0, true
}

// textAsString types JSON and ENUM columns, which the Arrow reader reads as
// binary, as the strings they are.
func textAsString(pf *file.Reader, sc *arrow.Schema) *arrow.Schema {
	psc := pf.MetaData().Schema
	if psc.NumColumns() != sc.NumFields() {
		return sc // nested: StoredSchema refuses it anyway
	}
	fields := sc.Fields()
	for i := range fields {
		switch psc.Column(i).LogicalType().(type) {
		case schema.JSONLogicalType, *schema.JSONLogicalType, schema.EnumLogicalType, *schema.EnumLogicalType:
			if fields[i].Type.ID() == arrow.BINARY {
				fields[i].Type = arrow.BinaryTypes.String
			}
		}
	}
	md := sc.Metadata()
	return arrow.NewSchema(fields, &md)
}

// stringAt returns a string value of a string-like column.
func stringAt(arr arrow.Array, i int) (string, bool) {
	if arr.IsNull(i) {
		return "", false
	}
	switch a := arr.(type) {
	case *array.String:
		return a.Value(i), true
	case *array.LargeString:
		return a.Value(i), true
	case *array.StringView:
		return a.Value(i), true
	case *array.Binary:
		return string(a.Value(i)), true
	case *array.Dictionary:
		return stringAt(a.Dictionary(), a.GetValueIndex(i))
	case array.ExtensionArray:
		return stringAt(a.Storage(), i)
	}
	return arr.ValueStr(i), true
}
