package catalog

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// KeyReplace is the snapshot summary key of an icemerge commit that
// replaced every row of the table, and why: "reload" (DMS wrote a new full
// load) or "truncate" (the source table was truncated).
const KeyReplace = "icemerge.replace"

// LivePositions finds every live row of the current snapshot, as data file
// → sorted positions with their count: a Change deleting them all replaces
// the table's rows in one commit (an overwrite snapshot: the table, its
// schema, properties and history stay). It reads the first key column of
// the data files and their position deletes, nothing else.
func (t *Table) LivePositions(ctx context.Context) (map[string][]int64, int, error) {
	keys := t.Keys()
	if len(keys) == 0 {
		return nil, 0, fmt.Errorf("table %s has no identifier fields: cannot find its rows", t.Name())
	}
	out := map[string][]int64{}
	n := 0
	_, err := ScanLive(ctx, t.t, keys[:1], nil, func(path string, cols []arrow.Array, first int64, deleted func(int64) bool) error {
		for i := range int64(cols[0].Len()) {
			if pos := first + i; !deleted(pos) {
				out[path] = append(out[path], pos)
				n++
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("finding the rows of %s to replace: %w", t.Name(), err)
	}
	return out, n, nil
}
