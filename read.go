package icemerge

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// readWorkers is how many source objects are read at once: decoding is
// CPU-bound, one core per file.
const readWorkers = 2

// readFiles reads the objects, readWorkers at a time, and returns them in
// source order. Errors are handled in source order too, so the first bad
// object in source order is the one a failing run names.
// Files whose decoded rows fit in cache bytes (in all) are kept whole, so
// writing their winners need not read them again; the others keep only the
// keep columns. Each object is read as listed (pinned to its listing's
// version) and pins records the version read, by key, for the second read.
func readFiles(ctx context.Context, src Source, objs []source.Object, mo merge.Options, cache int64, bad *badFiles, pins map[string]source.Version, progress func(done int)) ([]*merge.File, error) {
	keep := mo.KeyColumns()
	type result struct {
		f   *merge.File
		v   source.Version
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan result, len(objs))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	next := make(chan int)
	var cached atomic.Int64
	var wg sync.WaitGroup
	for range min(readWorkers, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// A file whose rows (as its footer sizes them) fit what is
				// left of the cache is kept whole; the others keep their key
				// and order columns only, dropping the rest a row group at a
				// time as they are read and checked.
				var est int64
				whole := func(size int64) func(string) bool {
					if cached.Add(size) > cache {
						cached.Add(-size)
						return mo.Keeps
					}
					est = size
					return nil
				}
				// Quarantine checks every column of every file now, to set
				// a bad one aside before planning; otherwise the columns a
				// file beyond the cache drops are checked by its second
				// read, before the commit (merge.ReadOptions.Check).
				ro := merge.ReadOptions{Keep: whole, Check: bad.quarantine}
				f, v, err := readFile(ctx, src, objs[i].Key, objs[i].Listed(), mo, ro)
				if err == nil && est > 0 {
					sz := int64(0)
					for _, r := range f.Records {
						sz += merge.RecordBytes(r)
					}
					// Decoded rows can outgrow the footer's estimate
					// (dictionary-encoded columns).
					if cached.Add(sz-est) > cache {
						cached.Add(-sz)
						f.Project(keep)
					}
				} else if est > 0 {
					cached.Add(-est)
				}
				results[i] <- result{f, v, err}
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range objs {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var files []*merge.File
	var failed error
	for i, o := range objs {
		if failed != nil {
			break
		}
		r := <-results[i]
		if r.err != nil {
			if failed = bad.skip(o.Key, r.err); failed != nil {
				cancel()
			}
			continue
		}
		files = append(files, r.f)
		pins[o.Key] = r.v
		progress(i + 1)
	}
	// Free what the workers read after a failure.
	cancel()
	wg.Wait()
	for _, c := range results {
		select {
		case r := <-c:
			if r.f != nil {
				r.f.Release()
			}
		default:
		}
	}
	return files, failed
}

// readFile reads one source object, pinned to a version, and returns the
// version read. The before images of its key columns (DMS's
// add-before-image-columns) are set apart from its columns. keep (nil:
// every column) says which columns to keep (merge.ReadOptions).
func readFile(ctx context.Context, src Source, key string, pin source.Version, mo merge.Options, ro merge.ReadOptions) (*merge.File, source.Version, error) {
	r, err := src.Open(ctx, key, pin)
	if err != nil {
		return nil, source.Version{}, err
	}
	defer r.Close()
	f, err := merge.ReadFileWith(ctx, key, source.Classify(key), r, memory.DefaultAllocator, ro)
	if err != nil {
		return nil, source.Version{}, err
	}
	if err := f.SplitBeforeImage(mo); err != nil {
		f.Release()
		return nil, source.Version{}, err
	}
	return f, r.Version(), nil
}

// rereadFile reads an object again to write its winners, a row group at a
// time, each part aligned to the table's schema, pinned to the version its
// first read saw: a rewritten object fails the run (before any commit)
// rather than mixing two versions' rows in one commit.
func rereadFile(ctx context.Context, src Source, key string, pins map[string]source.Version, mo merge.Options, table *arrow.Schema, each func(*merge.File) error) error {
	pin, ok := pins[key]
	if !ok || pin.IsZero() {
		return fmt.Errorf("reading %s again: the run kept no version of its first read (this is a bug)", key)
	}
	r, err := src.Open(ctx, key, pin)
	if err != nil {
		return err
	}
	defer r.Close()
	return merge.ReadGroups(ctx, key, source.Classify(key), r, memory.DefaultAllocator, func(part *merge.File) error {
		if err := part.SplitBeforeImage(mo); err != nil {
			return err
		}
		if err := merge.Align(memory.DefaultAllocator, part, table); err != nil {
			return err
		}
		return each(part)
	})
}

// badFiles applies --on-bad-file: with quarantine, a file whose input is bad
// (an *merge.InputError: corrupt, unknown Op, null key, invalid UTF-8, a
// type that clashes) is skipped and recorded; any other error, and every
// error with fail, fails the run.
type badFiles struct {
	quarantine bool
	objs       map[string]source.Object
	now        time.Time
	log        *slog.Logger
	q          map[string]bookmark.Quarantined
	reasons    map[string]string
	order      []string
}

func newBadFiles(o RunOptions, todo []source.Object, now time.Time, log *slog.Logger) *badFiles {
	b := &badFiles{quarantine: o.OnBadFile == OnBadFileQuarantine, objs: map[string]source.Object{}, now: now, log: log}
	for _, obj := range todo {
		b.objs[obj.Key] = obj
	}
	return b
}

// skip returns err unless the file is quarantined for it.
func (b *badFiles) skip(key string, err error) error {
	var ie *merge.InputError
	if !b.quarantine || !errors.As(err, &ie) {
		return err
	}
	if b.q == nil {
		b.q, b.reasons = map[string]bookmark.Quarantined{}, map[string]string{}
	}
	reason := err.Error()
	b.q[key] = bookmark.QuarantineOf(b.objs[key], reason, b.now)
	b.reasons[key] = reason
	b.order = append(b.order, key)
	b.log.Warn("quarantined a bad file: skipping it", "file", key, "reason", reason)
	return nil
}

// filter keeps the files check accepts; a quarantined file is released.
func (b *badFiles) filter(files []*merge.File, check func(*merge.File) error) ([]*merge.File, error) {
	kept := files[:0]
	for i, f := range files {
		if err := check(f); err != nil {
			if err = b.skip(f.Name, err); err != nil {
				return append(kept, files[i:]...), err
			}
			f.Release()
			continue
		}
		kept = append(kept, f)
	}
	clear(files[len(kept):])
	return kept, nil
}

// evolve checks that the files' schemas fit the table's (stored; nil for a
// new table) and each other's, in source order. With quarantine a file that
// clashes with the files before it is skipped; with fail it fails the run.
func (b *badFiles) evolve(stored *arrow.Schema, files []*merge.File) ([]*merge.File, error) {
	cur := stored
	if cur == nil {
		cur = arrow.NewSchema(nil, nil)
	}
	return b.filter(files, func(f *merge.File) error {
		next, changes, err := merge.Evolve(cur, []*merge.File{f})
		if err != nil {
			return err
		}
		// The names the file adds, checked as the catalog will check them
		// before committing, so the error names the file.
		var added []string
		for _, c := range changes {
			if c.Add {
				added = append(added, c.Column)
			}
		}
		if len(added) == 0 {
			cur = next
			return nil
		}
		var existing []string
		for _, fld := range cur.Fields() {
			existing = append(existing, fld.Name)
		}
		var ce *catalog.ColumnNameError
		if err := catalog.CheckNewColumns(existing, added); errors.As(err, &ce) {
			return &merge.InputError{File: f.Name, Column: ce.Column, Err: fmt.Errorf("%w: %s", merge.ErrColumnName, ce.Reason),
				Hint: "rename the column at the source or with a DMS transformation rule, or remove the file, then rerun; nothing was committed"}
		} else if err != nil {
			return err
		}
		cur = next
		return nil
	})
}

// counted passes records on, calling progress with the rows so far.
func counted(recs iter.Seq2[arrow.RecordBatch, error], progress func(rows int)) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		rows := 0
		for rec, err := range recs {
			if err == nil {
				rows += int(rec.NumRows())
				progress(rows)
			}
			if !yield(rec, err) {
				return
			}
		}
	}
}

// summary is the snapshot summary of a run's commit.
func summary(token string, p *merge.Plan) map[string]string {
	i := strconv.Itoa
	return map[string]string{
		catalog.KeyRunID:        token,
		catalog.KeySourceFiles:  i(len(p.Files)),
		catalog.KeySourceRows:   i(p.SourceRows),
		catalog.KeySourceInsert: i(p.SourceInserts),
		catalog.KeySourceUpdate: i(p.SourceUpdates),
		catalog.KeySourceDelete: i(p.SourceDeletes),
		catalog.KeyRowsWritten:  i(p.WriteRows),
		catalog.KeyRowsDeleted:  i(p.DeleteRows),
		catalog.KeyStale:        i(p.Stale),
	}
}
