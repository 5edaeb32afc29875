package source

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Location is a parsed --source, --warehouse or --bookmark: a local folder
// or an S3 prefix.
type Location struct {
	S3     bool
	Bucket string
	Prefix string // S3: no leading or trailing slash
	Path   string // local: absolute
}

// ParseLocation reads a local path, a file:// URI or an s3:// URI.
func ParseLocation(uri string) (Location, error) {
	switch {
	case strings.HasPrefix(uri, "s3://"), strings.HasPrefix(uri, "s3a://"):
		u, err := url.Parse(uri)
		if err != nil {
			return Location{}, fmt.Errorf("%q is not a valid s3:// URI: %w", uri, err)
		}
		if u.Host == "" {
			return Location{}, fmt.Errorf("%q has no bucket: want s3://BUCKET/PREFIX", uri)
		}
		return Location{S3: true, Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}, nil
	case strings.HasPrefix(uri, "file://"):
		u, err := url.Parse(uri)
		if err != nil {
			return Location{}, fmt.Errorf("%q is not a valid file:// URI: %w", uri, err)
		}
		return Location{Path: filepath.Clean(u.Path)}, nil
	case strings.Contains(uri, "://"):
		return Location{}, fmt.Errorf("%q: use a local path, file:// or s3://", uri)
	case uri == "":
		return Location{}, errors.New("empty location")
	}
	p, err := filepath.Abs(uri)
	if err != nil {
		return Location{}, fmt.Errorf("%q: %w", uri, err)
	}
	return Location{Path: p}, nil
}

// String is the location as a URI, as Iceberg and the messages spell it.
func (l Location) String() string {
	if l.S3 {
		if l.Prefix == "" {
			return "s3://" + l.Bucket
		}
		return "s3://" + l.Bucket + "/" + l.Prefix
	}
	return "file://" + l.Path
}

// Join appends slash-separated elements.
func (l Location) Join(elem ...string) Location {
	if l.S3 {
		l.Prefix = strings.Trim(path.Join(append([]string{l.Prefix}, elem...)...), "/")
		return l
	}
	l.Path = filepath.Join(append([]string{l.Path}, elem...)...)
	return l
}

// Base is the last element of the location's path: the folder's name.
func (l Location) Base() string {
	if l.S3 {
		return path.Base("/" + l.Prefix)
	}
	return filepath.Base(l.Path)
}

// keyPrefix is the S3 key prefix of the objects under the location.
func (l Location) keyPrefix() string {
	if l.Prefix == "" {
		return ""
	}
	return l.Prefix + "/"
}
