package icemerge

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/icecheck"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// mwCols are the columns of the maintenance workload's DMS files.
var mwCols = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32, Required: true},
	{Name: "name", Type: dmstest.String},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

// maintainWorkload is a DMS table's history, file by file, with the model
// of the table after each: updates, deletes, a delete then a re-insert in a
// later run and in the same run, one key updated in several runs.
type maintainWorkload struct {
	e     *env
	model map[int64]string
	ts    time.Time
	n     int
}

func newMaintainWorkload(e *env) *maintainWorkload {
	return &maintainWorkload{e: e, model: map[int64]string{}, ts: time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)}
}

// file writes one DMS file of changes (op, id, name) and applies them to
// the model, in order.
func (w *maintainWorkload) file(changes ...any) {
	w.e.t.Helper()
	var ops []string
	var rows []dmstest.Row
	for i := 0; i < len(changes); i += 3 {
		op, id, name := changes[i].(string), changes[i+1].(int), changes[i+2].(string)
		w.ts = w.ts.Add(time.Second)
		ops = append(ops, op)
		rows = append(rows, dmstest.Row{int32(id), name, w.ts})
		if op == "D" {
			delete(w.model, int64(id))
		} else {
			w.model[int64(id)] = name
		}
	}
	w.n++
	key := "LOAD00000001.parquet"
	if w.n > 1 {
		key = w.ts.Format("20060102-150405") + fmt.Sprintf("%03d.parquet", w.n)
	}
	w.e.putDMS(key, mwCols, ops, rows, dmstest.Options{Op: true})
}

// history writes and applies five files, one run each.
func (w *maintainWorkload) history() {
	var load []any
	for i := 1; i <= 20; i++ {
		load = append(load, "I", i, fmt.Sprintf("user %d", i))
	}
	steps := [][]any{
		load,
		{"U", 1, "u1", "U", 2, "u2", "D", 3, "", "D", 4, "", "I", 21, "new 21"},
		{"U", 1, "u1 again", "D", 21, "", "I", 3, "back 3", "U", 5, "u5"},
		{"D", 6, "", "I", 6, "re 6", "U", 1, "u1 third", "U", 7, "x", "D", 7, ""},
		{"I", 21, "back 21", "D", 8, "", "D", 9, "", "U", 10, "u10"},
	}
	for _, s := range steps {
		w.file(s...)
		if res := w.e.run(); res.Files != 1 {
			w.e.t.Fatalf("run applied %d files, want 1", res.Files)
		}
	}
}

// check reads the table back with icecheck and with an iceberg-go scan;
// both must equal the model, each key once.
func (w *maintainWorkload) check(when string) *icecheck.Table {
	t := w.e.t
	t.Helper()
	got := w.e.table()
	rows := map[int64]string{}
	for _, r := range got.Rows {
		id := r["user_id"].(int64)
		if _, dup := rows[id]; dup {
			t.Errorf("%s: icecheck: user %d appears twice", when, id)
		}
		rows[id] = r["name"].(string)
	}
	if !reflect.DeepEqual(rows, w.model) {
		t.Errorf("%s: icecheck rows\n %v\nwant %v", when, rows, w.model)
	}
	tbl, _, err := w.e.cat.Load(w.e.ctx, w.e.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Iceberg().Scan().ToArrowTable(w.e.ctx)
	if err != nil {
		t.Fatalf("%s: iceberg-go scan: %v", when, err)
	}
	defer at.Release()
	scanned, n := map[int64]string{}, 0
	tr := array.NewTableReader(at, 0)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		idc := rec.Schema().FieldIndices("user_id")[0]
		nc := rec.Schema().FieldIndices("name")[0]
		for i := 0; i < int(rec.NumRows()); i++ {
			id, _ := dmstest.ArrowValue(rec.Column(idc), i)
			name, _ := dmstest.ArrowValue(rec.Column(nc), i)
			scanned[id.(int64)] = name.(string)
			n++
		}
	}
	if n != len(w.model) || !reflect.DeepEqual(scanned, w.model) {
		t.Errorf("%s: iceberg-go scan: %d rows\n %v\nwant %v", when, n, scanned, w.model)
	}
	return got
}

// maintainOptions are the maintenance settings of the tests: every step,
// expiry down to the snapshots the protocol needs.
func (e *env) maintainOptions() MaintainOptions {
	o := NewMaintainOptions()
	o.Common, o.Steps, o.LockTTL = e.opts.Common, AllSteps, time.Minute
	o.ExpireOlderThan, o.RetainLast, o.OrphanOlderThan = 0, 1, Days(72*time.Hour)
	return o
}

// maintain maintains e's table with o (taken as valid: a test may shorten
// the orphans' age below its minimum) and writes what it did to e.out.
func (e *env) maintain(o MaintainOptions) *MaintainResult {
	e.t.Helper()
	res, err := maintain(e.ctx, o, e.deps(nil))
	WriteMaintain(&e.out, res)
	if err != nil {
		e.t.Fatalf("maintain: %v", err)
	}
	return res
}

func (e *env) lastToken() string {
	e.t.Helper()
	tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		e.t.Fatal(err)
	}
	return tbl.LastToken()
}

// Several runs, then maintenance: the table still equals the model (deleted
// rows stay deleted, updated rows are not duplicated), with fewer data and
// delete files, manifests and snapshots; the runs after it apply what is
// new, once.
func TestMaintainKeepsTheTableContent(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		w := newMaintainWorkload(e)
		w.history()
		before := w.check("before maintenance")
		token := e.lastToken()
		nSnap := len(e.snapshotSummaries())
		if before.DeleteFiles < 3 || before.DataFiles < 5 {
			t.Fatalf("%d data and %d delete files before; want several", before.DataFiles, before.DeleteFiles)
		}
		res := e.maintain(e.maintainOptions())
		t.Logf("output:\n%s", e.out.String())
		after := w.check("after maintenance")
		if after.DataFiles != 1 || after.DeleteFiles != 0 {
			t.Errorf("after: %d data files, %d delete files; want 1 and 0", after.DataFiles, after.DeleteFiles)
		}
		c := res.Compact
		if c == nil || len(c.Rewritten) != before.DataFiles || c.Rows != int64(len(w.model)) || len(c.DeleteFilesRemoved) != before.DeleteFiles {
			t.Errorf("compaction %+v; want %d files rewritten, %d rows", c, before.DataFiles, len(w.model))
		}
		if m := res.Manifests; m == nil || m.DataAfter > m.DataBefore {
			t.Errorf("manifests %+v", m)
		}
		if x := res.Expire; x == nil || len(x.Expired) == 0 || len(e.snapshotSummaries()) >= nSnap {
			t.Errorf("expiry %+v: %d snapshots before, %d after", x, nSnap, len(e.snapshotSummaries()))
		}
		if got := e.lastToken(); got != token || e.bookmark().Token != token {
			t.Errorf("last token %q after maintenance, bookmark %q; want %q", got, e.bookmark().Token, token)
		}
		for _, s := range []string{"compacted 5 of 5 data files", "deleted rows folded", "removed 4 of 4 delete files", "manifests:", "expired", "orphan files"} {
			if !strings.Contains(e.out.String(), s) {
				t.Errorf("output lacks %q", s)
			}
		}

		// A run after maintenance: deletes and updates rows of the
		// compacted file; then nothing is new.
		w.file("U", 2, "u2 after", "D", 5, "", "I", 30, "new 30", "D", 3, "")
		if res := e.run(); res.Files != 1 || res.Reconciled != bookmark.InSync {
			t.Errorf("run after maintenance: %d files, outcome %v; want 1, in sync", res.Files, res.Outcome)
		}
		w.check("run after maintenance")
		if res := e.run(); res.Files != 0 {
			t.Errorf("rerun applied %d files", res.Files)
		}
		// Maintaining again folds the new deletes.
		e.maintain(e.maintainOptions())
		if got := w.check("second maintenance"); got.DeleteFiles != 0 || got.DataFiles != 1 {
			t.Errorf("after the second maintenance: %d data, %d delete files", got.DataFiles, got.DeleteFiles)
		}
		if bm := e.bookmark(); len(bm.Files) != w.n || bm.Token != e.lastToken() {
			t.Errorf("bookmark: %d files (want %d), token %q vs table %q", len(bm.Files), w.n, bm.Token, e.lastToken())
		}
	})
}

// A run commits and dies before saving its bookmark; maintenance expires
// everything it may, the rerun still recognises the commit (the token's
// snapshot is kept) and applies nothing twice.
func TestMaintainExpiryKeepsTheLastTokenRecognised(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		w := newMaintainWorkload(e)
		w.history()
		w.file("U", 11, "u11", "D", 12, "")
		// The save after the commit fails.
		if _, err := e.merge(e.deps(faultStore{BookmarkStore: e.store, f: &faults{point: "bookmark done", action: failBefore}})); !errors.Is(err, errInjected) {
			t.Fatalf("err = %v, want the injected fault", err)
		}
		if bm := e.bookmark(); bm.Pending == nil {
			t.Fatal("no pending run in the bookmark")
		}
		token := e.lastToken()
		e.maintain(e.maintainOptions())
		e.maintain(e.maintainOptions()) // twice: expiry has nothing left but what the protocol needs
		if got := e.lastToken(); got != token {
			t.Fatalf("last token %q after maintenance, want the pending run's %q", got, token)
		}
		res := e.run()
		if res.Reconciled != bookmark.Finalised || res.Files != 0 {
			t.Errorf("rerun: outcome %v, %d files; want finalised, nothing applied", res.Outcome, res.Files)
		}
		w.check("after the rerun")
		w.file("I", 40, "new 40")
		if res := e.run(); res.Files != 1 {
			t.Errorf("next run applied %d files, want 1", res.Files)
		}
		w.check("after the next run")
	})
}

// A fault at each point where the compaction writes (its data files, the
// manifests, the manifest list, the table metadata, the Glue commit) fails
// the maintenance and leaves the table as it was and readable; the next
// maintenance succeeds.
func TestMaintainCommitFaultLeavesTheTableUnchanged(t *testing.T) {
	for _, backend := range []string{"minio-sql", "minio-glue"} {
		for _, wp := range writePoints[:6] {
			if (wp.glue && backend != "minio-glue") || wp.name == "position delete file" { // a compaction writes none
				continue
			}
			t.Run(backend+"/"+wp.name, func(t *testing.T) {
				e := newEnv(t, backend)
				w := newMaintainWorkload(e)
				w.history()
				before := w.check("before")
				o := e.maintainOptions()
				o.Steps = []string{StepCompact}
				e.faults.Add(testservers.Rule{Name: wp.name, Match: wp.match, Action: testservers.FailBefore})
				_, err := Maintain(e.ctx, o, e.deps(nil))
				hits := e.faults.Hits(wp.name)
				e.faults.Reset()
				if hits == 0 {
					t.Fatalf("the fault never fired (err %v)", err)
				}
				if err == nil {
					t.Fatal("the maintenance succeeded despite the fault")
				}
				t.Logf("failed as expected: %v", err)
				if got := w.check("after the fault"); got.SnapshotID != before.SnapshotID || got.DataFiles != before.DataFiles {
					t.Errorf("the table changed: snapshot %d → %d", before.SnapshotID, got.SnapshotID)
				}
				e.maintain(o)
				if got := w.check("after maintenance"); got.DeleteFiles != 0 {
					t.Errorf("%d delete files left", got.DeleteFiles)
				}
				w.file("D", 1, "")
				e.run()
				w.check("after a run")
			})
		}
	}
	// The Glue commit happens but its answer is lost: the maintenance finds
	// its snapshot and succeeds.
	t.Run("minio-glue/catalog commit answer lost", func(t *testing.T) {
		e := newEnv(t, "minio-glue")
		w := newMaintainWorkload(e)
		w.history()
		o := e.maintainOptions()
		o.Steps = []string{StepCompact}
		e.faults.Add(testservers.Rule{Name: "lost", Match: testservers.MatchGlue("AWSGlue.UpdateTable"), Action: testservers.FailAfter, Times: 1})
		res, err := Maintain(e.ctx, o, e.deps(nil))
		if e.faults.Hits("lost") != 1 {
			t.Fatal("the fault never fired")
		}
		e.faults.Reset()
		if err != nil {
			t.Fatalf("maintain: %v", err)
		}
		got := w.check("after the lost answer")
		if got.DeleteFiles != 0 || res.Compact.Snapshot != got.SnapshotID {
			t.Errorf("%d delete files, compaction snapshot %d, table at %d", got.DeleteFiles, res.Compact.Snapshot, got.SnapshotID)
		}
	})
}

// Orphans on S3: a stray object older than the threshold goes, a fresh one
// stays, the table's files stay, and so does the bookmark folder.
func TestMaintainOrphansOnMinIO(t *testing.T) {
	e := newEnv(t, "minio-sql")
	w := newMaintainWorkload(e)
	w.history()
	tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := source.ParseLocation(tbl.Location())
	put := func(key string) {
		if _, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(key), Body: strings.NewReader("stray")}); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(key string) bool {
		_, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String(key)})
		return err == nil
	}
	old, oldMeta := l.Prefix+"/data/stray-old.parquet", l.Prefix+"/metadata/stray-old.avro"
	put(old)
	put(oldMeta)
	time.Sleep(3 * time.Second)
	fresh := l.Prefix + "/data/stray-fresh.parquet"
	put(fresh)
	o := e.maintainOptions()
	o.Steps = []string{StepOrphans}
	o.OrphanOlderThan = Days(2 * time.Second) // below the CLI's minimum: the test's clock is short
	o.DryRun = true
	if res := e.maintain(o); res.Orphans == nil || len(res.Orphans.Files) != 2 || !exists(old) {
		t.Fatalf("dry run: %+v", res.Orphans)
	}
	o.DryRun = false
	res := e.maintain(o)
	if res.Orphans.Removed != 2 || exists(old) || exists(oldMeta) || !exists(fresh) {
		t.Errorf("removed %d (%v); old exists %v, fresh exists %v", res.Orphans.Removed, res.Orphans.Files, exists(old), exists(fresh))
	}
	w.check("after orphan removal") // every referenced file is still there
	if bm := e.bookmark(); len(bm.Files) != w.n {
		t.Errorf("bookmark has %d files", len(bm.Files))
	}
	w.file("D", 2, "")
	e.run()
	w.check("after a run")
}

// The end-of-run trigger: a run that leaves the table with enough delete
// or data files compacts it under its lock; below the thresholds nothing
// happens.
func TestMaintainAfterRun(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		w := newMaintainWorkload(e)
		w.history()
		tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
		if err != nil {
			t.Fatal(err)
		}
		st := tbl.Stats()
		when := func(deletes, files int) RunOptions {
			o := e.opts
			o.CompactWhenDeletes, o.CompactWhenFiles = deletes, files
			return o
		}
		if res, _ := maintainAfterRun(e.ctx, when(st.DeleteFiles+1, st.DataFiles+1), e.deps(nil), tbl); res != nil {
			t.Errorf("below the thresholds it compacted: %+v", res.Compact)
		}
		if res, _ := maintainAfterRun(e.ctx, when(st.DeleteFiles, 0), e.deps(nil), tbl); res == nil || res.Compact == nil || res.Compact.Snapshot == 0 {
			t.Fatalf("at the delete threshold it did not compact: %+v", res)
		}
		if got := w.check("after the trigger"); got.DeleteFiles != 0 || got.DataFiles != 1 {
			t.Errorf("%d data, %d delete files", got.DataFiles, got.DeleteFiles)
		}
		w.file("U", 1, "after trigger")
		if res := e.run(); res.Files != 1 {
			t.Errorf("run after the trigger: %d files", res.Files)
		}
		w.check("run after the trigger")
	})
}

// Compaction after schema drift: the files written before a column was
// added or widened are rewritten with the table's current schema, values
// kept (old rows read null in the new column, the narrow ints widened).
func TestMaintainAfterSchemaDrift(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ts := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
		write := func(key string, cols []dmstest.Column, ops []string, rows ...dmstest.Row) {
			e.putDMS(key, cols, ops, rows, dmstest.Options{Op: true})
		}
		base := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}, {Name: "n", Type: dmstest.Int32}, {Name: "updated_at", Type: dmstest.Timestamp}}
		write("LOAD00000001.parquet", base, []string{"I", "I", "I"}, dmstest.Row{int32(1), int32(7), ts}, dmstest.Row{int32(2), int32(8), ts}, dmstest.Row{int32(3), int32(9), ts})
		e.run()
		drift := []dmstest.Column{base[0], {Name: "n", Type: dmstest.Int64}, base[2], {Name: "phone", Type: dmstest.String}}
		write("20240814-000100000.parquet", drift, []string{"U", "D"}, dmstest.Row{int32(2), int64(1) << 40, ts.Add(time.Second), "+49 𠮷"}, dmstest.Row{int32(3), int64(9), ts, ""})
		e.run()
		want := byKey(e.table().Rows, "user_id")
		e.maintain(e.maintainOptions())
		got := e.table()
		if !reflect.DeepEqual(byKey(got.Rows, "user_id"), want) || got.DataFiles != 1 || got.DeleteFiles != 0 {
			t.Errorf("after maintenance: %d data, %d delete files, rows\n %v\nwant %v", got.DataFiles, got.DeleteFiles, byKey(got.Rows, "user_id"), want)
		}
		if len(want) != 2 || want["1"]["phone"] != nil || want["1"]["n"] != int64(7) || want["2"]["n"] != int64(1)<<40 {
			t.Errorf("rows before maintenance %v", want)
		}
	})
}
