package merge

import "strings"

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
// first, then CDC files, each by name.
func CompareSource(ka Kind, a string, kb Kind, b string) int {
	if ka != kb {
		return int(ka) - int(kb)
	}
	return strings.Compare(a, b)
}
