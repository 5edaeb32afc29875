package bookmark_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
)

// The settled set holds CDC time names in any folder, round-trips through
// its packed JSON form at a few bytes a file, and refuses a damaged form.
func TestSettledSet(t *testing.T) {
	t0 := time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC)
	var keys []string
	for i := range 5000 {
		at := t0.Add(time.Duration(i) * 61 * time.Second)
		name := source.FormatCDCName(at) + ".parquet"
		switch i % 3 {
		case 0:
			keys = append(keys, name)
		case 1:
			keys = append(keys, at.Format("2006/01/02/")+name)
		default:
			keys = append(keys, at.Format("02/01/2006/")+name)
		}
	}
	set := bookmark.SettledSet{}.With(keys...).With("LOAD00000001.parquet", "part-1.parquet", keys[0])
	if set.Len() != len(keys) {
		t.Fatalf("Len %d, want %d (names without a time are left out, duplicates once)", set.Len(), len(keys))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if perFile := float64(len(b)) / float64(len(keys)); perFile > 6 {
		t.Errorf("%.1f bytes a file packed", perFile)
	}
	var back bookmark.SettledSet
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(back.All()); !slices.Equal(got, slices.Sorted(slices.Values(keys))) {
		t.Fatalf("round trip lost keys: %d of %d", len(got), len(keys))
	}
	for _, k := range []string{keys[7], keys[4999]} {
		if !back.Has(k) {
			t.Errorf("Has(%s) = false", k)
		}
	}
	if back.Has("2024/12/31/20241231-230001000.parquet") || back.Has("LOAD00000001.parquet") {
		t.Errorf("Has reports a key never added")
	}
	if got := back.Newest(); got != keys[4999] {
		t.Errorf("Newest = %s, want %s", got, keys[4999])
	}
	less, removed := back.Without(func(k string) bool { return k == keys[1] || k == keys[2] })
	if less.Len() != len(keys)-2 || len(removed) != 2 || less.Has(keys[1]) || !back.Has(keys[1]) {
		t.Errorf("Without: %d left, removed %v; and the original must keep them", less.Len(), removed)
	}
	for _, bad := range []string{`"AQ=="`, `"AgE="`, `"not base64"`, string(b[:len(b)/2]) + `"`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%.30s decoded", bad)
		}
	}
}

// On disk an object has no ETag: a file rewritten in place with the same
// size is a new version by its modification time. On S3 the ETag decides.
func TestAppliedComparesTheVersion(t *testing.T) {
	mt := now.Add(-time.Hour)
	s := bookmark.New("db.t").Begin("r1", []source.Object{obj("LOAD00000001.parquet", 10, mt)}, now).Finish(now)
	if !s.Applied(obj("LOAD00000001.parquet", 10, mt.In(time.FixedZone("x", 3600)))) {
		t.Errorf("the same file in another time zone is not applied")
	}
	if s.Applied(obj("LOAD00000001.parquet", 10, mt.Add(time.Nanosecond))) {
		t.Errorf("a local file rewritten with the same size counts as applied")
	}
	tagged := source.Object{Key: "LOAD00000001.parquet", Size: 10, ModTime: mt, ETag: "a"}
	s = bookmark.New("db.t").Begin("r1", []source.Object{tagged}, now).Finish(now)
	copied := tagged
	copied.ModTime = now // an S3 copy of the same content
	rewritten := tagged
	rewritten.ETag = "b"
	if !s.Applied(copied) || s.Applied(rewritten) {
		t.Errorf("on S3: same ETag applied %v (want true), other ETag applied %v (want false)", s.Applied(copied), s.Applied(rewritten))
	}
	// It survives the JSON round trip to the nanosecond.
	b, _ := json.Marshal(s)
	var back bookmark.State
	if err := json.Unmarshal(b, &back); err != nil || !back.Applied(tagged) {
		t.Errorf("round trip: %v", err)
	}
}

// A commit that replaces the table's rows forgets the records of the
// objects found gone, records the new ones and clears the tombstones;
// until it commits, nothing is forgotten.
func TestFinishForgetsAndReplaces(t *testing.T) {
	old := now.Add(-time.Hour)
	var objs []source.Object
	objs = append(objs, obj("LOAD00000001.parquet", 10, old))
	for i := range 4 {
		objs = append(objs, obj(fmt.Sprintf("2024/08/14/20240814-00000%d000.parquet", i), 1, old))
	}
	s := bookmark.New("db.t").Begin("r1", objs, old).Finish(old).Settle(now, 15*time.Minute, nil)
	s.Tombstones = bookmark.NewTombstoneSet(map[string]bookmark.Tombstone{"key": {Order: []byte{1}, At: old}})
	s.Quarantined = map[string]bookmark.Quarantined{objs[2].Key: {Reason: "bad"}}
	reload := obj("LOAD00000001.parquet", 12, now)
	p := s.Begin("r2", []source.Object{reload}, now)
	p.Pending.Forget = keysOf(objs[1:])
	p.Pending.Replace = bookmark.ReplaceReload
	p.Pending.Tombstones = &bookmark.TombstoneSet{}
	if got, _, _ := bookmark.Reconcile(p, "r1", now); got.SettledFiles.Len() != 4 || got.Replaced != nil {
		t.Errorf("a discarded run forgot files (%d settled left) or marked a replace", got.SettledFiles.Len())
	}
	got := p.Finish(now)
	if !slices.Equal(got.SortedFiles(), []string{"LOAD00000001.parquet"}) || got.SettledFiles.Len() != 0 || got.Quarantined != nil || got.Tombstones.Len() != 0 {
		t.Errorf("files %v, %d settled, quarantined %v, tombstones %v; want the new load only", got.SortedFiles(), got.SettledFiles.Len(), got.Quarantined, got.Tombstones.Len())
	}
	if r := got.Replaced; r == nil || r.Reason != bookmark.ReplaceReload || r.Token != "r2" || r.Files != 1 {
		t.Errorf("replace mark %+v", r)
	}
	if !got.Applied(reload) || got.Applied(objs[0]) || !got.NewestModTime.Equal(now) {
		t.Errorf("the new load must be applied, the old version not; newest mtime %v", got.NewestModTime)
	}
	if got.Settled != s.Settled || got.Settled == "" {
		t.Errorf("watermark %q, want it kept (%q)", got.Settled, s.Settled)
	}
}

// A full listing records the files a bookmark of an earlier version
// counted as applied without a record, and the horizon goes.
func TestMaterialize(t *testing.T) {
	var s bookmark.State
	if err := json.Unmarshal([]byte(`{"format":1,"table":"db.t","settled":"2024/08/14/20240814-000200000.parquet","files":{}}`), &s); err != nil {
		t.Fatal(err)
	}
	listing := []source.Object{
		obj("2024/08/14/20240814-000100000.parquet", 1, now),
		obj("2024/08/14/20240814-000200000.parquet", 1, now),
		obj("2024/08/14/20240814-000300000.parquet", 1, now),
		obj("notes.txt", 1, now),
	}
	got := s.Materialize(listing, now)
	if got.Horizon != "" || got.SettledFiles.Len() != 2 || len(got.Files) != 0 {
		t.Fatalf("horizon %q, %d settled, files %v", got.Horizon, got.SettledFiles.Len(), maps.Collect(maps.All(got.Files)))
	}
	if left := unprocessed(got, listing[:3]); len(left) != 1 || left[0].Key != listing[2].Key {
		t.Errorf("unprocessed %v, want the file after the old settled key", keysOf(left))
	}
	// A legacy key that is no time name keeps its key order.
	if err := json.Unmarshal([]byte(`{"format":1,"table":"db.t","settled":"data/part-9.parquet","files":{}}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.Settled != "" || s.LegacySettled != "data/part-9.parquet" || !s.Applied(obj("data/part-1.parquet", 1, now)) || s.Applied(obj("zz.parquet", 1, now)) {
		t.Errorf("legacy key: settled %q legacy %q", s.Settled, s.LegacySettled)
	}
}
