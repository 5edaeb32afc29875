package merge

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cockroachdb/datadriven"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// TestPlanDataDriven runs the cases of testdata/plan: the semantics of a
// run, as examples. Refresh the expected output with -rewrite, then read
// every change: it is the spec.
//
// A case is a run of a table (id the key, v, updated_at the order column):
//
//	run [continue] [order-by=source] [bi] [prefix=P]
//	table                      the table's live rows (default: none, or
//	  1 v=a t=5                with continue the previous run's table)
//	tombstones                 the tombstones of earlier runs (default:
//	  2 t=4                    none, or with continue the previous run's)
//	file 20240814-000001000.parquet
//	  U 1 v=b t=6              a change: Op, key, then v and t (updated_at,
//	  D 3                      seconds after t0); what is not given is null
//	----
//
// Files are given in source order and written as DMS writes them. With bi
// they have a BI_id column after the table's (the before-image key of
// add-before-image-columns): null in inserts and full-load files, the key
// in updates and deletes, or what bi=N gives. order-by=source orders by
// source order only; prefix sets Options.BeforeImagePrefix.
//
// The output is every key's winner (its op, file#row and t) and what the
// plan does with it, the table rows it deletes and the rows it writes, the
// tombstones after it and the table after it; or the error reading a file.
// Each run is also planned again and in one partition per change, which
// must give the same plan.
func TestPlanDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/plan", func(t *testing.T, path string) {
		var st ddState
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "run":
				return st.run(t, d)
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
				return ""
			}
		})
	})
}

// ddT0 is t=0 of the cases; t=N is N seconds later.
var ddT0 = time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)

// The table of the cases: id (the key), v, updated_at.
var ddSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int32},
	{Name: "v", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
}, nil)

// ddRow is a row of the table, or a change (op set).
type ddRow struct {
	op      string // as written to the Op column
	id      int32
	v       *string
	t       *int64 // seconds after ddT0
	bi      *int32 // the before-image key, when the file has one
	biSet   bool   // bi given in the case
	path    string // a table row's data file
	pos     int64
	deleted bool
}

func (r ddRow) String() string {
	v, t := "null", "null"
	if r.v != nil {
		v = *r.v
	}
	if r.t != nil {
		t = strconv.FormatInt(*r.t, 10)
	}
	return fmt.Sprintf("%d v=%s t=%s", r.id, v, t)
}

// ddState is the table (its rows, live and deleted) and the tombstones,
// carried from one run to the next.
type ddState struct {
	rows  []ddRow
	tombs Tombstones
	files int // data files written so far
}

type ddFile struct {
	name string
	rows []ddRow
}

func (st *ddState) run(t *testing.T, d *datadriven.TestData) string {
	o := Options{Keys: []string{"id"}, OrderBy: []string{"updated_at"}}
	bi, cont := false, false
	for _, a := range d.CmdArgs {
		switch {
		case a.Key == "order-by" && len(a.Vals) == 1 && a.Vals[0] == "source":
			o.OrderBy = nil
		case a.Key == "bi" && len(a.Vals) == 0:
			bi = true
		case a.Key == "prefix" && len(a.Vals) == 1:
			o.BeforeImagePrefix = a.Vals[0]
		case a.Key == "continue" && len(a.Vals) == 0:
			cont = true
		default:
			d.Fatalf(t, "unknown argument %s", a)
		}
	}
	if !cont {
		*st = ddState{}
	}
	files := st.parse(t, d)

	// One partition, planned twice (a re-plan after a conflict matches the
	// same batch again), and one partition per change: the same plan.
	var read []*File
	for _, f := range files {
		rf, err := ddRead(t, d, f, o, bi)
		if err != nil {
			return "error: " + err.Error() + "\n" // the state stays
		}
		read = append(read, rf)
	}
	live := &ddLive{rows: st.rows}
	pl := NewPlanner(ddSchema, o, read, PlannerOptions{Tombstones: st.tombs})
	p, _, err := pl.Plan(context.Background(), live)
	if err != nil {
		d.Fatalf(t, "Plan: %v", err)
	}
	// The planner drops its batch once planned: explain a batch planned
	// the same way.
	b, err := pl.batch(0)
	if err != nil {
		d.Fatalf(t, "batch: %v", err)
	}
	if _, err := planAgainst(context.Background(), b, live, &ScanStats{}); err != nil {
		d.Fatalf(t, "planAgainst: %v", err)
	}
	out := st.explain(t, b, p)
	if again, _, err := pl.Plan(context.Background(), live); err != nil || st.effect(t, again) != st.effect(t, p) {
		d.Fatalf(t, "planned again: %v\n%s\nwant\n%s", err, st.effect(t, again), st.effect(t, p))
	}
	readAgain := func() []*File {
		var out []*File
		for _, f := range files {
			rf, err := ddRead(t, d, f, o, bi)
			if err != nil {
				d.Fatalf(t, "%s: read again: %v", f.name, err)
			}
			out = append(out, rf)
		}
		return out
	}
	parts := NewPlanner(ddSchema, o, readAgain(), PlannerOptions{Tombstones: st.tombs, PartitionRows: 1})
	if pp, _, err := parts.Plan(context.Background(), live); err != nil || st.effect(t, pp) != st.effect(t, p) {
		d.Fatalf(t, "planned in %d partitions: %v\n%s\nwant\n%s", parts.Partitions(), err, st.effect(t, pp), st.effect(t, p))
	}
	// Each partition built as three batches at once, matched in one scan.
	again := readAgain()
	for _, po := range []PlannerOptions{{Tombstones: st.tombs, Split: 3}, {Tombstones: st.tombs, Split: 2, PartitionRows: 1}} {
		split := NewPlanner(ddSchema, o, again, po)
		if sp, _, err := split.Plan(context.Background(), live); err != nil || st.effect(t, sp) != st.effect(t, p) {
			d.Fatalf(t, "planned as %d batches a partition, %d partitions: %v\n%s\nwant\n%s", po.Split, split.Partitions(), err, st.effect(t, sp), st.effect(t, p))
		}
	}
	st.apply(t, p)
	return out + st.render()
}

// parse reads the input: optional `table` and `tombstones` sections, which
// replace the table's rows and the tombstones, then `file NAME` sections.
func (st *ddState) parse(t *testing.T, d *datadriven.TestData) []ddFile {
	var files []ddFile
	section := ""
	for _, line := range strings.Split(d.Input, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "table":
			section = "table"
			st.rows = nil
			st.files++
			continue
		case "tombstones":
			section = "tombstones"
			st.tombs = Tombstones{}
			continue
		case "file":
			if len(fields) != 2 {
				d.Fatalf(t, "file NAME: %q", line)
			}
			section = "file"
			files = append(files, ddFile{name: fields[1]})
			continue
		}
		switch section {
		case "table":
			r := ddParseRow(t, d, fields, false)
			r.path, r.pos = ddPath(st.files), int64(len(st.rows))
			st.rows = append(st.rows, r)
		case "tombstones":
			r := ddParseRow(t, d, fields, false)
			if r.t == nil {
				d.Fatalf(t, "a tombstone needs t: %q", line)
			}
			st.tombs[ddKey(r.id)] = orderKey([]value{{kind: 'i', i: ddT0.Add(time.Duration(*r.t) * time.Second).UnixMicro()}})
		case "file":
			f := &files[len(files)-1]
			f.rows = append(f.rows, ddParseRow(t, d, fields, true))
		default:
			d.Fatalf(t, "a row outside a section: %q", line)
		}
	}
	return files
}

func ddPath(n int) string { return fmt.Sprintf("data/%05d.parquet", n) }

// ddParseRow reads `[OP] KEY [v=…] [t=N|null] [bi=KEY|null]`; what is not
// given is null.
func ddParseRow(t *testing.T, d *datadriven.TestData, fields []string, change bool) ddRow {
	var r ddRow
	if change {
		r.op, fields = fields[0], fields[1:]
	}
	if len(fields) == 0 {
		d.Fatalf(t, "a row needs a key")
	}
	id, err := strconv.ParseInt(fields[0], 10, 32)
	if err != nil {
		d.Fatalf(t, "key %q: %v", fields[0], err)
	}
	r.id = int32(id)
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			d.Fatalf(t, "field %q: want name=value", f)
		}
		if v == "null" {
			r.biSet = r.biSet || k == "bi"
			continue
		}
		switch k {
		case "v":
			r.v = &v
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				d.Fatalf(t, "t=%q: %v", v, err)
			}
			r.t = &n
		case "bi":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				d.Fatalf(t, "bi=%q: %v", v, err)
			}
			b := int32(n)
			r.bi, r.biSet = &b, true
		default:
			d.Fatalf(t, "unknown field %q", f)
		}
	}
	return r
}

// ddRead writes the file as DMS does (an Op column; with bi, a BI_id column
// after the table's: null in inserts and full-load files, the key in
// updates and deletes unless the case gives another) and reads it as a run
// does: ReadFile, SplitBeforeImage, Align. An error is the run's.
func ddRead(t *testing.T, d *datadriven.TestData, f ddFile, o Options, bi bool) (*File, error) {
	cols := []dmstest.Column{
		{Name: "id", Type: dmstest.Int32, Required: true},
		{Name: "v", Type: dmstest.String},
		{Name: "updated_at", Type: dmstest.Timestamp},
	}
	if bi {
		cols = append(cols, dmstest.Column{Name: "BI_id", Type: dmstest.Int32})
	}
	kind := CDC
	if strings.HasPrefix(path.Base(f.name), "LOAD") {
		kind = FullLoad
	}
	var ops []string
	var rows []dmstest.Row
	for _, r := range f.rows {
		row := dmstest.Row{r.id, nil, nil}
		if r.v != nil {
			row[1] = *r.v
		}
		if r.t != nil {
			row[2] = ddT0.Add(time.Duration(*r.t) * time.Second)
		}
		if bi {
			var before any
			switch {
			case r.biSet:
				if r.bi != nil {
					before = *r.bi
				}
			case kind == CDC && r.op != "I" && r.op != "i":
				before = r.id
			}
			row = append(row, before)
		} else if r.biSet {
			d.Fatalf(t, "%s: bi= without the run's bi argument", f.name)
		}
		ops, rows = append(ops, r.op), append(rows, row)
	}
	var buf bytes.Buffer
	if err := dmstest.Write(&buf, cols, ops, rows, dmstest.DMSOptions()); err != nil {
		d.Fatalf(t, "%s: %v", f.name, err)
	}
	rf, err := ReadFile(context.Background(), f.name, kind, bytes.NewReader(buf.Bytes()), memory.DefaultAllocator)
	if err == nil {
		err = rf.SplitBeforeImage(o)
	}
	if err == nil {
		err = Align(memory.DefaultAllocator, rf, ddSchema)
	}
	if err != nil {
		return nil, err
	}
	return rf, nil
}

// ddLive is the table's live rows, as the catalog reads them: only rows
// whose key is in the scan's key range (as row-group statistics of
// one-row groups would tell), one row at a time.
type ddLive struct{ rows []ddRow }

func (l *ddLive) ScanLive(_ context.Context, cols []string, rng *KeyRange, fn LiveRowsFunc) (ScanStats, error) {
	var st ScanStats
	for _, r := range l.rows {
		if rng != nil && (rng.Column != "id" || int64(r.id) < int64(rng.Lo.(int32)) || int64(r.id) > int64(rng.Hi.(int32))) {
			st.RowGroupsPruned++
			continue
		}
		st.RowGroups++
		var arrs []arrow.Array
		for _, c := range cols {
			switch c {
			case "id":
				b := array.NewInt32Builder(memory.DefaultAllocator)
				b.Append(r.id)
				arrs = append(arrs, b.NewArray())
			case "updated_at":
				b := array.NewTimestampBuilder(memory.DefaultAllocator, ddSchema.Field(2).Type.(*arrow.TimestampType))
				if r.t == nil {
					b.AppendNull()
				} else {
					b.Append(arrow.Timestamp(ddT0.Add(time.Duration(*r.t) * time.Second).UnixMicro()))
				}
				arrs = append(arrs, b.NewArray())
			default:
				return st, fmt.Errorf("no column %s", c)
			}
		}
		deleted := r.deleted
		err := fn(r.path, arrs, r.pos, func(int64) bool { return deleted })
		for _, a := range arrs {
			a.Release()
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

func ddKey(id int32) string {
	return string(binary.BigEndian.AppendUint64([]byte{'i'}, uint64(int64(id))))
}

// explain prints every key's winner and what the plan does with it.
func (st *ddState) explain(t *testing.T, b *Batch, p *Plan) string {
	type line struct {
		id   int64
		text string
	}
	var lines []line
	for wi := range b.ws {
		w := &b.ws[wi]
		f := b.files[w.file]
		rec := f.Records[w.rec]
		row := int(w.row)
		for _, r := range f.Records[:w.rec] {
			row += int(r.NumRows())
		}
		change := ddRowOf(rec, int(w.row))
		what := fmt.Sprintf("%s %s#%d t=%s", w.op, f.Name, row+1, ddT(change.t))
		if int64(change.id) != w.ikey {
			what = fmt.Sprintf("D %s#%d t=%s (the update to key %d)", f.Name, row+1, ddT(change.t), change.id)
		}
		if w.anchored && len(b.orderIdx) > 0 {
			what += ", by source order"
		}
		var effect string
		switch {
		case w.stale:
			effect = "stale"
		case w.op == Delete && w.nEx == 0:
			effect = "nothing to delete"
		case w.op == Delete:
			effect = "deletes " + ddRows(w.nEx)
		case w.nEx > 0:
			effect = "replaces " + ddRows(w.nEx)
		default:
			effect = "inserts"
		}
		lines = append(lines, line{w.ikey, fmt.Sprintf("  %d: %s -> %s", w.ikey, what, effect)})
	}
	slices.SortFunc(lines, func(a, b line) int { return int(a.id - b.id) })
	var out strings.Builder
	out.WriteString("winners:\n")
	for _, l := range lines {
		out.WriteString(l.text + "\n")
	}
	if p.KeyChanges > 0 {
		fmt.Fprintf(&out, "key changes: %d\n", p.KeyChanges)
	}
	fmt.Fprintf(&out, "stale: %d\n", p.Stale)
	out.WriteString(st.effect(t, p))
	return out.String()
}

func ddRows(n int32) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

func ddT(t *int64) string {
	if t == nil {
		return "null"
	}
	return strconv.FormatInt(*t, 10)
}

// ddRowOf reads row i of an aligned record.
func ddRowOf(rec arrow.RecordBatch, i int) ddRow {
	r := ddRow{id: rec.Column(0).(*array.Int32).Value(i)}
	if v := rec.Column(1).(*array.String); v.IsValid(i) {
		s := v.Value(i)
		r.v = &s
	}
	if ts := rec.Column(2).(*array.Timestamp); ts.IsValid(i) {
		n := int64(time.UnixMicro(int64(ts.Value(i))).Sub(ddT0) / time.Second)
		r.t = &n
	}
	return r
}

// effect prints the rows the plan deletes and writes and the tombstones
// after it.
func (st *ddState) effect(t *testing.T, p *Plan) string {
	var out strings.Builder
	var deleted []string
	for _, r := range st.rows {
		if slices.Contains(p.Deletes[r.path], r.pos) {
			deleted = append(deleted, r.String())
		}
	}
	ddList(&out, "deleted", deleted)
	var written []string
	for _, r := range st.written(t, p) {
		written = append(written, r.String())
	}
	ddList(&out, "written", written)
	type tomb struct {
		id int64
		t  string
	}
	var tombs []tomb
	for k, o := range p.NextTombstones(st.tombs) {
		if len(k) != 9 || k[0] != 'i' {
			t.Fatalf("tombstone key %x: not an int key", k)
		}
		tt := "null"
		if len(o) == 9 && o[0] == 1 {
			micros := int64(binary.BigEndian.Uint64(o[1:]) ^ 1<<63)
			tt = strconv.FormatInt(int64(time.UnixMicro(micros).Sub(ddT0)/time.Second), 10)
		} else if !bytes.Equal(o, []byte{0}) {
			t.Fatalf("tombstone order %x: not one timestamp", o)
		}
		tombs = append(tombs, tomb{int64(binary.BigEndian.Uint64([]byte(k[1:]))), tt})
	}
	slices.SortFunc(tombs, func(a, b tomb) int { return int(a.id - b.id) })
	var ts []string
	for _, tb := range tombs {
		ts = append(ts, fmt.Sprintf("%d t=%s", tb.id, tb.t))
	}
	ddList(&out, "tombstones", ts)
	return out.String()
}

func ddList(out *strings.Builder, name string, items []string) {
	if len(items) == 0 {
		fmt.Fprintf(out, "%s: none\n", name)
		return
	}
	fmt.Fprintf(out, "%s:\n", name)
	for _, it := range items {
		fmt.Fprintf(out, "  %s\n", it)
	}
}

// written reads the rows the plan writes.
func (st *ddState) written(t *testing.T, p *Plan) []ddRow {
	var rows []ddRow
	for rec, err := range p.Records(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Schema().Equal(ddSchema) {
			t.Fatalf("the plan writes %s, not the table's schema", rec.Schema())
		}
		for i := range int(rec.NumRows()) {
			rows = append(rows, ddRowOf(rec, i))
		}
		rec.Release()
	}
	return rows
}

// apply commits the plan to the state: position deletes, a new data file,
// the next tombstones.
func (st *ddState) apply(t *testing.T, p *Plan) {
	for i := range st.rows {
		if slices.Contains(p.Deletes[st.rows[i].path], st.rows[i].pos) {
			st.rows[i].deleted = true
		}
	}
	st.files++
	for i, r := range st.written(t, p) {
		r.path, r.pos = ddPath(st.files), int64(i)
		st.rows = append(st.rows, r)
	}
	st.tombs = p.NextTombstones(st.tombs)
}

// render prints the table's live rows, by key.
func (st *ddState) render() string {
	var live []ddRow
	for _, r := range st.rows {
		if !r.deleted {
			live = append(live, r)
		}
	}
	slices.SortStableFunc(live, func(a, b ddRow) int { return int(a.id - b.id) })
	var items []string
	for _, r := range live {
		items = append(items, r.String())
	}
	var out strings.Builder
	ddList(&out, "table", items)
	return out.String()
}
