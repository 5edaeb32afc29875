package catalog

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/merge"
)

// Table is an Iceberg table as the rest of icemerge sees it: its name, key,
// schema, the token of its last icemerge commit, its current snapshot and
// its live rows. It is a snapshot of the table's metadata at load or commit:
// the Catalog's methods return a new Table for every change.
type Table struct{ t *table.Table }

var _ merge.LiveRows = (*Table)(nil)

func wrap(t *table.Table) *Table {
	if t == nil {
		return nil
	}
	return &Table{t: t}
}

// Iceberg is the iceberg-go table, for tests that write to a table as
// another writer would.
func (t *Table) Iceberg() *table.Table { return t.t }

// Name is the table's NAMESPACE.NAME.
func (t *Table) Name() string { return Name(t.t) }

// Location is where the table's files are.
func (t *Table) Location() string { return t.t.Location() }

// MetadataLocation is the table's current metadata file.
func (t *Table) MetadataLocation() string { return t.t.MetadataLocation() }

// Keys are the table's identifier fields (its primary key), in order.
func (t *Table) Keys() []string { return Keys(t.t.Schema()) }

// Schema is the Arrow schema of the table's rows as merge handles them.
func (t *Table) Schema() (*arrow.Schema, error) { return StoredSchema(t.t.Schema()) }

// LastToken is the bookmark token of the table's last icemerge commit.
func (t *Table) LastToken() string { return LastToken(t.t) }

// Stats counts the table's live files and snapshots.
func (t *Table) Stats() TableStats { return Stats(t.t) }

// ScanLive reads the live rows of the current snapshot that may hold a key
// in rng; see [ScanLive].
func (t *Table) ScanLive(ctx context.Context, cols []string, rng *merge.KeyRange, fn merge.LiveRowsFunc) (merge.ScanStats, error) {
	return ScanLive(ctx, t.t, cols, rng, fn)
}

// Snapshot describes a snapshot of the table.
type Snapshot struct {
	ID        int64
	Time      time.Time
	Operation string
	// Summary holds the snapshot summary's properties (icemerge's keys
	// among them).
	Summary map[string]string
}

// Token is the icemerge run that committed the snapshot, "" when another
// writer (or a maintenance) did.
func (s *Snapshot) Token() string { return s.Summary[KeyToken] }

// Maintenance is the id of the icemerge maintenance that committed the
// snapshot, "" otherwise.
func (s *Snapshot) Maintenance() string { return s.Summary[KeyMaintenance] }

// Count reads an integer of the summary; ok is false when absent.
func (s *Snapshot) Count(key string) (int64, bool) {
	n, err := strconv.ParseInt(s.Summary[key], 10, 64)
	return n, err == nil
}

// Current is the table's current snapshot, nil when it has none.
func (t *Table) Current() *Snapshot {
	snap := t.t.CurrentSnapshot()
	if snap == nil {
		return nil
	}
	s := &Snapshot{ID: snap.SnapshotID, Time: time.UnixMilli(snap.TimestampMs).UTC(), Summary: map[string]string{}}
	if snap.Summary != nil {
		s.Operation = string(snap.Summary.Operation)
		for k, v := range snap.Summary.Properties {
			s.Summary[k] = v
		}
	}
	return s
}

// SnapshotID is the current snapshot's id, 0 when it has none.
func (t *Table) SnapshotID() int64 { return snapshotID(t.t) }

// ParseName checks a table name, NAMESPACE.NAME, and splits it.
func ParseName(s string) (namespace, name string, err error) {
	id, err := Ident(s)
	if err != nil {
		return "", "", err
	}
	return id[0], id[1], nil
}

// ReadAll reads every live row of the current snapshot: one array per
// column (the caller releases them).
func (t *Table) ReadAll(ctx context.Context) (*arrow.Schema, []arrow.Array, error) {
	at, err := t.t.Scan().ToArrowTable(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading table %s: %w", t.Name(), err)
	}
	defer at.Release()
	cols := make([]arrow.Array, at.NumCols())
	for i := range cols {
		a, err := array.Concatenate(at.Column(i).Data().Chunks(), memory.DefaultAllocator)
		if err != nil {
			for _, c := range cols[:i] {
				c.Release()
			}
			return nil, nil, fmt.Errorf("reading table %s: %w", t.Name(), err)
		}
		cols[i] = a
	}
	return at.Schema(), cols, nil
}
