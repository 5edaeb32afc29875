package source

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/icemerge/icemerge/merge"
)

// The DMS naming rules: which objects of a table's folder are data, which
// are full load and which CDC, in what order they apply, and the time a CDC
// file's name carries. Every package that needs one asks here.

// Object describes one object in the source folder. Key is relative to the
// source root and uses forward slashes.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	ETag    string // S3 ETag or another content version; may be empty
}

// Kind is what the object holds: merge.FullLoad, merge.CDC or
// merge.NotData.
func (o Object) Kind() merge.Kind { return Classify(o.Key) }

// loadName matches full-load file names: LOAD00000001.parquet, and the
// SEGMENTn_LOAD… names of parallel loads.
var loadName = regexp.MustCompile(`^(?:.*_)?LOAD[0-9A-Fa-f]+\.parquet$`)

// Classify says what an object key holds. Only *.parquet objects are data;
// names starting with "." or "_" (temporary and marker files of Spark, Hive
// and friends) and anything under such a folder are not.
func Classify(key string) merge.Kind {
	for _, part := range strings.Split(key, "/") {
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") {
			return merge.NotData
		}
	}
	base := path.Base(key)
	if !strings.HasSuffix(strings.ToLower(base), ".parquet") {
		return merge.NotData
	}
	if loadName.MatchString(base) {
		return merge.FullLoad
	}
	return merge.CDC
}

// SortObjects orders data objects in source order (CompareKeys). Objects
// that are not data are dropped.
func SortObjects(objs []Object) []Object {
	out := make([]Object, 0, len(objs))
	for _, o := range objs {
		if Classify(o.Key) != merge.NotData {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, CompareObjects)
	return out
}

// CompareObjects compares two data objects in source order.
func CompareObjects(a, b Object) int { return CompareKeys(a.Key, b.Key) }

// CompareKeys compares two data object keys in source order
// (merge.CompareSource): full-load files first, by key; then CDC files by
// their base name, the time DMS wrote them, whatever folders hold them.
func CompareKeys(a, b string) int { return merge.CompareSource(Classify(a), a, Classify(b), b) }

// CDCName returns the base name of a CDC file without ".parquet" when it
// is DMS's time name yyyyMMdd-HHmmssSSS; ok is false for any other key.
// Names compare in time order as strings: they are the unit a bookmark's
// watermark is kept in.
func CDCName(key string) (name string, ok bool) {
	name, found := strings.CutSuffix(path.Base(key), ".parquet")
	if !found {
		return "", false
	}
	if _, ok := ParseCDCTime(name); !ok {
		return "", false
	}
	return name, true
}

// FormatCDCName is the name (without ".parquet") DMS gives a CDC file
// written at t, in UTC to the millisecond.
func FormatCDCName(t time.Time) string {
	s := t.UTC().Format(cdcTimeLayout)
	return s[:15] + s[16:]
}

// cdcTimeLayout is the time in a DMS CDC file name, yyyyMMdd-HHmmssSSS,
// in UTC.
const cdcTimeLayout = "20060102-150405.000"

// CDCTime returns the time in the name of a CDC file (its base name
// yyyyMMdd-HHmmssSSS.parquet, in UTC); ok is false for any other name.
func CDCTime(key string) (t time.Time, ok bool) {
	name, found := strings.CutSuffix(path.Base(key), ".parquet")
	if !found {
		return time.Time{}, false
	}
	return ParseCDCTime(name)
}

// ParseCDCTime parses the DMS name form yyyyMMdd-HHmmssSSS (UTC).
func ParseCDCTime(s string) (time.Time, bool) {
	if len(s) != len("20060102-150405000") || s[8] != '-' {
		return time.Time{}, false
	}
	t, err := time.Parse(cdcTimeLayout, s[:15]+"."+s[15:])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}
