package icemerge

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// statusOpts are the status settings of e's table.
func (e *env) statusOpts() StatusOptions {
	return StatusOptions{Common: e.opts.Common, Source: e.opts.Source}
}

// status reads e's status at now.
func (e *env) status(now time.Time) TableStatus {
	e.t.Helper()
	s, err := Status(e.ctx, e.statusOpts(), Deps{Now: func() time.Time { return now }, Source: e.src, Catalog: e.cat, Bookmark: e.store, Lock: e.store})
	if err != nil {
		e.t.Fatalf("status: %v", err)
	}
	return s
}

// listed is the source's data objects by key, as the servers report them.
func (e *env) listed() map[string]source.Object {
	e.t.Helper()
	out := map[string]source.Object{}
	if err := e.src.List(e.ctx, "", func(o source.Object) error { out[o.Key] = o; return nil }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// checkPending compares the pending part of a status with the listed
// objects it must count.
func checkPending(t *testing.T, e *env, s TableStatus, now time.Time, keys ...string) {
	t.Helper()
	objs := e.listed()
	var bytes int64
	oldest := ""
	for _, k := range keys {
		o, ok := objs[k]
		if !ok {
			t.Fatalf("%s is not listed", k)
		}
		bytes += o.Size
		if oldest == "" || o.ModTime.Before(objs[oldest].ModTime) {
			oldest = k
		}
	}
	p := s.Pending
	if p.Files != len(keys) || p.Bytes != bytes {
		t.Errorf("pending %d files, %d bytes; want %d, %d", p.Files, p.Bytes, len(keys), bytes)
	}
	if len(keys) == 0 {
		if p.LagSeconds != 0 || p.Oldest != "" {
			t.Errorf("nothing pending, but lag %v, oldest %q", p.Lag(), p.Oldest)
		}
		return
	}
	lag := now.Sub(objs[oldest].ModTime)
	if p.First != keys[0] || p.Oldest != oldest || p.Lag().Round(time.Millisecond) != lag.Round(time.Millisecond) {
		t.Errorf("pending first %q, oldest %q, lag %v; want %q, %q, %v", p.First, p.Oldest, p.Lag(), keys[0], oldest, lag)
	}
}

// Status before any run, after one, with pending files, with a quarantined
// file, while a run holds the table, and after a run that stopped before
// its commit.
func TestStatus(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		now := time.Now().Add(2 * time.Hour) // every file is two hours old, or more
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")

		s := e.status(now)
		if s.Exists || s.Snapshot != nil || s.Bookmark.Saved || s.Bookmark.State != "in sync" || s.Locked || s.Quarantined != 0 {
			t.Errorf("before any run: %+v", s)
		}
		checkPending(t, e, s, now, "LOAD00000001.parquet")

		e.run()
		s = e.status(now)
		bm := e.bookmark()
		if !s.Exists || s.Snapshot == nil || s.Snapshot.Token != bm.Token || s.Snapshot.ID != e.snapshotID() {
			t.Fatalf("after a run: snapshot %+v, want token %s, id %d", s.Snapshot, bm.Token, e.snapshotID())
		}
		if w := s.Snapshot.RowsWritten; w == nil || *w != 5 || *s.Snapshot.RowsDeleted != 0 || *s.Snapshot.SourceFiles != 1 {
			t.Errorf("snapshot counts %+v: want 5 written, 0 deleted, 1 file", s.Snapshot)
		}
		if b := s.Bookmark; !b.Saved || b.Runs != 1 || b.LastRun == nil || b.AppliedFiles != 1 || b.Token != bm.Token || b.State != "in sync" {
			t.Errorf("bookmark status %+v", b)
		}
		checkPending(t, e, s, now)

		e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")
		e.put("2024/08/14/20240814-002700000.parquet", dmsFile(t, nil, []string{"U"}, dmstest.Row{int32(2), "two b", badTS}))
		e.put("2024/08/14/_tmp.parquet", []byte("not data"))
		checkPending(t, e, e.status(now), now, "2024/08/14/20240814-002642123.parquet", "2024/08/14/20240814-002700000.parquet")

		// A bad file, quarantined: counted as such, no longer pending.
		e.put("2024/08/14/20240814-002800000.parquet", []byte("PAR1 not parquet PAR1"))
		e.opts.OnBadFile = OnBadFileQuarantine
		e.run()
		s = e.status(now)
		if s.Quarantined != 1 || s.Bookmark.Runs != 2 {
			t.Errorf("after quarantining: %d quarantined, %d runs; want 1, 2", s.Quarantined, s.Bookmark.Runs)
		}
		checkPending(t, e, s, now)

		// A run holds the table.
		lease, err := e.store.Lock(e.ctx, "host-a/pid-1/run", time.Minute, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		if s := e.status(time.Now()); !s.Locked || s.Lock.Owner != "host-a/pid-1/run" {
			t.Errorf("while locked: locked %v, holder %+v", s.Locked, s.Lock)
		}
		if s := e.status(time.Now().Add(2 * time.Minute)); s.Locked {
			t.Errorf("an expired lease shows as held")
		}
		if err := lease.Release(e.ctx); err != nil {
			t.Fatal(err)
		}

		// A run stopped after its pending mark, before committing: its
		// file is pending, as the next run will find it.
		e.put("2024/08/14/20240814-002900000.parquet", dmsFile(t, nil, []string{"I"}, dmstest.Row{int32(7), "seven", badTS}))
		ctx, cancel := context.WithCancel(e.ctx)
		if _, err := Run(ctx, e.opts, e.deps(&cancelAfterSave{Store: e.store, cancel: cancel})); err == nil {
			t.Fatal("the cancelled run succeeded")
		}
		s = e.status(now)
		if s.Bookmark.State != bookmark.Discarded.String() {
			t.Errorf("bookmark state %q, want %q", s.Bookmark.State, bookmark.Discarded)
		}
		checkPending(t, e, s, now, "2024/08/14/20240814-002900000.parquet")
		if e.bookmark().Pending == nil {
			t.Errorf("status saved the bookmark")
		}
	})
}

// The status a person reads, against a golden file: before any run, after
// the full load with two CDC files waiting (one in a date folder), and
// after everything is applied; then the JSON form.
func TestStatusGolden(t *testing.T) {
	e := newEnv(t, "local")
	clock := time.Date(2024, 8, 14, 1, 0, 0, 0, time.UTC)
	d := e.deps(nil)
	d.Now = func() time.Time { return clock }
	put := func(fixture, key string, mtime time.Time) {
		e.copyFixture(fixture, key)
		if err := os.Chtimes(filepath.Join(e.dir, srcPrefix, filepath.FromSlash(key)), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	status := func(title string) TableStatus {
		out.WriteString("--- " + title + "\n")
		s := e.status(clock)
		WriteStatus(&out, s)
		return s
	}
	put("LOAD00000001.parquet", "LOAD00000001.parquet", clock.Add(-50*time.Minute))
	status("before any run")
	if _, err := e.merge(d); err != nil {
		t.Fatal(err)
	}
	put("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet", clock.Add(-33*time.Minute-18*time.Second))
	put("20240814-002642123.parquet", "20240814-003000000.parquet", clock.Add(-30*time.Minute))
	clock = clock.Add(5 * time.Minute)
	status("after the full load, two CDC files waiting")
	lease, err := e.store.Lock(e.ctx, "host-a/pid-42/20240814T010500.000Z-00000000", time.Minute, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	status("while a run holds the table")
	lease.Release(e.ctx)
	if _, err := e.merge(d); err != nil {
		t.Fatal(err)
	}
	s := status("after every file is applied")
	out.WriteString("--- json\n")
	if err := WriteJSON("-", &out, "status", StatusReport{At: s.At, Tables: []TableStatus{s}}); err != nil {
		t.Fatal(err)
	}

	got := regexp.MustCompile(`(snapshot"?:? ?)\d+`).ReplaceAllString(out.String(), "${1}N")
	got = regexp.MustCompile(`"id": \d+`).ReplaceAllString(got, `"id": N`)
	got = regexp.MustCompile(`(\d{8}T\d{6}\.\d{3}Z)-[0-9a-f]{8}`).ReplaceAllString(got, "$1-RUNID")
	// The snapshot's time is the catalog's clock, not the injected one.
	got = regexp.MustCompile(`(at |"time": ")\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z( by|")`).ReplaceAllString(got, "${1}COMMIT-TIME$3")
	got = strings.ReplaceAll(got, e.dir, "DIR")
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run StatusGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if intended):\n%s", golden, got)
	}
}
