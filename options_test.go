package icemerge

import (
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
)

// The defaults written in the options' tags parse, and are what a command
// line without flags gets.
func TestDefaults(t *testing.T) {
	o := NewRunOptions()
	if o.SourceCache != 256<<20 || o.PartitionRows != 2_000_000 || o.SettleAfter != 15*time.Minute || o.LockTTL != bookmark.DefaultLeaseTTL ||
		o.TombstoneTTL != 7*24*time.Hour || o.OnBadFile != OnBadFileFail || len(o.OrderBy) != 1 || o.OrderBy[0] != "updated_at" || o.Catalog != catalog.KindSQL {
		t.Errorf("run defaults %+v", o)
	}
	m := NewMaintainOptions()
	if m.TargetFileSize != catalog.DefaultTargetFileSize || m.MinInputFiles != catalog.DefaultMinInputFiles || time.Duration(m.ExpireOlderThan) != 7*24*time.Hour ||
		time.Duration(m.OrphanOlderThan) != 72*time.Hour || m.RetainLast != 5 || len(m.Steps) != len(AllSteps) {
		t.Errorf("maintain defaults %+v", m)
	}
}

// The sql catalog takes a SQLite file or a PostgreSQL URI; anything else
// is a usage error, and no message shows a password.
func TestCatalogURIValidation(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	for _, tc := range []struct {
		uri  string
		want string // "" when valid
	}{
		{uri: "icemerge.db"},
		{uri: "file:///var/lib/icemerge/catalog.db"},
		{uri: "postgres://icemerge@db.internal:5432/lake"},
		{uri: "postgresql://icemerge:" + pw + "@db.internal/lake?sslmode=verify-full"},
		{uri: "s3://bucket/icemerge.db", want: "a local SQLite file (a path or file://) or a PostgreSQL database"},
		{uri: "mysql://icemerge:" + pw + "@db.internal/lake", want: "mysql://icemerge:xxxxx@db.internal/lake"},
		{uri: "postgres://icemerge:" + pw + "@db.internal:port/lake", want: "not a valid URI"},
		{uri: "postgres://icemerge:" + pw + "@db.internal/lake?sslmode=sometimes", want: "postgres://icemerge:xxxxx@db.internal/lake"},
	} {
		c := Common{Table: "test_db.users", Catalog: catalog.KindSQL, CatalogURI: tc.uri, Warehouse: "file:///wh", Bookmark: "file:///wh/_icemerge"}
		err := TableOptions{Common: c}.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", catalog.RedactURI(tc.uri), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", catalog.RedactURI(tc.uri), err, tc.want)
		case err != nil && strings.Contains(err.Error(), pw):
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestMaxBytesValidation(t *testing.T) {
	o := RunOptions{MaxBytes: -1}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--max-bytes must be 0") {
		t.Errorf("Validate with --max-bytes -1: %v", err)
	}
}

func TestOptionTypes(t *testing.T) {
	o := NewRunOptions()
	o.CompactWhenFiles = 3
	if !o.compactDue(catalog.TableStats{DataFiles: 3}) || o.compactDue(catalog.TableStats{DataFiles: 2, DeleteFiles: 100}) {
		t.Errorf("compactDue with --compact-when-files 3")
	}
	var s ByteSize
	for in, want := range map[string]int64{"128MiB": 128 << 20, "1GiB": 1 << 30, "4096": 4096, "64 KiB": 64 << 10, "2GB": 2e9} {
		if err := s.UnmarshalText([]byte(in)); err != nil || int64(s) != want {
			t.Errorf("size %q = %d, %v; want %d", in, s, err, want)
		}
	}
	if err := s.UnmarshalText([]byte("big")); err == nil {
		t.Error(`size "big" was accepted`)
	}
	if got := ByteSize(256 << 20).String(); got != "256MiB" {
		t.Errorf("256 MiB prints as %s", got)
	}
	var d Days
	if err := d.UnmarshalText([]byte("7d")); err != nil || time.Duration(d) != 7*24*time.Hour || d.String() != "7d" {
		t.Errorf("7d = %s, %v", time.Duration(d), err)
	}
	var c Columns
	if _ = c.UnmarshalText([]byte(" User_ID , b")); len(c) != 2 || c[0] != "user_id" || c[1] != "b" {
		t.Errorf("columns %q", c)
	}
	if _ = c.UnmarshalText([]byte("source")); c == nil || len(c) != 0 {
		t.Errorf("--order-by source is %q, want source order (empty)", c)
	}
}

// --memory bounds what a run holds: the source cache to a sixteenth of it,
// a partition's changes to half of it at bytesPerChange, the Go heap to it
// less the process's headroom; 0 leaves --source-cache and
// --partition-rows as given. Below 128MiB it is refused.
func TestMemoryBudget(t *testing.T) {
	for _, c := range []struct {
		memory, cache ByteSize
		partRows      int
		wantCache     int64
		wantRows      int
		wantHeap      int64
	}{
		{memory: 512 << 20, cache: 256 << 20, partRows: 2_000_000, wantCache: 32 << 20, wantRows: 512 << 20 / 2 / bytesPerChange, wantHeap: 448 << 20},
		{memory: 512 << 20, cache: 16 << 20, partRows: 100_000, wantCache: 16 << 20, wantRows: 100_000, wantHeap: 448 << 20},
		{memory: 8 << 30, cache: 256 << 20, partRows: 2_000_000, wantCache: 256 << 20, wantRows: 2_000_000, wantHeap: 8<<30 - 64<<20},
		{memory: 512 << 20, cache: 256 << 20, partRows: 0, wantCache: 32 << 20, wantRows: 512 << 20 / 2 / bytesPerChange, wantHeap: 448 << 20},
		{memory: 0, cache: 256 << 20, partRows: 2_000_000, wantCache: 256 << 20, wantRows: 2_000_000, wantHeap: 0},
	} {
		o := RunOptions{Memory: c.memory, SourceCache: c.cache, PartitionRows: c.partRows}
		if got := o.sourceCache(); got != c.wantCache {
			t.Errorf("--memory %s --source-cache %s: cache %d, want %d", c.memory, c.cache, got, c.wantCache)
		}
		if got := o.partitionRows(); got != c.wantRows {
			t.Errorf("--memory %s --partition-rows %d: partitions of %d, want %d", c.memory, c.partRows, got, c.wantRows)
		}
		if got := o.HeapLimit(); got != c.wantHeap {
			t.Errorf("--memory %s: heap limit %d, want %d", c.memory, got, c.wantHeap)
		}
	}
	if o := NewRunOptions(); o.Memory != 512<<20 {
		t.Errorf("default --memory %s, want 512MiB", o.Memory)
	}
	o := NewRunOptions()
	o.Memory = 64 << 20
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--memory 64MiB: use at least 128MiB") {
		t.Errorf("Validate with --memory 64MiB: %v", err)
	}
}
