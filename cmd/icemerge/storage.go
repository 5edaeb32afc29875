package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/merge"
)

// location is a parsed --source, --warehouse or --bookmark: a local folder
// or an S3 prefix.
type location struct {
	s3     bool
	bucket string
	prefix string // S3: no leading or trailing slash
	path   string // local: absolute
}

func parseLocation(uri string) (location, error) {
	switch {
	case strings.HasPrefix(uri, "s3://"), strings.HasPrefix(uri, "s3a://"):
		u, err := url.Parse(uri)
		if err != nil {
			return location{}, fmt.Errorf("%q is not a valid s3:// URI: %w", uri, err)
		}
		if u.Host == "" {
			return location{}, fmt.Errorf("%q has no bucket: want s3://BUCKET/PREFIX", uri)
		}
		return location{s3: true, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}, nil
	case strings.HasPrefix(uri, "file://"):
		u, err := url.Parse(uri)
		if err != nil {
			return location{}, fmt.Errorf("%q is not a valid file:// URI: %w", uri, err)
		}
		return location{path: filepath.Clean(u.Path)}, nil
	case strings.Contains(uri, "://"):
		return location{}, fmt.Errorf("%q: use a local path, file:// or s3://", uri)
	case uri == "":
		return location{}, errors.New("empty location")
	}
	p, err := filepath.Abs(uri)
	if err != nil {
		return location{}, err
	}
	return location{path: p}, nil
}

// String is the location as a URI, as Iceberg and the messages spell it.
func (l location) String() string {
	if l.s3 {
		if l.prefix == "" {
			return "s3://" + l.bucket
		}
		return "s3://" + l.bucket + "/" + l.prefix
	}
	return "file://" + l.path
}

// join appends slash-separated elements.
func (l location) join(elem ...string) location {
	if l.s3 {
		l.prefix = strings.Trim(path.Join(append([]string{l.prefix}, elem...)...), "/")
		return l
	}
	l.path = filepath.Join(append([]string{l.path}, elem...)...)
	return l
}

// s3Source lists a DMS folder in S3 page by page (1,000 keys a request),
// starting after the bookmark's settled key, so it neither holds the whole
// listing nor relists settled history.
type s3Source struct {
	client interface {
		s3.ListObjectsV2APIClient
		GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	}
	loc location
}

func (s *s3Source) String() string { return s.loc.String() }

func (s *s3Source) keyPrefix() string {
	if s.loc.prefix == "" {
		return ""
	}
	return s.loc.prefix + "/"
}

func (s *s3Source) List(ctx context.Context, startAfter string, fn func(merge.Object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.loc.bucket), Prefix: aws.String(s.keyPrefix())}
	if startAfter != "" {
		in.StartAfter = aws.String(s.keyPrefix() + startAfter)
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing source %s: %w (check --source and the role's s3:ListBucket permission)", s, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.keyPrefix())
			obj := merge.Object{Key: key, Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`)}
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

func (s *s3Source) Open(ctx context.Context, key string) (ReadAtSeekCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.loc.bucket), Key: aws.String(s.keyPrefix() + key)})
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
