package icemerge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/utils"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
)

// Catalog is what a run asks of the Iceberg catalog; *catalog.Catalog is
// the real one.
type Catalog interface {
	Load(ctx context.Context, name string) (*catalog.Table, bool, error)
	Create(ctx context.Context, name string, stored *arrow.Schema, keys, partition []string) (*catalog.Table, error)
	Evolve(ctx context.Context, t *catalog.Table, adds []arrow.Field, widen map[string]arrow.DataType) (*catalog.Table, error)
	Prepare(ctx context.Context, t *catalog.Table, ch catalog.Change) (*catalog.Prepared, error)
	Commit(ctx context.Context, p *catalog.Prepared, token string, summary map[string]string) (*catalog.Table, error)
}

// maintainer is what maintenance asks of the catalog besides Catalog: an
// optional ability, checked with a type assertion.
type maintainer interface {
	Compact(ctx context.Context, t *catalog.Table, o catalog.CompactOptions) (*catalog.Table, catalog.CompactResult, error)
	RewriteManifests(ctx context.Context, t *catalog.Table, dryRun bool) (*catalog.Table, catalog.ManifestsResult, error)
	ExpireSnapshots(ctx context.Context, t *catalog.Table, o catalog.ExpireOptions) (*catalog.Table, catalog.ExpireResult, error)
	RemoveOrphans(ctx context.Context, t *catalog.Table, o catalog.OrphanOptions) (catalog.OrphanResult, error)
}

var (
	_ Catalog    = (*catalog.Catalog)(nil)
	_ maintainer = (*catalog.Catalog)(nil)
)

// BookmarkStore keeps one table's bookmark; every save is a compare-and-swap
// on the version loaded.
type BookmarkStore interface {
	Load(ctx context.Context) (bookmark.State, bookmark.Version, error)
	Save(ctx context.Context, s bookmark.State, prev bookmark.Version) (bookmark.Version, error)
	Location() string
}

// Locker takes and reads a table's run lock.
type Locker interface {
	Lock(ctx context.Context, owner string, ttl time.Duration, now func() time.Time) (*bookmark.Lease, error)
	Holder(ctx context.Context, now time.Time) (bookmark.Holder, bool, error)
}

var (
	_ BookmarkStore = (*bookmark.Bookmarks)(nil)
	_ Locker        = (*bookmark.Bookmarks)(nil)
)

// Source is a table's DMS folder; internal/source has the local and S3 ones.
type Source interface {
	// List calls fn for every object whose key sorts after startAfter.
	List(ctx context.Context, startAfter string, fn func(source.Object) error) error
	// Open opens one listed object for reading, pinned to a version (the
	// zero Version: any); see source.Source.
	Open(ctx context.Context, key string, pin source.Version) (source.Reader, error)
	// String names the folder in messages.
	String() string
}

// Progress hears how far a long command is; nil hears nothing.
type Progress interface {
	// Step reports done of total units (files, partitions, rows) of a
	// phase of a table's run.
	Step(table, phase string, done, total int)
	// Done ends the table's progress.
	Done(table string)
}

// Deps are what a command on one table talks to.
type Deps struct {
	Log      *slog.Logger
	Now      func() time.Time
	Catalog  Catalog
	Bookmark BookmarkStore
	Lock     Locker // nil: no run lock (tests of one run)
	Source   Source // nil when the command has no --source
	Progress Progress
	// Heap is the process's soft heap limit (--memory), which a run raises
	// by what its batch holds beyond the budget (nil: none).
	Heap HeapLimit
}

// HeapLimit is a soft limit of the process's heap that runs may raise
// while they hold more than their budget plans for: the key and order
// columns of a large batch (memoryBudget). Reserve raises it by n bytes
// until release is called.
type HeapLimit interface {
	Reserve(n int64) (release func())
}

// step reports progress, if anyone listens.
func (d Deps) step(table, phase string, done, total int) {
	if d.Progress != nil {
		d.Progress.Step(table, phase, done, total)
	}
}

// Env is an opened environment: the catalog, and the bookmark stores and
// source folders of its tables.
type Env struct {
	Log      *slog.Logger
	Now      func() time.Time
	Catalog  *catalog.Catalog
	Progress Progress
	Heap     HeapLimit // nil: none
	// MissingCatalog is the SQLite catalog file a reading command looked
	// for and did not find (OpenForReading); "" otherwise.
	MissingCatalog string

	s3      *s3.Client  // nil when nothing is on S3
	aws     *aws.Config // nil when nothing is on AWS
	bm      source.Location
	cleanup func()
}

// Close releases the catalog's connections.
func (e *Env) Close() error {
	err := e.Catalog.Close()
	if e.cleanup != nil {
		e.cleanup()
	}
	return err
}

// OpenForReading is Open for a command that only reads (show, status,
// maintain, the bookmark commands): it never creates the sql catalog's
// SQLite file. Where the file is missing it reads an empty catalog of its
// own, removed by Close, and MissingCatalog names the file it looked for,
// so an error can say where the catalog was expected.
func OpenForReading(ctx context.Context, c Common, src string, awsCfg *aws.Config, log *slog.Logger) (context.Context, *Env, error) {
	path, ok := c.sqliteFile()
	if !ok {
		return Open(ctx, c, src, awsCfg, log)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return Open(ctx, c, src, awsCfg, log)
	}
	tmp, err := os.MkdirTemp("", "icemerge-no-catalog-")
	if err != nil {
		return ctx, nil, fmt.Errorf("making an empty catalog to read: %w", err)
	}
	c.CatalogURI = filepath.Join(tmp, "catalog.db")
	ctx, env, err := Open(ctx, c, src, awsCfg, log)
	if err != nil {
		os.RemoveAll(tmp)
		return ctx, nil, err
	}
	env.MissingCatalog, env.cleanup = path, func() { os.RemoveAll(tmp) }
	return ctx, env, nil
}

// sqliteFile is the SQLite file of the sql catalog c names, if it is one.
func (c Common) sqliteFile() (string, bool) {
	if c.Catalog != catalog.KindSQL || catalog.IsPostgresURI(c.CatalogURI) {
		return "", false
	}
	l, err := source.ParseLocation(c.CatalogURI)
	return l.Path, err == nil && !l.S3
}

// Bookmarks is the bookmark store (and run lock) of one table.
func (e *Env) Bookmarks(table string) *bookmark.Bookmarks {
	if e.bm.S3 {
		return bookmark.NewS3Store(e.s3, e.bm.Bucket, e.bm.Prefix, table)
	}
	return bookmark.NewFileStore(e.bm.Path, table)
}

// Source opens the DMS folder at uri.
func (e *Env) Source(uri string) (Source, error) {
	l, err := source.ParseLocation(uri)
	if err != nil {
		return nil, usage(fmt.Errorf("--source: %w", err))
	}
	return source.Open(l, e.s3)
}

// TableFolders lists the table folders of the schema folder at uri.
func (e *Env) TableFolders(ctx context.Context, uri string) ([]string, error) {
	l, err := source.ParseLocation(uri)
	if err != nil {
		return nil, usage(fmt.Errorf("--source: %w", err))
	}
	return source.TableFolders(ctx, l, e.s3)
}

// Deps are the dependencies of a command on table, reading the folder at
// src ("" for none).
func (e *Env) Deps(table, src string) (Deps, error) {
	store := e.Bookmarks(table)
	d := Deps{Log: e.Log, Now: e.Now, Catalog: e.Catalog, Bookmark: store, Lock: store, Progress: e.Progress, Heap: e.Heap}
	if src != "" {
		var err error
		if d.Source, err = e.Source(src); err != nil {
			return d, err
		}
		if c, ok := e.Progress.(sourceCounter); ok {
			d.Source = c.Source(table, d.Source)
		}
	}
	return d, nil
}

// sourceCounter is a Progress that also counts the bytes read from a
// table's source (the command line's bars): an optional ability.
type sourceCounter interface {
	Source(table string, s Source) Source
}

// needsAWS reports whether any setting points at S3, Glue or S3 Tables.
func (c Common) needsAWS(src string) bool {
	for _, u := range []string{c.Warehouse, c.Bookmark, src} {
		if l, err := source.ParseLocation(u); err == nil && l.S3 {
			return true
		}
	}
	return c.Catalog == catalog.KindGlue || c.Catalog == catalog.KindS3Tables
}

// Open opens the catalog and the bookmark stores c names, for commands
// reading src ("" for none). The returned context carries the AWS
// configuration: iceberg-go's S3 file IO reads it from the context
// (utils.WithAwsConfig), and this is the one place it is put there.
// awsCfg nil loads the default configuration when any setting needs AWS.
func Open(ctx context.Context, c Common, src string, awsCfg *aws.Config, log *slog.Logger) (context.Context, *Env, error) {
	if awsCfg == nil && c.needsAWS(src) {
		var err error
		if awsCfg, err = LoadAWS(ctx, AWSOptions{}); err != nil {
			return ctx, nil, err
		}
	}
	env := &Env{Log: log, Now: time.Now}
	props := iceberg.Properties{}
	if awsCfg != nil {
		env.aws = awsCfg
		ctx = utils.WithAwsConfig(ctx, awsCfg)
		env.s3 = s3.NewFromConfig(*awsCfg, func(o *s3.Options) {
			// A custom endpoint (MinIO, LocalStack) needs path-style
			// addressing; AWS itself takes virtual-hosted style.
			o.UsePathStyle = c.S3Endpoint != ""
		})
		if c.S3Endpoint != "" {
			props[iceio.S3EndpointURL] = c.S3Endpoint
		}
		props[iceio.S3Region] = awsCfg.Region
	}

	catCfg := catalog.Config{Kind: c.Catalog, Props: props, AWS: awsCfg}
	if c.Catalog == catalog.KindS3Tables {
		// The table bucket places each table: there is no warehouse.
		catCfg.TableBucketARN = c.TableBucketARN
	} else {
		wh, err := source.ParseLocation(c.Warehouse)
		if err != nil {
			return ctx, nil, usage(fmt.Errorf("--warehouse: %w", err))
		}
		catCfg.Warehouse = wh.String()
	}
	var err error
	if c.Catalog == catalog.KindSQL && catalog.IsPostgresURI(c.CatalogURI) {
		catCfg.URI = c.CatalogURI
	} else if c.Catalog == catalog.KindSQL {
		l, err := source.ParseLocation(c.CatalogURI)
		if err != nil || l.S3 {
			return ctx, nil, usage(fmt.Errorf("--catalog-uri %q: the sql catalog is a local SQLite file or a postgres:// URI", catalog.RedactURI(c.CatalogURI)))
		}
		catCfg.URI = l.Path
	}
	if env.bm, err = source.ParseLocation(c.Bookmark); err != nil {
		return ctx, nil, usage(fmt.Errorf("--bookmark: %w", err))
	}
	if env.bm.S3 && env.s3 == nil {
		return ctx, nil, fmt.Errorf("--bookmark %s: no S3 client (this is a bug)", env.bm)
	}
	if env.Catalog, err = catalog.Open(ctx, catCfg, log); err != nil {
		return ctx, nil, err
	}
	return ctx, env, nil
}
