package icemerge

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
)

// hookStore runs a hook when a run saves its pending mark: right before the
// run's commit.
type hookStore struct {
	bookmark.Store
	onPending func()
}

func (h hookStore) Save(ctx context.Context, s bookmark.State, prev bookmark.Version) (bookmark.Version, error) {
	if s.Pending != nil && h.onPending != nil {
		h.onPending()
	}
	return h.Store.Save(ctx, s, prev)
}

// externalUpdate is another writer (say, an Athena UPDATE): it replaces
// user 1 with a newer row, as a delete and an append.
func externalUpdate(t *testing.T, e *env) {
	t.Helper()
	tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	tx := tbl.Iceberg().NewTransaction()
	if err := tx.Delete(e.ctx, iceberg.EqualTo(iceberg.Reference("user_id"), int32(1)), nil); err != nil {
		t.Fatal(err)
	}
	sc, err := table.SchemaToArrowSchema(tbl.Iceberg().Schema(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	newer := arrow.Timestamp(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	b.Field(0).(*array.Int32Builder).Append(1)
	b.Field(1).(*array.StringBuilder).Append("user")
	b.Field(2).(*array.StringBuilder).Append("0")
	b.Field(3).(*array.StringBuilder).Append("external@example.com")
	b.Field(4).(*array.TimestampBuilder).Append(newer)
	b.Field(5).(*array.TimestampBuilder).Append(newer)
	rec := b.NewRecordBatch()
	rdr, err := array.NewRecordReader(sc, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Append(e.ctx, rdr, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
}

// Another writer commits to the same keys between the run's read and its
// commit: the commit is refused by the catalog, and the run reloads,
// re-plans and retries. It never overwrites the other writer's newer row.
func TestAnotherWriterCommitsDuringTheRun(t *testing.T) {
	eachConcurrencyBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")

		fired := false
		d := e.deps(hookStore{Store: e.store, onPending: func() {
			if !fired {
				fired = true
				externalUpdate(t, e)
			}
		}})
		res, err := e.merge(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fired || res.Attempts != 2 {
			t.Fatalf("hook fired %v, %d commit attempts; want the first commit refused and a second", fired, res.Attempts)
		}
		rows := byKey(e.table().Rows, "user_id")
		if got := rows["1"]["email"]; got != "external@example.com" {
			t.Errorf("user 1 email %v: the run overwrote the other writer's newer row", got)
		}
		if res.Plan.Stale != 1 {
			t.Errorf("stale %d, want 1 (the run's older update of user 1)", res.Plan.Stale)
		}
		if len(rows) != 5 || rows["4"] != nil || rows["6"] == nil {
			t.Errorf("rows %v: want 1 (external), 2, 3, 5, 6", rows)
		}
		if bm := e.bookmark(); bm.Pending != nil || len(bm.Files) != 2 {
			t.Errorf("bookmark: pending %v, %d files", bm.Pending, len(bm.Files))
		}
	})
}

// A table that another writer changes before every commit attempt: the run
// gives up after a bounded number of attempts with a clear error, and the
// next run applies the files once.
func TestConflictRetriesAreBounded(t *testing.T) {
	for _, b := range []string{"minio-sql", "minio-postgres"} {
		t.Run(b, func(t *testing.T) { testConflictRetriesAreBounded(t, newAnyEnv(t, b)) })
	}
}

func testConflictRetriesAreBounded(t *testing.T, e *env) {
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")

	var inHook atomic.Bool // the other writer's own requests pass through here too
	updates := 0
	e.after = func(req *http.Request, resp *http.Response) (*http.Response, error) {
		// Each attempt writes one position delete file, then commits.
		if req.Method != http.MethodPut || !strings.HasSuffix(req.URL.Path, "-deletes.parquet") || !inHook.CompareAndSwap(false, true) {
			return resp, nil
		}
		defer inHook.Store(false)
		externalUpdate(t, e)
		updates++
		return resp, nil
	}
	res, err := e.merge(e.deps(nil))
	if !errors.Is(err, catalog.ErrCommitConflict) {
		t.Fatalf("err = %v, want ErrCommitConflict after bounded attempts", err)
	}
	if res.Outcome != OutcomeFailed || res.Attempts != commitAttempts || updates != commitAttempts {
		t.Errorf("%d conflicting updates, want one per attempt (%d)", updates, commitAttempts)
	}
	e.after = nil
	res2 := e.run()
	if res2.Reconciled != bookmark.Discarded || res2.Files != 1 {
		t.Errorf("next run: outcome %v, %d files; want the failed run discarded and its file applied", res2.Outcome, res2.Files)
	}
	if rows := byKey(e.table().Rows, "user_id"); rows["1"]["email"] != "external@example.com" || rows["4"] != nil || rows["6"] == nil {
		t.Errorf("rows %v", rows)
	}
}
