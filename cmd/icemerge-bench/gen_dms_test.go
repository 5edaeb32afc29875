package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// parquetShape is what a Parquet file's footer and page headers say,
// read with parquet-go (the files are written with arrow-go, so a second
// implementation reads them).
type parquetShape struct {
	version   int32
	columns   []string
	groupRows []int64
	chunks    []chunkShape // every column chunk of every row group
}

type chunkShape struct {
	column     string
	codec      format.CompressionCodec
	encodings  []format.Encoding
	hasDict    bool
	hasStats   bool
	nullCounts bool
	pageTypes  []format.PageType
}

func readParquetShape(t *testing.T, path string) parquetShape {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytesReaderAt(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	md := f.Metadata()
	s := parquetShape{version: md.Version}
	for _, el := range md.Schema[1:] {
		s.columns = append(s.columns, el.Name)
	}
	for _, rg := range md.RowGroups {
		s.groupRows = append(s.groupRows, rg.NumRows)
		for _, cc := range rg.Columns {
			m := cc.MetaData
			c := chunkShape{
				column:     m.PathInSchema[0],
				codec:      m.Codec,
				encodings:  m.Encoding,
				hasDict:    m.DictionaryPageOffset > 0,
				hasStats:   (len(m.Statistics.MinValue) > 0 || len(m.Statistics.Min) > 0) && (len(m.Statistics.MaxValue) > 0 || len(m.Statistics.Max) > 0),
				nullCounts: m.Statistics.NullCount == 0,
			}
			start := m.DataPageOffset
			if c.hasDict {
				start = m.DictionaryPageOffset
			}
			chunk := raw[start : start+m.TotalCompressedSize]
			for off := 0; off < len(chunk); {
				r := new(thrift.CompactProtocol).NewReaderFromBytes(chunk[off:])
				var h format.PageHeader
				if err := thrift.NewDecoder(r).Decode(&h); err != nil {
					t.Fatalf("%s: column %s: page header at %d: %v", path, c.column, start+int64(off), err)
				}
				c.pageTypes = append(c.pageTypes, h.Type)
				off += r.BytesRead() + int(h.CompressedPageSize)
			}
			s.chunks = append(s.chunks, c)
		}
	}
	return s
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	return copy(p, b[off:]), nil
}

// checkDMSShape asserts DMS's Parquet settings on one file.
func checkDMSShape(t *testing.T, path string) parquetShape {
	t.Helper()
	s := readParquetShape(t, path)
	name := filepath.Base(path)
	if s.version != 1 {
		t.Errorf("%s: format version %d, want 1 (ParquetVersion parquet-1-0)", name, s.version)
	}
	wantCols := []string{"Op", "user_id", "first_name", "last_name", "email", "created_at", "updated_at", "balance", "bio"}
	if !slices.Equal(s.columns, wantCols) {
		t.Errorf("%s: columns %v, want %v (Op first)", name, s.columns, wantCols)
	}
	for i, n := range s.groupRows {
		last := i == len(s.groupRows)-1
		if (!last && n != dmsRowGroupRows) || (last && (n < 1 || n > dmsRowGroupRows)) {
			t.Errorf("%s: row group %d of %d has %d rows, want %d (RowGroupLength; the last up to it)", name, i, len(s.groupRows), n, dmsRowGroupRows)
		}
	}
	for _, c := range s.chunks {
		if c.codec != format.Gzip {
			t.Errorf("%s: column %s compressed with %s, want GZIP", name, c.column, c.codec)
		}
		if !c.hasDict || len(c.pageTypes) == 0 || c.pageTypes[0] != format.DictionaryPage {
			t.Errorf("%s: column %s: no dictionary page first (pages %v); want dictionary encoding on", name, c.column, c.pageTypes)
		}
		if !slices.Contains(c.encodings, format.PlainDictionary) || slices.Contains(c.encodings, format.RLEDictionary) {
			t.Errorf("%s: column %s: encodings %v, want PLAIN_DICTIONARY (Parquet 1.0), not RLE_DICTIONARY", name, c.column, c.encodings)
		}
		if !c.hasStats || !c.nullCounts {
			t.Errorf("%s: column %s: statistics min/max %v, null count 0 %v; want statistics on", name, c.column, c.hasStats, c.nullCounts)
		}
		for _, pt := range c.pageTypes[1:] {
			if pt != format.DataPage {
				t.Errorf("%s: column %s: a %s page; want only v1 data pages after the dictionary", name, c.column, pt)
				break
			}
		}
	}
	return s
}

// TestDMSShapeFiles generates DMS-shaped LOAD and CDC files and checks
// what DMS's S3 settings give: GZIP, Parquet 1.0 with v1 data pages,
// 10,000-row row groups, dictionary pages and statistics in every column
// chunk, Op first; CDC files cut at about the size asked, holding whole
// transactions, named by increasing timestamps.
func TestDMSShapeFiles(t *testing.T) {
	const fileBytes = 2 << 20
	p := genParams{Seed: 3, Rows: 25_000, Changes: 60_000, Spread: spreadUniform, Shape: shapeDMS, FileBytes: fileBytes}
	work := t.TempDir()
	base, err := genBase(work, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Files) != 1 || base.Files[0] != "LOAD00000001.parquet" {
		t.Fatalf("LOAD files %v, want LOAD00000001.parquet", base.Files)
	}
	ls := checkDMSShape(t, filepath.Join(base.Location, base.Files[0]))
	if !slices.Equal(ls.groupRows, []int64{10_000, 10_000, 5_000}) {
		t.Errorf("LOAD row groups %v, want 10000 10000 5000", ls.groupRows)
	}
	load := readAll(t, filepath.Join(base.Location, base.Files[0]))
	defer load.Release()
	for i := range int(load.NumRows()) {
		if op := load.Column(0).(*array.String).Value(i); op != "I" {
			t.Fatalf("LOAD row %d: Op %q, want I (IncludeOpForFullLoad)", i, op)
		}
	}

	cdc, err := genBatch(work, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cdc.Files) < 3 {
		t.Fatalf("%d CDC files for %d changes cut at %d bytes, want 3 or more", len(cdc.Files), p.Changes, fileBytes)
	}
	name := regexp.MustCompile(`^\d{8}-\d{9}\.parquet$`)
	changes := dmsBatch(p, 1, nil)
	end := 0
	for i, f := range cdc.Files {
		path := filepath.Join(cdc.Location, f)
		if !name.MatchString(f) || (i > 0 && f <= cdc.Files[i-1]) {
			t.Errorf("CDC file %d is %s, want YYYYMMDD-HHMMSSmmm.parquet after %s", i, f, cdc.Files[max(i-1, 0)])
		}
		s := checkDMSShape(t, path)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if last := i == len(cdc.Files)-1; !last && (st.Size() < fileBytes*9/10 || st.Size() > fileBytes*11/10) {
			t.Errorf("CDC file %s: %d bytes, want about %d (CdcMinFileSize)", f, st.Size(), fileBytes)
		}
		for _, n := range s.groupRows {
			end += int(n)
		}
		if !changes[end-1].txEnd {
			t.Errorf("CDC file %s ends inside a transaction (after change %d)", f, end)
		}
	}
	if end != p.Changes {
		t.Errorf("the CDC files hold %d rows, want %d", end, p.Changes)
	}
}

// TestDMSDeletesCarryTheLastImage reads the generated files back: every D
// row equals the key's previous row in the files (its last image), or its
// full-load row, in every column but Op; no U or D follows a key's D.
func TestDMSDeletesCarryTheLastImage(t *testing.T) {
	p := genParams{Seed: 4, Rows: 5_000, Changes: 20_000, Spread: spreadClustered, Shape: shapeDMS, FileBytes: 512 << 10}
	work := t.TempDir()
	base, err := genBase(work, p)
	if err != nil {
		t.Fatal(err)
	}
	cdc, err := genBatch(work, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		rec arrow.RecordBatch
		i   int
	}
	latest := map[int32]row{}
	load := readAll(t, filepath.Join(base.Location, base.Files[0]))
	defer load.Release()
	for i := range int(load.NumRows()) {
		latest[load.Column(1).(*array.Int32).Value(i)] = row{load, i}
	}
	deletes, fromLoad := 0, 0
	for _, f := range cdc.Files {
		rec := readAll(t, filepath.Join(cdc.Location, f))
		defer rec.Release()
		ops, keys := rec.Column(0).(*array.String), rec.Column(1).(*array.Int32)
		for i := range int(rec.NumRows()) {
			k, op := keys.Value(i), ops.Value(i)
			prev, ok := latest[k]
			prevOp := "I"
			if ok {
				prevOp = prev.rec.Column(0).(*array.String).Value(prev.i)
			}
			if (op == "U" || op == "D") && (!ok || prevOp == "D") {
				t.Fatalf("%s row %d: %s of key %d, which is absent or deleted", f, i, op, k)
			}
			if op == "D" {
				deletes++
				if prev.rec == load {
					fromLoad++
				}
				for c := 1; c < int(rec.NumCols()); c++ {
					if got, want := rec.Column(c).ValueStr(i), prev.rec.Column(c).ValueStr(prev.i); got != want {
						t.Fatalf("%s row %d: D of key %d has %s %q, want the last image's %q", f, i, k, rec.ColumnName(c), got, want)
					}
				}
			}
			latest[k] = row{rec, i}
		}
	}
	if deletes == 0 || fromLoad == 0 || fromLoad == deletes {
		t.Errorf("%d deletes, %d of them of full-load rows: want both kinds", deletes, fromLoad)
	}
}

// TestDMSStreamContinuesAcrossBatches: batch 2 goes on from batch 1 (new
// keys above batch 1's, deletes carrying batch 1's images), and no key's
// updated_at goes back in commit order.
func TestDMSStreamContinuesAcrossBatches(t *testing.T) {
	p := genParams{Seed: 9, Rows: 2_000, Changes: 5_000, Spread: spreadClustered, Shape: shapeDMS}
	var st genStats
	b1, b2 := dmsBatch(p, 1, nil), dmsBatch(p, 2, &st)
	if !b1[len(b1)-1].txEnd || !b2[len(b2)-1].txEnd {
		t.Error("a batch ends inside a transaction")
	}
	lastTS, lastOp := map[int32]int64{}, map[int32]byte{}
	fromBatch1 := 0
	for i, c := range append(slices.Clone(b1), b2...) {
		if op, seen := lastOp[c.key]; c.op == 'I' && (c.key <= int32(p.Rows) && !seen || seen && op != 'D') {
			t.Fatalf("change %d inserts key %d, which is live", i, c.key)
		}
		if prev, ok := lastTS[c.key]; ok && c.ts < prev {
			t.Fatalf("change %d (%c) of key %d: updated_at %d before the key's previous %d", i, c.op, c.key, c.ts, prev)
		}
		if i >= len(b1) && c.op == 'D' && c.variant != 0 && c.variant <= uint64(len(b1)) {
			fromBatch1++
		}
		lastTS[c.key], lastOp[c.key] = c.ts, c.op
	}
	if fromBatch1 == 0 {
		t.Error("no delete in batch 2 carries an image batch 1 wrote")
	}
	if st.Transactions == 0 || st.Transactions >= p.Changes {
		t.Errorf("%d transactions for %d changes, want several changes to some", st.Transactions, p.Changes)
	}
}

// TestDMSSmallFiles: the small-files case is the requested number of files
// of about the size asked, and its one-file twin holds the same rows.
func TestDMSSmallFiles(t *testing.T) {
	const nfiles, size = 12, 256 << 10
	p := genParams{Seed: 5, Rows: 50_000, Shape: shapeDMS, Spread: spreadUniform}
	n, err := smallFilesChanges(p, nfiles, size)
	if err != nil {
		t.Fatal(err)
	}
	p.Changes = n
	work := t.TempDir()
	p.FileBytes = size
	small, err := genBatch(work, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	p.FileBytes = -1
	one, err := genBatch(work, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(small.Files) != nfiles || len(one.Files) != 1 {
		t.Fatalf("%d and %d files, want %d and 1", len(small.Files), len(one.Files), nfiles)
	}
	if small.MinFileBytes < size*85/100 || small.MaxFileBytes > size*115/100 {
		t.Errorf("small files of %d to %d bytes, want about %d", small.MinFileBytes, small.MaxFileBytes, size)
	}
	big := readAll(t, filepath.Join(one.Location, one.Files[0]))
	defer big.Release()
	row := 0
	for _, f := range small.Files {
		rec := readAll(t, filepath.Join(small.Location, f))
		for i := range int(rec.NumRows()) {
			for c := range int(rec.NumCols()) {
				if rec.Column(c).ValueStr(i) != big.Column(c).ValueStr(row) {
					t.Fatalf("%s row %d differs from the one file's row %d in %s", f, i, row, rec.ColumnName(c))
				}
			}
			row++
		}
		rec.Release()
	}
	if row != int(big.NumRows()) || row != n {
		t.Errorf("small files hold %d rows, the one file %d, want %d", row, big.NumRows(), n)
	}
}
