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

// FuzzDedupe: the changes derived from the input, applied in one run or
// two, give in each run the plan a plain model of the rules predicts,
// however the files are encoded, partitioned and listed. The seeds run
// under plain go test.
func FuzzDedupe(f *testing.F) {
	for _, seed := range dedupeSeeds {
		f.Add(seed)
	}
	f.Fuzz(checkDedupe)
}

// Random batches for go test, beyond the hand-made seeds.
func TestDedupeRandomBatches(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	n := 300
	if testing.Short() {
		n = 30
	}
	for i := range n {
		data := make([]byte, 5+r.IntN(4+3*dedupeMaxRows))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		t.Run(strconv.Itoa(i), func(t *testing.T) { checkDedupe(t, data) })
	}
}

// The seeds, readable; dedupeSpec.bytes encodes each as decodeDedupe reads it.
// In dedupeSpecRow.op, "D!" is a key-only delete (every column but the key
// null) and "U<2b" an update whose before-image key is (2, "b").
var dedupeSeeds = [][]byte{
	{},
	dedupeSpec{ // same order value in one file: the later row wins; delete, then re-insert
		orderBy: 1, cdc: 1,
		changes: []dedupeSpecRow{{0, "U", 1, "a", 1, 0}, {0, "U", 1, "a", 1, 0}, {0, "D", 2, "a", 1, 0}, {0, "I", 2, "a", 1, 0}},
	}.bytes(),
	dedupeSpec{ // a newer order value beats a later row; a null is ordered by source order
		orderBy: 1, cdc: 1,
		changes: []dedupeSpecRow{{0, "U", 1, "a", 2, 0}, {0, "U", 1, "a", 0, 0}, {0, "U", 2, "a", 1, 0}, {0, "U", 2, "a", -1, 0}, {0, "U", 2, "a", 0, 0}},
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
	dedupeSpec{ // the key-only deletes, in two runs: the LOAD, then a CDC file
		// deleting 1 and 2 by key, updating then deleting 3 by key, deleting
		// 0 by key and re-inserting it older than its loaded row
		orderBy: 2, load: 1, loadOp: true, cdc: 1, runs: 0x01,
		changes: []dedupeSpecRow{
			{0, "I", 0, "a", 0, 1}, {0, "I", 1, "a", 0, 1}, {0, "I", 2, "a", 0, 1}, {0, "I", 3, "a", 0, 1},
			{1, "D!", 1, "a", 0, 0}, {1, "D!", 2, "a", 0, 0}, {1, "U", 3, "a", 0, 2}, {1, "D!", 3, "a", 0, 0},
			{1, "D!", 0, "a", 0, 0}, {1, "I", 0, "a", 0, 0},
		},
	}.bytes(),
	dedupeSpec{ // key-only deletes in the first run; in the second, late changes
		// older than the deleted rows stay out, one as new comes back
		orderBy: 2, cdc: 3, runs: 0x05,
		table: []dedupeSpecRow{{0, "", 1, "a", 0, 2}, {0, "", 2, "a", 0, 1}, {0, "", 3, "a", 0, 1}},
		changes: []dedupeSpecRow{
			{0, "D!", 1, "a", 0, 0}, {0, "U", 3, "a", 0, 2}, {0, "D!", 3, "a", 0, 0}, {2, "D!", 2, "a", 0, 0},
			{1, "U", 1, "a", 0, 1}, {1, "U", 2, "a", 0, 1}, {1, "U", 3, "a", 0, 1}, {1, "I", 0, "a", 0, 2},
		},
	}.bytes(),
	dedupeSpec{ // before images: a chain of key changes 1→2→3 in one batch, a
		// change back 0→1 after it, a key change older than the table's row
		// of the old key, lowercase prefix
		composite: true, orderBy: 2, cdc: 2, bi: true, biLower: true,
		table: []dedupeSpecRow{{0, "", 1, "a", 0, 0}, {0, "", 0, "b", 0, 2}},
		changes: []dedupeSpecRow{
			{0, "U<1a", 2, "a", 0, 1}, {0, "U<2a", 3, "a", 0, 1}, {1, "U<0a", 1, "a", 0, 2}, {1, "U<0b", 0, "a", 0, 1},
			{1, "U", 3, "a", 0, 2}, {1, "D", 2, "a", 0, 2},
		},
	}.bytes(),
	dedupeSpec{ // before images across runs: 1→2 in the first, 2→3 and a
		// key-only delete in the second; LOAD files with and without them
		orderBy: 2, load: 2, loadOp: true, cdc: 2, bi: true, runs: 0x07,
		changes: []dedupeSpecRow{
			{0, "I", 1, "a", 0, 0}, {1, "I", 0, "a", 0, 0}, {2, "U<1a", 2, "a", 0, 1}, {3, "U<2a", 3, "a", 0, 2}, {3, "D!", 0, "a", 0, 0},
		},
	}.bytes(),
}

// dedupeSpec describes a seed of FuzzDedupe.
type dedupeSpec struct {
	composite    bool // key (k1, k2), not k1
	orderBy      int  // index into dedupeOrders
	loadOp       bool // LOAD files have an Op column
	bi, biLower  bool // CDC files have BI_ columns; the prefix is given as "bi_"
	loadNoBI     bool // LOAD files lack them
	load, cdc    int  // how many of dedupeLoads and dedupeCDCs
	variant      byte // row groups and compression of the variant encoding, listing shuffle
	runs         byte // the files (bit i: file i) applied in the first run
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
	for bit, on := range []bool{s.composite, false, false, s.loadOp, s.bi, s.biLower, s.loadNoBI} {
		if on {
			cfg |= 1 << bit
		}
	}
	nex := byte(len(s.table))
	if s.firstDeleted {
		nex |= 0x80
	}
	b := []byte{cfg, byte(s.load + 3*s.cdc), s.variant, nex, s.runs}
	key := func(k1 int, k2 string) byte {
		k := byte(k1)
		if k2 == "b" {
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
		b = append(b, key(r.k1, r.k2), order(r))
	}
	for _, r := range s.changes {
		op := byte(r.file) | byte(strings.IndexByte("IUD", strings.ToUpper(r.op)[0]))<<4
		if r.op[:1] == strings.ToLower(r.op[:1]) {
			op |= 0x40
		}
		k := key(r.k1, r.k2)
		switch {
		case r.op[1:] == "!":
			op |= 0x80
		case strings.HasPrefix(r.op[1:], "<"):
			op |= 0x80
			k |= key(int(r.op[2]-'0'), r.op[3:]) << 3
		}
		b = append(b, op, k, order(r))
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

// dedupeBICols follow the table's columns in a file with before images, as
// DMS's add-before-image-columns writes them.
var dedupeBICols = []dmstest.Column{{Name: "BI_k1", Type: dmstest.Int32}, {Name: "BI_k2", Type: dmstest.String}}

// dedupeRow is one change, or one row of the table.
type dedupeRow struct {
	op      merge.Op
	opText  string // as written to the file: I, u, ...
	k1      int32
	k2      string
	v       string // unique per change: f<file>r<row>; "" is a null (key-only delete)
	n, ts   int    // ts in seconds after dedupeT0
	nNull   bool
	tsNull  bool
	keyOnly bool // a delete of the key alone: v, n and ts are null
	// A U of a file with before images: the key before the update.
	oldK1 int32
	oldK2 string
	file  int // source order of its file; for table rows, the index in dedupeTablePaths
	row   int // row in its file; for table rows, the position
	// deleted: a table row deleted by a position delete.
	deleted bool
}

type dedupeCase struct {
	opts      merge.Options
	loadOp    bool     // LOAD files have an Op column
	bi        bool     // CDC files have before-image columns
	loadNoBI  bool     // LOAD files do not
	names     []string // files in source order
	files     [][]dedupeRow
	runs      [][]int // the files of each run, by index in names
	existing  []dedupeRow
	rowGroup  int    // rows per row group of the variant encoding
	codec     string // compression of the variant encoding
	shuffleBy uint64
}

// The table's data files: two before the first run, one the first run writes.
var dedupeTablePaths = []string{"data/00000-a.parquet", "data/00001-b.parquet", "data/00002-c.parquet"}

// dedupeFirstPos is where the rows of each table data file start.
var dedupeFirstPos = []int64{0, 7, 0}

// decodeDedupe derives one or two runs from arbitrary bytes; missing bytes
// are 0. The bytes are, in order:
//
//	config     bit 0: key (k1, k2), else k1; bits 1-2: dedupeOrders index;
//	           bit 3: LOAD files have an Op column; bit 4: files have
//	           before-image columns BI_k1, BI_k2; bit 5: the prefix is given
//	           as "bi_", else left to the default; bit 6: LOAD files lack them
//	counts     LOAD files counts%3, CDC files counts/3%4 (at least one file)
//	variant    rows per row group 1+variant%3, bit 2: snappy, else gzip;
//	           seeds the listing shuffle
//	table      bits 0-2: number of table rows; bit 7: the first is deleted
//	runs       bit i: file i is applied in the first run, the others in a
//	           second (one run if that leaves either empty)
//	then 2 bytes per table row (key, order) and 3 per change (op, key,
//	order), at most dedupeMaxRows changes:
//	op         bits 0-2: file index mod the file count; bits 4-5: I, U, D, I;
//	           bit 6: written in lowercase; bit 7: a D is key-only, a U's
//	           before image is the old key of the key byte
//	key        bits 0-1: k1; bit 2: k2 "b", else "a"; bits 3-5: the same
//	           for the old key
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
	cfg, counts, variant, nex, runs := next(), next(), next(), next(), next()
	c := &dedupeCase{
		opts:      merge.Options{Keys: dedupeKeys[cfg&1], OrderBy: dedupeOrders[(cfg>>1)%4]},
		loadOp:    cfg&8 != 0,
		bi:        cfg&0x10 != 0,
		loadNoBI:  cfg&0x40 != 0,
		rowGroup:  1 + int(variant%3),
		codec:     []string{"gzip", "snappy"}[(variant>>2)&1],
		shuffleBy: uint64(variant),
	}
	if cfg&0x20 != 0 {
		c.opts.BeforeImagePrefix = "bi_"
	}
	nLoad, nCDC := int(counts%3), int(counts/3%4)
	if nLoad+nCDC == 0 {
		nCDC = 1
	}
	c.names = append(slices.Clone(dedupeLoads[:nLoad]), dedupeCDCs[:nCDC]...)
	c.files = make([][]dedupeRow, len(c.names))
	var first, second []int
	for i := range c.names {
		if runs&(1<<i) != 0 {
			first = append(first, i)
		} else {
			second = append(second, i)
		}
	}
	c.runs = [][]int{first, second}
	if len(first) == 0 || len(second) == 0 {
		c.runs = [][]int{append(first, second...)}
	}
	order := func(r *dedupeRow, b byte) {
		r.n, r.nNull = int(b&3), b&3 == 3
		r.ts, r.tsNull = int(b>>2&3), b>>2&3 == 3
	}
	key := func(b byte) (int32, string) {
		return int32(b % 4), []string{"a", "b"}[(b>>2)&1]
	}
	for i := range int(nex % 8) {
		r := dedupeRow{file: i % 2, deleted: nex&0x80 != 0 && i == 0}
		kb, ob := next(), next()
		r.k1, r.k2 = key(kb)
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
		r.k1, r.k2 = key(kb)
		r.oldK1, r.oldK2 = r.k1, r.k2
		order(&r, ob)
		r.v = fmt.Sprintf("f%dr%d", fi, r.row)
		if a&0x80 != 0 {
			switch r.op {
			case merge.Delete:
				r.keyOnly, r.v, r.nNull, r.tsNull = true, "", true, true
			case merge.Update:
				r.oldK1, r.oldK2 = key(kb >> 3)
			}
		}
		c.files[fi] = append(c.files[fi], r)
	}
	// Table rows sit at consecutive positions of their data file.
	pos := slices.Clone(dedupeFirstPos)
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

// hasBI reports whether file fi carries before-image columns.
func (c *dedupeCase) hasBI(fi int) bool {
	return c.bi && !(c.loadNoBI && source.Classify(c.names[fi]) == merge.FullLoad)
}

// before is the before-image key DMS writes in a row: null in an insert
// and in a full-load file, the old key in an update, the key in a delete.
func (c *dedupeCase) before(r dedupeRow) (k1, k2 any) {
	if r.op == merge.Insert || source.Classify(c.names[r.file]) == merge.FullLoad {
		return nil, nil
	}
	if r.op == merge.Update {
		return r.oldK1, r.oldK2
	}
	return r.k1, r.k2
}

// dedupeView is what a plan does, as a test observes it.
type dedupeView struct {
	Files                                                   []merge.FileStats
	SourceRows, SourceInserts, SourceUpdates, SourceDeletes int
	Keys, WinInserts, WinUpdates, WinDeletes, Stale         int
	KeyChanges                                              int
	Deletes                                                 map[string][]int64
	DeleteRows, WriteRows                                   int
	Rows                                                    []string          // the rows written, in order
	NumTombstones                                           int               // after the run
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

// dedupeRun is one run: its files and the table and tombstones it meets.
type dedupeRun struct {
	n     int      // 1 or 2
	names []string // its files, in source order
	table []dedupeRow
	tombs merge.Tombstones
}

func checkDedupe(t *testing.T, data []byte) {
	c := decodeDedupe(data)
	// Each encoding is read once: the batches share its files, which they
	// only read.
	canonical := c.encode(t, dmstest.Options{Compression: "none"})
	variant := c.encode(t, dmstest.Options{RowGroupRows: c.rowGroup, Compression: c.codec})
	table := c.existing
	var tombs merge.Tombstones
	modelTombs := map[string][]int{}
	for i, files := range c.runs {
		run := dedupeRun{n: i + 1, table: table, tombs: tombs}
		for _, fi := range files {
			run.names = append(run.names, c.names[fi])
		}
		plan, want := c.build(t, run, run.names, canonical)

		// The plan is the one the rules predict.
		model, nextTombs := c.model(files, table, modelTombs)
		if !reflect.DeepEqual(want.opaque(), model) {
			t.Fatalf("%s\nrun %d: the plan differs from the model:%s", c, run.n, dedupeDiff(want.opaque(), model))
		}
		// Other row groups and compression: the same plan.
		if _, got := c.build(t, run, run.names, variant); !reflect.DeepEqual(want, got) {
			t.Fatalf("%s\nrun %d encoded with %d rows per row group, %s, the plan differs:%s", c, run.n, c.rowGroup, c.codec, dedupeDiff(got, want))
		}
		// In key-hash partitions, one batch at a time: the same plan.
		parts := 2 + int(c.shuffleBy%5)
		if got := c.buildParts(t, run, canonical, parts); !reflect.DeepEqual(want, got) {
			t.Fatalf("%s\nrun %d planned in %d partitions, the plan differs:%s", c, run.n, parts, dedupeDiff(got, want))
		}
		c.checkListing(t, run, canonical, want)

		table, tombs, modelTombs = dedupeApply(t, table, want), plan.NextTombstones(tombs), nextTombs
	}
}

// checkListing: a shuffled listing of the run's files sorts to source
// order and gives the same plan; added unsorted, the batch refuses the
// first file out of source order.
func (c *dedupeCase) checkListing(t *testing.T, run dedupeRun, files map[string]*merge.File, want dedupeView) {
	t.Helper()
	var listing []source.Object
	for i, k := range append(slices.Clone(run.names), dedupeJunk...) {
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
	if !slices.Equal(sorted, run.names) {
		t.Fatalf("SortObjects(%q) = %q, want %q", shuffled, sorted, run.names)
	}
	if _, got := c.build(t, run, sorted, files); !reflect.DeepEqual(want, got) {
		t.Fatalf("%s\nrun %d after SortObjects, the plan differs:%s", c, run.n, dedupeDiff(got, want))
	}
	c.checkOutOfOrder(t, run, shuffled, files)
}

// dedupeApply is the table after a run: its rows minus those the plan
// deletes, plus those it writes, in a new data file.
func dedupeApply(t *testing.T, table []dedupeRow, v dedupeView) []dedupeRow {
	t.Helper()
	var out []dedupeRow
	for _, r := range table {
		if slices.Contains(v.Deletes[dedupeTablePaths[r.file]], int64(r.row)) {
			r.deleted = true
		}
		out = append(out, r)
	}
	for pos, s := range v.Rows {
		r := parseDedupeRow(t, s)
		r.file, r.row = 2, pos
		out = append(out, r)
	}
	return out
}

// encode writes every file of the batch with the given layout, reads it
// back, and takes out its before images.
func (c *dedupeCase) encode(t *testing.T, o dmstest.Options) map[string]*merge.File {
	t.Helper()
	out := map[string]*merge.File{}
	for fi, name := range c.names {
		o.Op = c.loadOp || source.Classify(name) != merge.FullLoad
		cols := dedupeCols
		if c.hasBI(fi) {
			cols = append(slices.Clone(dedupeCols), dedupeBICols...)
		}
		var ops []string
		var rows []dmstest.Row
		for _, r := range c.files[fi] {
			ops = append(ops, r.opText)
			row := dmstest.Row{r.k1, r.k2, dedupeNullable(r.v == "", r.v), dedupeNullable(r.nNull, int64(r.n)),
				dedupeNullable(r.tsNull, dedupeT0.Add(time.Duration(r.ts)*time.Second))}
			if c.hasBI(fi) {
				k1, k2 := c.before(r)
				row = append(row, k1, k2)
			}
			rows = append(rows, row)
		}
		var buf bytes.Buffer
		if err := dmstest.Write(&buf, cols, ops, rows, o); err != nil {
			t.Fatal(err)
		}
		f := read(t, name, buf.Bytes())
		if err := f.SplitBeforeImage(c.opts); err != nil {
			t.Fatalf("%s\nSplitBeforeImage(%s): %v", c, name, err)
		}
		out[name] = f
	}
	return out
}

func dedupeNullable(null bool, v any) any {
	if null {
		return nil
	}
	return v
}

// newPartition adds the files in the given order to a new batch for
// partition part of parts; it stops at the first error of Add.
func (c *dedupeCase) newPartition(t *testing.T, run dedupeRun, order []string, files map[string]*merge.File, part, parts int) (*merge.Batch, error) {
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
			b.SetTombstones(run.tombs)
		}
		if err := b.Add(f); err != nil {
			return b, err
		}
	}
	return b, nil
}

// checkDedupeSchema fails the test if the stored types are not the ones the
// test builds table rows and reads plans with: no before-image column is
// left.
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
func (c *dedupeCase) build(t *testing.T, run dedupeRun, order []string, files map[string]*merge.File) (*merge.Plan, dedupeView) {
	t.Helper()
	b, err := c.newPartition(t, run, order, files, 0, 1)
	if err != nil {
		t.Fatalf("%s\nrun %d: Add in order %q: %v", c, run.n, order, err)
	}
	c.matchExisting(t, b, run.table)
	p := b.Plan()
	return p, observeDedupe(t, p, run.tombs)
}

// buildParts plans the batch in parts key-hash partitions, a batch each,
// and joins their plans, as a run too large for one batch does.
func (c *dedupeCase) buildParts(t *testing.T, run dedupeRun, files map[string]*merge.File, parts int) dedupeView {
	t.Helper()
	var total *merge.Plan
	for part := range parts {
		b, err := c.newPartition(t, run, run.names, files, part, parts)
		if err != nil {
			t.Fatalf("%s\nrun %d: Add, partition %d of %d: %v", c, run.n, part, parts, err)
		}
		c.matchExisting(t, b, run.table)
		if p := b.Plan(); total == nil {
			total = p
		} else if err := total.Absorb(p); err != nil {
			t.Fatal(err)
		}
	}
	return observeDedupe(t, total, run.tombs)
}

// matchExisting reports the table rows, one MatchExisting call per data file.
func (c *dedupeCase) matchExisting(t *testing.T, b *merge.Batch, table []dedupeRow) {
	t.Helper()
	mem := memory.DefaultAllocator
	for fi, path := range dedupeTablePaths {
		k1 := array.NewInt32Builder(mem)
		k2 := array.NewStringBuilder(mem)
		n := array.NewInt64Builder(mem)
		ts := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"})
		deleted := map[int64]bool{}
		for _, r := range table {
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

func observeDedupe(t *testing.T, p *merge.Plan, prev merge.Tombstones) dedupeView {
	t.Helper()
	v := dedupeView{
		Files:      p.Files,
		SourceRows: p.SourceRows, SourceInserts: p.SourceInserts, SourceUpdates: p.SourceUpdates, SourceDeletes: p.SourceDeletes,
		Keys: p.Keys, WinInserts: p.WinInserts, WinUpdates: p.WinUpdates, WinDeletes: p.WinDeletes, Stale: p.Stale,
		KeyChanges: p.KeyChanges, Deletes: map[string][]int64{}, DeleteRows: p.DeleteRows, WriteRows: p.WriteRows,
		Tombstones: map[string]string{},
	}
	for path, ps := range p.Deletes {
		if len(ps) > 0 {
			v.Deletes[path] = slices.Clone(ps)
		}
	}
	for k, o := range p.NextTombstones(prev) {
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
	if rec.NumCols() != int64(len(dedupeCols)) {
		t.Fatalf("plan record %s: want the table's %d columns", rec.Schema(), len(dedupeCols))
	}
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
	n, ts, v := strconv.Itoa(r.n), strconv.Itoa(r.ts), cmp.Or(r.v, "null")
	if r.nNull {
		n = "null"
	}
	if r.tsNull {
		ts = "null"
	}
	return fmt.Sprintf("%d|%s|%s|%s|%s", r.k1, r.k2, v, n, ts)
}

// parseDedupeRow reads what render printed.
func parseDedupeRow(t *testing.T, s string) dedupeRow {
	t.Helper()
	f := strings.Split(s, "|")
	num := func(s string) (int, bool) {
		if s == "null" {
			return 0, true
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("row %q: %v", s, err)
		}
		return n, false
	}
	k1, _ := num(f[0])
	r := dedupeRow{k1: int32(k1), k2: f[1], v: f[2]}
	if r.v == "null" {
		r.v = ""
	}
	r.n, r.nNull = num(f[3])
	r.ts, r.tsNull = num(f[4])
	return r
}

// The model, one run at a time. Per key, the changes apply in source
// order: an update with a before-image key other than its key is first a
// delete of that key. A change with an order value replaces the key's
// winner if it is at least as new; a change with a null in an order column
// replaces it whatever, and so does any change after such a change. Then
// against the table, with order columns: a winner that is or follows a
// null-ordered change of its key takes effect; another is stale if a live
// row of its key has a greater order value, or, no row being live, the
// key's tombstone has. A winner taking effect deletes the key's live rows
// and an I or U winner writes exactly its row and forgets the key's
// tombstone; a D winner's tombstone becomes the greatest order value of
// the key's changes and live rows, if one has any, or the older tombstone
// if greater. Without order columns, every winner takes effect.
func (c *dedupeCase) model(runFiles []int, table []dedupeRow, tombs map[string][]int) (dedupeView, map[string][]int) {
	v := dedupeView{Deletes: map[string][]int64{}}
	ordered := len(c.opts.OrderBy) > 0
	keyOf := func(k1 int32, k2 string) string {
		if len(c.opts.Keys) == 2 {
			return fmt.Sprintf("%d/%s", k1, k2)
		}
		return strconv.Itoa(int(k1))
	}
	// Order tuples as (null, value) pairs, null true if any column is.
	orderOf := func(r dedupeRow) ([]int, bool) {
		var o []int
		null := false
		for _, col := range c.opts.OrderBy {
			isNull, val := r.nNull, r.n
			if col == "ts" {
				isNull, val = r.tsNull, r.ts
			}
			null = null || isNull
			o = append(o, val)
		}
		return o, null
	}
	type state struct {
		w        dedupeRow
		anchored bool  // w is or follows a null-ordered change
		max      []int // the greatest order value of the key's changes, nil if none has one
	}
	keys := map[string]*state{}
	var keyOrder []string
	fold := func(k string, ch dedupeRow) {
		o, null := orderOf(ch)
		s, ok := keys[k]
		if !ok {
			s = &state{w: ch, anchored: null}
			keys[k] = s
			keyOrder = append(keyOrder, k)
		} else {
			wo, wnull := orderOf(s.w)
			switch {
			case null:
				s.w, s.anchored = ch, true
			case wnull, slices.Compare(o, wo) >= 0:
				s.w = ch
			}
		}
		if !null && (s.max == nil || slices.Compare(o, s.max) > 0) {
			s.max = o
		}
	}
	for _, fi := range runFiles {
		rows := c.files[fi]
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
			if r.op == merge.Update && c.hasBI(fi) && source.Classify(c.names[fi]) == merge.CDC && keyOf(r.oldK1, r.oldK2) != keyOf(r.k1, r.k2) {
				del := r
				del.op, del.k1, del.k2 = merge.Delete, r.oldK1, r.oldK2
				fold(keyOf(r.oldK1, r.oldK2), del)
				v.KeyChanges++
			}
			fold(keyOf(r.k1, r.k2), r)
		}
		v.Files = append(v.Files, st)
		v.SourceRows += st.Rows
		v.SourceInserts += st.Inserts
		v.SourceUpdates += st.Updates
		v.SourceDeletes += st.Deletes
	}
	v.Keys = len(keys)
	next := map[string][]int{}
	for k, o := range tombs {
		next[k] = o
	}
	var written []dedupeRow
	for _, k := range keyOrder {
		s := keys[k]
		w := s.w
		switch w.op {
		case merge.Insert:
			v.WinInserts++
		case merge.Update:
			v.WinUpdates++
		case merge.Delete:
			v.WinDeletes++
		}
		var live []dedupeRow
		var exMax []int
		for _, r := range table {
			if !r.deleted && keyOf(r.k1, r.k2) == k {
				live = append(live, r)
				if o, null := orderOf(r); !null && (exMax == nil || slices.Compare(o, exMax) > 0) {
					exMax = o
				}
			}
		}
		wo, _ := orderOf(w)
		tomb, hasTomb := tombs[k]
		if ordered && !s.anchored && (exMax != nil && slices.Compare(exMax, wo) > 0 ||
			len(live) == 0 && hasTomb && slices.Compare(tomb, wo) > 0) {
			v.Stale++
			continue
		}
		for _, r := range live {
			path := dedupeTablePaths[r.file]
			v.Deletes[path] = append(v.Deletes[path], int64(r.row))
			v.DeleteRows++
		}
		switch {
		case !ordered:
		case w.op != merge.Delete:
			delete(next, k)
		default:
			known := s.max
			if exMax != nil && (known == nil || slices.Compare(exMax, known) > 0) {
				known = exMax
			}
			if known != nil && (!hasTomb || slices.Compare(known, tomb) > 0) {
				next[k] = known
			}
		}
		if w.op != merge.Delete {
			written = append(written, w)
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
	v.NumTombstones = len(next)
	return v, next
}

// checkOutOfOrder adds the files in listing order: the batch must take them
// while they are in source order and refuse the first one that is not.
func (c *dedupeCase) checkOutOfOrder(t *testing.T, run dedupeRun, listed []string, files map[string]*merge.File) {
	t.Helper()
	want := -1 // index of the first file out of order
	for i := 1; i < len(listed); i++ {
		if slices.Index(run.names, listed[i-1]) > slices.Index(run.names, listed[i]) {
			want = i
			break
		}
	}
	_, err := c.newPartition(t, run, listed, files, 0, 1)
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
	fmt.Fprintf(&b, "keys %v, order by %v, LOAD files with Op %v, before images %v (LOAD files too: %v, prefix %q)\n",
		c.opts.Keys, c.opts.OrderBy, c.loadOp, c.bi, !c.loadNoBI, c.opts.BeforeImagePrefix)
	for _, r := range c.existing {
		fmt.Fprintf(&b, "  table %s@%d: %s deleted=%v\n", dedupeTablePaths[r.file], r.row, r.render(), r.deleted)
	}
	for n, files := range c.runs {
		fmt.Fprintf(&b, "  run %d:\n", n+1)
		for _, fi := range files {
			fmt.Fprintf(&b, "  %s:\n", c.names[fi])
			for _, r := range c.files[fi] {
				extra := ""
				if r.keyOnly {
					extra = " (key only)"
				}
				if c.hasBI(fi) {
					k1, k2 := c.before(r)
					extra += fmt.Sprintf(" BI %v|%v", k1, k2)
				}
				fmt.Fprintf(&b, "    %s %s%s\n", cmp.Or(r.opText, "(no Op)"), r.render(), extra)
			}
		}
	}
	return b.String()
}
