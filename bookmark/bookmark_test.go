package bookmark_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
	"github.com/icemerge/icemerge/merge"
)

var now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func obj(key string, size int64, mtime time.Time) source.Object {
	return source.Object{Key: key, Size: size, ModTime: mtime}
}

// unprocessed filters a listing as a run does.
func unprocessed(s bookmark.State, objs []source.Object) []source.Object {
	var out []source.Object
	for _, o := range objs {
		if !s.Applied(o) {
			out = append(out, o)
		}
	}
	return out
}

func TestUnprocessed(t *testing.T) {
	mt := now.Add(-time.Hour)
	s := bookmark.New("db.t").Begin("run1", []source.Object{obj("LOAD00000001.parquet", 10, mt), obj("20240814-000002000.parquet", 20, mt)}, now).Finish(now)
	listing := []source.Object{
		obj("LOAD00000001.parquet", 10, mt),
		obj("20240814-000001000.parquet", 5, mt.Add(-time.Hour)), // late, with an older name and mtime
		obj("20240814-000002000.parquet", 20, mt),
		obj("20240814-000002001.parquet", 7, mt), // same mtime as processed ones
		obj("20240814-000002000.parquet.v2", 1, mt),
	}
	listing[2].ETag = "x"
	got := unprocessed(s, listing)
	var keys []string
	for _, o := range got {
		keys = append(keys, o.Key)
	}
	want := []string{"20240814-000001000.parquet", "20240814-000002001.parquet", "20240814-000002000.parquet.v2"}
	if !slices.Equal(keys, want) {
		t.Errorf("Unprocessed = %v, want %v", keys, want)
	}
	// A processed object rewritten with another size is processed again.
	listing[0].Size = 11
	if got := unprocessed(s, listing[:1]); len(got) != 1 {
		t.Errorf("a rewritten object was not picked up again")
	}
}

func TestReconcile(t *testing.T) {
	base := bookmark.New("db.t").Begin("run1", []source.Object{obj("a.parquet", 1, now)}, now).Finish(now)
	pending := base.Begin("run2", []source.Object{obj("b.parquet", 1, now)}, now)
	tests := []struct {
		name       string
		state      bookmark.State
		tableToken string
		want       bookmark.Outcome
		wantFiles  []string
		wantToken  string
		wantErr    error
	}{
		{"in sync", base, "run1", bookmark.InSync, []string{"a.parquet"}, "run1", nil},
		{"fresh bookmark, table written before", bookmark.New("db.t"), "run9", bookmark.Fresh, nil, "", nil},
		{"fresh bookmark, new table", bookmark.New("db.t"), "", bookmark.InSync, nil, "", nil},
		{"crash after the commit: finalise", pending, "run2", bookmark.Finalised, []string{"a.parquet", "b.parquet"}, "run2", nil},
		{"crash before the commit: discard", pending, "run1", bookmark.Discarded, []string{"a.parquet"}, "run1", nil},
		{"table rolled back", base, "run0", 0, nil, "", bookmark.ErrMismatch},
		{"table recreated", base, "", 0, nil, "", bookmark.ErrMismatch},
		{"pending, table elsewhere", pending, "run7", 0, nil, "", bookmark.ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, outcome, err := bookmark.Reconcile(tc.state, tc.tableToken, now)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if outcome != tc.want || got.Token != tc.wantToken || got.Pending != nil {
				t.Errorf("outcome %v token %q pending %v; want %v %q nil", outcome, got.Token, got.Pending, tc.want, tc.wantToken)
			}
			if files := got.SortedFiles(); !slices.Equal(files, tc.wantFiles) && !(len(files) == 0 && len(tc.wantFiles) == 0) {
				t.Errorf("files %v, want %v", files, tc.wantFiles)
			}
		})
	}
}

// storeSuite is what every Store must do.
func storeSuite(t *testing.T, newStore func(t *testing.T) bookmark.Store) {
	ctx := context.Background()
	t.Run("missing is fresh", func(t *testing.T) {
		s := newStore(t)
		st, v, err := s.Load(ctx)
		if err != nil || v != "" || st.Token != "" {
			t.Fatalf("Load on nothing = %+v, %q, %v; want zero, \"\", nil", st, v, err)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		s := newStore(t)
		st := bookmark.New("db.t").Begin("run1", []source.Object{obj("𠮷/😀.parquet", 3, now)}, now).Finish(now)
		v, err := s.Save(ctx, st, "")
		if err != nil {
			t.Fatal(err)
		}
		got, v2, err := s.Load(ctx)
		if err != nil || v2 != v || got.Token != "run1" || got.Files["𠮷/😀.parquet"].Size != 3 {
			t.Fatalf("Load = %+v, %q, %v; want what was saved at %q", got, v2, err, v)
		}
	})
	t.Run("tombstones", func(t *testing.T) { storeTombstones(t, newStore(t)) })
	t.Run("compare and swap", func(t *testing.T) {
		s := newStore(t)
		v1, err := s.Save(ctx, bookmark.New("db.t"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(ctx, bookmark.New("db.t"), ""); !errors.Is(err, bookmark.ErrConflict) {
			t.Errorf("create over an existing bookmark: err = %v, want ErrConflict", err)
		}
		v2, err := s.Save(ctx, bookmark.New("db.t").Begin("r", nil, now), v1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(ctx, bookmark.New("db.t"), v1); !errors.Is(err, bookmark.ErrConflict) {
			t.Errorf("save from a stale version: err = %v, want ErrConflict", err)
		}
		if _, err := s.Save(ctx, bookmark.New("db.t"), v2); err != nil {
			t.Errorf("save from the current version: %v", err)
		}
	})
	t.Run("concurrent writers: exactly one wins", func(t *testing.T) {
		s := newStore(t)
		v, err := s.Save(ctx, bookmark.New("db.t"), "")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Save(ctx, bookmark.New("db.t").Begin(string(rune('a'+i)), nil, now), v); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d writers won from one version, want 1", wins)
		}
	})
}

func TestFileStore(t *testing.T) {
	storeSuite(t, func(t *testing.T) bookmark.Store { return bookmark.NewFileStore(t.TempDir(), "db.t") })
}

func TestFileStoreCorrupt(t *testing.T) {
	s := bookmark.NewFileStore(t.TempDir(), "db.t")
	if _, err := s.Save(context.Background(), bookmark.New("db.t"), ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Location(), []byte("not gzip"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, v, err := s.Load(context.Background())
	if !errors.Is(err, bookmark.ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	// reset must be able to replace a corrupt bookmark
	if _, err := s.Save(context.Background(), bookmark.Reset("db.t", now), v); err != nil {
		t.Fatalf("replacing a corrupt bookmark: %v", err)
	}
}

func TestMain(m *testing.M) { testservers.Main(m) }

func TestS3Store(t *testing.T) {
	srv := testservers.MinIO(t)
	client := s3.NewFromConfig(srv.Config(t, nil))
	storeSuite(t, func(t *testing.T) bookmark.Store {
		return bookmark.NewS3Store(client, srv.NewBucket(t), "warehouse/_icemerge", "db.t")
	})
	lockSuite(t, func(t *testing.T) *bookmark.Bookmarks {
		return bookmark.NewS3Store(client, srv.NewBucket(t), "warehouse/_icemerge", "db.t")
	})
}

func TestFileLock(t *testing.T) {
	lockSuite(t, func(t *testing.T) *bookmark.Bookmarks { return bookmark.NewFileStore(t.TempDir(), "db.t") })
}

// lockSuite is what every run lock must do.
func lockSuite(t *testing.T, newStore func(t *testing.T) *bookmark.Bookmarks) {
	ctx := context.Background()
	clock := now
	tick := func() time.Time { return clock }
	t.Run("one holder at a time", func(t *testing.T) {
		b := newStore(t)
		l, err := b.Lock(ctx, "a", time.Minute, tick)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Lock(ctx, "b", time.Minute, tick); !errors.Is(err, bookmark.ErrLocked) || !strings.Contains(err.Error(), "a holds") {
			t.Fatalf("second Lock: err = %v, want ErrLocked naming holder a", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Lock(ctx, "b", time.Minute, tick); err != nil {
			t.Fatalf("Lock after Release: %v", err)
		}
	})
	t.Run("an expired lease is taken over, and the old holder knows", func(t *testing.T) {
		b := newStore(t)
		old, err := b.Lock(ctx, "dead", time.Minute, tick)
		if err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(2 * time.Minute)
		defer func() { clock = now }()
		if _, err := b.Lock(ctx, "next", time.Minute, tick); err != nil {
			t.Fatalf("Lock over an expired lease: %v", err)
		}
		if err := old.Renew(ctx); !errors.Is(err, bookmark.ErrLostLock) {
			t.Errorf("Renew by the old holder: err = %v, want ErrLostLock", err)
		}
		if err := old.Release(ctx); err != nil {
			t.Errorf("Release by the old holder must not free the new one's lock: %v", err)
		}
		if _, err := b.Lock(ctx, "third", time.Minute, tick); !errors.Is(err, bookmark.ErrLocked) {
			t.Errorf("the new holder's lock was freed: %v", err)
		}
	})
	t.Run("Holder reads the lock without taking it", func(t *testing.T) {
		b := newStore(t)
		if _, held, err := b.Holder(ctx, clock); err != nil || held {
			t.Fatalf("no lock yet: held %v, err %v", held, err)
		}
		l, err := b.Lock(ctx, "a", time.Minute, tick)
		if err != nil {
			t.Fatal(err)
		}
		h, held, err := b.Holder(ctx, clock)
		if err != nil || !held || h.Owner != "a" || !h.Expires.Equal(clock.Add(time.Minute)) {
			t.Fatalf("Holder = %+v, held %v, err %v; want a, held for a minute", h, held, err)
		}
		if _, held, _ := b.Holder(ctx, clock.Add(2*time.Minute)); held {
			t.Errorf("an expired lease counts as held")
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, held, _ := b.Holder(ctx, clock); held {
			t.Errorf("a released lock counts as held")
		}
		if _, err := b.Lock(ctx, "b", time.Minute, tick); err != nil {
			t.Errorf("Holder took the lock: %v", err)
		}
	})
	t.Run("renewal extends the lease", func(t *testing.T) {
		b := newStore(t)
		l, err := b.Lock(ctx, "a", time.Minute, tick)
		if err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(50 * time.Second)
		defer func() { clock = now }()
		if err := l.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(50 * time.Second) // past the first lease, within the renewed one
		if _, err := b.Lock(ctx, "b", time.Minute, tick); !errors.Is(err, bookmark.ErrLocked) {
			t.Errorf("Lock within a renewed lease: err = %v, want ErrLocked", err)
		}
	})
}

func TestSettle(t *testing.T) {
	old := now.Add(-time.Hour)
	s := bookmark.New("db.t").Begin("r1", []source.Object{
		obj("LOAD00000001.parquet", 1, old),
		obj("2024/08/14/20240814-000001000.parquet", 1, old),
		obj("20240814-000002000.parquet", 1, old), // before partitioning was switched on
	}, old).Finish(old)
	s = s.Begin("r2", []source.Object{obj("2024/08/14/20240814-000003000.parquet", 1, now)}, now).Finish(now)

	got := s.Settle(now, 15*time.Minute, nil)
	if got.Settled != "20240814-000002000" {
		t.Fatalf("Settled = %q, want the newest CDC name applied over 15 minutes ago", got.Settled)
	}
	if _, ok := got.Files["2024/08/14/20240814-000001000.parquet"]; ok || len(got.Files) != 2 || got.SettledFiles.Len() != 2 {
		t.Errorf("Files %v, %d settled: want the settled keys moved, LOAD and the recent key kept", got.SortedFiles(), got.SettledFiles.Len())
	}
	// A new CDC file, and late ones named before the recent key or the
	// watermark, in any folder, are still unprocessed; what is settled is
	// applied.
	for key, want := range map[string]bool{
		"2024/08/14/20240814-000004000.parquet": false,
		"2024/08/14/20240814-000002500.parquet": false,
		"2024/08/14/20240814-000001500.parquet": false,
		"14/08/2024/20240814-000001000.parquet": false,
		"2024/08/14/20240814-000001000.parquet": true,
		"20240814-000002000.parquet":            true,
		"LOAD00000001.parquet":                  true,
	} {
		if applied := got.Applied(obj(key, 1, old)); applied != want {
			t.Errorf("Applied(%s) = %v, want %v", key, applied, want)
		}
	}
	if !got.Late("2024/08/14/20240814-000001500.parquet") || got.Late("2024/08/14/20240814-000002500.parquet") {
		t.Errorf("Late: want a name before the watermark late, one after it not")
	}
	// A bounded run left an older name unprocessed: Settled stays below it.
	left := []source.Object{obj("2024/08/14/20240814-000001500.parquet", 1, old)}
	if got := s.Settle(now, 15*time.Minute, left); got.Settled != "20240814-000001000" {
		t.Errorf("bounded: Settled = %q, want it below the unprocessed name", got.Settled)
	}
	if got := s.Settle(now, 0, nil); got.Settled != "" {
		t.Errorf("window 0 settled %q", got.Settled)
	}
}

func TestTombstonesEncodeAndExpire(t *testing.T) {
	s := bookmark.New("db.t")
	day := 24 * time.Hour
	var err error
	must := func(set bookmark.TombstoneSet, e error) bookmark.TombstoneSet {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
		return set
	}
	s.Tombstones = must(s.EncodeTombstones(merge.Tombstones{"\x00k1": {1}, "k2": {2}}, now.Add(-3*day), 7*day))
	got, err := s.DecodedTombstones()
	if err != nil || len(got) != 2 || string(got["\x00k1"]) != "\x01" {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	// k1 unchanged keeps its time, k2 changed is recorded anew, and after
	// eight days k1 has expired.
	s.Tombstones = must(s.EncodeTombstones(merge.Tombstones{"\x00k1": {1}, "k2": {3}}, now.Add(5*day), 7*day))
	if got, err := s.DecodedTombstones(); err != nil || len(got) != 1 || string(got["k2"]) != "\x03" {
		t.Errorf("after expiry: %v, %v; want only k2", got, err)
	}
	if got := must(s.EncodeTombstones(merge.Tombstones{"k": {1}}, now, 0)); got.Len() != 0 {
		t.Errorf("ttl 0 kept %d tombstones", got.Len())
	}
}

// tombstoneMap is n tombstones with keys that are no text.
func tombstoneMap(n int) map[string]bookmark.Tombstone {
	m := map[string]bookmark.Tombstone{}
	for i := range n {
		m[fmt.Sprintf("\x00\xffkey%06d", i)] = bookmark.Tombstone{Order: []byte{byte(i), 0, byte(i >> 8)}, At: now.Add(-time.Duration(i) * time.Second)}
	}
	return m
}

func sameTombstones(t *testing.T, a, b bookmark.TombstoneSet) bool {
	t.Helper()
	am, err := a.Decode()
	if err != nil {
		t.Fatal(err)
	}
	bm, err := b.Decode()
	if err != nil {
		t.Fatal(err)
	}
	return maps.EqualFunc(am, bm, func(x, y bookmark.Tombstone) bool { return bytes.Equal(x.Order, y.Order) && x.At.Equal(y.At) })
}

// storeTombstones is the part of storeSuite on tombstones: a bookmark keeps
// them after its JSON document and a load leaves them packed, so a run
// that finds nothing new neither inflates nor decodes them and saves
// them again as it read them; the pending run's set survives, even empty.
func storeTombstones(t *testing.T, s bookmark.Store) {
	ctx := context.Background()
	want := bookmark.NewTombstoneSet(tombstoneMap(1000))
	st := bookmark.New("db.t").Begin("run1", nil, now).Finish(now)
	st.Tombstones = want
	st = st.Begin("run2", nil, now)
	st.Pending.Tombstones = &bookmark.TombstoneSet{}
	v, err := s.Save(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	got, v, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bookmark.Inflated(got.Tombstones) || got.Tombstones.Len() != 1000 {
		t.Errorf("the loaded set is inflated (%v) or holds %d keys, want 1000 left packed", bookmark.Inflated(got.Tombstones), got.Tombstones.Len())
	}
	if _, err := s.Save(ctx, got.Settle(now, time.Minute, nil), v); err != nil {
		t.Fatal(err)
	}
	if bookmark.Inflated(got.Tombstones) {
		t.Error("saving a loaded set again inflated it")
	}
	again, _, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTombstones(t, again.Tombstones, want) {
		t.Error("the tombstones changed over two saves")
	}
	if p := again.Pending; p == nil || p.Tombstones == nil || p.Tombstones.Len() != 0 {
		t.Fatalf("pending %+v: the pending run's empty set is lost, so finishing it would keep the old tombstones", p)
	}
	if fin := again.Finish(now); fin.Tombstones.Len() != 0 {
		t.Errorf("finishing a run whose set is empty kept %d tombstones", fin.Tombstones.Len())
	}
}

// Bookmarks of earlier versions held their tombstones in the JSON document,
// keyed by the base64 of the key: packed in one base64 string, or as an
// object before that. Both still read, keys that are not base64 dropped.
func TestTombstonesOfEarlierBookmarks(t *testing.T) {
	at := time.Date(2024, 8, 14, 0, 26, 42, 123456789, time.UTC)
	packed := []byte{1}
	packed = binary.AppendUvarint(packed, 2)
	for _, k := range []string{"a2V5", "b3RoZXI"} { // "key", "other"
		packed = binary.AppendUvarint(packed, uint64(len(k)))
		packed = append(packed, k...)
		packed = append(packed, 2, 1, 2)
		packed = binary.AppendVarint(packed, at.UnixNano())
	}
	forms := map[string]string{
		"packed": `"` + base64.StdEncoding.EncodeToString(packed) + `"`,
		"object": `{"a2V5":{"o":"AQI=","at":"2024-08-14T00:26:42.123456789Z"},"b3RoZXI":{"o":"AQI=","at":"2024-08-14T00:26:42.123456789Z"},"!!":{"o":"AQI="}}`,
		// Another JSON writer may escape the slash of base64.
		"escaped": strings.ReplaceAll(`"`+base64.StdEncoding.EncodeToString(packed)+`"`, "/", `\/`),
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			s := bookmark.NewFileStore(t.TempDir(), "db.t")
			if _, err := s.Save(context.Background(), bookmark.New("db.t"), ""); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			fmt.Fprintf(zw, `{"format":1,"table":"db.t","token":"","files":{},"tombstones":%s,"updated":"2026-12-01T09:00:00Z"}`+"\n", form)
			zw.Close()
			if err := os.WriteFile(s.Location(), buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			st, _, err := s.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.DecodedTombstones()
			want := merge.Tombstones{"key": {1, 2}, "other": {1, 2}}
			if err != nil || !maps.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("tombstones %q, %v; want %q", got, err, want)
			}
			m, _ := st.Tombstones.Decode()
			if !m["key"].At.Equal(at) {
				t.Errorf("recorded at %v, want %v", m["key"].At, at)
			}
		})
	}
}

// A damaged bookmark: cut short, it does not load; with its tombstones
// damaged inside, it loads (a run that finds nothing new never reads them)
// and the first use says they are damaged.
func TestTombstonesDamaged(t *testing.T) {
	ctx := context.Background()
	s := bookmark.NewFileStore(t.TempDir(), "db.t")
	st := bookmark.New("db.t")
	st.Tombstones = bookmark.NewTombstoneSet(tombstoneMap(100))
	v, err := s.Save(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(s.Location())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Location(), good[:len(good)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx); !errors.Is(err, bookmark.ErrCorrupt) {
		t.Errorf("cut short: err = %v, want ErrCorrupt", err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-5]++ // the gzip trailer of the tombstones: their length
	if err := os.WriteFile(s.Location(), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, _, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("damaged tombstones stopped the load: %v", err)
	}
	if _, err := loaded.DecodedTombstones(); err == nil || !strings.Contains(err.Error(), "tombstones damaged") {
		t.Errorf("damaged tombstones decoded: err = %v", err)
	}
	if _, err := loaded.EncodeTombstones(merge.Tombstones{}, now, time.Hour); err == nil {
		t.Error("damaged tombstones re-encoded")
	}
	_ = v
}

// BenchmarkLoadTombstones loads a bookmark holding the tombstones of a
// batch of 1M changes (about 100k deletes), as a run that finds nothing
// new does, and then decodes them, as a run that plans does.
func BenchmarkLoadTombstones(b *testing.B) {
	ctx := context.Background()
	s := bookmark.NewFileStore(b.TempDir(), "db.t")
	m := map[string]bookmark.Tombstone{}
	for i := range 100_000 {
		m[fmt.Sprintf("\x01%08d", i)] = bookmark.Tombstone{Order: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, At: now}
	}
	st := bookmark.New("db.t")
	st.Tombstones = bookmark.NewTombstoneSet(m)
	if _, err := s.Save(ctx, st, ""); err != nil {
		b.Fatal(err)
	}
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if st, _, err := s.Load(ctx); err != nil || st.Tombstones.Len() != len(m) {
				b.Fatalf("%v, %d tombstones", err, st.Tombstones.Len())
			}
		}
	})
	b.Run("load and decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st, _, err := s.Load(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if got, err := st.DecodedTombstones(); err != nil || len(got) != len(m) {
				b.Fatalf("%v, %d tombstones", err, len(got))
			}
		}
	})
}
