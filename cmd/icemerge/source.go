package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/icemerge/icemerge/merge"
)

// Source is the DMS folder of one table.
type Source interface {
	// List calls fn for every object under the folder whose key (relative
	// to the folder) sorts after startAfter ("" = all).
	List(ctx context.Context, startAfter string, fn func(merge.Object) error) error
	// Open opens one listed object for reading.
	Open(ctx context.Context, key string) (ReadAtSeekCloser, error)
	// String names the folder in messages.
	String() string
}

// ReadAtSeekCloser is what the Parquet reader needs of an object.
type ReadAtSeekCloser interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
}

// dirSource lists a local folder, date-partitioned subfolders included.
type dirSource struct{ root string }

func (s *dirSource) String() string { return s.root }

func (s *dirSource) List(ctx context.Context, startAfter string, fn func(merge.Object) error) error {
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if key <= startAfter {
			return nil
		}
		return fn(merge.Object{Key: key, Size: info.Size(), ModTime: info.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("listing source %s: %w (check --source)", s.root, err)
	}
	return nil
}

func (s *dirSource) Open(_ context.Context, key string) (ReadAtSeekCloser, error) {
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(key)))
	if err != nil {
		return nil, fmt.Errorf("opening source object %s: %w", key, err)
	}
	return f, nil
}
