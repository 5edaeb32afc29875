package merge_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

// Every DMS type maps to the type Athena reads, and values survive.
func TestStoredTypes(t *testing.T) {
	ts := time.Date(2024, 8, 14, 0, 26, 42, 123456000, time.UTC)
	tests := []struct {
		col  dmstest.Column
		val  any
		want arrow.DataType
		str  string // the stored value, as arrow prints it
	}{
		{dmstest.Column{Name: "tiny", Type: dmstest.Int8}, int8(-5), arrow.PrimitiveTypes.Int32, "-5"},
		{dmstest.Column{Name: "small", Type: dmstest.Int16}, int16(-300), arrow.PrimitiveTypes.Int32, "-300"},
		{dmstest.Column{Name: "i", Type: dmstest.Int32}, int32(7), arrow.PrimitiveTypes.Int32, "7"},
		{dmstest.Column{Name: "big", Type: dmstest.Int64}, int64(1) << 40, arrow.PrimitiveTypes.Int64, "1099511627776"},
		{dmstest.Column{Name: "u8", Type: dmstest.Uint8}, uint8(255), arrow.PrimitiveTypes.Int32, "255"},
		{dmstest.Column{Name: "u16", Type: dmstest.Uint16}, uint16(65535), arrow.PrimitiveTypes.Int32, "65535"},
		{dmstest.Column{Name: "u32", Type: dmstest.Uint32}, uint32(4294967295), arrow.PrimitiveTypes.Int64, "4294967295"},
		{dmstest.Column{Name: "u64", Type: dmstest.Uint64}, uint64(18446744073709551615), &arrow.Decimal128Type{Precision: 20, Scale: 0}, "18446744073709551615"},
		{dmstest.Column{Name: "bit", Type: dmstest.Bool}, true, arrow.FixedWidthTypes.Boolean, "true"},
		{dmstest.Column{Name: "f", Type: dmstest.Float64}, 1.5, arrow.PrimitiveTypes.Float64, "1.5"},
		{dmstest.Column{Name: "price", Type: dmstest.Decimal, Precision: 10, Scale: 2}, "-123.45", &arrow.Decimal128Type{Precision: 10, Scale: 2}, "-123.45"},
		{dmstest.Column{Name: "wide", Type: dmstest.Decimal, Precision: 38, Scale: 0}, "12345678901234567890123456789012345678", &arrow.Decimal128Type{Precision: 38, Scale: 0}, "12345678901234567890123456789012345678"},
		{dmstest.Column{Name: "d", Type: dmstest.Date}, ts, arrow.FixedWidthTypes.Date32, "2024-08-14"},
		{dmstest.Column{Name: "tstz", Type: dmstest.Timestamp}, ts, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, "2024-08-14 00:26:42.123456Z"},
		{dmstest.Column{Name: "dt", Type: dmstest.TimestampLocal}, ts, &arrow.TimestampType{Unit: arrow.Microsecond}, "2024-08-14 00:26:42.123456"},
		{dmstest.Column{Name: "ms", Type: dmstest.TimestampMillis}, ts, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, "2024-08-14 00:26:42.123Z"},
		{dmstest.Column{Name: "doc", Type: dmstest.JSON}, `{"a":"𠮷"}`, arrow.BinaryTypes.String, `{"a":"𠮷"}`},
		{dmstest.Column{Name: "s", Type: dmstest.String}, "𠮷😀", arrow.BinaryTypes.String, "𠮷😀"},
		{dmstest.Column{Name: "blob", Type: dmstest.Binary}, []byte{0, 1, 2}, arrow.BinaryTypes.Binary, "AAEC"},
		{dmstest.Column{Name: "MixedCase", Type: dmstest.Int32}, int32(1), arrow.PrimitiveTypes.Int32, "1"},
	}
	for _, tc := range tests {
		t.Run(tc.col.Name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := dmstest.Write(&buf, []dmstest.Column{tc.col}, []string{"I"}, []dmstest.Row{{tc.val}}, dmstest.Options{Op: true}); err != nil {
				t.Fatal(err)
			}
			f := read(t, "20240814-000001000.parquet", buf.Bytes())
			if f.Schema.NumFields() != 1 {
				t.Fatalf("stored schema %s: want one column (Op not stored)", f.Schema)
			}
			fld := f.Schema.Field(0)
			if fld.Name != strings.ToLower(tc.col.Name) {
				t.Errorf("name %q, want %q", fld.Name, strings.ToLower(tc.col.Name))
			}
			if !arrow.TypeEqual(fld.Type, tc.want) {
				t.Errorf("type %s, want %s", fld.Type, tc.want)
			}
			got := f.Records[0].Column(0)
			str := got.ValueStr(0)
			if ts, ok := got.(*array.Timestamp); ok {
				tt := ts.DataType().(*arrow.TimestampType)
				str = ts.Value(0).ToTime(tt.Unit).Format("2006-01-02 15:04:05.999999")
				if tt.TimeZone != "" {
					str += "Z"
				}
			}
			if d, ok := got.(*array.Decimal128); ok {
				str = d.Value(0).ToString(d.DataType().(*arrow.Decimal128Type).Scale)
			}
			if str != tc.str {
				t.Errorf("value %q, want %q", str, tc.str)
			}
		})
	}
	_ = decimal128.Num{}
}

func TestSchemaClash(t *testing.T) {
	f := read(t, "20240814-000001000.parquet", encode(t, chg{"I", 1, "a", 0}))
	table := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64}, // string in the file
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	err := merge.Align(nil, f, table)
	if !errors.Is(err, merge.ErrSchemaClash) || !strings.Contains(err.Error(), `"v"`) || !strings.Contains(err.Error(), "20240814-000001000.parquet") {
		t.Fatalf("err = %v, want ErrSchemaClash naming the file and column v", err)
	}

	// int→long is promoted and a column the file lacks reads as null.
	f = read(t, "20240814-000001000.parquet", encode(t, chg{"I", 1, "a", 0}))
	wider := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "v", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "added", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	if err := merge.Align(nil, f, wider); err != nil {
		t.Fatal(err)
	}
	rec := f.Records[0]
	if rec.Column(0).(*array.Int64).Value(0) != 1 || !rec.Column(3).IsNull(0) {
		t.Errorf("aligned record %v: want id 1 as long and a null 'added'", rec)
	}

	// A column the table does not have is refused, not dropped.
	f = read(t, "20240814-000001000.parquet", encode(t, chg{"I", 1, "a", 0}))
	narrow := arrow.NewSchema(wider.Fields()[:2], nil)
	if err := merge.Align(nil, f, narrow); !errors.Is(err, merge.ErrSchemaClash) || !strings.Contains(err.Error(), "updated_at") {
		t.Errorf("err = %v, want ErrSchemaClash naming updated_at", err)
	}
}

func TestNullOpIsAnError(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "Op", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "id", Type: arrow.PrimitiveTypes.Int32}}, nil)
	ob := array.NewStringBuilder(memory.DefaultAllocator)
	ob.AppendValues([]string{"I", ""}, []bool{true, false})
	ib := array.NewInt32Builder(memory.DefaultAllocator)
	ib.AppendValues([]int32{1, 2}, nil)
	rec := array.NewRecordBatch(sc, []arrow.Array{ob.NewArray(), ib.NewArray()}, 2)
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(sc, &buf, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = merge.ReadFile(context.Background(), "20240814-000001000.parquet", merge.CDC, bytes.NewReader(buf.Bytes()), nil)
	if !errors.Is(err, merge.ErrUnknownOp) || !strings.Contains(err.Error(), "row 2") || !strings.Contains(err.Error(), "null") {
		t.Fatalf("err = %v, want ErrUnknownOp naming row 2 and the null", err)
	}
}

func fixture(t testing.TB) []byte {
	b, err := os.ReadFile("../testdata/users/20240814-002642123.parquet")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A truncated file, a flipped footer byte, a garbage page: an error, never a
// panic.
func TestCorruptFiles(t *testing.T) {
	good := fixture(t)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		return b
	}
	cases := map[string][]byte{
		"empty":            {},
		"not parquet":      []byte("Op,user_id\nI,1\n"),
		"truncated":        good[:len(good)/2],
		"no magic":         good[:len(good)-4],
		"footer length":    flip(len(good) - 6),
		"footer byte":      flip(len(good) - 20),
		"garbage page":     append(append(bytes.Clone(good[:4]), bytes.Repeat([]byte{0xAB}, 200)...), good[204:]...),
		"first data bytes": flip(10),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := merge.ReadFile(context.Background(), "raw/x.parquet", merge.CDC, bytes.NewReader(b), nil)
			if err == nil {
				// A flipped byte inside compressed data may still decode; then
				// the reader must return consistent rows.
				if f.Rows() != len(f.Ops) {
					t.Fatalf("no error and inconsistent rows")
				}
				return
			}
			if !errors.Is(err, merge.ErrCorruptFile) && !errors.Is(err, merge.ErrUnknownOp) && !errors.Is(err, merge.ErrUnsupportedType) {
				t.Errorf("err = %v, want ErrCorruptFile", err)
			}
			if !strings.Contains(err.Error(), "raw/x.parquet") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	// The cases that cannot decode must fail.
	for _, name := range []string{"empty", "not parquet", "truncated", "no magic"} {
		if _, err := merge.ReadFile(context.Background(), "raw/x.parquet", merge.CDC, bytes.NewReader(cases[name]), nil); !errors.Is(err, merge.ErrCorruptFile) {
			t.Errorf("%s: err = %v, want ErrCorruptFile", name, err)
		}
	}
}

// FuzzReadFile: whatever the bytes, ReadFile never panics and returns either
// a consistent file or an *InputError naming the object. The seeds are real
// DMS files: the users fixtures (gzip, as DMS writes them) and small dmstest
// files left uncompressed, so that mutations reach the page decoders instead
// of dying in a gzip checksum.
func FuzzReadFile(f *testing.F) {
	for _, name := range []string{"LOAD00000001.parquet", "20240814-002642123.parquet"} {
		b, err := os.ReadFile("../testdata/users/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, seed := range readSeeds(f) {
		f.Add(seed)
	}
	good := fixture(f)
	f.Add(good[:len(good)-8])
	f.Add([]byte("PAR1garbagePAR1"))
	f.Add([]byte{})

	const name = "raw/fuzz.parquet"
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		file, err := merge.ReadFile(context.Background(), name, source.Classify(name), bytes.NewReader(b), mem)
		if err != nil {
			if file != nil {
				t.Errorf("ReadFile returned a file with the error %v", err)
			}
			var ie *merge.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v (%T), want an *merge.InputError", err, err)
			}
			if ie.File != name || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %q does not name the object %s", err, name)
			}
			return
		}
		if file == nil || file.Schema == nil {
			t.Fatalf("ReadFile returned no file and no error")
		}
		n := 0
		for _, r := range file.Records {
			if !r.Schema().Equal(file.Schema) {
				t.Fatalf("record schema %s, file schema %s", r.Schema(), file.Schema)
			}
			n += int(r.NumRows())
		}
		if n != file.Rows() {
			t.Fatalf("%d rows in records, %d ops", n, file.Rows())
		}
		for i, op := range file.Ops {
			if op != merge.Insert && op != merge.Update && op != merge.Delete {
				t.Fatalf("row %d: op %q", i+1, op)
			}
		}
		file.Release()
		if got := mem.CurrentAlloc(); got != 0 {
			t.Fatalf("%d bytes still allocated after Release", got)
		}
	})
}

// readSeeds are small DMS files of every layout the reader meets: each
// column type, nulls, no Op column, several row groups, each compression.
func readSeeds(t testing.TB) [][]byte {
	ts := time.Date(2024, 8, 14, 0, 26, 42, 123456000, time.UTC)
	all := []dmstest.Column{
		{Name: "id", Type: dmstest.Int32, Required: true},
		{Name: "tiny", Type: dmstest.Int8},
		{Name: "big", Type: dmstest.Int64},
		{Name: "u64", Type: dmstest.Uint64},
		{Name: "bit", Type: dmstest.Bool},
		{Name: "f", Type: dmstest.Float64},
		{Name: "price", Type: dmstest.Decimal, Precision: 10, Scale: 2},
		{Name: "d", Type: dmstest.Date},
		{Name: "tstz", Type: dmstest.Timestamp},
		{Name: "dt", Type: dmstest.TimestampLocal},
		{Name: "ms", Type: dmstest.TimestampMillis},
		{Name: "doc", Type: dmstest.JSON},
		{Name: "s", Type: dmstest.String},
		{Name: "blob", Type: dmstest.Binary},
	}
	full := dmstest.Row{int32(1), int8(-5), int64(1) << 40, uint64(1) << 63, true, 1.5, "-123.45", ts, ts, ts, ts, `{"a":1}`, "𠮷", []byte{0, 1}}
	nulls := dmstest.Row{int32(2), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}
	narrow := cols // id, v, updated_at as in batch_test.go
	var seeds [][]byte
	add := func(cs []dmstest.Column, ops []string, rows []dmstest.Row, o dmstest.Options) {
		var buf bytes.Buffer
		if err := dmstest.Write(&buf, cs, ops, rows, o); err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	add(all, []string{"I", "U", "D"}, []dmstest.Row{full, nulls, full}, dmstest.Options{Op: true, Compression: "none"})
	add(all, nil, []dmstest.Row{full, nulls}, dmstest.Options{Compression: "none"})
	add(narrow, []string{"I", "U", "D", "U"}, []dmstest.Row{{int32(1), "a", ts}, {int32(1), "b", nil}, {int32(2), "c", ts}, {int32(3), "d", ts}},
		dmstest.Options{Op: true, RowGroupRows: 2, Compression: "none"})
	add(narrow, []string{"I", "X"}, []dmstest.Row{{int32(1), "a", ts}, {int32(2), "b", ts}}, dmstest.Options{Op: true, Compression: "none"})
	add(narrow, []string{"I"}, []dmstest.Row{{int32(1), "a", ts}}, dmstest.Options{Op: true, Compression: "snappy"})
	add(narrow, nil, nil, dmstest.Options{Op: true, Compression: "none"})
	return seeds
}

// hugeChunk reports whether the footer of b claims a column chunk more than
// 1 MiB larger than b itself. It reads only the footer, as ReadFile does first.
func hugeChunk(b []byte) (huge bool) {
	defer func() {
		if recover() != nil {
			huge = false // ReadFile recovers the same panic into an error
		}
	}()
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		return false
	}
	defer pf.Close()
	md := pf.MetaData()
	for rg := 0; rg < md.NumRowGroups(); rg++ {
		rgm := md.RowGroup(rg)
		for c := 0; c < rgm.NumColumns(); c++ {
			if col, err := rgm.ColumnChunk(c); err == nil && col.TotalCompressedSize() > int64(len(b))+1<<20 {
				return true
			}
		}
	}
	return false
}

// Every single flipped byte of a real file: an error or consistent rows,
// never a panic (a panic in a reader goroutine would kill the test binary).
func TestEveryFlippedByte(t *testing.T) {
	good := fixture(t)
	failed := 0
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		f, err := merge.ReadFile(context.Background(), "x.parquet", merge.CDC, bytes.NewReader(b), nil)
		if err != nil {
			failed++
			if !strings.Contains(err.Error(), "x.parquet") {
				t.Fatalf("byte %d: error %q does not name the file", i, err)
			}
			continue
		}
		n := 0
		for _, r := range f.Records {
			n += int(r.NumRows())
		}
		if n != f.Rows() {
			t.Fatalf("byte %d: %d rows in records, %d ops", i, n, f.Rows())
		}
		f.Release()
	}
	t.Logf("%d of %d flipped bytes gave an error, the rest decoded consistently", failed, len(good))
}

func TestEvolve(t *testing.T) {
	table := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "n", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "gone", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	file := func(name string, fields ...arrow.Field) *merge.File {
		return &merge.File{Name: name, Schema: arrow.NewSchema(fields, nil)}
	}
	id := arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int32}
	got, changes, err := merge.Evolve(table, []*merge.File{
		file("a.parquet", id, arrow.Field{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true}),
		file("b.parquet", id, arrow.Field{Name: "phone", Type: arrow.BinaryTypes.String, Nullable: true}),
		file("c.parquet", id, arrow.Field{Name: "n", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), // narrower than now: fine
	})
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, c := range changes {
		desc = append(desc, c.String())
	}
	if want := "widen column n from int to long; add column phone string"; strings.Join(desc, "; ") != want {
		t.Errorf("changes %q, want %q", strings.Join(desc, "; "), want)
	}
	if got.NumFields() != 4 || got.Field(1).Type.ID() != arrow.INT64 || got.Field(3).Name != "phone" || !got.Field(3).Nullable {
		t.Errorf("evolved schema %s", got)
	}
	// string → int fits neither way.
	_, _, err = merge.Evolve(table, []*merge.File{file("d.parquet", id, arrow.Field{Name: "gone", Type: arrow.PrimitiveTypes.Int64})})
	if !errors.Is(err, merge.ErrSchemaClash) || !strings.Contains(err.Error(), "d.parquet") || !strings.Contains(err.Error(), `"gone"`) {
		t.Errorf("err = %v, want ErrSchemaClash naming d.parquet and gone", err)
	}
}

// A damaged footer that claims a column chunk of 16 GiB in a 2 KB file is
// refused before anything is allocated for it (found by FuzzReadFile: the
// reader used to allocate the claimed size first).
func TestHugeChunkClaimIsCorrupt(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "users", "20240814-002642123.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	copy(b[1741:1745], []byte{0xff, 0xff, 0xff, 0x7f})
	if !hugeChunk(b) {
		t.Fatal("the mutation no longer makes a huge claim; pick the bytes of a total_compressed_size again")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	_, err = merge.ReadFile(context.Background(), "x.parquet", merge.CDC, bytes.NewReader(b), nil)
	if !errors.Is(err, merge.ErrCorruptFile) {
		t.Fatalf("err = %v, want ErrCorruptFile", err)
	}
	runtime.ReadMemStats(&ms)
	if got := ms.TotalAlloc - before; got > 64<<20 {
		t.Errorf("reading it allocated %d MiB", got>>20)
	}
}
