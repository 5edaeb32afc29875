package testservers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the PostgreSQL server [Postgres] uses unless
// ICEMERGE_POSTGRES_URL names another: a local server with trust
// authentication, as `pg_ctlcluster 15 main start` runs it.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// pgDBPrefix starts the name of every database [Postgres] creates, followed
// by a hash of the host name and the test process's pid, so that a later
// process can drop the databases of a killed one.
const pgDBPrefix = "icemerge_t_"

var (
	pgAdmin = sync.OnceValues(probePostgres)
	pgSeq   atomic.Int64
)

// Postgres creates an empty database for t on the PostgreSQL server named
// by ICEMERGE_POSTGRES_URL (else [DefaultPostgresURL]), whose user must be
// allowed to CREATE DATABASE, and returns its URI. The database is dropped
// when t ends, so tests using it are isolated and may run in parallel.
// When the server cannot be reached the test is skipped, or fails with
// CI=true.
func Postgres(t testing.TB) string {
	t.Helper()
	admin, err := pgAdmin()
	if err != nil {
		unavailable(t, err)
	}
	name := fmt.Sprintf("%s%s_%d_%s", pgDBPrefix, hostTag(), os.Getpid(), strconv.FormatInt(pgSeq.Add(1), 10))
	if tn := pgSafe.ReplaceAllString(strings.ToLower(t.Name()), "_"); tn != "" {
		name += "_" + tn
	}
	name = name[:min(len(name), 63)] // PostgreSQL's limit on names
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pgExec(ctx, admin.String(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("creating PostgreSQL database %s on %s: %v", name, admin.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE: a connection the test left open must not keep the database.
		if err := pgExec(ctx, admin.String(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping PostgreSQL database %s: %v", name, err)
		}
	})
	u := *admin
	u.Path = "/" + name
	return u.String()
}

var pgSafe = regexp.MustCompile(`[^a-z0-9]+`)

// probePostgres checks once per process that the server answers, and drops
// the databases that killed test processes of this host left behind.
func probePostgres() (*url.URL, error) {
	raw := DefaultPostgresURL
	if v := os.Getenv("ICEMERGE_POSTGRES_URL"); v != "" {
		raw = v
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &startError{msg: "ICEMERGE_POSTGRES_URL is not a valid URI: want postgres://USER@HOST:5432/postgres"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		return nil, &startError{msg: fmt.Sprintf("PostgreSQL not reachable at %s (start it, e.g. `pg_ctlcluster 15 main start`, or set ICEMERGE_POSTGRES_URL to a server whose user may CREATE DATABASE): %v", u.Redacted(), err)}
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", pgDBPrefix+hostTag()+"_")
	if err != nil {
		return nil, &startError{msg: fmt.Sprintf("PostgreSQL at %s: listing databases: %v", u.Redacted(), err)}
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, &startError{msg: fmt.Sprintf("PostgreSQL at %s: listing databases: %v", u.Redacted(), err)}
	}
	for _, name := range names {
		rest := strings.TrimPrefix(name, pgDBPrefix+hostTag()+"_")
		pidText, _, _ := strings.Cut(rest, "_")
		pid, err := strconv.Atoi(pidText)
		if err == nil && pid > 0 && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		}
	}
	return u, nil
}

// hostTag is a short hash of the host name: pids are only meaningful on
// the host that made the database.
func hostTag() string {
	h := fnv.New32a()
	name, _ := os.Hostname()
	h.Write([]byte(name))
	return fmt.Sprintf("%06x", h.Sum32()&0xffffff)
}

func pgExec(ctx context.Context, dsn, stmt string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, stmt)
	return err
}
