package icemerge

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/icemerge/icemerge/catalog"
)

// sourceDB is the source database of `icemerge verify`, read in one
// consistent, read-only snapshot: every scan of one sourceDB sees the same
// rows.
type sourceDB interface {
	// columns describes the table's columns, in the table's order.
	columns(ctx context.Context, t srcTable) ([]srcColumn, error)
	// scan calls fn with the text of cols of every row (a nil value is a
	// null); vals is valid until fn returns.
	scan(ctx context.Context, t srcTable, cols []*vcol, fn func(vals [][]byte) error) error
	// close ends the snapshot and the connection.
	close()
	engine() string
}

// srcColumn is a column of the source table.
type srcColumn struct {
	Name string
	Type string // upper case: INT, UNSIGNED BIGINT, DECIMAL, TIMESTAMPTZ, …
}

// srcTable is the source table: its schema (MySQL: database) and name.
type srcTable struct{ Schema, Name string }

func (t srcTable) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// Source database engines.
const (
	engineMySQL    = "mysql"
	enginePostgres = "postgres"
)

// sourceEngine is the engine a --source-db URL names.
func sourceEngine(uri string) (string, error) {
	scheme, _, ok := strings.Cut(uri, "://")
	if !ok {
		return "", fmt.Errorf("%q is not a URL: want mysql://USER[:PASSWORD]@HOST:PORT/DATABASE or postgres://USER[:PASSWORD]@HOST:PORT/DATABASE", catalog.RedactURI(uri))
	}
	switch strings.ToLower(scheme) {
	case "mysql", "mariadb":
		return engineMySQL, nil
	case "postgres", "postgresql":
		return enginePostgres, nil
	}
	return "", fmt.Errorf("%s: the scheme %q is not supported: use mysql:// (MySQL, MariaDB, Aurora MySQL) or postgres:// (PostgreSQL, Aurora PostgreSQL)", catalog.RedactURI(uri), scheme)
}

// openSourceDB connects to the database at uri and opens a consistent,
// read-only snapshot. Its errors name the database without its password.
func openSourceDB(ctx context.Context, uri string) (sourceDB, error) {
	engine, err := sourceEngine(uri)
	if err != nil {
		return nil, usage(err)
	}
	if engine == engineMySQL {
		return openMySQL(ctx, uri)
	}
	return openPostgres(ctx, uri)
}

// mysqlConfig reads mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?tls=…].
func mysqlConfig(uri string) (*mysql.Config, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("--source-db %s is not a valid URL: want mysql://USER[:PASSWORD]@HOST:PORT/DATABASE", catalog.RedactURI(uri))
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("--source-db %s names no host", catalog.RedactURI(uri))
	}
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.Loc = time.UTC
	cfg.ParseTime = false
	for k, vs := range u.Query() {
		switch k {
		case "tls":
			cfg.TLSConfig = vs[0] // true, false, skip-verify or preferred
		default:
			return nil, fmt.Errorf("--source-db %s: the parameter %q is not supported (only tls=true|skip-verify|preferred)", catalog.RedactURI(uri), k)
		}
	}
	return cfg, nil
}

type mysqlSource struct {
	db   *sql.DB
	conn *sql.Conn
	name string
}

func openMySQL(ctx context.Context, uri string) (*mysqlSource, error) {
	cfg, err := mysqlConfig(uri)
	if err != nil {
		return nil, usage(err)
	}
	where := catalog.RedactURI(uri)
	cfg.DialFunc = dialBuffered
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, usage(fmt.Errorf("--source-db %s: %w", where, err))
	}
	s := &mysqlSource{db: sql.OpenDB(conn), name: where}
	if s.conn, err = s.db.Conn(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connecting to the source database %s: %w", where, err)
	}
	// One snapshot for every read of the verification: REPEATABLE READ,
	// its read view taken now; read-only, so it takes no locks. TIMESTAMP
	// columns read in UTC. A scan that waits for the table's side must not
	// time out on the server.
	for _, stmt := range []string{
		"SET time_zone = '+00:00'",
		"SET SESSION net_write_timeout = 3600",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
	} {
		if _, err := s.conn.ExecContext(ctx, stmt); err != nil {
			s.close()
			return nil, fmt.Errorf("source database %s: %s: %w", where, stmt, err)
		}
	}
	return s, nil
}

func (s *mysqlSource) engine() string { return engineMySQL }

func (s *mysqlSource) close() {
	if s.conn != nil {
		_, _ = s.conn.ExecContext(context.Background(), "ROLLBACK")
		s.conn.Close()
	}
	s.db.Close()
}

func myQuote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

func (t srcTable) mysql() string {
	if t.Schema == "" {
		return myQuote(t.Name)
	}
	return myQuote(t.Schema) + "." + myQuote(t.Name)
}

func (s *mysqlSource) columns(ctx context.Context, t srcTable) ([]srcColumn, error) {
	rows, err := s.conn.QueryContext(ctx, "SELECT * FROM "+t.mysql()+" LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s in %s: %w (check --source-table and that the user may SELECT it)", t, s.name, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s in %s: %w", t, s.name, err)
	}
	out := make([]srcColumn, len(types))
	for i, ct := range types {
		out[i] = srcColumn{Name: ct.Name(), Type: strings.ToUpper(ct.DatabaseTypeName())}
	}
	return out, rows.Err()
}

// scan reads with a prepared statement: the binary protocol, so FLOAT and
// DOUBLE values arrive bit for bit. It reads the driver's rows itself, past
// database/sql, whose locking and conversion cost as much as the rows' own
// decoding on a table of millions; each value becomes the text
// database/sql's sql.RawBytes would hold.
func (s *mysqlSource) scan(ctx context.Context, t srcTable, cols []*vcol, fn func([][]byte) error) error {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = myQuote(c.src)
	}
	query := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.mysql()
	err := s.conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("the MySQL driver's connection %T cannot prepare a statement (this is a bug)", dc)
		}
		stmt, err := pc.PrepareContext(ctx, query)
		if err != nil {
			return err
		}
		defer stmt.Close()
		sq, ok := stmt.(driver.StmtQueryContext)
		if !ok {
			return fmt.Errorf("the MySQL driver's statement %T cannot query (this is a bug)", stmt)
		}
		rows, err := sq.QueryContext(ctx, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		if n := len(rows.Columns()); n != len(cols) {
			return fmt.Errorf("%d columns read, %d asked for", n, len(cols))
		}
		dest := make([]driver.Value, len(cols))
		vals := make([][]byte, len(cols))
		var scratch []byte
		for {
			err := rows.Next(dest)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			scratch = scratch[:0]
			for i, d := range dest {
				var ok bool
				if vals[i], scratch, ok = rawText(d, scratch); !ok {
					return fmt.Errorf("column %s: the driver returned a %T", cols[i].src, d)
				}
			}
			if err := fn(vals); err != nil {
				return errStop{err}
			}
		}
	})
	var stop errStop
	if errors.As(err, &stop) {
		return stop.err
	}
	if err != nil {
		return fmt.Errorf("reading %s in %s: %w", t, s.name, err)
	}
	return nil
}

// errStop carries the error of scan's callback out of the driver
// connection, unwrapped.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

// rawText is the text database/sql puts in a sql.RawBytes for a driver
// value (nil for NULL): bytes as they are, other values formatted at the
// end of scratch, which it returns. A value taken before scratch grew keeps
// the old array, so one row's values never overwrite one another.
func rawText(v driver.Value, scratch []byte) ([]byte, []byte, bool) {
	start := len(scratch)
	switch x := v.(type) {
	case nil:
		return nil, scratch, true
	case []byte:
		return x, scratch, true
	case string:
		scratch = append(scratch, x...)
	case int64:
		scratch = strconv.AppendInt(scratch, x, 10)
	case float64:
		scratch = strconv.AppendFloat(scratch, x, 'g', -1, 64)
	case float32:
		scratch = strconv.AppendFloat(scratch, float64(x), 'g', -1, 32)
	case bool:
		scratch = strconv.AppendBool(scratch, x)
	case time.Time:
		scratch = x.AppendFormat(scratch, time.RFC3339Nano)
	default:
		return nil, scratch, false
	}
	return scratch[start:len(scratch):len(scratch)], scratch, true
}

// dialBuffered connects to the MySQL server through a large read buffer:
// the driver reads the socket in 4 KiB steps, a system call each, which
// on a table of millions of rows costs as much as decoding them.
func dialBuffered(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer // TCP keep-alive on, as the driver's own dial sets it
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 256<<10)}, nil
}

// bufferedConn is a connection whose reads go through a buffer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type pgSource struct {
	conn *pgx.Conn
	tx   pgx.Tx
	name string
}

func openPostgres(ctx context.Context, uri string) (*pgSource, error) {
	where := catalog.RedactURI(uri)
	if err := catalog.CheckPostgresURI(uri); err != nil {
		return nil, usage(fmt.Errorf("--source-db: %w", err))
	}
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("connecting to the source database %s: %w", where, redactPassword(err, uri))
	}
	s := &pgSource{conn: conn, name: where}
	// One snapshot for every read: REPEATABLE READ is a snapshot taken at
	// the first statement; read-only.
	if s.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("source database %s: starting a read-only snapshot: %w", where, err)
	}
	for _, stmt := range []string{
		"SET LOCAL TimeZone = 'UTC'",
		"SET LOCAL DateStyle = 'ISO, YMD'",
		"SET LOCAL extra_float_digits = 3",
		"SET LOCAL bytea_output = 'hex'",
		"SET LOCAL statement_timeout = 0",
		"SET LOCAL idle_in_transaction_session_timeout = 0",
	} {
		if _, err := s.tx.Exec(ctx, stmt); err != nil {
			s.close()
			return nil, fmt.Errorf("source database %s: %s: %w", where, stmt, err)
		}
	}
	return s, nil
}

// redactPassword keeps the URL's password out of an error's message.
func redactPassword(err error, uri string) error {
	u, perr := url.Parse(uri)
	if perr != nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok {
		pw = u.Query().Get("password")
	}
	if pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}

func (s *pgSource) engine() string { return enginePostgres }

func (s *pgSource) close() {
	ctx := context.Background()
	if s.tx != nil {
		_ = s.tx.Rollback(ctx)
	}
	s.conn.Close(ctx)
}

func (t srcTable) postgres() string {
	if t.Schema == "" {
		return pgx.Identifier{t.Name}.Sanitize()
	}
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

// pgTypes names the PostgreSQL types the type mapping knows, by OID; any
// other type reads as its text.
var pgTypes = map[uint32]string{
	16: "BOOL", 17: "BYTEA", 20: "INT8", 21: "INT2", 23: "INT4", 25: "TEXT", 114: "JSON", 700: "FLOAT4",
	701: "FLOAT8", 790: "MONEY", 1042: "BPCHAR", 1043: "VARCHAR", 1082: "DATE", 1083: "TIME", 1114: "TIMESTAMP",
	1184: "TIMESTAMPTZ", 1186: "INTERVAL", 1700: "NUMERIC", 2950: "UUID", 3802: "JSONB", 19: "NAME", 18: "CHAR",
}

func (s *pgSource) columns(ctx context.Context, t srcTable) ([]srcColumn, error) {
	rows, err := s.tx.Query(ctx, "SELECT * FROM "+t.postgres()+" LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s in %s: %w (check --source-table and that the user may SELECT it)", t, s.name, err)
	}
	defer rows.Close()
	var out []srcColumn
	for _, f := range rows.FieldDescriptions() {
		typ, ok := pgTypes[f.DataTypeOID]
		if !ok {
			typ = fmt.Sprintf("OID %d", f.DataTypeOID)
		}
		out = append(out, srcColumn{Name: f.Name, Type: typ})
	}
	rows.Close()
	return out, rows.Err()
}

// scan reads every value as text: the output functions PostgreSQL's
// logical decoding uses too (DateStyle ISO, timestamps in UTC, bytea in
// hex, floats exact), money as numeric.
func (s *pgSource) scan(ctx context.Context, t srcTable, cols []*vcol, fn func([][]byte) error) error {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = pgx.Identifier{c.src}.Sanitize()
		if c.srcType == "MONEY" {
			sel[i] += "::numeric"
		}
	}
	rows, err := s.tx.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+t.postgres(), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("reading %s in %s: %w", t, s.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.RawValues()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s in %s: %w", t, s.name, err)
	}
	return nil
}

// bindSourceColumn fills c's source side from the source column sc of
// engine, checking that the type mapping relates them.
func bindSourceColumn(c *vcol, sc srcColumn, engine string) error {
	c.src, c.srcType = sc.Name, sc.Type
	t := strings.TrimPrefix(sc.Type, "UNSIGNED ")
	family := ""
	switch engine {
	case engineMySQL:
		switch t {
		case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR":
			family = "int"
		case "FLOAT":
			family, c.skind = "float", sFloat32
		case "DOUBLE":
			family = "float"
		case "DECIMAL":
			family = "decimal"
		case "DATE", "DATETIME", "TIMESTAMP":
			family, c.skind = "time", sMyDate
		case "TIME":
			family, c.skind = "text", sMyTime
		case "BIT":
			family, c.skind = "bool", sMyBit
		case "JSON":
			family, c.json = "text", true
		case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "GEOMETRY":
			family = "bytes"
		default: // CHAR, VARCHAR, TEXT, ENUM, SET, …
			family = "text"
		}
	case enginePostgres:
		switch t {
		case "INT2", "INT4", "INT8":
			family = "int"
		case "FLOAT4":
			family, c.skind = "float", sFloat32
		case "FLOAT8":
			family = "float"
		case "NUMERIC", "MONEY":
			family = "decimal"
		case "DATE", "TIMESTAMP", "TIMESTAMPTZ":
			family, c.skind = "time", sPgDate
		case "BOOL":
			family, c.skind = "bool", sPgBool
		case "BYTEA":
			family, c.skind = "bytes", sPgBytea
		default:
			family = "text"
		}
	}
	ok := false
	switch c.class {
	case cInt:
		ok = family == "int"
	case cF32, cF64:
		ok = family == "float"
	case cDec:
		ok = family == "decimal" || family == "int" // BIGINT UNSIGNED → decimal(20,0)
	case cDate, cTS:
		ok = family == "time"
	case cStr:
		ok = family != "bytes" || c.skind == sPlain // a text the table keeps as a string; a blob read as text
	case cBin:
		ok = family == "bytes" || family == "text"
	case cBool:
		ok = family == "bool"
	}
	if !ok {
		return fmt.Errorf("column %s: the table's type %s is not what the type mapping gives the source's %s", c.name, c.typ, sc.Type)
	}
	return nil
}
