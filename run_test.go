package icemerge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/icecheck"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
	"github.com/icemerge/icemerge/merge"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// env is one table's world: a source folder, a warehouse, a catalog and a
// bookmark folder. Backend local keeps all of it on disk with the SQLite
// catalog; minio-sql and minio-glue put the source, warehouse and bookmarks
// in a MinIO bucket, with the SQLite or the Glue (moto) catalog.
type env struct {
	t       testing.TB
	backend string
	dir     string
	opts    RunOptions
	op      *Env
	cat     *catalog.Catalog
	store   *bookmark.Bookmarks
	src     Source
	ctx     context.Context // carries the AWS config for iceberg-go
	s3      *s3.Client      // MinIO backends
	aws     *aws.Config
	bucket  string
	faults  *testservers.FaultTransport
	// after, when set, sees every response from the servers and may
	// replace it: a commit that succeeded and was reported as failed.
	after func(req *http.Request, resp *http.Response) (*http.Response, error)
	out   bytes.Buffer
}

var allBackends = []string{"local", "minio-sql", "minio-glue"}

// testAttemptTimeout bounds one HTTP attempt in tests: long enough for a
// 24 MB object on a loaded 2-core machine; the timeout test shortens it.
var testAttemptTimeout = 10 * time.Second

// eachBackend runs fn once per backend, as subtests; the MinIO ones skip
// (fail with CI=true) when the servers are not there.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range allBackends {
		t.Run(b, func(t *testing.T) { fn(t, newEnv(t, b)) })
	}
}

const srcPrefix = "raw_input/test_db/users"

func newEnv(t testing.TB, backend string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, backend: backend, dir: dir, ctx: context.Background()}
	e.opts = NewRunOptions()
	e.opts.Common = Common{Table: "test_db.users", Catalog: "sql", CatalogURI: filepath.Join(dir, "icemerge.db"),
		Warehouse: "file://" + filepath.Join(dir, "warehouse")}
	e.opts.Source = filepath.Join(dir, srcPrefix)
	e.opts.Keys = []string{"user_id"}
	e.opts.LockTTL = time.Minute
	var awsCfg *aws.Config
	if backend != "local" {
		srv := testservers.MinIO(t)
		env := srv.Env()
		if backend == "minio-glue" {
			g := testservers.Moto(t)
			maps.Copy(env, g.Env())
			e.opts.Catalog = "glue"
			e.opts.Table = g.NewDatabase(t) + ".users"
		}
		env["AWS_EC2_METADATA_DISABLED"] = "true"
		for k, v := range env {
			t.Setenv(k, v)
		}
		e.bucket = srv.NewBucket(t)
		e.opts.Source = "s3://" + e.bucket + "/" + srcPrefix
		e.opts.Warehouse = "s3://" + e.bucket + "/warehouse"
		var err error
		// The product's AWS configuration, with the transport decorated for
		// fault injection and short backoffs and timeouts for speed.
		awsCfg, err = LoadAWS(e.ctx, AWSOptions{
			Wrap: func(rt http.RoundTripper) http.RoundTripper {
				e.faults = testservers.NewFaultTransport(afterHook{e: e, base: rt})
				return e.faults
			},
			MaxBackoff:     100 * time.Millisecond,
			AttemptTimeout: testAttemptTimeout,
		})
		if err != nil {
			t.Fatal(err)
		}
		e.s3 = s3.NewFromConfig(*awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	}
	lookup := func(k string) (string, bool) { return os.LookupEnv(k) }
	if err := e.opts.Complete(lookup); err != nil {
		t.Fatal(err)
	}
	if err := e.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	e.aws = awsCfg
	e.reopen()
	return e
}

// reopen opens the catalog, bookmark store and source for e.opts.
func (e *env) reopen() {
	e.t.Helper()
	ctx, op, err := Open(e.ctx, e.opts.Common, e.opts.Source, e.aws, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { op.Close() })
	e.ctx, e.op, e.cat, e.store = ctx, op, op.Catalog, op.Bookmarks(e.opts.Table)
	if e.src, err = op.Source(e.opts.Source); err != nil {
		e.t.Fatal(err)
	}
}

type afterHook struct {
	e    *env
	base http.RoundTripper
}

func (h afterHook) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(req)
	if err == nil && h.e.after != nil {
		return h.e.after(req, resp)
	}
	return resp, err
}

// copyFixture puts a testdata/users file into the source folder.
func (e *env) copyFixture(name, to string) {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "users", name))
	if err != nil {
		e.t.Fatal(err)
	}
	e.put(to, b)
}

// put writes an object into the source folder.
func (e *env) put(key string, b []byte) {
	e.t.Helper()
	if e.s3 != nil {
		_, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(srcPrefix + "/" + key), Body: bytes.NewReader(b)})
		if err != nil {
			e.t.Fatal(err)
		}
		return
	}
	p := filepath.Join(e.dir, srcPrefix, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// putDMS writes rows as a DMS Parquet file into the source folder.
func (e *env) putDMS(key string, cols []dmstest.Column, ops []string, rows []dmstest.Row, o dmstest.Options) {
	e.t.Helper()
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, ops, rows, o); err != nil {
		e.t.Fatal(err)
	}
	e.put(key, buf.Bytes())
}

// remove deletes an object of the source folder.
func (e *env) remove(key string) {
	e.t.Helper()
	if e.s3 != nil {
		if _, err := e.s3.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String(srcPrefix + "/" + key)}); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	if err := os.Remove(filepath.Join(e.dir, srcPrefix, filepath.FromSlash(key))); err != nil {
		e.t.Fatal(err)
	}
}

// fetch reads a file of the table, wherever it is.
func (e *env) fetch(ctx context.Context, loc string) ([]byte, error) {
	if strings.HasPrefix(loc, "s3://") {
		l, err := source.ParseLocation(loc)
		if err != nil {
			return nil, err
		}
		out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &l.Bucket, Key: &l.Prefix})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		return io.ReadAll(out.Body)
	}
	return os.ReadFile(strings.TrimPrefix(loc, "file://"))
}

func (e *env) deps(store BookmarkStore) Deps {
	if store == nil {
		store = e.store
	}
	return Deps{Log: slog.New(slog.DiscardHandler), Now: time.Now,
		Source: e.src, Catalog: e.cat, Bookmark: store, Lock: e.store}
}

// merge runs e.opts with d, writing what the run did to e.out as the
// command line does.
func (e *env) merge(d Deps) (*Result, error) {
	res, err := Run(e.ctx, e.opts, d)
	WriteRun(&e.out, e.opts, res)
	return res, err
}

func (e *env) run() *Result {
	e.t.Helper()
	res, err := e.merge(e.deps(nil))
	if err != nil {
		e.t.Fatalf("run: %v", err)
	}
	return res
}

// table reads the table with the independent reader; nil when it does not
// exist.
func (e *env) table() *icecheck.Table {
	e.t.Helper()
	tbl, ok, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	got, err := icecheck.ReadWith(e.ctx, tbl.MetadataLocation(), e.fetch)
	if err != nil {
		e.t.Fatalf("icecheck: %v", err)
	}
	return got
}

func (e *env) formatVersion() int {
	e.t.Helper()
	tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := e.fetch(e.ctx, tbl.MetadataLocation())
	if err != nil {
		e.t.Fatal(err)
	}
	var md struct {
		FormatVersion int `json:"format-version"`
	}
	if err := json.Unmarshal(b, &md); err != nil {
		e.t.Fatal(err)
	}
	return md.FormatVersion
}

func (e *env) snapshotID() int64 {
	if t := e.table(); t != nil {
		return t.SnapshotID
	}
	return 0
}

// byKey indexes rows by the given key column, rendered with %v.
func byKey(rows []map[string]any, key string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, r := range rows {
		out[fmt.Sprint(r[key])] = r
	}
	return out
}

func (e *env) bookmark() bookmark.State {
	st, _, err := e.store.Load(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// The worked users example (testdata/users/README.md): the full load, then
// the CDC file with I 6, U 1, D 4, in two runs.
func TestUsersExample(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		if res := e.run(); !res.Created || res.Plan.WriteRows != 5 {
			t.Fatalf("first run: created %v, wrote %d; want a new table with 5 rows", res.Created, res.Plan.WriteRows)
		}
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
		e.run()

		tbl := e.table()
		rows := byKey(tbl.Rows, "user_id")
		var ids []string
		for id := range rows {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if want := []string{"1", "2", "3", "5", "6"}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("users %v, want %v", ids, want)
		}
		if got := rows["1"]["email"]; got != "update-user0@example.com" {
			t.Errorf("user 1 email %v, want update-user0@example.com", got)
		}
		if got := rows["6"]["updated_at"].(time.Time); !got.Equal(time.Date(2024, 8, 14, 0, 26, 34, 0, time.UTC)) {
			t.Errorf("user 6 updated_at %v", got)
		}
		// What Athena needs: v2, position deletes (no equality deletes), the
		// key as required identifier field, the Op column not stored.
		if v := e.formatVersion(); v != 2 {
			t.Errorf("format-version %d, want 2", v)
		}
		if tbl.Properties["commit.manifest-merge.enabled"] != "true" {
			t.Errorf("manifest merging is off: %v", tbl.Properties)
		}
		if tbl.DeleteFiles != 1 || tbl.DataFiles != 2 {
			t.Errorf("live files: %d data, %d delete; want 2 and 1", tbl.DataFiles, tbl.DeleteFiles)
		}
		var names []string
		for _, c := range tbl.Columns {
			names = append(names, c.Name+" "+c.Type)
			if c.Name == "user_id" && !c.Required {
				t.Errorf("user_id is not required")
			}
		}
		if want := "user_id int,first_name string,last_name string,email string,created_at timestamptz,updated_at timestamptz"; strings.Join(names, ",") != want {
			t.Errorf("columns %s\nwant    %s", strings.Join(names, ","), want)
		}
		// The snapshot records what the run consumed.
		s := tbl.Summary
		for k, want := range map[string]string{
			catalog.KeySourceFiles: "1", catalog.KeySourceRows: "3", catalog.KeySourceInsert: "1",
			catalog.KeySourceUpdate: "1", catalog.KeySourceDelete: "1", catalog.KeyRowsWritten: "2", catalog.KeyRowsDeleted: "2",
		} {
			if s[k] != want {
				t.Errorf("summary %s = %q, want %q", k, s[k], want)
			}
		}
		bm := e.bookmark()
		if s[catalog.KeyToken] == "" || s[catalog.KeyToken] != bm.Token || s[catalog.KeyRunID] != bm.Token {
			t.Errorf("summary token %q, run id %q, bookmark token %q: want one value", s[catalog.KeyToken], s[catalog.KeyRunID], bm.Token)
		}
		if len(bm.Files) != 2 || bm.Pending != nil || bm.Runs != 2 {
			t.Errorf("bookmark: %d files, pending %v, %d runs; want 2, nil, 2", len(bm.Files), bm.Pending, bm.Runs)
		}
	})
}

func TestNothingNewMakesNoSnapshot(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		before := e.snapshotID()
		e.put("_SUCCESS", nil)
		e.put("notes.txt", []byte("hello"))
		if res := e.run(); res.Files != 0 || e.snapshotID() != before {
			t.Errorf("rerun: %d files, snapshot %d → %d; want 0 files and no new snapshot", res.Files, before, e.snapshotID())
		}
	})
}

func TestDryRunWritesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.opts.DryRun = true
		res := e.run()
		if res.Plan == nil || res.Plan.WriteRows != 5 {
			t.Fatalf("dry run plan %+v, want 5 rows to write", res.Plan)
		}
		if e.table() != nil {
			t.Errorf("dry run created the table")
		}
		if _, v, _ := e.store.Load(e.ctx); v != "" {
			t.Errorf("dry run saved a bookmark")
		}
		for _, s := range []string{"dry run", "LOAD00000001.parquet: 5 rows (I 5, U 0, D 0)", "rows to write: 5"} {
			if !strings.Contains(e.out.String(), s) {
				t.Errorf("plan output lacks %q:\n%s", s, e.out.String())
			}
		}
	})
}

func TestKeyContradictingTheTableIsRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
		e.opts.Keys = []string{"email"}
		if _, err := e.merge(e.deps(nil)); err == nil || !strings.Contains(err.Error(), "contradicts") {
			t.Fatalf("err = %v, want the contradiction reported", err)
		}
		e.opts.Keys = nil // the table's key is authoritative
		e.run()
	})
}

// A run that dies between its commit and saving the bookmark: the next run
// recognises the commit and applies nothing twice.
func TestCrashBetweenCommitAndBookmarkSave(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")

		// The save after the commit fails.
		_, err := e.merge(e.deps(faultStore{BookmarkStore: e.store, f: &faults{point: "bookmark done", action: failBefore}}))
		if !errors.Is(err, errInjected) {
			t.Fatalf("err = %v, want the injected fault", err)
		}
		committed := e.table()
		if committed.Summary[catalog.KeySourceFiles] != "1" {
			t.Fatalf("the commit did not happen: summary %v", committed.Summary)
		}
		if bm := e.bookmark(); bm.Pending == nil || len(bm.Files) != 1 {
			t.Fatalf("bookmark after the crash: pending %v, %d files; want the run pending", bm.Pending, len(bm.Files))
		}

		res := e.run()
		if res.Reconciled != bookmark.Finalised || res.Files != 0 {
			t.Errorf("rerun: outcome %v, %d files; want finalised and nothing to apply", res.Outcome, res.Files)
		}
		after := e.table()
		if after.SnapshotID != committed.SnapshotID {
			t.Errorf("rerun committed again: snapshot %d → %d", committed.SnapshotID, after.SnapshotID)
		}
		if !reflect.DeepEqual(byKey(after.Rows, "user_id"), byKey(committed.Rows, "user_id")) {
			t.Errorf("rows changed on rerun")
		}
		if bm := e.bookmark(); bm.Pending != nil || len(bm.Files) != 2 || bm.Token != committed.Summary[catalog.KeyToken] {
			t.Errorf("bookmark after recovery: pending %v, %d files, token %q", bm.Pending, len(bm.Files), bm.Token)
		}
	})
}

// A run that dies after marking its files pending but before committing:
// the next run discards the mark and applies the files once.
func TestCrashBeforeCommit(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		before := e.table()
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
		// Pending saved, then the commit's context is cancelled: nothing commits.
		ctx, cancel := context.WithCancel(context.Background())
		d := e.deps(&cancelAfterSave{Store: e.store, cancel: cancel})
		if _, err := Run(ctx, e.opts, d); err == nil {
			t.Fatal("run with a cancelled commit succeeded")
		}
		if got := e.table(); got.SnapshotID != before.SnapshotID {
			t.Fatalf("a snapshot was committed: %d → %d", before.SnapshotID, got.SnapshotID)
		}
		res := e.run()
		if res.Reconciled != bookmark.Discarded || res.Files != 1 {
			t.Errorf("rerun: outcome %v, %d files; want the pending run discarded and its file applied", res.Outcome, res.Files)
		}
		if n := len(e.table().Rows); n != 5 {
			t.Errorf("%d rows, want 5", n)
		}
	})
}

type cancelAfterSave struct {
	bookmark.Store
	cancel context.CancelFunc
}

func (c *cancelAfterSave) Save(ctx context.Context, s bookmark.State, prev bookmark.Version) (bookmark.Version, error) {
	v, err := c.Store.Save(ctx, s, prev)
	if s.Pending != nil {
		c.cancel()
	}
	return v, err
}

// Bad input fails the run naming file, row and value; nothing is committed
// and the bookmark does not move.
func TestBadInputCommitsNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		before, bm := e.table(), e.bookmark()
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
		e.put("20240814-002700000.parquet", []byte("PAR1 this is not parquet PAR1"))

		_, err := e.merge(e.deps(nil))
		if !errors.Is(err, merge.ErrCorruptFile) || !strings.Contains(err.Error(), "20240814-002700000.parquet") {
			t.Fatalf("err = %v, want ErrCorruptFile naming the file", err)
		}
		if e.table().SnapshotID != before.SnapshotID {
			t.Errorf("a snapshot was committed")
		}
		if after := e.bookmark(); !reflect.DeepEqual(after.Files, bm.Files) || after.Pending != nil {
			t.Errorf("the bookmark moved")
		}
		// Once the bad object is gone the good one applies.
		e.remove("20240814-002700000.parquet")
		if res := e.run(); res.Files != 1 {
			t.Errorf("after removing the bad file: %d files applied, want 1", res.Files)
		}
	})
}

// Reset and rerun over committed files: the table's content is unchanged.
func TestResetAndRerunLeavesContentUnchanged(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.run()
		e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")
		e.run()
		want := byKey(e.table().Rows, "user_id")

		if _, err := e.store.Save(e.ctx, bookmark.Reset(e.opts.Table, time.Now()), mustVersion(t, e.ctx, e.store)); err != nil {
			t.Fatal(err)
		}
		res := e.run()
		if res.Reconciled != bookmark.Fresh || res.Files != 2 {
			t.Errorf("rerun after reset: outcome %v, %d files; want fresh, 2", res.Outcome, res.Files)
		}
		if got := byKey(e.table().Rows, "user_id"); !reflect.DeepEqual(got, want) {
			t.Errorf("content changed after reset and rerun:\n got %v\nwant %v", got, want)
		}
	})
}

func mustVersion(t *testing.T, ctx context.Context, s bookmark.Store) bookmark.Version {
	_, v, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMain(m *testing.M) { testservers.Main(m) }

// A composite key with 4-byte UTF-8 (𠮷, emoji) in key and value columns:
// bytes round-trip, ties break by source order, keys match across runs.
func TestCompositeUnicodeKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		cols := []dmstest.Column{
			{Name: "Tenant", Type: dmstest.String, Required: true},
			{Name: "id", Type: dmstest.Int64, Required: true},
			{Name: "v", Type: dmstest.String},
			{Name: "updated_at", Type: dmstest.Timestamp},
		}
		ts := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
		write := func(key string, ops []string, rows []dmstest.Row) {
			e.putDMS(key, cols, ops, rows, dmstest.Options{Op: true})
		}
		e.opts.Keys = []string{"tenant", "id"}
		write("LOAD00000001.parquet", []string{"I", "I", "I"}, []dmstest.Row{
			{"𠮷野家", int64(1), "a😀", ts}, {"😀", int64(1), "b", ts}, {"𠮷野家", int64(2), "c", ts},
		})
		e.run()
		write("20240814-000100000.parquet", []string{"U", "U", "D", "I"}, []dmstest.Row{
			{"𠮷野家", int64(1), "first 🎉", ts.Add(time.Second)},
			{"𠮷野家", int64(1), "second 🎉𠮷", ts.Add(time.Second)}, // same second: the later row wins
			{"😀", int64(1), "b", ts},
			{"😀", int64(2), "new", ts.Add(time.Second)},
		})
		e.run()
		got := map[string]any{}
		for _, r := range e.table().Rows {
			got[fmt.Sprintf("%s/%v", r["tenant"], r["id"])] = r["v"]
		}
		want := map[string]any{"𠮷野家/1": "second 🎉𠮷", "𠮷野家/2": "c", "😀/2": "new"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rows %v, want %v", got, want)
		}
	})
}

// DMS schema drift: a new column is added to the table, int→bigint widens
// the column, and a string→int change is refused before anything is
// written.
func TestSchemaDrift(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ts := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
		write := func(key string, cols []dmstest.Column, rows ...dmstest.Row) {
			ops := make([]string, len(rows))
			for i := range ops {
				ops[i] = "U"
			}
			e.putDMS(key, cols, ops, rows, dmstest.Options{Op: true})
		}
		base := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}, {Name: "n", Type: dmstest.Int32}, {Name: "updated_at", Type: dmstest.Timestamp}}
		write("LOAD00000001.parquet", base, dmstest.Row{int32(1), int32(7), ts}, dmstest.Row{int32(2), int32(8), ts})
		e.run()

		drift := []dmstest.Column{base[0], {Name: "n", Type: dmstest.Int64}, base[2], {Name: "phone", Type: dmstest.String}}
		write("20240814-000100000.parquet", drift, dmstest.Row{int32(2), int64(1) << 40, ts.Add(time.Second), "+49 𠮷"})
		res := e.run()
		if len(res.SchemaChanges) != 2 {
			t.Errorf("schema changes %v, want n widened and phone added", res.SchemaChanges)
		}
		tbl := e.table()
		var cols []string
		for _, c := range tbl.Columns {
			cols = append(cols, c.Name+" "+c.Type)
		}
		if got := strings.Join(cols, ","); got != "user_id int,n long,updated_at timestamptz,phone string" {
			t.Errorf("columns %s", got)
		}
		rows := byKey(tbl.Rows, "user_id")
		if rows["1"]["phone"] != nil || rows["1"]["n"] != int64(7) || rows["2"]["phone"] != "+49 𠮷" || rows["2"]["n"] != int64(1)<<40 {
			t.Errorf("rows %v", rows)
		}

		before := e.snapshotID()
		clash := []dmstest.Column{base[0], base[1], base[2], {Name: "phone", Type: dmstest.Int64}}
		write("20240814-000200000.parquet", clash, dmstest.Row{int32(1), int32(1), ts.Add(2 * time.Second), int64(5)})
		_, err := e.merge(e.deps(nil))
		if !errors.Is(err, merge.ErrSchemaClash) || !strings.Contains(err.Error(), "20240814-000200000.parquet") || !strings.Contains(err.Error(), "phone") {
			t.Fatalf("err = %v, want ErrSchemaClash naming the file and column", err)
		}
		if e.snapshotID() != before {
			t.Errorf("a snapshot was committed")
		}
	})
}

// A late file with an older name carries a change older than a delete an
// earlier run applied: the tombstone keeps the row deleted. A newer
// re-insert revives it.
func TestLateOlderChangeDoesNotReviveADeletedRow(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ts := time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)
		e.opts.OrderBy = []string{"updated_at"}
		cols := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}, {Name: "name", Type: dmstest.String}, {Name: "updated_at", Type: dmstest.Timestamp}}
		writeC := func(key string, ops []string, rows ...dmstest.Row) {
			e.putDMS(key, cols, ops, rows, dmstest.Options{Op: true})
		}
		writeC("LOAD00000001.parquet", []string{"I", "I"}, dmstest.Row{int32(1), "one", ts}, dmstest.Row{int32(2), "two", ts})
		e.run()
		// The delete of user 1 (its image at 00:00:40) arrives first...
		writeC("20240814-000200000.parquet", []string{"U", "D"}, dmstest.Row{int32(1), "one b", ts.Add(4 * time.Second)}, dmstest.Row{int32(1), "one b", ts.Add(4 * time.Second)})
		e.run()
		// ...then a late file, named before it, with an older update.
		writeC("20240814-000100000.parquet", []string{"U", "U"}, dmstest.Row{int32(1), "late", ts.Add(2 * time.Second)}, dmstest.Row{int32(2), "two late", ts.Add(2 * time.Second)})
		res := e.run()
		if res.Files != 1 || res.Plan.Stale != 1 {
			t.Errorf("late run: %d files, %d stale; want 1 file, 1 stale change", res.Files, res.Plan.Stale)
		}
		rows := byKey(e.table().Rows, "user_id")
		if rows["1"] != nil || rows["2"]["name"] != "two late" {
			t.Errorf("rows %v: want user 1 still deleted and user 2 updated", rows)
		}
		// A newer insert brings user 1 back.
		writeC("20240814-000300000.parquet", []string{"I"}, dmstest.Row{int32(1), "again", ts.Add(9 * time.Second)})
		e.run()
		if rows := byKey(e.table().Rows, "user_id"); rows["1"]["name"] != "again" {
			t.Errorf("user 1 after a newer insert: %v", rows["1"])
		}
		if bm := e.bookmark(); bm.Tombstones.Len() != 0 {
			t.Errorf("%d tombstones left after the re-insert, want 0", bm.Tombstones.Len())
		}
	})
}
