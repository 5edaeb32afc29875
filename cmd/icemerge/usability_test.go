package main

// The command line as a data engineer meets it: each test reproduces what a
// user did and checks the output and exit code they got.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// metadataFiles lists the metadata files of the users table under the
// world's warehouse.
func (w *world) metadataFiles() []string {
	w.t.Helper()
	got, _ := filepath.Glob(filepath.Join(w.dir, "warehouse", "test_db.db", "users", "metadata", "*.metadata.json"))
	return got
}

// The catalog and bookmarks follow the warehouse, not the folder a command
// runs in: after a run from one folder, maintain, status and show from
// another, given the same --warehouse, see the table; a command that only
// reads creates no catalog anywhere.
func TestCatalogFollowsTheWarehouse(t *testing.T) {
	w := newWorld(t)
	delete(w.envs, "ICEMERGE_CATALOG_URI")
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	here, there := filepath.Join(w.dir, "here"), filepath.Join(w.dir, "there")
	os.MkdirAll(here, 0o755)
	os.MkdirAll(there, 0o755)

	t.Chdir(here)
	if code, _, stderr := w.run("run", "--source", w.src, "--key", "user_id"); code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "warehouse", "_icemerge", "catalog.db")); err != nil {
		t.Errorf("the catalog is not under the warehouse: %v", err)
	}
	t.Chdir(there)
	if code, stdout, stderr := w.run("maintain", "--dry-run"); code != exitOK || !strings.Contains(stdout, "maintenance of test_db.users") {
		t.Errorf("maintain --dry-run from another folder: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := w.run("show"); code != exitOK || !strings.Contains(stdout, "test_db.users: 5 rows") {
		t.Errorf("show from another folder: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := w.run("status", "--source", w.src); code != exitOK || !strings.Contains(stdout, "pending:       none") {
		t.Errorf("status from another folder: exit %d\n%s%s", code, stdout, stderr)
	}
	// The user's mistake: the command without --warehouse, from the
	// repository root. It says where it looked, and leaves nothing behind.
	delete(w.envs, "ICEMERGE_WAREHOUSE")
	code, _, stderr := w.run("maintain", "--dry-run")
	if code != exitFailed || !strings.Contains(stderr, "does not exist") || !strings.Contains(stderr, "no catalog at "+filepath.Join(there, "warehouse", "_icemerge", "catalog.db")) ||
		!strings.Contains(stderr, "--warehouse") {
		t.Errorf("maintain without --warehouse: exit %d: %s", code, stderr)
	}
	if entries, _ := os.ReadDir(there); len(entries) != 0 {
		t.Errorf("a command that only reads left %v in the folder it ran in", entries)
	}
	// An s3:// warehouse with the sql catalog: no guess, a usage error.
	w.envs["ICEMERGE_WAREHOUSE"] = "s3://lake/warehouse"
	if code, _, stderr := w.run("run", "--source", w.src); code != exitUsage || !strings.Contains(stderr, "--catalog-uri is required") {
		t.Errorf("sql catalog, s3 warehouse, no --catalog-uri: exit %d: %s", code, stderr)
	}
}

// Another catalog over the same warehouse: the bookmark and the table
// disagree; following the advice (reset) never creates a second table in
// the first one's location: the run refuses, and says why.
func TestNoSecondTableInOneLocation(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if code, _, stderr := w.run("run", "--source", w.src, "--key", "user_id"); code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	before := w.metadataFiles()
	first := w.envs["ICEMERGE_CATALOG_URI"]
	w.envs["ICEMERGE_CATALOG_URI"] = filepath.Join(w.dir, "another.db")
	w.fixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	code, _, stderr := w.run("run", "--source", w.src, "--key", "user_id")
	if code != exitFailed || !strings.Contains(stderr, "disagree") || !strings.Contains(stderr, "another catalog") {
		t.Errorf("run through another catalog: exit %d: %s", code, stderr)
	}
	if code, _, stderr := w.run("bookmark", "reset"); code != exitOK {
		t.Fatalf("bookmark reset: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{{"--dry-run"}, {}} {
		code, _, stderr = w.run(append([]string{"run", "--source", w.src, "--key", "user_id"}, args...)...)
		if code != exitUsage || !strings.Contains(stderr, "metadata files are already at its location") || !strings.Contains(stderr, "never creates a second table") {
			t.Errorf("run %v after the reset: exit %d: %s", args, code, stderr)
		}
	}
	if after := w.metadataFiles(); len(after) != len(before) {
		t.Errorf("metadata files %d → %d: a second table was created in the location", len(before), len(after))
	}
	w.envs["ICEMERGE_CATALOG_URI"] = first
	if got := w.table(); got == nil || len(got.Rows) != 5 {
		t.Errorf("the first catalog's table changed: %+v", got)
	}
}

// A typo in --key is a settings error (exit 2), never a reason to
// quarantine every file: with --on-bad-file quarantine too, nothing is
// recorded, and the right key then applies every file.
func TestWrongKeyIsASettingsError(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	w.fixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	for _, extra := range [][]string{nil, {"--on-bad-file", "quarantine"}} {
		code, stdout, stderr := w.run(append([]string{"run", "--source", w.src, "--key", "id"}, extra...)...)
		if code != exitUsage || !strings.Contains(stderr, `--key id`) || !strings.Contains(stderr, "user_id") ||
			strings.Contains(stderr+stdout, "quarantine") || strings.Contains(stdout, "QUARANTINED") {
			t.Errorf("--key id %v: exit %d\n%s%s", extra, code, stdout, stderr)
		}
	}
	if st, _, err := w.store().Load(context.Background()); err != nil || len(st.Quarantined) != 0 || len(st.Files) != 0 {
		t.Errorf("bookmark after the refused runs: %d quarantined, %d applied (%v)", len(st.Quarantined), len(st.Files), err)
	}
	if code, stdout, stderr := w.run("run", "--source", w.src, "--key", "user_id"); code != exitOK || !strings.Contains(stdout, "applied 2 files") {
		t.Errorf("the right key: exit %d\n%s%s", code, stdout, stderr)
	}
	// The table's own key, contradicted: a setting too.
	w.fixture("20240814-002642123.parquet", "20240814-002700000.parquet")
	if code, _, stderr := w.run("run", "--source", w.src, "--key", "email"); code != exitUsage || !strings.Contains(stderr, "contradicts") {
		t.Errorf("--key contradicting the table: exit %d: %s", code, stderr)
	}
}

// A missing order column lists what could order the changes, and says how
// to run without one; it is a settings error.
func TestMissingOrderColumnNamesCandidates(t *testing.T) {
	w := newWorld(t)
	cols := []dmstest.Column{{Name: "id", Type: dmstest.Int32, Required: true}, {Name: "name", Type: dmstest.String},
		{Name: "modified", Type: dmstest.Timestamp}, {Name: "commit_ts", Type: dmstest.String}}
	ts := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	w.putDMS("LOAD00000001.parquet", cols, []string{"I", "I"}, []dmstest.Row{{int32(1), "a", ts, "2024-08-14 00:00:01.000000"}, {int32(2), "b", ts, "2024-08-14 00:00:01.000000"}})
	code, _, stderr := w.run("run", "--source", w.src, "--key", "id")
	for _, want := range []string{"--order-by updated_at", "modified (timestamp)", "commit_ts (DMS TimestampColumnName)", "--order-by source"} {
		if code != exitUsage || !strings.Contains(stderr, want) {
			t.Errorf("no updated_at: exit %d, stderr lacks %q:\n%s", code, want, stderr)
		}
	}
	if code, stdout, stderr := w.run("run", "--source", w.src, "--key", "id", "--order-by", "modified"); code != exitOK || !strings.Contains(stdout, "applied 1 files") {
		t.Errorf("--order-by modified: exit %d\n%s%s", code, stdout, stderr)
	}
}

// Runs that do nothing, or the wrong thing, say so: a folder of CSV objects
// names the DMS setting; a schema folder given as one table's names the
// whole-database form; a dry run without --key shows the files' columns.
func TestSilentNothingIsNotSilent(t *testing.T) {
	w := newWorld(t)
	w.envs["ICEMERGE_LOG_LEVEL"] = "warn"
	w.put("LOAD00000001.csv", []byte("I,1,user,0\n"))
	w.put("20240814-002642123.csv", []byte("U,1,user,1\n"))
	code, stdout, stderr := w.run("run", "--source", w.src, "--key", "user_id")
	if code != exitOK || !strings.Contains(stdout, "nothing new") || !strings.Contains(stderr, "DataFormat=parquet") || !strings.Contains(stderr, "2 CSV objects") {
		t.Errorf("a folder of CSV: exit %d\n%s%s", code, stdout, stderr)
	}

	w2 := newWorld(t)
	w2.envs["ICEMERGE_LOG_LEVEL"] = "warn"
	schema := filepath.Dir(w2.src)
	b, _ := os.ReadFile(filepath.Join(fixtures, "LOAD00000001.parquet"))
	for _, table := range []string{"users", "accounts"} {
		os.MkdirAll(filepath.Join(schema, table), 0o755)
		os.WriteFile(filepath.Join(schema, table, "LOAD00000001.parquet"), b, 0o644)
	}
	code, _, stderr = w2.run("run", "--source", schema, "--key", "user_id", "--dry-run")
	if code != exitOK || !strings.Contains(stderr, "look like tables (accounts, users)") || !strings.Contains(stderr, "drop --table") {
		t.Errorf("a schema folder as one table's: exit %d\n%s", code, stderr)
	}

	w3 := newWorld(t)
	w3.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	code, stdout, stderr = w3.run("run", "--source", w3.src, "--dry-run")
	for _, want := range []string{"pass --key", "user_id", "int32", "updated_at", "timestamp", "--key user_id", "updated_at (timestamp)"} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("dry run without --key: exit %d, stdout lacks %q:\n%s%s", code, want, stdout, stderr)
		}
	}
	if w3.table() != nil {
		t.Error("the dry run created the table")
	}
}

// The exit-code table of docs/operations.md is the one the command line
// uses, and each code is what a user meets in its case. Bad settings are
// 2: a wrong --key, a key contradicting the table, a missing order column,
// no AWS region, a whole database where no table has a key.
func TestExitCodesMatchTheDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)[strings.Index(string(doc), "## Exit codes"):]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	documented := map[int]string{}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \| (.+) \|$`).FindAllStringSubmatch(section, -1) {
		n, _ := strconv.Atoi(m[1])
		documented[n] = m[2]
	}
	for code, word := range map[int]string{exitOK: "done", exitFailed: "failed", exitUsage: "settings", exitLocked: "another run", exitCancelled: "cancelled"} {
		if !strings.Contains(documented[code], word) {
			t.Errorf("docs/operations.md: exit %d is %q, want it to say %q", code, documented[code], word)
		}
	}
	if len(documented) != 5 {
		t.Errorf("docs/operations.md documents exit codes %v, the command line has 0, 1, 2, 3, 130", documented)
	}

	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	none := func(string) (string, bool) { return "", false }
	code := func(args ...string) int { c, _, _ := w.run(args...); return c }
	cases := []struct {
		name string
		got  func() int
		want int
	}{
		{"wrong --key", func() int { return code("run", "--source", w.src, "--key", "id") }, exitUsage},
		{"missing order column", func() int { return code("run", "--source", w.src, "--key", "user_id", "--order-by", "nope") }, exitUsage},
		{"a run", func() int { return code("run", "--source", w.src, "--key", "user_id") }, exitOK},
		{"--key contradicting the table", func() int { return code("run", "--source", w.src, "--key", "email") }, exitUsage},
		{"no AWS region", func() int {
			t.Setenv("AWS_REGION", "")
			t.Setenv("AWS_DEFAULT_REGION", "")
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(w.dir, "none"))
			var out, errOut bytes.Buffer
			return cli(context.Background(), []string{"run", "--source", "s3://raw/db/users", "--table", "db.users", "--key", "id", "--catalog", "glue", "--warehouse", "s3://lake/wh"}, none, &out, &errOut)
		}, exitUsage},
		{"whole database, no table has a key", func() int {
			delete(w.envs, "ICEMERGE_TABLE")
			defer func() { w.envs["ICEMERGE_TABLE"] = "test_db.users" }()
			return code("run", "--source", filepath.Dir(w.src), "--namespace", "other")
		}, exitUsage},
		{"a bad file", func() int {
			w.put("20240814-002700000.parquet", []byte("junk"))
			defer os.Remove(filepath.Join(w.src, "20240814-002700000.parquet"))
			return code("run", "--source", w.src)
		}, exitFailed},
		{"locked", func() int {
			lease, err := w.store().Lock(context.Background(), "another-run", time.Hour, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer lease.Release(context.Background())
			return code("run", "--source", w.src)
		}, exitLocked},
		{"cancelled", func() int {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var out, errOut bytes.Buffer
			w.fixture("20240814-002642123.parquet", "20240814-002642123.parquet")
			defer os.Remove(filepath.Join(w.src, "20240814-002642123.parquet"))
			return cli(ctx, []string{"run", "--source", w.src}, w.lookup, &out, &errOut)
		}, exitCancelled},
	}
	for _, c := range cases {
		if got := c.got(); got != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.want)
		}
	}
}

// --report to a folder that does not exist, after a committed run: the run
// exits 0 (its commit stands) and says the report failed.
func TestReportFailureKeepsTheRunsExitCode(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	code, stdout, stderr := w.run("run", "--source", w.src, "--key", "user_id", "--report", "/nonexistent/dir/r.json")
	if code != exitOK || !strings.Contains(stdout, "applied 1 files") || !strings.Contains(stderr, "writing its report failed") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	if got := w.table(); got == nil || len(got.Rows) != 5 {
		t.Errorf("table after the run: %+v", got)
	}
}

// show: a key lookup, JSON lines and CSV, and a --limit that stops reading.
func TestShowLookupFormatsAndLimit(t *testing.T) {
	w := newWorld(t)
	w.history()
	code, stdout, stderr := w.run("show", "--where", "user_id=5")
	if code != exitOK || !strings.Contains(stdout, "1 rows where user_id=5") || !strings.Contains(stdout, "u5") || strings.Count(stdout, "\n") != 3 {
		t.Errorf("--where user_id=5: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = w.run("show", "--where", "user_id=3", "--format", "json")
	var row map[string]any
	if err := json.Unmarshal([]byte(stdout), &row); code != exitOK || err != nil || row["name"] != "back 3" || row["user_id"] != float64(3) {
		t.Errorf("--format json: exit %d, %v: %s", code, err, stdout)
	}
	code, stdout, _ = w.run("show", "--limit", "0", "--format", "csv")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != exitOK || lines[0] != "user_id,name,updated_at" || len(lines) != 1+17 || !strings.HasPrefix(lines[1], "1,u1 third,") {
		t.Errorf("--format csv: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = w.run("show", "--limit", "2")
	if code != exitOK || !strings.Contains(stdout, "the first 2 of 17 rows read") || !strings.Contains(stdout, "15 more rows") {
		t.Errorf("--limit 2: exit %d\n%s", code, stdout)
	}
	for _, bad := range [][]string{{"--where", "user_id"}, {"--where", "user_id=x"}, {"--where", "nope=1"}, {"--format", "xml"}} {
		if code, _, stderr := w.run(append([]string{"show"}, bad...)...); code != exitUsage {
			t.Errorf("show %v: exit %d, want 2: %s", bad, code, stderr)
		}
	}
}

// --where reads only the data files and row groups that may hold the key,
// and --limit stops after the first rows: measured by the scan's figures.
func TestShowPrunesAndStopsEarly(t *testing.T) {
	w := newWorld(t)
	w.history() // five data files, four delete files
	ctx, env, err := icemerge.Open(context.Background(), w.common(), "", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	d, err := env.Deps("test_db.users", "")
	if err != nil {
		t.Fatal(err)
	}
	all := icemerge.ShowOptions{Common: w.common(), Limit: 0}
	rows, err := icemerge.Show(ctx, all, d)
	if err != nil {
		t.Fatal(err)
	}
	files := rows.Scan.Files
	rows.Release()
	lookup := all
	// The data files hold keys 1-20 (the load), 1-21, 1-5, 1-6 and 10-21:
	// two of them cannot hold 20.
	lookup.Where = "user_id=20"
	rows, err = icemerge.Show(ctx, lookup, d)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Len() != 1 || rows.Scan.Files != 3 || rows.Scan.FilesPruned != 2 || files != 5 {
		t.Errorf("--where user_id=20: %d rows, %d files read, %d pruned; want 1 row from 3 of %d files, 2 pruned", rows.Len(), rows.Scan.Files, rows.Scan.FilesPruned, files)
	}
	rows.Release()
	// The scan reads ahead of its caller (two files queued, a third being
	// read), so it is one row that must stop it before the last file:
	// with more rows wanted, the files read depend on the goroutines'
	// timing.
	limited := all
	limited.Limit = 1
	rows, err = icemerge.Show(ctx, limited, d)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Len() != 1 || !rows.More || rows.Scan.Files >= files {
		t.Errorf("--limit 1: %d rows, more %v, %d of %d files read", rows.Len(), rows.More, rows.Scan.Files, files)
	}
	rows.Release()
}

// status and bookmark show take --json; status names icemerge's own
// maintenance commits.
func TestStatusAndBookmarkJSON(t *testing.T) {
	w := newWorld(t)
	w.history()
	if code, _, stderr := w.run("maintain", "--only", "compact"); code != exitOK {
		t.Fatalf("maintain: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := w.run("status", "--source", w.src)
	if code != exitOK || !regexp.MustCompile(`last snapshot: \d+ at \S+ by icemerge maintain \(compact`).MatchString(stdout) {
		t.Errorf("status after a compaction: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = w.run("status", "--source", w.src, "--json")
	var st icemerge.StatusReport
	if err := json.Unmarshal([]byte(stdout), &st); code != exitOK || err != nil || st.Tables[0].Snapshot == nil || !strings.HasPrefix(st.Tables[0].Snapshot.Maintenance, "compact") {
		t.Errorf("status --json: exit %d, %v\n%s", code, err, stdout)
	}
	code, stdout, _ = w.run("bookmark", "show", "--json", "--files")
	var bm icemerge.BookmarkReport
	if err := json.Unmarshal([]byte(stdout), &bm); code != exitOK || err != nil || !bm.Saved || bm.Runs != 5 || bm.AppliedFiles != 5 || len(bm.Files) != 5 || bm.Table != "test_db.users" {
		t.Errorf("bookmark show --json: exit %d, %v\n%s", code, err, stdout)
	}
}
