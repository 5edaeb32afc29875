package merge_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/merge"
)

// FuzzDedupe: a batch of changes derived from the input gives one plan, the
// one a plain model of the rules predicts, however its files are encoded and
// however the listing orders them. The seeds run under plain go test.
func FuzzDedupe(f *testing.F) {
	for _, seed := range dedupeSeeds {
		f.Add(seed)
	}
	f.Fuzz(checkDedupe)
}

// Random batches for go test, beyond the hand-made seeds.
func TestDedupeRandomBatches(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	n := 200
	if testing.Short() {
		n = 20
	}
	for i := range n {
		data := make([]byte, 4+r.IntN(4+3*dedupeMaxRows))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		t.Run(strconv.Itoa(i), func(t *testing.T) { checkDedupe(t, data) })
	}
}

// The seeds, readable; dedupeSpec.bytes encodes each as decodeDedupe reads it.
var dedupeSeeds = [][]byte{
	{},
	dedupeSpec{ // same order value in one file: the later row wins; delete, then re-insert
		orderBy: 1, cdc: 1,
		changes: []dedupeSpecRow{{0, "U", 1, "a", 1, 0}, {0, "U", 1, "a", 1, 0}, {0, "D", 2, "a", 1, 0}, {0, "I", 2, "a", 1, 0}},
	}.bytes(),
	dedupeSpec{ // a newer order value beats a later row; a null sorts first
		orderBy: 1, cdc: 1,
		changes: []dedupeSpecRow{{0, "U", 1, "a", 2, 0}, {0, "U", 1, "a", 0, 0}, {0, "U", 2, "a", 1, 0}, {0, "U", 2, "a", -1, 0}},
	}.bytes(),
	dedupeSpec{ // composite key, (n, ts), LOAD files without Op, lowercase ops, a live
		// row newer than the changes, one equal to them, one already deleted
		composite: true, orderBy: 3, load: 2, cdc: 3, variant: 0x05, firstDeleted: true,
		table: []dedupeSpecRow{{0, "", 1, "b", 2, 2}, {0, "", 1, "a", 2, 2}, {0, "", 2, "b", 1, 1}, {0, "", 3, "a", 0, -1}},
		changes: []dedupeSpecRow{
			{0, "I", 1, "a", 0, 0}, {0, "I", 1, "b", 0, 0}, {1, "I", 2, "b", 0, 1}, {1, "I", 2, "a", -1, -1},
			{2, "u", 1, "a", 1, 0}, {2, "d", 2, "b", 1, 1}, {3, "U", 1, "b", 1, 2}, {3, "u", 2, "a", 0, -1},
			{4, "D", 1, "a", 1, 0}, {4, "i", 1, "a", 1, 0}, {4, "U", 3, "a", 0, 2}, {4, "u", 2, "b", 1, 1},
		},
	}.bytes(),
	dedupeSpec{ // source order only: live rows are replaced whatever their order
		cdc: 2, load: 1, loadOp: true,
		table:   []dedupeSpecRow{{0, "", 1, "a", 2, 2}, {0, "", 2, "a", 2, 2}},
		changes: []dedupeSpecRow{{0, "I", 1, "a", 0, 0}, {1, "U", 1, "a", 0, 0}, {1, "D", 2, "a", 0, 0}, {0, "I", 3, "a", 0, 0}},
	}.bytes(),
	dedupeSpec{ // order by ts: a replayed delete leaves a newer live row alone; a
		// delete of an absent key; LOAD files with Op
		orderBy: 2, load: 1, loadOp: true, cdc: 1,
		table:   []dedupeSpecRow{{0, "", 0, "a", 0, 2}, {0, "", 3, "a", 0, 0}},
		changes: []dedupeSpecRow{{0, "I", 0, "a", 0, 1}, {1, "D", 0, "a", 0, 1}, {1, "D", 1, "a", 0, 0}, {1, "U", 3, "a", 0, -1}},
	}.bytes(),
	dedupeSpec{ // a file per change, one key, one order value: the last file wins
		orderBy: 1, load: 2, cdc: 3, variant: 0x04,
		changes: []dedupeSpecRow{{0, "I", 1, "a", 2, 0}, {1, "I", 1, "a", 2, 0}, {2, "U", 1, "a", 2, 0}, {3, "D", 1, "a", 2, 0}, {4, "U", 1, "a", 2, 0}},
	}.bytes(),
	dedupeSpec{ // a full batch: 40 changes of 8 keys in 5 files, many ties
		composite: true, orderBy: 3, load: 2, loadOp: true, cdc: 3, variant: 0x02,
		table: []dedupeSpecRow{{0, "", 0, "a", 1, 1}, {0, "", 1, "b", 1, 1}, {0, "", 2, "a", 1, 1}, {0, "", 3, "b", 1, 1}},
		changes: func() []dedupeSpecRow {
			var rs []dedupeSpecRow
			for i := range dedupeMaxRows {
				rs = append(rs, dedupeSpecRow{i * 7 % 5, []string{"I", "U", "D", "u"}[i%4], i % 4, []string{"a", "b"}[i/4%2], i % 3, i / 3 % 3})
			}
			return rs
		}(),
	}.bytes(),
}

// dedupeSpec describes a seed of FuzzDedupe.
type dedupeSpec struct {
	composite    bool // key (k1, k2), not k1
	orderBy      int  // index into dedupeOrders
	loadOp       bool // LOAD files have an Op column
	load, cdc    int  // how many of dedupeLoads and dedupeCDCs
	variant      byte // row groups and compression of the variant encoding, listing shuffle
	firstDeleted bool // the first table row is already deleted
	table        []dedupeSpecRow
	changes      []dedupeSpecRow
}

// dedupeSpecRow is one change of the file with the given index (in source order),
// or one table row; n or ts -1 is a null.
type dedupeSpecRow struct {
	file  int
	op    string
	k1    int
	k2    string
	n, ts int
}

func (s dedupeSpec) bytes() []byte {
	cfg := byte(s.orderBy << 1)
	if s.composite {
		cfg |= 1
	}
	if s.loadOp {
		cfg |= 8
	}
	nex := byte(len(s.table))
	if s.firstDeleted {
		nex |= 0x80
	}
	b := []byte{cfg, byte(s.load + 3*s.cdc), s.variant, nex}
	key := func(r dedupeSpecRow) byte {
		k := byte(r.k1)
		if r.k2 == "b" {
			k |= 4
		}
		return k
	}
	order := func(r dedupeSpecRow) byte {
		n, ts := byte(r.n), byte(r.ts)
		if r.n < 0 {
			n = 3
		}
		if r.ts < 0 {
			ts = 3
		}
		return n | ts<<2
	}
	for _, r := range s.table {
		b = append(b, key(r), order(r))
	}
	for _, r := range s.changes {
		op := byte(r.file) | byte(strings.IndexByte("IUD", strings.ToUpper(r.op)[0]))<<4
		if r.op == strings.ToLower(r.op) {
			op |= 0x40
		}
		b = append(b, op, key(r), order(r))
	}
	return b
}

const dedupeMaxRows = 40

// dedupeKeys and dedupeOrders choose the options from the config byte.
var (
	dedupeKeys   = [][]string{{"k1"}, {"k1", "k2"}}
	dedupeOrders = [][]string{nil, {"n"}, {"ts"}, {"n", "ts"}}
	// In source order: full-load files, then CDC files, by key.
	dedupeLoads = []string{"LOAD00000001.parquet", "part2/LOAD0000000A.parquet"}
	dedupeCDCs  = []string{"2024/08/14/20240814-000001000.parquet", "2024/08/14/20240814-000002000.parquet",
		"2024/08/15/20240815-000000000.parquet"}
	// Objects of a listing that are not data.
	dedupeJunk = []string{"_SUCCESS", "2024/08/14/.20240814-000001000.parquet.crc",
		"_temporary/0/20240814-000009000.parquet", "LOAD00000003.csv"}
	dedupeT0 = time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
)

var dedupeCols = []dmstest.Column{
	{Name: "k1", Type: dmstest.Int32, Required: true},
	{Name: "k2", Type: dmstest.String, Required: true},
	{Name: "v", Type: dmstest.String},
	{Name: "n", Type: dmstest.Int64},
	{Name: "ts", Type: dmstest.Timestamp},
}

// dedupeRow is one change, or one live row of the table.
type dedupeRow struct {
	op      merge.Op
	opText  string // as written to the file: I, u, ...
	k1      int32
	k2      string
	v       string // unique per change: f<file>r<row>
	n, ts   int    // ts in seconds after dedupeT0
	nNull   bool
	tsNull  bool
	file    int // source order of its file; for table rows, 0 or 1
	row     int // row in its file; for table rows, the position
	deleted bool
}

type dedupeCase struct {
	opts      merge.Options
	loadOp    bool     // LOAD files have an Op column
	names     []string // files in source order
	files     [][]dedupeRow
	existing  []dedupeRow
	rowGroup  int    // rows per row group of the variant encoding
	codec     string // compression of the variant encoding
	shuffleBy uint64
}

var dedupeTablePaths = []string{"data/00000-a.parquet", "data/00001-b.parquet"}

// dedupeFirstPos is where the rows of each table data file start.
var dedupeFirstPos = []int64{0, 7}

// decodeDedupe derives a batch from arbitrary bytes; missing bytes are 0.
// The bytes are, in order:
//
//	config     bit 0: key (k1, k2), else k1; bits 1-2: dedupeOrders index;
//	           bit 3: LOAD files have an Op column
//	counts     LOAD files counts%3, CDC files counts/3%4 (at least one file)
//	variant    rows per row group 1+variant%3, bit 2: snappy, else gzip;
//	           seeds the listing shuffle
//	table      bits 0-2: number of table rows; bit 7: the first is deleted
//	then 2 bytes per table row (key, order) and 3 per change (op, key,
//	order), at most dedupeMaxRows changes:
//	op         bits 0-2: file index mod the file count; bits 4-5: I, U, D, I;
//	           bit 6: written in lowercase
//	key        bits 0-1: k1; bit 2: k2 "b", else "a"
//	order      bits 0-1: n, 3 a null; bits 2-3: ts in seconds, 3 a null
func decodeDedupe(data []byte) *dedupeCase {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	cfg, counts, variant, nex := next(), next(), next(), next()
	c := &dedupeCase{
		opts:      merge.Options{Keys: dedupeKeys[cfg&1], OrderBy: dedupeOrders[(cfg>>1)%4]},
		loadOp:    cfg&8 != 0,
		rowGroup:  1 + int(variant%3),
		codec:     []string{"gzip", "snappy"}[(variant>>2)&1],
		shuffleBy: uint64(variant),
	}
	nLoad, nCDC := int(counts%3), int(counts/3%4)
	if nLoad+nCDC == 0 {
		nCDC = 1
	}
	c.names = append(slices.Clone(dedupeLoads[:nLoad]), dedupeCDCs[:nCDC]...)
	c.files = make([][]dedupeRow, len(c.names))
	order := func(r *dedupeRow, b byte) {
		r.n, r.nNull = int(b&3), b&3 == 3
		r.ts, r.tsNull = int(b>>2&3), b>>2&3 == 3
	}
	key := func(r *dedupeRow, b byte) {
		r.k1, r.k2 = int32(b%4), []string{"a", "b"}[(b>>2)&1]
	}
	for i := range int(nex % 8) {
		r := dedupeRow{file: i % 2, deleted: nex&0x80 != 0 && i == 0}
		kb, ob := next(), next()
		key(&r, kb)
		order(&r, ob)
		r.v = fmt.Sprintf("table%d", i)
		c.existing = append(c.existing, r)
	}
	for len(data) > 0 && dedupeRowCount(c.files) < dedupeMaxRows {
		a, kb, ob := next(), next(), next()
		fi := int(a&7) % len(c.files)
		r := dedupeRow{file: fi, row: len(c.files[fi]), op: []merge.Op{merge.Insert, merge.Update, merge.Delete}[(a>>4&3)%3]}
		r.opText = r.op.String()
		if a&0x40 != 0 {
			r.opText = string(rune(r.opText[0] + 'a' - 'A'))
		}
		if source.Classify(c.names[fi]) == merge.FullLoad && !c.loadOp {
			r.op, r.opText = merge.Insert, ""
		}
		key(&r, kb)
		order(&r, ob)
		r.v = fmt.Sprintf("f%dr%d", fi, r.row)
		c.files[fi] = append(c.files[fi], r)
	}
	// Table rows sit at consecutive positions of their data file.
	pos := []int64{dedupeFirstPos[0], dedupeFirstPos[1]}
	for i := range c.existing {
		r := &c.existing[i]
		r.row = int(pos[r.file])
		pos[r.file]++
	}
	return c
}

func dedupeRowCount(files [][]dedupeRow) int {
	n := 0
	for _, f := range files {
		n += len(f)
	}
	return n
}

// dedupeView is what a plan does, as a test observes it.
type dedupeView struct {
	Files                                                   []merge.FileStats
	SourceRows, SourceInserts, SourceUpdates, SourceDeletes int
	Keys, WinInserts, WinUpdates, WinDeletes, Stale         int
	Deletes                                                 map[string][]int64
	DeleteRows, WriteRows                                   int
	Rows                                                    []string // the rows written, in order
	NumTombstones                                           int
	Tombstones                                              map[string]string // NextTombstones, hex; nil in the model
}

// viewDiff lists the fields in which got differs from want.
func dedupeDiff(got, want dedupeView) string {
	var b strings.Builder
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			fmt.Fprintf(&b, "\n  %s = %v, want %v", g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface())
		}
	}
	return b.String()
}

// opaque drops what the model cannot predict: the encoding of tombstones.
func (v dedupeView) opaque() dedupeView {
	v.Tombstones = nil
	return v
}

func checkDedupe(t *testing.T, data []byte) {
	c := decodeDedupe(data)
	// Each encoding is read once: the batches share its files, which they
	// only read.
	canonical := c.encode(t, dmstest.Options{Compression: "none"})
	want := c.build(t, c.names, canonical)

	// The plan is the one the rules predict.
	if model := c.model(); !reflect.DeepEqual(want.opaque(), model) {
		t.Fatalf("%s\nthe plan differs from the model:%s", c, dedupeDiff(want.opaque(), model))
	}
	// Other row groups and compression: the same plan.
	variant := c.encode(t, dmstest.Options{RowGroupRows: c.rowGroup, Compression: c.codec})
	if got := c.build(t, c.names, variant); !reflect.DeepEqual(want, got) {
		t.Fatalf("%s\nencoded with %d rows per row group, %s, the plan differs:%s", c, c.rowGroup, c.codec, dedupeDiff(got, want))
	}
	// In key-hash partitions, one batch at a time: the same plan.
	parts := 2 + int(c.shuffleBy%5)
	if got := c.buildParts(t, c.names, canonical, parts); !reflect.DeepEqual(want, got) {
		t.Fatalf("%s\nplanned in %d partitions, the plan differs:%s", c, parts, dedupeDiff(got, want))
	}
	// A shuffled listing sorts to source order, and gives the same plan.
	var listing []source.Object
	for i, k := range append(slices.Clone(c.names), dedupeJunk...) {
		listing = append(listing, source.Object{Key: k, Size: int64(100 + i), ETag: strconv.Itoa(i)})
	}
	r := rand.New(rand.NewPCG(c.shuffleBy, 7))
	r.Shuffle(len(listing), func(i, j int) { listing[i], listing[j] = listing[j], listing[i] })
	var shuffled []string
	for _, o := range listing {
		if source.Classify(o.Key) != merge.NotData {
			shuffled = append(shuffled, o.Key)
		}
	}
	var sorted []string
	for _, o := range source.SortObjects(listing) {
		sorted = append(sorted, o.Key)
	}
	if !slices.Equal(sorted, c.names) {
		t.Fatalf("SortObjects(%q) = %q, want %q", shuffled, sorted, c.names)
	}
	if got := c.build(t, sorted, canonical); !reflect.DeepEqual(want, got) {
		t.Fatalf("%s\nafter SortObjects, the plan differs:%s", c, dedupeDiff(got, want))
	}
	// Added unsorted, the batch refuses the first file out of source order.
	c.checkOutOfOrder(t, shuffled, canonical)
}

// encode writes every file of the batch with the given layout and reads it
// back.
func (c *dedupeCase) encode(t *testing.T, o dmstest.Options) map[string]*merge.File {
	t.Helper()
	out := map[string]*merge.File{}
	for fi, name := range c.names {
		o.Op = c.loadOp || source.Classify(name) != merge.FullLoad
		var ops []string
		var rows []dmstest.Row
		for _, r := range c.files[fi] {
			ops = append(ops, r.opText)
			rows = append(rows, dmstest.Row{r.k1, r.k2, r.v, dedupeNullable(r.nNull, int64(r.n)), dedupeNullable(r.tsNull, dedupeT0.Add(time.Duration(r.ts)*time.Second))})
		}
		var buf bytes.Buffer
		if err := dmstest.Write(&buf, dedupeCols, ops, rows, o); err != nil {
			t.Fatal(err)
		}
		out[name] = read(t, name, buf.Bytes())
	}
	return out
}

func dedupeNullable(null bool, v any) any {
	if null {
		return nil
	}
	return v
}

// newBatch adds the files in the given order to a new batch; it stops at
// the first error of Add.
func (c *dedupeCase) newBatch(t *testing.T, order []string, files map[string]*merge.File) (*merge.Batch, error) {
	return c.newPartition(t, order, files, 0, 1)
}

// newPartition is newBatch for partition part of parts.
func (c *dedupeCase) newPartition(t *testing.T, order []string, files map[string]*merge.File, part, parts int) (*merge.Batch, error) {
	t.Helper()
	var b *merge.Batch
	for _, name := range order {
		f := files[name]
		if b == nil {
			checkDedupeSchema(t, f.Schema)
			var err error
			if b, err = merge.NewBatch(f.Schema, c.opts); err != nil {
				t.Fatal(err)
			}
			if err := b.SetPartition(part, parts); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Add(f); err != nil {
			return b, err
		}
	}
	return b, nil
}

// checkDedupeSchema fails the test if the stored types are not the ones the
// test builds table rows and reads plans with.
func checkDedupeSchema(t *testing.T, sc *arrow.Schema) {
	t.Helper()
	want := []arrow.DataType{arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String, arrow.BinaryTypes.String,
		arrow.PrimitiveTypes.Int64, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}}
	if sc.NumFields() != len(want) {
		t.Fatalf("stored schema %s: want %d columns", sc, len(want))
	}
	for i, dt := range want {
		if f := sc.Field(i); f.Name != dedupeCols[i].Name || !arrow.TypeEqual(f.Type, dt) {
			t.Fatalf("stored schema %s: column %d is %s %s, want %s %s", sc, i, f.Name, f.Type, dedupeCols[i].Name, dt)
		}
	}
}

// build runs the batch through MatchExisting and Plan and observes the plan.
func (c *dedupeCase) build(t *testing.T, order []string, files map[string]*merge.File) dedupeView {
	t.Helper()
	b, err := c.newBatch(t, order, files)
	if err != nil {
		t.Fatalf("%s\nAdd in order %q: %v", c, order, err)
	}
	c.matchExisting(t, b)
	return observeDedupe(t, b.Plan())
}

// buildParts plans the batch in parts key-hash partitions, a batch each,
// and joins their plans, as a run too large for one batch does.
func (c *dedupeCase) buildParts(t *testing.T, order []string, files map[string]*merge.File, parts int) dedupeView {
	t.Helper()
	var total *merge.Plan
	for part := range parts {
		b, err := c.newPartition(t, order, files, part, parts)
		if err != nil {
			t.Fatalf("%s\nAdd in order %q, partition %d of %d: %v", c, order, part, parts, err)
		}
		c.matchExisting(t, b)
		if p := b.Plan(); total == nil {
			total = p
		} else if err := total.Absorb(p); err != nil {
			t.Fatal(err)
		}
	}
	return observeDedupe(t, total)
}

// matchExisting reports the table rows, one MatchExisting call per data file.
func (c *dedupeCase) matchExisting(t *testing.T, b *merge.Batch) {
	t.Helper()
	mem := memory.DefaultAllocator
	for fi, path := range dedupeTablePaths {
		k1 := array.NewInt32Builder(mem)
		k2 := array.NewStringBuilder(mem)
		n := array.NewInt64Builder(mem)
		ts := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"})
		deleted := map[int64]bool{}
		for _, r := range c.existing {
			if r.file != fi {
				continue
			}
			k1.Append(r.k1)
			k2.Append(r.k2)
			if r.nNull {
				n.AppendNull()
			} else {
				n.Append(int64(r.n))
			}
			if r.tsNull {
				ts.AppendNull()
			} else {
				ts.Append(arrow.Timestamp(dedupeT0.Add(time.Duration(r.ts) * time.Second).UnixMicro()))
			}
			deleted[int64(r.row)] = r.deleted
		}
		byName := map[string]arrow.Array{"k1": k1.NewArray(), "k2": k2.NewArray(), "n": n.NewArray(), "ts": ts.NewArray()}
		var keys, orders []arrow.Array
		for _, k := range b.KeyColumns() {
			keys = append(keys, byName[k])
		}
		for _, o := range b.OrderColumns() {
			orders = append(orders, byName[o])
		}
		err := b.MatchExisting(path, keys, orders, dedupeFirstPos[fi], func(pos int64) bool { return deleted[pos] })
		for _, a := range byName {
			a.Release()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func observeDedupe(t *testing.T, p *merge.Plan) dedupeView {
	t.Helper()
	v := dedupeView{
		Files:      p.Files,
		SourceRows: p.SourceRows, SourceInserts: p.SourceInserts, SourceUpdates: p.SourceUpdates, SourceDeletes: p.SourceDeletes,
		Keys: p.Keys, WinInserts: p.WinInserts, WinUpdates: p.WinUpdates, WinDeletes: p.WinDeletes, Stale: p.Stale,
		Deletes: map[string][]int64{}, DeleteRows: p.DeleteRows, WriteRows: p.WriteRows,
		Tombstones: map[string]string{},
	}
	for path, ps := range p.Deletes {
		if len(ps) > 0 {
			v.Deletes[path] = slices.Clone(ps)
		}
	}
	for k, o := range p.NextTombstones(nil) {
		v.Tombstones[hex.EncodeToString([]byte(k))] = hex.EncodeToString(o)
	}
	v.NumTombstones = len(v.Tombstones)
	for rec, err := range p.Records(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		v.Rows = append(v.Rows, renderDedupeRows(t, rec)...)
		rec.Release()
	}
	return v
}

// renderRows prints each row as k1|k2|v|n|ts, with ts in seconds after
// dedupeT0 and null for a null.
func renderDedupeRows(t *testing.T, rec arrow.RecordBatch) []string {
	t.Helper()
	col := func(name string) arrow.Array {
		is := rec.Schema().FieldIndices(name)
		if len(is) != 1 {
			t.Fatalf("plan record %s: no column %s", rec.Schema(), name)
		}
		return rec.Column(is[0])
	}
	k1, ok1 := col("k1").(*array.Int32)
	k2, ok2 := col("k2").(*array.String)
	v, ok3 := col("v").(*array.String)
	n, ok4 := col("n").(*array.Int64)
	ts, ok5 := col("ts").(*array.Timestamp)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		t.Fatalf("plan record %s: unexpected column types", rec.Schema())
	}
	var out []string
	for i := 0; i < int(rec.NumRows()); i++ {
		r := dedupeRow{k1: k1.Value(i), k2: k2.Value(i), v: v.Value(i), nNull: n.IsNull(i), tsNull: ts.IsNull(i)}
		if !r.nNull {
			r.n = int(n.Value(i))
		}
		if !r.tsNull {
			r.ts = int(time.UnixMicro(int64(ts.Value(i))).Sub(dedupeT0) / time.Second)
		}
		out = append(out, r.render())
	}
	return out
}

func (r dedupeRow) render() string {
	n, ts := strconv.Itoa(r.n), strconv.Itoa(r.ts)
	if r.nNull {
		n = "null"
	}
	if r.tsNull {
		ts = "null"
	}
	return fmt.Sprintf("%d|%s|%s|%s|%s", r.k1, r.k2, r.v, n, ts)
}

// The model: per key the greatest change by (order values, file, row), nulls
// first; a winner older than the key's newest live table row changes nothing
// (only with order columns); otherwise it deletes the key's live rows, and
// an I or U winner writes exactly its row.
func (c *dedupeCase) model() dedupeView {
	v := dedupeView{Deletes: map[string][]int64{}}
	keyOf := func(r dedupeRow) string {
		if len(c.opts.Keys) == 2 {
			return fmt.Sprintf("%d/%s", r.k1, r.k2)
		}
		return strconv.Itoa(int(r.k1))
	}
	// Order tuples as (null, value) pairs; a null is (0, 0), a value (1, v).
	orderOf := func(r dedupeRow) []int {
		var o []int
		for _, col := range c.opts.OrderBy {
			null, val := r.nNull, r.n
			if col == "ts" {
				null, val = r.tsNull, r.ts
			}
			if null {
				o = append(o, 0, 0)
			} else {
				o = append(o, 1, val)
			}
		}
		return o
	}
	winners := map[string]dedupeRow{}
	for fi, rows := range c.files {
		st := merge.FileStats{Name: c.names[fi], Kind: source.Classify(c.names[fi]), Rows: len(rows)}
		for _, r := range rows {
			switch r.op {
			case merge.Insert:
				st.Inserts++
			case merge.Update:
				st.Updates++
			case merge.Delete:
				st.Deletes++
			}
			k := keyOf(r)
			w, ok := winners[k]
			if !ok || cmp.Or(slices.Compare(orderOf(r), orderOf(w)), cmp.Compare(r.file, w.file), cmp.Compare(r.row, w.row)) > 0 {
				winners[k] = r
			}
		}
		v.Files = append(v.Files, st)
		v.SourceRows += st.Rows
		v.SourceInserts += st.Inserts
		v.SourceUpdates += st.Updates
		v.SourceDeletes += st.Deletes
	}
	v.Keys = len(winners)
	var written []dedupeRow
	tombstones := 0
	for k, w := range winners {
		switch w.op {
		case merge.Insert:
			v.WinInserts++
		case merge.Update:
			v.WinUpdates++
		case merge.Delete:
			v.WinDeletes++
		}
		var live []dedupeRow
		for _, r := range c.existing {
			if !r.deleted && keyOf(r) == k {
				live = append(live, r)
			}
		}
		if len(c.opts.OrderBy) > 0 && slices.ContainsFunc(live, func(r dedupeRow) bool { return slices.Compare(orderOf(r), orderOf(w)) > 0 }) {
			v.Stale++
			continue
		}
		for _, r := range live {
			path := dedupeTablePaths[r.file]
			v.Deletes[path] = append(v.Deletes[path], int64(r.row))
			v.DeleteRows++
		}
		if w.op != merge.Delete {
			written = append(written, w)
		} else if len(c.opts.OrderBy) > 0 {
			tombstones++
		}
	}
	for _, ps := range v.Deletes {
		slices.Sort(ps)
	}
	slices.SortFunc(written, func(a, b dedupeRow) int { return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.row, b.row)) })
	for _, w := range written {
		v.Rows = append(v.Rows, w.render())
	}
	v.WriteRows = len(written)
	v.NumTombstones = tombstones
	return v
}

// checkOutOfOrder adds the files in listing order: the batch must take them
// while they are in source order and refuse the first one that is not.
func (c *dedupeCase) checkOutOfOrder(t *testing.T, listed []string, files map[string]*merge.File) {
	t.Helper()
	want := -1 // index of the first file out of order
	for i := 1; i < len(listed); i++ {
		if slices.Index(c.names, listed[i-1]) > slices.Index(c.names, listed[i]) {
			want = i
			break
		}
	}
	_, err := c.newBatch(t, listed, files)
	switch {
	case want < 0 && err != nil:
		t.Fatalf("Add in source order %q: %v", listed, err)
	case want >= 0 && err == nil:
		t.Fatalf("Add took %q, out of source order, without an error", listed)
	}
	if want >= 0 && !bytes.Contains([]byte(err.Error()), []byte(listed[want])) {
		t.Fatalf("Add of %q: error %q does not name %s, the first file out of order", listed, err, listed[want])
	}
}

// String describes the batch for a failure message.
func (c *dedupeCase) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "keys %v, order by %v, LOAD files with Op %v\n", c.opts.Keys, c.opts.OrderBy, c.loadOp)
	for _, r := range c.existing {
		fmt.Fprintf(&b, "  table %s@%d: %s deleted=%v\n", dedupeTablePaths[r.file], r.row, r.render(), r.deleted)
	}
	for fi, rows := range c.files {
		fmt.Fprintf(&b, "  %s:\n", c.names[fi])
		for _, r := range rows {
			fmt.Fprintf(&b, "    %s %s\n", cmp.Or(r.opText, "(no Op)"), r.render())
		}
	}
	return b.String()
}
