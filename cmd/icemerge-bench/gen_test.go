package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func TestGenChangesIsDeterministic(t *testing.T) {
	p := genParams{Seed: 7, Rows: 10_000, Changes: 5_000, Spread: spreadUniform}
	a, b := genChanges(p, 1), genChanges(p, 1)
	if !bytes.Equal(a.ops, b.ops) || !slices.Equal(a.keys, b.keys) || !slices.Equal(a.ts, b.ts) {
		t.Fatal("the same seed gave two different batches")
	}
	p.Seed = 8
	if c := genChanges(p, 1); slices.Equal(a.keys, c.keys) {
		t.Fatal("another seed gave the same keys")
	}
	p.Seed = 7
	if c := genChanges(p, 2); slices.Equal(a.keys, c.keys) {
		t.Fatal("batch 2 has the keys of batch 1")
	}
}

func TestGenChangesProportions(t *testing.T) {
	for _, spread := range []string{spreadUniform, spreadClustered} {
		t.Run(spread, func(t *testing.T) {
			p := genParams{Seed: 1, Rows: 100_000, Changes: 50_000, Spread: spread}
			s := genChanges(p, 1)
			n := map[byte]int{}
			for _, op := range s.ops {
				n[op]++
			}
			near := func(what string, got int, want float64) {
				t.Helper()
				if f := float64(got) / float64(p.Changes); math.Abs(f-want) > 0.015 {
					t.Errorf("%s: %.3f of the changes, want %.2f", what, f, want)
				}
			}
			near("I", n['I'], 0.20)
			near("U", n['U'], 0.70)
			near("D", n['D'], 0.10)
			near("repeats", s.repeats, 0.10)
			if s.equalTS == 0 || s.equalTS >= s.repeats {
				t.Errorf("%d of %d repeats share the previous updated_at; want some, not all", s.equalTS, s.repeats)
			}
			seen := map[int32]bool{}
			for i, op := range s.ops {
				if i > 0 && s.ts[i] < s.ts[i-1] && s.ts[i] != lastTS(s, i) {
					t.Fatalf("change %d: updated_at goes back without repeating its key's previous change", i)
				}
				if op == 'I' {
					if s.keys[i] <= int32(p.Rows) || seen[s.keys[i]] {
						t.Fatalf("change %d: insert of key %d, want a new key above %d", i, s.keys[i], p.Rows)
					}
				}
				seen[s.keys[i]] = true
			}
		})
	}
}

// lastTS is the updated_at of the latest change of key i's key before i.
func lastTS(s *changeSeq, i int) int64 {
	for j := i - 1; j >= 0; j-- {
		if s.keys[j] == s.keys[i] {
			return s.ts[j]
		}
	}
	return -1
}

func TestGenChangesSpread(t *testing.T) {
	const rows = 100_000
	frac := func(spread string, in func(k int32) bool) float64 {
		s := genChanges(genParams{Seed: 3, Rows: rows, Changes: 20_000, Spread: spread}, 1)
		hit, all := 0, 0
		for i, op := range s.ops {
			if op == 'I' || s.keys[i] > rows { // inserts, and changes of keys inserted in the batch
				continue
			}
			all++
			if in(s.keys[i]) {
				hit++
			}
		}
		return float64(hit) / float64(all)
	}
	hot := func(k int32) bool { return k > rows-rows/50 }
	if f := frac(spreadClustered, hot); f != 1 {
		t.Errorf("clustered: %.3f of the U/D keys in the top 2%%, want all", f)
	}
	// A bigger table gets the same batch: the top 200k keys, not 2%.
	big := genChanges(genParams{Seed: 3, Rows: 20_000_000, Changes: 20_000, Spread: spreadClustered}, 1)
	for i, op := range big.ops {
		if k := big.keys[i]; op != 'I' && k <= 20_000_000 && k <= 20_000_000-maxHotKeys {
			t.Fatalf("clustered over 20M rows: change %d (%c) of key %d, below the top %d keys", i, op, k, maxHotKeys)
		}
	}
	if f := frac(spreadUniform, hot); f > 0.05 {
		t.Errorf("uniform: %.3f of the U/D keys in the top 2%%, want about 0.02", f)
	}
	if f := frac(spreadUniform, func(k int32) bool { return k <= rows/2 }); math.Abs(f-0.5) > 0.03 {
		t.Errorf("uniform: %.3f of the U/D keys in the lower half, want about 0.5", f)
	}
}

func TestGenFiles(t *testing.T) {
	p := genParams{Seed: 5, Rows: 3_000, Changes: 1_000, Spread: spreadClustered, Shape: shapeLegacy}
	dirs := []string{t.TempDir(), t.TempDir()}
	var stats []*genStats
	for _, d := range dirs {
		if _, err := genBase(d, p); err != nil {
			t.Fatal(err)
		}
		s, err := genBatch(d, p, 1)
		if err != nil {
			t.Fatal(err)
		}
		stats = append(stats, s)
	}
	if s, err := genBase(dirs[0], p); err != nil || !s.Cached {
		t.Errorf("second genBase: cached %v, %v; want the cache", s != nil && s.Cached, err)
	}
	for _, rel := range []string{filepath.Join(filepath.Base(baseDir(dirs[0], p)), loadName(1)), filepath.Join(filepath.Base(filepath.Dir(batchDir(dirs[0], p, 1))), "batch-0001", stats[0].Files[0])} {
		a, err := os.ReadFile(filepath.Join(dirs[0], "data", rel))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dirs[1], "data", rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two generations with one seed", rel)
		}
	}
	if got := loadName(10); got != "LOAD0000000A.parquet" {
		t.Errorf("loadName(10) = %s, want DMS's hex counter LOAD0000000A.parquet", got)
	}
	if !regexp.MustCompile(`^2024\d{4}-\d{9}\.parquet$`).MatchString(stats[0].Files[0]) {
		t.Errorf("CDC file name %s, want 2024MMDD-HHMMSSmmm.parquet", stats[0].Files[0])
	}

	load := readAll(t, filepath.Join(baseDir(dirs[0], p), loadName(1)))
	if load.Schema().Field(0).Name != "user_id" || load.NumRows() != int64(p.Rows) {
		t.Errorf("LOAD file: first column %s, %d rows; want user_id (no Op), %d", load.Schema().Field(0).Name, load.NumRows(), p.Rows)
	}
	cdc := readAll(t, filepath.Join(batchDir(dirs[0], p, 1), stats[0].Files[0]))
	if cdc.Schema().Field(0).Name != "Op" || cdc.NumRows() != int64(p.Changes) {
		t.Errorf("CDC file: first column %s, %d rows; want Op, %d", cdc.Schema().Field(0).Name, cdc.NumRows(), p.Changes)
	}
	if f := cdc.Schema().Field(6); f.Name != "updated_at" || f.Type.(*arrow.TimestampType).TimeZone == "" {
		t.Errorf("column %s %s, want updated_at, a UTC-adjusted timestamp", f.Name, f.Type)
	}
	seq := genChanges(p, 1)
	ops := cdc.Column(0).(*array.String)
	bio := cdc.Column(8).(*array.String)
	for i := range int(cdc.NumRows()) {
		if ops.Value(i) != string(seq.ops[i]) {
			t.Fatalf("row %d: Op %s, want %c", i, ops.Value(i), seq.ops[i])
		}
		if v := bio.Value(i); len(v) != bioLen || !utf8.ValidString(v) {
			t.Fatalf("row %d: bio of %d bytes (valid UTF-8 %v), want %d valid", i, len(v), utf8.ValidString(v), bioLen)
		}
	}
}

func readAll(t *testing.T, path string) arrow.RecordBatch {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	rr := array.NewTableReader(tbl, tbl.NumRows())
	defer rr.Release()
	rr.Next()
	rec := rr.RecordBatch()
	rec.Retain()
	return rec
}

func TestCloneTreeLinksOnlyImmutableFiles(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	for _, f := range []string{"bench.db/t/data/a.parquet", "bench.db/t/metadata/00001-x.metadata.json", "_icemerge/bench.t/bookmark.json.gz"} {
		p := filepath.Join(src, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	if err := cloneTree(src, dst); err != nil {
		t.Fatal(err)
	}
	same := func(f string) bool {
		a, _ := os.Stat(filepath.Join(src, f))
		b, _ := os.Stat(filepath.Join(dst, f))
		return os.SameFile(a, b)
	}
	if !same("bench.db/t/data/a.parquet") || !same("bench.db/t/metadata/00001-x.metadata.json") {
		t.Error("table files are copied, want hardlinks")
	}
	if same("_icemerge/bench.t/bookmark.json.gz") {
		t.Error("the bookmark is hardlinked: a run would change the snapshot's copy")
	}
}
