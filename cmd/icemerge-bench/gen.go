package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/s2"
)

// legacyVersion is part of the cache keys of the legacy shape: bump it when
// its data changes, so cached files of an older generator are not reused
// (dmsVersion, in gen_dms.go, is the DMS shape's).
const legacyVersion = "v1"

// The legacy shape's files (-shape legacy): the bench's data before it
// followed DMS's Parquet settings.
const (
	loadFileRows = 1_000_000 // rows per LOAD file (both shapes)
	cdcFileRows  = 250_000   // rows per CDC file (about 27 MB with snappy)
	rowGroupRows = 128 * 1024
	bioLen       = 200
	// tsStep is the updated_at step between consecutive changes of a batch.
	tsStep = int64(time.Millisecond / time.Microsecond)
)

// Spreads of the changed keys.
const (
	spreadUniform   = "uniform"   // U/D keys uniform over 1..rows
	spreadClustered = "clustered" // U/D keys in the hotKeys(rows) greatest keys of 1..rows (recent users)
)

// maxHotKeys caps the keys a clustered batch changes: the top 2% of a table
// up to 10M rows, then the same 200k keys, so that a bigger table gets the
// same batch and the bench measures what the table's size costs alone.
const maxHotKeys = 200_000

// hotKeys is how many of the greatest keys a clustered batch changes.
func hotKeys(rows int) int { return max(1, min(rows/50, maxHotKeys)) }

// The timeline: users are created from baseEpoch to loadEnd; CDC batches
// start at cdcEpoch.
var (
	baseEpoch = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	loadEnd   = time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	cdcEpoch  = time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC).UnixMicro()
)

var (
	tsType  = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"} // isAdjustedToUTC=true, like MySQL TIMESTAMP
	decType = &arrow.Decimal128Type{Precision: 12, Scale: 2}

	userFields = []arrow.Field{
		{Name: "user_id", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "first_name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "last_name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "email", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "created_at", Type: tsType, Nullable: true},
		{Name: "updated_at", Type: tsType, Nullable: true},
		{Name: "balance", Type: decType, Nullable: true},
		{Name: "bio", Type: arrow.BinaryTypes.String, Nullable: true},
	}
	// loadSchema has no Op column: DMS's default full load.
	loadSchema = arrow.NewSchema(userFields, nil)
	cdcSchema  = arrow.NewSchema(append([]arrow.Field{{Name: "Op", Type: arrow.BinaryTypes.String, Nullable: true}}, userFields...), nil)
)

var firstNames = strings.Fields(`James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth
	William Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy
	Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua
	Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa Timothy Deborah Zoë Søren José Chloé`)

var lastNames = strings.Fields(`Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez
	Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White
	Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
	Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Müller Łukasiewicz 佐藤`)

var lowerFirst, lowerLast = lower(firstNames), lower(lastNames)

func lower(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}

var bioWords = strings.Fields(`lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod
	tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation
	ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit
	esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia
	deserunt mollit anim id est laborum hiking coffee travel photography music cooking reading running
	chess gardening climbing cycling painting yoga 🙂 café naïve`)

// Shapes of the generated files.
const (
	shapeDMS    = "dms"    // as DMS writes them (gen_dms.go): the default
	shapeLegacy = "legacy" // the bench's earlier files: snappy, 128Ki-row row groups, LOAD files without Op
)

// genParams are what generated data depends on; every field is in the
// cache key.
type genParams struct {
	Seed    uint64
	Rows    int    // base table rows, keys 1..Rows
	Changes int    // rows per CDC batch
	Spread  string // spreadUniform or spreadClustered
	Shape   string // shapeDMS or shapeLegacy ("" is shapeDMS)
	// FileBytes is the size a DMS-shaped CDC file is cut at (0:
	// dmsCDCFileBytes; -1: one file per batch). Not used by the legacy shape.
	FileBytes int64
}

func (p genParams) dms() bool { return p.Shape != shapeLegacy }

func (p genParams) version() string {
	if p.dms() {
		return dmsVersion
	}
	return legacyVersion
}

// baseDir is the cache folder of the LOAD files of p.
func baseDir(work string, p genParams) string {
	return filepath.Join(work, "data", fmt.Sprintf("base-%s-s%d-r%d", p.version(), p.Seed, p.Rows))
}

// batchDir is the cache folder of CDC batch b (1-based) of p.
func batchDir(work string, p genParams, b int) string {
	spread := p.Spread
	if spread == spreadClustered {
		spread += fmt.Sprintf("-hot%d", hotKeys(p.Rows))
	}
	if p.dms() {
		spread += "-f" + fileBytesTag(p.cdcFileBytes())
	}
	return filepath.Join(work, "data", fmt.Sprintf("cdc-%s-s%d-r%d-c%d-%s", p.version(), p.Seed, p.Rows, p.Changes, spread), fmt.Sprintf("batch-%04d", b))
}

// doneFile marks a cache folder complete; it is written last.
const doneFile = "stats.json"

// genStats describe one generated folder.
type genStats struct {
	Files   []string `json:"files"`
	Bytes   int64    `json:"bytes"`
	Rows    int      `json:"rows"`
	Inserts int      `json:"inserts"`
	Updates int      `json:"updates"`
	Deletes int      `json:"deletes"`
	Keys    int      `json:"distinct_keys"`
	Repeats int      `json:"repeats"`  // changes of a key already changed earlier in the batch
	EqualTS int      `json:"equal_ts"` // of those, with the updated_at of the key's previous change
	// Reinserts are I rows of a key deleted earlier (DMS shape: a U or D
	// drawn for a deleted key re-creates it instead).
	Reinserts int `json:"reinserts,omitempty"`
	// Transactions of the DMS shape; every file holds whole ones.
	Transactions int `json:"transactions,omitempty"`
	// The smallest and largest file.
	MinFileBytes int64   `json:"min_file_bytes,omitempty"`
	MaxFileBytes int64   `json:"max_file_bytes,omitempty"`
	Seconds      float64 `json:"seconds"` // generation time
	Cached       bool    `json:"cached"`  // found in the cache (set when read back)
	Location     string  `json:"dir"`
}

func (s *genStats) addFile(size int64) {
	if len(s.Files) == 1 || size < s.MinFileBytes {
		s.MinFileBytes = size
	}
	s.MaxFileBytes = max(s.MaxFileBytes, size)
	s.Bytes += size
}

func readStats(dir string) (*genStats, bool) {
	b, err := os.ReadFile(filepath.Join(dir, doneFile))
	if err != nil {
		return nil, false
	}
	var s genStats
	if json.Unmarshal(b, &s) != nil {
		return nil, false
	}
	s.Cached, s.Location = true, dir
	return &s, true
}

func writeStats(dir string, s *genStats) error {
	s.Location = dir
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, doneFile), b, 0o644)
}

// loadName is the name DMS gives full-load file i (1-based): a hex counter.
func loadName(i int) string { return fmt.Sprintf("LOAD%08X.parquet", i) }

// cdcName is the name DMS gives a CDC file written at t (µs).
func cdcName(t int64) string {
	tm := time.UnixMicro(t).UTC()
	return fmt.Sprintf("%s%03d.parquet", tm.Format("20060102-150405"), tm.Nanosecond()/1e6)
}

// mix is splitmix64: per-key values that do not depend on generation order.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// baseCreated and baseUpdated are the timestamps of key k's full-load row.
func baseCreated(k, rows int) int64 {
	return baseEpoch + int64(float64(loadEnd-baseEpoch)*float64(k-1)/float64(max(rows, 1)))
}

func baseUpdated(seed uint64, k, rows int) int64 {
	const month = int64(30 * 24 * time.Hour / time.Microsecond)
	return min(baseCreated(k, rows)+int64(mix(seed^uint64(k)<<1)%uint64(month)), cdcEpoch-1)
}

// bioPool is text that bios are cut from: words, so it compresses about as
// well as real text.
func bioPool(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0xb10))
	var b []byte
	for len(b) < 1<<20 {
		b = append(b, bioWords[r.IntN(len(bioWords))]...)
		b = append(b, ' ')
	}
	return b
}

// strCol is a string column being built: offsets and bytes.
type strCol struct {
	off  []int32
	data []byte
}

func newStrCol(n, avg int) strCol {
	return strCol{off: append(make([]int32, 0, n+1), 0), data: make([]byte, 0, n*avg)}
}

func (s *strCol) end() { s.off = append(s.off, int32(len(s.data))) }

func (s *strCol) array() arrow.Array {
	n := len(s.off) - 1
	d := array.NewData(arrow.BinaryTypes.String, n, []*memory.Buffer{nil,
		memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(s.off)), memory.NewBufferBytes(s.data)}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func fixedArray(dt arrow.DataType, n int, b []byte) arrow.Array {
	d := array.NewData(dt, n, []*memory.Buffer{nil, memory.NewBufferBytes(b)}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// rowGroup is one row group of generated rows, built column by column.
type rowGroup struct {
	op                      strCol
	id                      []int32
	first, last, email, bio strCol
	created, updated        []int64
	balance                 []decimal128.Num
	pool                    []byte
	withOp                  bool
}

func newRowGroup(n int, withOp bool, pool []byte) *rowGroup {
	g := &rowGroup{
		id: make([]int32, 0, n), created: make([]int64, 0, n), updated: make([]int64, 0, n),
		balance: make([]decimal128.Num, 0, n), first: newStrCol(n, 7), last: newStrCol(n, 7),
		email: newStrCol(n, 32), bio: newStrCol(n, bioLen), pool: pool, withOp: withOp,
	}
	if withOp {
		g.op = newStrCol(n, 1)
	}
	return g
}

// add appends one user row. variant 0 is the full-load image of the key;
// a change's variant (its 1-based index in the batch) changes the last name
// sometimes, the email, the balance and the bio. The first name depends on
// seed and key only; stream tells the batches apart.
func (g *rowGroup) add(seed, stream uint64, op byte, key int32, created, updated int64, variant uint64) {
	h := mix(seed ^ uint64(key))
	var r rand.PCG
	r.Seed(h^stream, variant)
	if g.withOp {
		g.op.data = append(g.op.data, op)
		g.op.end()
	}
	g.id = append(g.id, key)
	fi := h % uint64(len(firstNames))
	g.first.data = append(g.first.data, firstNames[fi]...)
	g.first.end()
	li := (h >> 20) % uint64(len(lastNames))
	if variant != 0 && r.Uint64()%4 == 0 {
		li = r.Uint64() % uint64(len(lastNames))
	}
	g.last.data = append(g.last.data, lastNames[li]...)
	g.last.end()
	e := append(g.email.data, lowerFirst[fi]...)
	e = append(e, '.')
	e = append(e, lowerLast[li]...)
	e = strconv.AppendInt(e, int64(key), 10)
	if variant != 0 {
		e = append(e, '+')
		e = strconv.AppendUint(e, variant, 36)
	}
	g.email.data = append(e, "@example.com"...)
	g.email.end()
	g.created = append(g.created, created)
	g.updated = append(g.updated, updated)
	g.balance = append(g.balance, decimal128.FromI64(int64(r.Uint64()%1_000_000_000)))
	b := append(g.bio.data, "user "...)
	b = strconv.AppendInt(b, int64(key), 10)
	b = append(b, ": "...)
	need := bioLen - (len(b) - len(g.bio.data))
	// Start after a space and end on a whole character: valid UTF-8,
	// exactly bioLen bytes.
	off := int(r.Uint64() % uint64(len(g.pool)-2*bioLen))
	for g.pool[off] != ' ' {
		off++
	}
	piece := g.pool[off+1 : off+1+need]
	cut := len(piece)
	for cut > 0 && !utf8.FullRune(piece[lastRuneStart(piece[:cut]):cut]) {
		cut = lastRuneStart(piece[:cut])
	}
	b = append(b, piece[:cut]...)
	for range need - cut {
		b = append(b, '.')
	}
	g.bio.data = b
	g.bio.end()
}

// lastRuneStart is the index where the last (maybe partial) UTF-8
// character of b starts.
func lastRuneStart(b []byte) int {
	i := len(b) - 1
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return max(i, 0)
}

func (g *rowGroup) record() arrow.RecordBatch {
	n := len(g.id)
	cols := []arrow.Array{
		fixedArray(arrow.PrimitiveTypes.Int32, n, arrow.Int32Traits.CastToBytes(g.id)),
		g.first.array(), g.last.array(), g.email.array(),
		fixedArray(tsType, n, arrow.Int64Traits.CastToBytes(g.created)),
		fixedArray(tsType, n, arrow.Int64Traits.CastToBytes(g.updated)),
		fixedArray(decType, n, arrow.Decimal128Traits.CastToBytes(g.balance)),
		g.bio.array(),
	}
	sc := loadSchema
	if g.withOp {
		cols = append([]arrow.Array{g.op.array()}, cols...)
		sc = cdcSchema
	}
	rec := array.NewRecordBatch(sc, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// legacyWriterProps are the legacy shape's: snappy, no dictionary for the
// unique columns, Parquet 1.0 data pages, statistics.
func legacyWriterProps() *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithDictionaryDefault(false),
		parquet.WithDictionaryFor("Op", true),
		parquet.WithDictionaryFor("first_name", true),
		parquet.WithDictionaryFor("last_name", true),
		parquet.WithMaxRowGroupLength(rowGroupRows),
		parquet.WithDataPageSize(1<<20),
		parquet.WithVersion(parquet.V1_0),
		parquet.WithDataPageVersion(parquet.DataPageV1),
		parquet.WithStats(true),
		parquet.WithCreatedBy("icemerge-bench (DMS-like)"),
	)
}

// fileFormat is how a shape writes its Parquet files.
type fileFormat struct {
	props     func() *parquet.WriterProperties
	groupRows int // rows per row group
}

func (p genParams) format() fileFormat {
	if p.dms() {
		return fileFormat{dmsWriterProps, dmsRowGroupRows}
	}
	return fileFormat{legacyWriterProps, rowGroupRows}
}

// writeParquet writes n rows, row group by row group, to path (through a
// temporary name, so a crash leaves no half file under the final name).
func writeParquet(path string, ff fileFormat, sc *arrow.Schema, n int, pool []byte, fill func(g *rowGroup, from, to int)) (int64, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	if err := writeRows(f, ff, sc, n, pool, fill); err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return 0, err
	}
	return st.Size(), os.Rename(tmp, path)
}

// writeRows writes n rows as one Parquet file to w and closes w.
func writeRows(w io.WriteCloser, ff fileFormat, sc *arrow.Schema, n int, pool []byte, fill func(g *rowGroup, from, to int)) error {
	fw, err := pqarrow.NewFileWriter(sc, w, ff.props(), pqarrow.DefaultWriterProps())
	if err != nil {
		w.Close()
		return err
	}
	for from := 0; from < n; from += ff.groupRows {
		to := min(from+ff.groupRows, n)
		g := newRowGroup(to-from, sc == cdcSchema, pool)
		fill(g, from, to)
		rec := g.record()
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			fw.Close()
			return err
		}
	}
	return fw.Close() // closes w too
}

// parallel runs jobs 0..n-1 on GOMAXPROCS workers and returns the first error.
func parallel(n int, job func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range min(runtime.GOMAXPROCS(0), max(n, 1)) {
		wg.Go(func() {
			for i := range next {
				if err := job(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// freshDir empties dir, creating it when missing.
func freshDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clearing %s for the generated data: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s for the generated data: %w", dir, err)
	}
	return nil
}

// genBase writes the full load of p (keys 1..p.Rows) as LOAD files, unless
// the cache has it. The DMS shape's LOAD files have an Op column (I), as
// with IncludeOpForFullLoad=true; the legacy shape's have none.
func genBase(work string, p genParams) (*genStats, error) {
	dir := baseDir(work, p)
	if s, ok := readStats(dir); ok {
		return s, nil
	}
	start := time.Now()
	if err := freshDir(dir); err != nil {
		return nil, err
	}
	pool := bioPool(p.Seed)
	sc := loadSchema
	if p.dms() {
		sc = cdcSchema
	}
	nfiles := (p.Rows + loadFileRows - 1) / loadFileRows
	sizes := make([]int64, nfiles)
	err := parallel(nfiles, func(i int) error {
		lo := i*loadFileRows + 1 // first key of the file
		n := min(loadFileRows, p.Rows-lo+1)
		var err error
		sizes[i], err = writeParquet(filepath.Join(dir, loadName(i+1)), p.format(), sc, n, pool, func(g *rowGroup, from, to int) {
			for j := from; j < to; j++ {
				k := lo + j
				g.add(p.Seed, 0, 'I', int32(k), baseCreated(k, p.Rows), baseUpdated(p.Seed, k, p.Rows), 0)
			}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &genStats{Rows: p.Rows, Inserts: p.Rows, Keys: p.Rows}
	for i, sz := range sizes {
		s.Files = append(s.Files, loadName(i+1))
		s.addFile(sz)
	}
	s.Seconds = time.Since(start).Seconds()
	return s, writeStats(dir, s)
}

// changeSeq is one CDC batch before it is written: op, key and updated_at
// of every change, in source order.
type changeSeq struct {
	ops     []byte
	keys    []int32
	ts      []int64
	repeats int
	equalTS int
}

// recentKeys is how many of the latest changed keys a repeat picks from.
const recentKeys = 4096

// genChanges makes CDC batch b (1-based) of p: 20% I (new keys above the
// base table and earlier batches), 70% U, 10% D. An eighth of the U and D
// (10% of all changes) hit a key changed shortly before in the same batch;
// 30% of those repeated U, and every repeated D (a DMS delete carries the
// row's last image), have the updated_at of that previous change, so only
// source order tells them apart. Other U and D keys follow the spread, over
// the base keys 1..Rows. updated_at grows by tsStep per change.
func genChanges(p genParams, b int) *changeSeq {
	r := rand.New(rand.NewPCG(p.Seed, 0xcdc0000+uint64(b)))
	s := &changeSeq{ops: make([]byte, p.Changes), keys: make([]int32, p.Changes), ts: make([]int64, p.Changes)}
	type change struct {
		ts int64
		op byte
	}
	last := make(map[int32]change, p.Changes)
	var ring [recentKeys]int32
	ringN := 0
	next := int32(p.Rows + (b-1)*p.Changes + 1)
	t0 := cdcEpochOf(p, b)
	hot := hotKeys(p.Rows)
	pick := func() int32 {
		if p.Spread == spreadClustered {
			return int32(p.Rows - hot + 1 + r.IntN(hot))
		}
		return int32(1 + r.IntN(max(p.Rows, 1)))
	}
	for i := range p.Changes {
		ts := t0 + int64(i)*tsStep
		var op byte
		var key int32
		switch x := r.IntN(100); {
		case x < 20:
			op, key = 'I', next
			next++
		default:
			op = 'U'
			if x >= 90 {
				op = 'D'
			}
			repeated := false
			if ringN > 0 && r.IntN(8) == 0 {
				for range 4 {
					k := ring[r.IntN(min(ringN, recentKeys))]
					if last[k].op != 'D' {
						key, repeated = k, true
						break
					}
				}
			}
			if !repeated {
				key = pick()
			} else {
				s.repeats++
				if op == 'D' || r.IntN(10) < 3 {
					ts = last[key].ts
					s.equalTS++
				}
			}
		}
		s.ops[i], s.keys[i], s.ts[i] = op, key, ts
		ring[ringN%recentKeys] = key
		ringN++
		last[key] = change{ts, op}
	}
	return s
}

// genBatch writes CDC batch b of p, unless the cache has it: the DMS shape
// cut by size into whole transactions (genBatchDMS), the legacy shape into
// files of cdcFileRows rows.
func genBatch(work string, p genParams, b int) (*genStats, error) {
	if p.dms() {
		return genBatchDMS(work, p, b)
	}
	dir := batchDir(work, p, b)
	if s, ok := readStats(dir); ok {
		return s, nil
	}
	start := time.Now()
	if err := freshDir(dir); err != nil {
		return nil, err
	}
	pool := bioPool(p.Seed)
	seq := genChanges(p, b)
	nfiles := (p.Changes + cdcFileRows - 1) / cdcFileRows
	names := make([]string, nfiles)
	sizes := make([]int64, nfiles)
	err := parallel(nfiles, func(i int) error {
		lo, hi := i*cdcFileRows, min((i+1)*cdcFileRows, p.Changes)
		// Named after the time of its last change, as DMS names a file
		// when it closes it.
		names[i] = cdcName(cdcEpochOf(p, b) + int64(hi-1)*tsStep + 1000*tsStep)
		var err error
		sizes[i], err = writeParquet(filepath.Join(dir, names[i]), p.format(), cdcSchema, hi-lo, pool, func(g *rowGroup, from, to int) {
			for j := lo + from; j < lo+to; j++ {
				k := int(seq.keys[j])
				created := cdcEpoch
				if k <= p.Rows {
					created = baseCreated(k, p.Rows)
				}
				if seq.ops[j] == 'I' {
					created = seq.ts[j]
				}
				g.add(p.Seed, uint64(b)<<48, seq.ops[j], seq.keys[j], created, seq.ts[j], uint64(j+1))
			}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &genStats{Rows: p.Changes, Repeats: seq.repeats, EqualTS: seq.equalTS}
	distinct := make(map[int32]struct{}, p.Changes)
	for i, op := range seq.ops {
		switch op {
		case 'I':
			s.Inserts++
		case 'U':
			s.Updates++
		case 'D':
			s.Deletes++
		}
		distinct[seq.keys[i]] = struct{}{}
	}
	s.Keys = len(distinct)
	for i, n := range names {
		s.Files = append(s.Files, n)
		s.addFile(sizes[i])
	}
	s.Seconds = time.Since(start).Seconds()
	return s, writeStats(dir, s)
}

// cdcEpochOf is the updated_at of the first change of batch b.
func cdcEpochOf(p genParams, b int) int64 {
	return cdcEpoch + int64(b-1)*(int64(p.Changes)*tsStep+int64(time.Hour/time.Microsecond))
}

// fastSnappy is arrow-go's snappy codec with klauspost's fast snappy
// encoder instead of its "better" one, which takes half the generation
// time; the output is ordinary snappy, as DMS writes.
type fastSnappy struct{ compress.Codec }

func (fastSnappy) Encode(dst, src []byte) []byte             { return s2.EncodeSnappy(dst, src) }
func (fastSnappy) EncodeLevel(dst, src []byte, _ int) []byte { return s2.EncodeSnappy(dst, src) }
func (c fastSnappy) DecodeWithError(dst, src []byte) ([]byte, error) {
	return compress.Decode(c.Codec, dst, src)
}

func init() {
	// Before any goroutine writes: the codec registry is a plain map.
	if c, err := compress.GetCodec(compress.Codecs.Snappy); err == nil {
		compress.RegisterCodec(compress.Codecs.Snappy, fastSnappy{c})
	}
}
