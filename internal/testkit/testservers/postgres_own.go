package testservers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a PostgreSQL server of one test's own, set up for
// logical replication, as a DMS source needs: wal_level=logical, 10
// replication slots and WAL senders. The machine's shared server runs with
// wal_level=replica and is left alone.
type PostgresServer struct {
	// URL is a libpq URI for the superuser postgres (trust authentication)
	// and the database postgres: postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
	URL string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// DataDir is the server's data directory, in the test's t.TempDir().
	DataDir string
	// Version is the major version of the binaries, e.g. "15".
	Version string

	log *tailBuffer
}

// LogTail returns the last n lines the server printed, for failure
// messages.
func (s *PostgresServer) LogTail(n int) string { return s.log.tail(n) }

// DatabaseURL is URL with another database.
func (s *PostgresServer) DatabaseURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// PostgresBinDirs lists the directories searched for initdb and postgres:
// ICEMERGE_POSTGRES_BIN when set, else /usr/lib/postgresql/<version>/bin,
// newest version first.
func PostgresBinDirs() []string {
	if d := os.Getenv("ICEMERGE_POSTGRES_BIN"); d != "" {
		return []string{d}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	return dirs
}

const pgHint = "install the postgresql package (Debian: apt-get install postgresql) or set ICEMERGE_POSTGRES_BIN to a directory with initdb and postgres"

// PostgresOwn starts a PostgreSQL server of t's own: initdb into a data
// directory in t.TempDir(), then postgres on a free 127.0.0.1 port with
// wal_level=logical, max_replication_slots=10, max_wal_senders=10, trust
// authentication (replication connections included), UTF-8 and the C
// locale. The binaries come from [PostgresBinDirs]; as root, initdb and
// postgres run as the user postgres, which PostgreSQL requires. The server
// is stopped when t ends. When it cannot start the test is skipped, or
// fails with CI=true.
func PostgresOwn(t testing.TB) *PostgresServer {
	t.Helper()
	s, err := startPostgres(t)
	if err != nil {
		unavailable(t, err)
	}
	return s
}

func startPostgres(t testing.TB) (*PostgresServer, error) {
	var bin string
	for _, d := range PostgresBinDirs() {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			bin = d
			break
		}
	}
	if bin == "" {
		return nil, &startError{msg: fmt.Sprintf("no initdb and postgres in %v: %s", PostgresBinDirs(), pgHint)}
	}
	version := filepath.Base(filepath.Dir(bin))
	var cred *syscall.Credential
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, &startError{msg: fmt.Sprintf("running as root, PostgreSQL needs the user postgres: %v (%s)", err, pgHint)}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// The user postgres must reach the data directory: open the
		// test's own temporary directories on the way to it.
		for d := dir; d != os.TempDir() && d != "/" && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "--pgdata="+data, "--username=postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, &startError{msg: fmt.Sprintf("%s: %v\n%s", initdb, err, tailOf(out, 20))}
	}
	var s *PostgresServer
	p, _, err := startWithRetry("postgres", func() (*process, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		args := []string{filepath.Join(bin, "postgres"), "-D", data,
			"-c", "listen_addresses=127.0.0.1", "-c", "port=" + strconv.Itoa(ports[0]),
			"-c", "unix_socket_directories=" + dir,
			"-c", "wal_level=logical", "-c", "max_replication_slots=10", "-c", "max_wal_senders=10",
			// A test server: small and fast, no durability across a crash.
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "shared_buffers=32MB", "-c", "max_connections=40",
		}
		// dir "": the data directory is t.TempDir's, removed by the test.
		p, err := startAs("postgres", "", nil, cred, args...)
		if err != nil {
			return nil, &startError{msg: fmt.Sprintf("postgres in %s: %v", bin, err)}
		}
		s = &PostgresServer{Port: ports[0], DataDir: data, Version: version, log: p.log}
		s.URL = s.DatabaseURL("postgres")
		if err := p.waitPostgres(s.URL); err != nil {
			p.abandon()
			return nil, startFailure(p, err)
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(p.abandon)
	return s, nil
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// waitPostgres connects until the server answers, the process exits or
// the start timeout passes.
func (p *process) waitPostgres(url string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v)", p.name, p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("%s does not answer at %s after %v", p.name, url, startTimeout), err)
		}
	}
}
