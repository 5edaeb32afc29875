package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/utils"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3tables"
	"github.com/google/uuid"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/icecheck"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// s3tEnv is one table bucket on moto, with a catalog whose S3 Tables and
// S3 requests pass through a fault transport, and plain clients (no
// faults) to look at the table as AWS keeps it.
type s3tEnv struct {
	t    *testing.T
	ctx  context.Context
	moto *testservers.Glue
	tb   *testservers.TableBucket
	ft   *testservers.FaultTransport
	cat  *catalog.Catalog
	raw  *s3tables.Client
	s3   *s3.Client
	name string // the table, NAMESPACE.NAME
	runs int
	logs *syncBuffer // the catalog's log
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newS3TablesEnv(t *testing.T) *s3tEnv {
	t.Helper()
	g := testservers.Moto(t)
	e := &s3tEnv{t: t, moto: g, tb: g.NewTableBucket(t), ft: testservers.NewFaultTransport(nil), name: "test_db.users", logs: &syncBuffer{}}
	plain := g.S3TablesConfig(t, nil)
	e.raw = s3tables.NewFromConfig(plain)
	e.s3 = s3.NewFromConfig(plain)
	e.ctx = t.Context()
	e.cat = e.open(&http.Client{Transport: e.ft})
	return e
}

// open opens another catalog on the table bucket, as a run does: the AWS
// configuration in the context (cmd puts it there) and in the config, the
// S3 endpoint as a file IO property.
func (e *s3tEnv) open(hc *http.Client) *catalog.Catalog {
	e.t.Helper()
	cfg := e.moto.S3TablesConfig(e.t, hc)
	ctx := utils.WithAwsConfig(e.ctx, &cfg)
	cat, err := catalog.Open(ctx, catalog.Config{Kind: catalog.KindS3Tables, TableBucketARN: e.tb.ARN, AWS: &cfg,
		Props: iceberg.Properties{iceio.S3EndpointURL: e.moto.Endpoint}}, slog.New(slog.NewTextHandler(e.logs, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cat.Close() })
	return cat
}

// s3tSchema is the test table's stored schema.
var s3tSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int32},
	{Name: "v", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func (e *s3tEnv) create() *catalog.Table {
	e.t.Helper()
	tbl, err := e.cat.Create(e.ctx, e.name, s3tSchema, []string{"id"}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return tbl
}

// pointer is the table's metadata location and version token as S3 Tables
// holds them.
func (e *s3tEnv) pointer() *s3tables.GetTableMetadataLocationOutput {
	e.t.Helper()
	out, err := e.raw.GetTableMetadataLocation(e.ctx, &s3tables.GetTableMetadataLocationInput{TableBucketARN: aws.String(e.tb.ARN),
		Namespace: aws.String("test_db"), Name: aws.String("users")})
	if err != nil {
		e.t.Fatalf("GetTableMetadataLocation: %v", err)
	}
	return out
}

// fetch reads an s3:// object with the plain S3 client.
func (e *s3tEnv) fetch(ctx context.Context, loc string) ([]byte, error) {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
	if !ok {
		return nil, fmt.Errorf("not an s3:// location: %s", loc)
	}
	out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// check reads the table S3 Tables points at with icecheck (its own reader,
// over the plain S3 client) and compares its rows with want; it returns the
// current snapshot's summary.
func (e *s3tEnv) check(when string, want map[int32]string) map[string]string {
	e.t.Helper()
	loc := aws.ToString(e.pointer().MetadataLocation)
	got, err := icecheck.ReadWith(e.ctx, loc, e.fetch)
	if err != nil {
		e.t.Fatalf("%s: icecheck %s: %v", when, loc, err)
	}
	rows := map[int32]string{}
	for _, r := range got.Rows {
		id := int32(r["id"].(int64))
		if _, dup := rows[id]; dup {
			e.t.Errorf("%s: id %d appears twice", when, id)
		}
		rows[id] = r["v"].(string)
	}
	if !reflect.DeepEqual(rows, want) {
		e.t.Errorf("%s: rows %v\nwant %v", when, rows, want)
	}
	return got.Summary
}

// scanned reads the table's rows with iceberg-go's scan.
func scanned(t *testing.T, ctx context.Context, tbl *catalog.Table) map[int32]string {
	t.Helper()
	at, err := tbl.Iceberg().Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	defer at.Release()
	out := map[int32]string{}
	tr := array.NewTableReader(at, 0)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		ids, vs := rec.Column(0).(*array.Int32), rec.Column(1).(*array.String)
		for i := 0; i < ids.Len(); i++ {
			out[ids.Value(i)] = vs.Value(i)
		}
	}
	return out
}

// prepare plans a run as icemerge does: the live rows of the touched keys
// found with ScanLive are deleted by position, the upserts written as new
// rows.
func (e *s3tEnv) prepare(cat *catalog.Catalog, tbl *catalog.Table, upserts map[int32]string, deletes ...int32) *catalog.Prepared {
	e.t.Helper()
	touched := map[int32]bool{}
	for _, id := range append(slices.Collect(maps.Keys(upserts)), deletes...) {
		touched[id] = true
	}
	dels := map[string][]int64{}
	_, err := tbl.ScanLive(e.ctx, []string{"id"}, nil, func(path string, cols []arrow.Array, first int64, deleted func(int64) bool) error {
		ids := cols[0].(*array.Int32)
		for i := 0; i < ids.Len(); i++ {
			if pos := first + int64(i); touched[ids.Value(i)] && !deleted(pos) {
				dels[path] = append(dels[path], pos)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	stored, err := tbl.Schema()
	if err != nil {
		e.t.Fatal(err)
	}
	ch := catalog.Change{Deletes: dels}
	if len(upserts) > 0 {
		ids := slices.Sorted(maps.Keys(upserts))
		ib := array.NewInt32Builder(memory.DefaultAllocator)
		vb := array.NewStringBuilder(memory.DefaultAllocator)
		for _, id := range ids {
			ib.Append(id)
			vb.Append(upserts[id])
		}
		rec := array.NewRecordBatch(stored, []arrow.Array{ib.NewArray(), vb.NewArray()}, int64(len(ids)))
		ch.Records = func(yield func(arrow.RecordBatch, error) bool) { yield(rec, nil) }
	}
	p, err := cat.Prepare(e.ctx, tbl, ch)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *s3tEnv) token() string {
	e.runs++
	return fmt.Sprintf("run-%d", e.runs)
}

// commit runs one whole run on cat: load, plan, commit.
func (e *s3tEnv) commit(cat *catalog.Catalog, upserts map[int32]string, deletes ...int32) *catalog.Table {
	e.t.Helper()
	tbl, ok, err := cat.Load(e.ctx, e.name)
	if err != nil || !ok {
		e.t.Fatalf("load: %v (exists %v)", err, ok)
	}
	token := e.token()
	out, err := cat.Commit(e.ctx, e.prepare(cat, tbl, upserts, deletes...), token, map[string]string{catalog.KeyRunID: token})
	if err != nil {
		e.t.Fatalf("commit %s: %v", token, err)
	}
	return out
}

func snapshots(tbl *catalog.Table) int { return len(tbl.Iceberg().Metadata().Snapshots()) }

// A table created in a table bucket takes runs (inserts, updates and
// deletes by position delete, a schema change) and reads back the same
// through a fresh catalog, through iceberg-go's scan and through icecheck
// reading the metadata S3 Tables points at; its files are under the
// warehouse location S3 Tables assigned, and maintenance commits
// (compaction, snapshot expiry) work on it.
func TestS3TablesRoundTrip(t *testing.T) {
	e := newS3TablesEnv(t)
	if !e.cat.Managed() {
		t.Error("an S3 Tables catalog says its tables are not managed")
	}
	if _, ok, err := e.cat.Load(e.ctx, e.name); ok || err != nil {
		t.Fatalf("load before creation: exists %v, %v", ok, err)
	}
	tbl := e.create()
	ptr := e.pointer()
	wh := aws.ToString(ptr.WarehouseLocation)
	if tbl.Location() != wh || tbl.MetadataLocation() != aws.ToString(ptr.MetadataLocation) ||
		!strings.HasPrefix(tbl.MetadataLocation(), wh+"/metadata/00000-") {
		t.Fatalf("created table at %s, metadata %s; S3 Tables has warehouse %s, metadata %s",
			tbl.Location(), tbl.MetadataLocation(), wh, aws.ToString(ptr.MetadataLocation))
	}
	if _, err := e.cat.Create(e.ctx, e.name, s3tSchema, []string{"id"}, nil); !errors.Is(err, icecat.ErrTableAlreadyExists) {
		t.Errorf("creating it again: %v, want ErrTableAlreadyExists", err)
	}

	want := map[int32]string{1: "a", 2: "b", 3: "c", 4: "d"}
	e.commit(e.cat, want)
	e.check("after the load", want)
	e.commit(e.cat, map[int32]string{2: "b2", 5: "e"}, 3)
	want[2], want[5] = "b2", "e"
	delete(want, 3)
	summary := e.check("after the updates", want)
	if summary[catalog.KeyToken] != "run-2" {
		t.Errorf("summary %v: want this run's token", summary)
	}

	// A fresh catalog (another run) loads what S3 Tables points at.
	other := e.open(nil)
	loaded, ok, err := other.Load(e.ctx, e.name)
	if err != nil || !ok {
		t.Fatalf("load: %v (exists %v)", err, ok)
	}
	if loaded.MetadataLocation() != aws.ToString(e.pointer().MetadataLocation) || loaded.LastToken() != "run-2" {
		t.Errorf("loaded %s with token %q; S3 Tables points at %s", loaded.MetadataLocation(), loaded.LastToken(), aws.ToString(e.pointer().MetadataLocation))
	}
	if got := scanned(t, e.ctx, loaded); !reflect.DeepEqual(got, want) {
		t.Errorf("scan: %v, want %v", got, want)
	}

	// A schema change, then a run writing the new column.
	evolved, err := other.Evolve(e.ctx, loaded, []arrow.Field{{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := evolved.Iceberg().Schema().FindFieldByName("note"); !ok {
		t.Fatal("the evolved schema has no column note")
	}
	reloaded, _, err := e.cat.Load(e.ctx, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reloaded.Iceberg().Schema().FindFieldByName("note"); !ok {
		t.Fatal("the schema change is not in the table S3 Tables points at")
	}
	stored, _ := reloaded.Schema()
	ib, vb, nb := array.NewInt32Builder(memory.DefaultAllocator), array.NewStringBuilder(memory.DefaultAllocator), array.NewStringBuilder(memory.DefaultAllocator)
	ib.Append(6)
	vb.Append("f")
	nb.Append("noted")
	rec := array.NewRecordBatch(stored, []arrow.Array{ib.NewArray(), vb.NewArray(), nb.NewArray()}, 1)
	p, err := e.cat.Prepare(e.ctx, reloaded, catalog.Change{Records: func(yield func(arrow.RecordBatch, error) bool) { yield(rec, nil) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.Commit(e.ctx, p, e.token(), nil); err != nil {
		t.Fatal(err)
	}
	want[6] = "f"
	e.check("after the schema change", want)

	// Every file of the table is in its warehouse location.
	cur, _, err := e.cat.Load(e.ctx, e.name)
	if err != nil {
		t.Fatal(err)
	}
	for f, err := range cur.Iceberg().AllManifests(e.ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(f.FilePath(), wh+"/metadata/") {
			t.Errorf("manifest %s outside %s/metadata", f.FilePath(), wh)
		}
	}
	tasks, err := cur.Iceberg().Scan().PlanFiles(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if !strings.HasPrefix(task.File.FilePath(), wh+"/data/") {
			t.Errorf("data file %s outside %s/data", task.File.FilePath(), wh)
		}
	}

	// Maintenance commits go through the same path (forced on a managed
	// table): a compaction that folds the deletes, then snapshot expiry.
	compacted, res, err := e.cat.Compact(e.ctx, cur, catalog.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshot == 0 || res.DeletedRows == 0 {
		t.Errorf("compaction %+v: want a snapshot folding the deleted rows", res)
	}
	summary = e.check("after compaction", want)
	if summary[catalog.KeyMaintenance] != "compact" {
		t.Errorf("summary after compaction %v", summary)
	}
	expired, er, err := e.cat.ExpireSnapshots(e.ctx, compacted, catalog.ExpireOptions{OlderThan: 1, RetainLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(er.Expired) == 0 || snapshots(expired) >= snapshots(compacted) {
		t.Errorf("expiry %+v: %d snapshots before, %d after", er, snapshots(compacted), snapshots(expired))
	}
	e.check("after expiry", want)
	final, _, err := other.Load(e.ctx, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if final.LastToken() != fmt.Sprintf("run-%d", e.runs) || final.MetadataLocation() != expired.MetadataLocation() {
		t.Errorf("after maintenance: token %q at %s, want run-%d at %s", final.LastToken(), final.MetadataLocation(), e.runs, expired.MetadataLocation())
	}
}

// Another writer moves the table's version token between a run's load and
// its commit: the commit is refused as ErrCommitConflict, the other
// writer's commit stands, nothing of the run is in the table, and the run
// planned again commits. Two movers: a compaction that rewrites the data
// files the run's position deletes point at (what S3 Tables' managed
// compaction does), and a bare move to a copy of the same metadata, which
// no Iceberg requirement notices: only the version token read at load does.
func TestS3TablesConflictingCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		move func(e *s3tEnv)
	}{
		{"compaction", func(e *s3tEnv) {
			other := e.open(nil)
			tbl, _, err := other.Load(e.ctx, e.name)
			if err != nil {
				e.t.Fatal(err)
			}
			if _, res, err := other.Compact(e.ctx, tbl, catalog.CompactOptions{}); err != nil || len(res.Rewritten) < 2 {
				e.t.Fatalf("compaction by the other writer: %+v, %v", res, err)
			}
		}},
		{"token only", func(e *s3tEnv) {
			ptr := e.pointer()
			cur := aws.ToString(ptr.MetadataLocation)
			body, err := e.fetch(e.ctx, cur)
			if err != nil {
				e.t.Fatal(err)
			}
			copyLoc := aws.ToString(ptr.WarehouseLocation) + "/metadata/00099-" + uuid.NewString() + ".metadata.json"
			bucket, key, _ := strings.Cut(strings.TrimPrefix(copyLoc, "s3://"), "/")
			if _, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
				e.t.Fatal(err)
			}
			if _, err := e.raw.UpdateTableMetadataLocation(e.ctx, &s3tables.UpdateTableMetadataLocationInput{TableBucketARN: aws.String(e.tb.ARN),
				Namespace: aws.String("test_db"), Name: aws.String("users"), VersionToken: ptr.VersionToken, MetadataLocation: aws.String(copyLoc)}); err != nil {
				e.t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newS3TablesEnv(t)
			e.create()
			want := map[int32]string{1: "a", 2: "b", 3: "c"}
			e.commit(e.cat, want)
			e.commit(e.cat, map[int32]string{4: "d"}) // a second data file, for the compaction
			want[4] = "d"

			tbl, _, err := e.cat.Load(e.ctx, e.name)
			if err != nil {
				t.Fatal(err)
			}
			p := e.prepare(e.cat, tbl, map[int32]string{2: "b2"}, 1)
			tc.move(e)
			moved := e.pointer()
			before := e.check("after the other writer", want)

			_, err = e.cat.Commit(e.ctx, p, "run-lost", map[string]string{catalog.KeyRunID: "run-lost"})
			if !errors.Is(err, catalog.ErrCommitConflict) || !errors.Is(err, table.ErrCommitFailed) {
				t.Fatalf("commit after another writer moved the table: %v, want ErrCommitConflict", err)
			}
			t.Logf("conflict: %v", err)
			if now := e.pointer(); aws.ToString(now.MetadataLocation) != aws.ToString(moved.MetadataLocation) || aws.ToString(now.VersionToken) != aws.ToString(moved.VersionToken) {
				t.Errorf("the refused commit moved the table to %s", aws.ToString(now.MetadataLocation))
			}
			if after := e.check("after the conflict", want); !reflect.DeepEqual(after, before) {
				t.Errorf("current snapshot %v, want the other writer's %v", after, before)
			}

			// The run plans again against the table as it now is.
			e.commit(e.cat, map[int32]string{2: "b2"}, 1)
			want[2] = "b2"
			delete(want, 1)
			if s := e.check("after the re-planned run", want); s[catalog.KeyToken] != fmt.Sprintf("run-%d", e.runs) {
				t.Errorf("summary %v", s)
			}
		})
	}
}

// The answer to the commit's UpdateTableMetadataLocation is lost after S3
// Tables applied it. Once: the SDK's retry presents the old token, is
// refused as stale, and the catalog sees the table points at its own new
// metadata. Every attempt: the outcome is unknown, and Commit reloads the
// table and finds the run's token. Either way the run succeeds with
// exactly one snapshot and the rows once.
func TestS3TablesLostCommitAnswer(t *testing.T) {
	for _, tc := range []struct {
		times int
		log   string // how the catalog found out
	}{
		{1, "an earlier attempt committed and its answer was lost"},
		{testservers.RetryMaxAttempts, "the table shows this run's token"},
	} {
		times := tc.times
		t.Run(fmt.Sprintf("%d of %d answers lost", times, testservers.RetryMaxAttempts), func(t *testing.T) {
			e := newS3TablesEnv(t)
			e.create()
			want := map[int32]string{1: "a", 2: "b"}
			e.commit(e.cat, want)

			tbl, _, err := e.cat.Load(e.ctx, e.name)
			if err != nil {
				t.Fatal(err)
			}
			before := snapshots(tbl)
			p := e.prepare(e.cat, tbl, map[int32]string{2: "b2", 3: "c"})
			e.ft.Add(testservers.Rule{Name: "lost", Match: testservers.MatchS3Tables("UpdateTableMetadataLocation"), Action: testservers.FailAfter, Times: times})
			out, err := e.cat.Commit(e.ctx, p, "run-x", map[string]string{catalog.KeyRunID: "run-x"})
			if err != nil {
				t.Fatalf("commit whose answer was lost: %v (requests %v)", err, e.ft.Requests())
			}
			if e.ft.Hits("lost") != times {
				t.Fatalf("%d answers lost, want %d", e.ft.Hits("lost"), times)
			}
			if !strings.Contains(e.logs.String(), tc.log) {
				t.Errorf("the catalog's log does not say %q:\n%s", tc.log, e.logs)
			}
			want[2], want[3] = "b2", "c"
			if s := e.check("after the lost answer", want); s[catalog.KeyToken] != "run-x" {
				t.Errorf("summary %v, want the run's token", s)
			}
			if out.LastToken() != "run-x" || snapshots(out) != before+1 {
				t.Errorf("returned table: token %q, %d snapshots; want run-x and %d", out.LastToken(), snapshots(out), before+1)
			}
			// The table the run goes on with commits again (maintenance
			// after the run, the next batch of a long run).
			e.ft.Reset()
			next := e.prepare(e.cat, out, map[int32]string{4: "d"})
			if _, err := e.cat.Commit(e.ctx, next, "run-y", nil); err != nil {
				t.Fatalf("the next commit on the returned table: %v", err)
			}
			want[4] = "d"
			e.check("after the next commit", want)
		})
	}
}

// The commit's UpdateTableMetadataLocation never reaches S3 Tables: the
// run fails without claiming a conflict, the table is as before, and a
// rerun commits.
func TestS3TablesCommitNotSent(t *testing.T) {
	e := newS3TablesEnv(t)
	e.create()
	want := map[int32]string{1: "a"}
	e.commit(e.cat, want)
	tbl, _, err := e.cat.Load(e.ctx, e.name)
	if err != nil {
		t.Fatal(err)
	}
	before := e.pointer()
	p := e.prepare(e.cat, tbl, map[int32]string{2: "b"})
	e.ft.Add(testservers.Rule{Name: "down", Match: testservers.MatchS3Tables("UpdateTableMetadataLocation"), Action: testservers.FailBefore})
	_, err = e.cat.Commit(e.ctx, p, "run-x", nil)
	if err == nil || errors.Is(err, catalog.ErrCommitConflict) || !errors.Is(err, testservers.ErrInjected) {
		t.Fatalf("commit that never reached S3 Tables: %v, want the transport's error and no conflict", err)
	}
	t.Logf("error: %v", err)
	if e.ft.Hits("down") != testservers.RetryMaxAttempts {
		t.Errorf("%d attempts, want the SDK's %d", e.ft.Hits("down"), testservers.RetryMaxAttempts)
	}
	if now := e.pointer(); aws.ToString(now.MetadataLocation) != aws.ToString(before.MetadataLocation) || aws.ToString(now.VersionToken) != aws.ToString(before.VersionToken) {
		t.Errorf("the table moved to %s", aws.ToString(now.MetadataLocation))
	}
	if s := e.check("after the failed commit", want); s[catalog.KeyToken] != "run-1" {
		t.Errorf("summary %v", s)
	}
	e.ft.Reset()
	e.commit(e.cat, map[int32]string{2: "b"})
	want[2] = "b"
	e.check("after the rerun", want)
}

// A creation interrupted between CreateTable and the first metadata
// location leaves a table without metadata: Load reports it missing, and
// creating it again completes it in the warehouse location S3 Tables gave
// it.
func TestS3TablesInterruptedCreate(t *testing.T) {
	e := newS3TablesEnv(t)
	e.ft.Add(testservers.Rule{Name: "down", Match: testservers.MatchS3Tables("UpdateTableMetadataLocation"), Action: testservers.FailBefore})
	if _, err := e.cat.Create(e.ctx, e.name, s3tSchema, []string{"id"}, nil); err == nil {
		t.Fatal("creation without its first metadata location succeeded")
	}
	half := e.pointer()
	if half.MetadataLocation != nil {
		t.Fatalf("interrupted creation left metadata %s", aws.ToString(half.MetadataLocation))
	}
	e.ft.Reset()
	if _, ok, err := e.cat.Load(e.ctx, e.name); ok || err != nil {
		t.Fatalf("load of the half-created table: exists %v, %v; want not found", ok, err)
	}
	tbl := e.create()
	if tbl.Location() != aws.ToString(half.WarehouseLocation) {
		t.Errorf("completed at %s, want the warehouse location %s", tbl.Location(), aws.ToString(half.WarehouseLocation))
	}
	want := map[int32]string{1: "a"}
	e.commit(e.cat, want)
	e.check("after completing the creation", want)
}

// Settings and names S3 Tables refuses are refused before any request,
// saying what to use.
func TestS3TablesOpenErrors(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// No request is meant to leave; if one does, it meets a closed local
	// port, never AWS.
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"), Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
	for _, arn := range []string{"", "arn:aws:s3:::bucket", "arn:aws:s3tables:us-east-1:123:bucket/x1", "arn:aws:s3tables:us-east-1:123456789012:bucket/Upper"} {
		_, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindS3Tables, TableBucketARN: arn, AWS: &cfg}, log)
		if err == nil || !strings.Contains(err.Error(), "arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME") {
			t.Errorf("ARN %q: %v", arn, err)
		}
	}
	if _, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindS3Tables, TableBucketARN: "arn:aws:s3tables:eu-west-1:123456789012:bucket/lake"}, log); err == nil {
		t.Error("opened without an AWS configuration")
	}
	region, bucket, err := catalog.ParseTableBucketARN("arn:aws:s3tables:eu-west-1:123456789012:bucket/my-lake")
	if err != nil || region != "eu-west-1" || bucket != "my-lake" {
		t.Errorf("ParseTableBucketARN: %q %q %v", region, bucket, err)
	}
	cat, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindS3Tables, TableBucketARN: "arn:aws:s3tables:eu-west-1:123456789012:bucket/lake", AWS: &cfg}, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, ident := range []table.Identifier{{"test-db", "users"}, {"test_db", "Users"}, {"a", "b", "c"}} {
		_, err := cat.LoadTable(context.Background(), ident)
		if !errors.Is(err, icecat.ErrInvalidIdentifier) || (len(ident) == 2 && !strings.Contains(err.Error(), "lower-case letters, digits and underscores")) {
			t.Errorf("table %v: %v", ident, err)
		}
	}
	sqlCat := openURI(t, t.TempDir()+"/c.db")
	if sqlCat.Managed() {
		t.Error("the sql catalog says its tables are managed")
	}
}
