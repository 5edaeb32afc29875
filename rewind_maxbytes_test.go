package icemerge

import (
	"fmt"
	"strings"
	"testing"
)

// --max-bytes bounds a run by the files' sizes, in source order, always at
// least one file; with --max-files the tighter bound wins; the next runs go
// on where it stopped, and the report counts the files left.
func TestMaxBytesBoundsARun(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		var cdcs []string
		for i := range 5 {
			k := fmt.Sprintf("2024/08/14/20240814-00%02d00000.parquet", i)
			e.copyFixture("20240814-002642123.parquet", k)
			cdcs = append(cdcs, k)
		}
		objs := e.listed()
		size := func(k string) int64 { return objs[k].Size }
		steps := []struct {
			maxFiles   int
			maxBytes   int64
			want, left int
		}{
			{0, size("LOAD00000001.parquet") + size(cdcs[0]) + size(cdcs[1]) - 1, 2, 4}, // the third would pass it
			{0, 1, 1, 3},       // at least one file
			{1, 1 << 40, 1, 2}, // --max-files is tighter
			{5, size(cdcs[3]) + size(cdcs[4]) - 1, 1, 1}, // --max-bytes is tighter
			{0, 0, 1, 0},
		}
		for i, s := range steps {
			e.opts.MaxFiles, e.opts.MaxBytes = s.maxFiles, ByteSize(s.maxBytes)
			e.out.Reset()
			res := e.run()
			if res.Files != s.want || res.Left != s.left {
				t.Fatalf("run %d (--max-files %d --max-bytes %d): %d files, %d left; want %d, %d", i+1, s.maxFiles, s.maxBytes, res.Files, res.Left, s.want, s.left)
			}
			if r := TableReportOf(e.opts.Table, res, nil); r.Left != s.left {
				t.Errorf("run %d: report files_left %d, want %d", i+1, r.Left, s.left)
			}
			if s.left > 0 && !strings.Contains(e.out.String(), fmt.Sprintf("%d more files left for the next run (", s.left)) ||
				s.maxBytes > 0 && s.left > 0 && !strings.Contains(e.out.String(), fmt.Sprintf("--max-bytes %d", s.maxBytes)) {
				t.Errorf("run %d output:\n%s", i+1, e.out.String())
			}
		}
		checkRows(t, e)
		if res := e.run(); res.Files != 0 {
			t.Errorf("a run after the bounded ones applied %d files", res.Files)
		}
	})
}
