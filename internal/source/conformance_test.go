package source_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// world is one storage a source reads: put writes an object under the
// schema folder (keys like "users/LOAD00000001.parquet"), at is the
// location of the schema folder.
type world struct {
	put    func(t *testing.T, key string, b []byte)
	at     source.Location
	client source.S3API
}

// The conformance suite every Source passes: the local folder and the S3
// prefix list and read alike.
func TestConformance(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		dir := t.TempDir()
		testConformance(t, world{at: source.Location{Path: dir}, put: func(t *testing.T, key string, b []byte) {
			p := filepath.Join(dir, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}})
	})
	t.Run("minio", func(t *testing.T) {
		srv := testservers.MinIO(t)
		bucket := srv.NewBucket(t)
		client := s3.NewFromConfig(srv.Config(t, nil), func(o *s3.Options) { o.UsePathStyle = true })
		const prefix = "raw_input/test_db"
		testConformance(t, world{at: source.Location{S3: true, Bucket: bucket, Prefix: prefix}, client: client,
			put: func(t *testing.T, key string, b []byte) {
				if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket),
					Key: aws.String(prefix + "/" + key), Body: bytes.NewReader(b)}); err != nil {
					t.Fatal(err)
				}
			}})
	})
}

func testConformance(t *testing.T, w world) {
	ctx := context.Background()
	objects := map[string]string{
		"users/LOAD00000001.parquet":                  "full load",
		"users/2024/08/14/20240814-002642123.parquet": "cdc 1",
		"users/20240814-002642124.parquet":            "cdc 2, flat",
		"users/_SUCCESS":                              "",
		"users_eu/LOAD00000001.parquet":               "another table, whose name extends users",
		"orders/LOAD00000001.parquet":                 "another table",
	}
	for k, v := range objects {
		w.put(t, k, []byte(v))
	}
	started := time.Now().Add(-time.Minute)
	src, err := source.Open(w.at.Join("users"), w.client)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(src.String(), "users") {
		t.Errorf("String() = %q, want the folder's location", src.String())
	}

	list := func(after string) []source.Object {
		t.Helper()
		var got []source.Object
		if err := src.List(ctx, after, func(o source.Object) error { got = append(got, o); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Every object of the folder and of its subfolders, by key relative to
	// the folder, in key order, with its size and modification time; none of
	// a sibling folder whose name starts alike.
	got := list("")
	var keys []string
	for _, o := range got {
		keys = append(keys, o.Key)
		if int(o.Size) != len(objects["users/"+o.Key]) || o.ModTime.Before(started) {
			t.Errorf("%s: size %d, modified %s; want %d bytes, modified now", o.Key, o.Size, o.ModTime, len(objects["users/"+o.Key]))
		}
	}
	want := []string{"2024/08/14/20240814-002642123.parquet", "20240814-002642124.parquet", "LOAD00000001.parquet", "_SUCCESS"}
	if !slices.Equal(keys, want) {
		t.Errorf("listed %q, want %q", keys, want)
	}
	// After a key: only the keys that sort after it.
	keys = nil
	for _, o := range list("2024/08/14/20240814-002642123.parquet") {
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, want[1:]) {
		t.Errorf("listed after the first key: %q, want %q", keys, want[1:])
	}
	// A listing stops at the callback's error, and returns it.
	stop := io.ErrUnexpectedEOF
	if err := src.List(ctx, "", func(source.Object) error { return stop }); err != stop {
		t.Errorf("List returned %v, want the callback's error", err)
	}

	// Open reads an object's bytes, at any offset.
	r, err := src.Open(ctx, "2024/08/14/20240814-002642123.parquet", source.Version{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "cdc 1" {
		t.Errorf("read %q, %v", b, err)
	}
	buf := make([]byte, 3)
	if n, err := r.ReadAt(buf, 2); n != 3 || string(buf) != "c 1" {
		t.Errorf("ReadAt: %q, %v", buf[:n], err)
	}
	if off, err := r.Seek(0, io.SeekEnd); off != 5 || err != nil {
		t.Errorf("size by Seek: %d, %v", off, err)
	}
	r.Close()
	// A missing object is an error naming it.
	if _, err := src.Open(ctx, "20990101-000000000.parquet", source.Version{}); err == nil || !strings.Contains(err.Error(), "20990101-000000000.parquet") {
		t.Errorf("opening a missing object: %v", err)
	}

	// The schema folder's table folders, sorted.
	folders, err := source.TableFolders(ctx, w.at, w.client)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"orders", "users", "users_eu"}; !slices.Equal(folders, want) {
		t.Errorf("table folders %q, want %q", folders, want)
	}
	// A folder that does not exist lists nothing locally (an error) and
	// nothing on S3 (an empty prefix): neither lists another table's files.
	missing, err := source.Open(w.at.Join("nope"), w.client)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	_ = missing.List(ctx, "", func(source.Object) error { n++; return nil })
	if n != 0 {
		t.Errorf("a missing folder listed %d objects", n)
	}
}
