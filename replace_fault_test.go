package icemerge

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// The commits that replace a table's rows keep exactly once: for every
// point where a run writes, crash a reload's run (or an emptying after a
// truncate) right there, or lose the answer, then rerun: the table ends as
// one replace left it, one snapshot replaced the rows, no file is consumed
// twice, and the bookmark agrees with the table.
func TestCrashAtEveryWritePointOfAReplace(t *testing.T) {
	scenarios := []struct {
		name   string
		setup  func(e *env)
		want   string // the users after the replace
		reason string
		files  int // files the replace consumes
	}{
		{name: "reload", reason: "reload", want: "2,7,8,9", files: 2, setup: func(e *env) {
			e.remove("LOAD00000001.parquet")
			e.remove("20240814-000100000.parquet")
			e.putRows("LOAD00000001.parquet", ops("I I I"),
				dmstest.Row{int32(2), "two again", at(0)}, dmstest.Row{int32(7), "seven", at(0)}, dmstest.Row{int32(8), "eight", at(0)})
			e.putRows("20240814-001000000.parquet", ops("I"), dmstest.Row{int32(9), "nine", at(10)})
		}},
		{name: "truncate", reason: "truncate", want: "20", files: 1, setup: func(e *env) {
			e.opts.OnTruncate = OnTruncateEmpty
			e.remove("LOAD00000001.parquet")
			e.remove("20240814-000100000.parquet")
			e.putRows("20240814-003000000.parquet", ops("I"), dmstest.Row{int32(20), "twenty", at(30)})
		}},
	}
	for _, sc := range scenarios {
		for _, backend := range []string{"minio-sql", "minio-glue"} {
			for _, wp := range writePoints {
				if wp.glue != (backend == "minio-glue") {
					continue // the Glue catalog adds its own commit point; the rest is alike
				}
				for _, action := range []testservers.Action{testservers.FailBefore, testservers.FailAfter} {
					t.Run(fmt.Sprintf("%s/%s/%s/%v", sc.name, backend, wp.name, action), func(t *testing.T) {
						e := newEnv(t, backend)
						loadAndChange(t, e)
						before := e.snapshotID()
						sc.setup(e)

						e.faults.Add(testservers.Rule{Name: wp.name, Match: wp.match, Action: action, Skip: wp.skip, Times: 1})
						_, err := e.merge(e.deps(nil))
						if e.faults.Hits(wp.name) == 0 {
							t.Fatalf("the fault never fired; requests: %v", e.faults.Requests())
						}
						t.Logf("faulted run: %v", err)
						if err != nil && e.snapshotID() != before && wp.name != "bookmark done" &&
							!(wp.name == "catalog commit" && action == testservers.FailAfter) {
							t.Errorf("the run failed (%v) but committed a snapshot", err)
						}
						e.faults.Reset()
						e.run()
						if res := e.run(); res.Outcome != OutcomeNothingNew {
							t.Errorf("third run: %q, want nothing new", res.Outcome)
						}
						if ids, _ := e.ids(); strings.Join(ids, ",") != sc.want {
							t.Errorf("users %v, want %s", ids, sc.want)
						}
						replaces, files := 0, 0
						for _, s := range e.snapshotSummaries() {
							if s[catalog.KeyToken] == "" {
								continue
							}
							n, _ := strconv.Atoi(s[catalog.KeySourceFiles])
							files += n
							if s[catalog.KeyReplace] != "" {
								replaces++
								if s[catalog.KeyReplace] != sc.reason || n != sc.files {
									t.Errorf("replace snapshot %v, want %s of %d files", s, sc.reason, sc.files)
								}
							}
						}
						if replaces != 1 || files != 2+sc.files {
							t.Errorf("%d replace snapshots, %d files consumed; want 1 and %d", replaces, files, 2+sc.files)
						}
						bm := e.bookmark()
						tbl, _, _ := e.cat.Load(e.ctx, e.opts.Table)
						if bm.Pending != nil || bm.Token != tbl.LastToken() || len(bm.Files) != sc.files || bm.Tombstones.Len() != 0 {
							t.Errorf("bookmark: pending %v, token %q vs %q, files %v, %d tombstones",
								bm.Pending, bm.Token, tbl.LastToken(), bm.SortedFiles(), bm.Tombstones.Len())
						}
					})
				}
			}
		}
	}
}
