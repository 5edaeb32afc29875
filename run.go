package icemerge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// Outcome is how a run of a table ended.
type Outcome string

// The outcomes of a run, as the report, the logs and status name them.
const (
	OutcomeCommitted   Outcome = "committed"
	OutcomeNothingNew  Outcome = "nothing new"
	OutcomeNoChanges   Outcome = "no row changes"
	OutcomeQuarantined Outcome = "quarantined only"
	OutcomeDryRun      Outcome = "dry run"
	OutcomeFailed      Outcome = "failed"
	// OutcomeReloaded: DMS reloaded the table; the commit replaced its rows
	// with the new full load and the changes after it.
	OutcomeReloaded Outcome = "reloaded"
	// OutcomeReloadWaiting: DMS is reloading the table; the run waits for
	// the full load to complete and applies nothing.
	OutcomeReloadWaiting Outcome = "reload waiting"
	// OutcomeEmptied: every applied file was gone (a source TRUNCATE) and
	// --on-truncate empty: the commit emptied the table and applied the new
	// files to it.
	OutcomeEmptied Outcome = "emptied"
)

// Result is what a run did. A run that fails returns what it did before
// failing, for the report.
type Result struct {
	Table   string
	Source  string // the folder, as its messages name it
	Outcome Outcome
	// Reconciled is what the run found of the previous run (bookmark
	// finalised, discarded, in sync, fresh).
	Reconciled bookmark.Outcome
	Files      int // files applied by this run
	Left       int // unprocessed files left for later runs (--max-files, --max-bytes)
	Listed     int // objects listed
	Applied    int // files the bookmark holds as applied after the run
	Plan       *merge.Plan
	Token      string
	Snapshot   int64
	Exists     bool // the table existed before the run
	Created    bool
	Attempts   int // commit attempts (more than 1 after conflicts)
	// Schema is the table's stored schema the run planned against (a
	// dry run's or a new table's included).
	Schema *arrow.Schema
	// SchemaChanges are the columns added or widened for this batch.
	SchemaChanges []merge.SchemaChange
	// Quarantined are the files skipped as bad input (--on-bad-file
	// quarantine), by object key, with the reason; QuarantineOrder lists
	// them in the order met.
	Quarantined     map[string]string
	QuarantineOrder []string
	// Partitions is how many key-hash partitions the run was planned in.
	Partitions int
	// Time is spent per phase; BytesRead counts the source objects read.
	Time      Timings
	BytesRead int64
	Scan      merge.ScanStats
	Written   catalog.WriteStats
	// AfterRun is the compaction at the end of the run, if it ran; a
	// failed one is AfterRunErr (the run's commit stands).
	AfterRun    *MaintainResult
	AfterRunErr error
	// Listing is what the listing found besides new files (listing.go).
	Listing Listing
	// NewestChange is the time of the batch's newest change (see
	// newestChange); zero when unknown. OldestPending is the modification
	// time of the oldest listed object the run leaves unapplied: a bounded
	// run's rest, or a failed run's (or a dry run's) batch too; zero when
	// none. The lag metrics (metrics.go) are measured from them.
	NewestChange, OldestPending time.Time
}

// Timings are the durations of a run's phases; retries after a conflict add
// up.
type Timings struct {
	List, Read, Dedupe, Locate, WriteData, WriteDeletes, Commit, Total time.Duration
}

// commitAttempts bounds the re-plans after another writer's commit.
const commitAttempts = 4

// Run applies the table's unprocessed DMS files in one atomic commit and
// advances its bookmark: the exactly-once protocol of docs/exactly-once.md,
// under the table's run lock (no lock is taken for a dry run). o is
// validated first. The result says what the run did, also when it fails.
func Run(ctx context.Context, o RunOptions, d Deps) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Table == "" {
		return nil, usage(errors.New("--table is required for a run of one table; without it, run a whole database (RunDatabase)"))
	}
	if d.Progress != nil {
		defer d.Progress.Done(o.Table)
	}
	lock := d.Lock
	if o.DryRun {
		lock = nil
	}
	spec := lockSpec{table: o.Table, wait: o.Wait, ttl: o.LockTTL}
	return withLock(ctx, lock, spec, d.Now, d.Log, func(ctx context.Context) (*Result, error) {
		r := &run{o: o, d: d, log: d.Log.With("table", o.Table), res: &Result{Table: o.Table}}
		if d.Source != nil {
			r.res.Source = d.Source.String()
		}
		err := r.steps(ctx)
		if err != nil || o.DryRun {
			r.res.OldestPending = oldestModified(r.todo, r.left)
		} else {
			r.res.OldestPending = oldestModified(r.left)
		}
		switch {
		case err != nil:
			r.res.Outcome = OutcomeFailed
		case o.DryRun:
			r.res.Outcome = OutcomeDryRun
		}
		return r.res, err
	})
}

// run is one run of a table: its steps are methods, in the order of
// docs/exactly-once.md.
type run struct {
	o   RunOptions
	d   Deps
	log *slog.Logger
	res *Result

	tbl    *catalog.Table // nil until the table exists
	keys   []string
	st     bookmark.State
	ver    bookmark.Version
	todo   []source.Object // this run's batch, in source order
	left   []source.Object // unprocessed files left for later runs
	bad    *badFiles
	pins   map[string]source.Version // the version of each file read
	files  []*merge.File
	stored *arrow.Schema
	pl     *merge.Planner
	plan   *merge.Plan
	phase  time.Time
	// tombs are the bookmark's tombstones, decoded when the batch is
	// planned (nil with tombstones off).
	tombs merge.Tombstones

	// replace is set when this run's commit replaces the table's rows (a
	// bookmark.Replace… reason); forget are the recorded files gone from
	// the source that the commit drops; dirty: the listing changed the
	// bookmark (listing.go).
	replace string
	forget  []string
	dirty   bool
	view    *sourceView // the run's listing
	// release undoes what the run reserved (reserveHeap).
	release []func()
}

// lap adds the time since the last lap to into.
func (r *run) lap(into *time.Duration) {
	now := time.Now()
	*into += now.Sub(r.phase)
	r.phase = now
}

func (r *run) steps(ctx context.Context) error {
	began := time.Now()
	r.phase = began
	defer func() { r.res.Time.Total = time.Since(began) }()
	defer func() {
		for _, f := range r.files {
			f.Release()
		}
		for _, rel := range r.release {
			rel()
		}
	}()
	if err := r.loadTable(ctx); err != nil {
		return err
	}
	if err := r.reconcile(ctx); err != nil {
		return err
	}
	if err := r.list(ctx); err != nil {
		return err
	}
	if len(r.todo) == 0 {
		if r.replace != "" {
			return r.emptyTable(ctx)
		}
		return r.nothingNew(ctx)
	}
	if err := r.read(ctx); err != nil {
		return err
	}
	if len(r.files) == 0 {
		return r.quarantinedOnly(ctx)
	}
	if err := r.evolve(ctx); err != nil {
		return err
	}
	if err := r.planBatch(ctx); err != nil {
		return err
	}
	if r.o.DryRun || r.plan.Empty() {
		// Nothing is written, so nothing reads the files again: check the
		// columns their first read did not decode, as writing would.
		if err := r.plan.Check(ctx); err != nil {
			return err
		}
	}
	switch {
	case r.o.DryRun:
		return nil
	case r.plan.Empty():
		return r.absorb(ctx)
	}
	if err := r.create(ctx); err != nil {
		return err
	}
	committed, err := r.commit(ctx)
	if err != nil {
		return err
	}
	return r.finish(ctx, committed)
}

// loadTable loads the table, if it exists, and settles the key: the
// table's own, which --key may repeat but not contradict.
func (r *run) loadTable(ctx context.Context) error {
	tbl, exists, err := r.d.Catalog.Load(ctx, r.o.Table)
	if err != nil {
		return err
	}
	r.res.Exists = exists
	r.keys = r.o.Keys
	if !exists {
		if len(r.keys) == 0 {
			return usage(fmt.Errorf("table %s does not exist yet: pass --key to create it", r.o.Table))
		}
		return nil
	}
	r.tbl = tbl
	tk := tbl.Keys()
	if len(tk) == 0 {
		return fmt.Errorf("table %s has no identifier fields (primary key); icemerge needs them to match rows: recreate the table with icemerge --key", r.o.Table)
	}
	if len(r.keys) > 0 && !slices.Equal(r.keys, tk) {
		return usage(fmt.Errorf("--key %v contradicts the primary key %v of table %s: drop --key or pass the table's", r.keys, tk, r.o.Table))
	}
	r.keys = tk
	return nil
}

// reconcile loads the bookmark and reconciles it with the table before
// anything else: a previous run that stopped between its commit and its
// last bookmark save is finalised, one that stopped before its commit is
// discarded (docs/exactly-once.md, step 2).
func (r *run) reconcile(ctx context.Context) error {
	st, ver, err := loadBookmark(ctx, r.d.Bookmark, r.o.Table)
	if err != nil {
		return err
	}
	tableToken := ""
	if r.tbl != nil {
		tableToken = r.tbl.LastToken()
	}
	if err := r.missingBookmark(ver, tableToken); err != nil {
		return err
	}
	r.st, r.res.Reconciled, err = bookmark.Reconcile(st, tableToken, r.d.Now())
	if err != nil {
		return err
	}
	r.ver = ver
	if r.res.Reconciled == bookmark.Finalised || r.res.Reconciled == bookmark.Discarded {
		r.log.Warn("the previous run stopped before saving its bookmark", "outcome", r.res.Reconciled.String())
		if !r.o.DryRun {
			if r.ver, err = r.d.Bookmark.Save(ctx, r.st, r.ver); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadBookmark loads a table's bookmark: a new one when none is saved yet.
func loadBookmark(ctx context.Context, store BookmarkStore, table string) (bookmark.State, bookmark.Version, error) {
	st, ver, err := store.Load(ctx)
	if err != nil {
		return st, ver, err
	}
	if ver == "" {
		st = bookmark.New(table)
	}
	if st.Table != table {
		return st, ver, fmt.Errorf("bookmark %s belongs to table %s, not %s: use another --bookmark", store.Location(), st.Table, table)
	}
	return st, ver, nil
}

// unprocessed lists the source as a run does when no full listing is due
// (listing.go) and returns the data objects st has not applied, in source
// order, and how many objects it listed. Status and rewind list so.
func unprocessed(ctx context.Context, src Source, st bookmark.State, now time.Time) ([]source.Object, int, error) {
	v, err := listSource(ctx, src, st, now, false)
	if err != nil {
		return nil, 0, err
	}
	return v.todo, v.listed, nil
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
			if sum += obj.Size; i > 0 && sum > int64(o.MaxBytes) {
				n = i
				break
			}
		}
	}
	return todo[:n], todo[n:]
}

// nothingNew ends a run with no file to apply (or waiting for a reload's
// full load): the bookmark may settle, and keeps what the listing found.
func (r *run) nothingNew(ctx context.Context) error {
	if r.res.Outcome == "" {
		r.res.Outcome = OutcomeNothingNew
	}
	r.res.Applied = appliedCount(r.st)
	settled := r.st.Settle(r.d.Now(), r.o.SettleAfter, r.left)
	if (r.dirty || settled.Settled != r.st.Settled || len(settled.Files) != len(r.st.Files)) && !r.o.DryRun {
		if _, err := r.d.Bookmark.Save(ctx, settled, r.ver); err != nil {
			return err
		}
	}
	r.log.Info("nothing new", "source", r.res.Source, "listed", r.res.Listed, "after", r.st.Settled)
	return nil
}

// read reads and checks every file of the batch before anything is
// written: a file with bad input fails the run or, with --on-bad-file
// quarantine, is set aside. A file that fits the source cache is read and
// checked whole and kept; of the others only the key and order columns are
// read (all of them with --on-bad-file quarantine, dropped as read): the
// winners' rows are read, and the other columns checked, when they are
// written, before the commit.
func (r *run) read(ctx context.Context) error {
	r.log.Info("reading new files", "files", len(r.todo), "left", len(r.left))
	r.bad = newBadFiles(r.o, r.todo, r.d.Now(), r.log)
	r.pins = map[string]source.Version{}
	files, err := readFiles(ctx, r.d.Source, r.todo, r.mergeOptions(), r.o.sourceCache(), r.bad, r.pins,
		func(done int) { r.d.step(r.o.Table, "reading files", done, len(r.todo)) })
	r.files = files
	if err != nil {
		return err
	}
	if r.files, err = r.bad.filter(r.files, func(f *merge.File) error { return merge.CheckKeys(f, r.keys) }); err != nil {
		return err
	}
	if r.tbl != nil {
		if r.stored, err = r.tbl.Schema(); err != nil {
			return err
		}
	}
	if r.files, err = r.bad.evolve(r.stored, r.files); err != nil {
		return fmt.Errorf("table %s: %w", r.o.Table, err)
	}
	r.res.Quarantined, r.res.QuarantineOrder = r.bad.reasons, r.bad.order
	for _, f := range r.files {
		r.res.BytesRead += r.bad.objs[f.Name].Size
	}
	return nil
}

// reserveHeap raises the process's heap limit, for the rest of the run, by
// the key and order columns the files not kept whole hold: the one part of
// a run's memory that grows with its batch (memoryBudget), which would
// otherwise have the collector run without end once the live heap nears
// the limit.
func (r *run) reserveHeap() {
	if r.d.Heap == nil || r.o.Memory <= 0 {
		return
	}
	held := int64(0)
	for _, f := range r.files {
		if f.Projected() {
			for _, rec := range f.Records {
				held += merge.RecordBytes(rec)
			}
		}
	}
	if held > 0 {
		r.release = append(r.release, r.d.Heap.Reserve(held))
	}
}

// quarantinedOnly ends a run whose every new file was quarantined: they
// are recorded, nothing else changes.
func (r *run) quarantinedOnly(ctx context.Context) error {
	r.res.Outcome = OutcomeQuarantined
	if r.o.DryRun {
		return nil
	}
	st := r.st.Quarantine(r.todo, r.bad.q, r.d.Now()).Settle(r.d.Now(), r.o.SettleAfter, r.left)
	_, err := r.d.Bookmark.Save(ctx, st, r.ver)
	return err
}

// evolve settles the schema the batch is applied with: an existing
// table's, with the columns the files add or widen committed first (a
// schema-only commit; a dry run only reports them), or a new table's, the
// union of the files' columns. Every file is then aligned to it.
func (r *run) evolve(ctx context.Context) error {
	if r.tbl != nil {
		evolved, changes, err := merge.Evolve(r.stored, r.files)
		if err != nil {
			return fmt.Errorf("table %s: %w", r.o.Table, err)
		}
		if len(changes) > 0 {
			r.res.SchemaChanges = changes
			r.log.Info("schema changes", "changes", fmt.Sprint(changes))
			if r.o.DryRun {
				r.stored = evolved
			} else {
				// The columns a first read left undecoded are checked before
				// the table's schema changes: a bad file changes nothing.
				if err := merge.CheckFiles(ctx, r.files, r.rereader(evolved)); err != nil {
					return err
				}
				if r.tbl, r.stored, err = evolveTable(ctx, r.d.Catalog, r.tbl, changes); err != nil {
					return err
				}
			}
		}
	} else {
		var err error
		if r.stored, err = newTableSchema(r.files, r.keys); err != nil {
			return err
		}
	}
	r.res.Schema = r.stored
	for _, f := range r.files {
		if err := merge.Align(memory.DefaultAllocator, f, r.stored); err != nil {
			return err
		}
	}
	r.lap(&r.res.Time.Read)
	return nil
}

// planBatch dedupes the batch and matches it with the table's live rows.
func (r *run) planBatch(ctx context.Context) error {
	po := merge.PlannerOptions{
		PartitionRows: r.o.partitionRows(),
		Progress:      func(done, total int) { r.d.step(r.o.Table, "planning partitions", done, total) },
		// The batch keeps keys and order values; the rows of each file are
		// read again when the winners are written, so memory holds one
		// file's rows at a time, not the batch's; each read pinned to the
		// version the first read saw.
		Reload: r.rereader(r.stored),
	}
	if r.o.TombstoneTTL > 0 {
		t, err := r.st.DecodedTombstones()
		if err != nil {
			return r.tombstonesErr(err)
		}
		po.Tombstones, r.tombs = t, t
	}
	r.res.NewestChange = newestChange(r.files, r.o.OrderBy)
	r.pl = merge.NewPlanner(r.stored, r.mergeOptions(), r.files, po)
	r.res.Partitions = r.pl.Partitions()
	if r.pl.Partitions() > 1 {
		r.log.Info("planning in key-hash partitions", "partitions", r.pl.Partitions(), "changes", merge.Changes(r.files))
		// A batch this large needs the memory for its partitions more than
		// a few files kept whole: they are read again to write their
		// winners, as the others are.
		keep := r.mergeOptions().KeyColumns()
		for _, f := range r.files {
			f.Project(keep)
		}
	}
	r.reserveHeap()
	plan, err := r.replan(ctx)
	if err != nil {
		return err
	}
	r.plan, r.res.Plan = plan, plan
	r.phase = time.Now()
	return nil
}

// rereader reads a file of the batch again, aligned to table, pinned to
// the version its first read saw.
func (r *run) rereader(table *arrow.Schema) merge.Reload {
	return func(ctx context.Context, name string, each func(*merge.File) error) error {
		return rereadFile(ctx, r.d.Source, name, r.pins, r.mergeOptions(), table, each)
	}
}

// replan plans the batch against the table as the run last loaded it; a
// batch replacing the table's rows (a reload) is planned against an empty
// table and deletes every live row.
func (r *run) replan(ctx context.Context) (*merge.Plan, error) {
	if r.pl == nil { // emptyTable: no file to plan
		plan := &merge.Plan{}
		return plan, r.replaceRows(ctx, plan)
	}
	var live merge.LiveRows
	if r.tbl != nil && r.replace == "" { // nil: a new table, created once planned
		live = r.tbl
	}
	r.res.Scan = merge.ScanStats{}
	plan, st, err := r.pl.Plan(ctx, live)
	r.res.Time.Dedupe += st.Dedupe
	r.res.Time.Locate += st.Locate
	r.res.Scan = st.Scan
	if err == nil && r.replace != "" {
		err = r.replaceRows(ctx, plan)
	}
	return plan, err
}

// mergeOptions are the batch's key, order and before-image settings.
func (r *run) mergeOptions() merge.Options {
	return merge.Options{Keys: r.keys, OrderBy: r.o.OrderBy, BeforeImagePrefix: r.o.BeforeImagePrefix}
}

// nextTombstones are the tombstones after the plan: none when they are
// off (the stored ones are dropped unread).
func (r *run) nextTombstones(p *merge.Plan) (bookmark.TombstoneSet, error) {
	if r.o.TombstoneTTL <= 0 {
		return bookmark.TombstoneSet{}, nil
	}
	next, err := r.st.EncodeTombstones(p.NextTombstones(r.tombs), r.d.Now(), r.o.TombstoneTTL)
	if err != nil {
		return bookmark.TombstoneSet{}, r.tombstonesErr(err)
	}
	return next, nil
}

// tombstonesErr is a bookmark whose tombstones do not decode: a run reads
// them only when it plans, not when it loads the bookmark.
func (r *run) tombstonesErr(err error) error {
	return fmt.Errorf("%w: %s: %w (reset it with `icemerge bookmark reset`; the rerun applies every file again)", bookmark.ErrCorrupt, r.d.Bookmark.Location(), err)
}

// absorb ends a run whose plan changes no row: the bookmark takes the
// files without a commit, as it is not ahead of the table.
func (r *run) absorb(ctx context.Context) error {
	r.res.Outcome = OutcomeNoChanges
	absorbed := r.st.Forget(r.forget).Quarantine(r.todo, r.bad.q, r.d.Now())
	tombs, err := r.nextTombstones(r.plan)
	if err != nil {
		return err
	}
	absorbed.Tombstones = tombs
	if _, err := r.d.Bookmark.Save(ctx, absorbed.Settle(r.d.Now(), r.o.SettleAfter, r.left), r.ver); err != nil {
		return err
	}
	r.res.Applied = appliedCount(absorbed)
	r.log.Info("no row changes", "files", len(r.todo), "stale", r.plan.Stale)
	return nil
}

// create creates the table of a first run.
func (r *run) create(ctx context.Context) error {
	if r.tbl != nil {
		return nil
	}
	tbl, err := r.d.Catalog.Create(ctx, r.o.Table, r.stored, r.keys, r.o.Partition)
	if errors.Is(err, catalog.ErrPartitionSpec) {
		return usage(fmt.Errorf("table %s: the partition spec of --config: %w", r.o.Table, err))
	}
	if err != nil {
		return err
	}
	r.tbl, r.res.Created = tbl, true
	r.log.Info("created table", "location", tbl.Location())
	return nil
}

// commit writes the batch's files, marks the run pending in the bookmark
// and commits one snapshot carrying the run's token. When another writer
// committed first it reloads the table, re-checks the schema, re-plans
// against the new snapshot and tries again, a bounded number of times: it
// never overwrites a change it has not seen.
func (r *run) commit(ctx context.Context) (*catalog.Table, error) {
	token := newRunID(r.d.Now())
	r.res.Token = token
	pending := r.st.Begin(token, r.todo, r.d.Now())
	pending.Pending.Quarantined = r.bad.q
	pending.Pending.Forget, pending.Pending.Replace = r.forget, r.replace
	tbl, plan := r.tbl, r.plan
	for attempt := 1; ; attempt++ {
		r.res.Attempts, r.res.Plan = attempt, plan
		prepared, err := r.d.Catalog.Prepare(ctx, tbl, catalog.Change{
			Records: counted(plan.RecordsOnce(ctx, memory.DefaultAllocator), func(rows int) { r.d.step(r.o.Table, "writing rows", rows, plan.WriteRows) }),
			Deletes: plan.Deletes,
		})
		if err != nil {
			return nil, err
		}
		r.res.Written = prepared.Stats
		r.res.Time.WriteData += prepared.Stats.DataTime
		r.res.Time.WriteDeletes += prepared.Stats.DeleteTime
		start := time.Now()
		// Pending goes into the bookmark only once the files are written,
		// right before each commit attempt (with the tombstones of that
		// attempt's plan): a run that fails writing them leaves the
		// bookmark untouched.
		tombs, err := r.nextTombstones(plan)
		if err != nil {
			return nil, err
		}
		pending.Pending.Tombstones = &tombs
		if r.ver, err = r.d.Bookmark.Save(ctx, pending, r.ver); err != nil {
			return nil, err
		}
		committed, err := r.d.Catalog.Commit(ctx, prepared, token, r.summary(token, plan))
		r.res.Time.Commit += time.Since(start)
		if err == nil {
			r.plan, r.res.Plan = plan, plan
			r.st = pending
			return committed, nil
		}
		if !errors.Is(err, catalog.ErrCommitConflict) || attempt == commitAttempts {
			return nil, err
		}
		r.log.Warn("another writer committed to the table first: re-planning", "attempt", attempt, "error", err)
		if tbl, err = r.reload(ctx, err); err != nil {
			return nil, err
		}
		r.tbl = tbl
		if plan, err = r.replan(ctx); err != nil {
			return nil, err
		}
		if plan.Empty() {
			return nil, fmt.Errorf("after another writer's commit the run changes nothing in %s; rerun to record its files", r.o.Table)
		}
	}
}

// reload loads the table after a conflicting commit and checks that its
// schema is still the one planned against.
func (r *run) reload(ctx context.Context, conflict error) (*catalog.Table, error) {
	fresh, ok, err := r.d.Catalog.Load(ctx, r.o.Table)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("table %s was dropped during the run", r.o.Table)
	}
	sc, err := fresh.Schema()
	if err != nil || !sc.Equal(r.stored) {
		return nil, fmt.Errorf("the schema of %s changed during the run: rerun to plan against it: %w", r.o.Table, conflict)
	}
	return fresh, nil
}

// finish folds the committed run into the bookmark, then compacts the
// table if a threshold says so.
func (r *run) finish(ctx context.Context, committed *catalog.Table) error {
	r.res.Outcome, r.res.Snapshot = r.commitOutcome(), committed.SnapshotID()
	done := r.st.Finish(r.d.Now()).Settle(r.d.Now(), r.o.SettleAfter, r.left)
	if _, err := r.d.Bookmark.Save(ctx, done, r.ver); err != nil {
		return fmt.Errorf("the commit succeeded (snapshot %d) but saving the bookmark failed: %w; the next run recognises the commit and applies nothing twice", r.res.Snapshot, err)
	}
	r.res.Applied = appliedCount(done)
	r.log.Info(string(r.res.Outcome), "snapshot", r.res.Snapshot, "token", r.res.Token, "written", r.plan.WriteRows, "deleted", r.plan.DeleteRows, "attempts", r.res.Attempts)
	// Under the run's lock; a failed compaction is reported, never fails
	// the run, whose commit stands.
	r.res.AfterRun, r.res.AfterRunErr = maintainAfterRun(ctx, r.o, r.d, committed)
	return nil
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
func evolveTable(ctx context.Context, cat Catalog, tbl *catalog.Table, changes []merge.SchemaChange) (*catalog.Table, *arrow.Schema, error) {
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
	stored, err := tbl.Schema()
	return tbl, stored, err
}
