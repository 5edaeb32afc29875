package main

// The command line, tested from the user's side: run the commands, check
// their output and exit codes. The library's behaviour is tested in the
// root package; these tests check what the command line adds to it.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/clikit"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/icecheck"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMain(m *testing.M) { testservers.Main(m) }

// fixtures is the worked users example's folder.
var fixtures = filepath.Join("..", "..", "testdata", "users")

// world is one table's local world for the command line: a source folder,
// a warehouse and a SQLite catalog, named by ICEMERGE_* variables as a
// deployment names them.
type world struct {
	t    *testing.T
	dir  string
	src  string
	envs map[string]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, dir: dir, src: filepath.Join(dir, "raw_input", "test_db", "users")}
	if err := os.MkdirAll(w.src, 0o755); err != nil {
		t.Fatal(err)
	}
	w.envs = map[string]string{
		"ICEMERGE_TABLE":       "test_db.users",
		"ICEMERGE_WAREHOUSE":   "file://" + filepath.Join(dir, "warehouse"),
		"ICEMERGE_CATALOG_URI": filepath.Join(dir, "icemerge.db"),
		"ICEMERGE_LOG_LEVEL":   "error",
	}
	return w
}

func (w *world) lookup(k string) (string, bool) { v, ok := w.envs[k]; return v, ok }

// run runs icemerge with args and returns its exit code and output.
func (w *world) run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = cli(context.Background(), args, w.lookup, &out, &errOut)
	return code, out.String(), errOut.String()
}

// put writes an object into the source folder.
func (w *world) put(key string, b []byte) {
	w.t.Helper()
	p := filepath.Join(w.src, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// fixture copies a file of the users example into the source folder.
func (w *world) fixture(name, to string) {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		w.t.Fatal(err)
	}
	w.put(to, b)
}

// putDMS writes rows as a DMS Parquet file into the source folder.
func (w *world) putDMS(key string, cols []dmstest.Column, ops []string, rows []dmstest.Row) {
	w.t.Helper()
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, ops, rows, dmstest.Options{Op: true}); err != nil {
		w.t.Fatal(err)
	}
	w.put(key, buf.Bytes())
}

// store is the table's bookmark store (and run lock).
func (w *world) store() *bookmark.Bookmarks {
	return bookmark.NewFileStore(filepath.Join(w.dir, "warehouse", "_icemerge"), w.envs["ICEMERGE_TABLE"])
}

// common are the settings the world names.
func (w *world) common() icemerge.Common {
	c := icemerge.Common{Table: w.envs["ICEMERGE_TABLE"], Catalog: catalog.KindSQL, CatalogURI: w.envs["ICEMERGE_CATALOG_URI"], Warehouse: w.envs["ICEMERGE_WAREHOUSE"]}
	if err := c.Complete(func(string) (string, bool) { return "", false }); err != nil {
		w.t.Fatal(err)
	}
	return c
}

// table reads the table with the independent reader; nil when it does not
// exist.
func (w *world) table() *icecheck.Table {
	w.t.Helper()
	return readTable(w.t, w.common())
}

// readTable reads the table c names with the independent reader.
func readTable(t *testing.T, c icemerge.Common) *icecheck.Table {
	t.Helper()
	ctx, env, err := icemerge.Open(context.Background(), c, "", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	tbl, ok, err := env.Catalog.Load(ctx, c.Table)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	got, err := icecheck.Read(ctx, tbl.MetadataLocation())
	if err != nil {
		t.Fatalf("icecheck: %v", err)
	}
	return got
}

// The CLI end to end, as `make demo` runs it, against a golden file.
func TestCLIDemoGolden(t *testing.T) {
	w := newWorld(t)
	// Settings from the environment, as cron and Step Functions pass them.
	w.envs["ICEMERGE_SOURCE"] = w.src
	w.envs["ICEMERGE_KEY"] = "user_id"
	var out bytes.Buffer
	run := func(args ...string) {
		t.Helper()
		code, stdout, stderr := w.run(args...)
		out.WriteString(stdout)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	run("run")
	w.fixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	run("run")
	run("run")
	out.WriteString("--- show\n")
	run("show")
	out.WriteString("--- bookmark show\n")
	run("bookmark", "show")
	got := regexp.MustCompile(`snapshot \d+`).ReplaceAllString(out.String(), "snapshot N")
	got = regexp.MustCompile(`\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}`).ReplaceAllString(got, "RUN-ID")
	got = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(got, "TIME")
	got = strings.ReplaceAll(got, w.dir, "DIR")
	golden(t, "demo.golden", got)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if intended):\n%s", path, got)
	}
}

func TestExitCodes(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	dir := t.TempDir()
	tests := []struct {
		args []string
		want int
	}{
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"run"}, exitUsage}, // no --source, no --table
		{[]string{"run", "--source", dir, "--table", "nodot"}, exitUsage}, // bad table name
		{[]string{"run", "--source", dir, "--table", "a.b", "--catalog", "hive"}, exitUsage},
		{[]string{"run", "--source", dir, "--table", "a.b", "--catalog-uri", filepath.Join(dir, "c.db"), "--warehouse", "file://" + dir}, exitUsage}, // new table, no --key
		{[]string{"run", "--source", filepath.Join(dir, "missing"), "--table", "a.b", "--key", "id", "--catalog-uri", filepath.Join(dir, "c.db"), "--warehouse", "file://" + dir}, exitFailed},
		{[]string{"run", "-h"}, exitOK},
		{[]string{"help"}, exitOK},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		if got := cli(context.Background(), tc.args, none, &out, &errOut); got != tc.want {
			t.Errorf("icemerge %v: exit %d, want %d (stderr: %s)", tc.args, got, tc.want, errOut.String())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	b, _ := os.ReadFile(filepath.Join(fixtures, "LOAD00000001.parquet"))
	os.WriteFile(filepath.Join(dir, "LOAD00000001.parquet"), b, 0o644)
	args := []string{"run", "--source", dir, "--table", "a.b", "--key", "user_id", "--catalog-uri", filepath.Join(dir, "c.db"), "--warehouse", "file://" + dir + "/wh"}
	if got := cli(ctx, args, none, &out, &errOut); got != exitCancelled {
		t.Errorf("cancelled run: exit %d, want %d (%s)", got, exitCancelled, errOut.String())
	}
}

func TestLockedExitCode(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if _, err := w.store().Lock(context.Background(), "another-run", time.Hour, time.Now); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := w.run("run", "--source", w.src, "--key", "user_id"); code != exitLocked || !strings.Contains(stderr, "another-run") {
		t.Errorf("exit %d (%s), want %d naming the holder", code, stderr, exitLocked)
	}
}

// Flags once took one dash (Go's flag package): -table still works.
func TestSingleDashFlags(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if code, stdout, stderr := w.run("run", "-source", w.src, "-key=user_id", "-log-level", "error"); code != exitOK || !strings.Contains(stdout, "applied 1 files") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// --report writes what the run did as JSON, to a file or alone on stdout,
// also when the run fails.
func TestReport(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	w.fixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	run := func(args ...string) (int, []byte, icemerge.Report) {
		code, stdout, stderr := w.run(append([]string{"run", "--source", w.src, "--key", "user_id"}, args...)...)
		var rep icemerge.Report
		b := []byte(stdout)
		if i := slices.Index(args, "--report"); i >= 0 && args[i+1] != "-" {
			var err error
			if b, err = os.ReadFile(args[i+1]); err != nil {
				t.Fatalf("report file: %v (stderr %s)", err, stderr)
			}
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, b)
		}
		return code, b, rep
	}
	file := filepath.Join(w.dir, "report.json")
	code, _, rep := run("--report", file)
	if code != exitOK || !rep.OK || len(rep.Tables) != 1 {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	r := rep.Tables[0]
	// The users example: 5 loaded rows, then I 6, U 1, D 4 in one batch
	// with the load: 8 changes, 6 keys.
	want := icemerge.TableReport{Table: "test_db.users", Outcome: "committed", Files: 2, RowsRead: 8, Inserts: 6, Updates: 1, Deletes: 1,
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
	w.put("20240814-002700000.parquet", []byte("junk"))
	code, raw, rep = run("--report", "-")
	if code != exitFailed || rep.OK || rep.Tables[0].Outcome != "failed" || rep.Tables[0].Error == "" {
		t.Errorf("bad file: exit %d, report %s", code, raw)
	}
}

// The CLI: bad input is exit 1 with the object named on stderr; with
// --on-bad-file quarantine exit 0, the file on stdout and in `bookmark show`.
func TestBadInputExitCodes(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	badTS := time.Date(2024, 8, 14, 0, 30, 0, 0, time.UTC)
	cols := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}, {Name: "email", Type: dmstest.String}, {Name: "updated_at", Type: dmstest.Timestamp}}
	w.putDMS("20240814-002642123.parquet", cols, []string{"U", "Z"}, []dmstest.Row{{int32(1), "a", badTS}, {int32(2), "b", badTS}})
	code, _, stderr := w.run("run", "--source", w.src, "--key", "user_id")
	if code != exitFailed || !strings.Contains(stderr, "20240814-002642123.parquet: row 2") || !strings.Contains(stderr, `"Z"`) {
		t.Errorf("exit %d, stderr %q; want 1 naming the file, row and value", code, stderr)
	}
	code, stdout, stderr := w.run("run", "--source", w.src, "--key", "user_id", "--on-bad-file", "quarantine")
	if code != exitOK || !strings.Contains(stdout, "QUARANTINED 20240814-002642123.parquet") {
		t.Errorf("quarantine: exit %d, stdout %q, stderr %q; want 0 and the file reported", code, stdout, stderr)
	}
	code, stdout, _ = w.run("bookmark", "show")
	if code != exitOK || !strings.Contains(stdout, "quarantined files: 1") || !strings.Contains(stdout, "20240814-002642123.parquet") {
		t.Errorf("bookmark show: exit %d:\n%s", code, stdout)
	}
	if code, _, stderr := w.run("run", "--source", w.src, "--on-bad-file", "skip"); code != exitUsage || !strings.Contains(stderr, "--on-bad-file") {
		t.Errorf("--on-bad-file skip: exit %d, %q; want 2", code, stderr)
	}
}

// `icemerge status` on the command line: exit 0, text or --json, and every
// usage problem at once.
func TestStatusCLI(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if code, stdout, stderr := w.run("status", "--source", w.src); code != exitOK ||
		!strings.Contains(stdout, "pending:       1 file,") || !strings.Contains(stdout, "does not exist yet") {
		t.Errorf("status: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := w.run("status", "--source", w.src, "--json")
	if code != exitOK {
		t.Fatalf("status --json: exit %d: %s", code, stderr)
	}
	var rep icemerge.StatusReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Tables) != 1 || rep.Tables[0].Pending.Files != 1 || rep.Tables[0].Table != "test_db.users" {
		t.Errorf("status --json: %v\n%s", err, stdout)
	}
	var out, errOut bytes.Buffer
	if code := cli(context.Background(), []string{"status", "--table", "Bad"}, func(string) (string, bool) { return "", false }, &out, &errOut); code != exitUsage ||
		!strings.Contains(errOut.String(), "--source is required") || !strings.Contains(errOut.String(), "lower case") {
		t.Errorf("status without --source, bad table: exit %d, %s", code, errOut.String())
	}
}

// The command line: --to in both forms, the exit codes, and what reset and
// rewind say the next run processes.
func TestRewindCLI(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	w.fixture("20240814-002642123.parquet", "2024/08/14/20240814-002642123.parquet")
	run := func(want int, args ...string) string {
		t.Helper()
		code, stdout, stderr := w.run(args...)
		if code != want {
			t.Fatalf("icemerge %v: exit %d, want %d\n%s%s", args, code, want, stdout, stderr)
		}
		return stdout + stderr
	}
	run(exitOK, "run", "--source", w.src, "--key", "user_id")

	for _, to := range []string{"2024-08-14T00:26:42.123Z", "2024-08-14T02:26:42.123+02:00", "20240814-002642123", "2024/08/14/20240814-002642123.parquet"} {
		if got := run(exitOK, "bookmark", "rewind", "--to", to); !strings.Contains(got, "nothing to rewind") {
			t.Errorf("--to %s (the newest file's own time) rewound something:\n%s", to, got)
		}
	}
	got := run(exitOK, "bookmark", "rewind", "--to", "20240814-002642122")
	if !strings.Contains(got, "forgot 1 applied file named after it") || !strings.Contains(got, "the next run re-applies 1 file from 2024/08/14/20240814-002642123.parquet on") {
		t.Errorf("rewind without --source:\n%s", got)
	}
	got = run(exitOK, "bookmark", "rewind", "--to", "2024-08-14T00:00:00Z", "--source", w.src)
	if !strings.Contains(got, "nothing to rewind") || !strings.Contains(got, "the next run processes 1 file, 2380 bytes (2.3 KiB), from 2024/08/14/20240814-002642123.parquet on (0 of them") {
		t.Errorf("rewind with --source:\n%s", got)
	}
	run(exitOK, "run", "--source", w.src)
	if got := run(exitOK, "status", "--source", w.src); !strings.Contains(got, "rewound:       to 2024-08-14T00:26:42.122Z") || !strings.Contains(got, "pending:       none") {
		t.Errorf("status after the rewind and a run:\n%s", got)
	}

	for _, bad := range [][]string{
		{"bookmark", "rewind"},
		{"bookmark", "rewind", "--to", "yesterday"},
		{"bookmark", "rewind", "--to", "2024-08-14"},
		{"bookmark", "rewind", "--to", "20241314-000000000"},
		{"bookmark", "frobnicate"},
	} {
		run(exitUsage, bad...)
	}

	lease, err := w.store().Lock(context.Background(), "another-run", time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(exitLocked, "bookmark", "rewind", "--to", "20240814-000000000"); !strings.Contains(got, "another-run") {
		t.Errorf("rewind under a lock: %s", got)
	}
	lease.Release(context.Background())

	got = run(exitOK, "bookmark", "reset")
	if !strings.Contains(got, "the next run lists the whole source folder and applies every file, the full load first") {
		t.Errorf("reset:\n%s", got)
	}
}

// bookmark reset takes the run lock too: a run in progress would save its
// bookmark over the reset.
func TestResetRefusedWhileARunHoldsTheTable(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if code, _, stderr := w.run("run", "--source", w.src, "--key", "user_id"); code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	files := func() int {
		st, _, err := w.store().Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(st.Files)
	}
	lease, err := w.store().Lock(context.Background(), "another-run", time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := w.run("bookmark", "reset"); code != exitLocked || !strings.Contains(out+stderr, "another-run") {
		t.Errorf("reset under a held lock: exit %d, %q; want exit 3 naming the holder", code, out+stderr)
	}
	if n := files(); n != 1 {
		t.Errorf("the refused reset changed the bookmark: %d files", n)
	}
	lease.Release(context.Background())
	if code, out, stderr := w.run("bookmark", "reset"); code != exitOK || files() != 0 {
		t.Errorf("reset: exit %d, %q, %d files left", code, out+stderr, files())
	}
}

// mwCols are the columns of the maintenance workload's DMS files.
var mwCols = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32, Required: true},
	{Name: "name", Type: dmstest.String},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

// history writes five DMS files (a load, then updates, deletes and
// re-inserts), each applied by its own run, and returns the table's
// model: five data files and four delete files.
func (w *world) history() map[int64]string {
	w.t.Helper()
	model := map[int64]string{}
	ts := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	var load []any
	for i := 1; i <= 20; i++ {
		load = append(load, "I", i, fmt.Sprintf("user %d", i))
	}
	for n, changes := range [][]any{
		load,
		{"U", 1, "u1", "U", 2, "u2", "D", 3, "", "D", 4, "", "I", 21, "new 21"},
		{"U", 1, "u1 again", "D", 21, "", "I", 3, "back 3", "U", 5, "u5"},
		{"D", 6, "", "I", 6, "re 6", "U", 1, "u1 third", "U", 7, "x", "D", 7, ""},
		{"I", 21, "back 21", "D", 8, "", "D", 9, "", "U", 10, "u10"},
	} {
		var ops []string
		var rows []dmstest.Row
		for i := 0; i < len(changes); i += 3 {
			op, id, name := changes[i].(string), changes[i+1].(int), changes[i+2].(string)
			ts = ts.Add(time.Second)
			ops = append(ops, op)
			rows = append(rows, dmstest.Row{int32(id), name, ts})
			if op == "D" {
				delete(model, int64(id))
			} else {
				model[int64(id)] = name
			}
		}
		key := "LOAD00000001.parquet"
		if n > 0 {
			key = ts.Format("20060102-150405") + fmt.Sprintf("%03d.parquet", n+1)
		}
		w.putDMS(key, mwCols, ops, rows)
		if code, stdout, stderr := w.run("run", "--source", w.src, "--key", "user_id"); code != exitOK || !strings.Contains(stdout, "applied 1 files") {
			w.t.Fatalf("run %d: exit %d\n%s%s", n+1, code, stdout, stderr)
		}
	}
	return model
}

// checkModel compares the table with the model.
func (w *world) checkModel(when string, model map[int64]string) *icecheck.Table {
	w.t.Helper()
	got := w.table()
	rows := map[int64]string{}
	for _, r := range got.Rows {
		rows[r["user_id"].(int64)] = r["name"].(string)
	}
	if len(got.Rows) != len(rows) || !reflect.DeepEqual(rows, model) {
		w.t.Errorf("%s: rows\n %v\nwant %v", when, rows, model)
	}
	return got
}

// The command: dry run, summary, report, exit codes.
func TestMaintainCLI(t *testing.T) {
	w := newWorld(t)
	model := w.history()
	run := func(args ...string) (int, string, string) { return w.run(append([]string{"maintain"}, args...)...) }
	before := w.table()
	code, out, stderr := run("--dry-run")
	if code != exitOK || !strings.Contains(out, "would compact 5 of 5 data files") || !strings.Contains(out, "would remove 4 of 4 delete files") {
		t.Errorf("dry run: exit %d\n%s%s", code, out, stderr)
	}
	if got := w.table(); got.SnapshotID != before.SnapshotID || got.DeleteFiles != before.DeleteFiles {
		t.Errorf("the dry run changed the table")
	}

	for _, bad := range [][]string{
		{"--only", "compact,vacuum"},
		{"--orphan-older-than", "10m"},
		{"--retain-last", "0"},
		{"--target-file-size", "big"},
		{"--expire-older-than", "soon"},
	} {
		if code, _, stderr := run(bad...); code != exitUsage {
			t.Errorf("maintain %v: exit %d, want %d (%s)", bad, code, exitUsage, stderr)
		}
	}

	// Locked by a run: exit 3, nothing done.
	lease, err := w.store().Lock(context.Background(), "a-run", time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(); code != exitLocked || !strings.Contains(stderr, "a-run") {
		t.Errorf("locked: exit %d (%s), want %d naming the holder", code, stderr, exitLocked)
	}
	lease.Release(context.Background())

	report := filepath.Join(t.TempDir(), "maintain.json")
	code, out, stderr = run("--expire-older-than", "0d", "--retain-last", "1", "--orphan-older-than", "3d", "--target-file-size", "64MiB", "--report", report)
	if code != exitOK {
		t.Fatalf("maintain: exit %d: %s", code, stderr)
	}
	t.Logf("maintain output:\n%s", out)
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep icemerge.MaintainReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Compact == nil || rep.Compact.Rewritten != 5 || rep.Compact.DeleteFilesRemoved != 4 || rep.Expire == nil || len(rep.Expire.Expired) == 0 ||
		rep.Manifests == nil || rep.Orphans == nil || !reflect.DeepEqual(rep.Steps, icemerge.AllSteps) {
		t.Errorf("report:\n%s", b)
	}
	w.checkModel("after the command", model)
	// --report -: the JSON alone on stdout.
	code, out, _ = run("--only", "compact", "--report", "-")
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || rep.Compact == nil || rep.Compact.Rewritten != 0 {
		t.Errorf("--report -: exit %d, %v:\n%s", code, err, out)
	}
	// A table that does not exist: exit 1.
	w.envs["ICEMERGE_TABLE"] = "test_db.missing"
	if code, _, stderr := run(); code != exitFailed || !strings.Contains(stderr, "does not exist") {
		t.Errorf("missing table: exit %d (%s)", code, stderr)
	}
	if _, out, _ := w.run("help"); !strings.Contains(out, "maintain") {
		t.Errorf("usage lacks maintain:\n%s", out)
	}
}

// The run's end-of-run compaction flags, and the size and age flags.
func TestMaintainRunFlags(t *testing.T) {
	w := newWorld(t)
	for args, ok := range map[string]bool{
		"--compact-when-deletes 10":                        true,
		"--compact-when-files 50 --compact-when-deletes 0": true,
		"--compact-when-deletes -1":                        false,
		"--compact-when-files many":                        false,
	} {
		code, _, stderr := w.run(append([]string{"run", "--source", w.src, "--key", "user_id", "--dry-run"}, strings.Fields(args)...)...)
		if (code == exitOK) != ok || (!ok && code != exitUsage) {
			t.Errorf("%s: exit %d (%s), want ok %v", args, code, stderr, ok)
		}
	}
	for _, args := range [][]string{{"--target-file-size", "1GiB"}, {"--target-file-size", "4096"}, {"--expire-older-than", "7d"}, {"--orphan-older-than", "72h"}} {
		if code, _, stderr := w.run(append([]string{"maintain", "--dry-run"}, args...)...); code == exitUsage {
			t.Errorf("maintain %v: exit %d: %s", args, code, stderr)
		}
	}
}

func TestMaxBytesFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	none := func(string) (string, bool) { return "", false }
	if code := cli(context.Background(), []string{"run", "--source", t.TempDir(), "--table", "a.b", "--max-bytes", "lots"}, none, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "max-bytes") {
		t.Errorf("--max-bytes lots: exit %d, %s", code, errOut.String())
	}
	for _, v := range []string{"512MiB", "2GiB", "1048576"} {
		errOut.Reset()
		env := func(k string) (string, bool) { return v, k == "ICEMERGE_MAX_BYTES" }
		if code := cli(context.Background(), []string{"run", "--table", "a.b"}, env, &out, &errOut); code != exitUsage || strings.Contains(errOut.String(), "MAX_BYTES") {
			t.Errorf("ICEMERGE_MAX_BYTES=%s was not taken: %s", v, errOut.String())
		}
	}
}

// The config is checked before anything runs: unknown settings, bad
// patterns and two folders mapped to one table are usage errors.
func TestDatabaseConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(dir, "src", f), 0o755)
	}
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown field", "tables:\n  a:\n    keys: [id]\n", "keys"},
		{"bad pattern", "include: ['[']\n", "pattern"},
		{"same target", "tables:\n  a:\n    target: t\n  b:\n    target: t\n", "both map to table"},
		{"upper-case target", "tables:\n  a:\n    target: T\n", "lower-case"},
		{"source and a column", "defaults:\n  order_by: [source, updated_at]\n", "stands alone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c.yaml")
			os.WriteFile(cfg, []byte(c.yaml), 0o644)
			var out, errOut bytes.Buffer
			code := cli(context.Background(), []string{"run", "--source", filepath.Join(dir, "src"), "--config", cfg,
				"--warehouse", "file://" + filepath.Join(dir, "wh"), "--catalog-uri", filepath.Join(dir, "c.db")},
				func(string) (string, bool) { return "", false }, &out, &errOut)
			if code != exitUsage || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, errOut.String(), c.want)
			}
		})
	}
	// A partition spec naming no column fails its table before anything is
	// written, with the column named.
	load, err := os.ReadFile(filepath.Join(fixtures, "LOAD00000001.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "db2", "users"), 0o755)
	os.WriteFile(filepath.Join(dir, "db2", "users", "LOAD00000001.parquet"), load, 0o644)
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("tables:\n  users:\n    key: user_id\n    partition: [\"bucket(4, nope)\"]\n"), 0o644)
	{
		var out, errOut bytes.Buffer
		code := cli(context.Background(), []string{"run", "--source", filepath.Join(dir, "db2"), "--config", cfg,
			"--warehouse", "file://" + filepath.Join(dir, "wh2"), "--catalog-uri", filepath.Join(dir, "c2.db")},
			func(string) (string, bool) { return "", false }, &out, &errOut)
		if code != exitUsage || !strings.Contains(out.String()+errOut.String(), "nope") {
			t.Errorf("bad partition spec: exit %d, stdout %q, stderr %q; want exit 2 (a setting) naming the column", code, out.String(), errOut.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "wh2", "db2.db", "users")); err == nil {
			t.Error("the table was created despite its bad partition spec")
		}
	}
	// The database flags with --table: a usage error, not silently ignored.
	var out, errOut bytes.Buffer
	code := cli(context.Background(), []string{"run", "--source", dir, "--table", "a.b", "--parallel", "3"},
		func(string) (string, bool) { return "", false }, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "whole-database") {
		t.Errorf("--parallel with --table: exit %d, stderr %q", code, errOut.String())
	}
}

// A whole database from the command line: --namespace and --report -,
// every table in the report.
func TestWholeDatabaseCLI(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	schema := filepath.Dir(w.src)
	cfg := filepath.Join(w.dir, "db.yaml")
	os.WriteFile(cfg, []byte("defaults:\n  key: user_id\n"), 0o644)
	delete(w.envs, "ICEMERGE_TABLE")
	code, stdout, stderr := w.run("run", "--source", schema, "--config", cfg, "--namespace", "app", "--report", "-")
	var rep icemerge.Report
	if err := json.Unmarshal([]byte(stdout), &rep); code != exitOK || err != nil || len(rep.Tables) != 1 || rep.Tables[0].Table != "app.users" || rep.Tables[0].Outcome != "committed" {
		t.Errorf("exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
}

// The sql catalog's URI: anything but a SQLite file or a PostgreSQL URI
// is exit 2, and no message shows a password.
func TestCatalogURIExitCode(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	var out, errOut bytes.Buffer
	none := func(string) (string, bool) { return "", false }
	if code := cli(context.Background(), []string{"show", "--table", "a.b", "--catalog-uri", "mysql://u:" + pw + "@h/db"}, none, &out, &errOut); code != exitUsage ||
		strings.Contains(errOut.String(), pw) {
		t.Errorf("exit %d, stderr %q: want %d, no password", code, errOut.String(), exitUsage)
	}
}

// Several `icemerge run`s of one table at once, each with its own
// connections to a PostgreSQL catalog that none has used yet: every one
// opens the catalog (creating its tables once), exactly one applies the
// files and the others exit 3 or find nothing new.
func TestConcurrentCLIRunsOnPostgres(t *testing.T) {
	uri := testservers.Postgres(t)
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	w.fixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	// The URI comes from the environment, as a deployment would set it.
	w.envs["ICEMERGE_CATALOG_URI"] = uri
	args := []string{"run", "--source", w.src, "--key", "user_id"}
	const runs = 4
	codes := make([]int, runs)
	stderr := make([]string, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() { codes[i], _, stderr[i] = w.run(args...) })
	}
	wg.Wait()
	applied := 0
	for i, code := range codes {
		switch {
		case code == exitOK:
			applied++
		case code == exitLocked && strings.Contains(stderr[i], "another run"):
		default:
			t.Errorf("run %d: exit %d: %s", i, code, stderr[i])
		}
	}
	t.Logf("exit codes %v", codes)
	if applied < 1 {
		t.Fatalf("exit codes %v: no run applied the files", codes)
	}
	// The table, read through the same catalog: one snapshot with both files.
	tbl := w.table()
	if tbl.Summary[catalog.KeySourceFiles] != "2" || tbl.Summary[catalog.KeyToken] == "" {
		t.Errorf("current snapshot %v: want one consuming both files", tbl.Summary)
	}
	if st, _, err := w.store().Load(context.Background()); err != nil || st.Runs != 1 {
		t.Errorf("bookmark: %d committed runs (%v), want 1", st.Runs, err)
	}
	rows := map[int64]map[string]any{}
	for _, r := range tbl.Rows {
		rows[r["user_id"].(int64)] = r
	}
	if len(rows) != 5 || rows[4] != nil || rows[1]["email"] != "update-user0@example.com" {
		t.Errorf("rows %v: want users 1 (updated), 2, 3, 5, 6", rows)
	}
}

// A table name is checked before any use: a name that climbs out of the
// bookmark folder is a usage error for every command, and writes nothing
// outside it.
func TestTraversalTableNames(t *testing.T) {
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	before := listTree(t, w.dir)
	for _, name := range []string{"x.../../ns.other", "x.../../../../tmp/target_dir", "a.b c", "ns.t*", "a.b.c"} {
		for _, args := range [][]string{
			{"run", "--source", w.src, "--key", "user_id", "--table", name},
			{"bookmark", "reset", "--table", name},
			{"bookmark", "rewind", "--to", "20240814-000000000", "--table", name},
			{"status", "--source", w.src, "--table", name},
		} {
			if code, _, stderr := w.run(args...); code != exitUsage || !strings.Contains(stderr, "--table") {
				t.Errorf("%v: exit %d (%s), want %d naming --table", args, code, stderr, exitUsage)
			}
		}
	}
	if after := listTree(t, w.dir); !slices.Equal(before, after) {
		t.Errorf("files appeared: %q, were %q", after, before)
	}
}

// listTree lists the files under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A whole-database run's JSON log lines carry each key once: the run's
// logger adds "table", the database run adds none of its own.
func TestDatabaseRunLogKeysOnce(t *testing.T) {
	old := clikit.LogEvery
	clikit.LogEvery = time.Millisecond // progress lines among them
	defer func() { clikit.LogEvery = old }()
	w := newWorld(t)
	delete(w.envs, "ICEMERGE_TABLE")
	w.envs["ICEMERGE_LOG_LEVEL"] = "debug"
	w.envs["ICEMERGE_LOG_FORMAT"] = "json"
	schema := filepath.Dir(w.src)
	for _, table := range []string{"users", "accounts"} {
		b, _ := os.ReadFile(filepath.Join(fixtures, "LOAD00000001.parquet"))
		os.MkdirAll(filepath.Join(schema, table), 0o755)
		os.WriteFile(filepath.Join(schema, table, "LOAD00000001.parquet"), b, 0o644)
	}
	code, stdout, stderr := w.run("run", "--source", schema, "--key", "user_id")
	if code != exitOK || !strings.Contains(stdout, "test_db.accounts: applied") || !strings.Contains(stdout, "test_db.users: applied") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	withTable := 0
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("not a JSON object: %q", line)
		}
		seen := map[string]int{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			seen[k.(string)]++
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
		for k, n := range seen {
			if n > 1 {
				t.Errorf("key %q %d times in %s", k, n, line)
			}
		}
		if seen["table"] == 1 {
			withTable++
		}
	}
	if withTable < 4 {
		t.Errorf("only %d log lines name their table:\n%s", withTable, stderr)
	}
}
