package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/icemerge/icemerge/internal/testkit/icecheck"
)

// mtEnv is one table in a SQLite catalog on disk, with a model of its rows
// (id → v) that every commit keeps up to date.
type mtEnv struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	cat   *Catalog
	tbl   *table.Table
	model map[int32]string
	runs  int
}

func newMaintainEnv(t *testing.T) *mtEnv {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	cat, err := Open(ctx, Config{Kind: KindSQL, URI: filepath.Join(dir, "c.db"), Warehouse: "file://" + filepath.Join(dir, "wh")},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	sc, err := IcebergSchema(arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "v", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil), []string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := cat.create(ctx, []string{"db", "t"}, sc, *iceberg.UnpartitionedSpec)
	if err != nil {
		t.Fatal(err)
	}
	return &mtEnv{t: t, ctx: ctx, dir: dir, cat: cat, tbl: tbl, model: map[int32]string{}}
}

// live maps each live id to its data file and position.
func (e *mtEnv) live() map[int32]struct {
	path string
	pos  int64
} {
	e.t.Helper()
	out := map[int32]struct {
		path string
		pos  int64
	}{}
	_, err := ScanLive(e.ctx, e.tbl, []string{"id"}, nil, func(path string, cols []arrow.Array, first int64, deleted func(int64) bool) error {
		ids := cols[0].(*array.Int32)
		for i := 0; i < ids.Len(); i++ {
			if pos := first + int64(i); !deleted(pos) {
				out[ids.Value(i)] = struct {
					path string
					pos  int64
				}{path, pos}
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// commit applies upserts and deletes as a run does: the old rows of the
// touched keys by position delete, the new rows as a data file, one
// snapshot with a bookmark token.
func (e *mtEnv) commit(upserts map[int32]string, deletes ...int32) string {
	e.t.Helper()
	live := e.live()
	dels := map[string][]int64{}
	for _, id := range append(slices.Collect(maps.Keys(upserts)), deletes...) {
		if at, ok := live[id]; ok {
			dels[at.path] = append(dels[at.path], at.pos)
		}
	}
	for p := range dels {
		slices.Sort(dels[p])
	}
	stored, err := StoredSchema(e.tbl.Schema())
	if err != nil {
		e.t.Fatal(err)
	}
	var records func(func(arrow.RecordBatch, error) bool)
	if len(upserts) > 0 {
		ids := slices.Sorted(maps.Keys(upserts))
		ib := array.NewInt32Builder(memory.DefaultAllocator)
		vb := array.NewStringBuilder(memory.DefaultAllocator)
		for _, id := range ids {
			ib.Append(id)
			vb.Append(upserts[id])
		}
		ia, va := ib.NewArray(), vb.NewArray()
		rec := array.NewRecordBatch(stored, []arrow.Array{ia, va}, int64(len(ids)))
		ia.Release()
		va.Release()
		records = func(yield func(arrow.RecordBatch, error) bool) { yield(rec, nil) }
	}
	p, err := e.cat.Prepare(e.ctx, wrap(e.tbl), Change{Records: records, Deletes: dels})
	if err != nil {
		e.t.Fatal(err)
	}
	e.runs++
	token := fmt.Sprintf("run-%d", e.runs)
	if e.tbl, err = e.cat.commit(e.ctx, p, token, map[string]string{KeyRunID: token}); err != nil {
		e.t.Fatal(err)
	}
	for _, id := range deletes {
		delete(e.model, id)
	}
	maps.Copy(e.model, upserts)
	return token
}

// check reads the table back with icecheck and with an iceberg-go scan and
// compares both with the model.
func (e *mtEnv) check(when string) *icecheck.Table {
	e.t.Helper()
	got, err := icecheck.Read(e.ctx, e.tbl.MetadataLocation())
	if err != nil {
		e.t.Fatalf("%s: icecheck: %v", when, err)
	}
	rows := map[int32]string{}
	for _, r := range got.Rows {
		id := int32(r["id"].(int64))
		if _, dup := rows[id]; dup {
			e.t.Errorf("%s: icecheck: id %d appears twice", when, id)
		}
		rows[id] = r["v"].(string)
	}
	if !reflect.DeepEqual(rows, e.model) {
		e.t.Errorf("%s: icecheck rows %v\nwant %v", when, rows, e.model)
	}
	scanned, n, err := e.scan(e.tbl.Scan())
	if err != nil {
		e.t.Fatalf("%s: iceberg-go scan: %v", when, err)
	}
	if n != len(e.model) || !reflect.DeepEqual(scanned, e.model) {
		e.t.Errorf("%s: iceberg-go scan: %d rows %v\nwant %v", when, n, scanned, e.model)
	}
	return got
}

// scan reads the rows of an iceberg-go scan of the table: id → v, and how
// many rows it read (a key twice counts twice).
func (e *mtEnv) scan(sc *table.Scan) (map[int32]string, int, error) {
	at, err := sc.ToArrowTable(e.ctx)
	if err != nil {
		return nil, 0, err
	}
	defer at.Release()
	rows, n := map[int32]string{}, 0
	tr := array.NewTableReader(at, 0)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		ids, vs := rec.Column(0).(*array.Int32), rec.Column(1).(*array.String)
		for i := 0; i < ids.Len(); i++ {
			rows[ids.Value(i)] = vs.Value(i)
			n++
		}
	}
	return rows, n, nil
}

// workload commits five runs: a load, updates, deletes, a delete then a
// re-insert in later runs, and the same key updated in several runs.
func (e *mtEnv) workload() {
	load := map[int32]string{}
	for i := range int32(20) {
		load[i] = fmt.Sprintf("v%d", i)
	}
	e.commit(load)
	e.commit(map[int32]string{1: "u1", 2: "u2", 20: "new20"}, 3, 4)
	e.commit(map[int32]string{1: "u1b", 5: "u5"}, 6, 20)
	e.commit(map[int32]string{3: "back3", 1: "u1c"}, 7)
	e.commit(map[int32]string{20: "back20", 8: "u8"}, 9, 10, 11)
}

func TestMaintainCompactFoldsDeletes(t *testing.T) {
	e := newMaintainEnv(t)
	e.workload()
	before := e.check("before")
	token := LastToken(e.tbl)
	if before.DeleteFiles < 2 || before.DataFiles < 5 {
		t.Fatalf("workload left %d data and %d delete files; want several of each", before.DataFiles, before.DeleteFiles)
	}
	var err error
	var res CompactResult
	e.tbl, res, err = e.cat.compact(e.ctx, e.tbl, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := e.check("after compaction")
	if after.DataFiles != 1 || after.DeleteFiles != 0 || res.Added != 1 || len(res.DeleteFilesRemoved) != before.DeleteFiles || res.DeleteFilesKept != 0 {
		t.Errorf("after: %d data, %d delete files (result %+v); want 1 and 0", after.DataFiles, after.DeleteFiles, res)
	}
	if res.Rows != int64(len(e.model)) || res.DeletedRows == 0 {
		t.Errorf("result: %d rows, %d deleted rows folded; want %d rows", res.Rows, res.DeletedRows, len(e.model))
	}
	if after.Summary["operation"] != "replace" || after.Summary[KeyMaintenance] != "compact" || after.Summary[KeyToken] != "" {
		t.Errorf("compaction summary %v: want a replace snapshot without a token", after.Summary)
	}
	if LastToken(e.tbl) != token {
		t.Errorf("last token %q after compaction, want %q", LastToken(e.tbl), token)
	}
	// A run after the compaction deletes from the new file.
	e.commit(map[int32]string{12: "u12", 30: "new30"}, 13, 3)
	e.check("run after compaction")
	// Once compacted, a lone small file without deletes is left alone.
	e.tbl, _, _ = e.cat.compact(e.ctx, e.tbl, CompactOptions{})
	e.tbl, res, err = e.cat.compact(e.ctx, e.tbl, CompactOptions{})
	if err != nil || len(res.Rewritten) != 0 {
		t.Errorf("second compaction: %v, rewrote %d files; want nothing to do", err, len(res.Rewritten))
	}
	e.check("after recompaction")
}

// A delete file that also deletes rows of a file the compaction does not
// rewrite stays: those rows stay deleted.
func TestMaintainCompactKeepsDeleteFileOfSurvivingFile(t *testing.T) {
	e := newMaintainEnv(t)
	e.commit(map[int32]string{1: "a1", 2: "a2", 3: "a3", 4: "a4"}) // file A
	e.commit(map[int32]string{11: "b1", 12: "b2", 13: "b3"})       // file B
	e.commit(map[int32]string{50: "c"}, 1, 2, 3, 11)               // one delete file for A and B
	live := e.live()
	a, b := live[4].path, live[12].path
	var sizeA int64
	st, err := readLiveState(e.ctx, e.tbl, true)
	if err != nil {
		t.Fatal(err)
	}
	sizeA = st.data[a].df.FileSizeBytes()
	var res CompactResult
	e.tbl, res, err = e.cat.compact(e.ctx, e.tbl, CompactOptions{MaxInputBytes: sizeA})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Rewritten, []string{a}) || len(res.DeleteFilesRemoved) != 0 || res.DeleteFilesKept != 1 {
		t.Fatalf("rewrote %v, removed %v delete files, kept %d; want A only and the shared delete file kept", res.Rewritten, res.DeleteFilesRemoved, res.DeleteFilesKept)
	}
	got := e.check("after compacting A")
	if got.DeleteFiles != 1 {
		t.Errorf("%d delete files, want the shared one kept", got.DeleteFiles)
	}
	// Without the bound B is rewritten too and the delete file goes.
	e.tbl, res, err = e.cat.compact(e.ctx, e.tbl, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Rewritten, b) || len(res.DeleteFilesRemoved) != 1 {
		t.Errorf("second compaction rewrote %v, removed %v", res.Rewritten, res.DeleteFilesRemoved)
	}
	if got := e.check("after compacting all"); got.DeleteFiles != 0 || got.DataFiles != 1 {
		t.Errorf("%d data, %d delete files; want 1 and 0", got.DataFiles, got.DeleteFiles)
	}
}

// Another writer commits between the compaction's read and its commit (a
// run deleting a row of a file being rewritten): the compaction fails with
// ErrCommitConflict, nothing of it is visible, its files are removed, the
// other writer's delete holds; a second compaction then succeeds.
func TestMaintainCompactConflict(t *testing.T) {
	e := newMaintainEnv(t)
	e.workload()
	_, _, err := e.cat.compact(e.ctx, e.tbl, CompactOptions{beforeCommit: func(context.Context) error {
		e.commit(nil, 0, 1)
		return nil
	}})
	if !errors.Is(err, ErrCommitConflict) {
		t.Fatalf("err = %v, want ErrCommitConflict", err)
	}
	t.Logf("conflict: %v", err)
	if e.tbl, _, err = e.Reload(); err != nil {
		t.Fatal(err)
	}
	got := e.check("after the conflict")
	if got.Summary[KeyMaintenance] != "" || got.Summary[KeyToken] != fmt.Sprintf("run-%d", e.runs) {
		t.Errorf("current snapshot %v: want the other writer's", got.Summary)
	}
	entries, _ := os.ReadDir(filepath.Join(strings.TrimPrefix(e.tbl.Location(), "file://"), "data"))
	live, err := currentFiles(e.ctx, e.tbl)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		p := filepath.Join(strings.TrimPrefix(e.tbl.Location(), "file://"), "data", ent.Name())
		if !live[p] && !strings.Contains(ent.Name(), "-deletes") {
			// Data files of old snapshots are still referenced by them;
			// a compacted file would be referenced by none.
			if referencedByAny(t, e, p) {
				continue
			}
			t.Errorf("the failed compaction left data file %s", ent.Name())
		}
	}
	if e.tbl, _, err = e.cat.compact(e.ctx, e.tbl, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.check("after the second compaction"); got.DeleteFiles != 0 || got.DataFiles != 1 {
		t.Errorf("%d data, %d delete files; want 1 and 0", got.DataFiles, got.DeleteFiles)
	}
}

func (e *mtEnv) Reload() (*table.Table, bool, error) { return e.cat.load(e.ctx, e.tbl.Identifier()) }

// referencedByAny reports whether any snapshot of the table references path.
func referencedByAny(t *testing.T, e *mtEnv, path string) bool {
	t.Helper()
	fs, err := e.tbl.FS(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range e.tbl.Metadata().Snapshots() {
		ms, err := s.Manifests(fs)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			for en, err := range m.Entries(fs, false) {
				if err != nil {
					t.Fatal(err)
				}
				if normalPath(en.DataFile().FilePath()) == path {
					return true
				}
			}
		}
	}
	return false
}

// Expiry keeps the current snapshot and every snapshot back to the one
// holding the last bookmark token, whatever --retain-last says; the rows
// and the last token stay.
func TestMaintainExpireKeepsTheTokenSnapshot(t *testing.T) {
	e := newMaintainEnv(t)
	e.workload()
	token := LastToken(e.tbl)
	marker := e.tbl.CurrentSnapshot().SnapshotID
	var err error
	// Two maintenance snapshots on top of the last run's.
	if e.tbl, _, err = e.cat.compact(e.ctx, e.tbl, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	e.commit(nil, 14) // a run
	token, marker = LastToken(e.tbl), e.tbl.CurrentSnapshot().SnapshotID
	if e.tbl, _, err = e.cat.compact(e.ctx, e.tbl, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if e.tbl, _, err = e.cat.rewriteManifests(e.ctx, e.tbl, false); err != nil {
		t.Fatal(err)
	}
	before := len(e.tbl.Metadata().Snapshots())
	// A dry run changes nothing.
	_, dry, err := e.cat.expireSnapshots(e.ctx, e.tbl, ExpireOptions{OlderThan: 0, RetainLast: 1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if t2, _, _ := e.Reload(); len(t2.Metadata().Snapshots()) != before || len(dry.Expired) == 0 {
		t.Fatalf("dry run: %d snapshots → %d, %d to expire", before, len(t2.Metadata().Snapshots()), len(dry.Expired))
	}
	var res ExpireResult
	if e.tbl, res, err = e.cat.expireSnapshots(e.ctx, e.tbl, ExpireOptions{OlderThan: 0, RetainLast: 1}); err != nil {
		t.Fatal(err)
	}
	if res.Marker != marker || e.tbl.Metadata().SnapshotByID(marker) == nil {
		t.Errorf("marker %d (want %d) expired or not reported", res.Marker, marker)
	}
	chain := 0 // the snapshots from the current back to the token's
	for s := e.tbl.CurrentSnapshot(); s != nil; s = e.tbl.Metadata().SnapshotByID(*s.ParentSnapshotID) {
		chain++
		if s.SnapshotID == marker {
			break
		}
	}
	if n := len(e.tbl.Metadata().Snapshots()); chain < 2 || n != chain || len(res.Expired) != before-chain {
		t.Errorf("%d snapshots left of %d (expired %v); want the %d from the current back to the token's", n, before, res.Expired, chain)
	}
	if got := LastToken(e.tbl); got != token {
		t.Errorf("last token %q, want %q", got, token)
	}
	e.check("after expiry")
	// Nothing more to expire: no commit.
	sid := e.tbl.Metadata().LastUpdatedMillis()
	if e.tbl, res, err = e.cat.expireSnapshots(e.ctx, e.tbl, ExpireOptions{OlderThan: 0, RetainLast: 1}); err != nil || len(res.Expired) != 0 || e.tbl.Metadata().LastUpdatedMillis() != sid {
		t.Errorf("second expiry: %v, expired %v", err, res.Expired)
	}
}

// Orphan removal deletes an unreferenced file older than the threshold,
// keeps a fresh one, never a referenced one however old, and nothing
// outside the table's data and metadata folders.
func TestMaintainOrphanFiles(t *testing.T) {
	e := newMaintainEnv(t)
	e.workload()
	loc := strings.TrimPrefix(e.tbl.Location(), "file://")
	old := time.Now().Add(-96 * time.Hour)
	write := func(rel string, at time.Time) string {
		p := filepath.Join(loc, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stray"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stray := write("data/stray-old.parquet", old)
	strayMeta := write("metadata/stray-old.avro", old)
	fresh := write("data/stray-fresh.parquet", time.Now())
	outside := write("elsewhere/old.txt", old)
	// Every referenced file is made old too.
	live, err := currentFiles(e.ctx, e.tbl)
	if err != nil {
		t.Fatal(err)
	}
	for p := range live {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	dry, err := e.cat.removeOrphans(e.ctx, e.tbl, OrphanOptions{OlderThan: 72 * time.Hour, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range dry.Files {
		paths = append(paths, normalPath(f.Path))
	}
	if want := []string{stray, strayMeta}; !reflect.DeepEqual(paths, want) {
		t.Fatalf("dry run lists %v, want %v", paths, want)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("the dry run removed %s", stray)
	}
	res, err := e.cat.removeOrphans(e.ctx, e.tbl, OrphanOptions{OlderThan: 72 * time.Hour})
	if err != nil || res.Removed != 2 {
		t.Fatalf("removed %d: %v; want 2", res.Removed, err)
	}
	for p, gone := range map[string]bool{stray: true, strayMeta: true, fresh: false, outside: false} {
		if _, err := os.Stat(p); (err != nil) != gone {
			t.Errorf("%s: stat error %v; want removed %v", p, err, gone)
		}
	}
	for p := range live {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("referenced file %s removed", p)
		}
	}
	e.check("after orphan removal")
	if _, err := e.cat.removeOrphans(e.ctx, e.tbl, OrphanOptions{OlderThan: 0}); err == nil {
		t.Error("a zero age threshold was accepted")
	}
}

func TestMaintainRewriteManifests(t *testing.T) {
	e := newMaintainEnv(t)
	e.workload()
	var res ManifestsResult
	var err error
	if e.tbl, res, err = e.cat.rewriteManifests(e.ctx, e.tbl, false); err != nil {
		t.Fatal(err)
	}
	if res.DataBefore < 5 || res.DataAfter != 1 || res.Snapshot == 0 {
		t.Errorf("data manifests %d → %d (snapshot %d); want 5 or more → 1", res.DataBefore, res.DataAfter, res.Snapshot)
	}
	e.check("after the manifest rewrite")
	if _, res, err = e.cat.rewriteManifests(e.ctx, e.tbl, false); err != nil || res.Snapshot != 0 {
		t.Errorf("second rewrite: %v, snapshot %d; want nothing to do", err, res.Snapshot)
	}
}
