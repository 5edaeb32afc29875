package merge

import (
	"path"
	"strings"
)

// Kind tells full-load files from CDC files. Which object is which is a
// naming rule of DMS, decided by the source package; the batch only needs
// the kind, for ordering and for rows without an Op column.
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

// CompareSource compares two data files in source order: full-load files
// first, by key; then CDC files by their base name (the time DMS wrote
// them, whatever folders hold them: a date partition switched on later, or
// DDMMYYYY folders, must not reorder them), then by key.
func CompareSource(ka Kind, a string, kb Kind, b string) int {
	if ka != kb {
		return int(ka) - int(kb)
	}
	if ka == CDC {
		if c := strings.Compare(path.Base(a), path.Base(b)); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}
