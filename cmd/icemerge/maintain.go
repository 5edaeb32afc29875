package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
)

// The steps of `icemerge maintain`, in the order they run: compaction first
// (it leaves the files it replaced to the older snapshots), then the
// manifests, then expiry (which drops those snapshots and deletes the files
// only they used), then orphans (what no snapshot references any more).
const (
	stepCompact   = "compact"
	stepManifests = "manifests"
	stepExpire    = "expire"
	stepOrphans   = "orphans"
)

var allSteps = []string{stepCompact, stepManifests, stepExpire, stepOrphans}

// MaintainOptions are the settings of `icemerge maintain`.
type MaintainOptions struct {
	Common
	DryRun  bool
	Steps   []string // a subset of allSteps; run in allSteps order
	Wait    time.Duration
	LockTTL time.Duration
	Compact catalog.CompactOptions
	// ExpireOlderThan and RetainLast: snapshots older than this expire,
	// beyond the newest RetainLast (and never the one holding the last
	// bookmark token, nor those after it).
	ExpireOlderThan time.Duration
	RetainLast      int
	// OrphanOlderThan protects unreferenced files younger than this: a
	// commit in flight (another writer's) has not referenced them yet.
	OrphanOlderThan time.Duration
}

// minOrphanAge is the youngest --orphan-older-than accepted.
const minOrphanAge = time.Hour

// Validate reports every problem at once.
func (o MaintainOptions) Validate() error {
	errs := []error{o.Common.Validate()}
	if len(o.Steps) == 0 {
		errs = append(errs, fmt.Errorf("--only names no step: use some of %s", strings.Join(allSteps, ",")))
	}
	for _, s := range o.Steps {
		if !slices.Contains(allSteps, s) {
			errs = append(errs, fmt.Errorf("--only: unknown step %q: use %s", s, strings.Join(allSteps, ", ")))
		}
	}
	if o.Compact.TargetFileSize <= 0 {
		errs = append(errs, errors.New("--target-file-size must be positive"))
	}
	if o.Compact.SmallFileSize < 0 || (o.Compact.SmallFileSize > 0 && o.Compact.SmallFileSize > o.Compact.TargetFileSize) {
		errs = append(errs, errors.New("--small-file-size must be between 0 (3/4 of --target-file-size) and --target-file-size"))
	}
	if o.Compact.MinInputFiles < 1 {
		errs = append(errs, errors.New("--min-input-files must be at least 1"))
	}
	if o.Compact.MaxInputBytes < 0 {
		errs = append(errs, errors.New("--max-compact-bytes must be 0 (no bound) or more"))
	}
	if o.ExpireOlderThan < 0 || o.Wait < 0 {
		errs = append(errs, errors.New("--expire-older-than and --wait cannot be negative"))
	}
	if o.RetainLast < 1 {
		errs = append(errs, errors.New("--retain-last must be at least 1"))
	}
	if o.OrphanOlderThan < minOrphanAge {
		errs = append(errs, fmt.Errorf("--orphan-older-than %s: use at least %s, so the files of a commit in flight are never deleted", o.OrphanOlderThan, minOrphanAge))
	}
	if o.LockTTL < 10*time.Second {
		errs = append(errs, fmt.Errorf("--lock-ttl %s: use at least 10s", o.LockTTL))
	}
	return errors.Join(errs...)
}

func (o *MaintainOptions) register(fs *flag.FlagSet) {
	o.Common.register(fs)
	fs.BoolVar(&o.DryRun, "dry-run", false, "print what each step would do and change nothing (no lock taken)")
	fs.Func("only", "the steps to run, comma-separated: "+strings.Join(allSteps, ",")+" (default all)", func(s string) error {
		o.Steps = splitList(s)
		return nil
	})
	o.Compact.TargetFileSize = catalog.DefaultTargetFileSize
	fs.Var((*sizeValue)(&o.Compact.TargetFileSize), "target-file-size", "compact: size of the new data files (bytes, or with KiB, MiB, GiB)")
	fs.Var((*sizeValue)(&o.Compact.SmallFileSize), "small-file-size", "compact: data files below this size are merged (0: 3/4 of --target-file-size)")
	fs.IntVar(&o.Compact.MinInputFiles, "min-input-files", catalog.DefaultMinInputFiles, "compact: merge small files only when there are at least this many (files with deleted rows are always rewritten)")
	fs.Var((*sizeValue)(&o.Compact.MaxInputBytes), "max-compact-bytes", "compact: read at most this many bytes of data files in one maintenance, files with the most deleted rows first (0: no bound)")
	o.ExpireOlderThan = 7 * 24 * time.Hour
	fs.Var((*daysValue)(&o.ExpireOlderThan), "expire-older-than", "expire: snapshots older than this go (a duration: 168h, or days: 7d)")
	fs.IntVar(&o.RetainLast, "retain-last", 5, "expire: always keep this many of the newest snapshots")
	o.OrphanOlderThan = 3 * 24 * time.Hour
	fs.Var((*daysValue)(&o.OrphanOlderThan), "orphan-older-than", "orphans: delete unreferenced files only when older than this (at least 1h)")
	fs.DurationVar(&o.Wait, "wait", 0, "wait this long for a run of the table to finish (0: exit 3 at once)")
	fs.DurationVar(&o.LockTTL, "lock-ttl", 10*time.Minute, "lease of the table's run lock, renewed while maintaining")
}

// sizeValue is a byte count flag: 134217728, 128MiB, 64KiB, 1GiB (powers of
// 1024), or 2GB, 500MB (powers of 1000).
type sizeValue int64

func (s *sizeValue) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeValue) Set(v string) error {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3}, {"B", 1}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return errors.New("want a byte count such as 134217728, 128MiB or 1GiB")
	}
	*s = sizeValue(n * mult)
	return nil
}

// daysValue is a duration flag that also takes whole days: 7d.
type daysValue time.Duration

func (d *daysValue) String() string { return time.Duration(*d).String() }

func (d *daysValue) Set(v string) error {
	if n, ok := strings.CutSuffix(strings.TrimSpace(v), "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return errors.New("want a duration such as 72h, 90m or 3d")
		}
		*d = daysValue(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want a duration such as 72h, 90m or 3d")
	}
	*d = daysValue(dur)
	return nil
}

// MaintainResult is what a maintenance did; a step not run is nil.
type MaintainResult struct {
	Compact   *catalog.CompactResult
	Manifests *catalog.ManifestsResult
	Expire    *catalog.ExpireResult
	Orphans   *catalog.OrphanResult
	Time      map[string]time.Duration
}

func cmdMaintain(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := newFlagSet("icemerge maintain", stderr)
	var o MaintainOptions
	o.register(fs)
	report := fs.String("report", "", "write a JSON report of the maintenance to this file ('-': stdout)")
	if err := parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if o.Steps == nil {
		o.Steps = slices.Clone(allSteps)
	}
	if err := o.defaults(env); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return usageErr(err)
	}
	log := o.logger(stderr)
	ctx, op, err := o.open(ctx, log, nil, "")
	if err != nil {
		return err
	}
	defer op.cat.Close()
	out := stdout
	if *report == "-" {
		out = stderr // stdout carries the report alone
	}
	started := time.Now()
	res, err := runMaintain(ctx, o, Deps{Log: log, Out: out, Now: time.Now, Catalog: op.cat, Bookmark: op.store, Lock: op.store})
	if *report != "" {
		if rerr := writeJSON(*report, stdout, "maintenance report", maintainReport(o, started, res, err)); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// runMaintain is `icemerge maintain`: it takes the table's run lock (a run
// and a maintenance never overlap), then runs the steps in order. Each step
// commits on its own; a failed step leaves the table as it was and stops the
// ones after it.
func runMaintain(ctx context.Context, o MaintainOptions, d Deps) (*MaintainResult, error) {
	if d.Lock != nil && !o.DryRun {
		ro := RunOptions{Common: o.Common, Wait: o.Wait, LockTTL: o.LockTTL}
		lease, err := acquire(ctx, ro, d)
		if err != nil {
			return nil, err
		}
		var stop func()
		ctx, stop = keepLease(ctx, lease, o.LockTTL, d.Log)
		defer func() {
			stop()
			if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
				d.Log.Warn("releasing the run lock failed; it expires by itself", "error", rerr)
			}
		}()
	}
	tbl, err := tableOf(ctx, d.Catalog, o.Table)
	if err != nil {
		return nil, err
	}
	return maintainLocked(ctx, o, d, tbl)
}

func maintainLocked(ctx context.Context, o MaintainOptions, d Deps, tbl *table.Table) (*MaintainResult, error) {
	res := &MaintainResult{Time: map[string]time.Duration{}}
	log := d.Log.With("table", o.Table)
	name, w := o.Table, d.Out
	if o.DryRun {
		fmt.Fprintf(w, "maintenance of %s (dry run: nothing is changed)\n", name)
	}
	began := time.Now()
	defer func() { res.Time["total"] = time.Since(began) }()
	for _, step := range allSteps {
		if !slices.Contains(o.Steps, step) {
			continue
		}
		start := time.Now()
		var err error
		switch step {
		case stepCompact:
			co := o.Compact
			co.DryRun = o.DryRun
			var r catalog.CompactResult
			tbl, r, err = d.Catalog.Compact(ctx, tbl, co)
			if err != nil {
				return res, err
			}
			res.Compact = &r
			printCompact(w, name, r, o.DryRun)
			log.Info("compaction", "rewritten", len(r.Rewritten), "added", r.Added, "rows", r.Rows, "deleted_rows", r.DeletedRows,
				"delete_files_removed", len(r.DeleteFilesRemoved), "snapshot", r.Snapshot)
		case stepManifests:
			var r catalog.ManifestsResult
			tbl, r, err = d.Catalog.RewriteManifests(ctx, tbl, o.DryRun)
			if err != nil {
				return res, err
			}
			res.Manifests = &r
			switch {
			case o.DryRun && r.DataBefore > 1:
				fmt.Fprintf(w, "%s: would merge %d data manifests (delete manifests: %d, left as they are)\n", name, r.DataBefore, r.DeleteBefore)
			case r.Snapshot != 0:
				fmt.Fprintf(w, "%s: manifests: %d data, %d delete → %d data, %d delete; snapshot %d\n", name, r.DataBefore, r.DeleteBefore, r.DataAfter, r.DeleteAfter, r.Snapshot)
			default:
				fmt.Fprintf(w, "%s: manifests: nothing to merge (%d data, %d delete)\n", name, r.DataBefore, r.DeleteBefore)
			}
		case stepExpire:
			var r catalog.ExpireResult
			tbl, r, err = d.Catalog.ExpireSnapshots(ctx, tbl, catalog.ExpireOptions{OlderThan: o.ExpireOlderThan, RetainLast: o.RetainLast, DryRun: o.DryRun})
			if err != nil {
				return res, err
			}
			res.Expire = &r
			kept := fmt.Sprintf("the newest %d", o.RetainLast)
			if o.ExpireOlderThan > 0 {
				kept += fmt.Sprintf(", those younger than %s", o.ExpireOlderThan)
			}
			if r.Marker != 0 {
				kept += fmt.Sprintf(" and snapshot %d with the last bookmark token", r.Marker)
			}
			if len(r.Expired) == 0 {
				fmt.Fprintf(w, "%s: snapshots: none to expire (%d, older than %s beyond the newest %d go)\n", name, r.Before, o.ExpireOlderThan, o.RetainLast)
			} else {
				verb := "expired"
				if o.DryRun {
					verb = "would expire"
				}
				fmt.Fprintf(w, "%s: %s %d of %d snapshots (kept: %s)\n", name, verb, len(r.Expired), r.Before, kept)
				if o.DryRun {
					for _, id := range r.Expired {
						fmt.Fprintf(w, "  expire snapshot %d\n", id)
					}
				}
			}
		case stepOrphans:
			var r catalog.OrphanResult
			ex := []string{}
			if l, perr := source.ParseLocation(o.Bookmark); perr == nil {
				ex = append(ex, l.String())
			}
			r, err = d.Catalog.RemoveOrphans(ctx, tbl, catalog.OrphanOptions{OlderThan: o.OrphanOlderThan, Exclude: ex, DryRun: o.DryRun})
			res.Orphans = &r
			if err != nil {
				return res, err
			}
			if o.DryRun {
				fmt.Fprintf(w, "%s: would remove %d orphan files (%s) older than %s\n", name, len(r.Files), bytesText(r.Bytes), o.OrphanOlderThan)
				for _, f := range r.Files {
					fmt.Fprintf(w, "  orphan %s (%s)\n", f.Path, bytesText(f.Size))
				}
			} else {
				fmt.Fprintf(w, "%s: removed %d orphan files (%s) older than %s\n", name, r.Removed, bytesText(r.Bytes), o.OrphanOlderThan)
			}
			log.Info("orphan files", "found", len(r.Files), "removed", r.Removed, "bytes", r.Bytes)
		}
		res.Time[step] = time.Since(start)
	}
	return res, nil
}

func printCompact(w io.Writer, name string, r catalog.CompactResult, dryRun bool) {
	if len(r.Rewritten) == 0 {
		fmt.Fprintf(w, "%s: nothing to compact (%d data files, %d delete files)\n", name, r.DataFiles, r.DeleteFiles)
		return
	}
	if dryRun {
		fmt.Fprintf(w, "%s: would compact %d of %d data files (%s): %d rows kept, %d deleted rows folded; would remove %d of %d delete files\n",
			name, len(r.Rewritten), r.DataFiles, bytesText(r.RewrittenBytes), r.Rows, r.DeletedRows, len(r.DeleteFilesRemoved), r.DeleteFiles)
		for _, p := range r.Rewritten {
			fmt.Fprintf(w, "  rewrite %s\n", p)
		}
		for _, p := range r.DeleteFilesRemoved {
			fmt.Fprintf(w, "  remove delete file %s\n", p)
		}
		return
	}
	fmt.Fprintf(w, "%s: compacted %d of %d data files (%s) into %d (%s): %d rows kept, %d deleted rows folded; removed %d of %d delete files; snapshot %d\n",
		name, len(r.Rewritten), r.DataFiles, bytesText(r.RewrittenBytes), r.Added, bytesText(r.AddedBytes), r.Rows, r.DeletedRows,
		len(r.DeleteFilesRemoved), r.DeleteFiles, r.Snapshot)
}

// bytesText is a byte count for people: 812 B, 41.2 KiB, 3.0 MiB.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// AfterRunOptions make a run compact the table at its end, once it has
// committed, when the table has grown this many files. The compaction uses
// the defaults of `icemerge maintain` and runs under the run's lock; if it
// fails, the run still succeeds (its commit stands) and says so.
type AfterRunOptions struct {
	WhenDeletes int // live position delete files (0: never)
	WhenFiles   int // live data files (0: never)
}

// register adds the run's flags of the end-of-run compaction.
func (a *AfterRunOptions) register(fs *flag.FlagSet) {
	fs.Var((*countValue)(&a.WhenDeletes), "compact-when-deletes", "after a commit, compact the table when it has at least this many delete files (0: never)")
	fs.Var((*countValue)(&a.WhenFiles), "compact-when-files", "after a commit, compact the table when it has at least this many data files (0: never)")
}

// countValue is a flag of a count, 0 or more.
type countValue int

func (c *countValue) String() string { return strconv.Itoa(int(*c)) }

func (c *countValue) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return errors.New("want a count, 0 or more")
	}
	*c = countValue(n)
	return nil
}

// due reports whether the table's file counts reach a threshold.
func (a AfterRunOptions) due(st catalog.TableStats) bool {
	return (a.WhenDeletes > 0 && st.DeleteFiles >= a.WhenDeletes) || (a.WhenFiles > 0 && st.DataFiles >= a.WhenFiles)
}

// maintainAfterRun compacts tbl, just committed by a run that still holds
// the table's lock, when a threshold is reached. It never fails the run:
// an error is logged and printed, and the table is as the run left it.
func maintainAfterRun(ctx context.Context, a AfterRunOptions, c Common, d Deps, tbl *table.Table) *MaintainResult {
	if tbl == nil || !a.due(catalog.Stats(tbl)) {
		return nil
	}
	st := catalog.Stats(tbl)
	d.Log.Info("compacting after the run", "table", c.Table, "data_files", st.DataFiles, "delete_files", st.DeleteFiles)
	o := MaintainOptions{Common: c, Steps: []string{stepCompact}, Compact: catalog.CompactOptions{TargetFileSize: catalog.DefaultTargetFileSize, MinInputFiles: catalog.DefaultMinInputFiles}}
	res, err := maintainLocked(ctx, o, d, tbl)
	if err != nil {
		d.Log.Warn("the compaction after the run failed; the run's commit stands (rerun icemerge maintain)", "table", c.Table, "error", err)
		fmt.Fprintf(d.Out, "%s: the compaction after the run failed (the run's commit stands; run icemerge maintain): %v\n", c.Table, err)
	}
	return res
}

// MaintainReport is the JSON document `icemerge maintain --report` writes.
type MaintainReport struct {
	Started   time.Time          `json:"started"`
	OK        bool               `json:"ok"`
	Table     string             `json:"table"`
	DryRun    bool               `json:"dry_run"`
	Steps     []string           `json:"steps"`
	Compact   *compactReport     `json:"compaction,omitempty"`
	Manifests *manifestsReport   `json:"manifests,omitempty"`
	Expire    *expireReport      `json:"expiry,omitempty"`
	Orphans   *orphansReport     `json:"orphans,omitempty"`
	Durations map[string]float64 `json:"durations"`
	Error     string             `json:"error,omitempty"`
}

type compactReport struct {
	DataFiles          int   `json:"data_files_before"`
	DeleteFiles        int   `json:"delete_files_before"`
	Rewritten          int   `json:"data_files_rewritten"`
	RewrittenBytes     int64 `json:"bytes_rewritten"`
	Added              int   `json:"data_files_added"`
	AddedBytes         int64 `json:"bytes_added"`
	Rows               int64 `json:"rows"`
	DeletedRows        int64 `json:"deleted_rows_folded"`
	DeleteFilesRemoved int   `json:"delete_files_removed"`
	DeleteFilesKept    int   `json:"delete_files_kept"`
	Snapshot           int64 `json:"snapshot_id,omitempty"`
}

type manifestsReport struct {
	DataBefore   int   `json:"data_manifests_before"`
	DeleteBefore int   `json:"delete_manifests_before"`
	DataAfter    int   `json:"data_manifests_after"`
	DeleteAfter  int   `json:"delete_manifests_after"`
	Snapshot     int64 `json:"snapshot_id,omitempty"`
}

type expireReport struct {
	Before  int     `json:"snapshots_before"`
	Expired []int64 `json:"snapshots_expired"`
	Marker  int64   `json:"token_snapshot_id,omitempty"`
}

type orphansReport struct {
	Files   []string `json:"files"`
	Bytes   int64    `json:"bytes"`
	Removed int      `json:"removed"`
}

func maintainReport(o MaintainOptions, started time.Time, res *MaintainResult, err error) MaintainReport {
	r := MaintainReport{Started: started.UTC(), OK: err == nil, Table: o.Table, DryRun: o.DryRun, Steps: o.Steps, Durations: map[string]float64{}}
	if err != nil {
		r.Error = err.Error()
	}
	if res == nil {
		return r
	}
	for k, v := range res.Time {
		r.Durations[k] = v.Seconds()
	}
	if c := res.Compact; c != nil {
		r.Compact = &compactReport{DataFiles: c.DataFiles, DeleteFiles: c.DeleteFiles, Rewritten: len(c.Rewritten), RewrittenBytes: c.RewrittenBytes,
			Added: c.Added, AddedBytes: c.AddedBytes, Rows: c.Rows, DeletedRows: c.DeletedRows,
			DeleteFilesRemoved: len(c.DeleteFilesRemoved), DeleteFilesKept: c.DeleteFilesKept, Snapshot: c.Snapshot}
	}
	if m := res.Manifests; m != nil {
		r.Manifests = &manifestsReport{DataBefore: m.DataBefore, DeleteBefore: m.DeleteBefore, DataAfter: m.DataAfter, DeleteAfter: m.DeleteAfter, Snapshot: m.Snapshot}
	}
	if e := res.Expire; e != nil {
		r.Expire = &expireReport{Before: e.Before, Expired: append([]int64{}, e.Expired...), Marker: e.Marker}
	}
	if of := res.Orphans; of != nil {
		r.Orphans = &orphansReport{Files: []string{}, Bytes: of.Bytes, Removed: of.Removed}
		for _, f := range of.Files {
			r.Orphans.Files = append(r.Orphans.Files, f.Path)
		}
	}
	return r
}
