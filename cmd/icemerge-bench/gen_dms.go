package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
)

// dmsVersion is part of the DMS shape's cache keys: bump it when its data
// changes, so cached files of an older generator are not reused.
const dmsVersion = "dms1"

// The DMS shape: the S3 endpoint settings of the pipeline icemerge serves
// (CompressionType=GZIP, ParquetVersion=parquet-1-0, RowGroupLength 10,000,
// DataPageSize and DictPageSizeLimit 1 MiB, EnableStatistics, dictionary
// encoding on) and CdcMinFileSize 32 MB.
const (
	dmsRowGroupRows = 10_000
	dmsPageBytes    = 1 << 20
	dmsCDCFileBytes = 32 << 20
	// dmsTSStep is the commit-time step between two changes: 10,000
	// changes a second, so a 32 MB file (about 300k changes) fills before
	// DMS's CdcMaxBatchInterval (60 s) would cut it.
	dmsTSStep = int64(100 * time.Microsecond / time.Microsecond)
	// dmsFlushDelay is how long after the commit of its last change a CDC
	// file is named: DMS names a file by when it writes it.
	dmsFlushDelay = int64(700 * time.Millisecond / time.Microsecond)
	// calibrationRows are written (to nowhere) to learn a batch's bytes
	// per row, which sets the rows of a file of the cut size.
	calibrationRows = 50_000
)

// dmsWriterProps are DMS's Parquet settings. The length limit of a
// dictionary is 1 MiB (DictPageSizeLimit): a column chunk whose dictionary
// outgrows it goes on in PLAIN, as parquet-cpp does (the bio column, 200
// bytes of text a row, does so in every row group).
func dmsWriterProps() *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Gzip),
		parquet.WithDictionaryDefault(true),
		parquet.WithDictionaryPageSizeLimit(dmsPageBytes),
		parquet.WithMaxRowGroupLength(dmsRowGroupRows),
		parquet.WithDataPageSize(dmsPageBytes),
		parquet.WithVersion(parquet.V1_0),
		parquet.WithDataPageVersion(parquet.DataPageV1),
		parquet.WithStats(true),
		parquet.WithCreatedBy("icemerge-bench (DMS shape: GZIP, parquet-1-0, 10,000-row row groups)"),
	)
}

func (p genParams) cdcFileBytes() int64 {
	if p.FileBytes == 0 {
		return dmsCDCFileBytes
	}
	return p.FileBytes
}

// fileBytesTag names a cut size in a cache key: 32m, 1m, 512k, all.
func fileBytesTag(n int64) string {
	switch {
	case n < 0:
		return "all"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "m"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// dmsChange is one change of the DMS-shaped stream: the row image it
// carries is (created, ts, variant) of key, variant 0 being the key's
// full-load image.
type dmsChange struct {
	op      byte
	key     int32
	ts      int64 // updated_at as written
	created int64
	variant uint64 // 0: the full-load image; else the image made by change variant-1 of the stream
	txEnd   bool   // the last change of its transaction
}

// dmsCommit is the commit time (µs) of change i (0-based) of the stream.
func dmsCommit(i int) int64 { return cdcEpoch + int64(i)*dmsTSStep }

// keyState is what the stream knows of a key it changed.
type keyState struct {
	ts, created int64
	variant     uint64
	op          byte
	batch       int32
}

// dmsStream makes the changes of every DMS-shaped batch of one seed and
// spread, in commit order: batch b is changes [(b-1)·Changes, b·Changes)
// of one stream, so a later batch deletes and updates rows as earlier
// batches left them. Changes come in transactions (60 % of one change,
// the rest of 2 to 10), clipped at batch ends so that every batch, and
// every file, holds whole transactions.
//
// The mix is the legacy generator's (20 % I of new keys, 70 % U, 10 % D;
// an eighth of the U and D repeat a key changed shortly before, 30 % of
// those U with the previous updated_at), with what DMS does besides:
//   - a D row carries the row's last image (MySQL binlog_row_image=FULL):
//     its updated_at and every other column are those of the key's
//     previous change, or of its full-load row;
//   - a U or D drawn for a key deleted earlier re-creates it as an I, since
//     no source updates or deletes a row that is gone.
//
// So a key's updated_at never goes back in commit order, and no change is
// older than the table row it replaces.
type dmsStream struct {
	p    genParams
	r    *rand.Rand
	last map[int32]keyState
	ring [recentKeys]int32
	ri   int
	next int32 // the next new key
	n    int   // changes made
	tx   int   // changes left in the current transaction
	hot  int
}

func newDMSStream(p genParams) *dmsStream {
	sp := uint64(0)
	if p.Spread == spreadClustered {
		sp = 1
	}
	return &dmsStream{p: p, r: rand.New(rand.NewPCG(p.Seed, 0xd350000+sp)), last: map[int32]keyState{},
		next: int32(p.Rows + 1), hot: hotKeys(p.Rows)}
}

// dmsStreamID tells the images of the stream's changes from the
// full-load rows' (stream 0) in rowGroup.add.
const dmsStreamID = uint64(0xd35) << 48

func (s *dmsStream) pick() int32 {
	if s.p.Spread == spreadClustered {
		return int32(s.p.Rows - s.hot + 1 + s.r.IntN(s.hot))
	}
	return int32(1 + s.r.IntN(max(s.p.Rows, 1)))
}

// change makes the next change, in batch b.
func (s *dmsStream) change(b int32, st *genStats) dmsChange {
	i := s.n
	s.n++
	commit := dmsCommit(i)
	if s.tx == 0 {
		s.tx = 1
		if s.r.IntN(10) >= 6 {
			s.tx = 2 + s.r.IntN(9)
		}
		// Clip at the batch's end: batches hold whole transactions.
		s.tx = min(s.tx, int(b)*s.p.Changes-i)
		if st != nil {
			st.Transactions++
		}
	}
	s.tx--
	c := dmsChange{ts: commit, created: commit, variant: uint64(i) + 1, txEnd: s.tx == 0}
	x := s.r.IntN(100)
	switch {
	case x < 20:
		c.op, c.key = 'I', s.next
		s.next++
	default:
		c.op = 'U'
		if x >= 90 {
			c.op = 'D'
		}
		repeated := false
		if s.ri > 0 && s.r.IntN(8) == 0 {
			for range 4 {
				k := s.ring[s.r.IntN(min(s.ri, recentKeys))]
				if s.last[k].op != 'D' {
					c.key, repeated = k, true
					break
				}
			}
		}
		if !repeated {
			c.key = s.pick()
		}
		prev, changed := s.last[c.key]
		switch {
		case changed && prev.op == 'D':
			c.op = 'I' // re-created
			if st != nil {
				st.Reinserts++
			}
		case c.op == 'D' && changed:
			c.ts, c.created, c.variant = prev.ts, prev.created, prev.variant
		case c.op == 'D':
			c.ts, c.created, c.variant = baseUpdated(s.p.Seed, int(c.key), s.p.Rows), baseCreated(int(c.key), s.p.Rows), 0
		case changed:
			c.created = prev.created
			if repeated && s.r.IntN(10) < 3 {
				c.ts = prev.ts
			}
		default:
			c.created = baseCreated(int(c.key), s.p.Rows)
		}
		if st != nil && changed && prev.batch == b {
			st.Repeats++
			if c.ts == prev.ts {
				st.EqualTS++
			}
		}
	}
	s.ring[s.ri%recentKeys] = c.key
	s.ri++
	s.last[c.key] = keyState{ts: c.ts, created: c.created, variant: c.variant, op: c.op, batch: b}
	return c
}

// dmsBatch makes the changes of batch b (1-based) of p, running the stream
// through the batches before it.
func dmsBatch(p genParams, b int, st *genStats) []dmsChange {
	s := newDMSStream(p)
	for bb := 1; bb < b; bb++ {
		for range p.Changes {
			s.change(int32(bb), nil)
		}
	}
	out := make([]dmsChange, p.Changes)
	for i := range out {
		out[i] = s.change(int32(b), st)
	}
	return out
}

// fillDMS adds changes[lo+from : lo+to] to g.
func fillDMS(p genParams, changes []dmsChange, lo int) func(g *rowGroup, from, to int) {
	return func(g *rowGroup, from, to int) {
		for _, c := range changes[lo+from : lo+to] {
			stream := dmsStreamID
			if c.variant == 0 {
				stream = 0 // the full-load image
			}
			g.add(p.Seed, stream, c.op, c.key, c.created, c.ts, c.variant)
		}
	}
}

// countWriter counts the bytes of a file written to nowhere.
type countWriter struct{ n int64 }

func (w *countWriter) Write(b []byte) (int, error) { w.n += int64(len(b)); return len(b), nil }
func (w *countWriter) Close() error                { return nil }

// bytesPerRow writes the first calibrationRows changes of changes as one
// file to nowhere and returns its size per row.
func bytesPerRow(p genParams, changes []dmsChange, pool []byte) (float64, error) {
	n := min(len(changes), calibrationRows)
	var w countWriter
	if err := writeRows(&w, p.format(), cdcSchema, n, pool, fillDMS(p, changes, 0)); err != nil {
		return 0, err
	}
	return float64(w.n) / float64(n), nil
}

// cutFiles splits changes into files of about rowsPerFile rows: file k
// ends at the first transaction end at or after (k+1)·rowsPerFile (so
// files hold whole transactions and the error does not add up). It returns
// the files' ends.
func cutFiles(changes []dmsChange, rowsPerFile int) []int {
	var ends []int
	next := rowsPerFile
	for i, c := range changes {
		if i+1 >= next && c.txEnd && i+1 < len(changes) {
			ends = append(ends, i+1)
			next = (len(ends) + 1) * rowsPerFile
		}
	}
	return append(ends, len(changes))
}

// genBatchDMS writes DMS-shaped CDC batch b of p, unless the cache has it:
// files of about p.cdcFileBytes() (CdcMinFileSize; -1: one file), each
// holding whole transactions in commit order, named
// YYYYMMDD-HHMMSSmmm.parquet after the time they would be written,
// increasing.
//
// DMS cuts a file once it has reached CdcMinFileSize. The generator learns
// the bytes per row from the batch's first rows and cuts every file at the
// same row count, rounded up to a transaction end, so that the files can
// be written in parallel; the data is uniform, so their sizes differ by a
// few per cent (genStats has the smallest and largest).
func genBatchDMS(work string, p genParams, b int) (*genStats, error) {
	dir := batchDir(work, p, b)
	if s, ok := readStats(dir); ok {
		return s, nil
	}
	if p.Changes < 1 {
		return nil, errors.New("a CDC batch needs at least one change")
	}
	start := time.Now()
	if err := freshDir(dir); err != nil {
		return nil, err
	}
	pool := bioPool(p.Seed)
	s := &genStats{Rows: p.Changes}
	changes := dmsBatch(p, b, s)
	ends := []int{len(changes)}
	if target := p.cdcFileBytes(); target > 0 {
		bpr, err := bytesPerRow(p, changes, pool)
		if err != nil {
			return nil, fmt.Errorf("calibrating the file size: %w", err)
		}
		ends = cutFiles(changes, max(1, int(float64(target)/bpr)))
	}
	names := make([]string, len(ends))
	prev := int64(0)
	for i, end := range ends {
		t := dmsCommit((b-1)*p.Changes+end-1) + dmsFlushDelay
		t = max(t, prev+1000) // a millisecond apart at least: names increase
		names[i], prev = cdcName(t), t
	}
	sizes := make([]int64, len(ends))
	err := parallel(len(ends), func(i int) error {
		lo := 0
		if i > 0 {
			lo = ends[i-1]
		}
		var err error
		sizes[i], err = writeParquet(filepath.Join(dir, names[i]), p.format(), cdcSchema, ends[i]-lo, pool, fillDMS(p, changes, lo))
		return err
	})
	if err != nil {
		return nil, err
	}
	distinct := make(map[int32]struct{}, p.Changes)
	for _, c := range changes {
		switch c.op {
		case 'I':
			s.Inserts++
		case 'U':
			s.Updates++
		case 'D':
			s.Deletes++
		}
		distinct[c.key] = struct{}{}
	}
	s.Keys = len(distinct)
	for i, n := range names {
		s.Files = append(s.Files, n)
		s.addFile(sizes[i])
	}
	s.Seconds = time.Since(start).Seconds()
	return s, writeStats(dir, s)
}

// smallFilesChanges is how many changes make nfiles DMS-shaped files of
// about size bytes (the rows of batch 1 of p, uniform): learnt from the
// bytes per row of the stream's first rows.
func smallFilesChanges(p genParams, nfiles int, size int64) (int, error) {
	p.Changes, p.Spread = calibrationRows, spreadUniform
	bpr, err := bytesPerRow(p, dmsBatch(p, 1, nil), bioPool(p.Seed))
	if err != nil {
		return 0, err
	}
	return nfiles * max(1, int(float64(size)/bpr)), nil
}

var _ io.WriteCloser = (*countWriter)(nil)
