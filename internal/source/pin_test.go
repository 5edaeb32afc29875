package source_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/icemerge/icemerge/internal/source"
)

// readAll opens key pinned to pin and returns its bytes and version.
func readAll(t *testing.T, src source.Source, key string, pin source.Version) ([]byte, source.Version, error) {
	t.Helper()
	r, err := src.Open(context.Background(), key, pin)
	if err != nil {
		return nil, source.Version{}, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b, r.Version(), nil
}

// A local object is pinned by size and modification time from the listing
// and by the SHA-256 of the bytes first read: a rewrite is refused even
// when it keeps the size and the modification time.
func TestDirPinsVersions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.parquet")
	if err := os.WriteFile(p, []byte("version one"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &source.Dir{Root: dir}
	var listed source.Object
	if err := src.List(context.Background(), "", func(o source.Object) error { listed = o; return nil }); err != nil {
		t.Fatal(err)
	}
	b, v, err := readAll(t, src, "a.parquet", listed.Listed())
	if err != nil || string(b) != "version one" || v.SHA256 == "" || v.Size != 11 || !v.ModTime.Equal(listed.ModTime) {
		t.Fatalf("first read: %q, %+v, %v", b, v, err)
	}
	if b, _, err := readAll(t, src, "a.parquet", v); err != nil || string(b) != "version one" {
		t.Fatalf("second read of the same version: %q, %v", b, err)
	}

	// Same size, same modification time, other bytes.
	if err := os.WriteFile(p, []byte("version two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, v.ModTime, v.ModTime); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, src, "a.parquet", v); !errors.Is(err, source.ErrChanged) || !strings.Contains(err.Error(), p) {
		t.Errorf("a rewrite keeping size and mtime: err = %v, want ErrChanged naming %s", err, p)
	}
	// The listing's size and mtime no longer match a longer rewrite.
	if err := os.WriteFile(p, []byte("version three"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, src, "a.parquet", listed.Listed()); !errors.Is(err, source.ErrChanged) {
		t.Errorf("an object rewritten since the listing: err = %v, want ErrChanged", err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, src, "a.parquet", v); !errors.Is(err, source.ErrChanged) {
		t.Errorf("an object removed since the first read: err = %v, want ErrChanged", err)
	}
	if _, _, err := readAll(t, src, "a.parquet", source.Version{}); err == nil || errors.Is(err, source.ErrChanged) {
		t.Errorf("an unpinned open of a missing object: err = %v, want a plain error", err)
	}
}

// versionedBucket holds one object whose content can be replaced; it
// honours If-Match as S3 does (412), or ignores it, as a lax store might.
type versionedBucket struct {
	fakeBucket
	body, etag    string
	ignoreIfMatch bool
	noETag        bool // a store that sends none
	ifMatch       []string
}

func (b *versionedBucket) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	b.ifMatch = append(b.ifMatch, aws.ToString(in.IfMatch))
	if in.IfMatch != nil && !b.ignoreIfMatch && strings.Trim(*in.IfMatch, `"`) != b.etag {
		return nil, &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusPreconditionFailed}},
			Err: errors.New("PreconditionFailed")}
	}
	out := &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader([]byte(b.body))), ETag: aws.String(`"` + b.etag + `"`),
		ContentLength: aws.Int64(int64(len(b.body)))}
	if b.noETag {
		out.ETag = nil
	}
	return out, nil
}

// Every GET of a pinned object carries If-Match with its ETag; a replaced
// object is refused with ErrChanged whether the store answers 412 or
// ignores the header and sends the other version.
func TestBucketPinsVersions(t *testing.T) {
	for _, lax := range []bool{false, true} {
		b := &versionedBucket{body: "version one", etag: "e1", ignoreIfMatch: lax}
		src := &source.Bucket{Client: b, Loc: source.Location{S3: true, Bucket: "bucket", Prefix: "raw/db/t"}}
		listed := source.Object{Key: "a.parquet", Size: 11, ETag: "e1"}
		data, v, err := readAll(t, src, "a.parquet", listed.Listed())
		if err != nil || string(data) != "version one" || v.ETag != "e1" {
			t.Fatalf("first read: %q, %+v, %v", data, v, err)
		}
		b.body, b.etag = "version two", "e2"
		_, _, err = readAll(t, src, "a.parquet", v)
		if !errors.Is(err, source.ErrChanged) || !strings.Contains(err.Error(), "s3://bucket/raw/db/t/a.parquet") {
			t.Errorf("ignoring If-Match %v: err = %v, want ErrChanged naming the object", lax, err)
		}
		if want := []string{`"e1"`, `"e1"`}; strings.Join(b.ifMatch, ",") != strings.Join(want, ",") {
			t.Errorf("If-Match sent %q, want %q", b.ifMatch, want)
		}
		if data, _, err := readAll(t, src, "a.parquet", source.Version{}); err != nil || string(data) != "version two" {
			t.Errorf("an unpinned read: %q, %v", data, err)
		}
	}

	// Without ETags, the size is what is left to tell versions apart.
	b := &versionedBucket{body: "version one", noETag: true}
	src := &source.Bucket{Client: b, Loc: source.Location{S3: true, Bucket: "bucket", Prefix: "raw/db/t"}}
	_, v, err := readAll(t, src, "a.parquet", source.Object{Key: "a.parquet", Size: 11}.Listed())
	if err != nil {
		t.Fatal(err)
	}
	b.body = "version three"
	if _, _, err := readAll(t, src, "a.parquet", v); !errors.Is(err, source.ErrChanged) {
		t.Errorf("a store without ETags, object grown: err = %v, want ErrChanged", err)
	}
}
