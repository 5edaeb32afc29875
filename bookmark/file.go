package bookmark

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultStoreLockWait bounds how long a write to a local bookmark folder
// waits for the folder's .cas.lock. A write holds it for one small fsync'd
// file, milliseconds; a process frozen while holding it (SIGSTOP, a hung
// disk) must not block every other run for ever.
const DefaultStoreLockWait = 10 * time.Second

// ErrStoreLocked means another process has held a local bookmark folder's
// .cas.lock for longer than a write takes: it is frozen or stuck. The
// message names it; the lock is freed when it resumes or dies.
var ErrStoreLocked = errors.New("the bookmark folder's lock is held by a stuck process")

// casLockName is the lock file of a folder. It is an flock, not a marker:
// its presence means nothing, and it is never deleted (a waiter could
// then lock a file no one else sees). The kernel drops the flock when its
// holder dies, however it dies; the file is opened close-on-exec (as Go
// always does) so no child process can inherit it and keep it alive.
const casLockName = ".cas.lock"

// fileObjects keeps objects as files under a folder, replaced atomically
// (temporary file, fsync, rename, fsync the folder). An flock on a sibling
// lock file makes compare-and-swap atomic between processes; a version is
// a hash of the content.
type fileObjects struct {
	dir  string
	wait time.Duration // for the .cas.lock; 0 means DefaultStoreLockWait
}

var _ remover = fileObjects{}

// NewFileStore keeps the bookmark of table ns.name in a local folder.
func NewFileStore(dir, table string) *Bookmarks {
	return &Bookmarks{obj: fileObjects{dir: dir}, table: table}
}

func (f fileObjects) where(name string) string { return filepath.Join(f.dir, filepath.FromSlash(name)) }

func versionOf(b []byte) Version {
	h := sha256.Sum256(b)
	return Version(hex.EncodeToString(h[:12]))
}

func (f fileObjects) get(ctx context.Context, name string) ([]byte, Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	p, err := joinInside(f.dir, name)
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errNotFound
	}
	if err != nil {
		return nil, "", err
	}
	return b, versionOf(b), nil
}

// casHolder is what a holder of a .cas.lock writes into it, for the
// messages of those who wait.
type casHolder struct {
	process
	Since time.Time `json:"since"`
}

// casRecordSize pads the record written into a .cas.lock: rewritten in
// place at the same size, it needs no new disk block, so it does not fail
// on a full disk once the file exists.
const casRecordSize = 512

// lockFolder takes the flock of folder dir, waiting at most f.wait and
// honouring ctx, and writes this process into it. unlock releases it. A
// probe only looks: it creates and writes nothing, and a missing lock file
// is free.
func (f fileObjects) lockFolder(ctx context.Context, dir string, probe bool) (unlock func(), err error) {
	lp := filepath.Join(dir, casLockName)
	var lock *os.File
	if probe {
		lock, err = os.Open(lp)
		if errors.Is(err, fs.ErrNotExist) {
			return func() {}, nil
		}
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating folder %s: %w", dir, err)
		}
		lock, err = os.OpenFile(lp, os.O_CREATE|os.O_RDWR, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", lp, err)
	}
	wait := f.wait
	if wait <= 0 {
		wait = DefaultStoreLockWait
	}
	began := time.Now()
	delay := time.Millisecond
	for {
		err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			lock.Close()
			return nil, fmt.Errorf("locking %s: %w", lp, err)
		}
		if time.Since(began) >= wait {
			who := describeCASHolder(lock)
			lock.Close()
			return nil, fmt.Errorf("%w: %s has been held for more than %s by %s; it is freed when that process resumes or dies (never delete the file)",
				ErrStoreLocked, lp, wait, who)
		}
		select {
		case <-ctx.Done():
			lock.Close()
			return nil, fmt.Errorf("waiting for the lock %s: %w", lp, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
	if probe {
		return func() {
			_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
			lock.Close()
		}, nil
	}
	// Best effort: a waiter's message is all it serves.
	rec, _ := json.Marshal(casHolder{process: thisProcess(), Since: time.Now().UTC()})
	if len(rec) < casRecordSize {
		rec = append(rec, bytes.Repeat([]byte{' '}, casRecordSize-len(rec))...)
	}
	_, _ = lock.WriteAt(rec, 0)
	return func() {
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	}, nil
}

// readCASHolder reads what the holder of a .cas.lock wrote into it.
func readCASHolder(r io.ReaderAt) (casHolder, bool) {
	var h casHolder
	b, _ := io.ReadAll(io.NewSectionReader(r, 0, 64<<10))
	if json.NewDecoder(bytes.NewReader(b)).Decode(&h) != nil || h.PID == 0 {
		return casHolder{}, false
	}
	return h, true
}

// casHolderOf reads the .cas.lock of the object's folder.
func (f fileObjects) casHolderOf(name string) (casHolder, bool) {
	p, err := joinInside(f.dir, name)
	if err != nil {
		return casHolder{}, false
	}
	lock, err := os.Open(filepath.Join(filepath.Dir(p), casLockName))
	if err != nil {
		return casHolder{}, false
	}
	defer lock.Close()
	return readCASHolder(lock)
}

// describeCASHolder says who holds the .cas.lock open as lock, from what
// the holder wrote into it, and in what state that process is.
func describeCASHolder(lock *os.File) string {
	h, ok := readCASHolder(lock)
	if !ok {
		return "a process that did not say which"
	}
	who := fmt.Sprintf("%s (since %s)", h.process, h.Since.Format(time.RFC3339))
	switch livenessOf(&h.process, thisProcess()) {
	case gone:
		return who + ", which has exited: another process holds it now, one that inherited it or could not write its name"
	case alive:
		if st, err := lookup(h.PID); err == nil && st.state != "" {
			return who + ", " + st.state
		}
	}
	return who
}

// locked runs fn holding the flock of the object's folder.
func (f fileObjects) locked(ctx context.Context, name string, fn func(p string, cur Version) error) error {
	p, err := joinInside(f.dir, name)
	if err != nil {
		return err
	}
	unlock, err := f.lockFolder(ctx, filepath.Dir(p), false)
	if err != nil {
		return err
	}
	defer unlock()
	var cur Version
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		cur = versionOf(b)
	}
	return fn(p, cur)
}

func (f fileObjects) put(ctx context.Context, name string, data []byte, prev Version) (Version, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	err := f.locked(ctx, name, func(p string, cur Version) error {
		if cur != prev {
			return ErrConflict
		}
		return writeFileAtomic(p, data)
	})
	if err != nil {
		return "", err
	}
	return versionOf(data), nil
}

// remove implements remover. A missing object counts as removed.
func (f fileObjects) remove(ctx context.Context, name string, prev Version) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.locked(ctx, name, func(p string, cur Version) error {
		switch {
		case cur == "":
			return nil
		case cur != prev:
			return ErrConflict
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		return syncDir(filepath.Dir(p))
	})
}

// heldTooLong reports a .cas.lock of the object's folder held for longer
// than a write waits (ErrStoreLocked), or nil once it could be taken.
func (f fileObjects) heldTooLong(ctx context.Context, name string) error {
	p, err := joinInside(f.dir, name)
	if err != nil {
		return err
	}
	unlock, err := f.lockFolder(ctx, filepath.Dir(p), true)
	if err != nil {
		return err
	}
	unlock()
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := io.Copy(tmp, bytes.NewReader(b)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
