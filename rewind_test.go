package icemerge

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// rewind runs `bookmark rewind --to to` on e, with the source when
// withSource.
func (e *env) rewind(to time.Time, withSource bool, now time.Time) (*RewindResult, error) {
	d := Deps{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }, Bookmark: e.store, Lock: e.store}
	o := RewindOptions{Common: e.opts.Common, To: to.Format(time.RFC3339Nano)}
	if withSource {
		d.Source, o.Source = e.src, e.opts.Source
	}
	res, err := Rewind(e.ctx, o, d)
	if res != nil {
		WriteRewind(&e.out, res)
	}
	return res, err
}

// runAt runs e at the given time.
func (e *env) runAt(now time.Time) *Result {
	e.t.Helper()
	d := e.deps(nil)
	d.Now = func() time.Time { return now }
	res, err := e.merge(d)
	if err != nil {
		e.t.Fatalf("run: %v", err)
	}
	return res
}

// modelHistory writes a full load and CDC files of random I/U/D changes
// over runs runs of files files each, applying each run, and returns the
// model and the CDC keys in source order.
func modelHistory(t *testing.T, e *env, seed uint64, runs, files int, now time.Time) (*model, []string) {
	m := &model{
		r:     rand.New(rand.NewPCG(seed, 7)),
		rows:  map[int32]modelRow{},
		clock: time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC),
		fileT: time.Date(2024, 8, 14, 0, 1, 0, 0, time.UTC),
		dated: true,
	}
	var initial []change
	for range 20 {
		m.nextID++
		row := m.randomRow()
		m.rows[m.nextID] = row
		initial = append(initial, change{"I", m.nextID, row})
	}
	m.write(t, e, "LOAD00000001.parquet", initial, true)
	m.stream = append(m.stream, initial...)
	var cdcs []string
	for range runs {
		m.writeCDC(t, e, files, &cdcs)
		e.runAt(now)
	}
	m.check(t, e, "before the rewind")
	return m, cdcs
}

// writeCDC writes n CDC files of random changes (deletes and re-inserts
// among them), appending their keys to cdcs.
func (m *model) writeCDC(t *testing.T, e *env, n int, cdcs *[]string) {
	for range n {
		var cs []change
		for range 3 + m.r.IntN(8) {
			c := m.nextChange()
			cs = append(cs, c)
			m.stream = append(m.stream, c)
		}
		key := m.cdcName()
		m.write(t, e, key, cs, true)
		*cdcs = append(*cdcs, key)
	}
}

func cdcTime(t *testing.T, key string) time.Time {
	t.Helper()
	ts, ok := source.CDCTime(key)
	if !ok {
		t.Fatalf("%s has no time", key)
	}
	return ts
}

// Rewind, then run: exactly the files named after the time are applied
// again (with any new one), the table equals the model, tombstones and the
// token stay; a rewind to before every CDC file, rerun in bounded steps,
// ends equal to the model too.
func TestRewindReappliesTheFilesAfterTheTime(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		now := time.Now()
		m, cdcs := modelHistory(t, e, 1, 3, 2, now)
		before := e.bookmark()

		to := cdcTime(t, cdcs[2]) // cdcs[2] itself is kept
		e.out.Reset()
		res, err := e.rewind(to, true, now)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Files, cdcs[3:]) || res.Reapplied != 3 || len(res.Next) != 3 || !res.Saved {
			t.Fatalf("forgot %v (re-applies %d of %d); want %v", res.Files, res.Reapplied, len(res.Next), cdcs[3:])
		}
		for _, want := range []string{"forgot 3 applied files named after it", "the next run processes 3 files, ", "from " + cdcs[3] + " on (3 of them forgotten by this rewind)"} {
			if !strings.Contains(e.out.String(), want) {
				t.Errorf("rewind output lacks %q:\n%s", want, e.out.String())
			}
		}
		after := e.bookmark()
		if after.Token != before.Token || after.Runs != before.Runs || !maps.Equal(tombstoneOrders(t, after), tombstoneOrders(t, before)) {
			t.Errorf("token %s → %s, runs %d → %d, tombstones %d → %d: want them unchanged",
				before.Token, after.Token, before.Runs, after.Runs, before.Tombstones.Len(), after.Tombstones.Len())
		}
		if s := e.status(now); s.Pending.Files != 3 || s.Pending.First != cdcs[3] || s.Bookmark.Rewound == nil ||
			s.Bookmark.LastRun == nil || !s.Bookmark.LastRun.Equal(before.LastRun) {
			t.Errorf("status after the rewind: %+v, last run %v (want %v)", s.Pending, s.Bookmark.LastRun, before.LastRun)
		}

		// A new file arrives too: the next run applies the three again and it.
		m.writeCDC(t, e, 1, &cdcs)
		r := e.runAt(now)
		if r.Reconciled != bookmark.InSync || r.Files != 4 || len(r.Plan.Files) != 4 || r.Plan.Files[0].Name != cdcs[3] {
			t.Fatalf("run after the rewind: %v, %d files; want in sync, %v", r.Outcome, r.Files, cdcs[3:])
		}
		m.check(t, e, "after the rewind and a run")
		if r := e.runAt(now); r.Files != 0 {
			t.Errorf("the run after applied %d files again", r.Files)
		}

		// Before every CDC file: the full load stays applied; bounded
		// runs re-apply the CDC files one at a time.
		if res, err := e.rewind(time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC), true, now); err != nil || len(res.Files) != len(cdcs) || res.Kept != 1 {
			t.Fatalf("rewind before every CDC file: %v, forgot %d of %d, kept %d", err, len(res.Files), len(cdcs), res.Kept)
		}
		e.opts.MaxFiles = 1
		for i, key := range cdcs {
			r := e.runAt(now)
			if r.Files != 1 || r.Left != len(cdcs)-1-i || r.Plan == nil || r.Plan.Files[0].Name != key {
				t.Fatalf("bounded run %d: %d files, %d left; want %s", i+1, r.Files, r.Left, key)
			}
		}
		m.check(t, e, "after the rewind before every CDC file")
	})
}

func tombstoneOrders(t *testing.T, s bookmark.State) map[string]string {
	t.Helper()
	m, err := s.Tombstones.Decode()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v.Order)
	}
	return out
}

// Tombstones survive a rewind, and hold the deleted key as a live row's
// order holds it: a re-applied older change, in a bounded run before the
// delete's file, does not bring the key back even for a while; the delete
// re-applied ties its own tombstone and changes nothing; a newer insert
// revives the key.
func TestRewindKeepsTombstones(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		now := time.Now()
		ts := badTS
		at := func(s int) time.Time { return ts.Add(time.Duration(s) * time.Second) }
		e.put("LOAD00000001.parquet", dmsFile(t, nil, []string{"I", "I", "I"},
			dmstest.Row{int32(1), "one", at(0)}, dmstest.Row{int32(2), "two", at(0)}, dmstest.Row{int32(3), "three", at(0)}))
		e.runAt(now)
		files := []struct {
			key  string
			ops  []string
			rows []dmstest.Row
		}{
			{"20240814-000100000.parquet", []string{"U"}, []dmstest.Row{{int32(1), "one a", at(1)}}},
			{"20240814-000200000.parquet", []string{"U", "D"}, []dmstest.Row{{int32(2), "two b", at(2)}, {int32(3), "three", at(2)}}},
			{"20240814-000300000.parquet", []string{"D", "I"}, []dmstest.Row{{int32(2), "two b", at(3)}, {int32(3), "three again", at(4)}}},
		}
		for _, f := range files {
			e.put(f.key, dmsFile(t, nil, f.ops, f.rows...))
			e.runAt(now)
		}
		want := map[string]string{"1": "one a", "3": "three again"}
		check := func(when string, want map[string]string) {
			t.Helper()
			got := map[string]string{}
			for k, r := range byKey(e.table().Rows, "user_id") {
				got[k] = r["name"].(string)
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s: rows %v, want %v", when, got, want)
			}
		}
		check("before the rewind", want)
		tombs := tombstoneOrders(t, e.bookmark())
		if len(tombs) != 1 {
			t.Fatalf("tombstones %v, want user 2's", tombs)
		}

		if _, err := e.rewind(cdcTime(t, files[0].key), false, now); err != nil {
			t.Fatal(err)
		}
		if got := tombstoneOrders(t, e.bookmark()); !maps.Equal(got, tombs) {
			t.Errorf("tombstones after the rewind %v, want %v", got, tombs)
		}
		e.opts.MaxFiles = 1
		r := e.runAt(now) // U 2 (older than its delete), D 3 (older than the re-insert)
		if r.Files != 1 || r.Plan.Stale != 2 || r.Snapshot != 0 {
			t.Errorf("re-applying %s: %d files, %d stale, snapshot %d; want 1, 2, none", files[1].key, r.Files, r.Plan.Stale, r.Snapshot)
		}
		check("after re-applying the older changes", want)
		r = e.runAt(now) // D 2 ties its tombstone; I 3 ties the live row
		if r.Files != 1 || r.Plan.Stale != 0 {
			t.Errorf("re-applying %s: %d files, %d stale; want 1, 0", files[2].key, r.Files, r.Plan.Stale)
		}
		check("after re-applying the delete", want)
		if got := tombstoneOrders(t, e.bookmark()); !maps.Equal(got, tombs) {
			t.Errorf("tombstones after the re-applied delete %v, want %v", got, tombs)
		}
		// Not suppressed: a newer insert of user 2.
		e.put("20240814-000400000.parquet", dmsFile(t, nil, []string{"I"}, dmstest.Row{int32(2), "two again", at(5)}))
		e.runAt(now)
		check("after a newer insert", map[string]string{"1": "one a", "2": "two again", "3": "three again"})
		if n := e.bookmark().Tombstones.Len(); n != 0 {
			t.Errorf("%d tombstones left, want 0", n)
		}
	})
}

// A rewind into settled history forgets the settled files after the time
// without a listing (the bookmark records them), moves the watermark back,
// and the next run lists and applies them again.
func TestRewindIntoSettledHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		now := time.Now()
		m, cdcs := modelHistory(t, e, 2, 2, 2, now)
		later := now.Add(time.Hour)
		e.runAt(later) // nothing new: settles every CDC file
		last, _ := source.CDCName(cdcs[len(cdcs)-1])
		if bm := e.bookmark(); bm.Settled != last || len(bm.Files) != 1 || bm.SettledFiles.Len() != len(cdcs) {
			t.Fatalf("settled %q with %d files, %d settled; want every CDC file settled", bm.Settled, len(bm.Files), bm.SettledFiles.Len())
		}
		to := cdcTime(t, cdcs[0]).Add(time.Millisecond)
		res, err := e.rewind(to, false, later)
		if err != nil {
			t.Fatal(err)
		}
		if want := source.FormatCDCName(to); !slices.Equal(res.Files, cdcs[1:]) || res.Settled != want || res.SettledBefore != last {
			t.Fatalf("forgot %v, settled %q (before %q); want %v, %q", res.Files, res.Settled, res.SettledBefore, cdcs[1:], want)
		}
		if !strings.Contains(e.out.String(), "settled now up to "+res.Settled) {
			t.Errorf("rewind output:\n%s", e.out.String())
		}
		if r := e.runAt(later); r.Files != len(cdcs)-1 {
			t.Errorf("run after the rewind: %d files, want %d", r.Files, len(cdcs)-1)
		}
		m.check(t, e, "after rewinding settled history")
	})
}

// A rewind is refused while a run holds the table (exit 3), and while a
// run is pending (run once first); the bookmark is not touched.
func TestRewindRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
		e.run()
		to := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
		_, before, _ := e.store.Load(e.ctx)

		lease, err := e.store.Lock(e.ctx, "another-run", time.Minute, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.rewind(to, true, time.Now()); !errors.Is(err, bookmark.ErrLocked) || !strings.Contains(err.Error(), "another-run") {
			t.Errorf("rewind under a held lock: %v, want ErrLocked naming the holder", err)
		}
		lease.Release(e.ctx)

		// A run that stopped after its pending mark.
		e.put("20240814-002700000.parquet", dmsFile(t, nil, []string{"I"}, dmstest.Row{int32(7), "seven", badTS}))
		ctx, cancel := context.WithCancel(e.ctx)
		if _, err := Run(ctx, e.opts, e.deps(&cancelAfterSave{Store: e.store, cancel: cancel})); err == nil {
			t.Fatal("the cancelled run succeeded")
		}
		_, pending, _ := e.store.Load(e.ctx)
		if _, err := e.rewind(to, true, time.Now()); !errors.Is(err, bookmark.ErrPending) || !strings.Contains(err.Error(), "run `icemerge run` once first") {
			t.Errorf("rewind with a pending run: %v, want ErrPending", err)
		}
		if _, v, _ := e.store.Load(e.ctx); v != pending || v == before {
			t.Errorf("the refused rewind saved the bookmark")
		}
		e.run() // discards the pending run and applies its file
		if res, err := e.rewind(to, true, time.Now()); err != nil || len(res.Files) != 2 || res.Reapplied != 2 {
			t.Fatalf("rewind after the run: %v, %+v", err, res)
		}
		if r := e.run(); r.Files != 2 {
			t.Errorf("run after the rewind: %d files, want 2", r.Files)
		}
		checkRowsWith7(t, e)
	})
}

func checkRowsWith7(t *testing.T, e *env) {
	t.Helper()
	rows := byKey(e.table().Rows, "user_id")
	if len(rows) != 6 || rows["1"]["email"] != "update-user0@example.com" || rows["4"] != nil || rows["7"] == nil {
		t.Errorf("rows %v: want users 1 (updated), 2, 3, 5, 6, 7", rows)
	}
}
