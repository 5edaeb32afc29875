//go:build cgo

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the duckdb database/sql driver (cgo)
)

// duckdbAvailable: this binary was built with cgo, so it has DuckDB.
const duckdbAvailable = true

// duckdbMain is `icemerge-bench duckdb`: the peer icemerge is measured
// against, DuckDB doing the same merge as a full rewrite of the table into
// one zstd Parquet file, the way one would write it in SQL. The bench runs
// it as a subprocess, like icemerge, so its peak RSS is its own.
//
//	-mode load:  COPY (the files' rows without Op) TO OUT
//	-mode merge: the table's rows (one Parquet file, -table) whose key no
//	             change names, then the I/U winners: per key the latest change
//	             by the order column, then source order (file, then row), D
//	             deleting; COPY … TO OUT
//
// Files are given in source order, which for one DMS folder is name order:
// it checks that, since it breaks ties by file name.
func duckdbMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("icemerge-bench duckdb", flag.ContinueOnError)
	var (
		mode, tablePath, out, key, orderBy, report, temp string
		threads                                          int
	)
	fs.StringVar(&mode, "mode", "merge", "load (copy the files into -out) or merge (merge the files into -table, writing -out)")
	fs.StringVar(&tablePath, "table", "", "merge: the current table, one Parquet file")
	fs.StringVar(&out, "out", "", "the new table: a zstd Parquet file")
	fs.StringVar(&key, "key", "user_id", "the key column")
	fs.StringVar(&orderBy, "order-by", "updated_at", "the order column")
	fs.IntVar(&threads, "threads", 2, "DuckDB's threads (SET threads)")
	fs.StringVar(&temp, "temp", "", "DuckDB's temp_directory, where it spills (default: DuckDB's own)")
	fs.StringVar(&report, "report", "", "write the figures as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	var errs []error
	if mode != "load" && mode != "merge" {
		errs = append(errs, fmt.Errorf("-mode %q: use load or merge", mode))
	}
	if mode == "merge" && tablePath == "" {
		errs = append(errs, errors.New("-mode merge needs -table"))
	}
	if out == "" {
		errs = append(errs, errors.New("-out is required"))
	}
	if len(files) == 0 {
		errs = append(errs, errors.New("name the source files, in source order"))
	}
	if !slices.IsSorted(files) {
		errs = append(errs, errors.New("the source files must be in name order (DMS's order within a folder): ties are broken by file name"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	rep := duckdbReport{Durations: map[string]float64{}}
	start := time.Now()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("opening DuckDB: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx) // SET applies to one connection
	if err != nil {
		return fmt.Errorf("opening DuckDB: %w", err)
	}
	defer conn.Close()
	settings := []string{fmt.Sprintf("SET threads = %d", threads)}
	if temp != "" {
		settings = append(settings, "SET temp_directory = "+sqlString(temp))
	}
	for _, s := range settings {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("DuckDB %s: %w", s, err)
		}
	}
	if err := conn.QueryRowContext(ctx, "SELECT version()").Scan(&rep.Version); err != nil {
		return fmt.Errorf("DuckDB version(): %w", err)
	}
	rep.Durations["open"] = time.Since(start).Seconds()

	cols, err := duckdbColumns(ctx, conn, files[0])
	if err != nil {
		return err
	}
	var data []string // the table's columns: the files' but Op
	for _, c := range cols {
		if !strings.EqualFold(c, "Op") {
			data = append(data, sqlIdent(c))
		}
	}
	list := sqlList(files)
	var q string
	if mode == "load" {
		q = fmt.Sprintf("COPY (SELECT %s FROM read_parquet(%s)) TO %s (FORMAT parquet, COMPRESSION zstd)",
			strings.Join(data, ", "), list, sqlString(out))
	} else {
		q = duckdbMergeSQL(list, sqlString(tablePath), sqlString(out), data, sqlIdent(key), sqlIdent(orderBy))
	}
	rep.SQL = q
	t0 := time.Now()
	if err := conn.QueryRowContext(ctx, q).Scan(&rep.RowsWritten); err != nil {
		return fmt.Errorf("DuckDB %s: %w", mode, err)
	}
	rep.Durations[mode] = time.Since(t0).Seconds()
	rep.Files = len(files)
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			rep.BytesRead += st.Size()
		}
	}
	if st, err := os.Stat(out); err == nil {
		rep.BytesWritten = st.Size()
	}
	if st, err := os.Stat(tablePath); tablePath != "" && err == nil {
		rep.TableBytes = st.Size()
	}
	rep.Durations["total"] = time.Since(start).Seconds()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if report == "" {
		_, err = os.Stdout.Write(append(b, '\n'))
		return err
	}
	return os.WriteFile(report, b, 0o644)
}

// duckdbMergeSQL is the merge as one statement. The winner of a key is its
// latest change by the order column, then by file (names in source order),
// then by row; the table keeps the rows whose key no change names, and
// takes every winner that is not a D.
func duckdbMergeSQL(files, table, out string, cols []string, key, orderBy string) string {
	c := strings.Join(cols, ", ")
	return fmt.Sprintf(`COPY (
  WITH c AS (
    SELECT * FROM read_parquet(%s, filename = true, file_row_number = true)
    QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s DESC, filename DESC, file_row_number DESC) = 1
  )
  SELECT %s FROM read_parquet(%s) t ANTI JOIN c USING (%s)
  UNION ALL
  SELECT %s FROM c WHERE "Op" <> 'D'
) TO %s (FORMAT parquet, COMPRESSION zstd)`, files, key, orderBy, c, table, key, c, out)
}

// duckdbColumns are the columns of a Parquet file, in order.
func duckdbColumns(ctx context.Context, conn *sql.Conn, file string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT name FROM parquet_schema("+sqlString(file)+") WHERE num_children IS NULL OR num_children = 0")
	if err != nil {
		return nil, fmt.Errorf("DuckDB: the columns of %s: %w", file, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("DuckDB: the columns of %s: %w", file, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("DuckDB: %s has no columns", file)
	}
	return cols, nil
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
func sqlIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sqlList(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = sqlString(f)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
