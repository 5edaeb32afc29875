package testservers

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Each call gives a database of its own, empty, and dropped when the test
// ends.
func TestPostgresDatabases(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var first string
	t.Run("create", func(t *testing.T) {
		first = Postgres(t)
		second := Postgres(t)
		if first == second {
			t.Fatalf("two calls gave the same database %s", first)
		}
		for _, dsn := range []string{first, second} {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			err = conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&n)
			conn.Close(ctx)
			if err != nil || n != 0 {
				t.Errorf("%s: %d tables (%v), want a new empty database", dsn, n, err)
			}
		}
		// A connection left open does not keep the database from being dropped.
		if _, err := pgx.Connect(ctx, first); err != nil {
			t.Fatal(err)
		}
	})
	if first == "" {
		return // skipped
	}
	if conn, err := pgx.Connect(ctx, first); err == nil {
		conn.Close(ctx)
		t.Errorf("database %s still exists after its test", first)
	}
}

// PostgreSQL's UPDATE ... WHERE col = old, in READ COMMITTED (the default),
// waits for a concurrent writer of the row and then re-checks the
// predicate against the row that writer committed: of two such updates
// with the same old value, the second changes nothing. iceberg-go's SQL
// catalog commits with exactly this compare-and-swap on
// metadata_location.
func TestPostgresUpdateWhereIsCompareAndSwap(t *testing.T) {
	t.Parallel()
	dsn := Postgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, loc text); INSERT INTO t VALUES (1, 'v1')"); err != nil {
		t.Fatal(err)
	}
	txA, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := txA.Exec(ctx, "UPDATE t SET loc = 'a' WHERE id = 1 AND loc = 'v1'")
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("first update: %v, %d rows", err, tag.RowsAffected())
	}
	done := make(chan int64, 1)
	go func() {
		tag, err := b.Exec(ctx, "UPDATE t SET loc = 'b' WHERE id = 1 AND loc = 'v1'")
		if err != nil {
			t.Error(err)
		}
		done <- tag.RowsAffected()
	}()
	select {
	case n := <-done:
		t.Fatalf("the second update did not wait for the first writer (%d rows)", n)
	case <-time.After(300 * time.Millisecond):
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := <-done; n != 0 {
		t.Errorf("the second update changed %d rows after the first committed, want 0", n)
	}
	var loc string
	if err := a.QueryRow(ctx, "SELECT loc FROM t WHERE id = 1").Scan(&loc); err != nil || loc != "a" {
		t.Errorf("loc %q (%v), want a", loc, err)
	}
}

// A server of the test's own runs with what logical replication needs,
// and a logical slot can be made on it.
func TestPostgresOwn(t *testing.T) {
	t.Parallel()
	s := PostgresOwn(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for name, want := range map[string]string{"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10", "server_encoding": "UTF8"} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot('s', 'pgoutput')"); err != nil {
		t.Errorf("creating a logical slot: %v", err)
	}
	t.Logf("PostgreSQL %s at %s, data %s", s.Version, s.URL, s.DataDir)
}
