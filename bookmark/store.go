package bookmark

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
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

// objects is the storage a bookmark folder lives in: small objects with
// compare-and-swap writes. put with prev "" creates only when absent; with a
// version it replaces only that version (ErrConflict otherwise). Nothing is
// ever deleted (conditional deletes are not universal in S3). The file
// and S3 implementations pass the same conformance suite.
type objects interface {
	get(ctx context.Context, name string) ([]byte, Version, error)
	put(ctx context.Context, name string, data []byte, prev Version) (Version, error)
	where(name string) string
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

func (b *Bookmarks) name(n string) string { return path.Join(b.table, n) }

// Location implements Store.
func (b *Bookmarks) Location() string { return b.obj.where(b.name(stateName)) }

// Load implements Store. A missing bookmark is a zero state, version "".
func (b *Bookmarks) Load(ctx context.Context) (State, Version, error) {
	data, v, err := b.obj.get(ctx, b.name(stateName))
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
	data, err := encode(s)
	if err != nil {
		return "", err
	}
	v, err := b.obj.put(ctx, b.name(stateName), data, prev)
	if errors.Is(err, ErrConflict) {
		return "", fmt.Errorf("%w: %s (another run of %s saved it; let it finish, then rerun)", ErrConflict, b.Location(), b.table)
	}
	if err != nil {
		return "", fmt.Errorf("saving bookmark %s: %w", b.Location(), err)
	}
	return v, nil
}

// encode stores the state as gzip'd JSON: a bookmark lists every applied
// object, and names compress well.
func encode(s State) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(s); err != nil {
		return nil, fmt.Errorf("encoding bookmark: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encoding bookmark: %w", err)
	}
	return buf.Bytes(), nil
}

func decode(loc string, b []byte) (State, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return State{}, fmt.Errorf("%w: %s: %w (reset it with `icemerge bookmark reset`)", ErrCorrupt, loc, err)
	}
	var s State
	if err := json.NewDecoder(zr).Decode(&s); err != nil {
		return State{}, fmt.Errorf("%w: %s: %w (reset it with `icemerge bookmark reset`)", ErrCorrupt, loc, err)
	}
	if s.Format != Format {
		return State{}, fmt.Errorf("%w: %s has format %d, this icemerge reads %d", ErrCorrupt, loc, s.Format, Format)
	}
	if s.Files == nil {
		s.Files = map[string]FileInfo{}
	}
	return s, nil
}
