package icemerge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// putRows writes rows of badCols (user_id, name, updated_at) as a DMS file
// with the pipeline's Parquet settings.
func (e *env) putRows(key string, ops []string, rows ...dmstest.Row) {
	e.t.Helper()
	e.putDMS(key, badCols, ops, rows, dmstest.DMSOptions())
}

// at is a time of the test's source rows.
func at(minute int) time.Time { return time.Date(2024, 8, 14, 0, minute, 0, 0, time.UTC) }

// ids are the table's keys, sorted, and each row's name.
func (e *env) ids() (ids []string, names map[string]string) {
	e.t.Helper()
	names = map[string]string{}
	for k, r := range byKey(e.table().Rows, "user_id") {
		ids = append(ids, k)
		names[k], _ = r["name"].(string)
	}
	sort.Strings(ids)
	return ids, names
}

func ops(s string) []string { return strings.Fields(s) }

// onlyBackends runs fn as subtests on the given backends.
func onlyBackends(t *testing.T, backends []string, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { fn(t, newEnv(t, b)) })
	}
}

var localAndMinIO = []string{"local", "minio-sql"}

// loadAndChange applies a full load of users 1–5 and a CDC file updating 1
// and deleting 2 (a tombstone), in two runs.
func loadAndChange(t *testing.T, e *env) {
	t.Helper()
	e.putRows("LOAD00000001.parquet", ops("I I I I I"),
		dmstest.Row{int32(1), "one", at(0)}, dmstest.Row{int32(2), "two", at(0)}, dmstest.Row{int32(3), "three", at(0)},
		dmstest.Row{int32(4), "four", at(0)}, dmstest.Row{int32(5), "five", at(0)})
	e.run()
	e.putRows("20240814-000100000.parquet", ops("U D"), dmstest.Row{int32(1), "uno", at(1)}, dmstest.Row{int32(2), "two", at(1)})
	e.run()
	if ids, _ := e.ids(); strings.Join(ids, ",") != "1,3,4,5" || e.bookmark().Tombstones.Len() != 1 {
		t.Fatalf("fixture: users %v, %d tombstones", ids, e.bookmark().Tombstones.Len())
	}
}

// A DMS reload after CDC files were applied: the objects are deleted and a
// new full load of three rows is written under the same name. The run
// waits until a CDC file shows the load complete, then replaces the
// table's rows with the new load plus that file's insert, in one overwrite
// commit: user 1 (gone at the source) goes, user 2 (deleted before, its
// tombstone newer than the reload's row) comes back.
func TestReloadReplacesTheRows(t *testing.T) {
	onlyBackends(t, localAndMinIO, func(t *testing.T, e *env) {
		loadAndChange(t, e)
		snaps := len(e.snapshotSummaries())
		e.remove("LOAD00000001.parquet")
		e.remove("20240814-000100000.parquet")
		e.putRows("LOAD00000001.parquet", ops("I I I"),
			dmstest.Row{int32(2), "two again", at(0)}, dmstest.Row{int32(7), "seven", at(0)}, dmstest.Row{int32(8), "eight", at(0)})

		res := e.run()
		if res.Outcome != OutcomeReloadWaiting || res.Listing.Reload == nil || res.Listing.Reload.Complete || len(e.snapshotSummaries()) != snaps {
			t.Fatalf("before a CDC file: outcome %q, reload %+v, %d snapshots (was %d); want waiting, nothing committed",
				res.Outcome, res.Listing.Reload, len(e.snapshotSummaries()), snaps)
		}
		if st := e.status(time.Now()); st.Reload == nil || st.Reload.Complete {
			t.Errorf("status reload %+v, want an incomplete reload", st.Reload)
		}
		if !strings.Contains(e.out.String(), "waiting for DMS to finish reloading") {
			t.Errorf("output:\n%s", e.out.String())
		}

		e.putRows("20240814-001000000.parquet", ops("I"), dmstest.Row{int32(9), "nine", at(10)})
		res = e.run()
		if res.Outcome != OutcomeReloaded || res.Files != 2 || !res.Listing.Reload.Complete {
			t.Fatalf("outcome %q, %d files, reload %+v; want reloaded with 2 files", res.Outcome, res.Files, res.Listing.Reload)
		}
		ids, names := e.ids()
		if strings.Join(ids, ",") != "2,7,8,9" || names["2"] != "two again" {
			t.Errorf("users %v (%v), want the new load 2, 7, 8 and the insert 9", ids, names)
		}
		tbl := e.table()
		if tbl.Summary["operation"] != "overwrite" || tbl.Summary[catalog.KeyReplace] != "reload" || len(e.snapshotSummaries()) != snaps+1 {
			t.Errorf("snapshot %v, %d snapshots; want one overwrite snapshot marked reload, history kept", tbl.Summary, len(e.snapshotSummaries()))
		}
		bm := e.bookmark()
		if bm.Tombstones.Len() != 0 || bm.Replaced == nil || bm.Replaced.Reason != bookmark.ReplaceReload || len(bm.Files) != 2 {
			t.Errorf("bookmark: %d tombstones, replaced %+v, files %v; want the reload's two files only", bm.Tombstones.Len(), bm.Replaced, bm.SortedFiles())
		}
		if r := TableReportOf(e.opts.Table, res, nil); r.Outcome != "reloaded" || r.Listing == nil || r.Listing.Reload == nil {
			t.Errorf("report %+v", r)
		}
		st := e.status(time.Now())
		if st.Reload != nil || st.Snapshot.Replace != "reload" || st.Bookmark.Replaced == nil {
			t.Errorf("status after: reload %+v, snapshot replace %q, replaced %+v", st.Reload, st.Snapshot.Replace, st.Bookmark.Replaced)
		}
		if res := e.run(); res.Outcome != OutcomeNothingNew {
			t.Errorf("rerun: %q", res.Outcome)
		}
		// Then CDC goes on as usual.
		e.putRows("20240814-002000000.parquet", ops("U"), dmstest.Row{int32(7), "siete", at(20)})
		if res := e.run(); res.Outcome != OutcomeCommitted {
			t.Errorf("CDC after the reload: %q", res.Outcome)
		}
		if _, names := e.ids(); names["7"] != "siete" {
			t.Errorf("user 7 is %q after the update", names["7"])
		}
	})
}

// --on-reload fail stops at a reload with a clear error; nothing changes.
func TestReloadFailOption(t *testing.T) {
	e := newEnv(t, "local")
	loadAndChange(t, e)
	e.remove("20240814-000100000.parquet")
	e.putRows("LOAD00000001.parquet", ops("I"), dmstest.Row{int32(7), "seven", at(0)})
	e.putRows("20240814-001000000.parquet", ops("I"), dmstest.Row{int32(9), "nine", at(10)})
	e.opts.OnReload = OnReloadFail
	before := e.snapshotID()
	_, err := e.merge(e.deps(nil))
	if err == nil || !strings.Contains(err.Error(), "--on-reload apply") || !strings.Contains(err.Error(), "LOAD00000001.parquet") {
		t.Fatalf("err = %v, want the reload named and --on-reload apply suggested", err)
	}
	if ids, _ := e.ids(); strings.Join(ids, ",") != "1,3,4,5" || e.snapshotID() != before {
		t.Errorf("users %v: the failed run changed the table", ids)
	}
}

// A source TRUNCATE with HandleSourceTableTruncated: DMS deletes every
// object of the table, then CDC goes on from an empty table. By default the
// run reports it and applies the new file over the old rows; with
// --on-truncate empty it empties the table and applies the new file, in
// one commit; with no new file it empties it alone. On S3 the run finds it
// through the newest applied file, gone, without a full listing due.
func TestTruncate(t *testing.T) {
	for _, mode := range []string{OnTruncateIgnore, OnTruncateEmpty, "empty, no new file"} {
		t.Run(mode, func(t *testing.T) {
			onlyBackends(t, localAndMinIO, func(t *testing.T, e *env) {
				e.opts.OnTruncate = strings.Fields(mode)[0]
				e.opts.OnTruncate = strings.TrimSuffix(e.opts.OnTruncate, ",")
				now := time.Now()
				d := e.deps(nil)
				d.Now = func() time.Time { return now }
				run := func() *Result {
					t.Helper()
					res, err := e.merge(d)
					if err != nil {
						t.Fatal(err)
					}
					return res
				}
				e.putRows("LOAD00000001.parquet", ops("I I I"), dmstest.Row{int32(1), "one", at(0)}, dmstest.Row{int32(2), "two", at(0)}, dmstest.Row{int32(3), "three", at(0)})
				run()
				e.putRows("20240814-000100000.parquet", ops("U"), dmstest.Row{int32(1), "uno", at(1)})
				run()
				now = now.Add(20 * time.Minute)
				run() // settles
				now = now.Add(10 * time.Minute)
				e.remove("LOAD00000001.parquet")
				e.remove("20240814-000100000.parquet")
				if mode != "empty, no new file" {
					e.putRows("20240814-003000000.parquet", ops("I"), dmstest.Row{int32(20), "twenty", at(30)})
				}
				res := run()
				l := res.Listing
				if l.Gone != 2 || !l.AllGone || !l.Full {
					t.Fatalf("listing %+v: want both applied files gone, found by a full listing", l)
				}
				if e.backend != "local" && l.Why != "the newest applied file is gone" {
					t.Errorf("full listing because %q, want the newest applied file gone", l.Why)
				}
				ids, _ := e.ids()
				switch mode {
				case OnTruncateIgnore:
					if l.Truncate != TruncateReported || res.Outcome != OutcomeCommitted || strings.Join(ids, ",") != "1,2,20,3" {
						t.Errorf("truncate %q, outcome %q, users %v; want reported, the table kept, 20 applied", l.Truncate, res.Outcome, ids)
					}
					if st := e.status(now); st.Bookmark.Check == nil || st.Bookmark.Check.Gone != 2 || !st.Bookmark.Check.AllGone {
						t.Errorf("status check %+v", st.Bookmark.Check)
					}
					if !strings.Contains(e.out.String(), "WARNING 2 applied source files are gone") {
						t.Errorf("output:\n%s", e.out.String())
					}
				case OnTruncateEmpty:
					if l.Truncate != TruncateEmptied || res.Outcome != OutcomeEmptied || strings.Join(ids, ",") != "20" {
						t.Errorf("truncate %q, outcome %q, users %v; want emptied, only 20", l.Truncate, res.Outcome, ids)
					}
					if s := e.table().Summary; s[catalog.KeyReplace] != "truncate" {
						t.Errorf("summary %v", s)
					}
				default:
					if res.Outcome != OutcomeEmptied || len(ids) != 0 {
						t.Errorf("outcome %q, users %v; want an empty table", res.Outcome, ids)
					}
				}
				if res := run(); res.Listing.Gone != 0 || (res.Outcome != OutcomeNothingNew) {
					t.Errorf("rerun: outcome %q, %d gone; want nothing new, reported once", res.Outcome, res.Listing.Gone)
				}
				if bm := e.bookmark(); bm.Pending != nil || len(bm.Files)+bm.SettledFiles.Len() != map[bool]int{true: 0, false: 1}[mode == "empty, no new file"] {
					t.Errorf("bookmark files %v, %d settled", bm.SortedFiles(), bm.SettledFiles.Len())
				}
			})
		})
	}
}

// An S3 lifecycle rule expires old raw files: the run reports them gone
// and never empties the table for it, even with --on-truncate empty; new
// files are applied as usual. When every file is gone but the newest was
// written over a day ago, it may have expired too: the table stays.
func TestExpiredFilesDoNotEmptyTheTable(t *testing.T) {
	onlyBackends(t, localAndMinIO, func(t *testing.T, e *env) {
		e.opts.OnTruncate = OnTruncateEmpty
		loadAndChange(t, e)
		e.putRows("20240814-000200000.parquet", ops("U"), dmstest.Row{int32(3), "tres", at(2)})
		e.run()
		e.remove("LOAD00000001.parquet")
		e.remove("20240814-000100000.parquet")
		e.putRows("20240814-000300000.parquet", ops("I"), dmstest.Row{int32(6), "six", at(3)})
		res := e.run()
		if l := res.Listing; l.Gone != 2 || l.AllGone || l.Truncate != TruncateReported || res.Outcome != OutcomeCommitted {
			t.Fatalf("listing %+v, outcome %q: want 2 gone reported, the new file committed", l, res.Outcome)
		}
		if ids, names := e.ids(); strings.Join(ids, ",") != "1,3,4,5,6" || names["1"] != "uno" || names["3"] != "tres" {
			t.Errorf("users %v %v: want the table kept and 6 added", ids, names)
		}
		if e.backend != "local" {
			return
		}
		// Every file gone, the newest written two days ago.
		old := time.Now().Add(-48 * time.Hour)
		for _, k := range []string{"20240814-000200000.parquet", "20240814-000300000.parquet"} {
			if err := os.Chtimes(filepath.Join(e.dir, srcPrefix, k), old, old); err != nil {
				t.Fatal(err)
			}
		}
		e.store.Save(e.ctx, func() bookmark.State { // record the old times, as if applied then
			st := e.bookmark()
			for k, fi := range st.Files {
				fi.ModTime = old.UTC()
				st.Files[k] = fi
			}
			st.NewestModTime = old.UTC()
			return st
		}(), func() bookmark.Version { _, v, _ := e.store.Load(e.ctx); return v }())
		e.remove("20240814-000200000.parquet")
		e.remove("20240814-000300000.parquet")
		e.putRows("20240814-000400000.parquet", ops("I"), dmstest.Row{int32(10), "ten", at(4)})
		res = e.run()
		if l := res.Listing; !l.AllGone || l.Truncate != TruncateNotEmptied {
			t.Errorf("listing %+v: want every file gone, not emptied", l)
		}
		if ids, _ := e.ids(); strings.Join(ids, ",") != "1,10,3,4,5,6" {
			t.Errorf("users %v: the table must stay, with 10 added", ids)
		}
	})
}

// A file that arrives late, named before settled files, in a date folder
// the windowed S3 listing no longer looks at: the periodic full listing
// finds it; with order columns it is applied (a change older than the
// table's row does not win), with source order it is quarantined. Both
// are reported.
func TestLateFileIsFoundByTheFullListing(t *testing.T) {
	for _, orderBy := range []string{"updated_at", "source"} {
		t.Run(orderBy, func(t *testing.T) {
			onlyBackends(t, localAndMinIO, func(t *testing.T, e *env) {
				if orderBy == "source" {
					e.opts.OrderBy = nil
				}
				now := time.Date(2024, 8, 14, 12, 0, 0, 0, time.UTC)
				d := e.deps(nil)
				d.Now = func() time.Time { return now }
				run := func() *Result {
					t.Helper()
					res, err := e.merge(d)
					if err != nil {
						t.Fatal(err)
					}
					return res
				}
				e.putRows("LOAD00000001.parquet", ops("I I"), dmstest.Row{int32(1), "one", at(0)}, dmstest.Row{int32(2), "two", at(0)})
				e.putRows("2024/08/13/20240813-230000000.parquet", ops("U"), dmstest.Row{int32(1), "uno", at(600)})
				e.putRows("2024/08/14/20240814-110000000.parquet", ops("U"), dmstest.Row{int32(2), "dos", at(660)})
				run()
				now = now.Add(20 * time.Minute)
				run() // settles up to 20240814-110000000
				// Late: named the 13th, changes user 2 (older than its row)
				// and inserts user 3.
				e.putRows("2024/08/13/20240813-235900000.parquet", ops("U I"),
					dmstest.Row{int32(2), "zwei", at(599)}, dmstest.Row{int32(3), "three", at(599)})
				now = now.Add(time.Hour)
				res := run()
				if e.backend != "local" {
					if res.Files != 0 || res.Listing.Full {
						t.Fatalf("windowed run: %d files, full %v; want the late file unseen", res.Files, res.Listing.Full)
					}
					now = now.Add(24 * time.Hour)
					res = run()
				}
				if !res.Listing.Full || !slices.Equal(res.Listing.Late, []string{"2024/08/13/20240813-235900000.parquet"}) {
					t.Fatalf("listing %+v: want the late file found", res.Listing)
				}
				ids, names := e.ids()
				if orderBy == "updated_at" {
					if res.Files != 1 || strings.Join(ids, ",") != "1,2,3" || names["2"] != "dos" {
						t.Errorf("%d files, users %v %v: want the late file applied, its older change of 2 not winning", res.Files, ids, names)
					}
				} else {
					if res.Files != 0 || !res.Listing.LateSkipped || strings.Join(ids, ",") != "1,2" || e.bookmark().Quarantined["2024/08/13/20240813-235900000.parquet"].Reason == "" {
						t.Errorf("%d files, users %v: want the late file quarantined, not applied", res.Files, ids)
					}
				}
				if !strings.Contains(e.out.String(), "WARNING 1 files arrived after newer ones were applied") {
					t.Errorf("output:\n%s", e.out.String())
				}
				if st := e.status(now); st.Bookmark.Check == nil || st.Bookmark.Check.Late != 1 {
					t.Errorf("status check %+v", st.Bookmark.Check)
				}
				if res := run(); res.Files != 0 || len(res.Listing.Late) != 0 {
					t.Errorf("rerun: %d files, late %v", res.Files, res.Listing.Late)
				}
			})
		})
	}
}

// A local file rewritten in place with the same size is a new version: its
// modification time tells, and the run applies it again.
func TestRewrittenLocalFileIsAppliedAgain(t *testing.T) {
	e := newEnv(t, "local")
	write := func(name string) []byte {
		var buf bytes.Buffer
		if err := dmstest.Write(&buf, badCols, ops("I"), []dmstest.Row{{int32(1), name, at(0)}}, dmstest.Options{Op: true, Compression: "none"}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first, second := write("aaaa"), write("bbbb")
	if len(first) != len(second) {
		t.Fatalf("fixture: sizes %d and %d differ", len(first), len(second))
	}
	e.put("LOAD00000001.parquet", first)
	e.run()
	p := filepath.Join(e.dir, srcPrefix, "LOAD00000001.parquet")
	fi, _ := os.Stat(p)
	e.put("LOAD00000001.parquet", second)
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if res := e.run(); res.Files != 1 {
		t.Fatalf("the rewritten file was skipped: %d files", res.Files)
	}
	if _, names := e.ids(); names["1"] != "bbbb" {
		t.Errorf("user 1 is %q, want the rewritten file's bbbb", names["1"])
	}
}

// A lost bookmark next to a table with icemerge commits fails the run by
// default, saying so; --on-missing-bookmark rebuild applies every file
// again and reports it.
func TestMissingBookmark(t *testing.T) {
	e := newEnv(t, "local")
	loadAndChange(t, e)
	if err := os.Remove(e.store.Location()); err != nil {
		t.Fatal(err)
	}
	_, err := e.merge(e.deps(nil))
	if !errors.Is(err, ErrMissingBookmark) || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--on-missing-bookmark rebuild") {
		t.Fatalf("err = %v, want ErrMissingBookmark naming the option", err)
	}
	if st := e.status(time.Now()); !strings.Contains(st.Problem, "no bookmark is saved") {
		t.Errorf("status problem %q", st.Problem)
	}
	e.opts.OnMissingBookmark = OnMissingBookmarkRebuild
	res := e.run()
	if !res.Listing.MissingBookmark || res.Files != 2 {
		t.Errorf("rebuild: missing %v, %d files; want both files applied again", res.Listing.MissingBookmark, res.Files)
	}
	if ids, names := e.ids(); strings.Join(ids, ",") != "1,3,4,5" || names["1"] != "uno" {
		t.Errorf("users %v %v after the rebuild", ids, names)
	}
	if res := e.run(); res.Outcome != OutcomeNothingNew || res.Listing.MissingBookmark {
		t.Errorf("rerun: %q", res.Outcome)
	}
}

// A reload's full load is complete once a CDC file was written after its
// last LOAD file (DMS writes CDC only after a table's load), or, with
// --reload-quiet-after, once the last LOAD file is that old.
func TestReloadComplete(t *testing.T) {
	t0 := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	o := func(key string, mt time.Time) source.Object { return source.Object{Key: key, ModTime: mt} }
	loads := []source.Object{o("LOAD00000001.parquet", t0), o("LOAD00000002.parquet", t0.Add(time.Minute))}
	tests := []struct {
		name  string
		todo  []source.Object
		now   time.Time
		quiet time.Duration
		want  bool
	}{
		{"no CDC file yet", loads, t0.Add(time.Hour), 0, false},
		{"a CDC file written during the load", append(slices.Clone(loads), o("20240814-000030000.parquet", t0.Add(30*time.Second))), t0.Add(time.Hour), 0, false},
		{"a CDC file written with the last LOAD", append(slices.Clone(loads), o("20240814-000100000.parquet", t0.Add(time.Minute))), t0.Add(time.Hour), 0, true},
		{"a CDC file after the load", append(slices.Clone(loads), o("2024/08/14/20240814-000200000.parquet", t0.Add(2*time.Minute))), t0.Add(time.Hour), 0, true},
		{"quiet, not long enough", loads, t0.Add(30 * time.Minute), time.Hour, false},
		{"quiet long enough", loads, t0.Add(61 * time.Minute), time.Hour, true},
	}
	for _, tc := range tests {
		if got := reloadComplete(loads, tc.todo, tc.now, tc.quiet); got != tc.want {
			t.Errorf("%s: complete %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A bookmark of an earlier version settled by key, in DDMMYYYY folders
// where 01/08/2024/… sorts before the settled 31/07/2024/… key: reading it
// keeps what was settled applied, the run applies the later-named file
// the old rule skipped, and its full listing records the settled files
// one by one.
func TestLegacySettledBookmark(t *testing.T) {
	e := newEnv(t, "local")
	e.putRows("LOAD00000001.parquet", ops("I"), dmstest.Row{int32(1), "one", at(0)})
	e.putRows("30/07/2024/20240730-100000000.parquet", ops("I"), dmstest.Row{int32(2), "two", at(1)})
	e.putRows("31/07/2024/20240731-100000000.parquet", ops("I"), dmstest.Row{int32(3), "three", at(2)})
	e.run()
	st, v, err := e.store.Load(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// As an earlier version left it: the CDC keys settled by key order.
	delete(st.Files, "30/07/2024/20240730-100000000.parquet")
	delete(st.Files, "31/07/2024/20240731-100000000.parquet")
	st.Settled = "31/07/2024/20240731-100000000.parquet"
	if _, err := e.store.Save(e.ctx, st, v); err != nil {
		t.Fatal(err)
	}
	e.putRows("01/08/2024/20240801-100000000.parquet", ops("I"), dmstest.Row{int32(4), "four", at(3)})
	res := e.run()
	if res.Files != 1 || res.Plan.Files[0].Name != "01/08/2024/20240801-100000000.parquet" {
		t.Fatalf("applied %d files: want only the one named after the old settled key", res.Files)
	}
	bm := e.bookmark()
	if bm.Horizon != "" || bm.SettledFiles.Len() != 2 || bm.Settled != "20240731-100000000" {
		t.Errorf("horizon %q, %d settled, watermark %q: want the settled files recorded", bm.Horizon, bm.SettledFiles.Len(), bm.Settled)
	}
	if ids, _ := e.ids(); strings.Join(ids, ",") != "1,2,3,4" {
		t.Errorf("users %v", ids)
	}
}

// Damaged tombstones inside a bookmark that still loads: a run that finds
// nothing new succeeds without reading them; a run with files stops with
// ErrCorrupt naming the bookmark before it commits, and loses nothing: the
// table and the bookmark are as they were, and a reset recovers.
func TestDamagedTombstones(t *testing.T) {
	e := newEnv(t, "local")
	loadAndChange(t, e)
	path := e.store.Location()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-5]++ // the gzip trailer of the tombstones, the last section
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if res := e.run(); res.Outcome != OutcomeNothingNew {
		t.Fatalf("no-op run: %q", res.Outcome)
	}
	snap := e.snapshotID()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e.putRows("20240814-000200000.parquet", ops("U"), dmstest.Row{int32(3), "tres", at(2)})
	_, err = e.merge(e.deps(nil))
	if !errors.Is(err, bookmark.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "tombstones damaged") {
		t.Fatalf("err = %v, want ErrCorrupt naming %s and the tombstones", err, path)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) || e.snapshotID() != snap {
		t.Fatalf("the failed run changed the bookmark (%v) or the table (%v)", !bytes.Equal(after, before), e.snapshotID() != snap)
	}
	if _, err := Reset(e.ctx, TableOptions{Common: e.opts.Common}, e.deps(nil)); err != nil {
		t.Fatal(err)
	}
	e.run()
	if _, names := e.ids(); names["3"] != "tres" || names["1"] != "uno" {
		t.Errorf("after the reset: %v", names)
	}
}
