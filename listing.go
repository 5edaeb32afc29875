package icemerge

// The listing step of a run, and what it makes of what it finds besides
// new files: files that arrived late with older names, applied files that
// are gone (a source TRUNCATE, or an S3 lifecycle rule expiring them), a
// new full load written after CDC files were applied (a DMS reload), and a
// lost bookmark.
//
// How much a run lists. A local folder is listed whole every run. On S3 a
// run lists only what is named after the bookmark's watermark
// (source.Bucket.ListRecent: a few requests, whatever the date folders'
// layout), and the whole folder when
//   - the bookmark has no watermark yet (nothing settled),
//   - the last full listing is --full-list-every old (24 h by default),
//   - the listing shows a new LOAD file after CDC files were applied, or
//     the newest applied file is gone (one list request checks it when the
//     listing did not show it): a reload or a truncate needs to know every
//     file.
//
// A full listing is what finds a late file (named at or before the
// watermark, not recorded): with order columns it is applied like any new
// file, and a change older than the table's row never wins; with source
// order it would overwrite newer changes, so it is quarantined instead.
// Both are reported and logged.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// ErrMissingBookmark means the table has icemerge commits but no bookmark
// is saved where the run looks for it.
var ErrMissingBookmark = errors.New("the bookmark is missing")

// recentLister is what an S3 source (source.Bucket) offers besides List:
// listing only what is named after the watermark, and finding one object.
type recentLister interface {
	ListRecent(ctx context.Context, since string, now time.Time, fn func(source.Object) error) (int, error)
	Stat(ctx context.Context, key string) (source.Object, bool, error)
}

var _ recentLister = (*source.Bucket)(nil)

// Listing is what a run's listing found besides the files it applies.
type Listing struct {
	// Full: the run listed the whole source folder, for the reason Why;
	// otherwise it listed what is named after the watermark, in Requests
	// list requests.
	Full     bool
	Why      string
	Requests int
	// Late are CDC files found unrecorded though named at or before the
	// watermark. LateSkipped: they were quarantined, not applied (source
	// order).
	Late        []string
	LateSkipped bool
	// Gone counts the applied files no longer in the folder (GoneKeys
	// names the first few); AllGone: every applied file is gone. Truncate
	// says what the run did about it.
	Gone     int
	GoneKeys []string
	AllGone  bool
	Truncate string
	// Reload is a new full load DMS wrote after CDC files were applied.
	Reload *ReloadStatus
	// Superseded are CDC files written before a reload's full load: the
	// reload replaces them; they are quarantined, not applied.
	Superseded []string
	// MissingBookmark: the table has icemerge commits but no bookmark was
	// saved; --on-missing-bookmark rebuild applies every file again.
	MissingBookmark bool
}

// ReloadStatus is a DMS reload a listing found.
type ReloadStatus struct {
	// Loads are the new LOAD files.
	Loads []string `json:"loads"`
	// Complete: a CDC file was written after every new LOAD file (DMS
	// writes a table's CDC files only after its load), or the newest is
	// --reload-quiet-after old. Until then runs wait and apply nothing.
	Complete bool `json:"complete"`
}

// What a run did about applied files that are gone (Listing.Truncate).
const (
	TruncateReported   = "reported"    // the table is left as it is
	TruncateEmptied    = "emptied"     // --on-truncate empty
	TruncateNotEmptied = "not emptied" // every file is gone, but may have expired
)

// lifecycleMinAge: an S3 lifecycle rule expires an object a day after its
// creation at the earliest. Files gone younger than that were deleted.
const lifecycleMinAge = 24 * time.Hour

// maxNamed bounds the keys a report names (GoneKeys, in the bookmark).
const maxNamed = 10

// sourceView is a listing of the source read against a bookmark.
type sourceView struct {
	full     bool
	requests int
	listed   int             // objects listed, data or not
	all      []source.Object // the objects listed, data or not
	data     []source.Object // the data objects listed
	todo     []source.Object // those the bookmark has not applied, in source order
	keys     map[string]bool // the data keys, built on demand
}

// canListRecent reports whether src lists less than the whole folder when
// asked to.
func canListRecent(src Source) bool {
	_, ok := src.(recentLister)
	return ok
}

// listSource lists the source against st: the whole folder when full, or
// when st has no watermark or src cannot list less; else what is named
// after the watermark.
func listSource(ctx context.Context, src Source, st bookmark.State, now time.Time, full bool) (*sourceView, error) {
	v := &sourceView{full: true}
	fn := func(o source.Object) error {
		v.listed++
		v.all = append(v.all, o)
		if source.Classify(o.Key) == merge.NotData {
			return nil
		}
		v.data = append(v.data, o)
		if !st.Applied(o) {
			v.todo = append(v.todo, o)
		}
		return nil
	}
	var err error
	if rl, ok := src.(recentLister); ok && !full && st.Settled != "" {
		v.full = false
		v.requests, err = rl.ListRecent(ctx, st.Settled, now, fn)
	} else {
		err = src.List(ctx, "", fn)
	}
	if err != nil {
		return nil, err
	}
	v.todo = source.SortObjects(v.todo)
	return v, nil
}

// has reports whether the listing holds a data object with key.
func (v *sourceView) has(key string) bool {
	if v.keys == nil {
		v.keys = make(map[string]bool, len(v.data))
		for _, o := range v.data {
			v.keys[o.Key] = true
		}
	}
	return v.keys[key]
}

// loads are the unprocessed full-load files.
func (v *sourceView) loads() []source.Object {
	var out []source.Object
	for _, o := range v.todo {
		if o.Kind() == merge.FullLoad {
			out = append(out, o)
		}
	}
	return out
}

// gone returns the objects st recorded that a full listing no longer
// holds, in source order, and whether none of the objects st applied is
// there any more (false when nothing was recorded).
func (v *sourceView) gone(st bookmark.State) (gone []string, all bool) {
	all = true
	for _, o := range v.data {
		if st.Recorded(o.Key) || st.Assumed(o.Key) {
			all = false
			break
		}
	}
	for k := range st.Files {
		if !v.has(k) {
			gone = append(gone, k)
		}
	}
	for k := range st.SettledFiles.All() {
		if !v.has(k) {
			gone = append(gone, k)
		}
	}
	slices.SortFunc(gone, source.CompareKeys)
	return gone, all && len(gone) > 0
}

// newestGone reports whether the newest object st recorded is gone: what a
// truncate or a reload does first. A windowed listing shows it unless it
// is old; then one list request looks for it.
func newestGone(ctx context.Context, src Source, st bookmark.State, v *sourceView) (bool, error) {
	k := st.Newest()
	rl, ok := src.(recentLister)
	if k == "" || v.has(k) || !ok {
		return false, nil
	}
	_, found, err := rl.Stat(ctx, k)
	return !found, err
}

// reloadComplete reports whether a reload's full load is complete: a CDC
// file among todo was written after every new LOAD file (DMS writes a
// table's CDC files only after its load has finished), or the newest LOAD
// file is quiet old (quiet 0: never).
func reloadComplete(loads, todo []source.Object, now time.Time, quiet time.Duration) bool {
	var newest time.Time
	for _, o := range loads {
		if o.ModTime.After(newest) {
			newest = o.ModTime
		}
	}
	for _, o := range todo {
		if o.Kind() == merge.CDC && !o.ModTime.Before(newest) {
			return true
		}
	}
	return quiet > 0 && now.Sub(newest) >= quiet
}

// keysOf lists the objects' keys.
func keysOf(objs []source.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

// firstKeys is at most maxNamed of keys, for reports.
func firstKeys(keys []string) []string {
	return slices.Clone(keys[:min(len(keys), maxNamed)])
}

// listView lists the source for a run: whole when due (see the file
// comment), else what is named after the watermark, and whole after all
// when that shows a reload or the newest applied file gone.
func (r *run) listView(ctx context.Context, now time.Time) (*sourceView, error) {
	why := ""
	switch {
	case !canListRecent(r.d.Source):
		why = "local folder"
	case r.st.Settled == "":
		why = "nothing settled yet"
	case r.o.FullListEvery <= 0 || now.Sub(r.st.FullListing) >= r.o.FullListEvery:
		why = "due (--full-list-every)"
	}
	v, err := listSource(ctx, r.d.Source, r.st, now, why != "")
	if err != nil || v.full {
		r.res.Listing.Why = why
		return v, err
	}
	switch gone, err := newestGone(ctx, r.d.Source, r.st, v); {
	case err != nil:
		return nil, err
	case len(v.loads()) > 0 && r.st.AppliedCDC():
		why = "a new full load"
	case gone:
		why = "the newest applied file is gone"
	default:
		return v, nil
	}
	r.log.Info("listing the whole source folder", "why", why)
	r.res.Listing.Why = why
	return listSource(ctx, r.d.Source, r.st, now, true)
}

// list lists the source and decides what this run applies, in source
// order: a reload replaces the table's rows, late files are applied or
// set aside, applied files found gone are reported (and may empty the
// table), and the batch is bounded (--max-files, --max-bytes).
func (r *run) list(ctx context.Context) error {
	now := r.d.Now()
	lst := &r.res.Listing
	v, err := r.listView(ctx, now)
	if err != nil {
		return err
	}
	r.view = v
	r.lap(&r.res.Time.List)
	r.res.Listed, lst.Full, lst.Requests = v.listed, v.full, v.requests
	var gone []string
	if v.full {
		if canListRecent(r.d.Source) {
			// Saved with whatever the run saves; worth a save of its own
			// only once a watermark lets runs list less.
			r.st.FullListing = now.UTC()
			r.dirty = r.dirty || r.st.Settled != ""
		}
		var all bool
		gone, all = v.gone(r.st)
		lst.Gone, lst.GoneKeys, lst.AllGone = len(gone), firstKeys(gone), all
		if r.st.Horizon != "" || r.st.LegacySettled != "" {
			r.st, r.dirty = r.st.Materialize(v.data, now), true
		}
	}
	todo := v.todo

	if loads := v.loads(); len(loads) > 0 && r.st.AppliedCDC() {
		var err error
		if todo, err = r.reloaded(loads, todo, gone, now); err != nil || todo == nil {
			return err
		}
	} else if len(gone) > 0 {
		r.truncated(gone, now)
	}
	todo = r.late(todo, now)
	if v.full && (lst.Gone > 0 || len(lst.Late) > 0) {
		r.st.Check = &bookmark.Check{At: now.UTC(), Gone: lst.Gone, GoneKeys: lst.GoneKeys, AllGone: lst.AllGone,
			Late: len(lst.Late), LateKeys: firstKeys(lst.Late)}
		r.dirty = true
	}

	r.todo, r.left = r.o.bound(todo)
	if r.replace == bookmark.ReplaceReload {
		// The whole new full load goes into the reload's commit.
		if n := len(r.res.Listing.Reload.Loads); len(r.todo) < n {
			r.todo, r.left = todo[:n], todo[n:]
		}
	}
	r.res.Files, r.res.Left = len(r.todo), len(r.left)
	return r.warnings(ctx)
}

// eachListed calls fn for every object the run's listing saw, data or not.
func (r *run) eachListed(fn func(source.Object) error) error {
	if r.view == nil {
		return nil
	}
	for _, o := range r.view.all {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// reloaded handles a new full load written after CDC files were applied:
// --on-reload fail stops the run; an incomplete load makes the run wait
// (it returns nil: nothing to apply); a complete one makes this run's
// commit replace the table's rows with the new load and the changes after
// it, forgetting the files it replaces. It returns the batch.
func (r *run) reloaded(loads, todo []source.Object, gone []string, now time.Time) ([]source.Object, error) {
	rel := &ReloadStatus{Loads: keysOf(loads), Complete: reloadComplete(loads, todo, now, r.o.ReloadQuietAfter)}
	r.res.Listing.Reload = rel
	if r.o.OnReload == OnReloadFail {
		return nil, fmt.Errorf("table %s: DMS reloaded it: %d new full-load files (%s…) after CDC files were applied; --on-reload fail stops here "+
			"(nothing was changed): run with --on-reload apply to replace the table's rows with the new full load and the changes after it",
			r.o.Table, len(loads), loads[0].Key)
	}
	if !rel.Complete {
		r.res.Outcome = OutcomeReloadWaiting
		r.left = todo
		r.res.Left = len(todo)
		r.log.Warn("DMS is reloading the table: waiting for its full load to complete (a CDC file written after it); nothing applied",
			"loads", len(loads), "first", loads[0].Key)
		return nil, nil
	}
	first := loads[0].ModTime
	for _, o := range loads {
		if o.ModTime.Before(first) {
			first = o.ModTime
		}
	}
	// CDC files written before the new load are the old table's: the
	// reload replaces them. They are recorded, not applied.
	var batch, before []source.Object
	for _, o := range todo {
		if o.Kind() == merge.CDC && o.ModTime.Before(first) {
			before = append(before, o)
			continue
		}
		batch = append(batch, o)
	}
	if len(before) > 0 {
		q := map[string]bookmark.Quarantined{}
		for _, o := range before {
			q[o.Key] = bookmark.QuarantineOf(o, "written before the full load of a DMS reload, which replaces it: not applied", now)
		}
		r.st = r.st.Quarantine(before, q, now)
		r.res.Listing.Superseded = keysOf(before)
		r.log.Warn("CDC files written before the reload's full load are not applied", "files", len(before), "first", before[0].Key)
	}
	r.replace, r.forget = bookmark.ReplaceReload, gone
	r.st.Tombstones = bookmark.TombstoneSet{} // a reload starts the table's history again
	r.log.Warn("DMS reloaded the table: this run replaces its rows with the new full load and the changes after it, in one commit",
		"loads", len(loads), "files gone", len(gone))
	return batch, nil
}

// truncated handles applied files found gone without a new full load:
// always reported; with --on-truncate empty, when every applied file is
// gone and the newest of them could not have expired yet, this run's
// commit empties the table first. Otherwise the records of the gone files
// are dropped (they are reported once) and the table is left as it is.
func (r *run) truncated(gone []string, now time.Time) {
	lst := &r.res.Listing
	young := now.Sub(r.st.NewestModTime) < lifecycleMinAge
	switch {
	case lst.AllGone && r.o.OnTruncate == OnTruncateEmpty && young:
		lst.Truncate = TruncateEmptied
		r.replace, r.forget = bookmark.ReplaceTruncate, gone
		r.st.Tombstones = bookmark.TombstoneSet{}
		r.log.Warn("every applied source file is gone (a source TRUNCATE): --on-truncate empty empties the table and applies the new files to it, in one commit",
			"gone", len(gone))
		return
	case lst.AllGone && r.o.OnTruncate == OnTruncateEmpty:
		lst.Truncate = TruncateNotEmptied
		r.log.Warn("every applied source file is gone, but the newest was written over a day ago: an S3 lifecycle rule may have expired them, so the table is left as it is "+
			"(if the source table was truncated, drop the table and reset the bookmark to rebuild it from the new files)",
			"gone", len(gone), "newest modified", r.st.NewestModTime)
	default:
		lst.Truncate = TruncateReported
		r.log.Warn("applied source files are gone (expired, deleted, or a source TRUNCATE): the table is left as it is (--on-truncate empty empties it when every applied file is gone)",
			"gone", len(gone), "all", lst.AllGone, "first", gone[0])
	}
	r.st = r.st.Forget(gone)
	r.dirty = true
}

// late handles the CDC files named at or before the watermark that the
// bookmark has not recorded: they are reported; with source order (no
// order columns) they are quarantined rather than applied, as their
// changes would overwrite newer ones. It returns the batch.
func (r *run) late(todo []source.Object, now time.Time) []source.Object {
	var late []source.Object
	for _, o := range todo {
		if o.Kind() == merge.CDC && r.st.Late(o.Key) {
			late = append(late, o)
		}
	}
	if len(late) == 0 {
		return todo
	}
	lst := &r.res.Listing
	lst.Late = keysOf(late)
	if len(r.o.OrderBy) > 0 || r.replace != "" {
		r.log.Warn("files arrived after newer ones were applied: applying them (a change older than the table's row never wins)",
			"files", len(late), "first", late[0].Key, "watermark", r.st.Settled)
		return todo
	}
	lst.LateSkipped = true
	q := map[string]bookmark.Quarantined{}
	for _, o := range late {
		q[o.Key] = bookmark.QuarantineOf(o, "arrived after newer files were applied: with --order-by source its changes would overwrite newer ones; not applied", now)
	}
	r.st = r.st.Quarantine(late, q, now)
	r.dirty = true
	r.log.Warn("files arrived after newer ones were applied: quarantined, not applied (--order-by source)",
		"files", len(late), "first", late[0].Key, "watermark", r.st.Settled)
	return slices.DeleteFunc(todo, func(o source.Object) bool { return q[o.Key].Reason != "" })
}

// missingBookmark checks a bookmark that was never saved (ver "") against
// the table: when the table has an icemerge commit, the bookmark was lost
// (deleted, or --bookmark points elsewhere). --on-missing-bookmark fail
// (the default) stops there: rebuilding applies every file still in the
// source again, which costs a full read and, with --order-by source or
// files expired from the source, can move rows back; rebuild does it.
func (r *run) missingBookmark(ver bookmark.Version, tableToken string) error {
	if ver != "" || tableToken == "" {
		return nil
	}
	r.res.Listing.MissingBookmark = true
	if r.o.OnMissingBookmark != OnMissingBookmarkRebuild {
		return usage(fmt.Errorf("%w: table %s was last written by icemerge run %s, but no bookmark is saved at %s: it was deleted, or --bookmark points elsewhere. "+
			"Pass the --bookmark the table's runs used, or --on-missing-bookmark rebuild to apply every file in the source again (rows already current stay unchanged)",
			ErrMissingBookmark, r.o.Table, tableToken, r.d.Bookmark.Location()))
	}
	r.log.Warn("the table has icemerge commits but no bookmark is saved: rebuilding it, every source file is applied again (--on-missing-bookmark rebuild)",
		"bookmark", r.d.Bookmark.Location(), "table token", tableToken)
	return nil
}

// replaceRows makes plan (made against an empty table) replace every row
// of the table: it deletes all live rows.
func (r *run) replaceRows(ctx context.Context, plan *merge.Plan) error {
	if r.tbl == nil {
		return nil
	}
	deletes, n, err := r.tbl.LivePositions(ctx)
	if err != nil {
		return err
	}
	plan.Deletes, plan.DeleteRows, plan.RowsDeleted = deletes, n, n
	return nil
}

// emptyTable is the commit of a truncate with no new file: every row is
// deleted.
func (r *run) emptyTable(ctx context.Context) error {
	r.bad = newBadFiles(r.o, nil, r.d.Now(), r.log)
	r.plan = &merge.Plan{}
	if err := r.replaceRows(ctx, r.plan); err != nil {
		return err
	}
	r.res.Plan = r.plan
	if r.o.DryRun {
		return nil
	}
	if r.plan.Empty() {
		return r.absorb(ctx)
	}
	committed, err := r.commit(ctx)
	if err != nil {
		return err
	}
	return r.finish(ctx, committed)
}

// commitOutcome is the outcome of a run that committed.
func (r *run) commitOutcome() Outcome {
	switch r.replace {
	case bookmark.ReplaceReload:
		return OutcomeReloaded
	case bookmark.ReplaceTruncate:
		return OutcomeEmptied
	}
	return OutcomeCommitted
}

// summary is the snapshot summary of the run's commit.
func (r *run) summary(token string, p *merge.Plan) map[string]string {
	s := summary(token, p)
	if r.replace != "" {
		s[catalog.KeyReplace] = r.replace
	}
	return s
}

// appliedCount is how many files a bookmark holds as applied.
func appliedCount(st bookmark.State) int { return len(st.Files) + st.SettledFiles.Len() }

// listingReport is the report's view of a run's listing.
type listingReport struct {
	Full            bool          `json:"full"`
	Why             string        `json:"why,omitempty"`
	Requests        int           `json:"list_requests,omitempty"`
	Late            []string      `json:"late_files,omitempty"`
	LateSkipped     bool          `json:"late_quarantined,omitempty"`
	Gone            int           `json:"gone_files,omitempty"`
	GoneKeys        []string      `json:"gone_keys,omitempty"`
	AllGone         bool          `json:"all_gone,omitempty"`
	Truncate        string        `json:"truncate,omitempty"`
	Reload          *ReloadStatus `json:"reload,omitempty"`
	Superseded      []string      `json:"superseded_files,omitempty"`
	MissingBookmark bool          `json:"missing_bookmark,omitempty"`
}

func listingReportOf(l Listing) *listingReport {
	return &listingReport{Full: l.Full, Why: l.Why, Requests: l.Requests, Late: l.Late, LateSkipped: l.LateSkipped,
		Gone: l.Gone, GoneKeys: l.GoneKeys, AllGone: l.AllGone, Truncate: l.Truncate, Reload: l.Reload,
		Superseded: l.Superseded, MissingBookmark: l.MissingBookmark}
}

// writeListing writes what a run's listing found besides new files, for a
// person: one line each.
func writeListing(w io.Writer, res *Result) {
	l := res.Listing
	p := func(format string, a ...any) { fmt.Fprintf(w, "%s: "+format+"\n", append([]any{res.Table}, a...)...) }
	if l.MissingBookmark {
		p("WARNING no bookmark was saved though the table has icemerge commits: every source file was applied again")
	}
	if r := l.Reload; r != nil {
		if r.Complete {
			p("DMS reloaded the table (%d new full-load files): its rows were replaced by the new full load and the changes after it", len(r.Loads))
		} else {
			p("DMS is reloading the table (%d new full-load files so far): waiting for the load to complete; nothing applied", len(r.Loads))
		}
	}
	if len(l.Superseded) > 0 {
		p("%d CDC files written before the reload's full load were not applied (recorded as quarantined)", len(l.Superseded))
	}
	if l.Gone > 0 {
		what := map[string]string{
			TruncateReported:   "the table is left as it is",
			TruncateEmptied:    "every applied file is gone: the table was emptied (--on-truncate empty)",
			TruncateNotEmptied: "every applied file is gone, but the newest was over a day old (maybe expired): the table is left as it is",
			"":                 "the reload replaced them",
		}[l.Truncate]
		p("WARNING %d applied source files are gone (%s): %s", l.Gone, strings.Join(l.GoneKeys, ", "), what)
	}
	if n := len(l.Late); n > 0 {
		how := "applied (a change older than the table's row never wins)"
		if l.LateSkipped {
			how = "quarantined, not applied (--order-by source)"
		}
		p("WARNING %d files arrived after newer ones were applied (%s): %s", n, strings.Join(firstKeys(l.Late), ", "), how)
	}
}
