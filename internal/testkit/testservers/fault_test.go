package testservers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/aws/aws-sdk-go-v2/service/glue/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// faultS3 returns a bucket and an S3 client on MinIO whose requests go
// through ft, plus a client without faults for checking the outcome.
func faultS3(t *testing.T) (bucket string, ft *FaultTransport, faulty, clean *s3.Client) {
	t.Helper()
	s := MinIO(t)
	ft = NewFaultTransport(nil)
	return s.NewBucket(t), ft, s3.NewFromConfig(s.Config(t, &http.Client{Transport: ft})), s3.NewFromConfig(s.Config(t, nil))
}

func putObject(ctx context.Context, c *s3.Client, bucket, key, body string) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	return err
}

// objectBody returns the object's content, or the error code ("NoSuchKey").
func objectBody(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if code := errorCode(err); code != "" {
			return code
		}
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return string(b)
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func TestFaultS3(t *testing.T) {
	t.Parallel()
	const body = "payload 𠮷🙂"
	tests := []struct {
		name      string
		rule      Rule
		wantErr   string // substring of the client's error; "" for success
		wantHits  int
		wantPuts  int
		wantStore string // object content afterwards, or "NoSuchKey"
	}{{
		name: "SlowDownEveryPut",
		rule: Rule{Action: Status, Status: 503,
			Body: S3ErrorBody("SlowDown", "Please reduce your request rate.")},
		wantErr: "SlowDown", wantHits: RetryMaxAttempts, wantPuts: RetryMaxAttempts, wantStore: "NoSuchKey",
	}, {
		name:    "SlowDownOnceThenPass",
		rule:    Rule{Action: Status, Status: 503, Body: S3ErrorBody("SlowDown", "Please reduce your request rate."), Times: 1},
		wantErr: "", wantHits: 1, wantPuts: 2, wantStore: body,
	}, {
		name:    "FailBeforeEveryPut",
		rule:    Rule{Action: FailBefore},
		wantErr: "request not sent", wantHits: RetryMaxAttempts, wantPuts: RetryMaxAttempts, wantStore: "NoSuchKey",
	}, {
		// The outcome-unknown case: the write happened, the client was told
		// it failed (and its retries also happened).
		name:    "FailAfterEveryPut",
		rule:    Rule{Action: FailAfter},
		wantErr: "response was lost", wantHits: RetryMaxAttempts, wantPuts: RetryMaxAttempts, wantStore: body,
	}, {
		name:    "DropOnceThenPass",
		rule:    Rule{Action: Drop, Times: 1},
		wantErr: "", wantHits: 1, wantPuts: 2, wantStore: body,
	}, {
		name:    "SkipFirstPut",
		rule:    Rule{Action: FailBefore, Skip: 1},
		wantErr: "", wantHits: 0, wantPuts: 1, wantStore: body,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bucket, ft, faulty, clean := faultS3(t)
			tc.rule.Name = tc.name
			tc.rule.Match = MatchS3("PUT", "^/"+bucket+"/k$")
			ft.Add(tc.rule)

			begin := time.Now()
			err := putObject(t.Context(), faulty, bucket, "k", body)
			took := time.Since(begin)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("PutObject: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("PutObject: got %v, want an error mentioning %q", err, tc.wantErr)
			}
			if tc.rule.Action != Status && err != nil && !errors.Is(err, ErrInjected) {
				t.Errorf("errors.Is(%v, ErrInjected) = false", err)
			}
			if got := ft.Hits(tc.name); got != tc.wantHits {
				t.Errorf("Hits = %d, want %d; requests %q", got, tc.wantHits, ft.Requests())
			}
			if got := countPrefix(ft.Requests(), "PUT /"+bucket+"/k"); got != tc.wantPuts {
				t.Errorf("PUTs sent = %d, want %d; requests %q", got, tc.wantPuts, ft.Requests())
			}
			if got := objectBody(t, clean, bucket, "k"); got != tc.wantStore {
				t.Errorf("object afterwards = %q, want %q", got, tc.wantStore)
			}
			if took > 3*time.Second {
				t.Errorf("PutObject took %v: retries are meant to be short", took)
			}
			t.Logf("%s in %v: %v", tc.name, took.Round(time.Millisecond), err)
		})
	}
}

func TestFaultHang(t *testing.T) {
	t.Parallel()
	bucket, ft, faulty, clean := faultS3(t)
	if err := putObject(t.Context(), clean, bucket, "k", "v"); err != nil {
		t.Fatal(err)
	}
	ft.Add(Rule{Name: "hang", Match: MatchS3("GET", ""), Action: Hang})

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	begin := time.Now()
	_, err := faulty.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	took := time.Since(begin)
	// The SDK reports a done context as a canceled request wrapping the
	// context's error, dropping the transport's error (and ErrInjected).
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetObject: got %v, want the context's deadline error from the hang", err)
	}
	if took < deadline || took > deadline+2*time.Second {
		t.Errorf("GetObject returned after %v, want just after the %v deadline", took, deadline)
	}
	if got := ft.Hits("hang"); got != 1 {
		t.Errorf("Hits = %d, want 1 (no retry once the context is done)", got)
	}
	t.Logf("Hang ended after %v: %v", took.Round(time.Millisecond), err)
}

func TestFaultDropIsNetError(t *testing.T) {
	t.Parallel()
	ft := NewFaultTransport(nil)
	ft.Add(Rule{Name: "drop", Action: Drop})
	_, err := (&http.Client{Transport: ft}).Get("http://127.0.0.1:9/x")
	var op *net.OpError
	if !errors.As(err, &op) || !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrInjected) {
		t.Fatalf("Drop: got %v (%T), want a *net.OpError wrapping io.ErrUnexpectedEOF", err, err)
	}
}

// TestFaultGlueCommitLost reproduces what real Glue can do: UpdateTable
// succeeds, the response is lost, and the SDK's retry is answered with
// ConcurrentModificationException. The client sees a conflict although its
// own update is in the catalog.
func TestFaultGlueCommitLost(t *testing.T) {
	t.Parallel()
	g := Moto(t)
	ft := NewFaultTransport(nil)
	client := glue.NewFromConfig(AWSConfig(t, nil, g, &http.Client{Transport: ft}))
	db := g.NewDatabase(t)
	ctx := t.Context()
	if _, err := client.CreateTable(ctx, &glue.CreateTableInput{DatabaseName: aws.String(db), TableInput: tableInput("t", "s3://b/m1.json")}); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}

	ft.Add(Rule{Name: "lost", Match: MatchGlue("UpdateTable"), Action: FailAfter, Times: 1})
	ft.Add(Rule{Name: "conflict", Match: MatchGlue("AWSGlue.UpdateTable"), Action: Status, Status: 400,
		Body: GlueErrorBody("ConcurrentModificationException", "Update table failed due to concurrent modifications.")})
	_, err := client.UpdateTable(ctx, &glue.UpdateTableInput{DatabaseName: aws.String(db), TableInput: tableInput("t", "s3://b/m2.json")})
	var cme *types.ConcurrentModificationException
	if !errors.As(err, &cme) {
		t.Fatalf("UpdateTable: got %v, want ConcurrentModificationException; requests %q", err, ft.Requests())
	}
	if ft.Hits("lost") != 1 || ft.Hits("conflict") != 1 {
		t.Errorf("hits lost=%d conflict=%d, want 1 and 1; requests %q", ft.Hits("lost"), ft.Hits("conflict"), ft.Requests())
	}
	out, err := client.GetTable(ctx, &glue.GetTableInput{DatabaseName: aws.String(db), Name: aws.String("t")})
	if err != nil {
		t.Fatalf("GetTable: %v", err)
	}
	if got := out.Table.Parameters["metadata_location"]; got != "s3://b/m2.json" {
		t.Fatalf("metadata_location = %q, want the update the client was told failed", got)
	}
}

// recordingBody reports whether it was read and closed.
type recordingBody struct {
	mu           sync.Mutex
	read, closed bool
	r            io.Reader
}

func (b *recordingBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read = true
	return b.r.Read(p)
}

func (b *recordingBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func TestFaultRules(t *testing.T) {
	t.Parallel()
	var served sync.Map // path → body received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		served.Store(r.URL.Path, string(b))
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	ft := NewFaultTransport(srv.Client().Transport)
	client := &http.Client{Transport: ft}
	do := func(method, path string, body io.ReadCloser) (*http.Response, error) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Body = body
			req.ContentLength = -1
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return resp, err
	}

	t.Run("SkipTimesOrder", func(t *testing.T) {
		ft.Reset()
		ft.Add(Rule{Name: "a", Match: func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/a") }, Action: FailBefore, Skip: 1, Times: 2})
		ft.Add(Rule{Name: "any", Match: MatchAny(), Action: Status, Status: 418, Skip: 4})
		var got []string
		for range 6 {
			resp, err := do("GET", "/a", nil)
			switch {
			case err != nil:
				got = append(got, "err")
			default:
				got = append(got, fmt.Sprint(resp.StatusCode))
			}
		}
		// /a #1 skipped by a, seen by any (1); #2 #3 fail by a; #4 a is
		// exhausted, any (2); #5 any (3); #6 any (4); nothing reaches
		// any's fifth match.
		if want := "200 err err 200 200 200"; strings.Join(got, " ") != want {
			t.Errorf("outcomes %q, want %q", strings.Join(got, " "), want)
		}
		if ft.Hits("a") != 2 || ft.Hits("any") != 0 || len(ft.Requests()) != 6 {
			t.Errorf("hits a=%d any=%d requests=%q", ft.Hits("a"), ft.Hits("any"), ft.Requests())
		}
		if resp, _ := do("GET", "/b", nil); resp == nil || resp.StatusCode != 418 {
			t.Errorf("fifth match of any: %v, want 418", resp)
		}
		ft.Reset()
		if ft.Hits("a") != 0 || len(ft.Requests()) != 0 {
			t.Errorf("after Reset: hits %d, requests %q", ft.Hits("a"), ft.Requests())
		}
	})

	t.Run("BodyNotConsumedUnlessForwarded", func(t *testing.T) {
		for _, action := range []Action{FailBefore, Status, Drop} {
			ft.Reset()
			ft.Add(Rule{Name: "x", Action: action, Status: 503})
			b := &recordingBody{r: strings.NewReader("data")}
			_, _ = do("PUT", "/body", b)
			if b.read || !b.closed {
				t.Errorf("%v: body read=%v closed=%v, want closed unread", action, b.read, b.closed)
			}
		}
		ft.Reset()
		ft.Add(Rule{Name: "x", Action: FailAfter})
		if _, err := do("PUT", "/after", &recordingBody{r: strings.NewReader("data")}); !errors.Is(err, ErrInjected) {
			t.Errorf("FailAfter: %v", err)
		}
		if got, _ := served.Load("/after"); got != "data" {
			t.Errorf("FailAfter forwarded body %q, want %q", got, "data")
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		ft.Reset()
		ft.Add(Rule{Name: "five", Action: FailBefore, Skip: 3, Times: 5})
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		for range 40 {
			wg.Go(func() {
				if _, err := do("GET", "/c", nil); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if failed != 5 || ft.Hits("five") != 5 || len(ft.Requests()) != 40 {
			t.Errorf("failed %d, hits %d, requests %d; want 5, 5, 40", failed, ft.Hits("five"), len(ft.Requests()))
		}
	})
}

func TestMatchers(t *testing.T) {
	t.Parallel()
	req := func(method, path, auth, target string) *http.Request {
		r := httptest.NewRequest(method, "http://127.0.0.1"+path, nil)
		if auth != "" {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/"+auth+"/aws4_request, SignedHeaders=host, Signature=x")
		}
		if target != "" {
			r.Header.Set("X-Amz-Target", target)
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		match func(*http.Request) bool
		req   *http.Request
		want  bool
	}{
		{"s3 put", MatchS3("PUT", `^/b/.*\.json$`), req("PUT", "/b/m/1.json", "s3", ""), true},
		{"s3 method", MatchS3("PUT", ""), req("GET", "/b/k", "s3", ""), false},
		{"s3 path", MatchS3("", `^/b/data/`), req("PUT", "/b/meta/x", "s3", ""), false},
		{"s3 unsigned", MatchS3("", ""), req("GET", "/b/k", "", ""), true},
		{"s3 not glue", MatchS3("", ""), req("POST", "/", "glue", "AWSGlue.UpdateTable"), false},
		{"s3 not glue unsigned", MatchS3("", ""), req("POST", "/", "", "AWSGlue.UpdateTable"), false},
		{"glue", MatchGlue("AWSGlue.UpdateTable"), req("POST", "/", "glue", "AWSGlue.UpdateTable"), true},
		{"glue short", MatchGlue("UpdateTable"), req("POST", "/", "glue", "AWSGlue.UpdateTable"), true},
		{"glue other op", MatchGlue("UpdateTable"), req("POST", "/", "glue", "AWSGlue.GetTable"), false},
		{"glue not s3", MatchGlue("UpdateTable"), req("PUT", "/b/k", "s3", ""), false},
		{"any", MatchAny(), req("DELETE", "/x", "", ""), true},
	} {
		if got := tc.match(tc.req); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
