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
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
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
	// Room for the object and the read that finds its end: ReadFrom grows
	// (doubling) a buffer with less than bytes.MinRead free.
	buf := bytes.NewBuffer(make([]byte, 0, max(before.Size(), 0)+bytes.MinRead))
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

// Bucket lists a DMS folder in S3 page by page (1,000 keys a request), so
// it never holds the whole listing: List lists the whole folder (or after a
// key), ListRecent only what a run with a settled bookmark needs.
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
	_, err := s.pages(ctx, in, func(page *s3.ListObjectsV2Output) (bool, error) {
		for _, o := range page.Contents {
			if err := fn(s.object(o)); err != nil {
				return false, err
			}
		}
		return false, nil
	})
	return err
}

// object is a listed S3 object, its key relative to the folder.
func (s *Bucket) object(o types.Object) Object {
	obj := Object{Key: strings.TrimPrefix(aws.ToString(o.Key), s.Loc.keyPrefix()), Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`)}
	if o.LastModified != nil {
		obj.ModTime = *o.LastModified
	}
	return obj
}

// pages lists in page by page, handing each page to fn, until the listing
// ends or fn says stop (then stopped is true); it returns how many
// requests it made.
func (s *Bucket) pages(ctx context.Context, in *s3.ListObjectsV2Input, fn func(*s3.ListObjectsV2Output) (stop bool, err error)) (requests int, err error) {
	p := s3.NewListObjectsV2Paginator(s.Client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		requests++
		if err != nil {
			return requests, fmt.Errorf("listing source %s: %w (check --source and the role's s3:ListBucket permission)", s, err)
		}
		stop, err := fn(page)
		if err != nil || stop {
			return requests, err
		}
	}
	return requests, nil
}

// Stat finds one object by its key (relative to the folder) with a single
// list request; ok is false when it does not exist.
func (s *Bucket) Stat(ctx context.Context, key string) (obj Object, ok bool, err error) {
	full := s.Loc.keyPrefix() + key
	out, err := s.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.Loc.Bucket), Prefix: aws.String(full), MaxKeys: aws.Int32(1)})
	if err != nil {
		return obj, false, fmt.Errorf("listing source %s: %w (check --source and the role's s3:ListBucket permission)", s, err)
	}
	if len(out.Contents) == 0 || aws.ToString(out.Contents[0].Key) != full {
		return obj, false, nil
	}
	return s.object(out.Contents[0]), true, nil
}

// ListRecent lists what a run needs once every CDC file named at or
// before since (a CDC name, yyyyMMdd-HHmmssSSS: the bookmark's watermark)
// has been applied, without relisting that settled history whatever the
// folders' layout. fn sees every full-load file and every CDC file named
// after since, in any DMS date layout (layout.go) or none, and a few older
// ones; it does not see most older CDC files, DMS date folders whose dates
// all lie more than two hours before since or more than a day after now
// (or since, if later), nor other objects whose keys sort among older CDC
// names or older time-sorted date folders of one level.
//
// Folders are walked level by level with the "/" delimiter. A level is
// listed from its start up to the first page holding a CDC file or a
// time-sorted date folder (2024-08-14/, 20240814/: the folders that sort
// before those, MM/ and DD/, come first); if it stopped there, it is then
// listed after since (later names and folders), at the year prefixes of
// the window (YYYY/ and YYYY-MM-DD/ folders sort among older names, YYYY_
// folders after a year's names) and at the month prefix (YYYYMM/). A
// folder of a full date, or one that is no date folder, is listed whole.
// An object that appears late, named before since, is not listed: a full
// listing (List) finds it. It returns the number of list requests made.
func (s *Bucket) ListRecent(ctx context.Context, since string, now time.Time, fn func(Object) error) (int, error) {
	w, ok := ParseCDCTime(since)
	if !ok {
		return 0, fmt.Errorf("listing source %s after %q: not a CDC file name (this is a bug)", s, since)
	}
	hi := now
	if w.After(hi) {
		hi = w
	}
	l := &recentListing{b: s, since: since, w: w, lo: w.Add(-recentMargin), hi: hi.AddDate(0, 0, 1), fn: fn,
		seen: map[string]bool{}, seenDir: map[string]bool{}}
	queue := []string{""}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		subs, err := l.level(ctx, dir)
		if err != nil {
			return l.requests, err
		}
		for _, sub := range subs {
			if hidden(sub) {
				continue // temporary and marker folders (Classify)
			}
			switch judgeFolder(splitFolders(sub), l.lo, l.hi) {
			case folderDescend:
				queue = append(queue, sub)
			case folderWhole:
				if err := l.whole(ctx, sub); err != nil {
					return l.requests, err
				}
			}
		}
	}
	return l.requests, nil
}

// recentMargin is how far before the watermark ListRecent still looks
// into date folders: DMS names folders and files in one time zone, but a
// daylight-saving change names an hour twice.
const recentMargin = 2 * time.Hour

// hidden reports whether a folder path has a segment Classify ignores.
func hidden(dir string) bool {
	for _, seg := range splitFolders(dir) {
		if strings.HasPrefix(seg, ".") || strings.HasPrefix(seg, "_") {
			return true
		}
	}
	return false
}

// recentListing is the state of one ListRecent.
type recentListing struct {
	b        *Bucket
	since    string
	w        time.Time
	lo, hi   time.Time
	fn       func(Object) error
	seen     map[string]bool // object keys handed to fn
	seenDir  map[string]bool // folders found
	requests int
}

// take hands a page's new objects to fn and collects its new folders;
// stop is what until says of any of the page's objects (relative keys)
// or folders.
func (l *recentListing) take(page *s3.ListObjectsV2Output, folders *[]string, until func(key string, folder bool) bool) (stop bool, err error) {
	prefix := l.b.Loc.keyPrefix()
	for _, o := range page.Contents {
		obj := l.b.object(o)
		if until != nil && until(obj.Key, false) {
			stop = true
		}
		if l.seen[obj.Key] {
			continue
		}
		l.seen[obj.Key] = true
		if err := l.fn(obj); err != nil {
			return stop, err
		}
	}
	for _, cp := range page.CommonPrefixes {
		dir := strings.TrimPrefix(aws.ToString(cp.Prefix), prefix)
		if until != nil && until(dir, true) {
			stop = true
		}
		if !l.seenDir[dir] {
			l.seenDir[dir] = true
			*folders = append(*folders, dir)
		}
	}
	return stop, nil
}

// list lists pages until the listing ends or a page holds an entry until
// stops at (stopped is then true).
func (l *recentListing) list(ctx context.Context, in *s3.ListObjectsV2Input, folders *[]string, until func(key string, folder bool) bool) (stopped bool, err error) {
	in.Bucket = aws.String(l.b.Loc.Bucket)
	n, err := l.b.pages(ctx, in, func(page *s3.ListObjectsV2Output) (bool, error) {
		var err error
		stopped, err = l.take(page, folders, until)
		return stopped, err
	})
	l.requests += n
	return stopped, err
}

// level lists the folder dir (relative to the table folder, "" for the
// table folder itself, else ending in "/") one level deep and returns its
// subfolders.
func (l *recentListing) level(ctx context.Context, dir string) ([]string, error) {
	pre := l.b.Loc.keyPrefix() + dir
	var folders []string
	in := func(prefix, startAfter string) *s3.ListObjectsV2Input {
		in := &s3.ListObjectsV2Input{Prefix: aws.String(pre + prefix), Delimiter: aws.String("/")}
		if startAfter != "" {
			in.StartAfter = aws.String(pre + startAfter)
		}
		return in
	}
	name := func(key string) string { return strings.TrimSuffix(strings.TrimPrefix(key, dir), "/") }
	// From the start to the first time-sorted entry.
	stopped, err := l.list(ctx, in("", ""), &folders, func(key string, folder bool) bool {
		if folder {
			return yearFirstFolder(name(key))
		}
		_, cdc := CDCName(key)
		return cdc
	})
	if err != nil || !stopped {
		return folders, err
	}
	// After since, leaving out the YYYY_ folders of since's year (all of
	// the year's sort after its names), then those from the window on.
	wy := strconv.Itoa(l.w.Year())
	past := func(bound string) func(string, bool) bool {
		return func(key string, _ bool) bool { return strings.TrimPrefix(key, dir) >= bound }
	}
	underscores, err := l.list(ctx, in("", l.since), &folders, func(key string, _ bool) bool {
		return strings.HasPrefix(strings.TrimPrefix(key, dir), wy+"_")
	})
	if err != nil {
		return folders, err
	}
	if underscores {
		if _, err := l.list(ctx, in("", wy+"`"), &folders, nil); err != nil { // '`' follows '_'
			return folders, err
		}
	}
	for y := l.lo.Year(); y <= l.w.Year(); y++ {
		ys := strconv.Itoa(y)
		// From the window's first month: a YYYY_MM/ folder sorts before
		// the month's YYYY_MM_DD/ ones.
		after := func(sep string) string {
			if y == l.lo.Year() {
				return ys + sep + l.lo.Format("01")
			}
			return ""
		}
		if y < l.w.Year() || underscores {
			if _, err := l.list(ctx, in(ys+"_", after("_")), &folders, nil); err != nil {
				return folders, err
			}
		}
		// YYYY-MM-DD… and YYYY/ sort before the year's names.
		if _, err := l.list(ctx, in(ys, after("-")), &folders, past(ys+"0")); err != nil {
			return folders, err
		}
	}
	for m := time.Date(l.lo.Year(), l.lo.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(l.w); m = m.AddDate(0, 1, 0) {
		// YYYYMM/ sorts before the month's names, and first in its prefix.
		probe := in(m.Format("200601"), "")
		probe.MaxKeys = aws.Int32(1)
		var found []string
		if _, err := l.list(ctx, probe, &found, func(string, bool) bool { return true }); err != nil {
			return folders, err
		}
		folders = append(folders, found...)
	}
	return folders, nil
}

// whole lists everything under the folder dir.
func (l *recentListing) whole(ctx context.Context, dir string) error {
	var none []string
	_, err := l.list(ctx, &s3.ListObjectsV2Input{Prefix: aws.String(l.b.Loc.keyPrefix() + dir)}, &none, nil)
	return err
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
		buf.Grow(int(*out.ContentLength) + bytes.MinRead) // ReadFrom's last read, without doubling
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
