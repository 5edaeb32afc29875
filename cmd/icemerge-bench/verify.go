package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/go-sql-driver/mysql"
)

// verifyOpts are the flags of the -verify mode: `icemerge verify` of the
// bench's table against a MariaDB (or MySQL) copy of it, timed beside
// SELECT * of the copy.
type verifyOpts struct {
	On     bool   `json:"on"`
	DB     string `json:"db"`
	Differ int    `json:"differ"`
	Drop   bool   `json:"drop"`
}

func (v *verifyOpts) register(fs *flag.FlagSet) {
	fs.BoolVar(&v.On, "verify", false, "verify mode: load the -rows table, copy it into -verify-db once (kept for later runs), then time `icemerge verify` against the copy beside SELECT * of it; no CDC runs")
	fs.StringVar(&v.DB, "verify-db", "mysql://root@127.0.0.1:3306/test", "verify mode: the MySQL or MariaDB database of the copy (mysql://USER[:PASSWORD]@HOST:PORT/DATABASE)")
	fs.IntVar(&v.Differ, "verify-differ", 1000, "verify mode: also time a verify after changing this many rows of the copy (changed back after; 0: skip)")
	fs.BoolVar(&v.Drop, "verify-drop", false, "verify mode: drop the copy at the end")
}

// verifyCopy is the copy's table name: by the generated data's parameters.
func verifyCopy(o benchOpts) string {
	return fmt.Sprintf("icemerge_bench_users_%s_s%d_r%d", genVersion, o.Seed, o.Rows)
}

// verifyMain is the -verify mode.
func verifyMain(ctx context.Context, o benchOpts) error {
	start := time.Now()
	b := &bench{o: o, out: os.Stdout}
	b.res.Started, b.res.Params = start, o
	var err error
	if b.icemerge, err = filepath.Abs(o.Icemerge); err != nil {
		return err
	}
	if _, err := os.Stat(b.icemerge); err != nil {
		return fmt.Errorf("icemerge binary %s: %w (make bench builds it: go build -o bin/icemerge ./cmd/icemerge)", o.Icemerge, err)
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return err
	}
	b.res.Machine = describeMachine(b.icemerge)
	b.printMachine()
	runErr := b.verifyRuns(ctx)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		b.note("the verify bench stopped early: %v", runErr)
	}
	b.res.TotalWall = time.Since(start).Seconds()
	b.res.Machine.LoadAvgEnd = loadAvg()
	fmt.Fprintf(b.out, "\n== targets (reported, never enforced) ==\n")
	for _, t := range b.res.Targets {
		met := "not measured"
		if t.Met != nil {
			met = map[bool]string{true: "met", false: "MISSED"}[*t.Met]
		}
		fmt.Fprintf(b.out, "  %-44s %-8s %-60s %s\n", t.Name, t.Goal, t.Value, met)
	}
	path := o.JSON
	if path == "" {
		path = filepath.Join("bench-results", "verify-"+start.UTC().Format("20060102-150405")+".json")
	}
	if err := writeJSON(path, &b.res); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nfigures written to %s (total bench wall %s)\n", path, fmtDur(b.res.TotalWall))
	return runErr
}

func (b *bench) verifyRuns(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== data (seed %d, cached in %s) ==\n", o.Seed, filepath.Join(o.Dir, "data"))
	load, err := b.genBase(genParams{Seed: o.Seed, Rows: o.Rows})
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\n== the table: %s rows ==\n", count(o.Rows))
	t := b.newTable(fmt.Sprintf("s%d-r%d", o.Seed, o.Rows))
	if err := b.fullLoad(ctx, t, "a-full-load", o.Rows, load, o.LoadPerRun); err != nil {
		return err
	}

	db, cfg, err := openBenchDB(o.Verify.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	name := verifyCopy(o)
	fmt.Fprintf(b.out, "\n== the copy: %s.%s ==\n", cfg.DBName, name)
	if err := loadCopy(ctx, b, db, name, load, o.Rows); err != nil {
		return err
	}
	if o.Verify.Drop {
		defer func() {
			if _, err := db.Exec("DROP TABLE IF EXISTS " + name); err != nil {
				b.note("dropping the copy %s: %v", name, err)
			}
		}()
	}

	fmt.Fprintf(b.out, "\n== SELECT * FROM %s ==\n", name)
	sel := &scenario{ID: "v-select", Title: fmt.Sprintf("SELECT * of %s rows (Go driver, binary protocol, rows discarded)", count(o.Rows)), Tool: "mariadb", Storage: "local", Rows: o.Rows}
	for i := range o.Reps {
		m := selectStar(ctx, db, name)
		b.progress(sel, i+1, o.Reps, m)
		sel.Runs = append(sel.Runs, m)
	}
	b.add(sel)
	if mysqlBin, err := exec.LookPath("mysql"); err == nil {
		cli := &scenario{ID: "v-select-cli", Title: fmt.Sprintf("SELECT * of %s rows (mysql client, to /dev/null)", count(o.Rows)), Tool: "mariadb", Storage: "local", Rows: o.Rows}
		u, _ := url.Parse(o.Verify.DB)
		pw, _ := u.User.Password()
		args := []string{"-h", u.Hostname(), "-P", cmpOr(u.Port(), "3306"), "-u", u.User.Username(), "--quick", "--skip-column-names", "-e", "SELECT * FROM " + name, cfg.DBName}
		env := cleanEnv()
		if pw != "" {
			env = append(env, "MYSQL_PWD="+pw)
		}
		for i := range o.Reps {
			m := b.runChild(ctx, o.RunTimeout, env, mysqlBin, args...)
			b.progress(cli, i+1, o.Reps, m)
			cli.Runs = append(cli.Runs, m)
		}
		b.add(cli)
	}

	fmt.Fprintf(b.out, "\n== icemerge verify ==\n")
	eq := &scenario{ID: "v-verify-equal", Title: fmt.Sprintf("verify %s rows, equal", count(o.Rows)), Tool: "icemerge", Storage: "local", Rows: o.Rows}
	for i := range o.Reps {
		m, rep := b.verifyRun(ctx, t, name)
		b.progress(eq, i+1, o.Reps, m)
		if rep != nil {
			fmt.Fprintf(b.out, "           %s\n", *rep)
		}
		eq.Runs = append(eq.Runs, m)
	}
	b.add(eq)

	var diff *scenario
	if n := o.Verify.Differ; n > 0 {
		step := max(o.Rows/n, 1)
		change := fmt.Sprintf("UPDATE %s SET bio = CONCAT(bio, '!') WHERE user_id %% %d = 0", name, step)
		undo := fmt.Sprintf("UPDATE %s SET bio = LEFT(bio, CHAR_LENGTH(bio) - 1) WHERE user_id %% %d = 0", name, step)
		res, err := db.ExecContext(ctx, change)
		if err != nil {
			return fmt.Errorf("changing rows of the copy: %w", err)
		}
		changed, _ := res.RowsAffected()
		diff = &scenario{ID: "v-verify-differ", Title: fmt.Sprintf("verify %s rows, %d differ", count(o.Rows), changed), Tool: "icemerge", Storage: "local", Rows: o.Rows}
		m, rep := b.verifyRun(ctx, t, name)
		if _, err := db.ExecContext(context.WithoutCancel(ctx), undo); err != nil {
			return fmt.Errorf("changing the rows of the copy back (drop the table %s): %w", name, err)
		}
		if m.Exit == 1 {
			m.Exit = 0 // exit 1 is the expected outcome: the table differs
		} else {
			m.Stderr = fmt.Sprintf("exit %d, want 1 (not equal): %s", m.Exit, m.Stderr)
			m.Exit = -1
		}
		b.progress(diff, 1, 1, m)
		if rep != nil {
			fmt.Fprintf(b.out, "           %s\n", *rep)
		}
		diff.Runs = append(diff.Runs, m)
		b.add(diff)
	}

	fmt.Fprintf(b.out, "\n== figures ==\n")
	for _, s := range b.res.Scenarios {
		if s.Median == nil || s.ID == "a-full-load" {
			continue
		}
		fmt.Fprintf(b.out, "  %-70s wall %8s  peak RSS %6.0f MiB\n", s.Title, fmtDur(s.Median.Wall), s.MaxRSSMiB)
	}
	add := func(t target) { b.res.Targets = append(b.res.Targets, t) }
	if eq.Median != nil && eq.Median.ok() && sel.Median != nil && sel.Median.ok() {
		r := eq.Median.Wall / sel.Median.Wall
		add(target{Name: "verify, equal, vs SELECT * (Go driver)", Goal: "≤ 2×", Value: fmt.Sprintf("%.2f× (%s vs %s)", r, fmtDur(eq.Median.Wall), fmtDur(sel.Median.Wall)), Met: ptr(r <= 2)})
		add(target{Name: "verify peak RSS", Goal: "≤ 1 GiB", Value: fmt.Sprintf("%.0f MiB", eq.MaxRSSMiB), Met: ptr(eq.MaxRSSMiB <= 1024)})
	} else {
		add(target{Name: "verify, equal, vs SELECT *", Goal: "≤ 2×", Value: "failed"})
	}
	if cli := b.find("v-select-cli"); cli != nil && cli.Median != nil && cli.Median.ok() && eq.Median != nil && eq.Median.ok() {
		add(target{Name: "verify, equal, vs SELECT * (mysql client)", Goal: "≤ 2×", Value: fmt.Sprintf("%.2f× (%s vs %s)", eq.Median.Wall/cli.Median.Wall, fmtDur(eq.Median.Wall), fmtDur(cli.Median.Wall)), Met: ptr(eq.Median.Wall/cli.Median.Wall <= 2)})
	}
	if diff != nil && diff.Median != nil && diff.Median.ok() {
		add(target{Name: "verify peak RSS, with differences", Goal: "≤ 1 GiB", Value: fmt.Sprintf("%.0f MiB (wall %s)", diff.MaxRSSMiB, fmtDur(diff.Median.Wall)), Met: ptr(diff.MaxRSSMiB <= 1024)})
	}
	return ctx.Err()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// verifyRun runs icemerge verify of the table against the copy; the
// second result summarises its report.
func (b *bench) verifyRun(ctx context.Context, t *localTable, name string) (measure, *string) {
	b.seq++
	report := filepath.Join(t.root, fmt.Sprintf("verify-report-%03d.json", b.seq))
	os.Remove(report)
	args := []string{"verify", "--table", "bench.t", "--source-db", b.o.Verify.DB, "--source-table", name,
		"--warehouse", "file://" + t.warehouse(), "--catalog-uri", t.catalog(), "--log-level", "warn", "--report", report}
	m := b.runChild(ctx, b.o.RunTimeout, cleanEnv(), b.icemerge, args...)
	data, err := os.ReadFile(report)
	if err != nil {
		return m, nil
	}
	m.RawReport = data
	var r struct {
		TableRows  int64               `json:"table_rows"`
		SourceRows int64               `json:"source_rows"`
		Differ     struct{ Count int } `json:"differ"`
		Buckets    int                 `json:"buckets"`
		Differing  int                 `json:"buckets_differing"`
		Spill      int64               `json:"spill_bytes"`
		Durations  map[string]float64  `json:"durations"`
	}
	if json.Unmarshal(data, &r) != nil {
		return m, nil
	}
	s := fmt.Sprintf("[%d table rows, %d source rows, %d differ; %d buckets, %d differing; spill %.0f MiB; table read %.1fs, source read %.1fs, compare %.2fs]",
		r.TableRows, r.SourceRows, r.Differ.Count, r.Buckets, r.Differing, mib(r.Spill), r.Durations["table"], r.Durations["source"], r.Durations["compare"])
	return m, &s
}

// openBenchDB opens the copy's database with the session in UTC.
func openBenchDB(uri string) (*sql.DB, *mysql.Config, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") {
		return nil, nil, fmt.Errorf("-verify-db: want mysql://USER[:PASSWORD]@HOST:PORT/DATABASE")
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Hostname()+":"+cmpOr(u.Port(), "3306"), strings.TrimPrefix(u.Path, "/")
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	cfg.AllowAllFiles = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, err
	}
	db := sql.OpenDB(conn)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("-verify-db %s: %w", u.Redacted(), err)
	}
	return db, cfg, nil
}

// loadCopy makes the copy of the LOAD files in the database, unless a
// complete one is there: LOAD DATA LOCAL INFILE from the Parquet files,
// with the type mapping's source types (TIMESTAMP, DECIMAL(12,2)).
func loadCopy(ctx context.Context, b *bench, db *sql.DB, name string, load []string, rows int) error {
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+name).Scan(&n); err == nil && n == int64(rows) {
		fmt.Fprintf(b.out, "  kept from an earlier run: %s rows\n", count(rows))
		return nil
	}
	start := time.Now()
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
		return err
	}
	ddl := `CREATE TABLE ` + name + ` (
		user_id INT NOT NULL PRIMARY KEY,
		first_name VARCHAR(100), last_name VARCHAR(100), email VARCHAR(200),
		created_at TIMESTAMP(6) NULL, updated_at TIMESTAMP(6) NULL,
		balance DECIMAL(12,2), bio TEXT
	) DEFAULT CHARSET=utf8mb4`
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return err
	}
	handler := "icemerge-bench-" + name
	pr, pw := io.Pipe()
	mysql.RegisterReaderHandler(handler, func() io.Reader { return pr })
	defer mysql.DeregisterReaderHandler(handler)
	go func() { pw.CloseWithError(writeTSV(pw, load)) }()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range []string{"SET unique_checks = 0", "SET foreign_key_checks = 0"} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, `LOAD DATA LOCAL INFILE 'Reader::`+handler+`' INTO TABLE `+name+
		` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'
		(user_id, first_name, last_name, email, created_at, updated_at, balance, bio)`)
	pr.Close()
	if err != nil {
		return fmt.Errorf("loading the copy %s: %w", name, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+name).Scan(&n); err != nil || n != int64(rows) {
		return fmt.Errorf("the copy %s has %d rows after loading, want %d (%v)", name, n, rows, err)
	}
	fmt.Fprintf(b.out, "  loaded %s rows with LOAD DATA in %s\n", count(rows), fmtDur(time.Since(start).Seconds()))
	return nil
}

// writeTSV writes the rows of the LOAD files as LOAD DATA's tab-separated
// text: \N for null, tab, newline and backslash escaped, timestamps in
// UTC.
func writeTSV(w io.Writer, load []string) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	for _, path := range load {
		if err := tsvFile(bw, path); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func tsvFile(w *bufio.Writer, path string) error {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rr.Release()
	want := []string{"user_id", "first_name", "last_name", "email", "created_at", "updated_at", "balance", "bio"}
	for rr.Next() {
		rec := rr.RecordBatch()
		cols := make([]arrow.Array, len(want))
		for i, n := range want {
			idx := rec.Schema().FieldIndices(n)
			if len(idx) != 1 {
				return fmt.Errorf("%s: no column %s", path, n)
			}
			cols[i] = rec.Column(idx[0])
		}
		for r := range int(rec.NumRows()) {
			for i, c := range cols {
				if i > 0 {
					w.WriteByte('\t')
				}
				if c.IsNull(r) {
					w.WriteString(`\N`)
					continue
				}
				switch x := c.(type) {
				case *array.Int32:
					fmt.Fprint(w, x.Value(r))
				case *array.String:
					escapeTSV(w, x.Value(r))
				case *array.Timestamp:
					w.WriteString(time.UnixMicro(int64(x.Value(r))).UTC().Format("2006-01-02 15:04:05.000000"))
				case *array.Decimal128:
					w.WriteString(x.Value(r).ToString(x.DataType().(*arrow.Decimal128Type).Scale))
				default:
					return fmt.Errorf("%s: column %s: unexpected %s", path, want[i], c.DataType())
				}
			}
			w.WriteByte('\n')
		}
	}
	return rr.Err()
}

func escapeTSV(w *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\t':
			w.WriteString(`\t`)
		case '\n':
			w.WriteString(`\n`)
		case '\\':
			w.WriteString(`\\`)
		default:
			w.WriteByte(c)
		}
	}
}

// selectStar reads every row of the copy as verify's reader does
// (prepared statement: the binary protocol), and discards them.
func selectStar(ctx context.Context, db *sql.DB, name string) measure {
	start := time.Now()
	fail := func(err error) measure {
		return measure{Exit: 1, Stderr: err.Error(), Wall: time.Since(start).Seconds()}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, "SELECT * FROM "+name)
	if err != nil {
		return fail(err)
	}
	defer stmt.Close()
	rows, err := stmt.QueryContext(ctx)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fail(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return measure{Wall: time.Since(start).Seconds()}
}
