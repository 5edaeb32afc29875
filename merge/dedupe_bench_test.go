package merge_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/icemerge/icemerge/merge"
)

// BenchmarkDedupe plans 1M changes (an int key and a timestamp order
// column, as the bench's DMS files) in three files, keys uniform over 10M
// or clustered on 200k, as the dedupe phase of a run does.
func BenchmarkDedupe(b *testing.B) {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "user_id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	}, nil)
	for _, c := range []struct {
		name string
		keys int32
	}{{"uniform", 10_000_000}, {"clustered", 200_000}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var files []*merge.File
			for fi := range 3 {
				f := &merge.File{Name: fmt.Sprintf("20240814-00000%d000.parquet", fi+1), Kind: merge.CDC, Schema: sc, HasOp: true}
				for range 33 {
					kb := array.NewInt32Builder(memory.DefaultAllocator)
					tb := array.NewTimestampBuilder(memory.DefaultAllocator, sc.Field(1).Type.(*arrow.TimestampType))
					for range 10_000 {
						kb.Append(rng.Int32N(c.keys))
						tb.Append(arrow.Timestamp(1_723_600_000_000_000 + rng.Int64N(1_000_000_000)))
						f.Ops = append(f.Ops, merge.Update)
					}
					f.Records = append(f.Records, array.NewRecordBatch(sc, []arrow.Array{kb.NewArray(), tb.NewArray()}, 10_000))
				}
				files = append(files, f)
			}
			opts := merge.Options{Keys: []string{"user_id"}, OrderBy: []string{"updated_at"}}
			b.ResetTimer()
			for b.Loop() {
				pl := merge.NewPlanner(sc, opts, files, merge.PlannerOptions{})
				if _, _, err := pl.Plan(b.Context(), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
