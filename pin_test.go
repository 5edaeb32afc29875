package icemerge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// rewritingSource runs rewrite right before the nth open of one object:
// DMS (or a person) rewriting a file after the run listed it (n = 1) or
// between the run's first read and the read that writes its winners (n = 2).
type rewritingSource struct {
	Source
	key     string
	n       int
	rewrite func()
	mu      sync.Mutex
	opens   int
}

func (s *rewritingSource) Open(ctx context.Context, key string, pin source.Version) (source.Reader, error) {
	if key == s.key {
		s.mu.Lock()
		s.opens++
		if s.opens == s.n {
			s.rewrite()
		}
		s.mu.Unlock()
	}
	return s.Source.Open(ctx, key, pin)
}

// Every read of a source object is pinned to the version listed: an object
// rewritten (same shape, other rows) after the listing or between the two
// reads fails the run naming it, commits nothing, moves no bookmark, and
// the next run applies the new content exactly once.
func TestSourceReadsArePinned(t *testing.T) {
	for _, backend := range []string{"local", "minio-sql"} {
		for _, n := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/open-%d", backend, n), func(t *testing.T) {
				e := newEnv(t, backend)
				e.opts.SourceCache = 0 // every file holding winners is read again
				e.put("LOAD00000001.parquet", dmsFile(t, nil, []string{"I", "I", "I"},
					dmstest.Row{int32(1), "one", badTS}, dmstest.Row{int32(2), "two", badTS}, dmstest.Row{int32(3), "three", badTS}))
				e.run()
				before, bm := e.table(), e.bookmark()
				const cdc = "20240814-002700000.parquet"
				later := badTS.Add(time.Minute)
				orig := dmsFile(t, nil, []string{"U"}, dmstest.Row{int32(1), "one b", later})
				// The same shape and size: one U row, of another key.
				replaced := dmsFile(t, nil, []string{"U"}, dmstest.Row{int32(2), "two b", later})
				if len(orig) != len(replaced) {
					t.Fatalf("the replacement is %d bytes, the original %d: want equal sizes", len(replaced), len(orig))
				}
				e.put(cdc, orig)
				d := e.deps(nil)
				d.Source = &rewritingSource{Source: e.src, key: cdc, n: n, rewrite: func() {
					if e.s3 != nil {
						e.put(cdc, replaced)
						return
					}
					// Locally, the rewrite keeps the modification time: only
					// the content tells.
					p := filepath.Join(e.dir, srcPrefix, cdc)
					fi, err := os.Stat(p)
					if err != nil {
						t.Fatal(err)
					}
					e.put(cdc, replaced)
					if n == 2 {
						if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
							t.Fatal(err)
						}
					}
				}}
				_, err := e.merge(d)
				t.Logf("%v", err)
				if !errors.Is(err, source.ErrChanged) || !strings.Contains(err.Error(), cdc) {
					t.Errorf("run over an object rewritten before open %d: err = %v, want ErrChanged naming %s", n, err, cdc)
				}
				if after := e.table(); after.SnapshotID != before.SnapshotID {
					t.Errorf("the run committed (snapshot %d → %d): %v", before.SnapshotID, after.SnapshotID, after.Rows)
				}
				if after := e.bookmark(); after.Token != bm.Token || len(after.Files) != len(bm.Files) || after.Pending != nil {
					t.Errorf("the bookmark moved: %+v", after)
				}
				if res := e.run(); res.Files != 1 {
					t.Errorf("the next run applied %d files, want the rewritten one", res.Files)
				}
				rows := e.table().Rows
				got := map[string]string{}
				for _, r := range rows {
					got[fmt.Sprint(r["user_id"])] = fmt.Sprint(r["name"])
				}
				if want := map[string]string{"1": "one", "2": "two b", "3": "three"}; len(rows) != 3 || !maps.Equal(got, want) {
					t.Errorf("table %v (%d rows), want %v", got, len(rows), want)
				}
				if res := e.run(); res.Files != 0 {
					t.Errorf("a third run applied %d files again", res.Files)
				}
			})
		}
	}
}
