package icemerge

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// The model-based test: a model of the source table, random I/U/D workloads
// with same-second ties, deletes, re-inserts and DMS replays, written as DMS
// files over several runs. After every run the table, read by the
// independent reader, equals the model; after a bookmark reset and a rerun
// over everything it still does.

type modelRow struct {
	name, email string
	score       string // decimal(10,2)
	flags       int8
	big         uint64
	updatedAt   time.Time
}

var modelCols = []dmstest.Column{
	{Name: "user_id", Type: dmstest.Int32, Required: true},
	{Name: "name", Type: dmstest.String},
	{Name: "email", Type: dmstest.String},
	{Name: "score", Type: dmstest.Decimal, Precision: 10, Scale: 2},
	{Name: "flags", Type: dmstest.Int8},
	{Name: "big", Type: dmstest.Uint64},
	{Name: "updated_at", Type: dmstest.Timestamp},
}

type change struct {
	op  string
	id  int32
	row modelRow
}

func (c change) dms() dmstest.Row {
	r := c.row
	return dmstest.Row{c.id, r.name, r.email, r.score, r.flags, r.big, r.updatedAt}
}

type model struct {
	r       *rand.Rand
	rows    map[int32]modelRow
	deleted []int32
	nextID  int32
	clock   time.Time // source commit time; advances by 0 or 1 s
	fileT   time.Time // DMS file clock
	stream  []change  // every change written so far
	dated   bool      // CDC files in date folders
}

var texts = []string{"plain", "𠮷野家", "emoji 😀🎉", "ümlaut", "", "a,b;c\"d'"}

func (m *model) randomRow() modelRow {
	m.tick()
	return modelRow{
		name:      texts[m.r.IntN(len(texts))] + fmt.Sprint(m.r.IntN(100)),
		email:     fmt.Sprintf("u%d@𠮷.example", m.r.IntN(1000)),
		score:     fmt.Sprintf("%d.%02d", m.r.IntN(20000)-10000, m.r.IntN(100)),
		flags:     int8(m.r.IntN(256) - 128),
		big:       m.r.Uint64(),
		updatedAt: m.clock,
	}
}

// tick advances the source clock by zero or one second: many changes share
// a second, as the Glue job this replaces cannot handle.
func (m *model) tick() {
	if m.r.IntN(3) == 0 {
		m.clock = m.clock.Add(time.Second)
	}
}

func (m *model) keys() []int32 {
	ks := make([]int32, 0, len(m.rows))
	for k := range m.rows {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	return ks
}

func (m *model) nextChange() change {
	ks := m.keys()
	p := m.r.IntN(100)
	switch {
	case p < 40 && len(ks) > 0:
		id := ks[m.r.IntN(len(ks))]
		row := m.randomRow()
		m.rows[id] = row
		return change{"U", id, row}
	case p < 60 && len(ks) > 0:
		id := ks[m.r.IntN(len(ks))]
		img := m.rows[id] // D carries the row's last image
		delete(m.rows, id)
		m.deleted = append(m.deleted, id)
		return change{"D", id, img}
	case p < 75 && len(m.deleted) > 0:
		i := m.r.IntN(len(m.deleted))
		id := m.deleted[i]
		m.deleted = append(m.deleted[:i], m.deleted[i+1:]...)
		row := m.randomRow()
		m.rows[id] = row
		return change{"I", id, row}
	default:
		m.nextID++
		row := m.randomRow()
		m.rows[m.nextID] = row
		return change{"I", m.nextID, row}
	}
}

func (m *model) write(t *testing.T, e *env, key string, cs []change, withOp bool) {
	ops := make([]string, len(cs))
	rows := make([]dmstest.Row, len(cs))
	for i, c := range cs {
		ops[i], rows[i] = c.op, c.dms()
	}
	e.putDMS(key, modelCols, ops, rows, dmstest.Options{Op: withOp, RowGroupRows: 1 + m.r.IntN(8)})
}

func (m *model) cdcName() string {
	m.fileT = m.fileT.Add(time.Duration(1+m.r.IntN(90_000)) * time.Millisecond)
	name := m.fileT.Format("20060102-150405.000")
	name = strings.Replace(name, ".", "", 1) + ".parquet"
	if m.dated {
		return m.fileT.Format("2006/01/02/") + name
	}
	return name
}

// check compares the table with the model, column by column.
func (m *model) check(t *testing.T, e *env, when string) {
	t.Helper()
	tbl := e.table()
	got := byKey(tbl.Rows, "user_id")
	if len(got) != len(tbl.Rows) {
		t.Fatalf("%s: %d rows but %d distinct keys", when, len(tbl.Rows), len(got))
	}
	if len(got) != len(m.rows) {
		t.Errorf("%s: table has %d rows, model %d", when, len(got), len(m.rows))
	}
	for id, want := range m.rows {
		r, ok := got[fmt.Sprint(id)]
		if !ok {
			t.Errorf("%s: key %d missing", when, id)
			continue
		}
		wantScore := want.score
		if s, ok := r["score"].(string); ok && strings.TrimLeft(s, "-") != s && strings.TrimLeft(wantScore, "-") == wantScore {
			t.Errorf("%s: key %d score sign", when, id)
		}
		checks := []struct {
			col       string
			got, want any
		}{
			{"name", r["name"], want.name},
			{"email", r["email"], want.email},
			{"flags", r["flags"], int64(want.flags)},
			{"big", r["big"], fmt.Sprint(want.big)},
			{"score", normDecimal(fmt.Sprint(r["score"])), normDecimal(wantScore)},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: key %d column %s = %q, want %q", when, id, c.col, c.got, c.want)
			}
		}
		if ts, _ := r["updated_at"].(time.Time); !ts.Equal(want.updatedAt) {
			t.Errorf("%s: key %d updated_at %v, want %v", when, id, r["updated_at"], want.updatedAt)
		}
	}
}

// normDecimal writes "-0.50" and "-.5" alike.
func normDecimal(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(s, ".")
	ip = strings.TrimLeft(ip, "0")
	fp = (fp + "00")[:2]
	if ip == "" {
		ip = "0"
	}
	if neg && (ip != "0" || fp != "00") {
		return "-" + ip + "." + fp
	}
	return ip + "." + fp
}

func TestModelRandomWorkloads(t *testing.T) {
	for _, backend := range allBackends {
		// Many seeds on disk; one each on the servers, where a run costs
		// hundreds of requests.
		seeds := 1
		if backend == "local" {
			seeds = 6
		}
		for seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed%d", backend, seed), func(t *testing.T) { modelRun(t, backend, seed) })
		}
	}
}

func modelRun(t *testing.T, backend string, seed int) {
	{
		{
			m := &model{
				r:     rand.New(rand.NewPCG(uint64(seed), 42)),
				rows:  map[int32]modelRow{},
				clock: time.Date(2024, 8, 14, 0, 0, 36, 0, time.UTC),
				fileT: time.Date(2024, 8, 14, 0, 1, 0, 0, time.UTC),
				dated: seed%2 == 1,
			}
			e := newEnv(t, backend)
			if seed%2 == 0 {
				// Plan every run in key-hash partitions of a few changes:
				// the table must be the same as with one batch.
				e.opts.PartitionRows = 4 + seed
			}
			if seed%3 == 1 {
				// Keep no file read whole: writing reads each again.
				e.opts.SourceCache = 0
			}

			// Full load: the initial rows in two LOAD files (with or without
			// Op, as IncludeOpForFullLoad sets), plus changes made during the
			// load that CDC repeats.
			var initial []change
			for range 20 + m.r.IntN(20) {
				m.nextID++
				row := m.randomRow()
				m.rows[m.nextID] = row
				initial = append(initial, change{"I", m.nextID, row})
			}
			half := len(initial) / 2
			m.write(t, e, "LOAD00000001.parquet", initial[:half], seed%3 != 0)
			m.write(t, e, "LOAD00000002.parquet", initial[half:], seed%3 != 0)
			overlap := []change{initial[0], initial[1]} // CDC repeats what the load holds
			m.stream = append(m.stream, initial...)

			runs := 6
			for run := range runs {
				nfiles := 1 + m.r.IntN(3)
				for f := range nfiles {
					var cs []change
					if run == 0 && f == 0 {
						cs = append(cs, overlap...)
					}
					if m.r.IntN(5) == 0 && len(m.stream) > 5 {
						// DMS replays the tail of the stream after a restart.
						cs = append(cs, m.stream[len(m.stream)-1-m.r.IntN(5):]...)
					}
					for range 1 + m.r.IntN(15) {
						c := m.nextChange()
						cs = append(cs, c)
						m.stream = append(m.stream, c)
					}
					m.write(t, e, m.cdcName(), cs, true)
				}
				if m.r.IntN(4) == 0 {
					e.put(m.cdcName()+".tmp", []byte("not data"))
				}
				e.run()
				m.check(t, e, fmt.Sprintf("after run %d", run+1))
				if t.Failed() {
					return
				}
			}
			if bm := e.bookmark(); bm.Runs != int64(runs) {
				t.Errorf("bookmark counts %d committed runs, want %d", bm.Runs, runs)
			}

			// Reset and rerun over every file: the content is unchanged.
			if _, err := e.store.Save(e.ctx, bookmark.Reset(e.opts.Table, time.Now()), mustVersion(t, e.ctx, e.store)); err != nil {
				t.Fatal(err)
			}
			e.run()
			m.check(t, e, "after reset and rerun")
			before := e.snapshotID()
			if res := e.run(); res.Files != 0 || e.snapshotID() != before {
				t.Errorf("a run after the rerun applied %d files", res.Files)
			}
		}
	}
}
