package merge

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// LiveRows is the table a plan is matched against: it reads the live rows
// of the table's current snapshot that may hold the batch's keys. Package
// catalog implements it; a nil LiveRows is a table that does not exist yet.
type LiveRows interface {
	ScanLive(ctx context.Context, cols []string, rng *KeyRange, fn LiveRowsFunc) (ScanStats, error)
}

// LiveRowsFunc receives the live rows of one data file: cols holds the
// requested columns of rows firstPos… of the file at path; rows for which
// deleted reports true are deleted by the table's position deletes.
type LiveRowsFunc func(path string, cols []arrow.Array, firstPos int64, deleted func(int64) bool) error

// KeyRange bounds the values of one column (the first key column) that a
// scan looks for: data files and row groups whose statistics show no value
// in [Lo, Hi] may be skipped. Lo and Hi are int32, int64 or string, the
// column's type.
type KeyRange struct {
	Column string
	Lo, Hi any
}

// ScanStats says how much of the table a scan read.
type ScanStats struct {
	Files, FilesPruned         int   // data files read, and skipped by their bounds
	RowGroups, RowGroupsPruned int   // row groups read, and skipped by their statistics
	Bytes                      int64 // compressed bytes of the column chunks read
}

// Add adds another scan's figures.
func (s *ScanStats) Add(o ScanStats) {
	s.Files += o.Files
	s.FilesPruned += o.FilesPruned
	s.RowGroups += o.RowGroups
	s.RowGroupsPruned += o.RowGroupsPruned
	s.Bytes += o.Bytes
}

// Planner dedupes a run's files and matches them with the table's live rows:
// in one batch or, for a large run, one key-hash partition at a time,
// joining the partitions' plans. Plan may be called again after another
// writer's commit: it matches the same changes against the new snapshot,
// never reading a source object again to do so.
type Planner struct {
	schema     *arrow.Schema
	opts       Options
	files      []*File
	reload     Reload
	tombstones Tombstones
	parts      int
	split      int // batches per partition (PlannerOptions.Split)
	progress   func(done, total int)
}

// PlannerOptions configure a Planner beyond the batch's own Options.
type PlannerOptions struct {
	// PartitionRows: a run of more changes than this is planned in key-hash
	// partitions of about this many changes, one at a time, which bounds
	// the memory of the per-key entries (0: one partition).
	PartitionRows int
	// Reload reads a file's rows again when its winners are written (see
	// File.Shed); nil when every file keeps its rows.
	Reload Reload
	// Tombstones are keys deleted by earlier runs (nil: none).
	Tombstones Tombstones
	// Progress hears each partition planned (nil: nobody).
	Progress func(done, total int)
	// Split is how many batches each partition is built as, at once on as
	// many goroutines, each taking a share of the partition's keys from
	// every file; one scan of the table matches them all (0: two on a
	// machine of two cores or more for a partition of splitMin changes or
	// more, else one). Deduping is otherwise the one step of a run on one
	// core alone.
	Split int
}

// splitMin is the fewest changes a partition is split for by default.
const splitMin = 100_000

// PlanStats says where planning spent its time and what it read.
type PlanStats struct {
	Partitions     int
	Dedupe, Locate time.Duration
	Scan           ScanStats
}

// NewPlanner plans files, aligned to schema and in source order.
func NewPlanner(schema *arrow.Schema, o Options, files []*File, po PlannerOptions) *Planner {
	changes := Changes(files)
	pl := &Planner{
		schema: schema, opts: o, files: files, reload: po.Reload, tombstones: po.Tombstones,
		parts: partitions(changes, po.PartitionRows), progress: po.Progress, split: po.Split,
	}
	if pl.split <= 0 {
		pl.split = 1
		if runtime.GOMAXPROCS(0) > 1 && changes/pl.parts >= splitMin {
			pl.split = 2
		}
	}
	return pl
}

// Partitions is how many key-hash partitions the run is planned in.
func (pl *Planner) Partitions() int { return pl.parts }

// Changes counts the rows of the files.
func Changes(files []*File) int {
	n := 0
	for _, f := range files {
		n += f.Rows()
	}
	return n
}

// partitions is how many key-hash partitions a batch of rows changes is
// planned in.
func partitions(rows, perPart int) int {
	if perPart <= 0 || rows <= perPart {
		return 1
	}
	return (rows + perPart - 1) / perPart
}

// Plan plans the run against the table's current snapshot (live nil: a new
// table). In partitions, the files keep their key and order columns for
// every partition (and a re-plan), so planning never reads a source object
// again.
func (pl *Planner) Plan(ctx context.Context, live LiveRows) (*Plan, PlanStats, error) {
	st := PlanStats{Partitions: pl.parts}
	var total *Plan
	for part := range pl.parts {
		start := time.Now()
		// The batch (about 150 bytes per key) is dropped once planned:
		// writing needs only the plan, and a re-plan after a conflict
		// builds it again from the files' key and order columns.
		bs, err := pl.batches(part)
		if err != nil {
			return nil, st, err
		}
		located := time.Now()
		st.Dedupe += located.Sub(start)
		p, err := planAgainstAll(ctx, bs, live, &st.Scan)
		if err != nil {
			return nil, st, err
		}
		st.Locate += time.Since(located)
		if total == nil {
			total = p
		} else if err := total.Absorb(p); err != nil {
			return nil, st, err
		}
		if pl.parts > 1 && pl.progress != nil {
			pl.progress(part+1, pl.parts)
		}
	}
	return total, st, nil
}

// batch dedupes the files' changes of one partition.
func (pl *Planner) batch(part int) (*Batch, error) {
	return pl.batchOf(part, pl.parts)
}

// batches dedupes the files' changes of one partition as pl.split
// batches, built at once: batch j takes the keys of partition
// part+j*parts of parts*split, which together are partition part of parts
// ((h>>32) mod parts*split is part+j*parts exactly when (h>>32) mod parts
// is part). Their errors are the same (every check comes before a key's
// partition is looked at): the first is returned.
func (pl *Planner) batches(part int) ([]*Batch, error) {
	if pl.split <= 1 {
		b, err := pl.batch(part)
		return []*Batch{b}, err
	}
	bs := make([]*Batch, pl.split)
	errs := make([]error, pl.split)
	var wg sync.WaitGroup
	for j := range pl.split {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs[j], errs[j] = pl.batchOf(part+j*pl.parts, pl.parts*pl.split)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return bs, nil
}

// batchOf dedupes the files' changes of partition part of parts.
func (pl *Planner) batchOf(part, parts int) (*Batch, error) {
	b, err := NewBatch(pl.schema, pl.opts)
	if err != nil {
		return nil, err
	}
	if err := b.SetPartition(part, parts); err != nil {
		return nil, err
	}
	b.SetReload(pl.reload)
	b.SetTombstones(pl.tombstones)
	// A partition holds about its share of the changes' keys, at most:
	// sized up front, the entries are not copied as they grow.
	n := Changes(pl.files)
	b.reserve(n/parts + n/parts/16)
	for _, f := range pl.files {
		if err := b.Add(f); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// planAgainst matches the batch with the live rows of the table and plans
// it. Its scan's figures add to scan.
func planAgainst(ctx context.Context, batch *Batch, live LiveRows, scan *ScanStats) (*Plan, error) {
	return planAgainstAll(ctx, []*Batch{batch}, live, scan)
}

// planAgainstAll is planAgainst for the batches of one partition
// (Planner.batches), matched in one scan of the table and their plans
// joined. Each batch saw every file's keys, so their key ranges are the
// same.
func planAgainstAll(ctx context.Context, batches []*Batch, live LiveRows, scan *ScanStats) (*Plan, error) {
	for _, b := range batches {
		b.ResetExisting()
	}
	if live != nil {
		first := batches[0]
		keys, order := first.KeyColumns(), first.OrderColumns()
		cols := append(slices.Clone(keys), order...)
		nk := len(keys)
		var rng *KeyRange
		if col, lo, hi, ok := first.KeyRange(); ok {
			rng = &KeyRange{Column: col, Lo: lo, Hi: hi}
		}
		st, err := live.ScanLive(ctx, cols, rng, func(path string, arrs []arrow.Array, pos int64, deleted func(int64) bool) error {
			if len(arrs) != len(cols) {
				return fmt.Errorf("merge: the table's scan returned %d columns, want %d", len(arrs), len(cols))
			}
			if len(batches) == 1 {
				return batches[0].MatchExisting(path, arrs[:nk], arrs[nk:], pos, deleted)
			}
			// Each batch on its own goroutine: they share only what they read.
			errs := make([]error, len(batches))
			var wg sync.WaitGroup
			for i, b := range batches {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = b.MatchExisting(path, arrs[:nk], arrs[nk:], pos, deleted)
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		})
		scan.Add(st)
		if err != nil {
			return nil, err
		}
	}
	p := batches[0].Plan()
	for _, b := range batches[1:] {
		if err := p.Absorb(b.Plan()); err != nil {
			return nil, err
		}
	}
	return p, nil
}
