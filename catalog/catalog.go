// Package catalog opens the Iceberg catalog icemerge commits to, creates the
// table of a DMS folder, reads the live rows a batch touches, and commits a
// run as one snapshot of new data files and Parquet position delete files.
//
// It owns every use of iceberg-go. It knows nothing of DMS semantics (that is
// package merge) nor of progress (package bookmark): it is handed a plan and
// a token and makes them one atomic commit.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/glue"
	icesql "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"

	// S3 file IO for tables whose location is s3://.
	_ "github.com/apache/iceberg-go/io/gocloud/s3"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver behind the embedded catalog
)

// Kinds of catalog.
const (
	KindSQL  = "sql"
	KindGlue = "glue"
)

// Config selects and locates the catalog.
type Config struct {
	Kind      string // KindSQL or KindGlue
	URI       string // KindSQL: the SQLite database file
	Warehouse string // URI under which new tables are created
	// Props are passed to the catalog and to the tables' file IO
	// (s3.endpoint for a custom S3 endpoint, which also turns on path-style
	// addressing).
	Props iceberg.Properties
	// AWS is the configuration of the Glue client (KindGlue).
	AWS *aws.Config
}

// Catalog is an opened catalog.
type Catalog struct {
	icecat.Catalog
	warehouse string
	log       *slog.Logger
	close     func() error
}

// Close releases the catalog's connections.
func (c *Catalog) Close() error {
	if c.close != nil {
		return c.close()
	}
	return nil
}

// Open opens the catalog the config names.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Catalog, error) {
	switch cfg.Kind {
	case KindSQL, "":
		return openSQLite(ctx, cfg, log)
	case KindGlue:
		if cfg.AWS == nil {
			return nil, errors.New("the glue catalog needs an AWS configuration")
		}
		props := maps.Clone(cfg.Props)
		if props == nil {
			props = iceberg.Properties{}
		}
		props["warehouse"] = cfg.Warehouse
		cat, err := glue.NewCatalog(glue.WithAwsConfig(*cfg.AWS), glue.WithAwsProperties(glue.AwsProperties(props)))
		if err != nil {
			return nil, fmt.Errorf("opening the Glue catalog: %w", err)
		}
		return &Catalog{Catalog: cat, warehouse: cfg.Warehouse, log: log, close: cat.Close}, nil
	}
	return nil, fmt.Errorf("unknown catalog %q: use sql or glue", cfg.Kind)
}

func openSQLite(ctx context.Context, cfg Config, log *slog.Logger) (*Catalog, error) {
	path := strings.TrimPrefix(cfg.URI, "file://")
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the folder of catalog database %s: %w", path, err)
		}
	}
	// busy_timeout lets a second process wait for the first one's write
	// instead of failing at once; WAL lets readers run beside a writer.
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening SQLite catalog %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening SQLite catalog %s: %w (check --catalog-uri)", path, err)
	}
	props := maps.Clone(cfg.Props)
	if props == nil {
		props = iceberg.Properties{}
	}
	props["warehouse"] = cfg.Warehouse
	cat, err := icesql.NewCatalog("icemerge", db, icesql.SQLite, props)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening SQLite catalog %s: %w", path, err)
	}
	return &Catalog{Catalog: cat, warehouse: cfg.Warehouse, log: log, close: db.Close}, nil
}

// Ident parses "ns.name" into a table identifier.
func Ident(s string) (table.Identifier, error) {
	i := strings.LastIndex(s, ".")
	if i <= 0 || i == len(s)-1 {
		return nil, fmt.Errorf("table %q: want NAMESPACE.NAME, e.g. test_db.users", s)
	}
	return table.Identifier{s[:i], s[i+1:]}, nil
}
