package catalog

import (
	"reflect"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// iceberg-go filters the rows of a scan by converting its row filter to a
// Substrait expression (table/substrait's ConvertExpr, on the extension
// collection the Makefile's patched iceberg-go loads on first use rather
// than at start: third_party/iceberg-go). Filters from the default
// Substrait functions and from Iceberg's own function set (is_in) read back
// the model's rows, with the deletes of the workload applied.
func TestIcebergScanRowFilter(t *testing.T) {
	e := newMaintainEnv(t)
	e.workload()
	id := iceberg.Reference("id")
	for _, tc := range []struct {
		name   string
		filter iceberg.BooleanExpression
		keep   func(int32) bool
	}{
		{"in", iceberg.IsIn(id, int32(1), int32(3), int32(4), int32(20)), func(i int32) bool { return i == 1 || i == 3 || i == 4 || i == 20 }},
		{"not in", iceberg.NotIn(id, int32(1), int32(2)), func(i int32) bool { return i != 1 && i != 2 }},
		{"range", iceberg.NewAnd(iceberg.GreaterThanEqual(id, int32(5)), iceberg.LessThan(id, int32(12))), func(i int32) bool { return i >= 5 && i < 12 }},
		{"or not", iceberg.NewOr(iceberg.EqualTo(id, int32(0)), iceberg.NewNot(iceberg.LessThan(id, int32(18)))), func(i int32) bool { return i == 0 || i >= 18 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[int32]string{}
			for i, v := range e.model {
				if tc.keep(i) {
					want[i] = v
				}
			}
			if len(want) == 0 || len(want) == len(e.model) {
				t.Fatalf("the filter keeps %d of %d rows: pick one that keeps some", len(want), len(e.model))
			}
			got, n, err := e.scan(e.tbl.Scan(table.WithRowFilter(tc.filter)))
			if err != nil {
				t.Fatal(err)
			}
			if n != len(want) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %d rows %v\nwant %v (of %v)", tc.filter, n, got, want, e.model)
			}
		})
	}
}
