package icemerge

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// newS3TablesEnv is a table's world on Amazon S3 Tables, as moto emulates
// it: the table in a table bucket (--catalog s3tables), the DMS folder in a
// bucket of moto's S3, the bookmarks in a local folder (--bookmark). The
// AWS configuration is the product's (LoadAWS, from the standard
// variables), its transport decorated for fault injection and for moto's
// deviations from the S3 Tables API (testservers.MotoS3TablesFixes).
func newS3TablesEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	g := testservers.Moto(t)
	tb := g.NewTableBucket(t)
	for k, v := range g.S3TablesEnv() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := &env{t: t, backend: "moto-s3tables", dir: dir, ctx: t.Context()}
	awsCfg, err := LoadAWS(e.ctx, AWSOptions{
		Wrap: func(rt http.RoundTripper) http.RoundTripper {
			e.faults = testservers.NewFaultTransport(afterHook{e: e, base: testservers.MotoS3TablesFixes(rt)})
			return e.faults
		},
		MaxBackoff:     100 * time.Millisecond,
		AttemptTimeout: testAttemptTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.aws = awsCfg
	e.s3 = s3.NewFromConfig(*awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	e.bucket = "raw-" + strings.ToLower(strings.ReplaceAll(tb.Name, "_", "-"))
	if len(e.bucket) > 63 {
		e.bucket = e.bucket[:63]
	}
	e.bucket = strings.TrimRight(e.bucket, "-")
	if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(e.bucket)}); err != nil {
		t.Fatalf("creating the source bucket on moto: %v", err)
	}
	e.opts = NewRunOptions()
	e.opts.Common = Common{Table: "test_db.users", Catalog: catalog.KindS3Tables, TableBucketARN: tb.ARN,
		Bookmark: "file://" + filepath.Join(dir, "bookmarks")}
	e.opts.Source = "s3://" + e.bucket + "/" + srcPrefix
	e.opts.Keys = []string{"user_id"}
	e.opts.LockTTL = time.Minute
	if err := e.opts.Complete(func(k string) (string, bool) { v, ok := g.S3TablesEnv()[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := e.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	return e
}

// Runs on a table in an S3 table bucket: created by the first run, the
// users example applied once, the snapshots carrying the runs' tokens and
// the bookmark (in its own folder) agreeing with the table.
func TestS3TablesRun(t *testing.T) {
	e := newS3TablesEnv(t)
	if !e.cat.Managed() {
		t.Error("the s3tables catalog is not managed")
	}
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if res := e.run(); !res.Created || res.Outcome != OutcomeCommitted || res.Plan.WriteRows != 5 {
		t.Fatalf("first run: created %v, %s, %d rows; want a new table with 5 rows", res.Created, res.Outcome, res.Plan.WriteRows)
	}
	tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tbl.Location(), "s3://") || !strings.HasSuffix(tbl.Location(), "--table-s3") {
		t.Errorf("the table is at %s, want the location S3 Tables gave it (s3://…--table-s3)", tbl.Location())
	}
	e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")
	e.run()
	if res := e.run(); res.Outcome != OutcomeNothingNew {
		t.Errorf("third run: %s, want nothing new", res.Outcome)
	}
	checkUsersExactlyOnce(t, e)
}

// usersColumns are the columns of the users example, as DMS writes them.
var usersColumns = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32}, {Name: "first_name", Type: dmstest.String}, {Name: "last_name", Type: dmstest.String},
	{Name: "email", Type: dmstest.String}, {Name: "created_at", Type: dmstest.Timestamp}, {Name: "updated_at", Type: dmstest.Timestamp},
}

// S3 Tables compacts a table on its own schedule: here between a run's
// plan and its commit, rewriting the data file the run's position deletes
// point at. The run's commit is refused (the table's version token moved),
// the run re-plans against the compacted table and commits; every change is
// applied once, and the compaction's snapshot stands between the runs'.
func TestS3TablesManagedCompactionDuringRun(t *testing.T) {
	e := newS3TablesEnv(t)
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	ts := time.Date(2024, 8, 14, 0, 10, 0, 0, time.UTC)
	e.putDMS("20240814-001000000.parquet", usersColumns, []string{"I"},
		[]dmstest.Row{{int32(7), "user", "6", "user6@example.com", ts, ts}}, dmstest.DMSOptions())
	e.run() // a second data file: the table has two small files to compact
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")

	// The other writer: another process on the same table bucket.
	_, other, err := Open(e.ctx, e.opts.Common, "", e.aws, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	compactions := 0
	d := e.deps(hookStore{Store: e.store, onPending: func() {
		if compactions > 0 {
			return
		}
		compactions++
		tbl, _, err := other.Catalog.Load(e.ctx, e.opts.Table)
		if err != nil {
			t.Error(err)
			return
		}
		if _, r, err := other.Catalog.Compact(e.ctx, tbl, catalog.CompactOptions{}); err != nil || len(r.Rewritten) != 2 {
			t.Errorf("the managed compaction: %+v, %v; want both data files rewritten", r, err)
		}
	}})
	res, err := e.merge(d)
	if err != nil {
		t.Fatalf("run meeting a compaction: %v", err)
	}
	if compactions != 1 || res.Attempts != 2 {
		t.Fatalf("%d compactions, %d commit attempts; want the first commit refused and a second", compactions, res.Attempts)
	}
	rows := byKey(e.table().Rows, "user_id")
	if len(rows) != 6 || rows["1"]["email"] != "update-user0@example.com" || rows["4"] != nil || rows["6"] == nil || rows["7"] == nil {
		t.Errorf("rows %v: want users 1 (updated), 2, 3, 5, 6, 7", rows)
	}
	runs, files, maintenance := 0, 0, 0
	for _, s := range e.snapshotSummaries() {
		if s[catalog.KeyMaintenance] != "" {
			maintenance++
		}
		if s[catalog.KeyToken] != "" && s[catalog.KeyRunID] == s[catalog.KeyToken] {
			runs++
			n, _ := strconv.Atoi(s[catalog.KeySourceFiles])
			files += n
		}
	}
	if runs != 3 || files != 3 || maintenance != 1 {
		t.Errorf("%d icemerge snapshots consuming %d files, %d compactions; want 3, 3, 1", runs, files, maintenance)
	}
	tbl, _, _ := e.cat.Load(e.ctx, e.opts.Table)
	if bm := e.bookmark(); bm.Pending != nil || len(bm.Files) != 3 || bm.Token != tbl.LastToken() {
		t.Errorf("bookmark: pending %v, %d files, token %q vs table %q", bm.Pending, len(bm.Files), bm.Token, tbl.LastToken())
	}
}

// For every point where a run writes, in-process: the run crashes there
// or loses the answer, then reruns apply every change exactly once.
func TestS3TablesCrashAtEveryWritePointInProcess(t *testing.T) {
	for _, p := range inProcessPoints {
		for _, action := range p.actions {
			t.Run(fmt.Sprintf("%s/%v", p.name, action), func(t *testing.T) {
				e := newS3TablesEnv(t)
				e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
				e.run()
				before := e.snapshotID()
				e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")
				f := &faults{point: p.name, action: action}
				_, err := e.merge(e.faultyDeps(f))
				if f.hits == 0 || !errors.Is(err, errInjected) {
					t.Fatalf("the faulted run: %v (fault fired %d times), want the injected fault", err, f.hits)
				}
				committed := e.snapshotID() != before
				if mayCommit := p.name == "bookmark done" || (p.name == "catalog commit" && action == failAfter); committed != mayCommit {
					t.Errorf("the faulted run failed (%v); committed %v, want %v", err, committed, mayCommit)
				}
				e.run()
				e.run()
				checkUsersExactlyOnce(t, e)
			})
		}
	}
}

// The requests by which a run writes to S3 Tables and its storage (the
// bookmarks are local here: the in-process test covers them).
var s3TablesWritePoints = []struct {
	name  string
	match func(*http.Request) bool
}{
	{"data file", func(r *http.Request) bool {
		return put(`--table-s3/data/[^/]+\.parquet$`)(r) && !strings.HasSuffix(r.URL.Path, "-deletes.parquet")
	}},
	{"position delete file", put(`--table-s3/data/[^/]+-deletes\.parquet$`)},
	{"manifest", put(`--table-s3/metadata/[^/]*-m[0-9]+\.avro$`)},
	{"manifest list", put(`--table-s3/metadata/snap-[^/]*\.avro$`)},
	{"table metadata", put(`--table-s3/metadata/[^/]*\.metadata\.json$`)},
	{"catalog commit", testservers.MatchS3Tables("UpdateTableMetadataLocation")},
}

// For every request by which a run writes, the request never leaves, or
// its answer is lost after the server acted; then reruns apply every
// change exactly once.
func TestS3TablesCrashAtEveryWritePoint(t *testing.T) {
	for _, wp := range s3TablesWritePoints {
		for _, action := range []testservers.Action{testservers.FailBefore, testservers.FailAfter} {
			t.Run(fmt.Sprintf("%s/%v", wp.name, action), func(t *testing.T) {
				e := newS3TablesEnv(t)
				e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
				e.run()
				before := e.snapshotID()
				e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")
				// Every attempt of the request fails: the SDK's retries too.
				e.faults.Add(testservers.Rule{Name: wp.name, Match: wp.match, Action: action})
				_, err := e.merge(e.deps(nil))
				hits := e.faults.Hits(wp.name)
				e.faults.Reset()
				if hits == 0 {
					t.Fatalf("the fault never fired (run: %v)", err)
				}
				t.Logf("faulted run (%d faults): %v", hits, err)
				committed := e.snapshotID() != before
				switch {
				case wp.name == "catalog commit" && action == testservers.FailAfter:
					// The catalog finds its own commit: the run succeeds.
					if err != nil || !committed {
						t.Errorf("a commit whose answers were lost: %v, committed %v; want success", err, committed)
					}
				case err == nil || committed:
					t.Errorf("the faulted run: %v, committed %v; want a failure and no commit", err, committed)
				}
				e.run()
				e.run()
				checkUsersExactlyOnce(t, e)
			})
		}
	}
}

// maintain on an S3 Tables table leaves compaction, expiry and orphans to
// S3 Tables unless --force-managed (orphans even then), runs the rest, and
// refuses a maintenance whose every step is declined.
func TestS3TablesMaintainDeclinesManagedSteps(t *testing.T) {
	e := newS3TablesEnv(t)
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	e.run()
	o := NewMaintainOptions()
	o.Common = e.opts.Common
	res, err := Maintain(e.ctx, o, e.deps(nil))
	if err != nil {
		t.Fatalf("maintain with the default steps: %v", err)
	}
	if res.Compact != nil || res.Expire != nil || res.Orphans != nil || res.Manifests == nil || len(res.Declined) != 3 {
		t.Errorf("default steps: compact %v, expire %v, orphans %v, manifests %v, declined %v; want only manifests run", res.Compact, res.Expire, res.Orphans, res.Manifests, res.Declined)
	}
	var out bytes.Buffer
	WriteMaintain(&out, res)
	if !strings.Contains(out.String(), "compact declined: the catalog does this itself; pass --force-managed") ||
		!strings.Contains(out.String(), "orphans declined") {
		t.Errorf("maintain output:\n%s", out.String())
	}
	if rep := MaintainReportOf(o, time.Now(), res, nil); !reflect.DeepEqual(rep.Declined, res.Declined) {
		t.Errorf("report declined %v", rep.Declined)
	}

	before := e.snapshotID()
	for _, steps := range [][]string{{StepCompact}, {StepOrphans}, {StepExpire, StepOrphans}} {
		o.Steps = steps
		_, err := Maintain(e.ctx, o, e.deps(nil))
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "declined") {
			t.Errorf("maintain --only %v: %v, want a usage error saying they are declined", steps, err)
		}
	}
	o.Steps, o.ForceManaged = []string{StepOrphans}, true
	if _, err := Maintain(e.ctx, o, e.deps(nil)); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "no listing or delete") {
		t.Errorf("--only orphans --force-managed: %v, want orphans refused outright", err)
	}
	if e.snapshotID() != before {
		t.Errorf("a declined maintenance committed")
	}
	o.Steps = []string{StepCompact, StepExpire, StepOrphans}
	res, err = Maintain(e.ctx, o, e.deps(nil))
	if err != nil || res.Compact == nil || res.Compact.Snapshot == 0 || res.Expire == nil || res.Orphans != nil {
		t.Fatalf("--force-managed: %+v, %v; want compaction and expiry run, orphans declined", res, err)
	}
	checkRows(t, e)
}

// The s3tables settings are checked before any I/O: a table bucket ARN,
// a bookmark folder, no warehouse; and no end-of-run compaction, which S3
// Tables does itself.
func TestS3TablesOptions(t *testing.T) {
	const arn = "arn:aws:s3tables:eu-west-1:123456789012:bucket/lake"
	env := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name   string
		change func(o *RunOptions)
		want   []string // parts of the error; none: valid
	}{
		{"valid", func(o *RunOptions) {}, nil},
		{"local bookmark", func(o *RunOptions) { o.Bookmark = "/var/lib/icemerge" }, nil},
		{"no ARN", func(o *RunOptions) { o.TableBucketARN = "" }, []string{"--table-bucket-arn is required with --catalog s3tables"}},
		{"bad ARN", func(o *RunOptions) { o.TableBucketARN = "arn:aws:s3:::lake" }, []string{"--table-bucket-arn", "arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME"}},
		{"warehouse", func(o *RunOptions) { o.Warehouse = "s3://lake/warehouse" }, []string{"--warehouse s3://lake/warehouse does not apply to --catalog s3tables"}},
		{"no bookmark", func(o *RunOptions) { o.Bookmark = "" }, []string{"--bookmark is required with --catalog s3tables"}},
		{"compaction after runs", func(o *RunOptions) { o.CompactWhenDeletes = 10 }, []string{"do not apply to --catalog s3tables"}},
		{"ARN with glue", func(o *RunOptions) { o.Catalog = catalog.KindGlue; o.Warehouse = "s3://lake/wh" }, []string{"--table-bucket-arn is for --catalog s3tables"}},
	} {
		o := NewRunOptions()
		o.Common = Common{Table: "test_db.users", Catalog: catalog.KindS3Tables, TableBucketARN: arn, Bookmark: "s3://lake/icemerge"}
		o.Source = "s3://dms/raw_input/test_db/users/"
		tc.change(&o)
		if err := o.Complete(env); err != nil {
			t.Fatal(err)
		}
		if o.Catalog == catalog.KindS3Tables && (o.Warehouse != "" && tc.name != "warehouse") {
			t.Errorf("%s: Complete filled --warehouse %s", tc.name, o.Warehouse)
		}
		err := o.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if !o.needsAWS("") {
				t.Errorf("%s: the settings do not need AWS", tc.name)
			}
			continue
		}
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%s: %v, want a usage error", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", tc.name, err, w)
			}
		}
	}
}
