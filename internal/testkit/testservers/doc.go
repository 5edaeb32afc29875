// Package testservers runs the real servers icemerge's integration tests
// talk to — MinIO for S3, moto for Glue and a MariaDB with its binary log
// on — and injects faults between the AWS SDK and them. It owns those
// processes and nothing else: it must not be imported by non-test code,
// except by the bench (cmd/icemerge-bench) through [StartMinIO], and it
// knows nothing of tables or bookmarks.
//
// # Servers
//
// [MinIO], [Moto] and [MariaDB] start one server each per test process, on
// the first call, on a free 127.0.0.1 port with a fresh temporary
// directory, and return the same server to every later caller; tests keep
// apart by using their own bucket ([S3.NewBucket]), Glue database
// ([Glue.NewDatabase]) or MariaDB database ([MariaDBServer.NewDatabase]).
//
//   - MinIO is the binary named by ICEMERGE_MINIO_BIN, else bin/minio in the
//     module root (the directory with go.mod above the working directory),
//     which `make minio` builds, else minio on PATH. It is ready when
//     /minio/health/live answers 200.
//   - moto is ICEMERGE_MOTO_BIN, else moto_server on PATH. It is ready when
//     GET / answers.
//   - [MariaDB] is a mariadbd of the test process's own (ICEMERGE_MARIADBD,
//     else /usr/sbin/mariadbd, else on PATH; its data directory made by
//     mariadb-install-db next to it), never the machine's shared server,
//     which runs without a binlog. It runs with --log-bin,
//     --binlog-format=ROW, --binlog-row-image=FULL,
//     --binlog-row-metadata=FULL, CRC32 checksums, 256 KiB binlog files (so
//     tests cross rotations), utf8mb4 and the time zone +02:00 (so DATETIME
//     and TIMESTAMP differ), root with an empty password over TCP. Its
//     binlog files are in [MariaDBServer.BinlogDir], which the tests read
//     directly. It is ready when a ping over TCP answers. Tests keep apart
//     by database ([MariaDBServer.NewDatabase]) and share the binlog.
//
// Each has 60 s to become ready. A server that cannot be found or started
// skips the test, with the reason and the server's log tail; with CI=true
// the test fails instead, since in CI a missing server is a broken setup,
// not an optional dependency.
//
// [Postgres] starts nothing: it uses the PostgreSQL server at
// ICEMERGE_POSTGRES_URL, else [DefaultPostgresURL], whose user must be
// allowed to CREATE DATABASE, and creates a database of its own for each
// test, dropped (WITH (FORCE)) when the test ends, so tests using it can
// run in parallel. Databases left by killed test processes are dropped by
// the next process on the same host. An unreachable server skips the test,
// or fails it with CI=true, as above.
//
// [PostgresOwn] starts a PostgreSQL of one test's own for logical
// replication (the capture harness of internal/testkit/pgcapture): initdb
// into the test's t.TempDir(), postgres on a free 127.0.0.1 port with
// wal_level=logical, max_replication_slots and max_wal_senders 10, trust
// authentication; binaries from ICEMERGE_POSTGRES_BIN, else the newest
// /usr/lib/postgresql/<version>/bin; as root, run as the user postgres.
// It is stopped when the test ends; it skips or fails like the others.
//
// A package using the servers calls [Main] from TestMain, which stops them
// (SIGTERM, then SIGKILL) and removes their directories after the tests.
// Each server also runs in its own process group with Pdeathsig SIGKILL, so
// it dies with the test process even when that is killed or times out.
//
// # AWS configuration
//
// [S3.Env] and [Glue.Env] give the standard variables (AWS_ENDPOINT_URL_S3,
// AWS_ENDPOINT_URL_GLUE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION) for a subprocess such as the icemerge binary; the two maps
// share credentials and region and merge with maps.Copy. [LoadConfig] turns
// such a map into an aws.Config without reading or changing the process
// environment, so parallel tests can each have their own. [AWSConfig] and
// [S3.Config] are the shorthand for tests.
//
// aws.Config.BaseEndpoint is global to all services, and the SDK reads
// AWS_ENDPOINT_URL_<SERVICE> only from the process environment and shared
// config files. LoadConfig therefore puts the per-service endpoints into
// aws.Config.ServiceOptions (config.WithServiceOptions), which
// s3.NewFromConfig and glue.NewFromConfig apply after their own endpoint
// resolution: plain s3.NewFromConfig(cfg) reaches MinIO, with path-style
// addressing, and glue.NewFromConfig(cfg) reaches moto. Options given to
// NewFromConfig still override them.
//
// # Faults
//
// [FaultTransport] wraps the HTTP transport of an SDK client and, following
// [Rule]s matched with [MatchS3], [MatchGlue] or any function of the
// request, fails a request before it is sent, after it was answered, with a
// synthetic status ([S3ErrorBody], [GlueErrorBody]), by hanging until the
// context ends, or by a dropped connection:
//
//	ft := testservers.NewFaultTransport(nil)
//	ft.Add(testservers.Rule{Name: "commit lost", Match: testservers.MatchGlue("UpdateTable"),
//		Action: testservers.FailAfter, Times: 1})
//	cfg := testservers.AWSConfig(t, testservers.MinIO(t), testservers.Moto(t),
//		&http.Client{Transport: ft})
//
// The SDK retries injected transport errors like real ones, RetryMaxAttempts
// times in all.
//
// # S3 Tables
//
// moto also emulates Amazon S3 Tables. [Glue.NewTableBucket] creates a
// table bucket; [Glue.S3TablesConfig] (or [Glue.S3TablesEnv] with
// AWS_ENDPOINT_URL_S3TABLES, which the SDK honours) points the S3 Tables
// client at moto, and the S3 client too: each table's warehouse location
// is a bucket s3://<uuid>--table-s3 in moto's own S3. The config's
// transport goes through [MotoS3TablesFixes], which corrects two answers
// of moto 5.2.1 the SDK cannot read (TestMotoS3Tables pins them);
// [MatchS3Tables] selects S3 Tables operations for fault rules. moto's
// CreateTable replaces an existing table instead of refusing it.
//
// Behaviour of these servers that tests rely on or must work around is
// pinned by this package's own tests: MinIO answers 412 to If-None-Match: *
// on an existing key and never lets If-Match succeed on a missing key;
// moto's UpdateTable does not check VersionId, so optimistic locking can
// only be tested against a catalog that does.
package testservers
