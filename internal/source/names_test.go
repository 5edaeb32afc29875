package source_test

import (
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

func TestClassify(t *testing.T) {
	tests := map[string]merge.Kind{
		"LOAD00000001.parquet":                    merge.FullLoad,
		"LOAD0000000A.parquet":                    merge.FullLoad,
		"SEGMENT1_LOAD00000001.parquet":           merge.FullLoad,
		"part1/LOAD00000002.parquet":              merge.FullLoad,
		"20240814-002642123.parquet":              merge.CDC,
		"2024/08/14/20240814-002642123.parquet":   merge.CDC,
		"20240814/20240814-002642123.PARQUET":     merge.CDC,
		"20240814-002642123.csv":                  merge.NotData,
		"_SUCCESS":                                merge.NotData,
		".20240814-002642123.parquet.crc":         merge.NotData,
		"_temporary/0/20240814-002642123.parquet": merge.NotData,
		"2024/08/14/.hidden/20240814-1.parquet":   merge.NotData,
		"LOAD00000001.parquet.tmp":                merge.NotData,
		"2024/08/14/":                             merge.NotData,
	}
	for key, want := range tests {
		if got := source.Classify(key); got != want {
			t.Errorf("Classify(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestCDCTime(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		key  string
		want time.Time
		ok   bool
	}{
		{"20240814-002642123.parquet", at("2024-08-14T00:26:42.123Z"), true},
		{"2024/08/14/20240814-002642123.parquet", at("2024-08-14T00:26:42.123Z"), true},
		{"20241231-235959999.parquet", at("2024-12-31T23:59:59.999Z"), true},
		{"LOAD00000001.parquet", time.Time{}, false},
		{"20240814-002642123.csv", time.Time{}, false},
		{"20241314-002642123.parquet", time.Time{}, false}, // month 13
		{"20240814-0026421.parquet", time.Time{}, false},
		{"20240814_002642123.parquet", time.Time{}, false},
		{"part-00001.parquet", time.Time{}, false},
	}
	for _, tc := range tests {
		got, ok := source.CDCTime(tc.key)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("CDCTime(%q) = %v, %v; want %v, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}
