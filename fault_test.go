package icemerge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// snapshotSummaries lists the summaries of every snapshot in the table's
// metadata, oldest first.
func (e *env) snapshotSummaries() []map[string]string {
	e.t.Helper()
	tbl, ok, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil || !ok {
		e.t.Fatalf("loading the table: %v (exists %v)", err, ok)
	}
	b, err := e.fetch(e.ctx, tbl.MetadataLocation())
	if err != nil {
		e.t.Fatal(err)
	}
	var md struct {
		Snapshots []struct {
			Summary map[string]string `json:"summary"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal(b, &md); err != nil {
		e.t.Fatal(err)
	}
	var out []map[string]string
	for _, s := range md.Snapshots {
		out = append(out, s.Summary)
	}
	return out
}

// checkUsersExactlyOnce checks the users example was applied exactly once:
// the right rows, one icemerge snapshot per applied file and run, and a
// bookmark that agrees with the table.
func checkUsersExactlyOnce(t *testing.T, e *env) {
	t.Helper()
	rows := byKey(e.table().Rows, "user_id")
	var ids []string
	for _, id := range []string{"1", "2", "3", "4", "5", "6"} {
		if _, ok := rows[id]; ok {
			ids = append(ids, id)
		}
	}
	if got := strings.Join(ids, ","); got != "1,2,3,5,6" || len(rows) != 5 || rows["1"]["email"] != "update-user0@example.com" {
		t.Errorf("users %s (%d rows), user 1 email %v; want 1,2,3,5,6 and the updated email", got, len(rows), rows["1"]["email"])
	}
	runs, files := 0, 0
	for _, s := range e.snapshotSummaries() {
		if s[catalog.KeyToken] == "" {
			continue
		}
		runs++
		n, _ := strconv.Atoi(s[catalog.KeySourceFiles])
		files += n
	}
	if runs != 2 || files != 2 {
		t.Errorf("%d icemerge snapshots consumed %d files; want 2 snapshots, each file once", runs, files)
	}
	bm := e.bookmark()
	tbl, _, _ := e.cat.Load(e.ctx, e.opts.Table)
	if bm.Pending != nil || len(bm.Files) != 2 || bm.Token != tbl.LastToken() {
		t.Errorf("bookmark: pending %v, %d files, token %q vs table %q", bm.Pending, len(bm.Files), bm.Token, tbl.LastToken())
	}
}

// flaky matches the first n attempts of every distinct request.
func flaky(n int, match func(*http.Request) bool) func(*http.Request) bool {
	var mu sync.Mutex
	seen := map[string]int{}
	return func(r *http.Request) bool {
		if !match(r) {
			return false
		}
		k := r.Method + " " + r.URL.String()
		mu.Lock()
		defer mu.Unlock()
		seen[k]++
		return seen[k] <= n
	}
}

// checkRows checks the users example's final rows.
func checkRows(t *testing.T, e *env) {
	t.Helper()
	rows := byKey(e.table().Rows, "user_id")
	if len(rows) != 5 || rows["1"]["email"] != "update-user0@example.com" || rows["4"] != nil || rows["6"] == nil {
		t.Errorf("rows %v: want users 1 (updated), 2, 3, 5, 6", rows)
	}
}

func put(pathRe string) func(*http.Request) bool {
	re := regexp.MustCompile(pathRe)
	return func(r *http.Request) bool { return r.Method == http.MethodPut && re.MatchString(r.URL.Path) }
}

// The write points of a run, as the requests that make them.
var writePoints = []struct {
	name  string
	match func(*http.Request) bool
	skip  int
	glue  bool // only with the Glue catalog
}{
	{name: "data file", match: func(r *http.Request) bool {
		return put(`/warehouse/.*/data/[^/]+\.parquet$`)(r) && !strings.HasSuffix(r.URL.Path, "-deletes.parquet")
	}},
	{name: "position delete file", match: put(`-deletes\.parquet$`)},
	{name: "manifest", match: put(`/metadata/[^/]*-m[0-9]+\.avro$`)},
	{name: "manifest list", match: put(`/metadata/snap-[^/]*\.avro$`)},
	{name: "table metadata", match: put(`/metadata/[^/]*\.metadata\.json$`)},
	{name: "catalog commit", match: testservers.MatchGlue("AWSGlue.UpdateTable"), glue: true},
	{name: "bookmark pending", match: put(`/_icemerge/.*/bookmark\.json\.gz$`)},
	{name: "bookmark done", match: put(`/_icemerge/.*/bookmark\.json\.gz$`), skip: 1},
	{name: "lock", match: put(`/_icemerge/.*/lock\.json$`)},
}

// For every point where a run writes, crash the run right there (the
// request never leaves) or lose the answer (the server acted, the client
// got an error), then rerun: every change is applied exactly once and no
// two snapshots consume the same file.
func TestCrashAtEveryWritePoint(t *testing.T) {
	for _, backend := range []string{"minio-sql", "minio-glue"} {
		for _, wp := range writePoints {
			if wp.glue && backend != "minio-glue" {
				continue
			}
			for _, action := range []testservers.Action{testservers.FailBefore, testservers.FailAfter} {
				t.Run(fmt.Sprintf("%s/%s/%v", backend, wp.name, action), func(t *testing.T) {
					e := newEnv(t, backend)
					e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
					e.run()
					before := e.snapshotID()
					e.copyFixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")

					e.faults.Add(testservers.Rule{Name: wp.name, Match: wp.match, Action: action, Skip: wp.skip, Times: 1})
					_, err := e.merge(e.deps(nil))
					if e.faults.Hits(wp.name) == 0 {
						t.Fatalf("the fault never fired; requests: %v", e.faults.Requests())
					}
					t.Logf("faulted run: %v", err)
					if err != nil && e.snapshotID() != before && wp.name != "bookmark done" {
						// A failed run may only have committed if the
						// fault hit after the commit.
						if !(wp.name == "catalog commit" && action == testservers.FailAfter) {
							t.Errorf("the run failed (%v) but committed a snapshot", err)
						}
					}
					e.faults.Reset()
					e.run()
					e.run() // and once more: nothing new
					checkUsersExactlyOnce(t, e)
				})
			}
		}
	}
}

// A Glue UpdateTable that succeeds, answered with an error that the SDK
// retries, whose retry meets ConcurrentModificationException (real Glue
// answers so when the first attempt's update is already in the catalog):
// the run reloads the table, finds its own token and reports success; the
// table stays readable (the new metadata file is not deleted).
func TestGlueCommitSucceedsButRetryReportsConflict(t *testing.T) {
	e := newEnv(t, "minio-glue")
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")

	var once sync.Once
	lost := false
	e.after = func(req *http.Request, resp *http.Response) (*http.Response, error) {
		if req.Header.Get("X-Amz-Target") != "AWSGlue.UpdateTable" || resp.StatusCode != http.StatusOK {
			return resp, nil
		}
		replaced := resp
		once.Do(func() {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lost = true
			replaced = &http.Response{StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
				Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}, Request: req,
				Body: io.NopCloser(strings.NewReader(`{"__type":"InternalServiceException","message":"lost"}`))}
		})
		return replaced, nil
	}
	e.faults.Add(testservers.Rule{Name: "cme", Match: testservers.MatchGlue("AWSGlue.UpdateTable"), Skip: 1, Times: 1,
		Action: testservers.Status, Status: http.StatusBadRequest,
		Body: testservers.GlueErrorBody("ConcurrentModificationException", "Update table failed due to concurrent modifications.")})

	res, err := e.merge(e.deps(nil))
	if err != nil {
		t.Fatalf("run: %v (requests %v)", err, e.faults.Requests())
	}
	if !lost || e.faults.Hits("cme") != 1 {
		t.Fatalf("scenario did not happen: lost %v, cme %d", lost, e.faults.Hits("cme"))
	}
	if res.Attempts != 1 {
		t.Errorf("%d commit attempts, want 1: the first one committed", res.Attempts)
	}
	e.after = nil
	e.faults.Reset()
	e.run()
	checkUsersExactlyOnce(t, e)
}

// S3 throttling, 500s, dropped connections and timeouts that pass: the run
// succeeds after bounded, backed-off retries.
func TestTransientS3Faults(t *testing.T) {
	slowDown := testservers.S3ErrorBody("SlowDown", "Please reduce your request rate.")
	cases := []testservers.Rule{
		{Name: "503 SlowDown", Action: testservers.Status, Status: http.StatusServiceUnavailable, Body: slowDown},
		{Name: "500", Action: testservers.Status, Status: http.StatusInternalServerError, Body: testservers.S3ErrorBody("InternalError", "We encountered an internal error.")},
		{Name: "dropped connection", Action: testservers.Drop},
		{Name: "timeout", Action: testservers.Hang},
	}
	for _, backend := range []string{"minio-sql", "minio-glue"} {
		for _, rule := range cases {
			t.Run(backend+"/"+rule.Name, func(t *testing.T) {
				if rule.Action == testservers.Hang {
					defer func(d time.Duration) { testAttemptTimeout = d }(testAttemptTimeout)
					testAttemptTimeout = time.Second // each hang costs one attempt timeout
				}
				e := newEnv(t, backend)
				e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
				e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
				// Every S3 request fails twice, then goes through: within the
				// retry budget of every call.
				n := 2
				if rule.Action == testservers.Hang {
					n, rule.Times = 1, 3 // each costs an attempt timeout
				}
				rule.Match = flaky(n, testservers.MatchS3("", ".*"))
				e.faults.Add(rule)
				started := time.Now()
				res := e.run()
				if want := cmp.Or(rule.Times, 10*n); res.Files != 2 || e.faults.Hits(rule.Name) < want {
					t.Errorf("files %d, faults fired %d; want 2 files and two faults on every request", res.Files, e.faults.Hits(rule.Name))
				}
				checkRows(t, e)
				t.Logf("%s: run took %s with %d injected faults", rule.Name, time.Since(started).Round(time.Millisecond), e.faults.Hits(rule.Name))
			})
		}
	}
}

// S3 answering 503 SlowDown to everything: bounded retries, then a clear
// failure; the table and the bookmark are untouched and no multipart upload
// is left open.
func TestPersistentS3Faults(t *testing.T) {
	for _, scope := range []struct {
		name  string
		match func(*http.Request) bool
	}{
		{"every request", testservers.MatchS3("", ".*")},
		{"table writes", put(`/warehouse/.*/(data|metadata)/`)},
	} {
		t.Run(scope.name, func(t *testing.T) {
			e := newEnv(t, "minio-sql")
			e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
			e.run()
			before, bmBefore := e.snapshotID(), e.bookmark()
			e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")

			e.faults.Add(testservers.Rule{Name: "slowdown", Match: scope.match, Action: testservers.Status,
				Status: http.StatusServiceUnavailable, Body: testservers.S3ErrorBody("SlowDown", "Please reduce your request rate.")})
			started := time.Now()
			_, err := e.merge(e.deps(nil))
			took := time.Since(started)
			hits := e.faults.Hits("slowdown")
			e.faults.Reset()
			if err == nil || !strings.Contains(err.Error(), "SlowDown") {
				t.Fatalf("err = %v, want a failure naming SlowDown", err)
			}
			if scope.name == "every request" && hits != RetryMaxAttempts {
				t.Errorf("%d attempts, want %d (bounded retries of the first request)", hits, RetryMaxAttempts)
			}
			t.Logf("failed after %s and %d attempts: %v", took.Round(time.Millisecond), hits, err)
			if e.snapshotID() != before {
				t.Errorf("a snapshot was committed")
			}
			if bm := e.bookmark(); bm.Pending != nil || bm.Token != bmBefore.Token || len(bm.Files) != len(bmBefore.Files) {
				t.Errorf("the bookmark moved: pending %v, token %q → %q", bm.Pending, bmBefore.Token, bm.Token)
			}
			ups, err := e.s3.ListMultipartUploads(e.ctx, &s3.ListMultipartUploadsInput{Bucket: &e.bucket})
			if err != nil {
				t.Fatal(err)
			}
			if len(ups.Uploads) != 0 {
				t.Errorf("%d multipart uploads left open", len(ups.Uploads))
			}
			e.run()
			checkUsersExactlyOnce(t, e)
		})
	}
}

// Two runs of one table at once: exactly one applies the files; the other
// yields with ErrLocked (exit code 3) and applies nothing.
func TestConcurrentRuns(t *testing.T) {
	eachConcurrencyBackend(t, func(t *testing.T, e *env) {
		e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
		e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
		var wg sync.WaitGroup
		results := make([]error, 4)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, results[i] = e.merge(e.deps(nil))
			}()
		}
		wg.Wait()
		ok, locked := 0, 0
		for _, err := range results {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, bookmark.ErrLocked):
				locked++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok < 1 || ok+locked != len(results) {
			t.Errorf("%d succeeded, %d locked out of %d", ok, locked, len(results))
		}
		// Whoever won, the files were applied once, in one snapshot.
		summaries := e.snapshotSummaries()
		if len(summaries) != 1 || summaries[0][catalog.KeySourceFiles] != "2" {
			t.Errorf("snapshots %v: want one consuming both files", summaries)
		}
	})
}

// A run that died holding the lock blocks others only until its lease
// expires; then the next run takes the lock over.
func TestStaleLockIsTakenOver(t *testing.T) {
	for _, b := range []string{"local", "postgres"} {
		t.Run(b, func(t *testing.T) { testStaleLockIsTakenOver(t, newAnyEnv(t, b)) })
	}
}

func testStaleLockIsTakenOver(t *testing.T, e *env) {
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	now := time.Now()
	clock := func() time.Time { return now }
	if _, err := e.store.Lock(e.ctx, "crashed-run", time.Minute, clock); err != nil {
		t.Fatal(err)
	}
	d := e.deps(nil)
	d.Now = clock
	if _, err := e.merge(d); !errors.Is(err, bookmark.ErrLocked) || !strings.Contains(err.Error(), "crashed-run") {
		t.Fatalf("err = %v, want ErrLocked naming the holder", err)
	}
	now = now.Add(2 * time.Minute) // the lease has expired
	if _, err := e.merge(d); err != nil {
		t.Fatalf("after the lease expired: %v", err)
	}
	// The lock is released after a run: the next one gets it at once.
	if _, err := e.merge(d); err != nil {
		t.Fatal(err)
	}
}

// --wait waits for another run to finish instead of yielding.
func TestWaitForTheLock(t *testing.T) {
	for _, b := range []string{"local", "postgres"} {
		t.Run(b, func(t *testing.T) { testWaitForTheLock(t, newAnyEnv(t, b)) })
	}
}

func testWaitForTheLock(t *testing.T, e *env) {
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	lease, err := e.store.Lock(e.ctx, "other-run", time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		lease.Release(context.Background())
	}()
	e.opts.Wait = 30 * time.Second
	started := time.Now()
	if res := e.run(); res.Files != 1 {
		t.Errorf("applied %d files, want 1", res.Files)
	}
	if took := time.Since(started); took < 300*time.Millisecond {
		t.Errorf("the run did not wait (%s)", took)
	}
}

// The logs of a run with static credentials, failing or not, hold no key,
// secret or request signature.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t, "minio-glue")
	var logs strings.Builder
	d := e.deps(nil)
	d.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if _, err := e.merge(d); err != nil {
		t.Fatal(err)
	}
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	e.faults.Add(testservers.Rule{Name: "deny", Match: testservers.MatchGlue("AWSGlue.UpdateTable"), Action: testservers.Status,
		Status: http.StatusForbidden, Body: testservers.GlueErrorBody("AccessDeniedException", "denied")})
	_, err := e.merge(d)
	if err == nil {
		t.Fatal("the denied run succeeded")
	}
	fmt.Fprintln(&logs, err.Error())
	for _, secret := range []string{os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), "Authorization", "X-Amz-Security-Token", "Signature="} {
		if secret != "" && strings.Contains(logs.String(), secret) {
			t.Errorf("the logs hold %q:\n%s", secret, logs.String())
		}
	}
}

// A data file big enough for a multipart upload (over 16 MB) whose parts S3 keeps
// refusing: the run fails, the upload is aborted, the table and bookmark
// are untouched.
func TestFailedMultipartUploadIsAborted(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 60 MB")
	}
	e := newEnv(t, "minio-sql")
	cols := []dmstest.Column{{Name: "id", Type: dmstest.Int32, Required: true}, {Name: "blob", Type: dmstest.String}, {Name: "updated_at", Type: dmstest.Timestamp}}
	r := rand.New(rand.NewPCG(7, 7))
	var rows []dmstest.Row
	var ops []string
	buf := make([]byte, 150)
	for i := range 600_000 { // ~58 MB of Parquet, two data files: each over the 16 MB multipart threshold
		for j := range buf {
			buf[j] = byte('a' + r.IntN(26))
		}
		rows = append(rows, dmstest.Row{int32(i), string(buf), time.Unix(0, 0)})
		ops = append(ops, "I")
	}
	e.opts.Keys = []string{"id"}
	e.putDMS("LOAD00000001.parquet", cols, ops, rows, dmstest.Options{Op: true, Compression: "snappy", RowGroupRows: 100_000})
	e.faults.Add(testservers.Rule{Name: "part", Action: testservers.Status, Status: http.StatusServiceUnavailable,
		Body:  testservers.S3ErrorBody("SlowDown", "Please reduce your request rate."),
		Match: func(r *http.Request) bool { return r.Method == http.MethodPut && r.URL.Query().Has("partNumber") }})
	_, err := e.merge(e.deps(nil))
	if err == nil {
		t.Fatal("the run succeeded although every part upload failed")
	}
	if e.faults.Hits("part") == 0 {
		t.Fatalf("no multipart upload happened (requests: %d, error: %v); make the file bigger", len(e.faults.Requests()), err)
	}
	e.faults.Reset()
	ups, lerr := e.s3.ListMultipartUploads(e.ctx, &s3.ListMultipartUploadsInput{Bucket: &e.bucket})
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open after: %v", len(ups.Uploads), err)
	}
	if tbl := e.table(); tbl != nil && tbl.SnapshotID != 0 {
		t.Errorf("a snapshot was committed")
	}
	if _, v, _ := e.store.Load(e.ctx); v != "" {
		if bm := e.bookmark(); bm.Pending != nil || len(bm.Files) != 0 {
			t.Errorf("the bookmark moved: %+v", bm)
		}
	}
	t.Logf("failed as expected: %v", err)
}
