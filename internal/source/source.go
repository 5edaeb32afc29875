// Package source is the DMS folder a table's changes come from: a local
// folder or an S3 prefix, listed and read the same way, and DMS's naming
// rules for the objects in it (names.go). It reads; it never writes.
package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Source is the DMS folder of one table.
type Source interface {
	// List calls fn for every object under the folder whose key (relative
	// to the folder) sorts after startAfter ("" = all).
	List(ctx context.Context, startAfter string, fn func(Object) error) error
	// Open opens one listed object for reading. With a pin (not the zero
	// Version) the object must still be that version: otherwise Open
	// fails with an error wrapping ErrChanged.
	Open(ctx context.Context, key string, pin Version) (Reader, error)
	// String names the folder in messages.
	String() string
}

// Reader is what the Parquet reader needs of an object, and the version of
// it read.
type Reader interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
	// Version is the version whose bytes the reader holds: a later Open
	// pinned to it reads the same bytes or fails.
	Version() Version
}

// ErrChanged: an object is not the version a run listed or first read. A
// run reads each object up to twice (to check it, then to write its
// winners) and both reads must see one content.
var ErrChanged = errors.New("the source object changed during the run")

// Version identifies the content of an object: on S3 its ETag (sent as
// If-Match, so S3 itself refuses another version); in a local folder its
// size, modification time and, once read, the SHA-256 of its bytes (a
// rewrite within one mtime tick, or one that restores the mtime, still
// changes the hash). Fields left empty are not checked.
type Version struct {
	ETag    string
	Size    int64
	ModTime time.Time
	SHA256  string // hex; local folders only
}

// IsZero reports whether v pins nothing.
func (v Version) IsZero() bool { return v == Version{} }

// Listed is the version a listing saw: a run's first read is pinned to it,
// so the bytes it reads are the object its bookmark records.
func (o Object) Listed() Version {
	return Version{ETag: o.ETag, Size: o.Size, ModTime: o.ModTime}
}

// changed is the error for an object that is not the version pinned.
func changed(where string, pin Version, now string) error {
	return fmt.Errorf("%w: %s is not the version the run listed and read (%s); now %s: nothing was committed; "+
		"rerun to apply its new content, and if this repeats, find what rewrites the object (DMS itself rewrites only on a table reload)",
		ErrChanged, where, pin, now)
}

func (v Version) String() string {
	var parts []string
	if v.ETag != "" {
		parts = append(parts, "ETag "+v.ETag)
	}
	if !v.ModTime.IsZero() || v.Size != 0 {
		parts = append(parts, fmt.Sprintf("%d bytes", v.Size))
	}
	if !v.ModTime.IsZero() {
		parts = append(parts, "modified "+v.ModTime.UTC().Format(time.RFC3339Nano))
	}
	if v.SHA256 != "" {
		parts = append(parts, "SHA-256 "+v.SHA256)
	}
	if len(parts) == 0 {
		return "unknown version"
	}
	return strings.Join(parts, ", ")
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

// Open reads the whole object into memory (as Bucket does): the bytes
// decoded are the bytes hashed, so a later Open pinned to the returned
// Version reads the same content or fails.
func (s *Dir) Open(_ context.Context, key string, pin Version) (Reader, error) {
	p := filepath.Join(s.Root, filepath.FromSlash(key))
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !pin.IsZero() {
			return nil, changed(p, pin, "removed")
		}
		return nil, fmt.Errorf("opening source object %s: %w", key, err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening source object %s: %w", key, err)
	}
	cur := Version{Size: before.Size(), ModTime: before.ModTime()}
	if !pin.ModTime.IsZero() && (pin.Size != cur.Size || !pin.ModTime.Equal(cur.ModTime)) {
		return nil, changed(p, pin, cur.String())
	}
	b := make([]byte, 0, max(before.Size(), 0)+1)
	buf := bytes.NewBuffer(b)
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("reading source object %s: %w", key, err)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading source object %s: %w", key, err)
	}
	if after.Size() != cur.Size || !after.ModTime().Equal(cur.ModTime) || int64(buf.Len()) != cur.Size {
		return nil, changed(p, cur, fmt.Sprintf("%d bytes, modified %s, while it was being read", after.Size(), after.ModTime().UTC().Format(time.RFC3339Nano)))
	}
	sum := sha256.Sum256(buf.Bytes())
	cur.SHA256 = hex.EncodeToString(sum[:])
	if pin.SHA256 != "" && pin.SHA256 != cur.SHA256 {
		return nil, changed(p, pin, cur.String())
	}
	return bytesObject{bytes.NewReader(buf.Bytes()), cur}, nil
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

// bytesObject is an object read into memory.
type bytesObject struct {
	*bytes.Reader
	v Version
}

func (bytesObject) Close() error { return nil }

func (o bytesObject) Version() Version { return o.v }

// Open GETs the object whole. A pin's ETag goes as If-Match: S3 answers
// 412 rather than another version's bytes.
func (s *Bucket) Open(ctx context.Context, key string, pin Version) (Reader, error) {
	where := s.String() + "/" + key
	in := &s3.GetObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(s.Loc.keyPrefix() + key)}
	if pin.ETag != "" {
		in.IfMatch = aws.String(`"` + pin.ETag + `"`)
	}
	out, err := s.Client.GetObject(ctx, in)
	if err != nil {
		switch status := statusOf(err); {
		case status == http.StatusPreconditionFailed && pin.ETag != "":
			return nil, changed(where, pin, "another ETag")
		case !pin.IsZero() && isNotFound(err, status):
			return nil, changed(where, pin, "removed")
		}
		return nil, fmt.Errorf("reading source object %s: %w", where, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if out.ContentLength != nil && *out.ContentLength > 0 {
		buf.Grow(int(*out.ContentLength))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, fmt.Errorf("reading source object %s: %w", where, err)
	}
	cur := Version{ETag: strings.Trim(aws.ToString(out.ETag), `"`), Size: int64(buf.Len())}
	// A store that ignores If-Match still names the version it sent; one
	// without ETags is held to the size.
	if (pin.ETag != "" && cur.ETag != pin.ETag) || (pin.ETag == "" && !pin.IsZero() && cur.Size != pin.Size) {
		return nil, changed(where, pin, cur.String())
	}
	return bytesObject{bytes.NewReader(buf.Bytes()), cur}, nil
}

// statusOf is the HTTP status of a failed S3 call; 0 without one.
func statusOf(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error, status int) bool {
	var api smithy.APIError
	return status == http.StatusNotFound || (errors.As(err, &api) && api.ErrorCode() == "NoSuchKey")
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
