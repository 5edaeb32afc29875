package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// RunOptions are the settings of `icemerge run`, validated before any I/O.
type RunOptions struct {
	Common
	Source   string
	Keys     []string
	OrderBy  []string // empty: source order only
	DryRun   bool
	MaxFiles int   // 0: no bound
	MaxBytes int64 // 0: no bound; a batch holds at least one file
	// SourceCache: the decoded rows of source files kept from the first
	// read, up to this many bytes, so their winners are written without
	// reading them again.
	SourceCache int64
	// Partition is the partition spec of a new table (Iceberg transforms).
	Partition []string
	// PartitionRows: a batch of more changes is planned in key-hash
	// partitions of about this many (0: never).
	PartitionRows int
	SettleAfter   time.Duration // 0: never settle (list everything)
	Wait          time.Duration // how long to wait for the table's lock
	LockTTL       time.Duration
	// AfterRun is compaction at the end of a run (maintain.go).
	AfterRun AfterRunOptions
	// TombstoneTTL is how long deleted keys are remembered (0: not at all).
	TombstoneTTL time.Duration
	// OnBadFile is what a file with bad input does to the run: fail it
	// (onBadFileFail) or skip the file and record it (onBadFileQuarantine).
	OnBadFile string
}

// The values of --on-bad-file.
const (
	onBadFileFail       = "fail"
	onBadFileQuarantine = "quarantine"
)

// Validate reports every problem at once.
func (o RunOptions) Validate() error {
	errs := []error{o.Common.validate(false)}
	if o.SourceCache < 0 {
		errs = append(errs, fmt.Errorf("--source-cache %d: use 0 (read every file again) or more", o.SourceCache))
	}
	if o.PartitionRows < 0 {
		errs = append(errs, fmt.Errorf("--partition-rows %d: use 0 (one partition) or more", o.PartitionRows))
	}
	if o.Source == "" {
		errs = append(errs, errors.New("--source is required: the DMS folder of one table (with --table), or the schema folder of a whole database"))
	} else if _, err := source.ParseLocation(o.Source); err != nil {
		errs = append(errs, fmt.Errorf("--source: %w", err))
	}
	for _, k := range o.Keys {
		if k == "" {
			errs = append(errs, errors.New("--key has an empty column name"))
		}
	}
	for _, k := range o.OrderBy {
		if k == "" {
			errs = append(errs, errors.New("--order-by has an empty column name"))
		}
		if slices.Contains(o.Keys, k) {
			errs = append(errs, fmt.Errorf("--order-by column %q is a key column: it cannot order the changes of one key", k))
		}
	}
	if o.MaxFiles < 0 {
		errs = append(errs, errors.New("--max-files must be 0 (no bound) or more"))
	}
	if o.MaxBytes < 0 {
		errs = append(errs, errors.New("--max-bytes must be 0 (no bound) or more"))
	}
	if o.SettleAfter < 0 || o.Wait < 0 || o.TombstoneTTL < 0 {
		errs = append(errs, errors.New("--settle-after, --wait and --tombstone-ttl cannot be negative"))
	}
	switch o.OnBadFile {
	case "", onBadFileFail, onBadFileQuarantine: // "": fail
	default:
		errs = append(errs, fmt.Errorf("--on-bad-file %q: use fail or quarantine", o.OnBadFile))
	}
	if o.LockTTL < 10*time.Second {
		errs = append(errs, fmt.Errorf("--lock-ttl %s: use at least 10s", o.LockTTL))
	}
	return errors.Join(errs...)
}

// Locker takes a table's run lock.
type Locker interface {
	Lock(ctx context.Context, owner string, ttl time.Duration, now func() time.Time) (*bookmark.Lease, error)
}

// Deps are what a run talks to.
type Deps struct {
	Log      *slog.Logger
	Out      io.Writer
	Now      func() time.Time
	Source   Source
	Catalog  *catalog.Catalog
	Bookmark bookmark.Store
	Lock     Locker // nil: no run lock (tests of one run)
	// Progress hears how far the run is (a bar on a terminal); nil: none.
	Progress Progress
}

// step reports progress, if anyone listens.
func (d Deps) step(table, phase string, done, total int) {
	if d.Progress != nil {
		d.Progress.Step(table, phase, done, total)
	}
}

// Result is what a run did.
type Result struct {
	Outcome  bookmark.Outcome
	Files    int // files applied by this run
	Left     int // unprocessed files left for later runs (--max-files)
	Plan     *merge.Plan
	Token    string
	Snapshot int64
	Created  bool
	Attempts int // commit attempts (more than 1 after conflicts)
	// SchemaChanges are the columns added or widened for this batch.
	SchemaChanges []merge.SchemaChange
	// Quarantined are the files skipped as bad input (--on-bad-file
	// quarantine), by object key, with the reason.
	Quarantined map[string]string
	// Time is spent per phase; BytesRead counts the source objects read.
	Time      Timings
	BytesRead int64
	Scan      catalog.ScanStats
	Written   catalog.WriteStats
}

// Timings are the durations of a run's phases; retries after a conflict add
// up.
type Timings struct {
	List, Read, Dedupe, Locate, WriteData, WriteDeletes, Commit, Total time.Duration
}

// commitAttempts bounds the re-plans after another writer's commit.
const commitAttempts = 4

// runMerge is `icemerge run`: lock, list, read, deduplicate, commit,
// advance.
func runMerge(ctx context.Context, o RunOptions, d Deps) (res *Result, err error) {
	if d.Progress != nil {
		defer d.Progress.Done(o.Table)
	}
	if d.Lock != nil && !o.DryRun {
		lease, err := acquire(ctx, o, d)
		if err != nil {
			return nil, err
		}
		var stop func()
		ctx, stop = keepLease(ctx, lease, o.LockTTL, d.Log)
		defer func() {
			stop()
			if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
				d.Log.Warn("releasing the run lock failed; it expires by itself", "error", rerr)
			}
		}()
	}
	return runLocked(ctx, o, d)
}

// acquire takes the table's run lock, waiting up to o.Wait for another run.
func acquire(ctx context.Context, o RunOptions, d Deps) (*bookmark.Lease, error) {
	deadline := d.Now().Add(o.Wait)
	owner := runOwner()
	for {
		lease, err := d.Lock.Lock(ctx, owner, o.LockTTL, d.Now)
		if err == nil || !errors.Is(err, bookmark.ErrLocked) || !d.Now().Before(deadline) {
			return lease, err
		}
		d.Log.Info("waiting for another run of the table", "table", o.Table, "reason", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(time.Second, deadline.Sub(d.Now()))):
		}
	}
}

// keepLease renews the lease every third of its TTL; if that fails the run's
// context is cancelled, so nothing is committed without the lock.
func keepLease(ctx context.Context, lease *bookmark.Lease, ttl time.Duration, log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := lease.Renew(ctx); err != nil {
					log.Error("lost the run lock: stopping", "error", err)
					cancel(err)
					return
				}
			}
		}
	}()
	return ctx, func() { close(done); <-exited; cancel(nil) }
}

func runOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/pid-%d/%s", host, os.Getpid(), newRunID(time.Now()))
}

func runLocked(ctx context.Context, o RunOptions, d Deps) (*Result, error) {
	ident, _ := catalog.Ident(o.Table)
	log := d.Log.With("table", o.Table)
	res := &Result{}
	began := time.Now()
	defer func() { res.Time.Total = time.Since(began) }()
	phase := time.Now()
	lap := func(into *time.Duration) {
		now := time.Now()
		*into += now.Sub(phase)
		phase = now
	}

	tbl, exists, err := d.Catalog.Load(ctx, ident)
	if err != nil {
		return nil, err
	}
	keys := o.Keys
	if exists {
		tk := catalog.Keys(tbl.Schema())
		if len(tk) == 0 {
			return nil, fmt.Errorf("table %s has no identifier fields (primary key); icemerge needs them to match rows: recreate the table with icemerge --key", o.Table)
		}
		if len(keys) > 0 && !slices.Equal(keys, tk) {
			return nil, fmt.Errorf("--key %v contradicts the primary key %v of table %s: drop --key or pass the table's", keys, tk, o.Table)
		}
		keys = tk
	} else if len(keys) == 0 {
		return nil, fmt.Errorf("%w: table %s does not exist yet: pass --key to create it", errUsage, o.Table)
	}

	// Progress: reconcile the bookmark with the table before anything else.
	st, ver, err := d.Bookmark.Load(ctx)
	if err != nil {
		return nil, err
	}
	if ver == "" {
		st = bookmark.New(o.Table)
	}
	if st.Table != o.Table {
		return nil, fmt.Errorf("bookmark %s belongs to table %s, not %s: use another --bookmark", d.Bookmark.Location(), st.Table, o.Table)
	}
	tableToken := ""
	if exists {
		tableToken = catalog.LastToken(tbl)
	}
	st, res.Outcome, err = bookmark.Reconcile(st, tableToken, d.Now())
	if err != nil {
		return nil, err
	}
	if res.Outcome == bookmark.Finalised || res.Outcome == bookmark.Discarded {
		log.Warn("the previous run stopped before saving its bookmark", "outcome", res.Outcome.String())
		if !o.DryRun {
			if ver, err = d.Bookmark.Save(ctx, st, ver); err != nil {
				return nil, err
			}
		}
	}

	// List after the settled key, keeping only what is unprocessed.
	todo, listed, err := unprocessed(ctx, d.Source, st)
	if err != nil {
		return nil, err
	}
	lap(&res.Time.List)
	todo, left := o.bound(todo)
	res.Files, res.Left = len(todo), len(left)
	if len(todo) == 0 {
		if settled := st.Settle(d.Now(), o.SettleAfter, nil); settled.Settled != st.Settled && !o.DryRun {
			if _, err := d.Bookmark.Save(ctx, settled, ver); err != nil {
				return nil, err
			}
		}
		log.Info("nothing new", "source", d.Source.String(), "listed", listed, "after", st.Settled)
		fmt.Fprintf(d.Out, "%s: nothing new in %s (%d files applied)\n", o.Table, d.Source, len(st.Files))
		return res, nil
	}
	log.Info("reading new files", "files", len(todo), "left", len(left))

	// Read and check every file before anything is written: a file with bad
	// input fails the run or, with --on-bad-file quarantine, is skipped.
	bad := newBadFiles(o, todo, d.Now(), log)
	// Each file is read and checked whole, then only its key and order
	// columns are kept: the batch needs no more, and the winners' rows are
	// read again when they are written.
	files, err := readFiles(ctx, d.Source, todo, append(slices.Clone(keys), o.OrderBy...), o.SourceCache, bad,
		func(done int) { d.step(o.Table, "reading files", done, len(todo)) })
	defer func() {
		for _, f := range files {
			f.Release()
		}
	}()
	if err != nil {
		return nil, err
	}
	if files, err = bad.filter(files, func(f *merge.File) error { return merge.CheckKeys(f, keys) }); err != nil {
		return nil, err
	}
	var stored *arrow.Schema
	if exists {
		if stored, err = catalog.StoredSchema(tbl.Schema()); err != nil {
			return nil, err
		}
	}
	if files, err = bad.evolve(stored, files); err != nil {
		return nil, fmt.Errorf("table %s: %w", o.Table, err)
	}
	res.Quarantined = bad.reasons
	bad.report(d.Out, o.Table)
	for _, f := range files {
		res.BytesRead += bad.objs[f.Name].Size
	}
	if len(files) == 0 {
		// Every new file was quarantined: record them, change nothing.
		if !o.DryRun {
			st = st.Quarantine(todo, bad.q, d.Now()).Settle(d.Now(), o.SettleAfter, left)
			if _, err := d.Bookmark.Save(ctx, st, ver); err != nil {
				return nil, err
			}
		}
		return res, nil
	}

	if exists {
		evolved, changes, err := merge.Evolve(stored, files)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", o.Table, err)
		}
		if len(changes) > 0 {
			res.SchemaChanges = changes
			log.Info("schema changes", "changes", fmt.Sprint(changes))
			if o.DryRun {
				stored = evolved
			} else if tbl, stored, err = evolveTable(ctx, d.Catalog, tbl, changes); err != nil {
				return nil, err
			}
		}
	} else if stored, err = newTableSchema(files, keys); err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := merge.Align(memory.DefaultAllocator, f, stored); err != nil {
			return nil, err
		}
	}
	lap(&res.Time.Read)
	tombstones := st.DecodedTombstones()
	pl := &planner{
		stored: stored, opts: merge.Options{Keys: keys, OrderBy: o.OrderBy}, files: files, res: res,
		progress: func(done, total int) { d.step(o.Table, "planning partitions", done, total) },
		parts:    partitions(changes(files), o.PartitionRows),
		// The batch keeps keys and order values; the rows of each file are
		// read again when the winners are written, so memory holds one
		// file's rows at a time, not the batch's.
		reload: func(ctx context.Context, name string) (*merge.File, error) {
			f, err := readFile(ctx, d.Source, name)
			if err != nil {
				return nil, err
			}
			if err := merge.Align(memory.DefaultAllocator, f, stored); err != nil {
				f.Release()
				return nil, err
			}
			return f, nil
		},
	}
	if o.TombstoneTTL > 0 {
		pl.tombstones = tombstones
	}
	if pl.parts > 1 {
		log.Info("planning in key-hash partitions", "partitions", pl.parts, "changes", changes(files))
	}
	nextTombstones := func(p *merge.Plan) map[string]bookmark.Tombstone {
		return st.EncodeTombstones(p.NextTombstones(tombstones), d.Now(), o.TombstoneTTL)
	}
	plan, err := pl.plan(ctx, tbl, exists)
	if err != nil {
		return nil, err
	}
	res.Plan = plan
	phase = time.Now()

	if o.DryRun {
		printPlan(d.Out, o.Table, exists, stored, res.SchemaChanges, plan)
		return res, nil
	}

	if plan.Empty() {
		// Nothing changes in the table, so the bookmark can take the files
		// without a commit: it is not ahead of the table.
		absorbed := st.Quarantine(todo, bad.q, d.Now())
		absorbed.Tombstones = nextTombstones(plan)
		if _, err := d.Bookmark.Save(ctx, absorbed.Settle(d.Now(), o.SettleAfter, left), ver); err != nil {
			return nil, err
		}
		log.Info("no row changes", "files", len(todo), "stale", plan.Stale)
		fmt.Fprintf(d.Out, "%s: %d files, %d changes: nothing to change in the table (%d stale)\n", o.Table, len(todo), plan.SourceRows, plan.Stale)
		return res, nil
	}

	if !exists {
		sc, err := catalog.IcebergSchema(stored, keys)
		if err != nil {
			return nil, err
		}
		spec, err := catalog.ParsePartitionSpec(sc, o.Partition)
		if err != nil {
			return nil, fmt.Errorf("%w: table %s: the partition spec of --config: %w", errUsage, o.Table, err)
		}
		if tbl, err = d.Catalog.Create(ctx, ident, sc, spec); err != nil {
			return nil, err
		}
		res.Created = true
		log.Info("created table", "location", tbl.Location())
	}

	token := newRunID(d.Now())
	res.Token = token
	pending := st.Begin(token, todo, d.Now())
	pending.Pending.Quarantined = bad.q
	committed, err := commitWithRetry(ctx, d, pl, tbl, plan, stored, token, res, func(p *merge.Plan) error {
		// Pending goes into the bookmark only once the files are written,
		// right before each commit attempt (with the tombstones of that
		// attempt's plan): a run that fails writing them leaves the
		// bookmark untouched.
		pending.Pending.Tombstones = nextTombstones(p)
		var err error
		ver, err = d.Bookmark.Save(ctx, pending, ver)
		return err
	})
	if err != nil {
		return nil, err
	}
	plan = res.Plan
	if s := committed.CurrentSnapshot(); s != nil {
		res.Snapshot = s.SnapshotID
	}
	done := pending.Finish(d.Now()).Settle(d.Now(), o.SettleAfter, left)
	if _, err := d.Bookmark.Save(ctx, done, ver); err != nil {
		return nil, fmt.Errorf("the commit succeeded (snapshot %d) but saving the bookmark failed: %w; the next run recognises the commit and applies nothing twice", res.Snapshot, err)
	}
	log.Info("committed", "snapshot", res.Snapshot, "token", token, "written", plan.WriteRows, "deleted", plan.DeleteRows, "attempts", res.Attempts)
	fmt.Fprintf(d.Out, "%s: applied %d files (%d changes, %d keys): %d rows written, %d rows deleted, %d stale changes skipped; snapshot %d\n",
		o.Table, len(todo), plan.SourceRows, plan.Keys, plan.WriteRows, plan.DeleteRows, plan.Stale, res.Snapshot)
	if len(left) > 0 {
		fmt.Fprintf(d.Out, "%s: %d more files left for the next run (%s)\n", o.Table, len(left), o.bounds())
	}
	// Under the run's lock; a failed compaction is reported, never fails
	// the run, whose commit stands.
	maintainAfterRun(ctx, o.AfterRun, o.Common, d, committed)
	return res, nil
}

// defaultPartitionRows is --partition-rows: a batch of more changes is
// deduplicated and matched with the table in key-hash partitions of about
// this many changes, one at a time. The batch's memory is mostly its
// per-key entries, so that bounds it; the rows to write and delete are
// then bits and positions.
const defaultPartitionRows = 2_000_000

// defaultSourceCache is --source-cache: a batch of a few files (a run every
// few minutes) is read once, with one GET per object on S3; a larger batch
// reads the rest again when it writes, holding one file at a time.
const defaultSourceCache = 256 << 20

// partitions is how many key-hash partitions a batch of rows changes is
// planned in.
func partitions(rows, perPart int) int {
	if perPart <= 0 || rows <= perPart {
		return 1
	}
	return (rows + perPart - 1) / perPart
}

// planner dedupes the run's files and matches them with the table: in one
// batch, or, for a large run, one key-hash partition at a time, joining
// the partitions' plans.
type planner struct {
	stored     *arrow.Schema
	opts       merge.Options
	files      []*merge.File
	reload     merge.Reload
	tombstones merge.Tombstones
	parts      int
	res        *Result
	progress   func(done, total int) // partitions planned
	// one is the batch of a run planned in one partition, kept so that a
	// re-plan after a conflict only matches it again.
	one *merge.Batch
}

// changes counts the rows of the files.
func changes(files []*merge.File) int {
	n := 0
	for _, f := range files {
		n += f.Rows()
	}
	return n
}

// plan plans the run against the table's current snapshot. In partitions,
// the files keep their key and order columns for every partition (and a
// re-plan), so planning never reads a source object again.
func (pl *planner) plan(ctx context.Context, tbl *table.Table, exists bool) (*merge.Plan, error) {
	pl.res.Scan = catalog.ScanStats{}
	var total *merge.Plan
	for part := range pl.parts {
		start := time.Now()
		b := pl.one
		if b == nil {
			var err error
			if b, err = pl.batch(part); err != nil {
				return nil, err
			}
			if pl.parts == 1 {
				pl.one = b
			}
		}
		located := time.Now()
		pl.res.Time.Dedupe += located.Sub(start)
		p, err := planAgainst(ctx, b, tbl, exists, pl.res)
		if err != nil {
			return nil, err
		}
		pl.res.Time.Locate += time.Since(located)
		if total == nil {
			total = p
		} else if err := total.Absorb(p); err != nil {
			return nil, err
		}
		if pl.parts > 1 {
			pl.progress(part+1, pl.parts)
		}
	}
	return total, nil
}

// batch dedupes the files' changes of one partition.
func (pl *planner) batch(part int) (*merge.Batch, error) {
	b, err := merge.NewBatch(pl.stored, pl.opts)
	if err != nil {
		return nil, err
	}
	if err := b.SetPartition(part, pl.parts); err != nil {
		return nil, err
	}
	b.SetReload(pl.reload)
	b.SetTombstones(pl.tombstones)
	for _, f := range pl.files {
		if err := b.Add(f); err != nil {
			return nil, err
		}
		if pl.parts == 1 && f.Projected() {
			f.Shed() // the batch holds what it needs, and is kept
		}
	}
	return b, nil
}

// unprocessed lists the source after st's settled key and returns the data
// objects st has not applied, in source order, and how many objects it
// listed. A run, `icemerge status` and `bookmark rewind` all list so.
func unprocessed(ctx context.Context, src Source, st bookmark.State) ([]source.Object, int, error) {
	var todo []source.Object
	listed := 0
	err := src.List(ctx, st.Settled, func(obj source.Object) error {
		listed++
		if source.Classify(obj.Key) != merge.NotData && !st.Applied(obj) {
			todo = append(todo, obj)
		}
		return nil
	})
	if err != nil {
		return nil, listed, err
	}
	return source.SortObjects(todo), listed, nil
}

// bound splits the unprocessed files (in source order) into this run's
// batch and the files left for later runs: at most --max-files files, and
// files until the next would pass --max-bytes, always at least one. The
// tighter bound wins.
func (o RunOptions) bound(todo []source.Object) (batch, left []source.Object) {
	n := len(todo)
	if o.MaxFiles > 0 {
		n = min(n, o.MaxFiles)
	}
	if o.MaxBytes > 0 {
		var sum int64
		for i, obj := range todo[:n] {
			if sum += obj.Size; i > 0 && sum > o.MaxBytes {
				n = i
				break
			}
		}
	}
	return todo[:n], todo[n:]
}

// bounds names the bounds of a run's batch, for messages.
func (o RunOptions) bounds() string {
	b := ""
	if o.MaxFiles > 0 {
		b = fmt.Sprintf("--max-files %d", o.MaxFiles)
	}
	if o.MaxBytes > 0 && b != "" {
		b += ", "
	}
	if o.MaxBytes > 0 {
		b += fmt.Sprintf("--max-bytes %d", o.MaxBytes)
	}
	return b
}

// planAgainst matches the batch with the live rows of the table's current
// snapshot and plans it. Its scan's figures add to res.Scan.
func planAgainst(ctx context.Context, batch *merge.Batch, tbl *table.Table, exists bool, res *Result) (*merge.Plan, error) {
	batch.ResetExisting()
	if exists {
		keys, order := batch.KeyColumns(), batch.OrderColumns()
		cols := append(slices.Clone(keys), order...)
		nk := len(keys)
		var rng *catalog.KeyRange
		if col, lo, hi, ok := batch.KeyRange(); ok {
			rng = &catalog.KeyRange{Column: col, Lo: lo, Hi: hi}
		}
		st, err := catalog.ScanLive(ctx, tbl, cols, rng, func(path string, arrs []arrow.Array, first int64, deleted func(int64) bool) error {
			return batch.MatchExisting(path, arrs[:nk], arrs[nk:], first, deleted)
		})
		res.Scan.Files += st.Files
		res.Scan.FilesPruned += st.FilesPruned
		res.Scan.RowGroups += st.RowGroups
		res.Scan.RowGroupsPruned += st.RowGroupsPruned
		res.Scan.Bytes += st.Bytes
		if err != nil {
			return nil, err
		}
	}
	return batch.Plan(), nil
}

// commitWithRetry commits the plan; when another writer committed first it
// reloads the table, re-validates the schema, re-plans against the new
// snapshot and tries again, a bounded number of times. It never overwrites a
// change it has not seen.
func commitWithRetry(ctx context.Context, d Deps, pl *planner, tbl *table.Table, plan *merge.Plan, stored *arrow.Schema,
	token string, res *Result, beforeCommit func(*merge.Plan) error,
) (*table.Table, error) {
	for attempt := 1; ; attempt++ {
		res.Attempts, res.Plan = attempt, plan
		prepared, err := d.Catalog.Prepare(ctx, tbl, catalog.Change{
			Records: counted(plan.RecordsOnce(ctx, memory.DefaultAllocator), func(rows int) { d.step(catalog.Name(tbl), "writing rows", rows, plan.WriteRows) }),
			Deletes: plan.Deletes,
		})
		if err != nil {
			return nil, err
		}
		res.Written = prepared.Stats
		res.Time.WriteData += prepared.Stats.DataTime
		res.Time.WriteDeletes += prepared.Stats.DeleteTime
		start := time.Now()
		if err := beforeCommit(plan); err != nil {
			return nil, err
		}
		committed, err := d.Catalog.Commit(ctx, prepared, token, summary(token, plan))
		res.Time.Commit += time.Since(start)
		if err == nil {
			return committed, nil
		}
		if !errors.Is(err, catalog.ErrCommitConflict) || attempt == commitAttempts {
			return nil, err
		}
		d.Log.Warn("another writer committed to the table first: re-planning", "attempt", attempt, "error", err)
		fresh, ok, lerr := d.Catalog.Load(ctx, tbl.Identifier())
		if lerr != nil {
			return nil, lerr
		}
		if !ok {
			return nil, fmt.Errorf("table %s was dropped during the run", catalog.Name(tbl))
		}
		sc, serr := catalog.StoredSchema(fresh.Schema())
		if serr != nil || !sc.Equal(stored) {
			return nil, fmt.Errorf("the schema of %s changed during the run: rerun to plan against it: %w", catalog.Name(tbl), err)
		}
		tbl = fresh
		if plan, err = pl.plan(ctx, tbl, true); err != nil {
			return nil, err
		}
		if plan.Empty() {
			return nil, fmt.Errorf("after another writer's commit the run changes nothing in %s; rerun to record its files", catalog.Name(tbl))
		}
	}
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

// readWorkers is how many source objects are read at once: decoding is
// CPU-bound, one core per file.
const readWorkers = 2

// readFiles reads the objects, readWorkers at a time, and returns them in
// source order. Errors are handled in source order too, so the first bad
// object in source order is the one a failing run names.
// Files whose decoded rows fit in cache bytes (in all) are kept whole, so
// writing their winners need not read them again; the others keep only the
// keep columns.
func readFiles(ctx context.Context, src Source, objs []source.Object, keep []string, cache int64, bad *badFiles, progress func(done int)) ([]*merge.File, error) {
	type result struct {
		f   *merge.File
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
				f, err := readFile(ctx, src, objs[i].Key)
				if err == nil {
					sz := int64(0)
					for _, r := range f.Records {
						sz += recordBytes(r)
					}
					if cached.Add(sz) > cache {
						cached.Add(-sz)
						f.Project(keep)
					}
				}
				results[i] <- result{f, err}
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

// readFile reads one source object.
func readFile(ctx context.Context, src Source, key string) (*merge.File, error) {
	r, err := src.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return merge.ReadFile(ctx, key, source.Classify(key), r, memory.DefaultAllocator)
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
	b := &badFiles{quarantine: o.OnBadFile == onBadFileQuarantine, objs: map[string]source.Object{}, now: now, log: log}
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
		next, _, err := merge.Evolve(cur, []*merge.File{f})
		if err == nil {
			cur = next
		}
		return err
	})
}

// report prints the quarantined files, for the person who acts on them.
func (b *badFiles) report(w io.Writer, table string) {
	for _, k := range b.order {
		fmt.Fprintf(w, "%s: QUARANTINED %s (skipped, recorded in the bookmark): %s\n", table, k, b.reasons[k])
	}
}

// newTableSchema is the schema of a table created by this batch: the union
// of the files' columns in the order first seen, widened where files
// differ, key columns required.
func newTableSchema(files []*merge.File, keys []string) (*arrow.Schema, error) {
	sc, _, err := merge.Evolve(files[0].FullSchema(), files[1:])
	if err != nil {
		return nil, err
	}
	fields := sc.Fields()
	for i := range fields {
		fields[i].Nullable = !slices.Contains(keys, fields[i].Name)
	}
	return arrow.NewSchema(fields, nil), nil
}

// evolveTable applies schema changes and returns the table and its new
// stored schema.
func evolveTable(ctx context.Context, cat *catalog.Catalog, tbl *table.Table, changes []merge.SchemaChange) (*table.Table, *arrow.Schema, error) {
	var adds []arrow.Field
	widen := map[string]arrow.DataType{}
	for _, c := range changes {
		if c.Add {
			adds = append(adds, arrow.Field{Name: c.Column, Type: c.To, Nullable: true})
		} else {
			widen[c.Column] = c.To
		}
	}
	tbl, err := cat.Evolve(ctx, tbl, adds, widen)
	if err != nil {
		return nil, nil, err
	}
	stored, err := catalog.StoredSchema(tbl.Schema())
	return tbl, stored, err
}

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

// newRunID is sortable by time and unique: 20261201T093512.123Z-1a2b3c4d.
func newRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

func printPlan(w io.Writer, name string, exists bool, sc *arrow.Schema, changes []merge.SchemaChange, p *merge.Plan) {
	fmt.Fprintf(w, "plan for %s (dry run: nothing is written)\n", name)
	for _, c := range changes {
		fmt.Fprintf(w, "  schema: %s\n", c)
	}
	if !exists {
		fmt.Fprintf(w, "  create table with columns:")
		for _, f := range sc.Fields() {
			fmt.Fprintf(w, " %s %s", f.Name, f.Type)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  files: %d\n", len(p.Files))
	for _, f := range p.Files {
		fmt.Fprintf(w, "    %-5s %s: %d rows (I %d, U %d, D %d)\n", f.Kind, f.Name, f.Rows, f.Inserts, f.Updates, f.Deletes)
	}
	fmt.Fprintf(w, "  rows: %d (I %d, U %d, D %d)\n", p.SourceRows, p.SourceInserts, p.SourceUpdates, p.SourceDeletes)
	fmt.Fprintf(w, "  keys: %d; winners I %d, U %d, D %d; stale (table row newer) %d\n", p.Keys, p.WinInserts, p.WinUpdates, p.WinDeletes, p.Stale)
	fmt.Fprintf(w, "  rows to delete: %d in %d data files\n", p.DeleteRows, len(p.Deletes))
	fmt.Fprintf(w, "  rows to write: %d\n", p.WriteRows)
}

// recordBytes is the memory of a record's buffers.
func recordBytes(r arrow.RecordBatch) int64 {
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
