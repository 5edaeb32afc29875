package icemerge

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/merge"
)

// emfUnit is the unit pattern of the EMF specification's JSON schema.
var emfUnit = regexp.MustCompile(`^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes/Second|Kilobytes/Second|Megabytes/Second|Gigabytes/Second|Terabytes/Second|Bits/Second|Kilobits/Second|Megabits/Second|Gigabits/Second|Terabits/Second|Count/Second|None)$`)

// checkEMF checks line against the Embedded Metric Format specification
// (CloudWatch's "Specification: Embedded metric format" and its JSON
// schema) and returns the document and its metrics by name, with their
// units and dimension sets.
func checkEMF(t *testing.T, line []byte) (doc map[string]any, units map[string]string, dims [][]string) {
	t.Helper()
	if strings.ContainsAny(string(line), "\n\r") {
		t.Fatalf("the EMF document is not one line: %q", line)
	}
	// One write of a line this size is atomic on a pipe (PIPE_BUF), so the
	// log's own lines never cut into it.
	if len(line) >= 4096 {
		t.Errorf("the EMF line has %d bytes, want under 4096", len(line))
	}
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatalf("the EMF line is not a JSON object: %v\n%s", err, line)
	}
	meta, ok := doc["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws object: %s", line)
	}
	for k := range meta {
		if k != "Timestamp" && k != "CloudWatchMetrics" {
			t.Errorf("_aws has the member %q, which the specification does not define", k)
		}
	}
	ts, ok := meta["Timestamp"].(float64)
	if !ok || ts != math.Trunc(ts) || ts < 1e12 {
		t.Errorf("_aws.Timestamp %v: want an integer of milliseconds since 1970", meta["Timestamp"])
	}
	directives, ok := meta["CloudWatchMetrics"].([]any)
	if !ok || len(directives) == 0 {
		t.Fatalf("_aws.CloudWatchMetrics %v: want an array of MetricDirectives", meta["CloudWatchMetrics"])
	}
	units = map[string]string{}
	for _, d := range directives {
		dir, _ := d.(map[string]any)
		for k := range dir {
			if k != "Namespace" && k != "Dimensions" && k != "Metrics" {
				t.Errorf("a MetricDirective has the member %q", k)
			}
		}
		if ns, _ := dir["Namespace"].(string); ns != MetricsNamespace {
			t.Errorf("Namespace %v, want %s", dir["Namespace"], MetricsNamespace)
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok || len(sets) == 0 {
			t.Errorf("Dimensions %v: want an array of DimensionSets", dir["Dimensions"])
		}
		for _, s := range sets {
			set, ok := s.([]any)
			if !ok || len(set) > 30 {
				t.Errorf("DimensionSet %v: want an array of at most 30 keys", s)
			}
			var names []string
			for _, k := range set {
				name, _ := k.(string)
				v, isString := doc[name].(string)
				if name == "" || !isString || v == "" || len(v) > 1024 {
					t.Errorf("dimension %v: its target member %v must be a string of 1 to 1024 characters on the root", k, doc[name])
				}
				names = append(names, name)
			}
			dims = append(dims, names)
		}
		metrics, ok := dir["Metrics"].([]any)
		if !ok || len(metrics) == 0 || len(metrics) > 100 {
			t.Errorf("Metrics: want 1 to 100 MetricDefinitions, got %v", dir["Metrics"])
		}
		for _, m := range metrics {
			def, _ := m.(map[string]any)
			name, _ := def["Name"].(string)
			unit, _ := def["Unit"].(string)
			if _, numeric := doc[name].(float64); !numeric {
				t.Errorf("metric %q: its target member %v is not a number on the root", name, doc[name])
			}
			if !emfUnit.MatchString(unit) {
				t.Errorf("metric %q: unit %q is not a CloudWatch unit", name, unit)
			}
			if _, dup := units[name]; dup {
				t.Errorf("metric %q is defined twice", name)
			}
			units[name] = unit
		}
	}
	return doc, units, dims
}

// The document of every kind of run follows the specification, names the
// table, outcome and database, and holds the metrics that say something
// about that run, each with its unit.
func TestEMFDocument(t *testing.T) {
	now := time.Date(2024, 8, 14, 1, 0, 0, 0, time.UTC)
	committed := &Result{Outcome: OutcomeCommitted, Files: 2, Left: 1, Listed: 4, Snapshot: 42, BytesRead: 1000,
		OldestPending: now.Add(-90 * time.Second), NewestChange: now.Add(-30 * time.Minute),
		Time: Timings{List: time.Second, Read: 2 * time.Second, Commit: 500 * time.Millisecond, Total: 10 * time.Second}}
	committed.Written.DataBytes, committed.Written.DeleteBytes = 300, 20
	committed.Plan = planWith(3, 4, 5, 6)
	noChanges := &Result{Outcome: OutcomeNoChanges, Files: 1, Time: Timings{Total: time.Second}, Plan: planWith(0, 0, 0, 2)}
	dryRun := &Result{Outcome: OutcomeDryRun, Files: 2, OldestPending: now.Add(-time.Hour), Time: Timings{Total: time.Second}, Plan: planWith(9, 9, 9, 0)}
	failed := &Result{Outcome: OutcomeFailed, Files: 2, OldestPending: now.Add(-time.Hour), Time: Timings{Total: time.Second}, Plan: planWith(9, 9, 9, 0)}
	batch := []string{MetricFilesApplied, MetricQuarantined, MetricRowsInserted, MetricRowsUpdated, MetricRowsDeleted, MetricStale,
		MetricBytesRead, MetricBytesWritten, MetricListTime, MetricReadTime, MetricDedupeTime, MetricLocateTime,
		MetricWriteDataTime, MetricWriteDelTime, MetricCommitTime}
	always := []string{MetricRuns, MetricSucceeded, MetricFailed}
	for _, tc := range []struct {
		name    string
		res     *Result
		err     error
		outcome string
		metrics []string
		values  map[string]float64
	}{
		{"committed", committed, nil, "committed",
			append(slices.Concat(always, batch), MetricRunDuration, MetricPendingLag, MetricFilesLeft, MetricChangeLag),
			map[string]float64{MetricRuns: 1, MetricSucceeded: 1, MetricFailed: 0, MetricFilesApplied: 2, MetricFilesLeft: 1,
				MetricRowsInserted: 3, MetricRowsUpdated: 4, MetricRowsDeleted: 5, MetricStale: 6, MetricBytesRead: 1000, MetricBytesWritten: 320,
				MetricPendingLag: 90, MetricChangeLag: 1800, MetricRunDuration: 10, MetricListTime: 1, MetricCommitTime: 0.5}},
		{"nothing new", &Result{Outcome: OutcomeNothingNew, Listed: 3, Time: Timings{List: time.Second, Total: 2 * time.Second}}, nil, "nothing new",
			append(slices.Clone(always), MetricRunDuration, MetricPendingLag, MetricFilesLeft, MetricListTime),
			map[string]float64{MetricSucceeded: 1, MetricPendingLag: 0, MetricFilesLeft: 0}},
		// Every change stale: the bookmark took the files, no row changed.
		{"no row changes", noChanges, nil, "no row changes",
			append(slices.Concat(always, batch), MetricRunDuration, MetricPendingLag, MetricFilesLeft),
			map[string]float64{MetricFilesApplied: 1, MetricStale: 2, MetricRowsInserted: 0}},
		// A dry run applies nothing: its batch is still pending.
		{"dry run", dryRun, nil, "dry run",
			append(slices.Clone(always), MetricRunDuration, MetricPendingLag, MetricFilesLeft, MetricListTime),
			map[string]float64{MetricSucceeded: 1, MetricPendingLag: 3600}},
		{"failed", failed, errors.New("boom"), "failed",
			append(slices.Clone(always), MetricRunDuration, MetricPendingLag),
			map[string]float64{MetricSucceeded: 0, MetricFailed: 1, MetricPendingLag: 3600}},
		{"failed before listing", &Result{Outcome: OutcomeFailed, Time: Timings{Total: time.Second}}, errors.New("glue: access denied"), "failed",
			append(slices.Clone(always), MetricRunDuration), map[string]float64{MetricFailed: 1}},
		{"bad settings", nil, fmt.Errorf("%w: --source is required", ErrUsage), "failed", always, map[string]float64{MetricFailed: 1}},
		{"locked", nil, fmt.Errorf("locking: %w", bookmark.ErrLocked), "locked", always, map[string]float64{MetricSucceeded: 0, MetricFailed: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, err := EMF("test_db.users", tc.res, tc.err, now)
			if err != nil {
				t.Fatal(err)
			}
			doc, units, dims := checkEMF(t, line)
			if doc[DimTable] != "test_db.users" || doc[DimOutcome] != tc.outcome || doc[DimDatabase] != "test_db" {
				t.Errorf("dimensions table %v, outcome %v, database %v", doc[DimTable], doc[DimOutcome], doc[DimDatabase])
			}
			if want := [][]string{{DimTable, DimOutcome}, {DimDatabase}}; !slices.EqualFunc(dims, want, slices.Equal) {
				t.Errorf("dimension sets %q, want %q", dims, want)
			}
			if ts := doc["_aws"].(map[string]any)["Timestamp"].(float64); int64(ts) != now.UnixMilli() {
				t.Errorf("Timestamp %v, want %d", ts, now.UnixMilli())
			}
			var got []string
			for name, unit := range units {
				got = append(got, name)
				if unit != MetricUnits[name] {
					t.Errorf("%s: unit %s, want %s", name, unit, MetricUnits[name])
				}
			}
			if slices.Sort(got); !slices.Equal(got, slices.Sorted(slices.Values(tc.metrics))) {
				t.Errorf("metrics %q\nwant    %q", got, slices.Sorted(slices.Values(tc.metrics)))
			}
			for name, want := range tc.values {
				if v, _ := doc[name].(float64); math.Abs(v-want) > 1e-9 {
					t.Errorf("%s = %v, want %v", name, doc[name], want)
				}
			}
		})
	}
	// The units of the metrics are CloudWatch units.
	for name, unit := range MetricUnits {
		if !emfUnit.MatchString(unit) {
			t.Errorf("metric %s: unit %q", name, unit)
		}
	}
}

// The metrics of real runs of the users example: the rows the runs
// applied, the newest change's time (updated_at) and the objects left by a
// bounded run.
func TestEMFOfRuns(t *testing.T) {
	e := newEnv(t, "local")
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	// The CDC file arrived an hour ago and waits.
	cdcTime := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(e.dir, srcPrefix, "20240814-002642123.parquet"), cdcTime, cdcTime); err != nil {
		t.Fatal(err)
	}
	e.opts.MaxFiles = 1
	res := e.run()
	now := time.Now()
	line, err := EMF(e.opts.Table, res, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := checkEMF(t, line)
	t.Logf("first run: %s", line)
	loaded := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
	if !res.NewestChange.Equal(loaded) || !res.OldestPending.Equal(cdcTime) {
		t.Errorf("newest change %s, oldest pending %s; want %s (the LOAD rows' updated_at) and %s (the CDC file's modification)", res.NewestChange, res.OldestPending, loaded, cdcTime)
	}
	for name, want := range map[string]float64{MetricRowsInserted: 5, MetricFilesApplied: 1, MetricFilesLeft: 1,
		MetricPendingLag: now.Sub(cdcTime).Seconds(), MetricChangeLag: now.Sub(loaded).Seconds()} {
		if doc[name] != want {
			t.Errorf("%s = %v, want %v", name, doc[name], want)
		}
	}

	res = e.run()
	line, err = EMF(e.opts.Table, res, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ = checkEMF(t, line)
	t.Logf("second run: %s", line)
	// user 1's update is the newest change (00:26:42); the delete of user 4
	// carries its old image.
	updated := time.Date(2024, 8, 14, 0, 26, 42, 0, time.UTC)
	if !res.NewestChange.Equal(updated) || !res.OldestPending.IsZero() {
		t.Errorf("newest change %s, oldest pending %s; want %s and none", res.NewestChange, res.OldestPending, updated)
	}
	for name, want := range map[string]float64{MetricRowsInserted: 1, MetricRowsUpdated: 1, MetricRowsDeleted: 1, MetricFilesLeft: 0, MetricPendingLag: 0} {
		if doc[name] != want {
			t.Errorf("%s = %v, want %v", name, doc[name], want)
		}
	}

	// Ordered by source order only, the newest change is the CDC file's
	// name time; a full load alone has none.
	e.opts.OrderBy = Columns{}
	if got := newestChange(nil, nil); !got.IsZero() {
		t.Errorf("no files: %s", got)
	}
	e.put("20240814-003000500.parquet", mustRead(t, filepath.Join("testdata", "users", "20240814-002642123.parquet")))
	res = e.run()
	if want := time.Date(2024, 8, 14, 0, 30, 0, 500e6, time.UTC); !res.NewestChange.Equal(want) {
		t.Errorf("source order: newest change %s, want the file name's %s", res.NewestChange, want)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// planWith is a plan with these effects on the table.
func planWith(inserted, updated, deleted, stale int) *merge.Plan {
	return &merge.Plan{RowsInserted: inserted, RowsUpdated: updated, RowsDeleted: deleted, Stale: stale}
}
