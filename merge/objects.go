package merge

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Object describes one object in the source folder. Key is relative to the
// source root and uses forward slashes.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	ETag    string // S3 ETag or another content version; may be empty
}

// Kind tells full-load files from CDC files.
type Kind int

const (
	// NotData is an object that is not a DMS Parquet data file.
	NotData Kind = iota
	// FullLoad is a LOAD file of the full load.
	FullLoad
	// CDC is a change file of ongoing replication.
	CDC
)

func (k Kind) String() string {
	switch k {
	case FullLoad:
		return "load"
	case CDC:
		return "cdc"
	default:
		return "other"
	}
}

// loadName matches full-load file names: LOAD00000001.parquet, and the
// SEGMENTn_LOAD… names of parallel loads.
var loadName = regexp.MustCompile(`^(?:.*_)?LOAD[0-9A-Fa-f]+\.parquet$`)

// Classify says what an object key holds. Only *.parquet objects are data;
// names starting with "." or "_" (temporary and marker files of Spark, Hive
// and friends) and anything under such a folder are not.
func Classify(key string) Kind {
	for _, part := range strings.Split(key, "/") {
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") {
			return NotData
		}
	}
	base := path.Base(key)
	if !strings.HasSuffix(strings.ToLower(base), ".parquet") {
		return NotData
	}
	if loadName.MatchString(base) {
		return FullLoad
	}
	return CDC
}

// SortObjects orders data objects in source order: full-load files first,
// then CDC files, each by object key. Objects that are not data are dropped.
func SortObjects(objs []Object) []Object {
	out := make([]Object, 0, len(objs))
	for _, o := range objs {
		if Classify(o.Key) != NotData {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, CompareObjects)
	return out
}

// CompareObjects compares two data objects in source order.
func CompareObjects(a, b Object) int {
	ka, kb := Classify(a.Key), Classify(b.Key)
	if ka != kb {
		return int(ka) - int(kb)
	}
	return strings.Compare(a.Key, b.Key)
}
