package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// --report writes what the run did as JSON, to a file or alone on stdout,
// also when the run fails.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "users")
	os.MkdirAll(src, 0o755)
	for _, name := range []string{"LOAD00000001.parquet", "20240814-002642123.parquet"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "users", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, name), b, 0o644)
	}
	common := []string{"--source", src, "--key", "user_id", "--table", "test_db.users", "--log-level", "error",
		"--warehouse", "file://" + filepath.Join(dir, "wh"), "--catalog-uri", filepath.Join(dir, "c.db")}
	run := func(args ...string) (int, []byte, Report) {
		var out, errOut bytes.Buffer
		code := cli(context.Background(), append([]string{"run"}, append(args, common...)...), func(string) (string, bool) { return "", false }, &out, &errOut)
		var rep Report
		b := out.Bytes()
		if i := slices.Index(args, "--report"); i >= 0 && args[i+1] != "-" {
			var err error
			if b, err = os.ReadFile(args[i+1]); err != nil {
				t.Fatalf("report file: %v (stderr %s)", err, errOut.String())
			}
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, b)
		}
		return code, b, rep
	}
	file := filepath.Join(dir, "report.json")
	code, _, rep := run("--report", file)
	if code != exitOK || !rep.OK || len(rep.Tables) != 1 {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	r := rep.Tables[0]
	// The users example: 5 loaded rows, then I 6, U 1, D 4 in one batch
	// with the load: 8 changes, 6 keys.
	want := TableReport{Table: "test_db.users", Outcome: "committed", Files: 2, RowsRead: 8, Inserts: 6, Updates: 1, Deletes: 1,
		Keys: 6, Duplicates: 2, RowsInserted: 5, RowsUpdated: 0, RowsDeleted: 0}
	if r.Table != want.Table || r.Outcome != want.Outcome || r.Files != want.Files || r.RowsRead != want.RowsRead ||
		r.Inserts != want.Inserts || r.Updates != want.Updates || r.Deletes != want.Deletes || r.Keys != want.Keys ||
		r.Duplicates != want.Duplicates || r.RowsInserted != want.RowsInserted || r.SnapshotID == 0 || r.BytesRead == 0 || r.BytesWritten == 0 {
		t.Errorf("report %+v\nwant counts of %+v", r, want)
	}
	for _, p := range []string{"list", "read", "dedupe", "locate", "write_data", "commit", "total"} {
		if _, ok := r.Durations[p]; !ok {
			t.Errorf("no duration for %s: %v", p, r.Durations)
		}
	}
	// Nothing new, on stdout.
	code, raw, rep := run("--report", "-")
	if code != exitOK || rep.Tables[0].Outcome != "nothing new" {
		t.Errorf("second run: exit %d, report %s", code, raw)
	}
	// A failure is reported too.
	os.WriteFile(filepath.Join(src, "20240814-002700000.parquet"), []byte("junk"), 0o644)
	code, raw, rep = run("--report", "-")
	if code != exitFailed || rep.OK || rep.Tables[0].Outcome != "failed" || rep.Tables[0].Error == "" {
		t.Errorf("bad file: exit %d, report %s", code, raw)
	}
}
