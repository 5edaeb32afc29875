package bookmark

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/icemerge/icemerge/internal/source"
)

// SettledSet is the settled CDC files of a bookmark: applied files named at
// or before the watermark, which leave Files (size, ETag and times are no
// longer needed: DMS never rewrites a CDC file) but stay known one by one,
// so a full listing can tell a late file from an applied one. It holds only
// keys whose base name is DMS's time name (yyyyMMdd-HHmmssSSS.parquet),
// packed per folder as the sorted times of the names: in JSON about four
// bytes a file, a year of a file a minute in 2 MB. A SettledSet is a value:
// its methods return new sets and never change one in place.
type SettledSet struct {
	dirs map[string][]int64 // folder ("" or ending in "/") → sorted Unix ms
	n    int
}

// settledKey splits a key into its folder and the time of its name.
func settledKey(key string) (dir string, ms int64, ok bool) {
	name, ok := source.CDCName(key)
	if !ok {
		return "", 0, false
	}
	t, _ := source.ParseCDCTime(name)
	return strings.TrimSuffix(key, name+".parquet"), t.UnixMilli(), true
}

// Len is the number of keys.
func (s SettledSet) Len() int { return s.n }

// IsZero reports whether the set is empty (for JSON's omitzero).
func (s SettledSet) IsZero() bool { return s.n == 0 }

// Has reports whether the set holds key.
func (s SettledSet) Has(key string) bool {
	dir, ms, ok := settledKey(key)
	if !ok {
		return false
	}
	_, found := slices.BinarySearch(s.dirs[dir], ms)
	return found
}

// Settleable reports whether a key can be held: its name is a CDC time name.
func Settleable(key string) bool {
	_, _, ok := settledKey(key)
	return ok
}

// With returns the set with keys added; keys that cannot be held are left
// out.
func (s SettledSet) With(keys ...string) SettledSet {
	add := map[string][]int64{}
	for _, k := range keys {
		if dir, ms, ok := settledKey(k); ok {
			add[dir] = append(add[dir], ms)
		}
	}
	if len(add) == 0 {
		return s
	}
	out := SettledSet{dirs: maps.Clone(s.dirs), n: s.n}
	if out.dirs == nil {
		out.dirs = map[string][]int64{}
	}
	for dir, ms := range add {
		old := out.dirs[dir]
		merged := slices.Concat(old, ms)
		slices.Sort(merged)
		merged = slices.Compact(merged)
		out.dirs[dir] = merged
		out.n += len(merged) - len(old)
	}
	return out
}

// Without returns the set without the keys drop reports true for, and
// those keys.
func (s SettledSet) Without(drop func(key string) bool) (SettledSet, []string) {
	var removed []string
	out := SettledSet{n: s.n}
	for dir, ms := range s.dirs {
		kept, changed := ms, false // unchanged: shared (never changed in place)
		for i, v := range ms {
			k := settledName(dir, v)
			if drop(k) {
				if !changed {
					kept, changed = slices.Clone(ms[:i]), true
				}
				removed = append(removed, k)
				continue
			}
			if changed {
				kept = append(kept, v)
			}
		}
		if len(kept) > 0 {
			if out.dirs == nil {
				out.dirs = map[string][]int64{}
			}
			out.dirs[dir] = kept
		}
	}
	out.n -= len(removed)
	return out, removed
}

// All yields every key, in no particular order.
func (s SettledSet) All() iter.Seq[string] {
	return func(yield func(string) bool) {
		for dir, ms := range s.dirs {
			for _, v := range ms {
				if !yield(settledName(dir, v)) {
					return
				}
			}
		}
	}
}

// Newest is the key named last ("" for an empty set).
func (s SettledSet) Newest() string {
	best, bestMS := "", int64(0)
	for dir, ms := range s.dirs {
		if len(ms) == 0 {
			continue
		}
		v := ms[len(ms)-1]
		k := settledName(dir, v)
		if best == "" || v > bestMS || (v == bestMS && k > best) {
			best, bestMS = k, v
		}
	}
	return best
}

func settledName(dir string, ms int64) string {
	return dir + source.FormatCDCName(time.UnixMilli(ms)) + ".parquet"
}

// settledPacked is the version byte of the packed form.
const settledPacked = 1

// MarshalJSON packs the set as one base64 string: a version byte, the
// number of folders, then per folder in order its name (uvarint length and
// bytes), the number of names, the first time (varint Unix ms) and the
// gaps to the next ones (uvarints).
func (s SettledSet) MarshalJSON() ([]byte, error) {
	buf := binary.AppendUvarint([]byte{settledPacked}, uint64(len(s.dirs)))
	for _, dir := range slices.Sorted(maps.Keys(s.dirs)) {
		ms := s.dirs[dir]
		buf = binary.AppendUvarint(buf, uint64(len(dir)))
		buf = append(buf, dir...)
		buf = binary.AppendUvarint(buf, uint64(len(ms)))
		for i, v := range ms {
			if i == 0 {
				buf = binary.AppendVarint(buf, v)
			} else {
				buf = binary.AppendUvarint(buf, uint64(v-ms[i-1]))
			}
		}
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(buf))
}

// UnmarshalJSON reads the packed form.
func (s *SettledSet) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("settled files: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(str)
	if err != nil {
		return fmt.Errorf("settled files: %w", err)
	}
	bad := errors.New("settled files: truncated or not in the packed form")
	if len(raw) == 0 || raw[0] != settledPacked {
		return bad
	}
	raw = raw[1:]
	uv := func() (uint64, bool) {
		v, w := binary.Uvarint(raw)
		if w <= 0 {
			return 0, false
		}
		raw = raw[w:]
		return v, true
	}
	ndirs, ok := uv()
	if !ok || ndirs > uint64(len(raw)) {
		return bad
	}
	out := SettledSet{dirs: make(map[string][]int64, ndirs)}
	for range ndirs {
		l, ok := uv()
		if !ok || l > uint64(len(raw)) {
			return bad
		}
		dir := string(raw[:l])
		raw = raw[l:]
		count, ok := uv()
		if !ok || count == 0 || count > uint64(len(raw)) {
			return bad
		}
		ms := make([]int64, 0, count)
		first, w := binary.Varint(raw)
		if w <= 0 {
			return bad
		}
		raw = raw[w:]
		ms = append(ms, first)
		for range count - 1 {
			d, ok := uv()
			if !ok || d == 0 {
				return bad
			}
			ms = append(ms, ms[len(ms)-1]+int64(d))
		}
		out.dirs[dir] = ms
		out.n += len(ms)
	}
	if len(raw) != 0 {
		return bad
	}
	*s = out
	return nil
}
