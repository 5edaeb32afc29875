package bookmark

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fileObjects keeps objects as files under a folder, replaced atomically
// (temporary file, fsync, rename, fsync the folder). An flock on a sibling
// lock file makes compare-and-swap atomic between processes; a version is
// a hash of the content.
type fileObjects struct{ dir string }

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
	b, err := os.ReadFile(f.where(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errNotFound
	}
	if err != nil {
		return nil, "", err
	}
	return b, versionOf(b), nil
}

// locked runs fn holding the flock of the object's folder.
func (f fileObjects) locked(name string, fn func(p string, cur Version) error) error {
	p := f.where(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("creating folder %s: %w", filepath.Dir(p), err)
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(p), ".cas.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
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
	err := f.locked(name, func(p string, cur Version) error {
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
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
