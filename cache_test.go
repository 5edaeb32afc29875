package icemerge

import (
	"context"
	"reflect"
	"sync"
	"testing"

	"github.com/icemerge/icemerge/internal/source"
)

// openCountingSource counts the opens of each object.
type openCountingSource struct {
	Source
	mu    sync.Mutex
	opens map[string]int
}

func (c *openCountingSource) Open(ctx context.Context, key string, pin source.Version) (source.Reader, error) {
	c.mu.Lock()
	c.opens[key]++
	c.mu.Unlock()
	return c.Source.Open(ctx, key, pin)
}

// With --source-cache large enough, a run reads each object once (one GET
// on S3); without, the objects holding winning rows are read again to
// write them. The table is the same.
func TestSourceCacheReadsEachObjectOnce(t *testing.T) {
	const load, cdc = "LOAD00000001.parquet", "20240814-002642123.parquet"
	for _, c := range []struct {
		cache int64
		want  map[string]int
	}{
		{1 << 30, map[string]int{load: 1, cdc: 1}},
		{0, map[string]int{load: 2, cdc: 2}},
	} {
		e := newEnv(t, "local")
		e.opts.SourceCache = ByteSize(c.cache)
		e.copyFixture(load, load)
		e.copyFixture(cdc, cdc)
		src := &openCountingSource{Source: e.src, opens: map[string]int{}}
		d := e.deps(nil)
		d.Source = src
		if _, err := e.merge(d); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(src.opens, c.want) {
			t.Errorf("--source-cache %d: opens %v, want %v", c.cache, src.opens, c.want)
		}
		if rows := byKey(e.table().Rows, "user_id"); len(rows) != 5 || rows["1"]["email"] != "update-user0@example.com" {
			t.Errorf("--source-cache %d: table %v", c.cache, rows)
		}
	}
}

// recordingHeap records a run's reservations of heap.
type recordingHeap struct {
	mu             sync.Mutex
	held, reserved int64
}

func (h *recordingHeap) Reserve(n int64) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held += n
	h.reserved += n
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.held -= n
	}
}

// A run whose files are not kept whole raises the heap limit by their key
// and order columns while it runs, and gives it back at the end; files kept
// whole (within the budget) raise nothing.
func TestRunReservesHeapForKeyColumns(t *testing.T) {
	const load, cdc = "LOAD00000001.parquet", "20240814-002642123.parquet"
	for _, cache := range []ByteSize{0, 1 << 30} {
		e := newEnv(t, "local")
		e.opts.SourceCache = cache
		e.copyFixture(load, load)
		e.copyFixture(cdc, cdc)
		h := &recordingHeap{}
		d := e.deps(nil)
		d.Heap = h
		if _, err := e.merge(d); err != nil {
			t.Fatal(err)
		}
		if cache == 0 && h.reserved == 0 || cache > 0 && h.reserved != 0 || h.held != 0 {
			t.Errorf("--source-cache %s: reserved %d, still held %d", cache, h.reserved, h.held)
		}
	}
}
