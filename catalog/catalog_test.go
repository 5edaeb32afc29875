package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/jackc/pgx/v5"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

func storedSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "big", Type: &arrow.Decimal128Type{Precision: 20, Scale: 0}, Nullable: true},
		{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "local", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "l", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
}

// The stored Arrow schema survives the round trip through Iceberg, with the
// key as a required identifier field.
func TestSchemaRoundTrip(t *testing.T) {
	sc := storedSchema()
	ice, err := catalog.IcebergSchema(sc, []string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": "int", "big": "decimal(20, 0)", "at": "timestamptz", "local": "timestamp", "d": "date", "s": "string", "b": "binary", "l": "long"}
	for _, f := range ice.Fields() {
		if f.Type.String() != want[f.Name] {
			t.Errorf("%s: Iceberg type %s, want %s", f.Name, f.Type, want[f.Name])
		}
	}
	if keys := catalog.Keys(ice); len(keys) != 1 || keys[0] != "id" {
		t.Errorf("identifier fields %v", keys)
	}
	back, err := catalog.StoredSchema(ice)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(sc) {
		t.Errorf("round trip:\n got %s\nwant %s", back, sc)
	}
	if _, err := catalog.IcebergSchema(sc, []string{"missing"}); err == nil {
		t.Error("a key that is not a column was accepted")
	}
}

// sqlCatalogs are the databases of the sql catalog: each returns the
// --catalog-uri of a new, empty catalog. postgres skips (fails with CI=true)
// when PostgreSQL is not reachable.
var sqlCatalogs = []struct {
	name string
	uri  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "c.db") }},
	{"postgres", func(t *testing.T) string { return testservers.Postgres(t) }},
}

// eachCatalog runs fn once per database of the sql catalog, as subtests.
func eachCatalog(t *testing.T, fn func(t *testing.T, uri string)) {
	for _, c := range sqlCatalogs {
		t.Run(c.name, func(t *testing.T) { fn(t, c.uri(t)) })
	}
}

func openURI(t *testing.T, uri string) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindSQL, URI: uri,
		Warehouse: "file://" + filepath.Join(t.TempDir(), "wh")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

// open opens the catalog at uri and creates the table db.t with one int
// key column.
func open(t *testing.T, uri string) (*catalog.Catalog, *catalog.Table) {
	t.Helper()
	cat, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindSQL, URI: uri,
		Warehouse: "file://" + filepath.Join(t.TempDir(), "wh")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	tbl, err := cat.Create(context.Background(), "db.t", arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}}, nil), []string{"id"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cat, tbl
}

func ids(vals ...int32) (*arrow.Schema, func(yield func(arrow.RecordBatch, error) bool)) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}}, nil)
	return sc, func(yield func(arrow.RecordBatch, error) bool) {
		b := array.NewInt32Builder(memory.DefaultAllocator)
		b.AppendValues(vals, nil)
		yield(array.NewRecordBatch(sc, []arrow.Array{b.NewArray()}, int64(len(vals))), nil)
	}
}

// The token of the last icemerge commit is found through other writers'
// snapshots, and after its own snapshot was expired (Athena VACUUM).
func TestLastTokenSurvivesOtherWritersAndExpiry(t *testing.T) {
	eachCatalog(t, testLastTokenSurvivesOtherWritersAndExpiry)
}

func testLastTokenSurvivesOtherWritersAndExpiry(t *testing.T, uri string) {
	ctx := context.Background()
	cat, created := open(t, uri)
	if got := created.LastToken(); got != "" {
		t.Fatalf("new table token %q", got)
	}
	_, recs := ids(1, 2)
	p, err := cat.Prepare(ctx, created, catalog.Change{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	committed, err := cat.Commit(ctx, p, "run-1", map[string]string{catalog.KeyRunID: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	tbl := committed.Iceberg()
	// Another writer appends: its snapshot has no token.
	arrowSc, _ := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	b := array.NewInt32Builder(memory.DefaultAllocator)
	b.Append(3)
	rdr, _ := array.NewRecordReader(arrowSc, []arrow.RecordBatch{array.NewRecordBatch(arrowSc, []arrow.Array{b.NewArray()}, 1)})
	if tbl, err = tbl.Append(ctx, rdr, iceberg.Properties{"writer": "other"}); err != nil {
		t.Fatal(err)
	}
	if got := catalog.LastToken(tbl); got != "run-1" {
		t.Errorf("through another writer's snapshot: token %q, want run-1", got)
	}
	// Expire every snapshot but the current one.
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithRetainLast(1), table.WithOlderThan(0)); err != nil {
		t.Fatal(err)
	}
	if tbl, err = tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 1 {
		t.Fatalf("%d snapshots after expiry, want 1", n)
	}
	if got := catalog.LastToken(tbl); got != "run-1" {
		t.Errorf("after expiry: token %q, want run-1 from the table property", got)
	}
}

// Writers that load the table at the same snapshot and commit at the same
// moment, each through its own catalog connection: exactly one commit wins
// and the others are refused as conflicts, never two snapshots on one
// parent. On PostgreSQL every commit is held at the catalog's row until all
// of them have passed their checks against the table as loaded, so the
// database's compare-and-swap on metadata_location alone decides.
func TestRacingCommitsOneWins(t *testing.T) {
	eachCatalog(t, func(t *testing.T, uri string) {
		const writers = 4
		ctx := context.Background()
		cat, tbl := open(t, uri)
		if _, recs := ids(0); true {
			p, err := cat.Prepare(ctx, tbl, catalog.Change{Records: recs})
			if err != nil {
				t.Fatal(err)
			}
			if tbl, err = cat.Commit(ctx, p, "base", nil); err != nil {
				t.Fatal(err)
			}
		}
		base := tbl.SnapshotID()

		var release func()
		if catalog.IsPostgresURI(uri) {
			release = holdCatalogRow(t, uri, writers)
		}
		type outcome struct {
			token string
			err   error
		}
		results := make(chan outcome, writers)
		start := make(chan struct{}) // every writer has loaded and prepared
		for i := range writers {
			c := openURI(t, uri)
			mine, ok, err := c.Load(ctx, tbl.Name())
			if err != nil || !ok {
				t.Fatalf("writer %d: load: %v (exists %v)", i, err, ok)
			}
			_, recs := ids(int32(i + 1))
			p, err := c.Prepare(ctx, mine, catalog.Change{Records: recs})
			if err != nil {
				t.Fatal(err)
			}
			token := fmt.Sprintf("writer-%d", i)
			go func() {
				<-start
				_, err := c.Commit(ctx, p, token, map[string]string{catalog.KeyRunID: token})
				results <- outcome{token, err}
			}()
		}
		close(start)
		if release != nil {
			release()
		}
		var winners []string
		for range writers {
			r := <-results
			switch {
			case r.err == nil:
				winners = append(winners, r.token)
			case errors.Is(r.err, catalog.ErrCommitConflict):
				// Held at the row, the losers passed every check against the
				// table as loaded: the catalog's compare-and-swap refused them.
				if release != nil && !errors.Is(r.err, table.ErrCommitFailed) {
					t.Errorf("%s: %v, want the catalog's refusal (table.ErrCommitFailed)", r.token, r.err)
				}
			default:
				t.Errorf("%s: %v, want success or ErrCommitConflict", r.token, r.err)
			}
		}
		loaded, _, err := cat.Load(ctx, tbl.Name())
		if err != nil {
			t.Fatal(err)
		}
		final := loaded.Iceberg()
		if len(winners) != 1 {
			for _, s := range final.Metadata().Snapshots() {
				t.Logf("snapshot %d parent %v run %s", s.SnapshotID, ptrValue(s.ParentSnapshotID), s.Summary.Properties[catalog.KeyRunID])
			}
			t.Fatalf("winners %v, want exactly one", winners)
		}
		snaps := final.Metadata().Snapshots()
		if len(snaps) != 2 || *final.CurrentSnapshot().ParentSnapshotID != base || catalog.LastToken(final) != winners[0] {
			t.Errorf("%d snapshots, token %q; want the base and the winner %s's on top of it", len(snaps), catalog.LastToken(final), winners[0])
		}
	})
}

func ptrValue(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// holdCatalogRow locks the catalog's row of table db.t from a connection
// of its own until the returned release is called; release first waits
// until n icemerge connections are blocked on that lock.
func holdCatalogRow(t *testing.T, uri string, n int) (release func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM iceberg_tables WHERE table_namespace = 'db' AND table_name = 't' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		defer tx.Rollback(context.Background())
		for {
			var waiting int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = 'icemerge' AND wait_event_type = 'Lock'`).Scan(&waiting)
			if err != nil {
				t.Fatalf("watching the commits wait: %v", err)
			}
			if waiting == n {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d of %d commits reached the catalog row", waiting, n)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// Runs opening a new PostgreSQL database at the same moment all get the
// catalog: the one that creates its tables does not fail the others.
func TestPostgresConcurrentOpenOfANewDatabase(t *testing.T) {
	uri := testservers.Postgres(t)
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			cat, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindSQL, URI: uri, Warehouse: "file:///unused"},
				slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				err = cat.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// Errors opening a PostgreSQL catalog name the server and the database,
// say what to check, and never show the password.
func TestPostgresOpenErrors(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	open := func(uri string) error {
		cat, err := catalog.Open(context.Background(), catalog.Config{Kind: catalog.KindSQL, URI: uri, Warehouse: "file:///unused"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			cat.Close()
		}
		return err
	}
	check := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("opened")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error %q shows the password", err)
		}
	}
	t.Run("unreachable", func(t *testing.T) {
		// Port 1 on loopback: refused at once.
		check(t, open("postgres://icemerge:"+pw+"@127.0.0.1:1/lake?connect_timeout=2"),
			`database "lake" on 127.0.0.1:1`, `user "icemerge"`, "check that PostgreSQL runs")
	})
	t.Run("not a URI", func(t *testing.T) {
		check(t, open("postgres://icemerge:"+pw+"@127.0.0.1:5432/lake%zz"), "not a valid URI")
	})
	t.Run("bad parameter", func(t *testing.T) {
		check(t, open("postgres://icemerge:"+pw+"@127.0.0.1:5432/lake?sslmode=sometimes"), "xxxxx", "sslmode")
	})
	t.Run("no such database", func(t *testing.T) {
		u, err := url.Parse(testservers.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/no_such_db"
		u.User = url.UserPassword(u.User.Username(), pw)
		check(t, open(u.String()), `database "no_such_db"`, `CREATE DATABASE "no_such_db"`)
	})
}

func TestRedactURI(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db?sslmode=require": "postgres://u:xxxxx@h:5432/db?sslmode=require",
		"postgresql://u@h/db":                       "postgresql://u@h/db",
		"postgres://u@h/db?password=pw":             "postgres://u@h/db?password=xxxxx",
		"postgres://u:pw@h/db%zz":                   "postgres://(a URI that does not parse; not shown, it may hold a password)",
		"./icemerge.db":                             "./icemerge.db",
	} {
		if got := catalog.RedactURI(in); got != want {
			t.Errorf("RedactURI(%q) = %q, want %q", in, got, want)
		}
	}
	for uri, want := range map[string]bool{"postgres://h/db": true, "PostgreSQL://h/db": true, "postgres.db": false, "mysql://h/db": false, "file:///x": false} {
		if got := catalog.IsPostgresURI(uri); got != want {
			t.Errorf("IsPostgresURI(%q) = %v", uri, got)
		}
	}
}

// Once the catalog's tables exist, a user with only SELECT, INSERT and
// UPDATE on them (no CREATE on the schema) can run: open, create a table,
// commit.
func TestPostgresLeastPrivilegeUser(t *testing.T) {
	admin := testservers.Postgres(t)
	openURI(t, admin).Close() // creates the catalog's tables
	ctx := context.Background()
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	role := strings.TrimPrefix(u.Path, "/")
	role = "r" + role[max(0, len(role)-40):]
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{role}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE ROLE "+id+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP OWNED BY "+id+"; DROP ROLE "+id); err != nil {
			t.Errorf("dropping role %s: %v", role, err)
		}
	})
	if _, err := conn.Exec(ctx, "REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT SELECT, INSERT, UPDATE ON iceberg_tables, iceberg_namespace_properties TO "+id); err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	cat, tbl := open(t, u.String())
	_, recs := ids(1, 2)
	p, err := cat.Prepare(ctx, tbl, catalog.Change{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Commit(ctx, p, "least-privilege", nil); err != nil {
		t.Fatal(err)
	}
}
