package source_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/internal/source"
)

// fakeBucket serves ListObjectsV2 over n generated keys, 1,000 a page, as
// S3 does, honouring Prefix, StartAfter and continuation tokens.
type fakeBucket struct {
	keys  []string
	pages int
}

func newFakeBucket(n int) *fakeBucket {
	b := &fakeBucket{}
	t := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ts := t.Add(time.Duration(i) * 61 * time.Second)
		b.keys = append(b.keys, "raw/db/t/"+ts.Format("2006/01/02/20060102-150405")+fmt.Sprintf("%03d.parquet", i%1000))
	}
	sort.Strings(b.keys)
	return b
}

func (b *fakeBucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	b.pages++
	after := aws.ToString(in.StartAfter)
	if in.ContinuationToken != nil {
		after = *in.ContinuationToken
	}
	i := sort.SearchStrings(b.keys, after)
	for i < len(b.keys) && b.keys[i] <= after {
		i++
	}
	out := &s3.ListObjectsV2Output{}
	for ; i < len(b.keys) && len(out.Contents) < 1000; i++ {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(b.keys[i]), Size: aws.Int64(100), ETag: aws.String(`"e"`)})
	}
	if i < len(b.keys) {
		out.IsTruncated, out.NextContinuationToken = aws.Bool(true), aws.String(b.keys[i-1])
	}
	return out, nil
}

func (b *fakeBucket) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, fmt.Errorf("not used")
}

// Listing 100,000 objects goes page by page (the callback sees each object
// once, nothing is collected by the source), and a settled key skips the
// history before it.
func TestS3ListingScales(t *testing.T) {
	const n = 100_000
	b := newFakeBucket(n)
	src := &source.Bucket{Client: b, Loc: source.Location{S3: true, Bucket: "bucket", Prefix: "raw/db/t"}}
	seen, last := 0, ""
	err := src.List(context.Background(), "", func(o source.Object) error {
		if o.Key <= last {
			t.Fatalf("keys out of order: %s after %s", o.Key, last)
		}
		seen, last = seen+1, o.Key
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != n || b.pages != n/1000 {
		t.Fatalf("saw %d objects in %d pages, want %d in %d", seen, b.pages, n, n/1000)
	}

	b.pages, seen = 0, 0
	settled := b.keys[n-500][len("raw/db/t/"):]
	if err := src.List(context.Background(), settled, func(source.Object) error { seen++; return nil }); err != nil {
		t.Fatal(err)
	}
	if seen != 499 || b.pages != 1 {
		t.Errorf("after the settled key: %d objects in %d pages, want 499 in 1", seen, b.pages)
	}
}

func BenchmarkS3List100k(b *testing.B) {
	bucket := newFakeBucket(100_000)
	src := &source.Bucket{Client: bucket, Loc: source.Location{S3: true, Bucket: "bucket", Prefix: "raw/db/t"}}
	for b.Loop() {
		n := 0
		if err := src.List(context.Background(), "", func(source.Object) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
