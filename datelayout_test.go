package icemerge

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// dmsDateFolder is the folder DMS writes a CDC file of time t to, with a
// DatePartitionSequence ("" for none: the table folder itself) and a
// DatePartitionDelimiter.
func dmsDateFolder(seq, delim string, t time.Time) string {
	if seq == "" {
		return ""
	}
	parts := map[string][]string{
		"YYYYMMDD":   {"2006", "01", "02"},
		"YYYYMMDDHH": {"2006", "01", "02", "15"},
		"YYYYMM":     {"2006", "01"},
		"MMYYYYDD":   {"01", "2006", "02"},
		"DDMMYYYY":   {"02", "01", "2006"},
	}[seq]
	sep := map[string]string{"SLASH": "/", "DASH": "-", "UNDERSCORE": "_", "NONE": ""}[delim]
	var segs []string
	for _, p := range parts {
		segs = append(segs, t.UTC().Format(p))
	}
	return strings.Join(segs, sep) + "/"
}

// layoutSeeds is how many random histories each backend plays; set
// ICEMERGE_LAYOUT_SEEDS for more.
func layoutSeeds(backend string) int {
	if n, err := strconv.Atoi(os.Getenv("ICEMERGE_LAYOUT_SEEDS")); err == nil && n > 0 {
		return n
	}
	if backend == "local" {
		return 4
	}
	return 2
}

// No file is ever skipped, or applied twice, because of where its key
// sorts. Random histories, with settling on: DMS writes CDC files named by
// the clock in one date layout (any DatePartitionSequence and delimiter, or
// none), switches layout on the existing folder once or twice, crosses a
// new year, and some files arrive late, after newer ones settled. Runs
// follow the clock; at the end a full listing is due. Every file inserts
// its own key: the table holds every key, and the runs' plans name every
// file exactly once.
func TestNoFileIsSkippedWhateverItsKey(t *testing.T) {
	seqs := []string{"", "YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"}
	delims := []string{"SLASH", "DASH", "UNDERSCORE", "NONE"}
	for _, backend := range localAndMinIO {
		for seed := range uint64(layoutSeeds(backend)) {
			t.Run(fmt.Sprintf("%s/seed%d", backend, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 14))
				e := newEnv(t, backend)
				e.opts.FullListEvery = []time.Duration{24 * time.Hour, 6 * time.Hour, 3 * time.Hour}[rng.IntN(3)]
				now := time.Date(2024, 12, 31, 18+rng.IntN(5), rng.IntN(60), 0, 0, time.UTC) // a new year comes
				if rng.IntN(3) == 0 {
					now = time.Date(2025, 3, 14, rng.IntN(24), 0, 0, 0, time.UTC)
				}
				d := e.deps(nil)
				d.Now = func() time.Time { return now }
				applied := map[string]int{}
				windowed, lateFound := 0, 0
				run := func() *Result {
					t.Helper()
					res, err := e.merge(d)
					if err != nil {
						t.Fatalf("run at %s: %v", now.Format(time.RFC3339), err)
					}
					if res.Plan != nil {
						for _, f := range res.Plan.Files {
							applied[f.Name]++
						}
					}
					if !res.Listing.Full {
						windowed++
					}
					lateFound += len(res.Listing.Late)
					return res
				}
				onTime := map[string]bool{}
				e.putRows("LOAD00000001.parquet", ops("I"), dmstest.Row{int32(0), "load", now})
				written := []string{"LOAD00000001.parquet"}
				type held struct {
					key   string
					ticks int
					row   dmstest.Row
				}
				var late []held
				seq, delim := seqs[rng.IntN(len(seqs))], delims[rng.IntN(len(delims))]
				layouts := []string{seq + "/" + delim}
				id := int32(0)
				for tick := range 40 {
					now = now.Add(time.Duration(2+rng.IntN(45)) * time.Minute)
					if tick > 0 && rng.IntN(14) == 0 { // the endpoint's partitioning changes
						seq, delim = seqs[rng.IntN(len(seqs))], delims[rng.IntN(len(delims))]
						layouts = append(layouts, seq+"/"+delim)
					}
					for range rng.IntN(3) {
						id++
						at := now.Add(-time.Duration(rng.IntN(60)) * time.Second).Truncate(time.Second).Add(time.Duration(id) * time.Millisecond) // names are unique
						key := dmsDateFolder(seq, delim, at) + source.FormatCDCName(at) + ".parquet"
						row := dmstest.Row{id, "cdc", at}
						if rng.IntN(6) == 0 { // arrives late
							late = append(late, held{key, 1 + rng.IntN(12), row})
							continue
						}
						e.putRows(key, ops("I"), row)
						written = append(written, key)
						onTime[key] = true
					}
					kept := late[:0]
					for _, h := range late {
						if h.ticks--; h.ticks > 0 {
							kept = append(kept, h)
							continue
						}
						e.putRows(h.key, ops("I"), h.row)
						written = append(written, h.key)
					}
					late = kept
					run()
				}
				// Without a full listing due, every file written on time is
				// applied once the runs have drained.
				for range 20 {
					if res := run(); res.Files == 0 {
						break
					}
				}
				for k := range onTime {
					if applied[k] != 1 {
						t.Errorf("%s, written on time, applied %d times before the full listing", k, applied[k])
					}
				}
				for _, h := range late {
					e.putRows(h.key, ops("I"), h.row)
					written = append(written, h.key)
				}
				// A day later: a full listing finds the late files, and
				// bounded batches drain.
				now = now.Add(25 * time.Hour)
				for range 20 {
					if res := run(); res.Files == 0 {
						break
					}
				}
				t.Logf("layouts %v, %d files, full listing every %s; %d windowed runs, %d files found late",
					layouts, len(written), e.opts.FullListEvery, windowed, lateFound)
				for _, k := range written {
					if applied[k] != 1 {
						t.Errorf("%s applied %d times", k, applied[k])
					}
				}
				if len(applied) != len(written) {
					t.Errorf("%d files applied, %d written", len(applied), len(written))
				}
				rows := byKey(e.table().Rows, "user_id")
				for i := int32(0); i <= id; i++ {
					if _, ok := rows[fmt.Sprint(i)]; !ok {
						t.Errorf("user %d is missing", i)
					}
				}
				if len(rows) != len(written) {
					t.Errorf("%d rows for %d files", len(rows), len(written))
				}
			})
		}
	}
}
