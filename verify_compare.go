package icemerge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/bits"
	"os"
	"slices"
)

// How `icemerge verify` compares two sides of tens of millions of rows in
// bounded memory, reading each side once:
//
// Both sides stream their rows at the same time. Each row's key is hashed
// into one of N buckets (a power of two, about 64 rows each); each bucket
// keeps a digest of its rows on that side: their count and two sums of
// 64-bit hashes of the rows' canonical encodings (sums, so the order rows
// arrive in does not matter). Each row also goes to a spill file on
// local disk: its key, its row hash, the source's order value. Buckets
// are grouped in P contiguous ranges, one spill file per range and side.
//
// When both sides are read, equal digests mean equal buckets (the chance
// that two different sets of rows share a count and two 64-bit sums is
// about 2^-128). Only the spill files of ranges holding a differing bucket
// are read back, one range at a time, and only the records of differing
// buckets are kept, by key: memory holds N digests and one range's
// differing records, never a side's rows. An equal table reads nothing
// back.

const (
	// rowsPerBucket: 64, not fewer, so that the digests of a table of
	// tens of millions of rows (24 bytes a bucket and side) stay near the
	// caches: at 16 a 10M-row table's were 24 MiB a side, and verify took
	// 4% more CPU. A differing bucket costs 64 records kept by key.
	rowsPerBucket = 64
	minBuckets    = 1 << 10
	maxBuckets    = 1 << 22
	// rowsPerPart bounds the records of one spill range, hence the memory
	// of comparing it when all its buckets differ.
	rowsPerPart = 1 << 19
	minParts    = 8
	maxParts    = 128
)

// Flags of a spill record.
const flagUnverifiable = 1

// digest is one side's digest of one bucket, its fields side by side so
// that adding a row touches one cache line, not three: on a table of
// millions the digests outgrow the caches.
type digest struct {
	s1, s2 uint64
	cnt    uint32
}

// digests are one side's bucket digests.
type digests []digest

func newDigests(n int) digests { return make(digests, n) }

// spill is one side's spill files, one per bucket range.
type spill struct {
	files []*os.File
	w     []*bufio.Writer
	bytes int64
}

func newSpill(dir, side string, parts int) (*spill, error) {
	s := &spill{}
	for range parts {
		f, err := os.CreateTemp(dir, "icemerge-verify-"+side+"-*")
		if err != nil {
			s.remove()
			return nil, fmt.Errorf("creating a spill file in %s: %w (set --temp-dir to a folder with room: about 25 bytes per row and side, more for long keys)", dir, err)
		}
		s.files = append(s.files, f)
		s.w = append(s.w, bufio.NewWriterSize(f, 32<<10))
	}
	return s, nil
}

func (s *spill) flush() error {
	for i, w := range s.w {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("writing spill file %s: %w", s.files[i].Name(), err)
		}
	}
	return nil
}

func (s *spill) remove() {
	for _, f := range s.files {
		f.Close()
		os.Remove(f.Name())
	}
}

// side is one side's state while it is read; only its goroutine touches
// it.
type side struct {
	d     digests
	spill *spill
	rows  int64
	rec   []byte
	err   error
	// pending are rows hashed but not yet added to their digests, by
	// range: a range's are added together when pendingRows have gathered,
	// so that the additions stay within the range's digests, which fit
	// the caches where all the digests do not (a 10M-row table's took 9%
	// of verify's CPU in cache misses, added one at a time).
	pending [][]pendingRow
}

// pendingRow is a row's digest contribution, not yet added.
type pendingRow struct {
	h1, h2 uint64
	b      uint32
}

const pendingRows = 2048

// addPending adds the pending rows of range p to the digests.
func (s *side) addPending(p int) {
	for _, r := range s.pending[p] {
		d := &s.d[r.b]
		d.cnt++
		d.s1 += r.h1
		d.s2 += r.h2
	}
	s.pending[p] = s.pending[p][:0]
}

// settle adds every pending row to the digests.
func (s *side) settle() {
	for p := range s.pending {
		s.addPending(p)
	}
}

// comparer holds both sides' digests and spill files.
type comparer struct {
	seedKey, seed1, seed2 maphash.Seed
	buckets               uint64
	shift                 uint // bucket >> shift is its range
	parts                 int
	table, source         side
}

// newComparer sizes the buckets and ranges for about rows rows a side.
func newComparer(rows int64, dir string) (*comparer, error) {
	nb := uint64(1) << bits.Len64(uint64(max(rows/rowsPerBucket, 1)))
	nb = min(max(nb, minBuckets), maxBuckets)
	parts := 1 << bits.Len64(uint64(max(rows/rowsPerPart, 1)))
	parts = min(max(parts, minParts), maxParts)
	c := &comparer{seedKey: maphash.MakeSeed(), seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		buckets: nb, parts: parts, shift: uint(bits.Len64(nb-1) - bits.Len64(uint64(parts-1)))}
	c.table.d, c.source.d = newDigests(int(nb)), newDigests(int(nb))
	c.table.pending, c.source.pending = make([][]pendingRow, parts), make([][]pendingRow, parts)
	var err error
	if c.table.spill, err = newSpill(dir, "table", parts); err != nil {
		return nil, err
	}
	if c.source.spill, err = newSpill(dir, "source", parts); err != nil {
		c.table.spill.remove()
		return nil, err
	}
	return c, nil
}

func (c *comparer) close() {
	c.table.spill.remove()
	c.source.spill.remove()
}

func (c *comparer) bucket(key []byte) uint64 { return maphash.Bytes(c.seedKey, key) & (c.buckets - 1) }

// add adds a row to side s: its key and row encodings, its order value
// (the source's), and flags.
func (c *comparer) add(s *side, key, row, order []byte, flags byte) error {
	b := c.bucket(key)
	var h1, h2 uint64
	if flags&flagUnverifiable != 0 {
		// No hash of a value that could not be mapped: a constant the
		// other side's row will not match, so the bucket is read back and
		// the flag seen.
		h1, h2 = 0x9e3779b97f4a7c15, 0xc2b2ae3d27d4eb4f
	} else {
		h1, h2 = maphash.Bytes(c.seed1, row), maphash.Bytes(c.seed2, row)
	}
	p := b >> c.shift
	if s.pending[p] == nil {
		s.pending[p] = make([]pendingRow, 0, pendingRows)
	}
	s.pending[p] = append(s.pending[p], pendingRow{h1: h1, h2: h2, b: uint32(b)})
	if len(s.pending[p]) == pendingRows {
		s.addPending(int(p))
	}
	s.rows++
	r := binary.AppendUvarint(s.rec[:0], uint64(len(key)))
	r = append(r, key...)
	r = binary.LittleEndian.AppendUint64(r, h1)
	r = append(r, flags)
	r = binary.AppendUvarint(r, uint64(len(order)))
	r = append(r, order...)
	s.rec = r
	s.spill.bytes += int64(len(r))
	if _, err := s.spill.w[p].Write(r); err != nil {
		return fmt.Errorf("writing a spill file: %w (set --temp-dir to a folder with room: about 25 bytes per row and side, more for long keys)", err)
	}
	return nil
}

// differing are the buckets whose digests differ, as a bit set, and how
// many.
func (c *comparer) differing() ([]uint64, int) {
	c.table.settle()
	c.source.settle()
	set := make([]uint64, (c.buckets+63)/64)
	n := 0
	t, s := c.table.d, c.source.d
	for b := range t {
		if t[b] != s[b] {
			set[b/64] |= 1 << (b % 64)
			n++
		}
	}
	return set, n
}

// record is one spill record read back.
type record struct {
	h     uint64
	flags byte
	order []byte
	n     int // how many records of the key the side holds
}

// readPart reads one side's spill file of range p and keeps the records
// of the buckets in diff, by key.
func (c *comparer) readPart(s *side, p int, diff []uint64) (map[string]*record, error) {
	f := s.spill.files[p]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading spill file %s: %w", f.Name(), err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	out := map[string]*record{}
	var key []byte
	for {
		kl, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading spill file %s: %w", f.Name(), err)
		}
		key = slices.Grow(key[:0], int(kl))[:kl]
		var fixed [9]byte
		if _, err := io.ReadFull(r, key); err != nil {
			return nil, fmt.Errorf("reading spill file %s: %w", f.Name(), err)
		}
		if _, err := io.ReadFull(r, fixed[:]); err != nil {
			return nil, fmt.Errorf("reading spill file %s: %w", f.Name(), err)
		}
		ol, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("reading spill file %s: %w", f.Name(), err)
		}
		b := c.bucket(key)
		if diff[b/64]&(1<<(b%64)) == 0 {
			if _, err := r.Discard(int(ol)); err != nil {
				return nil, fmt.Errorf("reading spill file %s: %w", f.Name(), err)
			}
			continue
		}
		order := make([]byte, ol)
		if _, err := io.ReadFull(r, order); err != nil {
			return nil, fmt.Errorf("reading spill file %s: %w", f.Name(), err)
		}
		if rec, ok := out[string(key)]; ok {
			rec.n++
			rec.flags |= fixed[8]
			continue
		}
		out[string(key)] = &record{h: binary.LittleEndian.Uint64(fixed[:8]), flags: fixed[8], order: order, n: 1}
	}
}

// Kinds of difference.
const (
	kindMissing      = iota // in the source, not in the table
	kindExtra               // in the table, not in the source
	kindDiffer              // in both, with other values
	kindLag                 // newer in the source than the newest change the table has applied
	kindDuplicate           // more than once in the table
	kindUnverifiable        // a source value DMS maps in a way not known, or a key the source holds more than once
	numKinds
)

var kindNames = [numKinds]string{"missing", "extra", "differ", "lag", "duplicate", "unverifiable"}

// found collects the keys of one kind: how many, and the smallest few.
type found struct {
	count int64
	keys  [][]byte // sorted, at most max
	max   int
}

func (f *found) add(key []byte) {
	f.count++
	if f.max <= 0 {
		return
	}
	if len(f.keys) == f.max && bytes.Compare(key, f.keys[len(f.keys)-1]) >= 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(f.keys, key, bytes.Compare)
	f.keys = slices.Insert(f.keys, i, bytes.Clone(key))
	if len(f.keys) > f.max {
		f.keys = f.keys[:f.max]
	}
}

// outcome is what the comparison found.
type outcome struct {
	kinds      [numKinds]found
	diffBucket int
	partsRead  int
	// write and remove are a repair's keys (collected when asked):
	// source rows to write, table rows to delete.
	write, remove map[string]struct{}
	repairKeys    int
}

// errTooManyToRepair stops collecting a repair's keys.
var errTooManyToRepair = errors.New("too many rows to repair")

// compare reads back the ranges holding differing buckets and classifies
// their keys. horizon is the table's newest order value (nil: no lag
// check); collect gathers a repair's keys, at most maxRepair.
func (c *comparer) compare(horizon []byte, maxKeys int, collect bool, maxRepair int) (*outcome, error) {
	out := &outcome{}
	for k := range out.kinds {
		out.kinds[k].max = maxKeys
	}
	if collect {
		out.write, out.remove = map[string]struct{}{}, map[string]struct{}{}
	}
	diff, n := c.differing()
	out.diffBucket = n
	if n == 0 {
		return out, nil
	}
	per := uint64(1) << c.shift
	var tooMany bool
	for p := range c.parts {
		any := false
		for b := uint64(p) * per; b < uint64(p+1)*per; b += 64 {
			if diff[b/64] != 0 {
				any = true
				break
			}
		}
		if !any {
			continue
		}
		out.partsRead++
		tbl, err := c.readPart(&c.table, p, diff)
		if err != nil {
			return nil, err
		}
		src, err := c.readPart(&c.source, p, diff)
		if err != nil {
			return nil, err
		}
		mark := func(kind int, key string, write, remove bool) {
			out.kinds[kind].add([]byte(key))
			if !collect || (!write && !remove) {
				return
			}
			if out.repairKeys >= maxRepair {
				tooMany = true
				return
			}
			out.repairKeys++
			if write {
				out.write[key] = struct{}{}
			}
			if remove {
				out.remove[key] = struct{}{}
			}
		}
		for key, s := range src {
			t := tbl[key]
			lag := horizon != nil && s.flags&flagUnverifiable == 0 && len(s.order) > 0 && bytes.Compare(s.order, horizon) > 0
			switch {
			case s.flags&flagUnverifiable != 0 || s.n > 1:
				mark(kindUnverifiable, key, false, false)
			case t == nil && lag, t != nil && t.n == 1 && t.h != s.h && lag:
				mark(kindLag, key, false, false)
			case t == nil:
				mark(kindMissing, key, true, false)
			case t.n > 1:
				mark(kindDuplicate, key, true, true)
			case t.h != s.h:
				mark(kindDiffer, key, true, true)
			}
		}
		for key, t := range tbl {
			if _, ok := src[key]; ok {
				continue
			}
			if t.n > 1 {
				mark(kindDuplicate, key, false, true)
			} else {
				mark(kindExtra, key, false, true)
			}
		}
	}
	if tooMany {
		return out, errTooManyToRepair
	}
	return out, nil
}
