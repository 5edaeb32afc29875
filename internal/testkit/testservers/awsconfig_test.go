package testservers

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// hostRecorder records, per request, the host it went to and which of
// the package's matchers accept it.
type hostRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (h *hostRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := "other"
	switch s3m, gm := MatchS3("", "")(req), MatchGlue("GetDatabases")(req); {
	case s3m && !gm:
		kind = "s3"
	case gm && !s3m:
		kind = "glue"
	}
	h.mu.Lock()
	h.seen = append(h.seen, kind+" "+req.URL.Host)
	h.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestLoadConfigRoutesServices shows that one config sends plain
// s3.NewFromConfig clients to MinIO and glue.NewFromConfig clients to moto,
// even when the process environment points elsewhere. Not parallel: it
// sets process environment variables.
func TestLoadConfigRoutesServices(t *testing.T) {
	s, g := MinIO(t), Moto(t)
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
	t.Setenv("AWS_ENDPOINT_URL_GLUE", "http://127.0.0.1:3")
	t.Setenv("AWS_REGION", "eu-west-3")
	t.Setenv("AWS_ACCESS_KEY_ID", "wrong")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")

	rec := &hostRecorder{}
	cfg := AWSConfig(t, s, g, &http.Client{Transport: rec})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	bucket := s.NewBucket(t)

	if _, err := s3.NewFromConfig(cfg).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("PutObject through s3.NewFromConfig(cfg): %v", err)
	}
	// iceberg-go's S3 IO sets UsePathStyle=false unless s3.endpoint is set;
	// against an IP endpoint the SDK uses path style regardless.
	virtual := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = false })
	if _, err := virtual.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a")}); err != nil {
		t.Fatalf("HeadObject with UsePathStyle=false: %v", err)
	}
	if _, err := glue.NewFromConfig(cfg).GetDatabases(ctx, &glue.GetDatabasesInput{}); err != nil {
		t.Fatalf("GetDatabases through glue.NewFromConfig(cfg): %v", err)
	}

	host := func(endpoint string) string { u, _ := url.Parse(endpoint); return u.Host }
	want := []string{"s3 " + host(s.Endpoint), "s3 " + host(s.Endpoint), "glue " + host(g.Endpoint)}
	if got := strings.Join(rec.seen, ", "); got != strings.Join(want, ", ") {
		t.Fatalf("requests went to %s, want %s", got, strings.Join(want, ", "))
	}
}

func TestLoadConfigMissing(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(t.Context(), map[string]string{"AWS_ACCESS_KEY_ID": "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION, AWS_SECRET_ACCESS_KEY") {
		t.Fatalf("LoadConfig without region and secret: %v, want both named", err)
	}
}
