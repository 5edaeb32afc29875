package bookmark

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
)

// Version identifies one saved version of an object; "" means none exists.
type Version string

// ErrConflict means the object changed since it was loaded: another run
// saved it. The run must stop; nothing it did is lost (see Reconcile).
var ErrConflict = errors.New("bookmark was changed by another run")

// ErrCorrupt means the stored bookmark cannot be decoded.
var ErrCorrupt = errors.New("bookmark is unreadable")

// errNotFound is what objects.get answers for a missing object.
var errNotFound = errors.New("not found")

// ErrBadName means a table name cannot name a bookmark folder: it would
// address a path outside the bookmark folder or another table's bookmark.
var ErrBadName = errors.New("not a table name a bookmark can be kept under")

// objects is the storage a bookmark folder lives in: small objects with
// compare-and-swap writes. put with prev "" creates only when absent; with a
// version it replaces only that version (ErrConflict otherwise). Nothing is
// deleted through it (conditional deletes are not universal in S3; see
// remover). Names are slash-separated and relative; an implementation
// refuses (ErrBadName) a name that would leave its base. The file and S3
// implementations pass the same conformance suite.
type objects interface {
	get(ctx context.Context, name string) ([]byte, Version, error)
	put(ctx context.Context, name string, data []byte, prev Version) (Version, error)
	// where names the object for messages.
	where(name string) string
}

// remover is an objects that can delete an object with compare-and-swap:
// only while its version is still prev. Deleting needs no free space, so a
// lock is released even on a full disk.
type remover interface {
	remove(ctx context.Context, name string, prev Version) error
}

// plainName checks that v is one plain path element: not empty, not "." or
// "..", without a separator or a NUL.
func plainName(v string) error {
	switch {
	case v == "", v == ".", v == "..":
		return fmt.Errorf("%w: %q", ErrBadName, v)
	case strings.ContainsAny(v, `/\`+"\x00"):
		return fmt.Errorf("%w: %q holds a path separator or a NUL", ErrBadName, v)
	}
	return nil
}

// joinInside joins the slash-separated relative name under the folder base
// and checks, after cleaning, that the result is strictly inside base: a
// last defence should a table name that was not validated get this far.
func joinInside(base, name string) (string, error) {
	for _, e := range strings.Split(name, "/") {
		if err := plainName(e); err != nil {
			return "", err
		}
	}
	p := filepath.Join(base, filepath.FromSlash(name))
	rel, err := filepath.Rel(filepath.Clean(base), p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: %q leaves the folder %s", ErrBadName, name, base)
	}
	return p, nil
}

// keyInside is joinInside for an S3 key prefix ("" for the bucket's root);
// the key is path.Join(prefix, name), as it has always been.
func keyInside(prefix, name string) (string, error) {
	for _, e := range strings.Split(name, "/") {
		if err := plainName(e); err != nil {
			return "", err
		}
	}
	k := path.Join(prefix, name)
	base := strings.TrimSuffix(path.Clean(prefix), "/")
	if base == "." {
		base = ""
	}
	if k == base || (base != "" && !strings.HasPrefix(k, base+"/")) || k == ".." || strings.HasPrefix(k, "../") {
		return "", fmt.Errorf("%w: %q leaves the prefix %q", ErrBadName, name, prefix)
	}
	return k, nil
}

// Store keeps one table's state. Save is a compare-and-swap: it writes only
// when the stored version is still prev ("" = nothing stored), so two writers
// can never overwrite each other's progress.
type Store interface {
	Load(ctx context.Context) (State, Version, error)
	Save(ctx context.Context, s State, prev Version) (Version, error)
	// Location names the stored object, for messages.
	Location() string
}

// Bookmarks is the bookmark and run lock of one table in a bookmark folder:
// <folder>/<ns.table>/bookmark.json.gz and <folder>/<ns.table>/lock.json.
type Bookmarks struct {
	obj   objects
	table string
}

var _ Store = (*Bookmarks)(nil)

const stateName = "bookmark.json.gz"

// name is the object name of file n of the table's folder. The table name
// must be one plain path element, so that no name reaches another table's
// folder ("x.../../ns.other") or outside the bookmark folder; callers
// validate names first (catalog.Ident), this is defence in depth.
func (b *Bookmarks) name(n string) (string, error) {
	if err := plainName(b.table); err != nil {
		return "", fmt.Errorf("bookmark of table %q: %w (want NAMESPACE.NAME, e.g. test_db.users)", b.table, err)
	}
	return b.table + "/" + n, nil
}

// Location implements Store.
func (b *Bookmarks) Location() string {
	n, err := b.name(stateName)
	if err != nil {
		return fmt.Sprintf("(no bookmark: table name %q is invalid)", b.table)
	}
	return b.obj.where(n)
}

// Load implements Store. A missing bookmark is a zero state, version "".
func (b *Bookmarks) Load(ctx context.Context) (State, Version, error) {
	name, err := b.name(stateName)
	if err != nil {
		return State{}, "", err
	}
	data, v, err := b.obj.get(ctx, name)
	if errors.Is(err, errNotFound) {
		return State{}, "", nil
	}
	if err != nil {
		return State{}, "", fmt.Errorf("reading bookmark %s: %w", b.Location(), err)
	}
	s, err := decode(b.Location(), data)
	return s, v, err
}

// Save implements Store.
func (b *Bookmarks) Save(ctx context.Context, s State, prev Version) (Version, error) {
	name, err := b.name(stateName)
	if err != nil {
		return "", err
	}
	data, err := encode(s)
	if err != nil {
		return "", err
	}
	v, err := b.obj.put(ctx, name, data, prev)
	if errors.Is(err, ErrConflict) {
		return "", fmt.Errorf("%w: %s (another run of %s saved it; let it finish, then rerun)", ErrConflict, b.Location(), b.table)
	}
	if err != nil {
		return "", fmt.Errorf("saving bookmark %s: %w", b.Location(), err)
	}
	return v, nil
}

// encode stores the state: a gzip member holding its JSON document, then
// a gzip member for each tombstone set, which the document's "sections"
// lists with their sizes. Names compress well; a set read from a bookmark
// is written again as it was read, without inflating it.
func encode(s State) ([]byte, error) {
	doc := document{stateJSON: stateJSON(s)}
	var secs [][]byte
	add := func(name string, t TombstoneSet) error {
		z, err := t.stored()
		if err != nil {
			return fmt.Errorf("encoding bookmark: %w", err)
		}
		doc.Sections = append(doc.Sections, section{Name: name, Keys: t.Len(), Bytes: len(z)})
		secs = append(secs, z)
		return nil
	}
	if !s.Tombstones.IsZero() {
		if err := add(sectionTombstones, s.Tombstones); err != nil {
			return nil, err
		}
		doc.Tombstones = TombstoneSet{}
	}
	if p := s.Pending; p != nil && p.Tombstones != nil {
		if err := add(sectionPendingTombstones, *p.Tombstones); err != nil {
			return nil, err
		}
		pc := *p
		pc.Tombstones = nil
		doc.Pending = &pc
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding bookmark: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encoding bookmark: %w", err)
	}
	for _, z := range secs {
		buf.Write(z)
	}
	return buf.Bytes(), nil
}

// document is a bookmark's JSON document: the state, and the table of the
// sections after it.
type document struct {
	stateJSON
	Sections []section `json:"sections,omitempty"`
}

func decode(loc string, b []byte) (State, error) {
	corrupt := func(err error) error {
		return fmt.Errorf("%w: %s: %w (reset it with `icemerge bookmark reset`)", ErrCorrupt, loc, err)
	}
	// The document's member ends where the sections start: the reader is
	// an io.ByteReader, so gzip reads no further than its member.
	r := bytes.NewReader(b)
	zr, err := gzip.NewReader(r)
	if err != nil {
		return State{}, corrupt(err)
	}
	zr.Multistream(false)
	// Read whole, then decoded in one pass (a Decoder scans a value once
	// more to find its end).
	js, err := io.ReadAll(zr)
	if err != nil {
		return State{}, corrupt(err)
	}
	var doc document
	if err := json.Unmarshal(js, &doc); err != nil {
		return State{}, corrupt(err)
	}
	s := State(doc.stateJSON)
	rest := b[len(b)-r.Len():]
	for _, sec := range doc.Sections {
		if sec.Bytes < 0 || sec.Bytes > len(rest) || sec.Keys < 0 {
			return State{}, corrupt(fmt.Errorf("section %s of %d bytes: %d bytes are left", sec.Name, sec.Bytes, len(rest)))
		}
		t := storedTombstones(rest[:sec.Bytes:sec.Bytes], sec.Keys)
		rest = rest[sec.Bytes:]
		switch {
		case sec.Name == sectionTombstones:
			s.Tombstones = t
		case sec.Name == sectionPendingTombstones:
			if s.Pending == nil {
				return State{}, corrupt(errors.New("pending tombstones without a pending run"))
			}
			s.Pending.Tombstones = &t
		default:
			return State{}, fmt.Errorf("%w: %s holds a section %q this icemerge does not know: it was saved by a newer icemerge; run that version", ErrCorrupt, loc, sec.Name)
		}
	}
	if len(rest) != 0 {
		return State{}, corrupt(fmt.Errorf("%d bytes after its sections", len(rest)))
	}
	s.upgrade()
	if s.Format != Format {
		return State{}, fmt.Errorf("%w: %s has format %d, this icemerge reads %d", ErrCorrupt, loc, s.Format, Format)
	}
	if s.Files == nil {
		s.Files = map[string]FileInfo{}
	}
	return s, nil
}
