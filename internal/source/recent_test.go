package source_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/icemerge/icemerge/internal/source"
)

// memBucket is an S3 bucket in memory that lists as S3 does: keys in byte
// order, Prefix, Delimiter (common prefixes rolled up, counted against
// MaxKeys), StartAfter, MaxKeys (default 1,000) and continuation tokens.
type memBucket struct {
	keys     []string // sorted
	requests int
	// page is the most entries a response holds; S3 may answer with fewer
	// than MaxKeys, and small pages test the paging.
	page int
}

func (b *memBucket) put(key string) {
	i, found := slices.BinarySearch(b.keys, key)
	if !found {
		b.keys = slices.Insert(b.keys, i, key)
	}
}

func (b *memBucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	b.requests++
	prefix, delim := aws.ToString(in.Prefix), aws.ToString(in.Delimiter)
	after := aws.ToString(in.StartAfter)
	if in.ContinuationToken != nil {
		after = *in.ContinuationToken
	}
	limit := int(aws.ToInt32(in.MaxKeys))
	if limit == 0 {
		limit = 1000
	}
	if b.page > 0 {
		limit = min(limit, b.page)
	}
	out := &s3.ListObjectsV2Output{}
	i := sort.SearchStrings(b.keys, prefix)
	n, last := 0, ""
	for ; i < len(b.keys) && strings.HasPrefix(b.keys[i], prefix); i++ {
		k := b.keys[i]
		if k <= after {
			continue
		}
		if n == limit {
			out.IsTruncated, out.NextContinuationToken = aws.Bool(true), aws.String(last)
			return out, nil
		}
		if delim != "" {
			if j := strings.Index(k[len(prefix):], delim); j >= 0 {
				cp := k[:len(prefix)+j+len(delim)]
				out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(cp)})
				// Skip the rest of the rolled-up prefix.
				for i+1 < len(b.keys) && strings.HasPrefix(b.keys[i+1], cp) {
					i++
				}
				n, last = n+1, b.keys[i]
				continue
			}
		}
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(1), ETag: aws.String(`"e"`)})
		n, last = n+1, k
	}
	return out, nil
}

func (b *memBucket) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, fmt.Errorf("not used")
}

// dmsFolder is the date folder DMS writes a CDC file of time t to with a
// DatePartitionSequence and DatePartitionDelimiter ("" sequence: none).
func dmsFolder(seq, delim string, t time.Time) string {
	if seq == "" {
		return ""
	}
	parts := map[string][]string{
		"YYYYMMDD":   {"2006", "01", "02"},
		"YYYYMMDDHH": {"2006", "01", "02", "15"},
		"YYYYMM":     {"2006", "01"},
		"MMYYYYDD":   {"01", "2006", "02"},
		"DDMMYYYY":   {"02", "01", "2006"},
	}[seq]
	sep := map[string]string{"SLASH": "/", "DASH": "-", "UNDERSCORE": "_", "NONE": ""}[delim]
	var segs []string
	for _, p := range parts {
		segs = append(segs, t.UTC().Format(p))
	}
	return strings.Join(segs, sep) + "/"
}

var (
	sequences  = []string{"", "YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"}
	delimiters = []string{"SLASH", "DASH", "UNDERSCORE", "NONE"}
)

// A folder with CDC files in every DMS layout, flat names, switches between
// them, year boundaries and a full load: ListRecent sees every CDC file
// named after the watermark and every full-load file, in a bounded number
// of requests, and leaves most of the settled history unlisted.
func TestListRecentSeesEveryLaterFile(t *testing.T) {
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 7))
		b := &memBucket{page: 1 + rng.IntN(8)}
		src := &source.Bucket{Client: b, Loc: source.Location{S3: true, Bucket: "b", Prefix: "raw/db/t"}}
		// Two to four layouts, one after another: the table's history.
		start := time.Date(2020+rng.IntN(6), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), 0, 0, 0, time.UTC)
		if rng.IntN(3) == 0 { // around a new year
			start = time.Date(2023, 12, 30, 12, 0, 0, 0, time.UTC)
		}
		at := start
		var all []string
		for range 2 + rng.IntN(3) {
			seq, delim := sequences[rng.IntN(len(sequences))], delimiters[rng.IntN(len(delimiters))]
			for range 20 + rng.IntN(200) {
				at = at.Add(time.Duration(1+rng.IntN(300)) * time.Minute)
				key := dmsFolder(seq, delim, at) + source.FormatCDCName(at) + ".parquet"
				b.put("raw/db/t/" + key)
				all = append(all, key)
			}
		}
		for i := 1; i <= 3; i++ {
			b.put(fmt.Sprintf("raw/db/t/LOAD%08X.parquet", i))
		}
		b.put("raw/db/t/_temporary/x.parquet")
		// The watermark: some applied file's name; now: a little after the
		// newest file.
		w := all[rng.IntN(len(all))]
		since, _ := source.CDCName(w)
		now := at.Add(time.Duration(rng.IntN(120)) * time.Minute)
		b.requests = 0
		seen := map[string]bool{}
		requests, err := src.ListRecent(context.Background(), since, now, func(o source.Object) error {
			if seen[o.Key] {
				t.Fatalf("seed %d: %s listed twice", seed, o.Key)
			}
			seen[o.Key] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if requests != b.requests {
			t.Errorf("seed %d: ListRecent counted %d requests, the bucket served %d", seed, requests, b.requests)
		}
		for _, k := range all {
			if n, _ := source.CDCName(k); n > since && !seen[k] {
				t.Errorf("seed %d (since %s, now %s): %s was not listed", seed, since, now.Format(time.RFC3339), k)
			}
		}
		for i := 1; i <= 3; i++ {
			if k := fmt.Sprintf("LOAD%08X.parquet", i); !seen[k] {
				t.Errorf("seed %d: %s was not listed", seed, k)
			}
		}
		if seen["_temporary/x.parquet"] {
			t.Errorf("seed %d: a _temporary folder was listed", seed)
		}
	}
}

// The request count of a run of a table written every 5 minutes for a year,
// as it settles: a handful of requests whatever the layout, where a full
// listing takes 107.
func TestListRecentCost(t *testing.T) {
	for _, seq := range sequences {
		for _, delim := range delimiters {
			if seq == "" && delim != "SLASH" {
				continue
			}
			b := &memBucket{}
			src := &source.Bucket{Client: b, Loc: source.Location{S3: true, Bucket: "b", Prefix: "raw/db/t"}}
			end := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
			var last string
			for at := end.AddDate(-1, 0, 0); at.Before(end); at = at.Add(5 * time.Minute) {
				last = dmsFolder(seq, delim, at) + source.FormatCDCName(at) + ".parquet"
				b.keys = append(b.keys, "raw/db/t/"+last)
			}
			b.keys = append(b.keys, "raw/db/t/LOAD00000001.parquet")
			sort.Strings(b.keys)
			since, _ := source.CDCName(last)
			requests, err := src.ListRecent(context.Background(), since, end.Add(time.Minute), func(source.Object) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%-10s %-10s %d requests", seq, delim, requests)
			if requests > 12 {
				t.Errorf("%s %s: %d requests for a run after the watermark", seq, delim, requests)
			}
		}
	}
}
