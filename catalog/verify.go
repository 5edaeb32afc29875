package catalog

import (
	"context"
	"fmt"
	"maps"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// MaintenanceRepair is the KeyMaintenance value of a snapshot committed by
// `icemerge verify --repair`.
const MaintenanceRepair = "repair"

// CommitRepair commits a prepared repair (the rows `icemerge verify
// --repair` rewrites and deletes to make the table equal to its source
// database) as one snapshot. Like a maintenance commit it carries no
// bookmark token and leaves the token property alone: LastToken still
// finds the last run's token (in the snapshot's ancestors, or in the
// property), so the bookmark and the table stay in step and the next run
// reconciles as if the repair had not happened. The snapshot's summary
// holds summary, KeyMaintenance = MaintenanceRepair and KeyMaintenanceID =
// id, by which a commit whose answer was lost is recognised.
func (c *Catalog) CommitRepair(ctx context.Context, p *Prepared, id string, summary map[string]string) (*Table, error) {
	props := iceberg.Properties{}
	maps.Copy(props, summary)
	delete(props, KeyToken) // never: the bookmark would disagree with the table
	props[KeyMaintenance], props[KeyMaintenanceID] = MaintenanceRepair, id
	tx := p.tbl.NewTransaction()
	rd := tx.NewRowDelta(props)
	rd.AddRows(p.dataFiles...)
	rd.AddDeletes(p.deleteFiles...)
	if err := rd.Commit(ctx); err != nil {
		return nil, fmt.Errorf("staging the repair of %s: %w (nothing was committed)", Name(p.tbl), err)
	}
	committed, err := c.commitMaintenance(ctx, p.tbl, tx, "repair", func(t *table.Table) bool { return hasMaintenanceID(t, id) })
	return wrap(committed), err
}

// NewRepairID is a unique id for a repair commit, sortable by time.
func NewRepairID() string { return newMaintenanceID() }
