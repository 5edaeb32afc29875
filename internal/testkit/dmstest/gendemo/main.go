// Command gendemo writes the DMS Parquet fixtures of the worked users example
// of the project context: the full load file LOAD00000001.parquet
// and the CDC file 20240814-002642123.parquet, as DMS writes them under
// raw_input/test_db/users/ with IncludeOpForFullLoad=true and GZIP.
//
// Usage:
//
//	go run ./internal/testkit/dmstest/gendemo -out testdata/users
//
// The output is deterministic: the same bytes on every run.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

var columns = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32, Required: true},
	{Name: "first_name", Type: dmstest.String},
	{Name: "last_name", Type: dmstest.String},
	{Name: "email", Type: dmstest.String},
	{Name: "created_at", Type: dmstest.Timestamp},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

func at(hh, mm, ss int) time.Time { return time.Date(2024, 8, 14, hh, mm, ss, 0, time.UTC) }

// user is the row of user id as the full load copies it: user_id 1..5 hold
// last_name "0".."4".
func user(id int32) dmstest.Row {
	n := fmt.Sprint(id - 1)
	return dmstest.Row{id, "user", n, "user" + n + "@example.com", at(0, 0, 36), at(0, 0, 36)}
}

func main() {
	out := flag.String("out", "testdata/users", "directory to write the fixtures to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gendemo:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	var load []dmstest.Row
	var loadOps []string
	for id := int32(1); id <= 5; id++ {
		load = append(load, user(id))
		loadOps = append(loadOps, "I")
	}

	insert := dmstest.Row{int32(6), "user", "5", "user5@example.com", at(0, 26, 34), at(0, 26, 34)}
	update := user(1)
	update[3] = "update-user0@example.com"
	update[5] = at(0, 26, 42)
	del := user(4) // a delete carries the row's last image

	files := []struct {
		name string
		ops  []string
		rows []dmstest.Row
	}{
		{"LOAD00000001.parquet", loadOps, load},
		{"20240814-002642123.parquet", []string{"I", "U", "D"}, []dmstest.Row{insert, update, del}},
	}
	for _, f := range files {
		path := filepath.Join(out, f.name)
		if err := dmstest.WriteFile(path, columns, f.ops, f.rows, dmstest.Options{Op: true}); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
