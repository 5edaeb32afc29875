package bookmark_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
)

// cdc is the key of a CDC file in a date folder, named at t.
func cdc(t time.Time) string {
	n := t.UTC().Format("20060102-150405.000")
	return t.UTC().Format("2006/01/02/") + n[:15] + n[16:] + ".parquet"
}

// rewindFixture is a bookmark after three runs: the full load, then CDC
// files at t0+1m … t0+4m, one of them quarantined, with a tombstone.
func rewindFixture(t0, applied time.Time) (bookmark.State, []source.Object) {
	var objs []source.Object
	objs = append(objs, obj("LOAD00000001.parquet", 100, t0))
	for i := 1; i <= 4; i++ {
		objs = append(objs, obj(cdc(t0.Add(time.Duration(i)*time.Minute)), int64(10*i), t0.Add(time.Duration(i)*time.Minute)))
	}
	s := bookmark.New("db.t").Begin("r1", objs[:1], applied).Finish(applied)
	s = s.Begin("r2", objs[1:3], applied).Finish(applied)
	s = s.Quarantine(objs[3:4], map[string]bookmark.Quarantined{objs[3].Key: bookmark.QuarantineOf(objs[3], "bad", applied)}, applied)
	s = s.Begin("r3", objs[4:], applied).Finish(applied)
	s.Tombstones = bookmark.NewTombstoneSet(map[string]bookmark.Tombstone{"key": {Order: []byte{1, 2}, At: applied}})
	return s, objs
}

func keysOf(objs []source.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

func TestRewind(t *testing.T) {
	t0 := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	s, objs := rewindFixture(t0, now.Add(-time.Minute))
	noList := func() ([]source.Object, error) { t.Fatal("listed without settled history"); return nil, nil }

	t.Run("forgets the CDC files after the time, keeps the rest", func(t *testing.T) {
		got, r, err := s.Rewind(t0.Add(2*time.Minute+time.Millisecond), now, noList)
		if err != nil {
			t.Fatal(err)
		}
		if want := keysOf(objs[3:]); !slices.Equal(r.Files, want) {
			t.Errorf("forgot %v, want %v", r.Files, want)
		}
		if want := keysOf(objs[:3]); !slices.Equal(got.SortedFiles(), slices.Sorted(slices.Values(want))) {
			t.Errorf("files %v, want %v", got.SortedFiles(), want)
		}
		if r.Kept != 3 || r.Quarantined != 1 || len(got.Quarantined) != 0 {
			t.Errorf("kept %d, dropped %d quarantine records (%d left); want 3, 1, 0", r.Kept, r.Quarantined, len(got.Quarantined))
		}
		if got.Token != s.Token || got.Runs != s.Runs || !sameTombstones(t, got.Tombstones, s.Tombstones) {
			t.Errorf("token %q runs %d tombstones %d: want them unchanged", got.Token, got.Runs, got.Tombstones.Len())
		}
		if m := got.Rewound; m == nil || m.Files != 2 || !m.At.Equal(now) {
			t.Errorf("rewind mark %+v", m)
		}
		if left := unprocessed(got, objs); !slices.Equal(keysOf(left), keysOf(objs[3:])) {
			t.Errorf("next run lists %v, want %v", keysOf(left), keysOf(objs[3:]))
		}
		// The original is untouched: states share no maps.
		if len(s.Files) != 5 || len(s.Quarantined) != 1 {
			t.Errorf("Rewind changed its receiver")
		}
	})
	t.Run("a file named at the time is kept", func(t *testing.T) {
		_, r, err := s.Rewind(t0.Add(3*time.Minute), now, noList)
		if err != nil || !slices.Equal(r.Files, keysOf(objs[4:])) {
			t.Errorf("forgot %v (%v), want %v", r.Files, err, keysOf(objs[4:]))
		}
	})
	t.Run("before every CDC file: the full load stays", func(t *testing.T) {
		got, r, err := s.Rewind(t0, now, noList)
		if err != nil || len(r.Files) != 4 || !slices.Equal(got.SortedFiles(), []string{"LOAD00000001.parquet"}) {
			t.Errorf("forgot %v, kept %v (%v); want every CDC file forgotten, the LOAD file kept", r.Files, got.SortedFiles(), err)
		}
	})
	t.Run("after every file: nothing changes", func(t *testing.T) {
		got, r, err := s.Rewind(t0.Add(time.Hour), now, noList)
		if err != nil || len(r.Files) != 0 || len(got.Files) != 5 || len(got.Quarantined) != 1 {
			t.Errorf("forgot %v (%v)", r.Files, err)
		}
	})
	t.Run("names without a time are kept", func(t *testing.T) {
		odd := s.Absorb([]source.Object{obj("part-00001.parquet", 1, now)}, now)
		got, r, err := odd.Rewind(t0, now, noList)
		if err != nil || len(r.Files) != 4 || got.Files["part-00001.parquet"].Size != 1 {
			t.Errorf("forgot %v (%v): the undated file must stay", r.Files, err)
		}
	})
	t.Run("a pending run refuses", func(t *testing.T) {
		p := s.Begin("r4", nil, now)
		if _, _, err := p.Rewind(t0, now, noList); !errors.Is(err, bookmark.ErrPending) {
			t.Errorf("err = %v, want ErrPending", err)
		}
	})
}

// A rewind forgets settled files like the others, without a listing, and
// moves the watermark back to the time.
func TestRewindSettledFiles(t *testing.T) {
	t0 := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	s, objs := rewindFixture(t0, now.Add(-time.Hour))
	s = s.Settle(now, 15*time.Minute, nil)
	if s.Settled != "20240814-000400000" || len(s.Files) != 1 || s.SettledFiles.Len() != 4 {
		t.Fatalf("fixture: settled %q, files %v, %d settled", s.Settled, s.SortedFiles(), s.SettledFiles.Len())
	}
	newer := obj(cdc(t0.Add(5*time.Minute)), 50, now)
	s = s.Absorb([]source.Object{newer}, now)
	listing := append(slices.Clone(objs), newer)
	if s.NeedsHistory(t0) {
		t.Fatalf("NeedsHistory with every settled file recorded")
	}
	got, r, err := s.Rewind(t0.Add(90*time.Second), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := append(keysOf(objs[2:]), newer.Key)
	if !slices.Equal(r.Files, want) || got.Settled != "20240814-000130000" || r.SettledBefore != "20240814-000400000" {
		t.Errorf("forgot %v, watermark %q (before %q); want %v, 20240814-000130000", r.Files, got.Settled, r.SettledBefore, want)
	}
	if left := unprocessed(got, listing); !slices.Equal(keysOf(source.SortObjects(left)), want) {
		t.Errorf("next run lists %v, want %v", keysOf(left), want)
	}
	if r.Kept != 2 || r.Quarantined != 1 || got.Quarantined != nil {
		t.Errorf("kept %d, quarantine records %v after dropping %d; want 2 kept", r.Kept, got.Quarantined, r.Quarantined)
	}
}

// A bookmark of an earlier version settled by key: reading it turns the
// key into a watermark; a rewind into that history needs the listing and
// records the settled files it keeps.
func TestRewindIntoLegacySettledHistory(t *testing.T) {
	t0 := time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)
	applied := now.Add(-time.Hour)
	_, objs := rewindFixture(t0, applied)
	legacy := `{"format":1,"table":"db.t","token":"r3","runs":3,"settled":"` + objs[4].Key + `",` +
		`"files":{"LOAD00000001.parquet":{"size":100,"mtime":"2024-08-14T00:00:00Z","applied":"2026-12-01T08:00:00Z"}}}`
	var s bookmark.State
	if err := json.Unmarshal([]byte(legacy), &s); err != nil {
		t.Fatal(err)
	}
	if s.Settled != "20240814-000400000" || s.Horizon != s.Settled {
		t.Fatalf("read settled %q horizon %q; want the key's name as both", s.Settled, s.Horizon)
	}
	// Earlier versions settled a DDMMYYYY folder by key: 15/08/2024/…
	// sorts before 14/08/2024/… and was never applied. By name it is not
	// settled.
	if !s.Applied(obj(objs[2].Key, 1, now)) || s.Applied(obj("15/08/2024/20240815-000000000.parquet", 1, now)) {
		t.Errorf("a settled name must count as applied, a later one in a folder that sorts before must not")
	}
	newer := obj(cdc(t0.Add(5*time.Minute)), 50, now)
	listing := append(slices.Clone(objs), newer, obj("2024/08/14/_tmp", 1, now))
	listed := 0
	list := func() ([]source.Object, error) { listed++; return listing, nil }
	if _, _, err := s.Rewind(t0.Add(90*time.Second), now, nil); !errors.Is(err, bookmark.ErrSettledHistory) {
		t.Fatalf("without a listing: err = %v, want ErrSettledHistory", err)
	}
	if !s.NeedsHistory(t0.Add(90*time.Second)) || s.NeedsHistory(t0.Add(4*time.Minute)) {
		t.Errorf("NeedsHistory is wrong")
	}
	got, r, err := s.Rewind(t0.Add(90*time.Second), now, list)
	if err != nil {
		t.Fatal(err)
	}
	want := keysOf(objs[2:])
	if listed != 1 || !slices.Equal(r.Files, want) || got.Settled != "20240814-000130000" || got.Horizon != "" {
		t.Errorf("listed %d, forgot %v, watermark %q, horizon %q; want once, %v, 20240814-000130000, none", listed, r.Files, got.Settled, got.Horizon, want)
	}
	if left := unprocessed(got, listing); !slices.Equal(keysOf(source.SortObjects(left)), append(want, newer.Key)) {
		t.Errorf("next run lists %v", keysOf(left))
	}
	// A listing error is the rewind's error.
	boom := errors.New("listing failed")
	if _, _, err := s.Rewind(t0, now, func() ([]source.Object, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the listing's", err)
	}
}
