// Package naive is the merge as one would first write it with iceberg-go:
// the baseline the bench (cmd/icemerge-bench) compares icemerge with. It is
// bench scaffolding, not product code.
package naive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	icesql "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	_ "modernc.org/sqlite" // the SQLite driver of icemerge's sql catalog
)

// Report is what `icemerge-bench naive -report` writes.
type Report struct {
	Files     int                `json:"files"`
	RowsRead  int                `json:"rows_read"`
	BytesRead int64              `json:"bytes_read"` // the CDC files only: iceberg-go's own table reads are not counted
	Keys      int                `json:"keys"`       // the In filter's size
	Appended  int                `json:"rows_appended"`
	Snapshot  int64              `json:"snapshot_id"`
	Durations map[string]float64 `json:"durations"`
}

// Main is `icemerge-bench naive`: the merge as one would first write
// it with iceberg-go, to compare icemerge with. It reads every CDC file of
// the folder (LOAD files are the table already), keeps the latest change
// per key by updated_at (ties: the later row), then in one transaction
// deletes every changed key with Transaction.Delete and an In filter, and
// appends the I/U winners. No bookmark, no lock, no stale-change check.
func Main(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("icemerge-bench naive", flag.ContinueOnError)
	var (
		source, tableName, key, orderBy, warehouse, catalogURI, report string
	)
	fs.StringVar(&source, "source", "", "the DMS folder (its CDC files are merged)")
	fs.StringVar(&tableName, "table", "bench.t", "the table, NS.NAME, in icemerge's sql catalog")
	fs.StringVar(&key, "key", "user_id", "the key column (int32)")
	fs.StringVar(&orderBy, "order-by", "updated_at", "the order column (timestamp)")
	fs.StringVar(&warehouse, "warehouse", "", "the catalog's warehouse, file://…")
	fs.StringVar(&catalogURI, "catalog-uri", "icemerge.db", "icemerge's SQLite catalog")
	fs.StringVar(&report, "report", "", "write the figures as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if source == "" || warehouse == "" {
		return errors.New("-source and -warehouse are required")
	}
	rep := Report{Durations: map[string]float64{}}
	start := time.Now()
	phase := func(name string, t0 time.Time) { rep.Durations[name] = time.Since(t0).Seconds() }

	t0 := time.Now()
	tbl, closeCat, err := naiveOpen(ctx, catalogURI, warehouse, tableName)
	if err != nil {
		return err
	}
	defer closeCat()
	phase("load_table", t0)

	t0 = time.Now()
	recs, err := naiveRead(ctx, source, &rep)
	if err != nil {
		return err
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	phase("read", t0)

	t0 = time.Now()
	keys, rows, err := naiveDedupe(ctx, tbl, recs, key, orderBy)
	if err != nil {
		return err
	}
	defer func() {
		for _, r := range rows {
			r.Release()
		}
	}()
	rep.Keys = len(keys)
	for _, r := range rows {
		rep.Appended += int(r.NumRows())
	}
	phase("dedupe", t0)

	tx := tbl.NewTransaction()
	t0 = time.Now()
	if len(keys) > 0 {
		if err := tx.Delete(ctx, iceberg.IsIn(iceberg.Reference(key), keys...), nil); err != nil {
			return fmt.Errorf("Transaction.Delete: %w", err)
		}
	}
	phase("delete", t0)

	t0 = time.Now()
	if len(rows) > 0 {
		rdr, err := array.NewRecordReader(rows[0].Schema(), rows)
		if err != nil {
			return err
		}
		err = tx.Append(ctx, rdr, nil)
		rdr.Release()
		if err != nil {
			return fmt.Errorf("Transaction.Append: %w", err)
		}
	}
	phase("append", t0)

	t0 = time.Now()
	out, err := tx.Commit(ctx)
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	if s := out.CurrentSnapshot(); s != nil {
		rep.Snapshot = s.SnapshotID
	}
	phase("commit", t0)
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

// naiveOpen opens the table in icemerge's SQLite catalog ("icemerge" is the
// catalog name its rows are stored under).
func naiveOpen(ctx context.Context, catalogURI, warehouse, name string) (*table.Table, func(), error) {
	path := strings.TrimPrefix(catalogURI, "file://")
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, err
	}
	cat, err := icesql.NewCatalog("icemerge", db, icesql.SQLite, iceberg.Properties{"warehouse": warehouse})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("opening the catalog %s: %w", path, err)
	}
	i := strings.LastIndex(name, ".")
	if i <= 0 {
		db.Close()
		return nil, nil, fmt.Errorf("-table %q: want NS.NAME", name)
	}
	tbl, err := cat.LoadTable(ctx, table.Identifier{name[:i], name[i+1:]})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("loading %s: %w", name, err)
	}
	return tbl, func() { db.Close() }, nil
}

// isLoad reports whether a DMS object is a full-load file.
func isLoad(name string) bool {
	base := filepath.Base(name)
	return strings.HasPrefix(base, "LOAD") || (strings.HasPrefix(base, "SEGMENT") && strings.Contains(base, "_LOAD"))
}

// naiveRead reads the CDC files of source in name order.
func naiveRead(ctx context.Context, source string, rep *Report) ([]arrow.RecordBatch, error) {
	var paths []string
	err := filepath.WalkDir(source, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".parquet") && !isLoad(p) {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var recs []arrow.RecordBatch
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		rep.BytesRead += st.Size()
		pf, err := file.OpenParquetFile(p, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, memory.DefaultAllocator)
		if err != nil {
			pf.Close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rr, err := fr.GetRecordReader(ctx, nil, nil)
		if err != nil {
			pf.Close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for rr.Next() {
			rec := rr.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
			rep.RowsRead += int(rec.NumRows())
		}
		err = rr.Err()
		rr.Release()
		pf.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rep.Files++
	}
	return recs, nil
}

// naiveDedupe keeps the latest change per key (by the order column, ties
// to the later row) and returns every changed key and the I/U winners, as
// records of the table's schema.
func naiveDedupe(ctx context.Context, tbl *table.Table, recs []arrow.RecordBatch, key, orderBy string) ([]int32, []arrow.RecordBatch, error) {
	type pos struct {
		rec, row int32
		ts       int64
	}
	win := map[int32]pos{}
	for ri, rec := range recs {
		kc, ok1 := column(rec, key).(*array.Int32)
		tc, ok2 := column(rec, orderBy).(*array.Timestamp)
		if !ok1 || !ok2 {
			return nil, nil, fmt.Errorf("the naive merge wants an int32 %q and a timestamp %q column", key, orderBy)
		}
		for i := range rec.NumRows() {
			k, ts := kc.Value(int(i)), int64(tc.Value(int(i)))
			if w, ok := win[k]; !ok || ts >= w.ts {
				win[k] = pos{int32(ri), int32(i), ts}
			}
		}
	}
	keys := make([]int32, 0, len(win))
	masks := make([][]bool, len(recs))
	for i, rec := range recs {
		masks[i] = make([]bool, rec.NumRows())
	}
	for k, w := range win {
		keys = append(keys, k)
		op := column(recs[w.rec], "Op").(*array.String).Value(int(w.row))
		if op != "D" && op != "d" {
			masks[w.rec][w.row] = true
		}
	}
	slices.Sort(keys)

	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, false, false)
	if err != nil {
		return nil, nil, err
	}
	var out []arrow.RecordBatch
	for i, rec := range recs {
		bb := array.NewBooleanBuilder(memory.DefaultAllocator)
		bb.AppendValues(masks[i], nil)
		mask := bb.NewArray()
		bb.Release()
		kept, err := compute.FilterRecordBatch(ctx, rec, mask, compute.DefaultFilterOptions())
		mask.Release()
		if err != nil {
			return nil, nil, err
		}
		cols := make([]arrow.Array, sc.NumFields())
		for j, f := range sc.Fields() {
			c := column(kept, f.Name)
			if c == nil || !arrow.TypeEqual(c.DataType(), f.Type) {
				kept.Release()
				return nil, nil, fmt.Errorf("column %q: the file has %v, the table %v", f.Name, c, f.Type)
			}
			cols[j] = c
		}
		out = append(out, array.NewRecordBatch(sc, cols, kept.NumRows()))
		kept.Release()
	}
	return keys, out, nil
}

func column(rec arrow.RecordBatch, name string) arrow.Array {
	if idx := rec.Schema().FieldIndices(name); len(idx) > 0 {
		return rec.Column(idx[0])
	}
	return nil
}
