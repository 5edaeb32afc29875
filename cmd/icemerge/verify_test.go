package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql"
)

// usersTable makes a MariaDB table holding what the users example's full
// load holds (users 1..5), on the machine's MariaDB (root, database test;
// ICEMERGE_MYSQL_URL names another, as mysql://…), and returns the
// connection, the URL verify takes and the table's name. It skips (fails
// with CI=true) when MariaDB does not answer.
func usersTable(t *testing.T) (*sql.DB, string, string) {
	t.Helper()
	uri := "mysql://root@127.0.0.1:3306/test"
	dsn := "root@tcp(127.0.0.1:3306)/test?time_zone=%27%2B00%3A00%27"
	if v := os.Getenv("ICEMERGE_MYSQL_URL"); v != "" {
		t.Skip("ICEMERGE_MYSQL_URL is set: this test uses the machine's MariaDB")
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MariaDB at 127.0.0.1:3306: %v", err)
		}
		t.Skipf("MariaDB at 127.0.0.1:3306 does not answer: %v", err)
	}
	name := fmt.Sprintf("cli_verify_users_%d_%d", os.Getpid(), time.Now().UnixNano())
	exec := func(stmt string, args ...any) {
		t.Helper()
		if _, err := db.Exec(stmt, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	exec("CREATE TABLE " + name + ` (user_id INT PRIMARY KEY, first_name VARCHAR(50), last_name VARCHAR(50), email VARCHAR(100),
		created_at TIMESTAMP(6) NULL, updated_at TIMESTAMP(6) NULL) DEFAULT CHARSET=utf8mb4`)
	t.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + name) })
	for i := range 5 {
		exec("INSERT INTO "+name+" VALUES (?, 'user', ?, ?, '2024-08-14 00:00:36', '2024-08-14 00:00:36')", i+1, fmt.Sprint(i), fmt.Sprintf("user%d@example.com", i))
	}
	return db, uri, name
}

// icemerge verify from the user's side: exit 0 when equal, 1 when not
// (the keys on stderr, the JSON report), 0 after --repair, 2 for bad
// settings; the password never shows.
func TestVerifyCLI(t *testing.T) {
	db, uri, name := usersTable(t)
	w := newWorld(t)
	w.fixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	if code, _, stderr := w.run("run", "--source", w.src, "--key", "user_id"); code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	verify := func(args ...string) (int, string, string) {
		return w.run(append([]string{"verify", "--source-db", uri, "--source-table", name}, args...)...)
	}
	if code, stdout, stderr := verify(); code != exitOK || !strings.Contains(stdout, "test_db.users: EQUAL to test."+name) {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}

	if _, err := db.Exec("UPDATE " + name + " SET email = 'other@example.com' WHERE user_id = 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM " + name + " WHERE user_id = 5"); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := verify("--report", "-")
	if code != exitFailed || !strings.Contains(stderr, "user_id=2") || !strings.Contains(stderr, "user_id=5") || !strings.Contains(stderr, "--repair") {
		t.Fatalf("verify of a table that differs: exit %d, want %d naming the keys\n%s", code, exitFailed, stderr)
	}
	var rep struct {
		OK     bool `json:"ok"`
		Equal  bool `json:"equal"`
		Differ struct {
			Count int              `json:"count"`
			Keys  []map[string]any `json:"keys"`
		} `json:"differ"`
		Extra struct {
			Count int `json:"count"`
		} `json:"extra"`
		Durations map[string]float64 `json:"durations"`
		Error     string             `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, stdout)
	}
	if rep.OK || rep.Equal || rep.Differ.Count != 1 || len(rep.Differ.Keys) != 1 || rep.Differ.Keys[0]["user_id"] != 2.0 || rep.Extra.Count != 1 || rep.Error == "" || rep.Durations["total"] <= 0 {
		t.Errorf("report %s", stdout)
	}

	if code, stdout, stderr := verify("--repair"); code != exitOK || !strings.Contains(stdout, "REPAIRED 2 keys: 1 row written, 2 rows deleted") {
		t.Fatalf("verify --repair: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := verify(); code != exitOK {
		t.Fatalf("verify after the repair: exit %d: %s", code, stderr)
	}
	if code, _, stderr := w.run("verify", "--source-db", "oracle://scott:tiger-secret@db/orcl"); code != exitUsage || strings.Contains(stderr, "tiger-secret") {
		t.Errorf("a bad --source-db: exit %d, want %d without the password: %s", code, exitUsage, stderr)
	}
	bad := strings.Replace(uri, "://root@", "://root:hunter2-secret@", 1)
	if code, stdout, stderr := verify2(w, bad, name); code != exitFailed || strings.Contains(stdout+stderr, "hunter2-secret") || !strings.Contains(stderr, "xxxxx") {
		t.Errorf("a wrong password: exit %d, want %d without the password:\n%s%s", code, exitFailed, stdout, stderr)
	}
}

func verify2(w *world, uri, table string) (int, string, string) {
	return w.run("verify", "--source-db", uri, "--source-table", table, "--report", "-")
}
