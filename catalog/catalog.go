// Package catalog opens the Iceberg catalog icemerge commits to, creates the
// table of a DMS folder, reads the live rows a batch touches, and commits a
// run as one snapshot of new data files and Parquet position delete files.
//
// It owns every use of iceberg-go. It knows nothing of DMS semantics (that is
// package merge) nor of progress (package bookmark): it is handed a plan and
// a token and makes them one atomic commit.
package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/glue"
	icesql "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	// S3 file IO for tables whose location is s3://.
	_ "github.com/apache/iceberg-go/io/gocloud/s3"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver behind the embedded catalog
)

// Kinds of catalog.
const (
	KindSQL      = "sql"
	KindGlue     = "glue"
	KindS3Tables = "s3tables" // Amazon S3 Tables: a table bucket, see s3tables.go
)

// Config selects and locates the catalog.
type Config struct {
	Kind      string // KindSQL, KindGlue or KindS3Tables
	URI       string // KindSQL: the SQLite database file, or a postgres:// URI
	Warehouse string // URI under which new tables are created (not KindS3Tables: S3 Tables places them)
	// TableBucketARN is the S3 Tables table bucket (KindS3Tables),
	// arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME.
	TableBucketARN string
	// Props are passed to the catalog and to the tables' file IO
	// (s3.endpoint for a custom S3 endpoint, which also turns on path-style
	// addressing).
	Props iceberg.Properties
	// AWS is the configuration of the Glue client (KindGlue) or of the S3
	// Tables client (KindS3Tables).
	AWS *aws.Config
}

// Catalog is an opened catalog.
type Catalog struct {
	icecat.Catalog
	warehouse string
	log       *slog.Logger
	close     func() error
	managed   bool // the catalog maintains its tables itself
	// props are the file IO properties (S3 endpoint, region) of tables
	// that do not exist yet (lookup.go).
	props iceberg.Properties
}

// Managed reports whether the catalog maintains its tables itself: S3
// Tables compacts, expires snapshots and removes unreferenced files on its
// own (and its storage refuses the listing and deletes that orphan removal
// needs), so maintenance should leave those steps to it unless forced.
func (c *Catalog) Managed() bool { return c.managed }

// Close releases the catalog's connections.
func (c *Catalog) Close() error {
	if c.close != nil {
		return c.close()
	}
	return nil
}

// Open opens the catalog the config names.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Catalog, error) {
	c, err := open(ctx, cfg, log)
	if c != nil {
		c.props = cfg.Props
	}
	return c, err
}

func open(ctx context.Context, cfg Config, log *slog.Logger) (*Catalog, error) {
	switch cfg.Kind {
	case KindSQL, "":
		if IsPostgresURI(cfg.URI) {
			return openPostgres(ctx, cfg, log)
		}
		return openSQLite(ctx, cfg, log)
	case KindGlue:
		if cfg.AWS == nil {
			return nil, errors.New("the glue catalog needs an AWS configuration")
		}
		props := maps.Clone(cfg.Props)
		if props == nil {
			props = iceberg.Properties{}
		}
		props["warehouse"] = cfg.Warehouse
		cat, err := glue.NewCatalog(glue.WithAwsConfig(*cfg.AWS), glue.WithAwsProperties(glue.AwsProperties(props)))
		if err != nil {
			return nil, fmt.Errorf("opening the Glue catalog: %w", err)
		}
		return &Catalog{Catalog: cat, warehouse: cfg.Warehouse, log: log, close: cat.Close}, nil
	case KindS3Tables:
		return openS3Tables(cfg, log)
	}
	return nil, fmt.Errorf("unknown catalog %q: use sql, glue or s3tables", cfg.Kind)
}

func openSQLite(ctx context.Context, cfg Config, log *slog.Logger) (*Catalog, error) {
	path := strings.TrimPrefix(cfg.URI, "file://")
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the folder of catalog database %s: %w", path, err)
		}
	}
	// busy_timeout lets a second process wait for the first one's write
	// instead of failing at once; WAL lets readers run beside a writer.
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening SQLite catalog %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening SQLite catalog %s: %w (check --catalog-uri)", path, err)
	}
	props := maps.Clone(cfg.Props)
	if props == nil {
		props = iceberg.Properties{}
	}
	props["warehouse"] = cfg.Warehouse
	cat, err := icesql.NewCatalog("icemerge", db, icesql.SQLite, props)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening SQLite catalog %s: %w", path, err)
	}
	return &Catalog{Catalog: cat, warehouse: cfg.Warehouse, log: log, close: db.Close}, nil
}

// Connection pool of the PostgreSQL catalog. A run makes a handful of short
// catalog calls (load, create, commit) at its start and end, one at a time:
// a small pool is plenty, and idle connections are closed after a while, so
// the commit at the end of a long run does not meet a connection that a
// proxy or firewall dropped meanwhile. Opening needs two connections at
// once (see newPostgresCatalog).
const (
	pgMaxOpenConns    = 4
	pgMaxIdleConns    = 2
	pgConnMaxIdleTime = time.Minute
	pgConnMaxLifetime = 30 * time.Minute
	// pgConnectTimeout bounds one connection attempt unless the URI sets
	// connect_timeout: an unreachable server fails the run instead of
	// hanging it.
	pgConnectTimeout = 10 * time.Second
)

// IsPostgresURI reports whether the sql catalog's URI names a PostgreSQL
// database (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURI(uri string) bool {
	scheme, _, ok := strings.Cut(uri, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// RedactURI returns uri with its password, in the user info or in a
// password= parameter, replaced by xxxxx, for messages and logs. A URI that
// does not parse is not shown at all, since its password cannot be found.
func RedactURI(uri string) string {
	if !strings.Contains(uri, "://") {
		return uri // a file path
	}
	u, err := url.Parse(uri)
	if err != nil {
		scheme, _, _ := strings.Cut(uri, "://")
		return scheme + "://(a URI that does not parse; not shown, it may hold a password)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// CheckPostgresURI parses a postgres:// URI as the driver will, without
// connecting, for validating settings. Its errors hold no password.
func CheckPostgresURI(uri string) error {
	_, err := parsePostgres(uri)
	return err
}

// parsePostgres parses a postgres:// URI. Like psql, the driver fills what
// the URI leaves out from the PG* environment variables (PGPASSWORD,
// PGSSLMODE, ...) and a password from ~/.pgpass (PGPASSFILE).
func parsePostgres(uri string) (*pgx.ConnConfig, error) {
	u, err := url.Parse(uri)
	if err != nil {
		// url.Error quotes the URI, password and all.
		return nil, fmt.Errorf("%s is not a valid URI: want postgres://USER@HOST:5432/DATABASE", RedactURI(uri))
	}
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (want postgres://USER@HOST:5432/DATABASE, with libpq parameters such as ?sslmode=verify-full)",
			RedactURI(uri), redactErr(err, uriPassword(u)))
	}
	return cfg, nil
}

// uriPassword is the password a postgres:// URI spells out, if any.
func uriPassword(u *url.URL) string {
	if pw, ok := u.User.Password(); ok {
		return pw
	}
	return u.Query().Get("password")
}

// redactErr keeps secret out of err's message, in case a driver quotes it;
// errors.Is and errors.As still see err.
func redactErr(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return &redactedError{err: err, secret: secret}
}

type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx") }
func (e *redactedError) Unwrap() error { return e.err }

// pgSetupLock is the key of the advisory lock that runs opening the catalog
// hold while iceberg-go creates (if not exists) the catalog's tables:
// PostgreSQL's CREATE TABLE IF NOT EXISTS is not atomic, and runs opening
// a new database at the same moment would fail with duplicate key or
// duplicate object errors. Advisory locks are per database.
const pgSetupLock int64 = 0x6963656d65726765 // "icemerge"

// openPostgres opens iceberg-go's SQL catalog on PostgreSQL. Its commits
// need nothing more from us: CommitTable updates the table's row with
// WHERE metadata_location = <the location it loaded>, and PostgreSQL, even
// in READ COMMITTED, makes a second such UPDATE wait for the first and
// re-check the condition against the committed row, so of racing commits
// one wins and the others fail with table.ErrCommitFailed, which Commit
// reports as ErrCommitConflict (TestRacingCommitsOneWins,
// testservers.TestPostgresUpdateWhereIsCompareAndSwap).
func openPostgres(ctx context.Context, cfg Config, log *slog.Logger) (*Catalog, error) {
	pc, err := parsePostgres(cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL catalog: %w (check --catalog-uri)", err)
	}
	secret := pc.Password
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = pgConnectTimeout
	}
	if pc.RuntimeParams == nil {
		pc.RuntimeParams = map[string]string{}
	}
	if _, ok := pc.RuntimeParams["application_name"]; !ok {
		pc.RuntimeParams["application_name"] = "icemerge" // for pg_stat_activity
	}
	where := fmt.Sprintf("database %q on %s:%d as user %q", pc.Database, pc.Host, pc.Port, pc.User)
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(pgMaxOpenConns)
	db.SetMaxIdleConns(pgMaxIdleConns)
	db.SetConnMaxIdleTime(pgConnMaxIdleTime)
	db.SetConnMaxLifetime(pgConnMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening the PostgreSQL catalog, %s: %w (%s)", where, redactErr(err, secret), pgHint(err, pc))
	}
	props := maps.Clone(cfg.Props)
	if props == nil {
		props = iceberg.Properties{}
	}
	props["warehouse"] = cfg.Warehouse
	cat, err := newPostgresCatalog(ctx, db, props)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening the PostgreSQL catalog, %s: creating or reading its tables iceberg_tables and iceberg_namespace_properties: %w (%s)",
			where, redactErr(err, secret), pgHint(err, pc))
	}
	return &Catalog{Catalog: cat, warehouse: cfg.Warehouse, log: log, close: db.Close}, nil
}

// newPostgresCatalog makes the iceberg-go catalog under the setup lock,
// held on a connection of its own (session locks end with their session,
// so a run that dies frees it). Once the catalog's tables exist it does not
// ask iceberg-go to create them: CREATE TABLE IF NOT EXISTS needs the CREATE
// right on the schema even when the table is there, and a run needs only
// SELECT, INSERT and UPDATE on the tables.
func newPostgresCatalog(ctx context.Context, db *sql.DB, props iceberg.Properties) (*icesql.Catalog, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", pgSetupLock); err != nil {
		return nil, fmt.Errorf("taking the catalog setup lock: %w", err)
	}
	var exists bool
	// to_regclass resolves the names through search_path, as iceberg-go's
	// unqualified queries do.
	err = conn.QueryRowContext(ctx, "SELECT to_regclass('iceberg_tables') IS NOT NULL AND to_regclass('iceberg_namespace_properties') IS NOT NULL").Scan(&exists)
	var cat *icesql.Catalog
	if err == nil {
		if exists {
			props = maps.Clone(props)
			props["init_catalog_tables"] = "false"
		}
		cat, err = icesql.NewCatalog("icemerge", db, icesql.Postgres, props)
	}
	if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", pgSetupLock); uerr != nil {
		// Returning the connection to the pool would keep the session, and
		// the lock, alive: discard it instead, which ends the session.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return cat, err
}

// pgHint says what to check for a failed connection or catalog setup.
func pgHint(err error, pc *pgx.ConnConfig) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01" || pe.Code == "28000":
			return "check the user and the password: in --catalog-uri, PGPASSWORD or ~/.pgpass, and pg_hba.conf"
		case pe.Code == "3D000":
			return fmt.Sprintf("create the database first: CREATE DATABASE %s", pgx.Identifier{pc.Database}.Sanitize())
		case pe.Code == "42501":
			return fmt.Sprintf("user %q needs the right to create and update tables in the database's schema (CREATE and USAGE on it)", pc.User)
		case strings.HasPrefix(pe.Code, "53"):
			return "the server is out of connections or resources; retry later or raise max_connections"
		}
		return "check --catalog-uri and the server's log"
	}
	return "check that PostgreSQL runs and accepts connections there, and --catalog-uri (host, port, database, sslmode)"
}

// MaxNameBytes is the longest namespace or table name Glue accepts.
const MaxNameBytes = 255

// Ident parses and validates a table name, NAMESPACE.NAME, before any use:
// every catalog call, bookmark folder and lock is named after what it
// accepts. Each part is 1 to 255 bytes of lower-case ASCII letters, digits
// and '_', with exactly one dot between them.
//
// Glue itself accepts nearly any string and folds it to lower case, but
// Athena, which reads the tables, supports no special character other than
// '_' in database and table names: a hyphenated database fails there with
// "ParseException ... missing EOF at '-'". A leading digit or '_' is allowed
// (Athena asks for quotes or backticks around such names in queries, and
// reads them). Rejecting '/', '.', '\' and spaces also keeps a name from
// addressing another table's bookmark or a path outside the warehouse.
func Ident(s string) (table.Identifier, error) {
	ns, name, ok := strings.Cut(s, ".")
	if !ok {
		return nil, fmt.Errorf("table %q: want NAMESPACE.NAME, e.g. test_db.users", s)
	}
	if strings.Contains(name, ".") {
		return nil, fmt.Errorf("table %q: want exactly one dot, NAMESPACE.NAME, e.g. test_db.users (nested namespaces are not supported)", s)
	}
	for _, part := range []struct{ what, v string }{{"namespace", ns}, {"name", name}} {
		if err := checkName(part.v); err != nil {
			return nil, fmt.Errorf("table %q: %s %q: %w", s, part.what, part.v, err)
		}
	}
	return table.Identifier{ns, name}, nil
}

// checkName applies the Athena rules for one database or table name.
func checkName(v string) error {
	switch {
	case v == "":
		return errors.New("empty: want NAMESPACE.NAME, e.g. test_db.users")
	case len(v) > MaxNameBytes:
		return fmt.Errorf("%d bytes long, Glue allows at most %d", len(v), MaxNameBytes)
	}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
		case r >= 'A' && r <= 'Z':
			return fmt.Errorf("use lower case (%q): Glue and Athena store names in lower case", strings.ToLower(v))
		case r == '-':
			return errors.New("'-' is not allowed: Glue accepts it but Athena cannot query such names; use '_'")
		default:
			return fmt.Errorf("character %q is not allowed: use lower-case letters, digits and '_', as Athena requires", r)
		}
	}
	return nil
}
