package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// cdcNameLayout is DMS's CDC file name, yyyyMMdd-HHmmssSSS, without the
// dot Go's layout needs.
const cdcNameLayout = "20060102-150405.000"

// namer hands out CDC file names from the clock, strictly increasing even
// when many files are cut in one millisecond or the clock steps back, so
// icemerge (which orders CDC files by name) applies them in commit order.
type namer struct {
	now  func() time.Time
	last time.Time // of the last name given; zero before the first
}

func (n *namer) next() string {
	t := n.now().UTC().Truncate(time.Millisecond)
	if !t.After(n.last) {
		t = n.last.Add(time.Millisecond)
	}
	n.last = t
	return strings.Replace(t.Format(cdcNameLayout), ".", "", 1) + ".parquet"
}

func parseCDCName(name string) (time.Time, error) {
	base := strings.TrimSuffix(filepath.Base(name), ".parquet")
	if len(base) != len("20060102-150405000") {
		return time.Time{}, fmt.Errorf("%q is not a CDC file name (yyyyMMdd-HHmmssSSS.parquet)", name)
	}
	return time.Parse(cdcNameLayout, base[:15]+"."+base[15:])
}

// batch is the changes of one table waiting for their file: one schema,
// the rows in commit order.
type batch struct {
	cols  []dmstest.Column
	ops   []string
	rows  []dmstest.Row
	bytes int64  // estimated size
	first uint32 // binlog timestamp of the first change
}

// estimate is a rough size of a row in a file, for cutting files by size.
func estimate(row dmstest.Row) int64 {
	n := int64(1)
	for _, v := range row {
		switch x := v.(type) {
		case string:
			n += int64(len(x)) + 4
		case []byte:
			n += int64(len(x)) + 4
		default:
			n += 8
		}
	}
	return n
}

// sameColumns reports whether two Parquet schemas are equal.
func sameColumns(a, b []dmstest.Column) bool { return slices.Equal(a, b) }

// writeFile writes one DMS Parquet file atomically: into a dot-named
// temporary file (icemerge ignores names starting with a dot), synced, then
// renamed, so a reader never sees half a file.
func writeFile(path string, cols []dmstest.Column, ops []string, rows []dmstest.Row) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := dmstest.Write(f, cols, ops, rows, dmstest.Options{Op: true}); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
