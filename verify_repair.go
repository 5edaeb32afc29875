package icemerge

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/icemerge/icemerge/catalog"
)

// repairer commits a repair; *catalog.Catalog is one, checked with a type
// assertion like the maintenance abilities.
type repairer interface {
	CommitRepair(ctx context.Context, p *catalog.Prepared, id string, summary map[string]string) (*catalog.Table, error)
}

var _ repairer = (*catalog.Catalog)(nil)

// repairBatchRows is the rows of each record batch a repair writes.
const repairBatchRows = 64 << 10

// repair makes the table equal to the source for the keys the comparison
// found: it deletes the table's rows of the keys that are extra, differ or
// are duplicated, and writes the source's rows of the keys that are
// missing, differ or are duplicated, in one commit. Lag and unverifiable
// keys are left alone. The commit carries no bookmark token (see
// catalog.CommitRepair): the bookmark and the table's last token are
// untouched, so the next run reconciles in sync. It runs under the table's
// run lock, against the snapshot verified; another writer's commit in
// between fails it (rerun).
//
// Columns the source lacks, or --skip-columns, keep the table's values in
// a rewritten row (null in a row the table did not have).
func (v *verification) repair(ctx context.Context, out *outcome) (*RepairResult, error) {
	rep, ok := v.d.Catalog.(repairer)
	if !ok {
		return nil, fmt.Errorf("the catalog of %s cannot commit a repair (this is a bug)", v.o.Table)
	}
	stored, err := v.tbl.Schema()
	if err != nil {
		return nil, err
	}
	// The table's columns that come from the table: their index in the
	// stored schema; and, for each stored column, where its value comes
	// from (its position in v.cols, or -1: carried).
	from := make([]int, stored.NumFields())
	var carried []*vcol
	for i, f := range stored.Fields() {
		from[i] = slices.IndexFunc(v.cols, func(c *vcol) bool { return c.name == f.Name })
		if from[i] < 0 {
			c, err := newVCol(f.Name, f.Type)
			if err != nil {
				return nil, err
			}
			carried = append(carried, c)
		}
	}
	deletes, carry, err := v.locate(ctx, out, carried)
	if err != nil {
		return nil, err
	}
	var deleted int64
	for _, ps := range deletes {
		deleted += int64(len(ps))
	}
	written := int64(0)
	var records iter.Seq2[arrow.RecordBatch, error]
	if len(out.write) > 0 {
		records = v.sourceRows(ctx, stored, from, carried, out.write, carry, &written)
	}
	prepared, err := v.d.Catalog.Prepare(ctx, v.tbl, catalog.Change{Records: records, Deletes: deletes})
	if err != nil {
		return nil, err
	}
	if written != int64(len(out.write)) {
		return nil, fmt.Errorf("the source's second read found %d of the %d rows to write (the snapshot changed?): nothing was committed; rerun", written, len(out.write))
	}
	id := catalog.NewRepairID()
	summary := map[string]string{
		catalog.KeyRowsWritten:   strconv.FormatInt(written, 10),
		catalog.KeyRowsDeleted:   strconv.FormatInt(deleted, 10),
		"icemerge.repair-source": v.res.Source + " " + v.res.SourceTable,
	}
	committed, err := rep.CommitRepair(ctx, prepared, id, summary)
	if err != nil {
		return nil, err
	}
	v.d.Log.Info("repaired", "table", v.o.Table, "written", written, "deleted", deleted, "snapshot", committed.SnapshotID(), "repair", id)
	return &RepairResult{ID: id, Snapshot: committed.SnapshotID(), Keys: out.repairKeys, RowsWritten: written, RowsDeleted: deleted}, nil
}

// locate finds the table's rows of the keys to remove (data file →
// sorted positions) and, for the keys rewritten, the table's values of the
// carried columns (their canonical encoding, by key).
func (v *verification) locate(ctx context.Context, out *outcome, carried []*vcol) (map[string][]int64, map[string][]byte, error) {
	deletes := map[string][]int64{}
	carry := map[string][]byte{}
	if len(out.remove) == 0 {
		return deletes, carry, nil
	}
	var names []string
	keyCols := make([]*vcol, len(v.keys))
	for i, j := range v.keys {
		keyCols[i] = v.cols[j]
		names = append(names, v.cols[j].name)
	}
	cols := append(slices.Clone(keyCols), carried...)
	for _, c := range carried {
		names = append(names, c.name)
	}
	getters := make([]tableGetter, len(cols))
	var key, vals []byte
	_, err := v.tbl.ScanLive(ctx, names, nil, func(path string, arrs []arrow.Array, first int64, deleted func(int64) bool) error {
		for j, a := range arrs {
			g, err := cols[j].getter(a)
			if err != nil {
				return fmt.Errorf("table %s, data file %s: %w", v.o.Table, path, err)
			}
			getters[j] = g
		}
		for i := range arrs[0].Len() {
			pos := first + int64(i)
			if deleted(pos) {
				continue
			}
			key = key[:0]
			for _, g := range getters[:len(keyCols)] {
				key = g(key, i)
			}
			if _, ok := out.remove[string(key)]; !ok {
				continue
			}
			deletes[path] = append(deletes[path], pos)
			if _, ok := out.write[string(key)]; !ok || len(carried) == 0 {
				continue
			}
			if _, ok := carry[string(key)]; ok {
				continue // a duplicate: the first row's values
			}
			vals = vals[:0]
			for _, g := range getters[len(keyCols):] {
				vals = g(vals, i)
			}
			carry[string(key)] = slices.Clone(vals)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, nil, err
	}
	for p := range deletes {
		slices.Sort(deletes[p])
	}
	return deletes, carry, nil
}

// sourceRows reads the source again, in the same snapshot, and yields the
// rows of the keys in write as record batches of the table's stored
// schema; *written counts them.
func (v *verification) sourceRows(ctx context.Context, stored *arrow.Schema, from []int, carried []*vcol, write map[string]struct{}, carry map[string][]byte, written *int64) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		batches := make(chan arrow.RecordBatch, 1)
		scanned := make(chan error, 1)
		go func() {
			defer close(batches)
			rb := array.NewRecordBuilder(memory.DefaultAllocator, stored)
			defer rb.Release()
			send := func() error {
				if rb.Field(0).Len() == 0 {
					return nil
				}
				rec := rb.NewRecordBatch()
				select {
				case batches <- rec:
					return nil
				case <-ctx.Done():
					rec.Release()
					return ctx.Err()
				}
			}
			s := &rowScratch{off: make([]int, len(v.cols)+1)}
			scanned <- func() error {
				err := v.db.scan(ctx, v.src, v.cols, func(vals [][]byte) error {
					s.buf = s.buf[:0]
					for j, c := range v.cols {
						s.off[j] = len(s.buf)
						var why unverifiable
						if s.buf, why = c.appendSource(s.buf, vals[j]); why != "" {
							s.buf = append(s.buf, 0)
						}
					}
					s.off[len(v.cols)] = len(s.buf)
					key, _, _ := v.assemble(s, false)
					if _, ok := write[string(key)]; !ok {
						return nil
					}
					*written++
					// The carried columns are in the stored schema's order,
					// as their values are in kept.
					kept, ci := carry[string(key)], 0
					for i := range stored.NumFields() {
						if j := from[i]; j >= 0 {
							v.cols[j].appendTo(rb.Field(i), s.buf[s.off[j]:s.off[j+1]])
							continue
						}
						if kept == nil {
							rb.Field(i).AppendNull()
						} else {
							kept = carried[ci].appendTo(rb.Field(i), kept)
						}
						ci++
					}
					if rb.Field(0).Len() >= repairBatchRows {
						return send()
					}
					return nil
				})
				if err != nil {
					return err
				}
				return send()
			}()
		}()
		for rec := range batches {
			if !yield(rec, nil) {
				cancel()
				for r := range batches {
					r.Release()
				}
				<-scanned
				return
			}
		}
		if err := <-scanned; err != nil {
			yield(nil, fmt.Errorf("reading the rows to repair from %s: %w", v.res.SourceTable, err))
		}
	}
}
