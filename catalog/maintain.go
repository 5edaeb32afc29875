package catalog

// Table maintenance: compaction that folds position deletes into rewritten
// data files, manifest rewrite, snapshot expiry that keeps the bookmark
// marker reachable, and orphan file removal. Each step is its own commit
// (or, for orphans, its own deletes) and is safe to repeat: a step that
// fails leaves the table as it was, and rerunning it does the work again.
//
// What iceberg-go v0.7.0 offers and what this file does with it:
//   - Transaction.RewriteDataFiles / ExecuteCompactionGroup remove every
//     position delete file attached to a rewritten task
//     (CollectSafePositionDeletes), including a multi-file delete file that
//     still applies to a data file outside the rewrite: that would bring
//     deleted rows back. icemerge's delete files cover many data files and
//     carry no referenced_data_file, so CollectDeadPositionDeletes keeps
//     them too often. Compact therefore decides itself, from the delete
//     files' contents, which ones die; it reads with the library's scanner
//     (deletes and schema evolution applied), writes with WriteRecords and
//     commits with Transaction.NewRewrite (a REPLACE snapshot whose
//     validator refuses concurrent deletes against rewritten files).
//   - Transaction.ExpireSnapshots, with retain-last raised so the snapshots
//     from the current one back to the one carrying the last bookmark token
//     all stay.
//   - Transaction.RewriteManifests (data manifests only, as the library
//     does).
//   - Table.PlanOrphanFiles, filtered to the table's data/ and metadata/
//     folders and cross-checked against the current snapshot before
//     anything is deleted.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Snapshot summary keys of maintenance commits. A maintenance snapshot
// carries no bookmark token: LastToken finds the token in its ancestors or
// in the table property, which maintenance never changes.
const (
	KeyMaintenance   = "icemerge.maintenance"    // the step: compact
	KeyMaintenanceID = "icemerge.maintenance-id" // unique per commit, to recognise it after a lost answer
	KeyFoldedDeletes = "icemerge.deleted-rows-folded"
)

// Defaults of the maintenance thresholds.
const (
	DefaultTargetFileSize = 128 << 20
	DefaultMinInputFiles  = 2
)

// CompactOptions select the data files Compact rewrites.
type CompactOptions struct {
	// TargetFileSize is the size at which new data files roll over.
	TargetFileSize int64
	// SmallFileSize: data files below it are merged (0: 3/4 of
	// TargetFileSize). A data file with deleted rows is always rewritten.
	SmallFileSize int64
	// MinInputFiles is how many small files (without deletes) it takes to
	// merge them; fewer are left alone.
	MinInputFiles int
	// MaxInputBytes bounds the bytes of data files one compaction reads
	// (0: no bound); files with the most deleted rows go first.
	MaxInputBytes int64
	// DryRun plans only: nothing is read or written but delete files.
	DryRun bool

	// beforeCommit runs right before the catalog commit (tests: another
	// writer's commit in between).
	beforeCommit func(context.Context) error
}

func (o CompactOptions) withDefaults() CompactOptions {
	if o.TargetFileSize <= 0 {
		o.TargetFileSize = DefaultTargetFileSize
	}
	if o.SmallFileSize <= 0 {
		o.SmallFileSize = o.TargetFileSize * 3 / 4
	}
	if o.MinInputFiles <= 0 {
		o.MinInputFiles = DefaultMinInputFiles
	}
	return o
}

// CompactResult says what Compact did (or, in a dry run, would do).
type CompactResult struct {
	DataFiles, DeleteFiles int // live files before
	Rewritten              []string
	RewrittenBytes         int64
	Added                  int
	AddedBytes             int64
	Rows                   int64 // live rows rewritten
	DeletedRows            int64 // deleted rows folded away
	DeleteFilesRemoved     []string
	DeleteFilesKept        int // live delete files left: they still apply to files not rewritten
	Snapshot               int64
}

// ErrUnsupportedDeletes means the table holds delete files icemerge does not
// read (equality deletes, deletion vectors).
var ErrUnsupportedDeletes = errors.New("unsupported delete files")

// dataEntry is a live data file and its data sequence number.
type dataEntry struct {
	df  iceberg.DataFile
	seq int64
}

// deleteEntry is a live position delete file, its data sequence number and
// what it deletes: data file → sorted positions.
type deleteEntry struct {
	df        iceberg.DataFile
	seq       int64
	positions map[string][]int64
}

// liveState is the current snapshot's files, read from its manifests.
type liveState struct {
	data          map[string]dataEntry
	order         []string // data file paths in manifest order
	deletes       []deleteEntry
	dataManifests int
	delManifests  int
}

// readLiveState lists the current snapshot's live files; with withDeletes
// it reads the content of every position delete file too.
func readLiveState(ctx context.Context, tbl *table.Table, withDeletes bool) (*liveState, error) {
	st := &liveState{data: map[string]dataEntry{}}
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return st, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest list of %s: %w", Name(tbl), err)
	}
	for _, m := range manifests {
		// Counted when they hold live files: a manifest of removed entries
		// only is skipped by readers, and dropped by the next commit.
		live := 0
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, fmt.Errorf("reading manifest %s of %s: %w", m.FilePath(), Name(tbl), err)
			}
			live++
			df := e.DataFile()
			switch {
			case df.ContentType() == iceberg.EntryContentData:
				if _, dup := st.data[df.FilePath()]; !dup {
					st.order = append(st.order, df.FilePath())
				}
				st.data[df.FilePath()] = dataEntry{df: df, seq: e.SequenceNum()}
			case df.ContentType() == iceberg.EntryContentPosDeletes && !table.IsDeletionVector(df):
				st.deletes = append(st.deletes, deleteEntry{df: df, seq: e.SequenceNum()})
			default:
				return nil, fmt.Errorf("table %s has %s delete file %s: %w; icemerge maintains tables with position deletes only (compact it with Athena OPTIMIZE first)",
					Name(tbl), df.ContentType(), df.FilePath(), ErrUnsupportedDeletes)
			}
		}
		switch {
		case live == 0:
		case m.ManifestContent() == iceberg.ManifestContentDeletes:
			st.delManifests++
		default:
			st.dataManifests++
		}
	}
	if withDeletes {
		for i := range st.deletes {
			d := &st.deletes[i]
			if d.positions, err = readPositionDeletes(ctx, fs, d.df.FilePath()); err != nil {
				return nil, err
			}
		}
	}
	return st, nil
}

// deletedIn returns the distinct positions of path's rows that the live
// delete files delete (those whose sequence number covers the file).
func (st *liveState) deletedIn(path string) []int64 {
	e := st.data[path]
	var out []int64
	for _, d := range st.deletes {
		if d.seq >= 0 && e.seq >= 0 && d.seq < e.seq {
			continue // committed before the data file: cannot apply to it
		}
		for _, p := range d.positions[path] {
			if p >= 0 && p < e.df.Count() {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Compact rewrites the data files that have deleted rows, and the small
// ones, into new data files holding only their live rows, in one REPLACE
// snapshot that also removes the position delete files which apply only to
// rewritten files. A delete file that still applies to a file not rewritten
// is kept. Before committing it checks that the rows written are exactly
// the rows the old files held minus the deleted ones. A commit refused
// because another writer moved the table on returns ErrCommitConflict;
// nothing is visible then and the new files are removed.
func (c *Catalog) Compact(ctx context.Context, t *Table, o CompactOptions) (*Table, CompactResult, error) {
	tbl, r, err := c.compact(ctx, t.t, o)
	return wrap(tbl), r, err
}

func (c *Catalog) compact(ctx context.Context, tbl *table.Table, o CompactOptions) (*table.Table, CompactResult, error) {
	o = o.withDefaults()
	var res CompactResult
	if tbl.CurrentSnapshot() == nil {
		return tbl, res, nil
	}
	// A partitioned table is compacted the same way: position deletes name
	// their data files by path, the scan applies them per partition, and
	// the writer writes each partition's rows to files of that partition.
	st, err := readLiveState(ctx, tbl, true)
	if err != nil {
		return nil, res, err
	}
	res.DataFiles, res.DeleteFiles = len(st.data), len(st.deletes)

	// Select: every file with deleted rows (most deleted first), then the
	// small files (smallest first) if there are enough of them.
	type cand struct {
		path    string
		size    int64
		deleted []int64
	}
	var dirty, small []cand
	for _, p := range st.order {
		e := st.data[p]
		c := cand{path: p, size: e.df.FileSizeBytes(), deleted: st.deletedIn(p)}
		switch {
		case len(c.deleted) > 0:
			dirty = append(dirty, c)
		case c.size < o.SmallFileSize:
			small = append(small, c)
		}
	}
	slices.SortStableFunc(dirty, func(a, b cand) int { return len(b.deleted) - len(a.deleted) })
	slices.SortStableFunc(small, func(a, b cand) int { return int(min(max(a.size-b.size, -1), 1)) })
	var picked []cand
	var budget int64
	take := func(cs []cand) {
		for _, c := range cs {
			if o.MaxInputBytes > 0 && budget+c.size > o.MaxInputBytes && len(picked) > 0 {
				return
			}
			picked = append(picked, c)
			budget += c.size
		}
	}
	take(dirty)
	// Small files are worth merging only with each other or into the
	// rewrite of dirty files.
	if len(small) >= o.MinInputFiles || (len(picked) > 0 && len(small) > 0) {
		n := len(picked)
		take(small)
		if len(dirty) == 0 && len(picked)-n < o.MinInputFiles {
			picked = picked[:n] // the budget cut the merge below the minimum
		}
	}
	if len(picked) == 0 {
		res.DeleteFilesKept = len(st.deletes)
		return tbl, res, nil
	}
	// Keep the table's file order (commit order), so the rows of one run
	// stay together.
	rank := map[string]int{}
	for i, p := range st.order {
		rank[p] = i
	}
	slices.SortFunc(picked, func(a, b cand) int { return rank[a.path] - rank[b.path] })

	rewritten := map[string]bool{}
	var wantRows int64
	for _, c := range picked {
		rewritten[c.path] = true
		res.Rewritten = append(res.Rewritten, c.path)
		res.RewrittenBytes += c.size
		res.DeletedRows += int64(len(c.deleted))
		wantRows += st.data[c.path].df.Count() - int64(len(c.deleted))
	}
	res.Rows = wantRows
	// A delete file dies when no data file it names survives.
	var dead []iceberg.DataFile
	for _, d := range st.deletes {
		alive := false
		for p := range d.positions {
			if _, live := st.data[p]; live && !rewritten[p] {
				alive = true
				break
			}
		}
		if alive {
			res.DeleteFilesKept++
		} else {
			dead = append(dead, d.df)
			res.DeleteFilesRemoved = append(res.DeleteFilesRemoved, d.df.FilePath())
		}
	}
	if o.DryRun {
		return tbl, res, nil
	}

	// The library's scan tasks for the picked files, whole, so the reader
	// applies the deletes it attaches; checked against the deletes read
	// above before anything is written.
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, res, fmt.Errorf("planning the scan of %s: %w", Name(tbl), err)
	}
	byPath := map[string]table.FileScanTask{}
	for _, t := range tasks {
		p := t.File.FilePath()
		if !rewritten[p] {
			continue
		}
		if _, seen := byPath[p]; seen {
			continue // another split of the file
		}
		t.Start, t.Length = 0, t.File.FileSizeBytes()
		byPath[p] = t
		planned := map[int64]bool{}
		for _, df := range t.DeleteFiles {
			for _, d := range st.deletes {
				if d.df.FilePath() == df.FilePath() {
					for _, pos := range d.positions[p] {
						if pos >= 0 && pos < t.File.Count() {
							planned[pos] = true
						}
					}
				}
			}
		}
		if n := len(st.deletedIn(p)); len(planned) != n || len(t.EqualityDeleteFiles) > 0 || len(t.DeletionVectorFiles) > 0 {
			return nil, res, fmt.Errorf("compacting %s: the scan of data file %s applies %d deleted rows, its delete files hold %d: refusing to rewrite it (nothing was written)",
				Name(tbl), p, len(planned), n)
		}
	}
	var readTasks []table.FileScanTask
	for _, c := range picked {
		t, ok := byPath[c.path]
		if !ok {
			return nil, res, fmt.Errorf("compacting %s: data file %s is not in the scan of the current snapshot (nothing was written; rerun)", Name(tbl), c.path)
		}
		readTasks = append(readTasks, t)
	}

	sc, records, err := tbl.Scan().ReadTasks(ctx, readTasks)
	if err != nil {
		return nil, res, fmt.Errorf("reading the data files of %s to compact: %w", Name(tbl), err)
	}
	var readRows int64
	counted := func(yield func(arrow.RecordBatch, error) bool) {
		for rec, err := range records {
			if err == nil {
				readRows += rec.NumRows()
			}
			if !yield(rec, err) {
				return
			}
		}
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, res, fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	var added []iceberg.DataFile
	removeAdded := func() {
		for _, df := range added {
			if rerr := fs.Remove(df.FilePath()); rerr != nil {
				c.log.Warn("removing a data file of the failed compaction; orphan file removal deletes it later", "file", df.FilePath(), "error", rerr)
			}
		}
	}
	var writtenRows int64
	for df, err := range table.WriteRecords(ctx, tbl, sc, counted,
		table.WithTargetFileSize(o.TargetFileSize), table.WithRecordBatchBufferSize(2)) {
		if err != nil {
			removeAdded()
			return nil, res, fmt.Errorf("writing the compacted data files of %s: %w (nothing was committed)", Name(tbl), err)
		}
		added = append(added, df)
		writtenRows += df.Count()
		res.AddedBytes += df.FileSizeBytes()
	}
	res.Added = len(added)
	if readRows != wantRows || writtenRows != wantRows {
		removeAdded()
		return nil, res, fmt.Errorf("compacting %s: read %d and wrote %d rows where the old files hold %d live rows: refusing to commit (nothing was committed)",
			Name(tbl), readRows, writtenRows, wantRows)
	}

	id := newMaintenanceID()
	props := iceberg.Properties{KeyMaintenance: "compact", KeyMaintenanceID: id, KeyFoldedDeletes: strconv.FormatInt(res.DeletedRows, 10)}
	tx := tbl.NewTransaction()
	rw := tx.NewRewrite(props)
	for _, c := range picked {
		rw.DeleteFile(st.data[c.path].df)
	}
	for _, df := range added {
		rw.AddDataFile(df)
	}
	for _, df := range dead {
		rw.DeleteFile(df)
	}
	if err := rw.Commit(ctx); err != nil {
		removeAdded()
		return nil, res, fmt.Errorf("staging the compaction of %s: %w (nothing was committed)", Name(tbl), err)
	}
	if o.beforeCommit != nil {
		if err := o.beforeCommit(ctx); err != nil {
			removeAdded()
			return nil, res, err
		}
	}
	committed, err := c.commitMaintenance(ctx, tbl, tx, "compaction", func(t *table.Table) bool { return hasMaintenanceID(t, id) })
	if err != nil {
		if errors.Is(err, ErrCommitConflict) {
			removeAdded()
		}
		return nil, res, err
	}
	res.Snapshot = snapshotID(committed)
	return committed, res, nil
}

func newMaintenanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// hasMaintenanceID reports whether a snapshot in the table's current
// ancestry carries the maintenance id.
func hasMaintenanceID(tbl *table.Table, id string) bool {
	md := tbl.Metadata()
	for s := md.CurrentSnapshot(); s != nil; {
		if s.Summary != nil && s.Summary.Properties[KeyMaintenanceID] == id {
			return true
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return false
}

// commitMaintenance commits tx. When the commit reports an error it
// reloads the table: if done says the change is there, it committed (the
// answer was lost); if the table moved on, or the catalog refused, it is
// ErrCommitConflict (nothing committed, rerun); else the error says the
// outcome and what to do.
func (c *Catalog) commitMaintenance(ctx context.Context, tbl *table.Table, tx *table.Transaction, what string, done func(*table.Table) bool) (*table.Table, error) {
	committed, err := tx.Commit(ctx)
	if err == nil {
		return committed, nil
	}
	if committed != nil {
		// The catalog took the commit; a step after it (the removal of
		// expired files) failed. The files left are orphans.
		c.log.Warn("the "+what+" committed but cleaning up after it failed; orphan file removal deletes what is left", "table", Name(tbl), "error", err)
		return committed, nil
	}
	reloaded, found, lerr := c.load(context.WithoutCancel(ctx), tbl.Identifier())
	if lerr == nil && found && done(reloaded) {
		c.log.Warn("the "+what+" commit reported an error but the table shows it: it committed", "table", Name(tbl), "error", err)
		return reloaded, nil
	}
	if errors.Is(err, table.ErrCommitFailed) || (lerr == nil && found && snapshotID(reloaded) != snapshotID(tbl)) {
		return nil, fmt.Errorf("%w: the %s of %s was not committed: %w (nothing changed; rerun)", ErrCommitConflict, what, Name(tbl), err)
	}
	if lerr != nil {
		return nil, fmt.Errorf("committing the %s of %s: %w; and reloading it to check the outcome failed: %w (the table is consistent either way; rerun)", what, Name(tbl), err, lerr)
	}
	return nil, fmt.Errorf("committing the %s of %s: %w (nothing was committed; rerun)", what, Name(tbl), err)
}

// ManifestsResult counts the current snapshot's manifests.
type ManifestsResult struct {
	DataBefore, DeleteBefore int
	DataAfter, DeleteAfter   int
	Snapshot                 int64 // 0: nothing to merge
}

// RewriteManifests merges the current snapshot's data manifests into few,
// target-sized ones (delete manifests are left as they are), as one REPLACE
// snapshot. A dry run counts only.
func (c *Catalog) RewriteManifests(ctx context.Context, t *Table, dryRun bool) (*Table, ManifestsResult, error) {
	tbl, r, err := c.rewriteManifests(ctx, t.t, dryRun)
	return wrap(tbl), r, err
}

func (c *Catalog) rewriteManifests(ctx context.Context, tbl *table.Table, dryRun bool) (*table.Table, ManifestsResult, error) {
	var res ManifestsResult
	if tbl.CurrentSnapshot() == nil {
		return tbl, res, nil
	}
	st, err := readLiveState(ctx, tbl, false)
	if err != nil {
		return nil, res, err
	}
	res.DataBefore, res.DeleteBefore = st.dataManifests, st.delManifests
	res.DataAfter, res.DeleteAfter = res.DataBefore, res.DeleteBefore
	if dryRun || res.DataBefore <= 1 {
		return tbl, res, nil
	}
	tx := tbl.NewTransaction()
	rr, err := tx.RewriteManifests(ctx)
	if err != nil {
		return nil, res, fmt.Errorf("rewriting the manifests of %s: %w (nothing was committed)", Name(tbl), err)
	}
	if rr.IsNoOp() {
		return tbl, res, nil
	}
	base := snapshotID(tbl)
	committed, err := c.commitMaintenance(ctx, tbl, tx, "manifest rewrite", func(t *table.Table) bool {
		s := t.CurrentSnapshot()
		return s != nil && s.ParentSnapshotID != nil && *s.ParentSnapshotID == base && s.Summary != nil && s.Summary.Operation == table.OpReplace
	})
	if err != nil {
		return nil, res, err
	}
	after, err := readLiveState(ctx, committed, false)
	if err != nil {
		return nil, res, err
	}
	res.DataAfter, res.DeleteAfter, res.Snapshot = after.dataManifests, after.delManifests, snapshotID(committed)
	return committed, res, nil
}

// ExpireOptions say which snapshots ExpireSnapshots removes.
type ExpireOptions struct {
	OlderThan  time.Duration // snapshots older than this may go
	RetainLast int           // the newest this many of the current ancestry always stay
	DryRun     bool
}

// ExpireResult says what ExpireSnapshots did (or would do).
type ExpireResult struct {
	Before  int
	Expired []int64
	// Marker is the snapshot whose summary holds the table's last bookmark
	// token, kept with every snapshot after it (0: none in the metadata;
	// the token lives in the table property).
	Marker int64
}

// ExpireSnapshots removes the snapshots older than o.OlderThan beyond the
// newest o.RetainLast, and deletes the files only they referenced. It never
// removes the current snapshot, nor the snapshots from it back to the one
// carrying the last bookmark token: the run protocol (LastToken) reads the
// token there, and the table property keeps it too. It checks before the
// commit that the table's last token stays the same.
func (c *Catalog) ExpireSnapshots(ctx context.Context, t *Table, o ExpireOptions) (*Table, ExpireResult, error) {
	tbl, r, err := c.expireSnapshots(ctx, t.t, o)
	return wrap(tbl), r, err
}

func (c *Catalog) expireSnapshots(ctx context.Context, tbl *table.Table, o ExpireOptions) (*table.Table, ExpireResult, error) {
	md := tbl.Metadata()
	res := ExpireResult{Before: len(md.Snapshots())}
	if md.CurrentSnapshot() == nil || res.Before <= 1 {
		return tbl, res, nil
	}
	retain := max(o.RetainLast, 1)
	depth := 0
	for s := md.CurrentSnapshot(); s != nil; depth++ {
		if s.Summary != nil && s.Summary.Properties[KeyToken] != "" {
			res.Marker = s.SnapshotID
			retain = max(retain, depth+1)
			break
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithOlderThan(o.OlderThan), table.WithRetainLast(retain), table.WithPostCommit(true)); err != nil {
		return nil, res, fmt.Errorf("expiring the snapshots of %s: %w", Name(tbl), err)
	}
	staged, err := tx.StagedTable()
	if err != nil {
		return nil, res, fmt.Errorf("expiring the snapshots of %s: %w", Name(tbl), err)
	}
	kept := map[int64]bool{}
	for _, s := range staged.Metadata().Snapshots() {
		kept[s.SnapshotID] = true
	}
	for _, s := range md.Snapshots() {
		if !kept[s.SnapshotID] {
			res.Expired = append(res.Expired, s.SnapshotID)
		}
	}
	if len(res.Expired) == 0 || o.DryRun {
		return tbl, res, nil
	}
	if before, after := LastToken(tbl), LastToken(staged.Table); before != after || !kept[snapshotID(tbl)] || (res.Marker != 0 && !kept[res.Marker]) {
		return nil, res, fmt.Errorf("expiring the snapshots of %s would change its last bookmark token (%q → %q): refusing (nothing was changed)", Name(tbl), before, after)
	}
	committed, err := c.commitMaintenance(ctx, tbl, tx, "snapshot expiry", func(t *table.Table) bool {
		return t.Metadata().SnapshotByID(res.Expired[0]) == nil
	})
	if err != nil {
		return nil, res, err
	}
	return committed, res, nil
}

// OrphanOptions say which unreferenced files RemoveOrphans deletes.
type OrphanOptions struct {
	// OlderThan protects files written recently (by a run or another
	// writer in flight: they are not referenced until its commit).
	OlderThan time.Duration
	// Exclude are location prefixes never touched (the bookmark folder,
	// should it lie under the table).
	Exclude []string
	DryRun  bool
}

// OrphanFile is a file no snapshot of the table references.
type OrphanFile struct {
	Path string
	Size int64
}

// OrphanResult says what RemoveOrphans removed (or would remove).
type OrphanResult struct {
	Files   []OrphanFile
	Bytes   int64
	Removed int
}

// RemoveOrphans deletes the files under the table's data/ and metadata/
// folders that no metadata file, snapshot or manifest of the table
// references and that are older than o.OlderThan: the files of runs that
// died before their commit, and of expired snapshots whose cleanup did not
// finish.
func (c *Catalog) RemoveOrphans(ctx context.Context, t *Table, o OrphanOptions) (OrphanResult, error) {
	return c.removeOrphans(ctx, t.t, o)
}

func (c *Catalog) removeOrphans(ctx context.Context, tbl *table.Table, o OrphanOptions) (OrphanResult, error) {
	var res OrphanResult
	if o.OlderThan <= 0 {
		return res, fmt.Errorf("removing orphan files of %s: the age threshold must be positive, so files of a commit in flight are kept", Name(tbl))
	}
	plan, err := tbl.PlanOrphanFiles(ctx, table.WithFilesOlderThan(o.OlderThan), table.WithPrefixMismatchMode(table.PrefixMismatchIgnore))
	if err != nil {
		return res, fmt.Errorf("listing orphan files of %s: %w", Name(tbl), err)
	}
	loc := strings.TrimSuffix(normalPath(tbl.Location()), "/")
	// Belt and braces: never a file the current snapshot uses.
	live, err := currentFiles(ctx, tbl)
	if err != nil {
		return res, err
	}
	for _, f := range plan.OrphanFiles() {
		p := normalPath(f.Path)
		if !strings.HasPrefix(p, loc+"/data/") && !strings.HasPrefix(p, loc+"/metadata/") {
			continue
		}
		if slices.ContainsFunc(o.Exclude, func(x string) bool {
			return x != "" && strings.HasPrefix(p, strings.TrimSuffix(normalPath(x), "/")+"/")
		}) {
			continue
		}
		if live[p] {
			return res, fmt.Errorf("removing orphan files of %s: %s was listed as an orphan but the current snapshot uses it: refusing to delete anything (report this)", Name(tbl), f.Path)
		}
		res.Files = append(res.Files, OrphanFile{Path: f.Path, Size: f.SizeBytes})
		res.Bytes += f.SizeBytes
	}
	slices.SortFunc(res.Files, func(a, b OrphanFile) int { return strings.Compare(a.Path, b.Path) })
	if o.DryRun || len(res.Files) == 0 {
		return res, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return res, fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	var errs []error
	for _, f := range res.Files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := fs.Remove(f.Path); err != nil {
			errs = append(errs, fmt.Errorf("removing orphan file %s: %w", f.Path, err))
			continue
		}
		res.Removed++
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("%d of %d orphan files of %s could not be removed (rerun): %w", len(errs), len(res.Files), Name(tbl), errors.Join(errs...))
	}
	return res, nil
}

// normalPath spells local locations without file:// so paths compare.
func normalPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "file://"); ok {
		return rest
	}
	return p
}

// currentFiles are the files the current snapshot reads: metadata file,
// manifest list, manifests, data and delete files.
func currentFiles(ctx context.Context, tbl *table.Table) (map[string]bool, error) {
	out := map[string]bool{normalPath(tbl.MetadataLocation()): true}
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return out, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	out[normalPath(snap.ManifestList)] = true
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest list of %s: %w", Name(tbl), err)
	}
	for _, m := range manifests {
		out[normalPath(m.FilePath())] = true
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, fmt.Errorf("reading manifest %s of %s: %w", m.FilePath(), Name(tbl), err)
			}
			out[normalPath(e.DataFile().FilePath())] = true
		}
	}
	return out, nil
}

// TableStats counts a table's live files and snapshots, for deciding
// whether maintenance is due.
type TableStats struct {
	DataFiles, DeleteFiles int
	Snapshots              int
}

// Stats reads the counts from the current snapshot's summary (no file is
// read).
func Stats(tbl *table.Table) TableStats {
	st := TableStats{Snapshots: len(tbl.Metadata().Snapshots())}
	if s := tbl.CurrentSnapshot(); s != nil && s.Summary != nil {
		st.DataFiles, _ = strconv.Atoi(s.Summary.Properties["total-data-files"])
		st.DeleteFiles, _ = strconv.Atoi(s.Summary.Properties["total-delete-files"])
	}
	return st
}
