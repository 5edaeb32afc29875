package bookmark

import (
	"context"
	"path/filepath"
	"sync"
	"time"
)

// Test hooks, compiled into the test binary only.

// HoldStoreLock runs fn holding the .cas.lock of the table's folder in a
// local bookmark folder, as a write does for the moment it takes.
func HoldStoreLock(ctx context.Context, b *Bookmarks, fn func()) error {
	name, err := b.name(lockName)
	if err != nil {
		return err
	}
	return b.obj.(fileObjects).locked(ctx, name, func(string, Version) error { fn(); return nil })
}

// SetStoreLockWait shortens how long writes to a local folder wait for its
// .cas.lock.
func SetStoreLockWait(b *Bookmarks, d time.Duration) {
	f := b.obj.(fileObjects)
	f.wait = d
	b.obj = f
}

// StoreLockPath is the .cas.lock of the table's folder.
func StoreLockPath(b *Bookmarks) string {
	return filepath.Join(b.obj.(fileObjects).dir, b.table, casLockName)
}

// Faults makes the next n writes (put or remove) of the object named file
// (e.g. "lock.json") fail with err; n < 0 fails all of them. It returns a
// count of the failures injected so far.
func Faults(b *Bookmarks, file string, n int, err error) func() int {
	var f *faultyObjects
	switch o := b.obj.(type) {
	case *faultyObjects:
		f = o
	case faultyRemover:
		f = o.faultyObjects
	}
	if f != nil {
		f.mu.Lock()
		f.file, f.left, f.err, f.failed = file, n, err, 0
		f.mu.Unlock()
		return f.count
	}
	f = &faultyObjects{objects: b.obj, file: file, left: n, err: err}
	if _, ok := b.obj.(remover); ok {
		b.obj = faultyRemover{f}
	} else {
		b.obj = f
	}
	return f.count
}

func (f *faultyObjects) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// faultyObjects fails writes of one object, as a full disk or a broken
// network would.
type faultyObjects struct {
	objects
	file string
	err  error

	mu     sync.Mutex
	left   int
	failed int
}

// faultyRemover is faultyObjects over a store that can remove.
type faultyRemover struct{ *faultyObjects }

var _ remover = faultyRemover{}

func (f *faultyObjects) fault(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if filepath.Base(name) != f.file || f.left == 0 {
		return nil
	}
	f.left--
	f.failed++
	return f.err
}

func (f *faultyObjects) put(ctx context.Context, name string, data []byte, prev Version) (Version, error) {
	if err := f.fault(name); err != nil {
		return "", err
	}
	return f.objects.put(ctx, name, data, prev)
}

func (f faultyRemover) remove(ctx context.Context, name string, prev Version) error {
	if err := f.fault(name); err != nil {
		return err
	}
	return f.objects.(remover).remove(ctx, name, prev)
}

// JoinInside and KeyInside are the path checks every store applies.
var (
	JoinInside = joinInside
	KeyInside  = keyInside
)

// Inflated reports whether a set's stored form has been inflated.
func Inflated(t TombstoneSet) bool { return t.d != nil && t.d.packed != nil }
