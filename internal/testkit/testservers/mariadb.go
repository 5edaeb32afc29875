package testservers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBServer is a running mariadbd of this test process with the binary
// log on, in ROW format with the full row image and full row metadata: the
// setting a DMS source needs, which the machine's shared MariaDB lacks.
type MariaDBServer struct {
	// DSN is a go-sql-driver/mysql DSN for root (empty password) over
	// TCP, with no default database: root@tcp(127.0.0.1:PORT)/.
	DSN string
	// Addr is 127.0.0.1:PORT.
	Addr string
	// BinlogDir holds the binary log files (binlog.000001, …) and their
	// index, BinlogDir/binlog.index. It is the data directory, which this
	// process owns, so tests may read the files directly.
	BinlogDir string
	// BinlogIndex is the path of the index file listing the binlog files.
	BinlogIndex string
	// TimeZone is the server's default time zone, not UTC on purpose: a
	// DATETIME holds the wall clock of this zone while a TIMESTAMP is an
	// instant, so a mapping that mixes them up shows.
	TimeZone string

	log     *tailBuffer
	startup time.Duration
}

// mariaTimeZone is the server's time zone: an offset, which needs no time
// zone tables.
const mariaTimeZone = "+02:00"

var mariadb = sync.OnceValues(startMariaDB)

// MariaDB returns the dedicated MariaDB server of this test process,
// starting it on the first call. It skips the test when mariadbd or
// mariadb-install-db cannot be found or the server cannot be started, or
// fails it when CI=true.
func MariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	s, err := mariadb()
	if err != nil {
		unavailable(t, err)
	}
	hintMain(t)
	return s
}

const mariaHint = "run `make test`, which installs the mariadb-server package when it is missing, or set ICEMERGE_MARIADBD"

// mariaBinaries finds mariadbd (ICEMERGE_MARIADBD, else /usr/sbin/mariadbd,
// else on PATH) and mariadb-install-db (next to it in ../bin, else
// /usr/bin, else on PATH).
func mariaBinaries() (server, install string, err error) {
	server, ok, err := binaryFromEnv("ICEMERGE_MARIADBD", "mariadbd", mariaHint)
	if err != nil {
		return "", "", err
	}
	if !ok {
		if _, err := os.Stat("/usr/sbin/mariadbd"); err == nil {
			server = "/usr/sbin/mariadbd"
		} else if server, err = exec.LookPath("mariadbd"); err != nil {
			return "", "", &startError{msg: "mariadbd not found at /usr/sbin/mariadbd or on PATH: " + mariaHint}
		}
	}
	candidates := []string{
		filepath.Join(filepath.Dir(filepath.Dir(server)), "bin", "mariadb-install-db"),
		filepath.Join(filepath.Dir(server), "mariadb-install-db"),
		"/usr/bin/mariadb-install-db",
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return server, c, nil
		}
	}
	if install, err = exec.LookPath("mariadb-install-db"); err == nil {
		return server, install, nil
	}
	return "", "", &startError{msg: fmt.Sprintf("mariadb-install-db not found at %s or on PATH: %s",
		strings.Join(candidates, ", "), mariaHint)}
}

func startMariaDB() (*MariaDBServer, error) {
	server, install, err := mariaBinaries()
	if err != nil {
		return nil, err
	}
	var s *MariaDBServer
	_, took, err := startWithRetry("mariadbd", func() (*process, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		dir, err := serverDir("mariadb")
		if err != nil {
			return nil, err
		}
		data := filepath.Join(dir, "data")
		asRoot := os.Geteuid() == 0
		// An empty root password for TCP logins (normal, not unix_socket
		// authentication) and no test database.
		installArgs := []string{"--no-defaults", "--auth-root-authentication-method=normal",
			"--skip-test-db", "--datadir=" + data}
		if asRoot {
			installArgs = append(installArgs, "--user=root")
		}
		if out, err := exec.Command(install, installArgs...).CombinedOutput(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, &startError{msg: fmt.Sprintf("%s %s: %v\n%s", install, strings.Join(installArgs, " "), err, tailOf(out, 20))}
		}
		port := strconv.Itoa(ports[0])
		args := []string{server, "--no-defaults",
			"--datadir=" + data,
			"--socket=" + filepath.Join(dir, "mariadb.sock"),
			"--pid-file=" + filepath.Join(dir, "mariadb.pid"),
			"--port=" + port, "--bind-address=127.0.0.1",
			"--server-id=1",
			"--log-bin=" + filepath.Join(data, "binlog"),
			"--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL",
			// Small files, so the tests cross binlog rotations.
			"--max-binlog-size=262144",
			"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
			"--default-time-zone=" + mariaTimeZone,
			// A test server: small, fast, no durability across a crash.
			"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M",
			"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
			"--performance-schema=OFF", "--skip-name-resolve",
		}
		if asRoot {
			args = append(args, "--user=root")
		}
		p, err := start("mariadbd", dir, nil, args...)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, &startError{msg: fmt.Sprintf("mariadbd at %s: %v", server, err)}
		}
		addr := "127.0.0.1:" + port
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr = "root", "tcp", addr
		s = &MariaDBServer{DSN: cfg.FormatDSN(), Addr: addr, BinlogDir: data,
			BinlogIndex: filepath.Join(data, "binlog.index"), TimeZone: mariaTimeZone, log: p.log}
		if err := p.waitSQL(s.DSN); err != nil {
			p.abandon()
			return nil, startFailure(p, fmt.Errorf("mariadbd at %s: %w", server, err))
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	s.startup = took
	return s, nil
}

// waitSQL pings the server until it answers, the process exits or the
// start timeout passes.
func (p *process) waitSQL(dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
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
			return fmt.Errorf("%s does not answer at %s after %v: %w", p.name, dsn, startTimeout, err)
		}
	}
}

func tailOf(out []byte, n int) string {
	b := &tailBuffer{max: tailBytes}
	_, _ = b.Write(out)
	return b.tail(n)
}

// LogTail returns the last n lines mariadbd printed, for failure messages.
func (s *MariaDBServer) LogTail(n int) string { return s.log.tail(n) }

// NewDatabase creates an empty utf8mb4 database for t, named after the test
// and unique in the process, and returns its name. Tests keep apart by
// database; they share the server and its binary log.
func (s *MariaDBServer) NewDatabase(t testing.TB) string {
	t.Helper()
	name := strings.ReplaceAll(bucketName(t.Name()), "-", "_")
	db := s.Open(t, "")
	if _, err := db.ExecContext(t.Context(), "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("create database %s on MariaDB %s: %v", name, s.Addr, err)
	}
	return name
}

// Open returns a connection pool to database (none when empty), closed
// when t ends.
func (s *MariaDBServer) Open(t testing.TB, database string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = database
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// errNoBinlog is returned by BinlogPosition when the server writes no
// binary log.
var errNoBinlog = errors.New("the server writes no binary log")

// BinlogPosition returns the current end of the binary log (SHOW MASTER
// STATUS): the file name and the offset after the last committed event.
func (s *MariaDBServer) BinlogPosition(ctx context.Context, db *sql.DB) (file string, pos uint32, err error) {
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return "", 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", 0, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", 0, err
		}
		return "", 0, errNoBinlog
	}
	vals := make([]any, len(cols))
	for i := range vals {
		vals[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(vals...); err != nil {
		return "", 0, err
	}
	file = string(*vals[0].(*sql.RawBytes))
	p, err := strconv.ParseUint(string(*vals[1].(*sql.RawBytes)), 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("SHOW MASTER STATUS position %q: %w", *vals[1].(*sql.RawBytes), err)
	}
	return file, uint32(p), rows.Err()
}
