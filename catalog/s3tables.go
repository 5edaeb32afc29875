package catalog

// Amazon S3 Tables as the catalog. A table bucket holds namespaces and
// Iceberg tables; AWS keeps each table's current metadata location with a
// version token and moves it only by UpdateTableMetadataLocation with the
// current token, the compare-and-swap a commit rests on. AWS's own Iceberg
// client for S3 Tables commits exactly so, and so does this one.
//
// iceberg-go v0.7.0 has no S3 Tables catalog. Its REST catalog could talk
// to S3 Tables' Iceberg REST endpoint, but that endpoint has no emulator to
// test against; moto implements the s3tables API, so this file implements
// iceberg-go's catalog interface over github.com/aws/aws-sdk-go-v2/service/s3tables,
// in the way iceberg-go's Glue and SQL catalogs are built (stage the
// updates with table.UpdateTableMetadata after validating the requirements,
// write the new metadata file, then swap the pointer).
//
// The version token a commit presents is the one read when the table was
// loaded (or moved to by its own last commit), kept in the table's
// tableOps as AWS's client keeps it in its table operations: any move of
// the table since (another writer, S3 Tables' own compaction and snapshot
// expiry) makes the commit a conflict, table.ErrCommitFailed, which Commit
// reports as ErrCommitConflict so the run re-plans.

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/utils"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3tables"
	"github.com/aws/aws-sdk-go-v2/service/s3tables/types"
	"github.com/klauspost/compress/zstd"
)

// catalogTypeS3Tables is what CatalogType reports.
const catalogTypeS3Tables icecat.Type = "s3tables"

// s3TablesAPI lists the S3 Tables calls the catalog makes.
type s3TablesAPI interface {
	CreateNamespace(context.Context, *s3tables.CreateNamespaceInput, ...func(*s3tables.Options)) (*s3tables.CreateNamespaceOutput, error)
	GetNamespace(context.Context, *s3tables.GetNamespaceInput, ...func(*s3tables.Options)) (*s3tables.GetNamespaceOutput, error)
	ListNamespaces(context.Context, *s3tables.ListNamespacesInput, ...func(*s3tables.Options)) (*s3tables.ListNamespacesOutput, error)
	DeleteNamespace(context.Context, *s3tables.DeleteNamespaceInput, ...func(*s3tables.Options)) (*s3tables.DeleteNamespaceOutput, error)
	CreateTable(context.Context, *s3tables.CreateTableInput, ...func(*s3tables.Options)) (*s3tables.CreateTableOutput, error)
	DeleteTable(context.Context, *s3tables.DeleteTableInput, ...func(*s3tables.Options)) (*s3tables.DeleteTableOutput, error)
	RenameTable(context.Context, *s3tables.RenameTableInput, ...func(*s3tables.Options)) (*s3tables.RenameTableOutput, error)
	ListTables(context.Context, *s3tables.ListTablesInput, ...func(*s3tables.Options)) (*s3tables.ListTablesOutput, error)
	GetTableMetadataLocation(context.Context, *s3tables.GetTableMetadataLocationInput, ...func(*s3tables.Options)) (*s3tables.GetTableMetadataLocationOutput, error)
	UpdateTableMetadataLocation(context.Context, *s3tables.UpdateTableMetadataLocationInput, ...func(*s3tables.Options)) (*s3tables.UpdateTableMetadataLocationOutput, error)
}

var _ s3TablesAPI = (*s3tables.Client)(nil)

// tableBucketARN is arn:PARTITION:s3tables:REGION:ACCOUNT:bucket/NAME.
var tableBucketARN = regexp.MustCompile(`^arn:aws[-a-z0-9]*:s3tables:([a-z0-9-]+):([0-9]{12}):bucket/([a-z0-9][a-z0-9-]{1,61}[a-z0-9])$`)

// ParseTableBucketARN checks an S3 Tables table bucket ARN and returns its
// region and bucket name, for validating settings before any I/O.
func ParseTableBucketARN(arn string) (region, bucket string, err error) {
	m := tableBucketARN.FindStringSubmatch(arn)
	if m == nil {
		return "", "", fmt.Errorf("%q is not an S3 Tables table bucket ARN: want arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME (aws s3tables list-table-buckets shows them)", arn)
	}
	return m[1], m[3], nil
}

// s3TablesName is what S3 Tables accepts as a namespace or table name:
// lower-case letters, digits and underscores, starting with a letter or
// digit, at most 255 characters.
var s3TablesName = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,254}$`)

// openS3Tables opens the table bucket cfg.TableBucketARN. Tables' file IO
// uses cfg.Props with the bucket's region: a table's warehouse location is
// in the region of its table bucket.
func openS3Tables(cfg Config, log *slog.Logger) (*Catalog, error) {
	if cfg.AWS == nil {
		return nil, errors.New("the s3tables catalog needs an AWS configuration")
	}
	region, _, err := ParseTableBucketARN(cfg.TableBucketARN)
	if err != nil {
		return nil, fmt.Errorf("opening the S3 Tables catalog: %w", err)
	}
	client := s3tables.NewFromConfig(*cfg.AWS, func(o *s3tables.Options) { o.Region = region })
	props := maps.Clone(cfg.Props)
	if props == nil {
		props = iceberg.Properties{}
	}
	props[iceio.S3Region] = region
	cat := newS3TablesCatalog(client, cfg.TableBucketARN, cfg.AWS, props, log)
	return &Catalog{Catalog: cat, log: log, managed: true}, nil
}

func newS3TablesCatalog(api s3TablesAPI, arn string, awsCfg *aws.Config, props iceberg.Properties, log *slog.Logger) *s3TablesCatalog {
	return &s3TablesCatalog{api: api, arn: arn, awsCfg: awsCfg, props: props, log: log}
}

// s3TablesCatalog is iceberg-go's catalog interface over one table bucket.
// Namespaces are one level deep, as in S3 Tables.
type s3TablesCatalog struct {
	api    s3TablesAPI
	arn    string
	awsCfg *aws.Config
	props  iceberg.Properties // of the tables' file IO
	log    *slog.Logger
}

var _ icecat.Catalog = (*s3TablesCatalog)(nil)

func (c *s3TablesCatalog) CatalogType() icecat.Type { return catalogTypeS3Tables }

// withAWS is ctx carrying the catalog's AWS configuration for iceberg-go's
// S3 file IO, unless the caller already put one there (cmd does, once, for
// every client): the file IO of a table must reach its warehouse bucket
// even from a context that lacks it.
func (c *s3TablesCatalog) withAWS(ctx context.Context) context.Context {
	if utils.GetAwsConfig(ctx) == nil && c.awsCfg != nil {
		return utils.WithAwsConfig(ctx, c.awsCfg)
	}
	return ctx
}

func (c *s3TablesCatalog) fsFunc(loc string) table.FSysF {
	load := iceio.LoadFSFunc(c.props, loc)
	return func(ctx context.Context) (iceio.IO, error) { return load(c.withAWS(ctx)) }
}

// splitIdent checks a table identifier: one namespace and a name, both
// valid S3 Tables names.
func (c *s3TablesCatalog) splitIdent(ident table.Identifier) (ns, name string, err error) {
	if len(ident) != 2 {
		return "", "", fmt.Errorf("%w: S3 Tables table %q: want NAMESPACE.NAME (namespaces are one level deep)", icecat.ErrInvalidIdentifier, strings.Join(ident, "."))
	}
	for _, s := range ident {
		if !s3TablesName.MatchString(s) {
			return "", "", fmt.Errorf("%w: S3 Tables table %s: %q is not a valid name: use lower-case letters, digits and underscores, starting with a letter or digit (no hyphens or dots)",
				icecat.ErrInvalidIdentifier, strings.Join(ident, "."), s)
		}
	}
	return ident[0], ident[1], nil
}

func (c *s3TablesCatalog) splitNamespace(ns table.Identifier) (string, error) {
	if len(ns) != 1 || !s3TablesName.MatchString(ns[0]) {
		return "", fmt.Errorf("%w: S3 Tables namespace %q: want one level of lower-case letters, digits and underscores", icecat.ErrInvalidIdentifier, strings.Join(ns, "."))
	}
	return ns[0], nil
}

// apiError wraps an S3 Tables error with what the user can do about it.
func (c *s3TablesCatalog) apiError(op, what string, err error) error {
	var ae *types.AccessDeniedException
	var fe *types.ForbiddenException
	if errors.As(err, &ae) || errors.As(err, &fe) {
		return fmt.Errorf("S3 Tables %s of %s in %s: %w (the role needs s3tables:%s on the table bucket and its tables; see docs/aws.md)", op, what, c.arn, err, op)
	}
	return fmt.Errorf("S3 Tables %s of %s in %s: %w", op, what, c.arn, err)
}

func isNotFound(err error) bool {
	var nf *types.NotFoundException
	return errors.As(err, &nf)
}

func isConflict(err error) bool {
	var ce *types.ConflictException
	return errors.As(err, &ce)
}

// pointer is a table's state in S3 Tables.
type pointer struct {
	metadata, warehouse, token string
}

// getPointer reads a table's metadata location, warehouse location and
// version token.
func (c *s3TablesCatalog) getPointer(ctx context.Context, ns, name string) (pointer, error) {
	out, err := c.api.GetTableMetadataLocation(ctx, &s3tables.GetTableMetadataLocationInput{
		TableBucketARN: aws.String(c.arn), Namespace: aws.String(ns), Name: aws.String(name)})
	if err != nil {
		if isNotFound(err) {
			return pointer{}, fmt.Errorf("%w: %s.%s in %s", icecat.ErrNoSuchTable, ns, name, c.arn)
		}
		return pointer{}, c.apiError("GetTableMetadataLocation", ns+"."+name, err)
	}
	p := pointer{metadata: aws.ToString(out.MetadataLocation), warehouse: aws.ToString(out.WarehouseLocation), token: aws.ToString(out.VersionToken)}
	if p.token == "" || p.warehouse == "" {
		return pointer{}, fmt.Errorf("S3 Tables GetTableMetadataLocation of %s.%s in %s answered no version token or warehouse location", ns, name, c.arn)
	}
	return p, nil
}

// errNoMetadata marks a table that exists in S3 Tables without a metadata
// location: its creation stopped between CreateTable and the first
// UpdateTableMetadataLocation. It wraps icecat.ErrNoSuchTable, so a run
// creates the table, and CreateTable completes it.
var errNoMetadata = fmt.Errorf("%w: the table exists in S3 Tables without Iceberg metadata (its creation was interrupted; creating it again completes it)", icecat.ErrNoSuchTable)

// LoadTable reads the table's metadata location and version token, then its
// metadata. The table commits through a tableOps holding that token.
func (c *s3TablesCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	ns, name, err := c.splitIdent(ident)
	if err != nil {
		return nil, err
	}
	ops := &tableOps{c: c, ns: ns, name: name}
	return ops.refresh(ctx)
}

func (c *s3TablesCatalog) CheckTableExists(ctx context.Context, ident table.Identifier) (bool, error) {
	ns, name, err := c.splitIdent(ident)
	if err != nil {
		return false, err
	}
	p, err := c.getPointer(ctx, ns, name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return false, nil
	}
	return err == nil && p.metadata != "", err
}

// CreateTable creates the table in S3 Tables (format ICEBERG), writes its
// first metadata file into the warehouse location S3 Tables assigned, and
// points the table at it with the version token. S3 Tables chooses every
// table's location: a location in opts is ignored. A table left without
// metadata by an interrupted creation is completed instead of refused.
func (c *s3TablesCatalog) CreateTable(ctx context.Context, ident table.Identifier, sc *iceberg.Schema, opts ...icecat.CreateTableOpt) (*table.Table, error) {
	ns, name, err := c.splitIdent(ident)
	if err != nil {
		return nil, err
	}
	cfg := icecat.NewCreateTableCfg()
	for _, o := range opts {
		o(&cfg)
	}
	what := ns + "." + name
	// Look first: moto 5.2.1 does not refuse to create an existing table
	// (AWS answers ConflictException), it replaces it.
	p, err := c.getPointer(ctx, ns, name)
	switch {
	case err == nil && p.metadata != "":
		return nil, fmt.Errorf("%w: %s in %s", icecat.ErrTableAlreadyExists, what, c.arn)
	case err == nil:
		c.log.Warn("completing a table whose creation was interrupted", "table", what, "table_bucket", c.arn)
	case errors.Is(err, icecat.ErrNoSuchTable):
		_, err = c.api.CreateTable(ctx, &s3tables.CreateTableInput{TableBucketARN: aws.String(c.arn),
			Namespace: aws.String(ns), Name: aws.String(name), Format: types.OpenTableFormatIceberg})
		switch {
		case isConflict(err):
			// Another run created it meanwhile; complete it if it has no
			// metadata yet, else it is theirs.
		case isNotFound(err):
			return nil, fmt.Errorf("%w: %s (in %s)", icecat.ErrNoSuchNamespace, ns, c.arn)
		case err != nil:
			return nil, c.apiError("CreateTable", what, err)
		}
		if p, err = c.getPointer(ctx, ns, name); err != nil {
			return nil, err
		}
		if p.metadata != "" {
			return nil, fmt.Errorf("%w: %s in %s (created by another writer meanwhile)", icecat.ErrTableAlreadyExists, what, c.arn)
		}
	default:
		return nil, err
	}

	loc := strings.TrimSuffix(p.warehouse, "/")
	md, err := table.NewMetadata(sc, cfg.PartitionSpec, cfg.SortOrder, loc, cfg.Properties)
	if err != nil {
		return nil, fmt.Errorf("the first metadata of %s: %w", what, err)
	}
	ops := &tableOps{c: c, ns: ns, name: name, token: p.token}
	metaLoc, err := newMetadataLocation(md, 0)
	if err != nil {
		return nil, fmt.Errorf("the first metadata of %s: %w", what, err)
	}
	if err := c.writeMetadata(ctx, md, metaLoc); err != nil {
		return nil, err
	}
	token, err := ops.swap(ctx, metaLoc)
	if err != nil {
		if errors.Is(err, table.ErrCommitFailed) {
			return nil, fmt.Errorf("%w: %s in %s (created by another writer meanwhile): %w", icecat.ErrTableAlreadyExists, what, c.arn, err)
		}
		return nil, fmt.Errorf("%w (S3 Tables has the table; if it is still without metadata, the next run completes it)", err)
	}
	ops.set(md, metaLoc, token)
	return ops.table(md, metaLoc), nil
}

// CommitTable commits through a tableOps loaded now: the requirements are
// checked against the table as it is, as iceberg-go's Glue and SQL
// catalogs do. Tables this catalog loaded commit through their own
// tableOps instead, with the token read at load.
func (c *s3TablesCatalog) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	ns, name, err := c.splitIdent(ident)
	if err != nil {
		return nil, "", err
	}
	ops := &tableOps{c: c, ns: ns, name: name}
	if _, err := ops.refresh(ctx); err != nil {
		return nil, "", err
	}
	return ops.CommitTable(ctx, ident, reqs, updates)
}

func (c *s3TablesCatalog) ListTables(ctx context.Context, namespace table.Identifier) iter.Seq2[table.Identifier, error] {
	return func(yield func(table.Identifier, error) bool) {
		in := &s3tables.ListTablesInput{TableBucketARN: aws.String(c.arn)}
		if len(namespace) > 0 {
			ns, err := c.splitNamespace(namespace)
			if err != nil {
				yield(nil, err)
				return
			}
			in.Namespace = aws.String(ns)
		}
		for p := s3tables.NewListTablesPaginator(c.api, in); p.HasMorePages(); {
			out, err := p.NextPage(ctx)
			if err != nil {
				if isNotFound(err) {
					err = fmt.Errorf("%w: %s (in %s)", icecat.ErrNoSuchNamespace, strings.Join(namespace, "."), c.arn)
				} else {
					err = c.apiError("ListTables", "namespace "+strings.Join(namespace, "."), err)
				}
				yield(nil, err)
				return
			}
			for _, t := range out.Tables {
				if !yield(table.Identifier{strings.Join(t.Namespace, "."), aws.ToString(t.Name)}, nil) {
					return
				}
			}
		}
	}
}

func (c *s3TablesCatalog) DropTable(ctx context.Context, ident table.Identifier) error {
	ns, name, err := c.splitIdent(ident)
	if err != nil {
		return err
	}
	_, err = c.api.DeleteTable(ctx, &s3tables.DeleteTableInput{TableBucketARN: aws.String(c.arn), Namespace: aws.String(ns), Name: aws.String(name)})
	if isNotFound(err) {
		return fmt.Errorf("%w: %s.%s in %s", icecat.ErrNoSuchTable, ns, name, c.arn)
	}
	if err != nil {
		return c.apiError("DeleteTable", ns+"."+name, err)
	}
	return nil
}

func (c *s3TablesCatalog) RenameTable(ctx context.Context, from, to table.Identifier) (*table.Table, error) {
	ns, name, err := c.splitIdent(from)
	if err != nil {
		return nil, err
	}
	toNS, toName, err := c.splitIdent(to)
	if err != nil {
		return nil, err
	}
	_, err = c.api.RenameTable(ctx, &s3tables.RenameTableInput{TableBucketARN: aws.String(c.arn), Namespace: aws.String(ns), Name: aws.String(name),
		NewNamespaceName: aws.String(toNS), NewName: aws.String(toName)})
	switch {
	case isConflict(err):
		return nil, fmt.Errorf("%w: %s.%s in %s", icecat.ErrTableAlreadyExists, toNS, toName, c.arn)
	case isNotFound(err):
		return nil, fmt.Errorf("%w: %s.%s, or namespace %s, in %s", icecat.ErrNoSuchTable, ns, name, toNS, c.arn)
	case err != nil:
		return nil, c.apiError("RenameTable", ns+"."+name, err)
	}
	return c.LoadTable(ctx, to)
}

func (c *s3TablesCatalog) ListNamespaces(ctx context.Context, parent table.Identifier) ([]table.Identifier, error) {
	if len(parent) > 0 {
		return nil, nil // namespaces are one level deep
	}
	var out []table.Identifier
	for p := s3tables.NewListNamespacesPaginator(c.api, &s3tables.ListNamespacesInput{TableBucketARN: aws.String(c.arn)}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, c.apiError("ListNamespaces", "the table bucket", err)
		}
		for _, ns := range page.Namespaces {
			out = append(out, slices.Clone(ns.Namespace))
		}
	}
	return out, nil
}

func (c *s3TablesCatalog) CreateNamespace(ctx context.Context, namespace table.Identifier, _ iceberg.Properties) error {
	ns, err := c.splitNamespace(namespace)
	if err != nil {
		return err
	}
	_, err = c.api.CreateNamespace(ctx, &s3tables.CreateNamespaceInput{TableBucketARN: aws.String(c.arn), Namespace: []string{ns}})
	switch {
	case isConflict(err):
		return fmt.Errorf("%w: %s in %s", icecat.ErrNamespaceAlreadyExists, ns, c.arn)
	case isNotFound(err):
		return fmt.Errorf("creating namespace %s: table bucket %s not found: %w (check the ARN and the region)", ns, c.arn, err)
	case err != nil:
		return c.apiError("CreateNamespace", "namespace "+ns, err)
	}
	return nil
}

func (c *s3TablesCatalog) DropNamespace(ctx context.Context, namespace table.Identifier) error {
	ns, err := c.splitNamespace(namespace)
	if err != nil {
		return err
	}
	_, err = c.api.DeleteNamespace(ctx, &s3tables.DeleteNamespaceInput{TableBucketARN: aws.String(c.arn), Namespace: aws.String(ns)})
	if isNotFound(err) {
		return fmt.Errorf("%w: %s in %s", icecat.ErrNoSuchNamespace, ns, c.arn)
	}
	if err != nil {
		return c.apiError("DeleteNamespace", "namespace "+ns, err)
	}
	return nil
}

func (c *s3TablesCatalog) CheckNamespaceExists(ctx context.Context, namespace table.Identifier) (bool, error) {
	_, err := c.LoadNamespaceProperties(ctx, namespace)
	if errors.Is(err, icecat.ErrNoSuchNamespace) {
		return false, nil
	}
	return err == nil, err
}

// LoadNamespaceProperties returns no properties: S3 Tables namespaces have
// none.
func (c *s3TablesCatalog) LoadNamespaceProperties(ctx context.Context, namespace table.Identifier) (iceberg.Properties, error) {
	ns, err := c.splitNamespace(namespace)
	if err != nil {
		return nil, err
	}
	_, err = c.api.GetNamespace(ctx, &s3tables.GetNamespaceInput{TableBucketARN: aws.String(c.arn), Namespace: aws.String(ns)})
	if isNotFound(err) {
		return nil, fmt.Errorf("%w: %s in %s", icecat.ErrNoSuchNamespace, ns, c.arn)
	}
	if err != nil {
		return nil, c.apiError("GetNamespace", "namespace "+ns, err)
	}
	return iceberg.Properties{}, nil
}

func (c *s3TablesCatalog) UpdateNamespaceProperties(context.Context, table.Identifier, []string, iceberg.Properties) (icecat.PropertiesUpdateSummary, error) {
	return icecat.PropertiesUpdateSummary{}, fmt.Errorf("S3 Tables namespaces have no properties: %w", errors.ErrUnsupported)
}

// writeMetadata writes md as JSON to loc, compressed as the table's
// write.metadata.compression-codec says (the location's name says it too).
func (c *s3TablesCatalog) writeMetadata(ctx context.Context, md table.Metadata, loc string) (err error) {
	fs, err := c.fsFunc(loc)(ctx)
	if err != nil {
		return fmt.Errorf("opening the file system of %s: %w", loc, err)
	}
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return fmt.Errorf("writing metadata file %s: the file system is read-only", loc)
	}
	codec := md.Properties().Get(table.MetadataCompressionKey, table.MetadataCompressionDefault)
	out, err := wfs.Create(loc)
	if err != nil {
		return fmt.Errorf("creating metadata file %s: %w", loc, err)
	}
	var w io.WriteCloser = nopWriteCloser{out}
	switch codec {
	case table.MetadataCompressionCodecNone:
	case table.MetadataCompressionCodecGzip:
		w = gzip.NewWriter(out)
	case table.MetadataCompressionCodecZstd:
		if w, err = zstd.NewWriter(out); err != nil {
			out.Close()
			return fmt.Errorf("writing metadata file %s: %w", loc, err)
		}
	default:
		out.Close()
		return fmt.Errorf("writing metadata file %s: unsupported %s %q", loc, table.MetadataCompressionKey, codec)
	}
	if err := json.NewEncoder(w).Encode(md); err != nil {
		w.Close()
		out.Close()
		return fmt.Errorf("writing metadata file %s: %w", loc, err)
	}
	if err := w.Close(); err != nil {
		out.Close()
		return fmt.Errorf("writing metadata file %s: %w", loc, err)
	}
	// Closing is what uploads the object.
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing metadata file %s: %w", loc, err)
	}
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// metadataVersion is the version number of a metadata file named
// 00012-<uuid>[.codec].metadata.json (or v12.metadata.json), -1 for
// another name.
var metadataFileName = regexp.MustCompile(`^(?:(\d+)-[0-9a-fA-F-]{36}(?:\.\w+)?|v(\d+)(?:\.gz)?)\.metadata\.json$`)

func metadataVersion(loc string) int {
	m := metadataFileName.FindStringSubmatch(path.Base(loc))
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1] + m[2])
	if err != nil {
		return -1
	}
	return n
}

// newMetadataLocation is where version v of md's metadata goes: the
// table's metadata folder (write.metadata.path), named as iceberg-go and
// Java name it.
func newMetadataLocation(md table.Metadata, v int) (string, error) {
	lp, err := table.LoadLocationProvider(md.Location(), md.Properties())
	if err != nil {
		return "", err
	}
	return lp.NewTableMetadataFileLocation(v)
}

// tableOps is the catalog a table loaded from S3 Tables commits through
// (iceberg-go's table.CatalogIO): it holds the metadata the table was
// loaded with and the version token read with it, as AWS's Iceberg client
// holds them in its table operations, and moves on to the new ones when a
// commit through it succeeds. The tables that commit returns share it.
type tableOps struct {
	c        *s3TablesCatalog
	ns, name string

	mu    sync.Mutex
	meta  table.Metadata
	loc   string
	token string
}

var _ table.CatalogIO = (*tableOps)(nil)

func (o *tableOps) what() string { return o.ns + "." + o.name }

func (o *tableOps) set(md table.Metadata, loc, token string) {
	o.meta, o.loc, o.token = md, loc, token
}

func (o *tableOps) table(md table.Metadata, loc string) *table.Table {
	return table.New(table.Identifier{o.ns, o.name}, md, loc, o.c.fsFunc(loc), o)
}

// refresh reads the table's pointer and metadata anew.
func (o *tableOps) refresh(ctx context.Context) (*table.Table, error) {
	p, err := o.c.getPointer(ctx, o.ns, o.name)
	if err != nil {
		return nil, err
	}
	if p.metadata == "" {
		return nil, fmt.Errorf("%s.%s in %s: %w", o.ns, o.name, o.c.arn, errNoMetadata)
	}
	tbl, err := table.NewFromLocation(o.c.withAWS(ctx), table.Identifier{o.ns, o.name}, p.metadata, o.c.fsFunc(p.metadata), o)
	if err != nil {
		return nil, fmt.Errorf("reading the metadata of S3 Tables table %s at %s: %w", o.what(), p.metadata, err)
	}
	o.mu.Lock()
	o.set(tbl.Metadata(), p.metadata, p.token)
	o.mu.Unlock()
	return tbl, nil
}

// LoadTable reloads the table (iceberg-go's commit retries refresh through
// it); the token of later commits is the one read now.
func (o *tableOps) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	if !slices.Equal(ident, table.Identifier{o.ns, o.name}) {
		return o.c.LoadTable(ctx, ident)
	}
	return o.refresh(ctx)
}

// CommitTable validates the requirements against the metadata the table
// was loaded with, applies the updates to it, writes the new metadata file
// and swaps the table's pointer with the token read at load. A failed
// requirement or a stale token is table.ErrCommitFailed: nothing was
// committed. Any other error leaves the outcome unknown; the new metadata
// file is then kept, since the table may point at it.
func (o *tableOps) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	if !slices.Equal(ident, table.Identifier{o.ns, o.name}) {
		return o.c.CommitTable(ctx, ident, reqs, updates)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	base, baseLoc := o.meta, o.loc
	if base == nil {
		return nil, "", fmt.Errorf("committing to %s: the table was never loaded", o.what())
	}
	for _, r := range reqs {
		if err := r.Validate(base); err != nil {
			return nil, "", fmt.Errorf("%w: %s: %w", table.ErrCommitFailed, o.what(), err)
		}
	}
	updated, err := table.UpdateTableMetadata(base, updates, baseLoc)
	if err != nil {
		return nil, "", fmt.Errorf("committing to %s: %w", o.what(), err)
	}
	if updated.Equals(base) {
		return base, baseLoc, nil
	}
	v := metadataVersion(baseLoc)
	if v < 0 {
		v = len(slices.Collect(base.PreviousFiles())) // a name of another convention
	}
	newLoc, err := newMetadataLocation(updated, v+1)
	if err != nil {
		return nil, "", fmt.Errorf("committing to %s: %w", o.what(), err)
	}
	if err := o.c.writeMetadata(ctx, updated, newLoc); err != nil {
		return nil, "", fmt.Errorf("committing to %s: %w (nothing was committed)", o.what(), err)
	}
	newToken, err := o.swap(ctx, newLoc)
	if err != nil {
		return nil, "", err
	}
	o.set(updated, newLoc, newToken)
	return updated, newLoc, nil
}

var errNoToken = errors.New("no version token in the answer")

// swap points the table at newLoc with the token held. A refused token is
// table.ErrCommitFailed, unless the table already points at newLoc: then
// an attempt whose answer was lost has committed (the SDK's retry of it
// met the token it had moved), and the swap succeeded.
func (o *tableOps) swap(ctx context.Context, newLoc string) (string, error) {
	out, err := o.c.api.UpdateTableMetadataLocation(ctx, &s3tables.UpdateTableMetadataLocationInput{
		TableBucketARN: aws.String(o.c.arn), Namespace: aws.String(o.ns), Name: aws.String(o.name),
		VersionToken: aws.String(o.token), MetadataLocation: aws.String(newLoc)})
	if err == nil {
		if t := aws.ToString(out.VersionToken); t != "" {
			return t, nil
		}
		p, gerr := o.c.getPointer(ctx, o.ns, o.name)
		if gerr != nil || p.metadata != newLoc {
			return "", fmt.Errorf("S3 Tables accepted the metadata location %s of %s without a version token, and reading the table back failed or showed another location (outcome unknown): %w", newLoc, o.what(), errors.Join(gerr, errNoToken))
		}
		return p.token, nil
	}
	if !isConflict(err) {
		return "", fmt.Errorf("pointing the table at %s: %w (the outcome is unknown until the table is read again)",
			newLoc, o.c.apiError("UpdateTableMetadataLocation", o.what(), err))
	}
	p, gerr := o.c.getPointer(context.WithoutCancel(ctx), o.ns, o.name)
	if gerr == nil && p.metadata == newLoc {
		o.c.log.Warn("the S3 Tables commit was refused as stale but the table points at this commit's metadata: an earlier attempt committed and its answer was lost",
			"table", o.what(), "metadata", newLoc)
		return p.token, nil
	}
	return "", fmt.Errorf("%w: %s in %s changed since it was loaded (version token %s is stale; another writer or S3 Tables maintenance committed): %w",
		table.ErrCommitFailed, o.what(), o.c.arn, o.token, err)
}
