package icemerge

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/internal/source"
)

// countingS3 counts the list requests a source makes.
type countingS3 struct {
	source.S3API
	lists atomic.Int64
}

func (c *countingS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.lists.Add(1)
	return c.S3API.ListObjectsV2(ctx, in, opts...)
}

// countingSource counts the objects a run lists.
type countingSource struct {
	Source
	listed int
}

func (c *countingSource) List(ctx context.Context, after string, fn func(source.Object) error) error {
	return c.Source.List(ctx, after, func(o source.Object) error { c.listed++; return fn(o) })
}

// Once applied CDC files are older than --settle-after, later runs on S3
// list only what is named after them, in a few requests, until a full
// listing is due; a late file named before a recent one is still picked
// up. A local folder is listed whole every run.
func TestSettledHistoryIsNotListed(t *testing.T) {
	for _, backend := range []string{"local", "minio-sql"} {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			now := time.Date(2024, 8, 14, 10, 10, 0, 0, time.UTC)
			d := e.deps(nil)
			d.Now = func() time.Time { return now }
			var counter *countingS3
			if b, ok := e.src.(*source.Bucket); ok {
				counter = &countingS3{S3API: b.Client}
				d.Source = &source.Bucket{Client: counter, Loc: b.Loc}
			}
			run := func() *Result {
				t.Helper()
				res, err := e.merge(d)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
			for day := 10; day <= 13; day++ { // older history, in date folders
				for i := range 30 {
					e.copyFixture("20240814-002642123.parquet", fmt.Sprintf("2024/08/%02d/202408%02d-00%02d00000.parquet", day, day, i))
				}
			}
			for i := range 5 {
				e.copyFixture("20240814-002642123.parquet", fmt.Sprintf("2024/08/14/20240814-10%02d00000.parquet", i))
			}
			run()
			// A late file, named before the newest applied one, within the window.
			now = now.Add(5 * time.Minute)
			e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-100250000.parquet")
			if res := run(); res.Files != 1 {
				t.Fatalf("the late file was not picked up: %d files", res.Files)
			}
			now = now.Add(20 * time.Minute)
			run() // settles
			bm := e.bookmark()
			if bm.Settled != "20240814-100400000" || bm.SettledFiles.Len() != 126 || len(bm.Files) != 1 {
				t.Fatalf("settled %q, %d settled files, %d files; want every CDC file settled", bm.Settled, bm.SettledFiles.Len(), len(bm.Files))
			}
			e.copyFixture("20240814-002642123.parquet", "2024/08/15/20240815-000000000.parquet")
			if counter != nil {
				counter.lists.Store(0)
			}
			res := run()
			if res.Files != 1 {
				t.Errorf("the new file was not applied: %d", res.Files)
			}
			if counter == nil {
				if !res.Listing.Full || res.Listed != 128 {
					t.Errorf("local folder: full %v, %d listed; want the whole folder", res.Listing.Full, res.Listed)
				}
			} else {
				// The LOAD file, the 14th's files and the new one: not the
				// 120 older ones.
				if res.Listing.Full || res.Listed != 8 || counter.lists.Load() > 8 || res.Listing.Requests != int(counter.lists.Load()) {
					t.Errorf("listed %d objects in %d requests (full %v); want the 8 after the watermark's day in a few",
						res.Listed, counter.lists.Load(), res.Listing.Full)
				}
				// A day later a full listing is due.
				now = now.Add(25 * time.Hour)
				if res := run(); !res.Listing.Full || res.Listed != 128 {
					t.Errorf("a day later: full %v, %d listed; want the whole folder", res.Listing.Full, res.Listed)
				}
			}
			checkRows(t, e)
		})
	}
}
