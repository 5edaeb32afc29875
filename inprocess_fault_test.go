package icemerge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
)

// In-process fault injection: decorators around the run's dependencies
// (the catalog, the bookmark store, the lock) that fail a call before it is
// made, or make it and lose its answer. They need no server, so the crash
// and conflict tests run with `go test ./...` on a bare machine; the HTTP
// fault tests (fault_test.go) cover the same points, and the writes inside
// a commit, against MinIO and moto.

// errInjected is the error an injected fault returns.
var errInjected = errors.New("injected fault")

// faultAction is what a fault does at its point.
type faultAction int

const (
	failBefore faultAction = iota // the call is not made
	failAfter                     // the call is made, its answer lost
)

func (a faultAction) String() string { return [...]string{"fail before", "fail after"}[a] }

// faults decides, for each call at a point, whether it fails.
type faults struct {
	mu     sync.Mutex
	point  string
	action faultAction
	calls  int                // calls at the point so far
	hits   int                // faults fired: at most one, at the first call
	hook   func(point string) // called at every point, before the call (nil: none)
}

// at runs call at the point, failing the point's first call as the rule
// says.
func (f *faults) at(point string, call func() error) error {
	f.mu.Lock()
	hook, action := f.hook, f.action
	fire := false
	if point == f.point {
		f.calls++
		if fire = f.calls == 1; fire {
			f.hits++
		}
	}
	f.mu.Unlock()
	if hook != nil {
		hook(point)
	}
	if fire && action == failBefore {
		return fmt.Errorf("%s: %w (before the call)", point, errInjected)
	}
	if err := call(); err != nil {
		return err
	}
	if fire {
		return fmt.Errorf("%s: %w (the call was made, its answer lost)", point, errInjected)
	}
	return nil
}

// faultCatalog is a catalog whose writes fail where f says. Reads pass.
type faultCatalog struct {
	*catalog.Catalog
	f *faults
}

var _ Catalog = faultCatalog{}

func (c faultCatalog) Create(ctx context.Context, name string, sc *arrow.Schema, keys, part []string) (t *catalog.Table, err error) {
	err = c.f.at("create table", func() (err error) { t, err = c.Catalog.Create(ctx, name, sc, keys, part); return err })
	return t, err
}

func (c faultCatalog) Evolve(ctx context.Context, tbl *catalog.Table, adds []arrow.Field, widen map[string]arrow.DataType) (t *catalog.Table, err error) {
	err = c.f.at("schema change", func() (err error) { t, err = c.Catalog.Evolve(ctx, tbl, adds, widen); return err })
	return t, err
}

func (c faultCatalog) Prepare(ctx context.Context, tbl *catalog.Table, ch catalog.Change) (p *catalog.Prepared, err error) {
	err = c.f.at("data and delete files", func() (err error) { p, err = c.Catalog.Prepare(ctx, tbl, ch); return err })
	return p, err
}

func (c faultCatalog) Commit(ctx context.Context, p *catalog.Prepared, token string, summary map[string]string) (t *catalog.Table, err error) {
	err = c.f.at("catalog commit", func() (err error) { t, err = c.Catalog.Commit(ctx, p, token, summary); return err })
	return t, err
}

// faultStore is a bookmark store whose saves fail where f says: the save
// that marks a run pending, and the one that folds it in after the commit.
type faultStore struct {
	BookmarkStore
	f *faults
}

func (s faultStore) Save(ctx context.Context, st bookmark.State, prev bookmark.Version) (v bookmark.Version, err error) {
	point := "bookmark done"
	if st.Pending != nil {
		point = "bookmark pending"
	}
	err = s.f.at(point, func() (err error) { v, err = s.BookmarkStore.Save(ctx, st, prev); return err })
	return v, err
}

// faultLocker is a run lock whose taking fails where f says.
type faultLocker struct {
	Locker
	f *faults
}

func (l faultLocker) Lock(ctx context.Context, owner string, ttl time.Duration, now func() time.Time) (lease *bookmark.Lease, err error) {
	err = l.f.at("lock", func() (err error) { lease, err = l.Locker.Lock(ctx, owner, ttl, now); return err })
	return lease, err
}

// faultyDeps are e's dependencies with every write decorated by f.
func (e *env) faultyDeps(f *faults) Deps {
	d := e.deps(nil)
	d.Catalog = faultCatalog{Catalog: e.cat, f: f}
	d.Bookmark = faultStore{BookmarkStore: e.store, f: f}
	d.Lock = faultLocker{Locker: e.store, f: f}
	return d
}

// The points where a run writes, in-process, and how each can fail. A lock
// taken whose answer is lost is no crash (the process lives on holding it):
// the bookmark package recognises its own lease on a lost answer, and the
// HTTP tests cover that.
var inProcessPoints = []struct {
	name    string
	actions []faultAction
}{
	{"lock", []faultAction{failBefore}},
	{"data and delete files", []faultAction{failBefore, failAfter}},
	{"bookmark pending", []faultAction{failBefore, failAfter}},
	{"catalog commit", []faultAction{failBefore, failAfter}},
	{"bookmark done", []faultAction{failBefore, failAfter}},
}

// For every point where a run writes, crash the run right there (the call
// is not made) or lose its answer (the call is made), then rerun: every
// change is applied exactly once and no two snapshots consume the same
// file. The same as TestCrashAtEveryWritePoint, without any server: on
// local disk with the SQLite catalog.
func TestCrashAtEveryWritePointInProcess(t *testing.T) {
	for _, p := range inProcessPoints {
		for _, action := range p.actions {
			t.Run(fmt.Sprintf("%s/%v", p.name, action), func(t *testing.T) {
				e := newEnv(t, "local")
				e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
				e.run()
				before := e.snapshotID()
				e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")

				f := &faults{point: p.name, action: action}
				_, err := e.merge(e.faultyDeps(f))
				if f.hits == 0 {
					t.Fatalf("the fault never fired (run: %v)", err)
				}
				if err == nil || !errors.Is(err, errInjected) {
					t.Fatalf("the faulted run: %v, want the injected fault", err)
				}
				committed := e.snapshotID() != before
				if mayCommit := p.name == "bookmark done" || (p.name == "catalog commit" && action == failAfter); committed != mayCommit {
					t.Errorf("the faulted run failed (%v); committed %v, want %v", err, committed, mayCommit)
				}
				e.run()
				e.run() // and once more: nothing new
				checkUsersExactlyOnce(t, e)
			})
		}
	}
}

// A table that another writer changes before every commit attempt: the run
// gives up after a bounded number of attempts with a clear error, and the
// next run applies the files once. In-process: the other writer commits
// from a hook right before each of the run's commits.
func TestConflictRetriesAreBoundedInProcess(t *testing.T) {
	e := newEnv(t, "local")
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	updates := 0
	f := &faults{hook: func(point string) {
		if point == "catalog commit" {
			externalUpdate(t, e)
			updates++
		}
	}}
	res, err := e.merge(e.faultyDeps(f))
	if !errors.Is(err, catalog.ErrCommitConflict) {
		t.Fatalf("err = %v, want ErrCommitConflict after bounded attempts", err)
	}
	if res.Outcome != OutcomeFailed || res.Attempts != commitAttempts || updates != commitAttempts {
		t.Errorf("%d attempts, %d conflicting updates, outcome %s; want one update per attempt (%d)", res.Attempts, updates, res.Outcome, commitAttempts)
	}
	res2 := e.run()
	if res2.Reconciled != bookmark.Discarded || res2.Files != 1 {
		t.Errorf("next run: outcome %v, %d files; want the failed run discarded and its file applied", res2.Reconciled, res2.Files)
	}
	rows := byKey(e.table().Rows, "user_id")
	if rows["1"]["email"] != "external@example.com" || len(rows) != 5 || rows["4"] != nil {
		t.Errorf("rows %v: want the other writer's user 1, no user 4", rows)
	}
}
