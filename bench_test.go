package icemerge

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// BenchmarkRun measures the two runs users pay for: the full load of a
// table, and a CDC batch merged into it (reading the keys of the whole
// table, deduplicating, writing rows and position deletes, committing).
// make bench runs it once; figures are rows per second.
func BenchmarkRun(b *testing.B) {
	for _, size := range []struct{ load, cdc int }{{100_000, 10_000}, {1_000_000, 50_000}} {
		b.Run(fmt.Sprintf("load%d-cdc%d", size.load, size.cdc), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			row := func(id int, ts time.Time) dmstest.Row {
				return dmstest.Row{int32(id), fmt.Sprint("name", r.IntN(1e6)), fmt.Sprintf("u%d@example.com", id), "12.34", int8(1), uint64(id), ts}
			}
			encode := func(ops []string, rows []dmstest.Row) []byte {
				var buf bytes.Buffer
				if err := dmstest.Write(&buf, modelCols, ops, rows, dmstest.Options{Op: true, RowGroupRows: 64 * 1024}); err != nil {
					b.Fatal(err)
				}
				return buf.Bytes()
			}
			t0 := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
			var ops []string
			var rows []dmstest.Row
			for i := range size.load {
				ops, rows = append(ops, "I"), append(rows, row(i, t0))
			}
			load := encode(ops, rows)
			ops, rows = nil, nil
			for range size.cdc {
				op := []string{"U", "U", "D", "I"}[r.IntN(4)]
				id := r.IntN(size.load)
				if op == "I" {
					id += size.load
				}
				ops, rows = append(ops, op), append(rows, row(id, t0.Add(time.Minute)))
			}
			cdc := encode(ops, rows)

			var loadTime, cdcTime time.Duration
			for b.Loop() {
				b.StopTimer()
				e := newEnv(b, "local")
				e.opts.Table = "bench.t"
				e.reopen()
				e.put("LOAD00000001.parquet", load)
				b.StartTimer()
				start := time.Now()
				e.run()
				loadTime += time.Since(start)
				b.StopTimer()
				e.put("20240814-000100000.parquet", cdc)
				b.StartTimer()
				start = time.Now()
				e.run()
				cdcTime += time.Since(start)
			}
			b.ReportMetric(float64(size.load)*float64(b.N)/loadTime.Seconds(), "load-rows/s")
			b.ReportMetric(float64(size.cdc)*float64(b.N)/cdcTime.Seconds(), "cdc-rows/s")
			b.ReportMetric(cdcTime.Seconds()/float64(b.N), "cdc-run-s")
		})
	}
}
