package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// The PostgreSQL catalog backends: postgres keeps source, warehouse and
// bookmarks on disk, minio-postgres in a MinIO bucket (the production
// layout for teams not on Glue); both put the sql catalog in a new
// PostgreSQL database of their own. They skip (fail with CI=true) when
// PostgreSQL is not reachable.
var postgresBackends = []string{"postgres", "minio-postgres"}

// concurrencyBackends are the backends of the tests of concurrent runs and
// writers: every catalog, PostgreSQL included.
var concurrencyBackends = append(append([]string{}, allBackends...), postgresBackends...)

// newAnyEnv is newEnv, also for the PostgreSQL backends.
func newAnyEnv(t testing.TB, backend string) *env {
	t.Helper()
	base, onPostgres := map[string]string{"postgres": "local", "minio-postgres": "minio-sql"}[backend]
	if !onPostgres {
		return newEnv(t, backend)
	}
	uri := testservers.Postgres(t) // skips before any other server is asked for
	e := newEnv(t, base)
	e.backend = backend
	e.opts.CatalogURI = uri
	if err := e.opts.Validate(); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	return e
}

// eachConcurrencyBackend runs fn once per backend of concurrencyBackends,
// as subtests.
func eachConcurrencyBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range concurrencyBackends {
		t.Run(b, func(t *testing.T) { fn(t, newAnyEnv(t, b)) })
	}
}

// Several `icemerge run`s of one table at once, each with its own
// connections to a PostgreSQL catalog that none has used yet: every one
// opens the catalog (creating its tables once), exactly one applies the
// files and the others exit 3 or find nothing new.
func TestConcurrentCLIRunsOnPostgres(t *testing.T) {
	uri := testservers.Postgres(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"LOAD00000001.parquet", "20240814-002642123.parquet"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "users", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The URI comes from the environment, as a deployment would set it.
	lookup := func(k string) (string, bool) {
		if k == "ICEMERGE_CATALOG_URI" {
			return uri, true
		}
		return "", false
	}
	args := []string{"run", "--source", src, "--table", "test_db.users", "--key", "user_id", "--warehouse", "file://" + filepath.Join(dir, "wh")}
	const runs = 4
	codes := make([]int, runs)
	stderr := make([]bytes.Buffer, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			var out bytes.Buffer
			codes[i] = cli(context.Background(), args, lookup, &out, &stderr[i])
		})
	}
	wg.Wait()
	applied := 0
	for i, code := range codes {
		switch {
		case code == exitOK:
			applied++
		case code == exitLocked && strings.Contains(stderr[i].String(), "another run"):
		default:
			t.Errorf("run %d: exit %d: %s", i, code, stderr[i].String())
		}
	}
	t.Logf("exit codes %v", codes)
	if applied < 1 {
		t.Fatalf("exit codes %v: no run applied the files", codes)
	}

	// The table, read through the same catalog: one snapshot with both files.
	e := &env{t: t, ctx: context.Background(), opts: RunOptions{Common: Common{Table: "test_db.users", Catalog: catalog.KindSQL,
		CatalogURI: uri, Warehouse: "file://" + filepath.Join(dir, "wh"), LogLevel: "info", LogFormat: "text"}}}
	if err := e.opts.defaults(func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	summaries := e.snapshotSummaries()
	if len(summaries) != 1 || summaries[0][catalog.KeySourceFiles] != "2" {
		t.Errorf("snapshots %v: want one consuming both files", summaries)
	}
	if rows := byKey(e.table().Rows, "user_id"); len(rows) != 5 || rows["4"] != nil || rows["1"]["email"] != "update-user0@example.com" {
		t.Errorf("rows %v: want users 1 (updated), 2, 3, 5, 6", rows)
	}
}

// The sql catalog takes a SQLite file or a PostgreSQL URI; anything else
// is a usage error, and no message shows a password.
func TestCatalogURIValidation(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	for _, tc := range []struct {
		uri  string
		want string // "" when valid
	}{
		{uri: "icemerge.db"},
		{uri: "file:///var/lib/icemerge/catalog.db"},
		{uri: "postgres://icemerge@db.internal:5432/lake"},
		{uri: "postgresql://icemerge:" + pw + "@db.internal/lake?sslmode=verify-full"},
		{uri: "s3://bucket/icemerge.db", want: "a local SQLite file (a path or file://) or a PostgreSQL database"},
		{uri: "mysql://icemerge:" + pw + "@db.internal/lake", want: "mysql://icemerge:xxxxx@db.internal/lake"},
		{uri: "postgres://icemerge:" + pw + "@db.internal:port/lake", want: "not a valid URI"},
		{uri: "postgres://icemerge:" + pw + "@db.internal/lake?sslmode=sometimes", want: "postgres://icemerge:xxxxx@db.internal/lake"},
	} {
		c := Common{Table: "test_db.users", Catalog: catalog.KindSQL, CatalogURI: tc.uri, Warehouse: "file:///wh", Bookmark: "file:///wh/_icemerge",
			LogLevel: "info", LogFormat: "text"}
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", catalog.RedactURI(tc.uri), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", catalog.RedactURI(tc.uri), err, tc.want)
		case err != nil && strings.Contains(err.Error(), pw):
			t.Errorf("the error shows the password: %v", err)
		}
	}
	// The CLI maps them to exit 2.
	var out, errOut bytes.Buffer
	none := func(string) (string, bool) { return "", false }
	if code := cli(context.Background(), []string{"show", "--table", "a.b", "--catalog-uri", "mysql://u:" + pw + "@h/db"}, none, &out, &errOut); code != exitUsage ||
		strings.Contains(errOut.String(), pw) {
		t.Errorf("exit %d, stderr %q: want %d, no password", code, errOut.String(), exitUsage)
	}
}
