package icemerge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/source"
)

// countingSource counts the objects a run lists.
type countingSource struct {
	Source
	listed int
}

func (c *countingSource) List(ctx context.Context, after string, fn func(source.Object) error) error {
	return c.Source.List(ctx, after, func(o source.Object) error { c.listed++; return fn(o) })
}

// Once applied CDC files are older than --settle-after, later runs list
// only what comes after them; a late file named before a recent one is
// still picked up.
func TestSettledHistoryIsNotListed(t *testing.T) {
	for _, backend := range []string{"local", "minio-sql"} {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			now := time.Now()
			d := e.deps(nil)
			d.Now = func() time.Time { return now }
			src := &countingSource{Source: e.src}
			d.Source = src
			run := func() *Result {
				t.Helper()
				res, err := e.merge(d)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
			for i := range 5 {
				e.copyFixture("20240814-002642123.parquet", fmt.Sprintf("2024/08/14/20240814-00%02d00000.parquet", i))
			}
			run()
			// A late file, named before the newest applied one, within the window.
			now = now.Add(5 * time.Minute)
			e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-000250000.parquet")
			if res := run(); res.Files != 1 {
				t.Fatalf("the late file was not picked up: %d files", res.Files)
			}
			now = now.Add(20 * time.Minute)
			run() // settles
			if bm := e.bookmark(); bm.Settled != "2024/08/14/20240814-000400000.parquet" {
				t.Fatalf("settled %q", bm.Settled)
			}
			e.copyFixture("20240814-002642123.parquet", "2024/08/15/20240815-000000000.parquet")
			src.listed = 0
			if res := run(); res.Files != 1 {
				t.Errorf("the new file was not applied: %d", res.Files)
			}
			if src.listed != 2 { // the new CDC file and LOAD00000001
				t.Errorf("listed %d objects, want 2: settled history was relisted", src.listed)
			}
			checkRows(t, e)
		})
	}
}
