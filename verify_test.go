package icemerge

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// The source databases of the verify tests: the machine's MariaDB and
// PostgreSQL (ICEMERGE_MYSQL_URL and testservers' ICEMERGE_POSTGRES_URL
// name others). Each test creates uniquely named tables and drops them.

const defaultMySQLURL = "mysql://root@127.0.0.1:3306/test"

var verifySeq atomic.Int64

// sourceMariaDB connects to the machine's MariaDB with the session in UTC
// and returns the connection and the URL verify takes; it skips the test
// (fails it with CI=true) when the server does not answer.
func sourceMariaDB(t testing.TB) (*sql.DB, string) {
	t.Helper()
	uri := defaultMySQLURL
	if v := os.Getenv("ICEMERGE_MYSQL_URL"); v != "" {
		uri = v
	}
	cfg, err := mysqlConfig(uri)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		msg := fmt.Sprintf("MariaDB at %s does not answer: %v (start it: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd)", catalog.RedactURI(uri), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return db, uri
}

// uniqueName is a table name no other test (or process) uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), verifySeq.Add(1))
}

func mustExec(t testing.TB, db *sql.DB, stmt string, args ...any) {
	t.Helper()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("%.120s: %v", stmt, err)
	}
}

// myUser is a row of the MariaDB fixture, which covers the type mapping:
// the values as MariaDB takes them and as DMS writes them.
type myUser struct {
	id      int32
	email   string
	balance string // DECIMAL(12,2)
	big     uint64 // BIGINT UNSIGNED → decimal(20,0)
	flag    int8   // TINYINT(1) → int
	active  bool   // BIT(1) → boolean
	f       float32
	d       float64
	born    *time.Time // DATE; nil: the zero date, which DMS writes as null
	seen    time.Time  // DATETIME(6): the wall clock
	tm      string     // TIME(3) as MariaDB takes it
	tmDMS   string     // … and as DMS writes it
	doc     string     // JSON (LONGTEXT in MariaDB)
	raw     []byte
	upd     time.Time // TIMESTAMP(6): an instant
}

const myUsersDDL = `(
	user_id INT NOT NULL PRIMARY KEY,
	email VARCHAR(100),
	balance DECIMAL(12,2),
	big BIGINT UNSIGNED,
	flag TINYINT(1),
	active BIT(1),
	f FLOAT,
	d DOUBLE,
	born DATE,
	seen DATETIME(6),
	tm TIME(3),
	doc JSON,
	raw BLOB,
	updated_at TIMESTAMP(6) NULL
) DEFAULT CHARSET=utf8mb4`

var myUserCols = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32, Required: true},
	{Name: "email", Type: dmstest.String},
	{Name: "balance", Type: dmstest.Decimal, Precision: 12, Scale: 2},
	{Name: "big", Type: dmstest.Uint64},
	{Name: "flag", Type: dmstest.Int8},
	{Name: "active", Type: dmstest.Bool},
	{Name: "f", Type: dmstest.Float32},
	{Name: "d", Type: dmstest.Float64},
	{Name: "born", Type: dmstest.Date},
	{Name: "seen", Type: dmstest.TimestampLocal},
	{Name: "tm", Type: dmstest.String},
	{Name: "doc", Type: dmstest.String},
	{Name: "raw", Type: dmstest.Binary},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

var verifyT0 = time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC)

func newMyUser(id int32, upd time.Time) myUser {
	born := time.Date(1970+int(id)*7, time.Month(1+id%12), 1+int(id)%28, 0, 0, 0, 0, time.UTC)
	u := myUser{
		id: id, email: fmt.Sprintf("user%d@example.com 𠮷😀", id), balance: fmt.Sprintf("%d.%02d", id*1000, id%100),
		big: uint64(id) * 1_000_000_007, flag: int8(id % 2), active: id%2 == 1,
		f: float32(id) / 10, d: float64(id) * 1e-300, born: &born,
		seen: time.Date(2023, 3, 26, 2, 30, int(id), int(id)*1000, time.UTC), // a wall clock that a DST zone skips
		tm:   fmt.Sprintf("%d:02:03.25", id), tmDMS: fmt.Sprintf("%02d:02:03.250000", id),
		doc: fmt.Sprintf(`{"n": %d, "e": "😀"}`, id), raw: []byte{0, byte(id), 0xff}, upd: upd,
	}
	switch id {
	case 2:
		u.big, u.balance, u.d = math.MaxUint64, "-9999999999.99", math.MaxFloat64
		u.tm, u.tmDMS = "-838:59:59.5", "-838:59:59.500000"
	case 3:
		u.born = nil // the zero date
		u.email, u.raw = "", []byte{}
	}
	return u
}

func (u myUser) args() []any {
	born := "0000-00-00"
	if u.born != nil {
		born = u.born.Format(time.DateOnly)
	}
	active := 0
	if u.active {
		active = 1
	}
	const ts = "2006-01-02 15:04:05.000000"
	return []any{u.id, u.email, u.balance, fmt.Sprint(u.big), u.flag, active, u.f, u.d, born,
		u.seen.Format(ts), u.tm, u.doc, u.raw, u.upd.Format(ts)}
}

func (u myUser) dms() dmstest.Row {
	var born any
	if u.born != nil {
		born = *u.born
	}
	return dmstest.Row{u.id, u.email, u.balance, u.big, u.flag, u.active, u.f, u.d, born, u.seen, u.tmDMS, u.doc, u.raw, u.upd}
}

// myTable is a MariaDB table of myUser rows and its DMS folder's files.
type myTable struct {
	t    testing.TB
	db   *sql.DB
	uri  string
	name string
}

func newMyTable(t testing.TB) *myTable {
	db, uri := sourceMariaDB(t)
	m := &myTable{t: t, db: db, uri: uri, name: uniqueName("verify_users")}
	mustExec(t, db, "CREATE TABLE "+m.name+" "+myUsersDDL)
	t.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + m.name) })
	return m
}

func (m *myTable) upsert(us ...myUser) {
	m.t.Helper()
	for _, u := range us {
		mustExec(m.t, m.db, "REPLACE INTO "+m.name+" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", u.args()...)
	}
}

func (m *myTable) delete(id int32) {
	m.t.Helper()
	mustExec(m.t, m.db, "DELETE FROM "+m.name+" WHERE user_id = ?", id)
}

// verifyOpts are the settings of verify for e's table against m.
func (e *env) verifyOpts(uri, sourceTable string) VerifyOptions {
	o := NewVerifyOptions()
	o.Common = e.opts.Common
	o.SourceDB, o.SourceTable = uri, sourceTable
	o.LockTTL = time.Minute
	return o
}

func (e *env) verify(o VerifyOptions) (*VerifyResult, error) {
	e.t.Helper()
	return Verify(e.ctx, o, Deps{Log: slog.New(slog.DiscardHandler), Now: time.Now, Catalog: e.cat, Bookmark: e.store, Lock: e.store})
}

func keyTexts(l KeyList) []string {
	out := []string{}
	for _, k := range l.Keys {
		out = append(out, k.String())
	}
	return out
}

// checkKinds fails t unless r lists exactly these keys of each kind.
func checkKinds(t *testing.T, r *VerifyResult, missing, extra, differ, lag []string) {
	t.Helper()
	for _, k := range []struct {
		name string
		l    KeyList
		want []string
	}{{"missing", r.Missing, missing}, {"extra", r.Extra, extra}, {"differ", r.Differ, differ}, {"lag", r.Lag, lag}} {
		if k.want == nil {
			k.want = []string{}
		}
		if got := keyTexts(k.l); !reflect.DeepEqual(got, k.want) || k.l.Count != int64(len(k.want)) {
			t.Errorf("%s: %d %v, want %v", k.name, k.l.Count, got, k.want)
		}
	}
	if r.Duplicate.Count != 0 || r.Unverifiable.Count != 0 {
		t.Errorf("duplicate %v, unverifiable %v %v: want none", keyTexts(r.Duplicate), keyTexts(r.Unverifiable), r.Reasons)
	}
}

// A CDC file deleted from the source before its run: the table misses its
// changes. verify names the keys and exits with ErrNotEqual; --repair
// mends them in one commit that leaves the bookmark and the table's last
// token in step, so a second verify is equal and the next run applies new
// files as usual. Rows newer than the table's newest change are lag.
func TestVerifyFindsALostCDCFileAndRepairs(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		m := newMyTable(t)
		e.opts.Keys = []string{"user_id"}
		write := func(key string, ops []string, us ...myUser) {
			rows := make([]dmstest.Row, len(us))
			for i, u := range us {
				rows[i] = u.dms()
			}
			e.putDMS(key, myUserCols, ops, rows, dmstest.DMSOptions())
		}
		users := map[int32]myUser{}
		var load []myUser
		for id := int32(1); id <= 5; id++ {
			users[id] = newMyUser(id, verifyT0)
			load = append(load, users[id])
		}
		m.upsert(load...)
		write("LOAD00000001.parquet", []string{"I", "I", "I", "I", "I"}, load...)
		e.run()
		o := e.verifyOpts(m.uri, "test."+m.name)
		res, err := e.verify(o)
		if err != nil {
			t.Fatalf("verify after the full load: %v", err)
		}
		if !res.Equal || res.TableRows != 5 || res.SourceRows != 5 {
			t.Fatalf("after the full load: equal %v, %d and %d rows", res.Equal, res.TableRows, res.SourceRows)
		}

		// The changes of the lost file: U 1, I 6, D 4 (its last image).
		u1 := users[1]
		u1.email, u1.upd = "update-user0@example.com", verifyT0.Add(26*time.Minute)
		u6 := newMyUser(6, verifyT0.Add(25*time.Minute))
		m.upsert(u1, u6)
		m.delete(4)
		write("20240814-002642123.parquet", []string{"U", "I", "D"}, u1, u6, users[4])
		e.remove("20240814-002642123.parquet") // deleted before its run (an S3 lifecycle rule, a mistake)
		u2 := users[2]
		u2.balance, u2.upd = "0.01", verifyT0.Add(30*time.Minute)
		m.upsert(u2)
		write("20240814-003000000.parquet", []string{"U"}, u2)
		e.run()

		res, err = e.verify(o)
		var ne *NotEqualError
		if !errors.As(err, &ne) || !errors.Is(err, ErrNotEqual) || ne.Result != res {
			t.Fatalf("verify after the lost file: %v, want a NotEqualError", err)
		}
		checkKinds(t, res, []string{"user_id=6"}, []string{"user_id=4"}, []string{"user_id=1"}, nil)
		for _, k := range []string{"user_id=1", "user_id=4", "user_id=6"} {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("the error does not name %s: %v", k, err)
			}
		}
		if want := "updated_at=2024-08-14T00:30:36Z"; res.Horizon != want {
			t.Errorf("horizon %q, want %q", res.Horizon, want)
		}

		bmBefore, verBefore, _ := e.store.Load(e.ctx)
		o.Repair = true
		res, err = e.verify(o)
		if err != nil {
			t.Fatalf("verify --repair: %v", err)
		}
		if rp := res.Repair; rp == nil || rp.Keys != 3 || rp.RowsWritten != 2 || rp.RowsDeleted != 2 {
			t.Fatalf("repair %+v: want 3 keys, 2 rows written (1, 6), 2 deleted (1, 4)", res.Repair)
		}
		bmAfter, verAfter, _ := e.store.Load(e.ctx)
		if verAfter != verBefore || !reflect.DeepEqual(bmAfter, bmBefore) {
			t.Errorf("the repair changed the bookmark")
		}
		tbl, _, err := e.cat.Load(e.ctx, e.opts.Table)
		if err != nil {
			t.Fatal(err)
		}
		snap := tbl.Current()
		if tbl.LastToken() != bmAfter.Token || snap.Token() != "" || snap.Maintenance() != catalog.MaintenanceRepair || snap.ID != res.Repair.Snapshot {
			t.Errorf("after the repair: last token %q (bookmark %q), snapshot token %q, maintenance %q", tbl.LastToken(), bmAfter.Token, snap.Token(), snap.Maintenance())
		}
		rows := byKey(e.table().Rows, "user_id")
		if len(rows) != 5 || rows["4"] != nil || rows["6"] == nil || rows["1"]["email"] != "update-user0@example.com" {
			t.Errorf("rows after the repair: %v", rows)
		}
		o.Repair = false
		if res, err = e.verify(o); err != nil || !res.Equal || res.Repair != nil {
			t.Fatalf("verify after the repair: %v", err)
		}
		checkStreamAsArrow(t, e) // position deletes, of runs and of the repair

		// The next run applies a new file: the bookmark and table agree.
		u3 := users[3]
		u3.d, u3.upd = 2.5, verifyT0.Add(40*time.Minute)
		m.upsert(u3)
		write("20240814-004000000.parquet", []string{"U"}, u3)
		if r := e.run(); r.Reconciled != bookmark.InSync || r.Outcome != OutcomeCommitted || r.Files != 1 {
			t.Fatalf("run after the repair: %v, %v, %d files", r.Reconciled, r.Outcome, r.Files)
		}
		// A change the table has not applied yet is lag, not a difference.
		u5 := users[5]
		u5.email, u5.upd = "later@example.com", verifyT0.Add(50*time.Minute)
		m.upsert(u5)
		res, err = e.verify(o)
		if err != nil {
			t.Fatalf("verify with lag: %v", err)
		}
		checkKinds(t, res, nil, nil, nil, []string{"user_id=5"})
		var out bytes.Buffer
		WriteVerify(&out, res)
		if !strings.Contains(out.String(), "EQUAL") || !strings.Contains(out.String(), "1 row lag") {
			t.Errorf("output:\n%s", out.String())
		}
	})
}

// Every compared column is compared: a change of one column of one row
// in the source, for each column, shows as exactly that row differing.
// Zero dates and the other mappings of the fixture verify equal first.
func TestVerifyComparesEveryColumn(t *testing.T) {
	e := newEnv(t, "local")
	m := newMyTable(t)
	e.opts.Keys = []string{"user_id"}
	var load []myUser
	var rows []dmstest.Row
	var ops []string
	for id := int32(1); id <= 16; id++ {
		u := newMyUser(id, verifyT0)
		load = append(load, u)
		rows = append(rows, u.dms())
		ops = append(ops, "I")
	}
	m.upsert(load...)
	e.putDMS("LOAD00000001.parquet", myUserCols, ops, rows, dmstest.DMSOptions())
	e.run()
	o := e.verifyOpts(m.uri, m.name) // the URL's database
	if res, err := e.verify(o); err != nil || !res.Equal {
		t.Fatalf("verify: %v", err)
	}
	changes := []string{
		"email = 'other'", "balance = balance + 0.01", "big = big + 1", "flag = 7", "active = NOT active",
		"f = f * 2", "d = -d", "born = '1999-12-31'", "seen = seen + INTERVAL 1 MICROSECOND", "tm = '00:00:00'",
		"doc = '{}'", "raw = 'x'", "updated_at = updated_at - INTERVAL 1 SECOND",
	}
	var want []string
	for i, set := range changes {
		id := i + 2
		mustExec(t, m.db, fmt.Sprintf("UPDATE %s SET %s WHERE user_id = %d", m.name, set, id))
		want = append(want, fmt.Sprintf("user_id=%d", id))
	}
	res, err := e.verify(o)
	if !errors.Is(err, ErrNotEqual) {
		t.Fatalf("verify after changing every column: %v", err)
	}
	checkKinds(t, res, nil, nil, want, nil)
	checkStreamAsArrow(t, e)
}

// TestVerifyRepairWaitsForTheRunLock: a repair holds the table's run
// lock; while a run holds it, --repair exits as locked and changes
// nothing; a verify without --repair reads on.
func TestVerifyRepairTakesTheRunLock(t *testing.T) {
	e := newEnv(t, "local")
	m := newMyTable(t)
	u := newMyUser(1, verifyT0)
	m.upsert(u)
	e.putDMS("LOAD00000001.parquet", myUserCols, []string{"I"}, []dmstest.Row{u.dms()}, dmstest.DMSOptions())
	e.run()
	m.delete(1)
	lease, err := e.store.Lock(e.ctx, "another run", time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(e.ctx)
	o := e.verifyOpts(m.uri, m.name)
	if _, err := e.verify(o); !errors.Is(err, ErrNotEqual) {
		t.Fatalf("verify while a run holds the lock: %v, want ErrNotEqual", err)
	}
	o.Repair = true
	before := e.snapshotID()
	_, err = e.verify(o)
	if !errors.Is(err, bookmark.ErrLocked) || Classify(e.ctx, err) != Locked {
		t.Fatalf("verify --repair while a run holds the lock: %v, want ErrLocked", err)
	}
	if e.snapshotID() != before {
		t.Errorf("a snapshot was committed")
	}
}

// The source's password is never shown: not in errors, not in the
// result.
func TestVerifyHidesThePassword(t *testing.T) {
	e := newEnv(t, "local")
	m := newMyTable(t)
	u := newMyUser(1, verifyT0)
	m.upsert(u)
	e.putDMS("LOAD00000001.parquet", myUserCols, []string{"I"}, []dmstest.Row{u.dms()}, dmstest.DMSOptions())
	e.run()
	const secret = "hunter2-Secret"
	uri := strings.Replace(m.uri, "://root@", "://root:"+secret+"@", 1)
	res, err := e.verify(e.verifyOpts(uri, m.name))
	if err == nil {
		t.Fatal("verify with a wrong password succeeded")
	}
	var out bytes.Buffer
	WriteVerify(&out, res)
	if strings.Contains(err.Error(), secret) || strings.Contains(out.String(), secret) {
		t.Errorf("the password shows: %v\n%s", err, out.String())
	}
	for _, bad := range []string{"mysql://root:" + secret + "@127.0.0.1:3306", "oracle://u:" + secret + "@h/db"} {
		o := e.verifyOpts(bad, "")
		if err := o.Validate(); strings.Contains(fmt.Sprint(err), secret) {
			t.Errorf("Validate shows the password: %v", err)
		}
	}
}

// The PostgreSQL mapping: numeric (bounded and not), money, uuid, jsonb,
// bytea, timestamptz, timestamp, date, boolean, real. A value of an
// unbounded numeric where DMS's rounding is not known is reported as not
// verifiable, never guessed; a repair leaves it alone.
func TestVerifyPostgresSource(t *testing.T) {
	e := newEnv(t, "local")
	uri := pgSourceURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(stmt string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, stmt, args...); err != nil {
			t.Fatalf("%.120s: %v", stmt, err)
		}
	}
	exec(`SET TimeZone = 'Europe/Berlin'`) // not UTC: timestamptz must not depend on it
	exec(`CREATE TABLE accounts (
		id bigint PRIMARY KEY, name text, amount numeric(10,2), ratio numeric, cash money, ref uuid, doc jsonb,
		raw bytea, at timestamptz, wall timestamp(6), day date, ok boolean, r real, updated_at timestamptz)`)
	cols := []dmstest.Column{
		{Name: "id", Type: dmstest.Int64, Required: true}, {Name: "name", Type: dmstest.String},
		{Name: "amount", Type: dmstest.Decimal, Precision: 10, Scale: 2}, {Name: "ratio", Type: dmstest.Decimal, Precision: 28, Scale: 6},
		{Name: "cash", Type: dmstest.Decimal, Precision: 38, Scale: 4}, {Name: "ref", Type: dmstest.String},
		{Name: "doc", Type: dmstest.String}, {Name: "raw", Type: dmstest.Binary}, {Name: "at", Type: dmstest.Timestamp},
		{Name: "wall", Type: dmstest.TimestampLocal}, {Name: "day", Type: dmstest.Date}, {Name: "ok", Type: dmstest.Bool},
		{Name: "r", Type: dmstest.Float32}, {Name: "updated_at", Type: dmstest.Timestamp},
	}
	type acct struct {
		id                  int64
		name, amount, ratio string
		ratioDMS, cash      string
		ref, doc, docDMS    string
		raw                 []byte
		at, wall, day       time.Time
		ok                  bool
		r                   float32
	}
	accts := []acct{
		{1, "𠮷野家 😀", "12345678.90", "1.0000004", "1.000000", "12.34", "0b5a4e39-0d5c-4f5b-8f7e-3d3c1e2a9b10", `{"b":1,"a":[1,2]}`, `{"a": [1, 2], "b": 1}`,
			[]byte{0, 1, 0xfe}, time.Date(2024, 8, 14, 1, 2, 3, 456789000, time.UTC), time.Date(2024, 3, 31, 2, 30, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), true, float32(0.1)},
		{2, "", "-0.01", "-123456.5", "-123456.500000", "-5.00", "00000000-0000-0000-0000-000000000000", `[]`, `[]`,
			[]byte{}, time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), false, float32(math.Inf(-1))},
		{3, "three", "3.00", "3", "3.000000", "0.00", "ffffffff-ffff-ffff-ffff-ffffffffffff", `{"x":null}`, `{"x": null}`,
			nil, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), true, float32(math.Copysign(0, -1))},
	}
	var rows []dmstest.Row
	var ops []string
	for _, a := range accts {
		var raw any
		if a.raw != nil {
			raw = a.raw
		}
		exec(`INSERT INTO accounts VALUES ($1,$2,$3,$4,$5::numeric::money,$6,$7,$8,$9,$10,$11,$12,$13,$14)`,
			a.id, a.name, a.amount, a.ratio, a.cash, a.ref, a.doc, raw, a.at, a.wall.Format("2006-01-02 15:04:05.999999"), a.day.Format(time.DateOnly), a.ok, a.r, verifyT0)
		rows = append(rows, dmstest.Row{a.id, a.name, a.amount, a.ratioDMS, a.cash, a.ref, a.docDMS, raw, a.at, a.wall, a.day, a.ok, a.r, verifyT0})
		ops = append(ops, "I")
	}
	e.opts.Keys = []string{"id"}
	e.opts.Table = "test_db.accounts"
	e.putDMS("LOAD00000001.parquet", cols, ops, rows, dmstest.DMSOptions())
	e.run()
	o := e.verifyOpts(uri, "public.accounts")
	o.Table = "test_db.accounts"
	res, err := e.verify(o)
	if err != nil || !res.Equal || res.SourceRows != 3 {
		var out bytes.Buffer
		WriteVerify(&out, res)
		t.Fatalf("verify: %v\n%s", err, out.String())
	}

	// Changes a lost file held, and a value DMS's form of is not known.
	exec(`UPDATE accounts SET doc = '{"a": 2}' WHERE id = 1`)
	exec(`DELETE FROM accounts WHERE id = 2`)
	exec(`UPDATE accounts SET ratio = 3.0000005 WHERE id = 3`)
	res, err = e.verify(o)
	if !errors.Is(err, ErrNotEqual) {
		t.Fatalf("verify after the changes: %v", err)
	}
	if got := keyTexts(res.Differ); !reflect.DeepEqual(got, []string{"id=1"}) {
		t.Errorf("differ %v, want id=1", got)
	}
	if got := keyTexts(res.Extra); !reflect.DeepEqual(got, []string{"id=2"}) {
		t.Errorf("extra %v, want id=2", got)
	}
	if got := keyTexts(res.Unverifiable); !reflect.DeepEqual(got, []string{"id=3"}) || len(res.Reasons) != 1 || !strings.Contains(res.Reasons[0], "ratio") {
		t.Errorf("unverifiable %v (%v), want id=3 naming the ratio column", got, res.Reasons)
	}
	o.Repair = true
	res, err = e.verify(o)
	if !errors.Is(err, ErrNotEqual) || res.Repair == nil || res.Repair.Keys != 2 {
		t.Fatalf("verify --repair: %v, repair %+v: want 2 keys repaired and the unverifiable row still reported", err, res.Repair)
	}
	o.Repair, o.SkipColumns = false, Columns{"ratio"}
	if res, err = e.verify(o); err != nil || !res.Equal {
		t.Fatalf("verify after the repair, without ratio: %v", err)
	}
	got := byKey(e.table().Rows, "id")
	if len(got) != 2 || got["1"]["doc"] != `{"a": 2}` || got["3"]["ratio"] != "3.000000" {
		t.Errorf("rows after the repair: %v", got)
	}
}

// pgSourceURL is a new PostgreSQL database for a source table.
func pgSourceURL(t *testing.T) string {
	t.Helper()
	return testservers.Postgres(t)
}

// A table the comparison gets wrong in a known way: every kind of
// difference, found among many equal rows, across several spill ranges,
// against a brute-force comparison.
func TestCompareFindsEveryKind(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	const n = 200_000
	c, err := newComparer(n, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if c.parts < 2 {
		t.Fatalf("%d spill ranges: the test wants several", c.parts)
	}
	key := func(id int) []byte { return appendI64([]byte{1}, int64(id)) }
	order := func(ts int) []byte { return appendI64([]byte{1}, int64(ts)) }
	row := func(id, v int) []byte { return binary.BigEndian.AppendUint64(key(id), uint64(v)) }
	want := map[int][]int{}
	horizon := order(1000)
	for id := range n {
		v, ts := r.IntN(1<<30), r.IntN(1000)
		kind := -1
		switch p := r.IntN(20_000); {
		case p == 0:
			kind = kindMissing
		case p == 1:
			kind = kindExtra
		case p == 2:
			kind = kindDiffer
		case p == 3:
			kind = kindLag
		case p == 4:
			kind = kindDuplicate
		case p == 5:
			kind = kindUnverifiable
		}
		srcV, srcTS, flags := v, ts, byte(0)
		switch kind {
		case kindDiffer:
			srcV++
		case kindLag:
			srcV, srcTS = v+1, 1001
		case kindUnverifiable:
			flags = flagUnverifiable
		}
		if kind != kindExtra {
			if err := c.add(&c.source, key(id), row(id, srcV), order(srcTS), flags); err != nil {
				t.Fatal(err)
			}
		}
		if kind != kindMissing {
			if err := c.add(&c.table, key(id), row(id, v), nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		if kind == kindDuplicate {
			if err := c.add(&c.table, key(id), row(id, v), nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		if kind >= 0 {
			want[kind] = append(want[kind], id)
		}
	}
	if err := c.table.spill.flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.source.spill.flush(); err != nil {
		t.Fatal(err)
	}
	out, err := c.compare(horizon, 1000, true, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for kind := range numKinds {
		var got []int
		for _, k := range out.kinds[kind].keys {
			got = append(got, int(readI64(k[1:])))
		}
		if !reflect.DeepEqual(got, want[kind]) || out.kinds[kind].count != int64(len(want[kind])) {
			t.Errorf("%s: %d %v, want %v", kindNames[kind], out.kinds[kind].count, got, want[kind])
		}
	}
	if len(want[kindDiffer]) == 0 || len(want[kindLag]) == 0 {
		t.Fatal("the seed injected no difference of some kind")
	}
	if out.partsRead == 0 || out.partsRead > c.parts {
		t.Errorf("%d of %d ranges read", out.partsRead, c.parts)
	}
	repairs := len(want[kindMissing]) + len(want[kindExtra]) + len(want[kindDiffer]) + len(want[kindDuplicate])
	if out.repairKeys != repairs || len(out.write) != len(want[kindMissing])+len(want[kindDiffer])+len(want[kindDuplicate]) {
		t.Errorf("repair: %d keys, %d to write; want %d keys", out.repairKeys, len(out.write), repairs)
	}
	if _, err := c.compare(horizon, 10, true, repairs-1); !errors.Is(err, errTooManyToRepair) {
		t.Errorf("more keys than --max-repair: %v", err)
	}
}

// An equal pair of sides reads nothing back.
func TestCompareEqualReadsNothingBack(t *testing.T) {
	c, err := newComparer(10_000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for id := range 10_000 {
		k := appendI64([]byte{1}, int64(id))
		// The sides in different orders: the digests do not care.
		if err := c.add(&c.table, k, append(k, 'x'), nil, 0); err != nil {
			t.Fatal(err)
		}
		k2 := appendI64([]byte{1}, int64(9_999-id))
		if err := c.add(&c.source, k2, append(k2, 'x'), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.compare(nil, 10, false, 1)
	if err != nil || out.diffBucket != 0 || out.partsRead != 0 {
		t.Fatalf("equal sides: %v, %d buckets differ, %d ranges read", err, out.diffBucket, out.partsRead)
	}
}

func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		in          string
		prec, scale int32
		want, why   string
	}{
		{"123.45", 12, 2, "123.45", ""},
		{"-0.5", 12, 2, "-0.50", ""},
		{"18446744073709551615", 20, 0, "18446744073709551615", ""},
		{"99999999999999999999999999999999999999", 38, 0, "99999999999999999999999999999999999999", ""},
		{"1.0000004", 28, 6, "1.000000", ""},        // rounding and truncation agree
		{"1.2300000", 28, 6, "1.230000", ""},        // zeros dropped
		{"1.0000005", 28, 6, "", "fraction digits"}, // they do not: not verifiable
		{"123456.7", 5, 1, "", "does not fit"},      // six integer digits in decimal(5,1)
		{"NaN", 28, 6, "", "not a decimal"},
		{"12a", 5, 0, "", "not a decimal"},
	} {
		n, why := parseDecimal([]byte(tc.in), tc.prec, tc.scale)
		if tc.why != "" {
			if !strings.Contains(why, tc.why) {
				t.Errorf("%s: reason %q, want %q", tc.in, why, tc.why)
			}
			continue
		}
		if why != "" || n.ToString(tc.scale) != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.in, n.ToString(tc.scale), why, tc.want)
		}
	}
}

func TestParseSourceTimes(t *testing.T) {
	my := &vcol{class: cTS, skind: sMyDate}
	pg := &vcol{class: cTS, skind: sPgDate}
	for _, tc := range []struct {
		c    *vcol
		in   string
		want time.Time
		null bool
		bad  bool
	}{
		{my, "2024-08-14 00:26:42.123", time.Date(2024, 8, 14, 0, 26, 42, 123000000, time.UTC), false, false},
		{my, "1000-01-01", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), false, false},
		{my, "0000-00-00 00:00:00", time.Time{}, true, false},
		{my, "2024-00-10", time.Time{}, true, false}, // a zero part
		{my, "2024-02-31", time.Time{}, true, false}, // ALLOW_INVALID_DATES
		{pg, "2024-08-14 00:26:42.5+00", time.Date(2024, 8, 14, 0, 26, 42, 500000000, time.UTC), false, false},
		{pg, "0044-03-15 BC", time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC), false, false},
		{pg, "infinity", time.Time{}, false, true},
		{pg, "2024-02-30", time.Time{}, false, true},
	} {
		us, null, why := tc.c.parseTime([]byte(tc.in))
		switch {
		case tc.bad:
			if why == "" {
				t.Errorf("%s: accepted", tc.in)
			}
		case why != "" || null != tc.null:
			t.Errorf("%s: null %v, reason %q", tc.in, null, why)
		case !tc.null && us != tc.want.UnixMicro():
			t.Errorf("%s: %v, want %v", tc.in, time.UnixMicro(us).UTC(), tc.want)
		}
	}
	for in, want := range map[string]string{"838:59:59": "838:59:59.000000", "-01:02:03.5": "-01:02:03.500000", "00:00:00.000": "00:00:00.000000", "1:02:03": "01:02:03.000000"} {
		if got, ok := dmsTime([]byte(in)); !ok || string(got) != want {
			t.Errorf("TIME %s: %s, want %s", in, got, want)
		}
	}
	if got := string(canonicalJSON([]byte(`{"b": 1,  "a": [1, 2.50, "😀<"]}`))); got != `{"a":[1,2.50,"😀<"],"b":1}` {
		t.Errorf("canonical JSON %s", got)
	}
}

// A partitioned table: the rows a repair writes and the position deletes
// it writes land in their partitions, and the table reads equal after.
func TestVerifyRepairsAPartitionedTable(t *testing.T) {
	e := newEnv(t, "local")
	m := newMyTable(t)
	e.opts.Keys, e.opts.Partition = []string{"user_id"}, []string{"bucket(4, user_id)"}
	var rows []dmstest.Row
	var ops []string
	var us []myUser
	for id := int32(1); id <= 8; id++ {
		u := newMyUser(id, verifyT0)
		us = append(us, u)
		rows, ops = append(rows, u.dms()), append(ops, "I")
	}
	m.upsert(us...)
	e.putDMS("LOAD00000001.parquet", myUserCols, ops, rows, dmstest.DMSOptions())
	e.run()
	u2 := us[1]
	u2.email = "changed"
	m.upsert(u2, newMyUser(9, verifyT0))
	m.delete(3)
	o := e.verifyOpts(m.uri, m.name)
	o.Repair = true
	res, err := e.verify(o)
	if err != nil || res.Repair == nil || res.Repair.RowsWritten != 2 || res.Repair.RowsDeleted != 2 {
		t.Fatalf("verify --repair: %v, %+v", err, res.Repair)
	}
	got := byKey(e.table().Rows, "user_id")
	if len(got) != 8 || got["3"] != nil || got["9"] == nil || got["2"]["email"] != "changed" {
		t.Errorf("rows after the repair: %v", got)
	}
	o.Repair = false
	if res, err := e.verify(o); err != nil || !res.Equal {
		t.Errorf("verify after the repair: %v", err)
	}
}

// A table whose schema drifted: files written before a column was widened
// (int → long) or added (null in them) read as the table shows them.
func TestVerifyAfterSchemaDrift(t *testing.T) {
	e := newEnv(t, "local")
	db, uri := sourceMariaDB(t)
	name := uniqueName("verify_drift")
	mustExec(t, db, "CREATE TABLE "+name+" (user_id INT PRIMARY KEY, n BIGINT, phone VARCHAR(20), updated_at TIMESTAMP(6) NULL)")
	t.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + name) })
	const ts = "2006-01-02 15:04:05.000000"
	mustExec(t, db, "INSERT INTO "+name+" VALUES (1, 7, NULL, ?), (2, 1099511627776, '+49 𠮷', ?)", verifyT0.Format(ts), verifyT0.Add(time.Second).Format(ts))
	e.opts.Keys = []string{"user_id"}
	base := []dmstest.Column{{Name: "user_id", Type: dmstest.Int32, Required: true}, {Name: "n", Type: dmstest.Int32}, {Name: "updated_at", Type: dmstest.Timestamp}}
	e.putDMS("LOAD00000001.parquet", base, []string{"I", "I"}, []dmstest.Row{{int32(1), int32(7), verifyT0}, {int32(2), int32(8), verifyT0}}, dmstest.DMSOptions())
	e.run()
	drift := []dmstest.Column{base[0], {Name: "n", Type: dmstest.Int64}, base[2], {Name: "phone", Type: dmstest.String}}
	e.putDMS("20240814-000100000.parquet", drift, []string{"U"}, []dmstest.Row{{int32(2), int64(1) << 40, verifyT0.Add(time.Second), "+49 𠮷"}}, dmstest.DMSOptions())
	e.run()
	o := e.verifyOpts(uri, name)
	if res, err := e.verify(o); err != nil || !res.Equal {
		t.Fatalf("verify after the drift: %v", err)
	}
	mustExec(t, db, "UPDATE "+name+" SET phone = '' WHERE user_id = 1") // an empty string is not a null
	res, err := e.verify(o)
	if !errors.Is(err, ErrNotEqual) {
		t.Fatalf("verify: %v", err)
	}
	checkKinds(t, res, nil, nil, []string{"user_id=1"}, nil)
	checkStreamAsArrow(t, e) // a file with the narrower type and without phone, and one with both
}

// Bad settings are usage errors (exit 2), every one listed; the source
// table defaults to the Iceberg table's name in the URL's database.
func TestVerifyOptions(t *testing.T) {
	base := NewVerifyOptions()
	base.Table, base.Warehouse, base.Bookmark = "test_db.users", "file:///tmp/wh", "file:///tmp/wh/_icemerge"
	for _, tc := range []struct {
		db, table string
		repair    bool
		want      string // "" : valid
		src       string
	}{
		{"mysql://root@127.0.0.1:3306/test", "", false, "", "test.users"},
		{"mysql://root@127.0.0.1/test", "other", false, "", "test.other"},
		{"mariadb://root@127.0.0.1/test", "s.other", false, "", "s.other"},
		{"postgres://u@h:5432/db", "", false, "", "users"},
		{"postgresql://u@h:5432/db", "app.users", false, "", "app.users"},
		{"", "", false, "--source-db is required", ""},
		{"oracle://u@h/db", "", false, "not supported", ""},
		{"mysql://root@127.0.0.1/test?charset=latin1", "", false, `parameter "charset"`, ""},
		{"mysql://root@127.0.0.1/test", ".x", false, "SCHEMA.NAME", ""},
	} {
		o := base
		o.SourceDB, o.SourceTable, o.Repair = tc.db, tc.table, tc.repair
		err := o.Validate()
		if tc.want != "" {
			if !errors.Is(err, ErrUsage) || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Errorf("%s %s: %v, want a usage error saying %q", tc.db, tc.table, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.db, tc.table, err)
			continue
		}
		engine, _ := sourceEngine(tc.db)
		if src, err := o.sourceTable(engine); err != nil || src.String() != tc.src {
			t.Errorf("%s %s: source table %s (%v), want %s", tc.db, tc.table, src, err, tc.src)
		}
	}
	o := base
	o.SourceDB = "mysql://root@127.0.0.1:3306/"
	if _, err := o.sourceTable(engineMySQL); !errors.Is(err, ErrUsage) {
		t.Errorf("a MySQL URL without a database and no --source-table: %v", err)
	}
}
