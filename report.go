package icemerge

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Report is the JSON document `--report` writes: what each table's run did,
// for Step Functions to branch on and for comparing runs.
type Report struct {
	Started time.Time     `json:"started"`
	OK      bool          `json:"ok"`
	Tables  []TableReport `json:"tables"`
}

// TableReport is one table's run.
type TableReport struct {
	Table   string `json:"table"`
	Outcome string `json:"outcome"` // committed, nothing new, no row changes, quarantined only, dry run, reloaded, reload waiting, emptied, failed
	Files   int    `json:"files"`
	Left    int    `json:"files_left"`
	// Quarantined maps skipped object keys to the reason.
	Quarantined map[string]string `json:"quarantined,omitempty"`
	RowsRead    int               `json:"rows_read"`
	Inserts     int               `json:"inserts"`
	Updates     int               `json:"updates"`
	Deletes     int               `json:"deletes"`
	Keys        int               `json:"keys"`
	// Duplicates are changes collapsed into a later change of their key.
	Duplicates   int      `json:"duplicates_collapsed"`
	RowsInserted int      `json:"rows_inserted"`
	RowsUpdated  int      `json:"rows_updated"`
	RowsDeleted  int      `json:"rows_deleted"`
	Stale        int      `json:"stale"`
	SnapshotID   int64    `json:"snapshot_id,omitempty"`
	Token        string   `json:"token,omitempty"`
	SchemaChange []string `json:"schema_changes,omitempty"`
	BytesRead    int64    `json:"bytes_read"`
	BytesWritten int64    `json:"bytes_written"`
	// The table's files the run read to find the rows it replaces, and
	// those it skipped by their key bounds.
	TableFilesScanned int   `json:"table_files_scanned"`
	TableFilesPruned  int   `json:"table_files_pruned"`
	RowGroupsScanned  int   `json:"table_row_groups_scanned"`
	RowGroupsPruned   int   `json:"table_row_groups_pruned"`
	TableBytesScanned int64 `json:"table_bytes_scanned"`
	// Durations in seconds, per phase.
	Durations map[string]float64 `json:"durations"`
	Error     string             `json:"error,omitempty"`
	// Listing is what the listing found besides new files: late files,
	// applied files gone, a reload (listing.go).
	Listing *listingReport `json:"listing,omitempty"`
}

// TableReportOf is the report of one table's run: its result (nil when the
// run did not start) and its error.
func TableReportOf(table string, res *Result, err error) TableReport {
	r := TableReport{Table: table, Outcome: string(OutcomeFailed)}
	if err != nil {
		r.Error = err.Error()
	}
	if res == nil {
		return r
	}
	t := res.Time
	r.Durations = map[string]float64{
		"list": t.List.Seconds(), "read": t.Read.Seconds(), "dedupe": t.Dedupe.Seconds(), "locate": t.Locate.Seconds(),
		"write_data": t.WriteData.Seconds(), "write_deletes": t.WriteDeletes.Seconds(), "commit": t.Commit.Seconds(), "total": t.Total.Seconds(),
	}
	r.Files, r.Left, r.Quarantined = res.Files, res.Left, res.Quarantined
	r.Listing = listingReportOf(res.Listing)
	r.SnapshotID, r.Token = res.Snapshot, res.Token
	r.BytesRead = res.BytesRead
	r.BytesWritten = res.Written.DataBytes + res.Written.DeleteBytes
	r.TableFilesScanned, r.TableFilesPruned = res.Scan.Files, res.Scan.FilesPruned
	r.RowGroupsScanned, r.RowGroupsPruned, r.TableBytesScanned = res.Scan.RowGroups, res.Scan.RowGroupsPruned, res.Scan.Bytes
	for _, c := range res.SchemaChanges {
		r.SchemaChange = append(r.SchemaChange, c.String())
	}
	if p := res.Plan; p != nil {
		r.RowsRead, r.Inserts, r.Updates, r.Deletes = p.SourceRows, p.SourceInserts, p.SourceUpdates, p.SourceDeletes
		r.Keys, r.Duplicates = p.Keys, p.SourceRows-p.Keys
		r.RowsInserted, r.RowsUpdated, r.RowsDeleted, r.Stale = p.RowsInserted, p.RowsUpdated, p.RowsDeleted, p.Stale
	}
	if err == nil {
		r.Outcome = string(res.Outcome)
	}
	return r
}

// WriteJSON writes v as indented JSON to path ("-": stdout): for a file,
// through a temporary file renamed into place, so a reader never sees half
// a document. what names the document in errors.
func WriteJSON(path string, stdout io.Writer, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the %s: %w", what, err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err := stdout.Write(b)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*.json")
	if err != nil {
		return fmt.Errorf("writing the %s %s: %w (check that its folder exists and is writable)", what, path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the %s %s: %w", what, path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the %s %s: %w", what, path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the %s %s: %w", what, path, err)
	}
	return nil
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
	// Declined are the steps asked for and not run, with the reason.
	Declined map[string]string `json:"declined,omitempty"`
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

// MaintainReportOf is the report of a maintenance of o.
func MaintainReportOf(o MaintainOptions, started time.Time, res *MaintainResult, err error) MaintainReport {
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
	r.Declined = res.Declined
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
