package dmstest_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// CDC file names from a clock that stands still or steps back still
// increase, across Targets too (LastFile), and keep DMS's form.
func TestTargetNamesStrictlyIncrease(t *testing.T) {
	clock := []time.Time{
		time.Date(2024, 8, 14, 0, 26, 42, 123_456_789, time.UTC),
		time.Date(2024, 8, 14, 0, 26, 42, 123_000_000, time.UTC),
		time.Date(2024, 8, 14, 0, 26, 41, 0, time.UTC),
		time.Date(2024, 8, 14, 2, 26, 42, 0, time.FixedZone("x", 2*3600)), // the same instant in another zone
		time.Date(2024, 8, 14, 0, 27, 0, 0, time.UTC),
	}
	i := 0
	dir := t.TempDir()
	tg, err := dmstest.NewTarget(dmstest.TargetOptions{Dir: dir, Now: func() time.Time { i++; return clock[(i-1)%len(clock)] }})
	if err != nil {
		t.Fatal(err)
	}
	cols := []dmstest.Column{{Name: "id", Type: dmstest.Int32}}
	for n := range clock {
		if err := tg.Change("db.t", cols, "I", dmstest.Row{n}, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		if err := tg.Flush("db.t"); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, p := range tg.Files("db.t") {
		got = append(got, filepath.Base(p))
	}
	want := []string{"20240814-002642123.parquet", "20240814-002642124.parquet", "20240814-002642125.parquet",
		"20240814-002642126.parquet", "20240814-002700000.parquet"}
	if !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	if tg.LastFile() != want[4] {
		t.Errorf("LastFile %s", tg.LastFile())
	}
	last, err := dmstest.ParseCDCName(got[4])
	if err != nil || !last.Equal(clock[4]) {
		t.Errorf("ParseCDCName: %v, %v", last, err)
	}
	// A new Target continuing from the last name, with the clock behind.
	tg2, err := dmstest.NewTarget(dmstest.TargetOptions{Dir: dir, LastFile: want[4],
		Now: func() time.Time { return clock[0] }})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg2.Change("db.t", cols, "I", dmstest.Row{9}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := tg2.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if n := filepath.Base(tg2.Files("db.t")[0]); n != "20240814-002700001.parquet" {
		t.Errorf("next session's name %s", n)
	}
	if _, err := dmstest.NewTarget(dmstest.TargetOptions{Dir: dir, LastFile: "LOAD00000001.parquet"}); err == nil {
		t.Error("a LastFile that is no CDC name was accepted")
	}

	// DeleteTable removes the table's objects, not temporary files or
	// other tables'.
	if err := os.WriteFile(filepath.Join(dir, "db", "t", ".x.tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tg2.Change("db.u", cols, "I", dmstest.Row{1}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	deleted, err := tg2.DeleteTable("db.t")
	if err != nil || len(deleted) != 6 {
		t.Fatalf("deleted %v, %v", deleted, err)
	}
	if err := tg2.FlushAll(); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "db", "t"))
	if len(left) != 1 || left[0].Name() != ".x.tmp" || len(tg2.Files("db.u")) != 1 {
		t.Errorf("left %v, db.u files %v", left, tg2.Files("db.u"))
	}
}
