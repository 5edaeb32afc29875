// Package source is the DMS folder a table's changes come from: a local
// folder or an S3 prefix, listed and read the same way, and DMS's naming
// rules for the objects in it (names.go). It reads; it never writes.
package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Source is the DMS folder of one table.
type Source interface {
	// List calls fn for every object under the folder whose key (relative
	// to the folder) sorts after startAfter ("" = all).
	List(ctx context.Context, startAfter string, fn func(Object) error) error
	// Open opens one listed object for reading.
	Open(ctx context.Context, key string) (Reader, error)
	// String names the folder in messages.
	String() string
}

// Reader is what the Parquet reader needs of an object.
type Reader interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
}

// S3API is the part of the S3 client a source uses.
type S3API interface {
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Open opens the folder at loc; client is needed for an S3 location.
func Open(loc Location, client S3API) (Source, error) {
	if !loc.S3 {
		return &Dir{Root: loc.Path}, nil
	}
	if client == nil {
		return nil, fmt.Errorf("source %s: no S3 client (this is a bug)", loc)
	}
	return &Bucket{Client: client, Loc: loc}, nil
}

// Dir lists a local folder, date-partitioned subfolders included.
type Dir struct{ Root string }

var _ Source = (*Dir)(nil)

func (s *Dir) String() string { return s.Root }

func (s *Dir) List(ctx context.Context, startAfter string, fn func(Object) error) error {
	var fnErr error // the callback's own error, passed on as it is
	err := filepath.WalkDir(s.Root, func(p string, d fs.DirEntry, err error) error {
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
		rel, err := filepath.Rel(s.Root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if key <= startAfter {
			return nil
		}
		fnErr = fn(Object{Key: key, Size: info.Size(), ModTime: info.ModTime()})
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("listing source %s: %w (check --source)", s.Root, err)
	}
	return nil
}

func (s *Dir) Open(_ context.Context, key string) (Reader, error) {
	f, err := os.Open(filepath.Join(s.Root, filepath.FromSlash(key)))
	if err != nil {
		return nil, fmt.Errorf("opening source object %s: %w", key, err)
	}
	return f, nil
}

// Bucket lists a DMS folder in S3 page by page (1,000 keys a request),
// starting after the bookmark's settled key, so it neither holds the whole
// listing nor relists settled history.
type Bucket struct {
	Client S3API
	Loc    Location
}

var _ Source = (*Bucket)(nil)

func (s *Bucket) String() string { return s.Loc.String() }

func (s *Bucket) List(ctx context.Context, startAfter string, fn func(Object) error) error {
	prefix := s.Loc.keyPrefix()
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.Loc.Bucket), Prefix: aws.String(prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(prefix + startAfter)
	}
	p := s3.NewListObjectsV2Paginator(s.Client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing source %s: %w (check --source and the role's s3:ListBucket permission)", s, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			obj := Object{Key: key, Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`)}
			if o.LastModified != nil {
				obj.ModTime = *o.LastModified
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

type bytesObject struct{ *bytes.Reader }

func (bytesObject) Close() error { return nil }

func (s *Bucket) Open(ctx context.Context, key string) (Reader, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(s.Loc.keyPrefix() + key)})
	if err != nil {
		return nil, fmt.Errorf("reading source object %s/%s: %w", s, key, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, fmt.Errorf("reading source object %s/%s: %w", s, key, err)
	}
	return bytesObject{bytes.NewReader(buf.Bytes())}, nil
}

// TableFolders lists the subfolders of a schema folder (one per table),
// sorted. client is needed for an S3 location.
func TableFolders(ctx context.Context, loc Location, client s3.ListObjectsV2APIClient) ([]string, error) {
	var out []string
	if !loc.S3 {
		entries, err := os.ReadDir(loc.Path)
		if err != nil {
			return nil, fmt.Errorf("listing the table folders of %s: %w (check --source)", loc, err)
		}
		for _, e := range entries {
			if e.IsDir() || e.Type()&fs.ModeSymlink != 0 {
				out = append(out, e.Name())
			}
		}
		return out, nil
	}
	prefix := loc.keyPrefix()
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(loc.Bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the table folders of %s: %w (check --source and the role's s3:ListBucket permission)", loc, err)
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/"))
		}
	}
	slices.Sort(out)
	return out, nil
}
