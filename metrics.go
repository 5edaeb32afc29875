package icemerge

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// A run's CloudWatch metrics, as one log line in the Embedded Metric Format
// (EMF): CloudWatch Logs turns the line into metrics as it ingests it, so
// a run makes no CloudWatch API call and needs no IAM permission beyond
// writing its log. Lambda extracts them from the function's output; other
// log streams (ECS's awslogs) from any JSON log event with the _aws block.
// The command line and the Lambda handler write the line (cmd/icemerge);
// this file only builds it.

// MetricsNamespace is the CloudWatch namespace of every metric.
const MetricsNamespace = "icemerge"

// The dimensions of the metrics. Every metric has two: by table and
// outcome, and by database (the table's namespace), which the alarms of
// deploy/template.yaml watch.
const (
	DimTable    = "table"
	DimOutcome  = "outcome"
	DimDatabase = "database"
)

// OutcomeLocked is the outcome of a run that found the table locked by
// another (exit code 3): neither a success nor a failure.
const OutcomeLocked Outcome = "locked"

// The metrics of a run, by name, with their CloudWatch unit.
const (
	MetricRuns          = "Runs"          // 1 for every run
	MetricSucceeded     = "SucceededRuns" // 1 for a run that ended without error, else 0
	MetricFailed        = "FailedRuns"    // 1 for a run that failed (not one that found the table locked), else 0
	MetricRunDuration   = "RunDuration"   // the run's wall time
	MetricPendingLag    = "PendingLag"    // now − modification time of the oldest listed object the run leaves unapplied (0: none)
	MetricFilesLeft     = "FilesLeft"     // files a bounded run leaves for later runs
	MetricFilesApplied  = "FilesApplied"
	MetricQuarantined   = "FilesQuarantined"
	MetricRowsInserted  = "RowsInserted"
	MetricRowsUpdated   = "RowsUpdated"
	MetricRowsDeleted   = "RowsDeleted"
	MetricStale         = "StaleChanges" // changes older than the row the table holds, skipped
	MetricBytesRead     = "BytesRead"    // source objects read
	MetricBytesWritten  = "BytesWritten" // data and delete files written
	MetricChangeLag     = "ChangeLag"    // now − time of the newest change the run applied
	MetricListTime      = "ListDuration"
	MetricReadTime      = "ReadDuration"
	MetricDedupeTime    = "DedupeDuration"
	MetricLocateTime    = "LocateDuration"
	MetricWriteDataTime = "WriteDataDuration"
	MetricWriteDelTime  = "WriteDeletesDuration"
	MetricCommitTime    = "CommitDuration"
)

// MetricUnits are the CloudWatch units of the metrics: every metric a run
// may emit.
var MetricUnits = map[string]string{
	MetricRuns: "Count", MetricSucceeded: "Count", MetricFailed: "Count", MetricRunDuration: "Seconds",
	MetricPendingLag: "Seconds", MetricFilesLeft: "Count", MetricFilesApplied: "Count", MetricQuarantined: "Count",
	MetricRowsInserted: "Count", MetricRowsUpdated: "Count", MetricRowsDeleted: "Count", MetricStale: "Count",
	MetricBytesRead: "Bytes", MetricBytesWritten: "Bytes", MetricChangeLag: "Seconds",
	MetricListTime: "Seconds", MetricReadTime: "Seconds", MetricDedupeTime: "Seconds", MetricLocateTime: "Seconds",
	MetricWriteDataTime: "Seconds", MetricWriteDelTime: "Seconds", MetricCommitTime: "Seconds",
}

// metric is one metric of a run, in the order the line lists them.
type metric struct {
	name  string
	value float64
}

// EMF is the Embedded Metric Format document of a table's run, one JSON
// line without its newline: res is the run's result (nil when the run did
// not start: locked, bad settings) and runErr its error; now is when it
// ended. Each metric carries the dimensions table and outcome, and database.
//
// Every run has Runs, SucceededRuns and FailedRuns (so an alarm sees a
// failure, and a success, in one sum), and RunDuration when it started. A
// run that listed the folder has PendingLag and FilesLeft. A run that
// applied a batch (committed, no row changes, quarantined only) has the
// files, rows and bytes it applied, the time of each phase and, where
// known, ChangeLag. Metrics that would say nothing (the rows of a run that
// found nothing new) are left out: CloudWatch bills each metric and
// dimension combination that receives data.
func EMF(table string, res *Result, runErr error, now time.Time) ([]byte, error) {
	outcome := runOutcome(res, runErr)
	ok := runErr == nil
	ms := []metric{{MetricRuns, 1}, {MetricSucceeded, b2f(ok)}, {MetricFailed, b2f(!ok && outcome != OutcomeLocked)}}
	props := map[string]any{}
	if res != nil {
		if res.Time.Total > 0 {
			ms = append(ms, metric{MetricRunDuration, res.Time.Total.Seconds()})
		}
		switch {
		case ok:
			ms = append(ms, metric{MetricPendingLag, age(now, res.OldestPending)}, metric{MetricFilesLeft, float64(res.Left)})
		case !res.OldestPending.IsZero():
			// A failed run's batch is still pending.
			ms = append(ms, metric{MetricPendingLag, age(now, res.OldestPending)})
		}
		if applied(res, runErr) {
			t := res.Time
			ms = append(ms,
				metric{MetricFilesApplied, float64(res.Files)}, metric{MetricQuarantined, float64(len(res.Quarantined))},
				metric{MetricBytesRead, float64(res.BytesRead)}, metric{MetricBytesWritten, float64(res.Written.DataBytes + res.Written.DeleteBytes)},
				metric{MetricListTime, t.List.Seconds()}, metric{MetricReadTime, t.Read.Seconds()},
				metric{MetricDedupeTime, t.Dedupe.Seconds()}, metric{MetricLocateTime, t.Locate.Seconds()},
				metric{MetricWriteDataTime, t.WriteData.Seconds()}, metric{MetricWriteDelTime, t.WriteDeletes.Seconds()},
				metric{MetricCommitTime, t.Commit.Seconds()})
			var ins, upd, del, stale int
			if p := res.Plan; p != nil {
				ins, upd, del, stale = p.RowsInserted, p.RowsUpdated, p.RowsDeleted, p.Stale
			}
			if res.Outcome != OutcomeCommitted {
				ins, upd, del = 0, 0, 0 // nothing was committed
			}
			ms = append(ms, metric{MetricRowsInserted, float64(ins)}, metric{MetricRowsUpdated, float64(upd)},
				metric{MetricRowsDeleted, float64(del)}, metric{MetricStale, float64(stale)})
			if !res.NewestChange.IsZero() {
				ms = append(ms, metric{MetricChangeLag, age(now, res.NewestChange)})
			}
		} else if ok {
			ms = append(ms, metric{MetricListTime, res.Time.List.Seconds()})
		}
		if res.Snapshot != 0 {
			props["snapshot_id"] = strconv.FormatInt(res.Snapshot, 10) // a string: JSON readers take numbers as float64
		}
		props["files_listed"] = res.Listed
	}
	database, _, _ := strings.Cut(table, ".")
	defs := make([]map[string]string, 0, len(ms))
	doc := map[string]any{DimTable: table, DimOutcome: string(outcome), DimDatabase: database}
	for k, v := range props {
		doc[k] = v
	}
	for _, m := range ms {
		unit, known := MetricUnits[m.name]
		if !known {
			return nil, errors.New("icemerge: metric " + m.name + " has no unit (this is a bug)")
		}
		defs = append(defs, map[string]string{"Name": m.name, "Unit": unit})
		doc[m.name] = m.value
	}
	doc["_aws"] = map[string]any{
		"Timestamp": now.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  MetricsNamespace,
			"Dimensions": [][]string{{DimTable, DimOutcome}, {DimDatabase}},
			"Metrics":    defs,
		}},
	}
	return json.Marshal(doc)
}

// runOutcome is the outcome dimension of a run.
func runOutcome(res *Result, err error) Outcome {
	switch {
	case errors.Is(err, bookmark.ErrLocked):
		return OutcomeLocked
	case err != nil:
		return OutcomeFailed
	case res == nil:
		return OutcomeNothingNew
	}
	return res.Outcome
}

// applied reports whether the run applied a batch to the table (or to the
// bookmark, when no row changed).
func applied(res *Result, err error) bool {
	if err != nil {
		return false
	}
	switch res.Outcome {
	case OutcomeCommitted, OutcomeNoChanges, OutcomeQuarantined:
		return true
	}
	return false
}

// age is now − t in seconds, 0 for a zero t or one in the future (clock
// skew between the source database and this machine).
func age(now, t time.Time) float64 {
	if t.IsZero() || t.After(now) {
		return 0
	}
	return now.Sub(t).Seconds()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newestChange is the time of the newest change in files: the largest
// value of the first --order-by column when it is a timestamp (read as
// UTC: a DATETIME column that is not UTC shifts it by its offset),
// otherwise the time in the name of the newest CDC file (when DMS wrote
// it); zero when neither is known (a full load ordered by a sequence). The
// newest change of a batch is the newest of its winners: a change that
// loses to another of its key is older, and one that is stale loses to a
// row the table already holds, which is newer still.
func newestChange(files []*merge.File, orderBy []string) time.Time {
	var newest time.Time
	if len(orderBy) > 0 {
		for _, f := range files {
			idx := f.Schema.FieldIndices(orderBy[0])
			if len(idx) != 1 {
				continue
			}
			for _, rec := range f.Records {
				ts, ok := rec.Column(idx[0]).(*array.Timestamp)
				if !ok {
					break
				}
				unit := ts.DataType().(*arrow.TimestampType).Unit
				for i := range ts.Len() {
					if ts.IsValid(i) {
						if t := ts.Value(i).ToTime(unit); t.After(newest) {
							newest = t
						}
					}
				}
			}
		}
	}
	if !newest.IsZero() {
		return newest.UTC()
	}
	for _, f := range files {
		if t, ok := source.CDCTime(f.Name); ok && t.After(newest) {
			newest = t
		}
	}
	return newest
}

// oldestModified is the modification time of the object of objs modified
// first; zero when none.
func oldestModified(objs ...[]source.Object) time.Time {
	var oldest time.Time
	for _, list := range objs {
		for _, o := range list {
			if !o.ModTime.IsZero() && (oldest.IsZero() || o.ModTime.Before(oldest)) {
				oldest = o.ModTime
			}
		}
	}
	return oldest.UTC()
}
