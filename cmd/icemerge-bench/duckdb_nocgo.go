//go:build !cgo

package main

import (
	"context"
	"errors"
)

// duckdbAvailable: without cgo there is no DuckDB (its Go driver links
// libduckdb through cgo); the bench runs without the comparison and says so.
const duckdbAvailable = false

func duckdbMain(context.Context, []string) error {
	return errors.New("this icemerge-bench was built without cgo, so without DuckDB: build it with CGO_ENABLED=1 and a C compiler (make bench does)")
}
