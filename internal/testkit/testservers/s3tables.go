package testservers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3tables"
)

// TableBucket is an S3 Tables table bucket on the moto server. The tables
// created in it get a warehouse location s3://<uuid>--table-s3 in moto's
// own S3, which the S3 client of [Glue.S3TablesEnv] reaches.
type TableBucket struct {
	ARN  string // arn:aws:s3tables:us-east-1:123456789012:bucket/NAME
	Name string
}

// S3TablesEnv returns the standard AWS variables that point the SDK's S3
// Tables client (AWS_ENDPOINT_URL_S3TABLES) and S3 client
// (AWS_ENDPOINT_URL_S3) at this moto server, with the credentials and
// region of [Glue.Env]: the tables' data and metadata live in moto's S3,
// not in MinIO, so this map does not merge with [S3.Env].
func (g *Glue) S3TablesEnv() map[string]string {
	env := g.Env()
	delete(env, "AWS_ENDPOINT_URL_GLUE")
	env["AWS_ENDPOINT_URL_S3TABLES"] = g.Endpoint
	env["AWS_ENDPOINT_URL_S3"] = g.Endpoint
	return env
}

// S3TablesConfig returns an AWS config whose S3 Tables and S3 clients talk
// to this moto server (see [Glue.S3TablesEnv] and [LoadConfig]). The HTTP
// client's transport (http.DefaultTransport for nil, or a
// [FaultTransport]) is wrapped in [MotoS3TablesFixes], so the SDK can read
// moto's answers.
func (g *Glue) S3TablesConfig(t testing.TB, httpClient *http.Client) aws.Config {
	t.Helper()
	hc := &http.Client{}
	if httpClient != nil {
		c := *httpClient
		hc = &c
	}
	hc.Transport = MotoS3TablesFixes(hc.Transport)
	cfg, err := LoadConfig(t.Context(), g.S3TablesEnv(), hc)
	if err != nil {
		t.Fatalf("testservers: AWS config: %v", err)
	}
	return cfg
}

// NewTableBucket creates an S3 Tables table bucket for t on this moto
// server, named after the test and unique in the process.
func (g *Glue) NewTableBucket(t testing.TB) *TableBucket {
	t.Helper()
	name := bucketName(t.Name())
	client := s3tables.NewFromConfig(g.S3TablesConfig(t, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := client.CreateTableBucket(ctx, &s3tables.CreateTableBucketInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("create table bucket %s on moto %s: %v", name, g.Endpoint, err)
	}
	return &TableBucket{ARN: aws.ToString(out.Arn), Name: name}
}

// MotoS3TablesFixes wraps base (nil: http.DefaultTransport) so that moto
// 5.2.1's S3 Tables answers match the API's model where moto strays from
// it, in ways that make the SDK fail to read an answer to a request that
// succeeded:
//
//   - UpdateTableMetadataLocation answers "namespace" as a string; AWS (and
//     the SDK's model) has a list of strings.
//   - GetTable answers "managedByService" as a boolean; the model has a
//     string (the service principal managing the table, absent for a
//     customer's table), so false is dropped.
//
// Nothing else is changed: error answers and other operations pass as they
// are. TestMotoS3Tables pins both deviations, so this shim goes when moto
// is fixed.
func MotoS3TablesFixes(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &motoFixes{base: base}
}

type motoFixes struct{ base http.RoundTripper }

func (m *motoFixes) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := m.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || signedService(req) != "s3tables" {
		return resp, err
	}
	var fix func(map[string]any) bool
	switch {
	case req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/metadata-location"):
		fix = func(doc map[string]any) bool {
			ns, ok := doc["namespace"].(string)
			if ok {
				doc["namespace"] = []string{ns}
			}
			return ok
		}
	case req.Method == http.MethodGet && req.URL.Path == "/get-table":
		fix = func(doc map[string]any) bool {
			b, ok := doc["managedByService"].(bool)
			if ok && !b {
				delete(doc, "managedByService")
			}
			return ok
		}
	default:
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if json.Unmarshal(body, &doc) == nil && fix(doc) {
		if fixed, err := json.Marshal(doc); err == nil {
			body = fixed
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header = maps.Clone(resp.Header)
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}

// MatchS3Tables matches S3 Tables requests for one operation; only the
// operations icemerge calls are known: CreateNamespace, GetNamespace,
// CreateTable, GetTableMetadataLocation and UpdateTableMetadataLocation.
// It panics on another name.
func MatchS3Tables(op string) func(*http.Request) bool {
	type route struct {
		method string
		match  func(path string) bool
	}
	// The table bucket's ARN is one escaped segment of the path, but
	// URL.Path is unescaped and its "bucket/NAME" adds a segment.
	segments := func(p string) int { return strings.Count(strings.Trim(p, "/"), "/") + 1 }
	routes := map[string]route{
		"CreateNamespace": {http.MethodPut, func(p string) bool { return strings.HasPrefix(p, "/namespaces/") && segments(p) == 3 }},
		"GetNamespace":    {http.MethodGet, func(p string) bool { return strings.HasPrefix(p, "/namespaces/") && segments(p) == 4 }},
		"CreateTable":     {http.MethodPut, func(p string) bool { return strings.HasPrefix(p, "/tables/") && segments(p) == 4 }},
		"GetTableMetadataLocation": {http.MethodGet, func(p string) bool {
			return strings.HasPrefix(p, "/tables/") && strings.HasSuffix(p, "/metadata-location")
		}},
		"UpdateTableMetadataLocation": {http.MethodPut, func(p string) bool {
			return strings.HasPrefix(p, "/tables/") && strings.HasSuffix(p, "/metadata-location")
		}},
	}
	r, ok := routes[op]
	if !ok {
		panic("testservers.MatchS3Tables: unknown operation " + op)
	}
	return func(req *http.Request) bool {
		return signedService(req) == "s3tables" && req.Method == r.method && r.match(req.URL.Path)
	}
}
