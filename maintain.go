package icemerge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
)

// MaintainResult is what a maintenance did; a step not run is nil.
type MaintainResult struct {
	Table     string
	DryRun    bool
	Steps     []string
	Compact   *catalog.CompactResult
	Manifests *catalog.ManifestsResult
	Expire    *catalog.ExpireResult
	Orphans   *catalog.OrphanResult
	Time      map[string]time.Duration
	// The settings the steps ran with, for their messages.
	ExpireOlderThan, OrphanOlderThan time.Duration
	RetainLast                       int
	// Declined are the steps asked for and not run, with the reason: those
	// the catalog does itself (S3 Tables) without --force-managed.
	Declined map[string]string
}

// Maintain is `icemerge maintain`: it takes the table's run lock (a run and
// a maintenance never overlap; a dry run takes none), then runs the steps
// in order. Each step commits on its own; a failed step leaves the table as
// it was and stops the ones after it.
func Maintain(ctx context.Context, o MaintainOptions, d Deps) (*MaintainResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return maintain(ctx, o, d)
}

// maintain is Maintain with o taken as valid.
func maintain(ctx context.Context, o MaintainOptions, d Deps) (*MaintainResult, error) {
	lock := d.Lock
	if o.DryRun {
		lock = nil
	}
	spec := lockSpec{table: o.Table, wait: o.Wait, ttl: o.LockTTL}
	return withLock(ctx, lock, spec, d.Now, d.Log, func(ctx context.Context) (*MaintainResult, error) {
		tbl, err := tableOf(ctx, d.Catalog, o.Table)
		if err != nil {
			return nil, err
		}
		return maintainLocked(ctx, o, d, tbl)
	})
}

// tableOf loads a table that must exist.
func tableOf(ctx context.Context, cat Catalog, name string) (*catalog.Table, error) {
	tbl, ok, err := cat.Load(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("table %s does not exist in the catalog (check --table, --catalog and --catalog-uri)", name)
	}
	return tbl, nil
}

func maintainLocked(ctx context.Context, o MaintainOptions, d Deps, tbl *catalog.Table) (*MaintainResult, error) {
	res := &MaintainResult{Table: o.Table, DryRun: o.DryRun, Steps: o.Steps, Time: map[string]time.Duration{},
		ExpireOlderThan: time.Duration(o.ExpireOlderThan), OrphanOlderThan: time.Duration(o.OrphanOlderThan), RetainLast: o.RetainLast}
	m, ok := d.Catalog.(maintainer)
	if !ok {
		return res, fmt.Errorf("the catalog of %s cannot maintain tables (this is a bug)", o.Table)
	}
	log := d.Log.With("table", o.Table)
	if res.Declined = declinedSteps(d.Catalog, o); len(res.Declined) > 0 {
		for _, step := range AllSteps {
			if why, ok := res.Declined[step]; ok {
				log.Warn("maintenance step declined", "step", step, "reason", why)
			}
		}
		if len(res.Declined) == len(slices.Compact(slices.Sorted(slices.Values(o.Steps)))) {
			var why []string
			for _, step := range AllSteps {
				if r, ok := res.Declined[step]; ok {
					why = append(why, step+": "+r)
				}
			}
			return res, usage(fmt.Errorf("maintenance of %s: every step asked for is declined: %s", o.Table, strings.Join(why, "; ")))
		}
	}
	began := time.Now()
	defer func() { res.Time["total"] = time.Since(began) }()
	for _, step := range AllSteps {
		if _, declined := res.Declined[step]; declined || !slices.Contains(o.Steps, step) {
			continue
		}
		start := time.Now()
		var err error
		switch step {
		case StepCompact:
			var r catalog.CompactResult
			if tbl, r, err = m.Compact(ctx, tbl, o.compact()); err != nil {
				return res, err
			}
			res.Compact = &r
			log.Info("compaction", "rewritten", len(r.Rewritten), "added", r.Added, "rows", r.Rows, "deleted_rows", r.DeletedRows,
				"delete_files_removed", len(r.DeleteFilesRemoved), "snapshot", r.Snapshot)
		case StepManifests:
			var r catalog.ManifestsResult
			if tbl, r, err = m.RewriteManifests(ctx, tbl, o.DryRun); err != nil {
				return res, err
			}
			res.Manifests = &r
		case StepExpire:
			var r catalog.ExpireResult
			if tbl, r, err = m.ExpireSnapshots(ctx, tbl, catalog.ExpireOptions{OlderThan: time.Duration(o.ExpireOlderThan), RetainLast: o.RetainLast, DryRun: o.DryRun}); err != nil {
				return res, err
			}
			res.Expire = &r
		case StepOrphans:
			var ex []string
			if l, perr := source.ParseLocation(o.Bookmark); perr == nil {
				ex = append(ex, l.String())
			}
			r, err := m.RemoveOrphans(ctx, tbl, catalog.OrphanOptions{OlderThan: time.Duration(o.OrphanOlderThan), Exclude: ex, DryRun: o.DryRun})
			res.Orphans = &r
			if err != nil {
				return res, err
			}
			log.Info("orphan files", "found", len(r.Files), "removed", r.Removed, "bytes", r.Bytes)
		}
		res.Time[step] = time.Since(start)
	}
	return res, nil
}

// managedCatalog is a catalog that may maintain its tables itself:
// *catalog.Catalog, which knows whether it is S3 Tables. An optional
// ability, checked with a type assertion.
type managedCatalog interface {
	Managed() bool
}

var _ managedCatalog = (*catalog.Catalog)(nil)

// declinedSteps are the steps of o that maintenance leaves to a catalog
// that maintains its tables itself, with the reason for each. S3 Tables
// compacts, expires snapshots and removes unreferenced files on its own:
// compaction and expiry by icemerge would only compete with it (and make
// the next run re-plan), unless --force-managed; orphan removal cannot work
// at all, since a table bucket's storage allows neither listing nor delete.
func declinedSteps(cat Catalog, o MaintainOptions) map[string]string {
	m, ok := cat.(managedCatalog)
	if !ok || !m.Managed() {
		return nil
	}
	out := map[string]string{}
	for _, step := range o.Steps {
		switch {
		case step == StepOrphans:
			out[step] = "the catalog removes unreferenced files itself, and its storage allows no listing or delete"
		case (step == StepCompact || step == StepExpire) && !o.ForceManaged:
			out[step] = "the catalog does this itself; pass --force-managed to run it anyway"
		}
	}
	return out
}

// due reports whether the table's file counts reach a threshold of the
// compaction at the end of a run.
func (o RunOptions) compactDue(st catalog.TableStats) bool {
	return (o.CompactWhenDeletes > 0 && st.DeleteFiles >= o.CompactWhenDeletes) || (o.CompactWhenFiles > 0 && st.DataFiles >= o.CompactWhenFiles)
}

// maintainAfterRun compacts tbl, just committed by a run that still holds
// the table's lock, when a threshold is reached, with the defaults of
// `icemerge maintain`. It never fails the run: an error is logged and
// returned beside the result, and the table is as the run left it.
func maintainAfterRun(ctx context.Context, ro RunOptions, d Deps, tbl *catalog.Table) (*MaintainResult, error) {
	if tbl == nil || !ro.compactDue(tbl.Stats()) {
		return nil, nil
	}
	st := tbl.Stats()
	d.Log.Info("compacting after the run", "table", ro.Table, "data_files", st.DataFiles, "delete_files", st.DeleteFiles)
	o := NewMaintainOptions()
	o.Common, o.Steps = ro.Common, []string{StepCompact}
	res, err := maintainLocked(ctx, o, d, tbl)
	if err != nil {
		d.Log.Warn("the compaction after the run failed; the run's commit stands (rerun icemerge maintain)", "table", ro.Table, "error", err)
	}
	return res, err
}
