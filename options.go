package icemerge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
)

// The options of every command are plain structs. Their struct tags carry
// each setting's flag name, default and help: the command line (kong), the
// ICEMERGE_* environment, the Lambda event and New*Options all read the
// same tags, so a default is written once. Validate reports every problem
// at once, before any I/O.

// Common are the settings every command on a table shares.
type Common struct {
	Table      string `help:"The Iceberg table, NAMESPACE.NAME in lower case (e.g. test_db.users)." placeholder:"NS.NAME"`
	Catalog    string `help:"The catalog: sql (a SQLite file or a PostgreSQL database, see --catalog-uri), glue (the AWS Glue Data Catalog) or s3tables (an Amazon S3 Tables table bucket, see --table-bucket-arn)." default:"sql" placeholder:"KIND"`
	CatalogURI string `name:"catalog-uri" help:"The sql catalog's database: a SQLite file, or postgres://USER@HOST:5432/DATABASE (default: <warehouse>/_icemerge/catalog.db for a local warehouse; required with an s3:// one)." placeholder:"URI"`
	Warehouse  string `help:"Where new tables are created: a path, file:// or s3:// (default: file://<current folder>/warehouse). Every command given the same warehouse finds the same catalog and bookmarks." placeholder:"URI"`
	Bookmark   string `help:"The folder of the bookmarks and run locks: a path, file:// or s3:// (default: <warehouse>/_icemerge)." placeholder:"URI"`

	// S3Endpoint is AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), read once by
	// Complete: a custom endpoint (MinIO) also switches S3 to path-style
	// addressing.
	S3Endpoint string `kong:"-" json:"-"`

	// TableBucketARN is the Amazon S3 Tables table bucket of --catalog
	// s3tables, which places each table itself (no --warehouse).
	TableBucketARN string `name:"table-bucket-arn" help:"--catalog s3tables: the table bucket, arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME (S3 Tables places the tables: no --warehouse; --bookmark is required)." placeholder:"ARN"`
}

// DefaultCatalogFile is where the sql catalog's SQLite file is by default,
// under a local warehouse: found from the warehouse, never from the folder
// a command runs in, so every command given one --warehouse sees the same
// tables (and the bookmarks beside them, <warehouse>/_icemerge).
const DefaultCatalogFile = "_icemerge/catalog.db"

// Complete fills the settings that derive from others or from the
// environment (env is os.LookupEnv in production): the default warehouse,
// catalog and bookmark folder, and the S3 endpoint. With the sql catalog,
// an s3:// warehouse and no --catalog-uri it refuses to guess (a usage
// error): a SQLite file cannot live in S3, and one on the local disk would
// differ from machine to machine.
func (c *Common) Complete(env func(string) (string, bool)) error {
	if v, ok := env("AWS_ENDPOINT_URL_S3"); ok && v != "" {
		c.S3Endpoint = v
	} else if v, ok := env("AWS_ENDPOINT_URL"); ok {
		c.S3Endpoint = v
	}
	if c.Catalog == catalog.KindS3Tables {
		// S3 Tables places each table; the bookmarks need a folder of
		// their own, which validate asks for rather than guess.
		return nil
	}
	if c.Warehouse == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("finding the default --warehouse: %w (pass --warehouse)", err)
		}
		c.Warehouse = "file://" + filepath.Join(wd, "warehouse")
	}
	if c.Bookmark == "" {
		c.Bookmark = strings.TrimSuffix(c.Warehouse, "/") + "/_icemerge"
	}
	if c.CatalogURI == "" && (c.Catalog == catalog.KindSQL || c.Catalog == "") {
		wh, err := source.ParseLocation(c.Warehouse)
		switch {
		case err != nil:
			return usage(fmt.Errorf("--warehouse: %w", err))
		case wh.S3:
			return usage(fmt.Errorf("--catalog-uri is required with the sql catalog and the s3:// warehouse %s: "+
				"pass postgres://USER@HOST:5432/DATABASE (shared by every machine that runs icemerge), or use --catalog glue", wh))
		}
		c.CatalogURI = wh.Join(DefaultCatalogFile).Path
	}
	return nil
}

// NeedsAWS reports whether the settings, with the folder src ("" for
// none), point at S3, Glue or S3 Tables: the commands then load an AWS
// configuration.
func (c Common) NeedsAWS(src string) bool { return c.needsAWS(src) }

// validate checks the common settings, with --table optional unless
// needTable (a whole-database run names its tables itself). An empty
// --warehouse or --bookmark is one Complete has not filled yet. (Common
// has no Validate of its own: each command's options have one, which the
// command line's parser calls too.)
func (c Common) validate(needTable bool) error {
	var errs []error
	switch {
	case c.Table == "" && !needTable:
	case c.Table == "":
		errs = append(errs, errors.New("--table is required: NAMESPACE.NAME, e.g. test_db.users"))
	default:
		if _, err := catalog.Ident(c.Table); err != nil {
			errs = append(errs, fmt.Errorf("--table: %w", err))
			if c.Table != strings.ToLower(c.Table) && !strings.Contains(err.Error(), "lower case") {
				errs = append(errs, fmt.Errorf("--table %q: use lower case, as Glue and Athena store names", c.Table))
			}
		}
	}
	switch c.Catalog {
	case catalog.KindSQL, catalog.KindGlue:
		if c.TableBucketARN != "" {
			errs = append(errs, fmt.Errorf("--table-bucket-arn is for --catalog s3tables, not %s: drop it", c.Catalog))
		}
	case catalog.KindS3Tables:
		errs = append(errs, c.validateS3Tables()...)
	default:
		errs = append(errs, fmt.Errorf("--catalog %q: use sql, glue or s3tables", c.Catalog))
	}
	for _, l := range []struct{ flag, uri string }{{"--warehouse", c.Warehouse}, {"--bookmark", c.Bookmark}} {
		if l.uri == "" {
			continue
		}
		if _, err := source.ParseLocation(l.uri); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.flag, err))
		}
	}
	if c.Catalog == catalog.KindSQL && c.CatalogURI != "" { // "": Complete finds it from the warehouse
		if catalog.IsPostgresURI(c.CatalogURI) {
			if err := catalog.CheckPostgresURI(c.CatalogURI); err != nil {
				errs = append(errs, fmt.Errorf("--catalog-uri: %w", err))
			}
		} else if l, err := source.ParseLocation(c.CatalogURI); err != nil || l.S3 {
			// Redacted: a URI of another database may hold a password.
			errs = append(errs, fmt.Errorf("--catalog-uri %q: the sql catalog is a local SQLite file (a path or file://) or a PostgreSQL database (postgres://USER@HOST:5432/DATABASE)",
				catalog.RedactURI(c.CatalogURI)))
		}
	}
	return errors.Join(errs...)
}

// validateS3Tables checks the settings of --catalog s3tables: the table
// bucket's ARN, no --warehouse (S3 Tables chooses each table's location),
// and a --bookmark given, since no default can be derived: a table
// bucket's storage holds only its tables' own files.
func (c Common) validateS3Tables() []error {
	var errs []error
	if c.TableBucketARN == "" {
		errs = append(errs, errors.New("--table-bucket-arn is required with --catalog s3tables: arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME (aws s3tables list-table-buckets shows them)"))
	} else if _, _, err := catalog.ParseTableBucketARN(c.TableBucketARN); err != nil {
		errs = append(errs, fmt.Errorf("--table-bucket-arn: %w", err))
	}
	if c.Warehouse != "" {
		errs = append(errs, fmt.Errorf("--warehouse %s does not apply to --catalog s3tables: S3 Tables chooses each table's location; drop it (and ICEMERGE_WAREHOUSE)", c.Warehouse))
	}
	if c.Bookmark == "" {
		errs = append(errs, errors.New("--bookmark is required with --catalog s3tables: an S3 prefix (s3://BUCKET/icemerge) or a local folder for the bookmarks and run locks; a table bucket holds only its tables' files"))
	}
	return errs
}

// minLockTTL is the shortest run lock lease accepted.
const minLockTTL = 10 * time.Second

// The values of --on-bad-file.
const (
	OnBadFileFail       = "fail"
	OnBadFileQuarantine = "quarantine"
)

// RunOptions are the settings of a run of one table (`icemerge run`).
type RunOptions struct {
	Common `embed:""`

	Source string `help:"The DMS folder of one table (with --table), or the schema folder of a whole database: a path, file:// or s3://." placeholder:"URI"`
	// Keys are the primary key columns, used to create the table (an
	// existing table's own key is used).
	Keys Columns `name:"key" help:"The primary key column(s), comma-separated; used to create the table." placeholder:"COL,..."`
	// OrderBy orders a key's changes; empty is source order only.
	OrderBy Columns `name:"order-by" help:"The column(s) ordering the changes of a key, comma-separated; 'source' for source order only." default:"updated_at" placeholder:"COL,..."`
	// BeforeImagePrefix names the before-image columns of DMS's
	// add-before-image-columns rule (BI_<key column>): a U whose before
	// image of the key differs from its key moves the row to the new key.
	BeforeImagePrefix string `name:"before-image-prefix" help:"The prefix of the key's before-image columns (DMS rule add-before-image-columns): a U whose BI_ key differs from its key deletes the old key. Matched case-insensitively; BI_ columns never become table columns." default:"BI_" placeholder:"PREFIX"`
	DryRun            bool   `help:"Print the plan and write nothing."`
	// MaxFiles and MaxBytes bound a run's batch (0: no bound); a batch
	// holds at least one file.
	MaxFiles int      `help:"Apply at most this many files per run, in source order (0: all)." default:"0" placeholder:"N"`
	MaxBytes ByteSize `help:"Apply files in source order until the next would pass this size (e.g. 512MiB, 2GiB); at least one file (0: all)." default:"0" placeholder:"SIZE"`
	// Memory is what a run plans its memory within (0: no budget):
	// memoryBudget.
	Memory ByteSize `help:"The memory a run plans within: the source cache takes at most a sixteenth of it, a large batch is planned in key-hash partitions sized to half of it, files are read a row group at a time, and the Go heap is held under it (a soft limit; GOMEMLIMIT wins). On Lambda: three quarters of the function's memory. 0: no budget (--source-cache and --partition-rows as given)." default:"512MiB" placeholder:"SIZE"`
	// SourceCache: the decoded rows of source files kept from the first
	// read, up to this many bytes, so their winners are written without
	// reading them again.
	SourceCache ByteSize `help:"Keep the decoded rows of the first source files read, up to this size, so writing their winning rows does not read them again (0: read again)." default:"256MiB" placeholder:"SIZE"`
	// PartitionRows: a batch of more changes is planned in key-hash
	// partitions of about this many (0: never).
	PartitionRows int           `help:"Plan a run of more changes than this in key-hash partitions of about this many, one at a time, to bound memory (0: one partition)." default:"2000000" placeholder:"N"`
	SettleAfter   time.Duration `help:"Settle the CDC files applied this long ago: later runs list only what is named after them, until the next full listing (0: list the whole folder every run)." default:"15m"`
	Wait          time.Duration `help:"Wait this long for another run of the table to finish (0: exit 3 at once)." default:"0s"`
	LockTTL       time.Duration `name:"lock-ttl" help:"The lease of the table's run lock, renewed every quarter of it while running; a run that dies frees the table at once on its own machine, elsewhere after at most this long." default:"60s"`
	// TombstoneTTL is how long deleted keys are remembered (0: not at all).
	TombstoneTTL time.Duration `help:"Remember deleted keys this long, so older changes arriving late do not revive them (0: off)." default:"168h"`
	// OnBadFile is what a file with bad input does to the run.
	OnBadFile string `help:"A file with bad input (corrupt, unknown Op, null key, invalid UTF-8, clashing type): fail the run, or quarantine: skip it, record it in the bookmark and go on." default:"fail" enum:"fail,quarantine" placeholder:"fail|quarantine"`
	// CompactWhenDeletes and CompactWhenFiles compact the table at the end
	// of a run that committed, when it has this many files (0: never).
	CompactWhenDeletes int `help:"After a commit, compact the table when it has at least this many delete files (0: never)." default:"0" placeholder:"N"`
	CompactWhenFiles   int `help:"After a commit, compact the table when it has at least this many data files (0: never)." default:"0" placeholder:"N"`

	// Partition is the partition spec of a new table (Iceberg transforms),
	// from a whole-database run's config.
	Partition []string `kong:"-" json:"-"`

	// FullListEvery: between full listings of the source folder, runs list
	// only what is named after the bookmark's watermark (on S3; a local
	// folder is listed whole every run). A full listing finds files that
	// arrived late with older names, and applied files that are gone.
	FullListEvery time.Duration `name:"full-list-every" help:"List the whole source folder at least this often, to find files that arrived late with older names and applied files that are gone; runs in between list only what is named after the settled files (0: every run)." default:"24h"`
	// OnReload is what a DMS reload of the table (a new full load after
	// CDC files were applied) does to the run.
	OnReload string `help:"A DMS reload (a new full load after CDC files were applied): apply it (replace the table's rows with the new full load and the changes after it, in one commit, once the load is complete), or fail the run." default:"apply" enum:"apply,fail" placeholder:"apply|fail"`
	// ReloadQuietAfter: a reload's full load also counts as complete once
	// its newest LOAD file is this old (0: only a CDC file written after
	// every LOAD file proves it complete, as DMS writes a table's CDC files
	// only after its load).
	ReloadQuietAfter time.Duration `help:"Also apply a reload once its newest LOAD file is this old, for tables that get no change after a reload (0: wait for a CDC file written after the load)." default:"0s"`
	// OnTruncate is what a run does when every object it applied is gone
	// from the source (a source TRUNCATE with HandleSourceTableTruncated).
	OnTruncate string `help:"When every applied source file is gone (a source TRUNCATE with HandleSourceTableTruncated): ignore (report it, change nothing) or empty the table and apply the new files to it, in one commit. Files expired by an S3 lifecycle rule never empty a table." default:"ignore" enum:"ignore,empty" placeholder:"ignore|empty"`
	// OnMissingBookmark is what a run does when the table has icemerge
	// commits but no bookmark is saved: the bookmark was lost or --bookmark
	// points elsewhere.
	OnMissingBookmark string `help:"When the table has icemerge commits but no bookmark is saved (deleted, or --bookmark points elsewhere): fail, or rebuild it by applying every source file again (rows already current stay unchanged)." default:"fail" enum:"fail,rebuild" placeholder:"fail|rebuild"`
}

// The values of --on-reload, --on-truncate and --on-missing-bookmark.
const (
	OnReloadApply            = "apply"
	OnReloadFail             = "fail"
	OnTruncateIgnore         = "ignore"
	OnTruncateEmpty          = "empty"
	OnMissingBookmarkFail    = "fail"
	OnMissingBookmarkRebuild = "rebuild"
)

// NewRunOptions are the defaults of a run.
func NewRunOptions() RunOptions {
	var o RunOptions
	applyDefaults(&o)
	return o
}

// applyDefaults fills o from its struct tags' defaults, as the command
// line's parser does (without validating: a default options struct names
// no table or source yet).
func applyDefaults(o any) {
	err := func() error {
		app, err := kong.New(o)
		if err != nil {
			return err
		}
		ctx, err := kong.Trace(app, nil)
		if err != nil {
			return err
		}
		return ctx.ApplyDefaults()
	}()
	if err != nil {
		panic(fmt.Sprintf("icemerge: the defaults in the options' tags do not parse: %v", err)) // a bug, caught by TestDefaults
	}
}

// Validate reports every problem at once.
func (o RunOptions) Validate() error {
	errs := []error{o.Common.validate(false)}
	if o.SourceCache < 0 {
		errs = append(errs, fmt.Errorf("--source-cache %d: use 0 (read every file again) or more", o.SourceCache))
	}
	if o.PartitionRows < 0 {
		errs = append(errs, fmt.Errorf("--partition-rows %d: use 0 (one partition) or more", o.PartitionRows))
	}
	if o.Memory != 0 && o.Memory < minMemory {
		errs = append(errs, fmt.Errorf("--memory %s: use at least %s, or 0 for no budget", o.Memory, minMemory))
	}
	if o.Source == "" {
		errs = append(errs, errors.New("--source is required: the DMS folder of one table (with --table), or the schema folder of a whole database"))
	} else if _, err := source.ParseLocation(o.Source); err != nil {
		errs = append(errs, fmt.Errorf("--source: %w", err))
	}
	for _, k := range o.Keys {
		if k == "" {
			errs = append(errs, errors.New("--key has an empty column name"))
		}
	}
	for _, k := range o.OrderBy {
		if k == "" {
			errs = append(errs, errors.New("--order-by has an empty column name"))
		}
		if slices.Contains(o.Keys, k) {
			errs = append(errs, fmt.Errorf("--order-by column %q is a key column: it cannot order the changes of one key", k))
		}
	}
	if o.MaxFiles < 0 {
		errs = append(errs, errors.New("--max-files must be 0 (no bound) or more"))
	}
	if o.MaxBytes < 0 {
		errs = append(errs, errors.New("--max-bytes must be 0 (no bound) or more"))
	}
	if o.SettleAfter < 0 || o.Wait < 0 || o.TombstoneTTL < 0 {
		errs = append(errs, errors.New("--settle-after, --wait and --tombstone-ttl cannot be negative"))
	}
	switch o.OnBadFile {
	case "", OnBadFileFail, OnBadFileQuarantine: // "": fail
	default:
		errs = append(errs, fmt.Errorf("--on-bad-file %q: use fail or quarantine", o.OnBadFile))
	}
	if o.LockTTL < minLockTTL {
		errs = append(errs, fmt.Errorf("--lock-ttl %s: use at least %s", o.LockTTL, minLockTTL))
	}
	if o.CompactWhenDeletes < 0 || o.CompactWhenFiles < 0 {
		errs = append(errs, errors.New("--compact-when-deletes and --compact-when-files must be 0 (never) or more"))
	}
	if o.FullListEvery < 0 || o.ReloadQuietAfter < 0 {
		errs = append(errs, errors.New("--full-list-every and --reload-quiet-after cannot be negative"))
	}
	for _, c := range []struct{ flag, v string }{
		{"--on-reload " + o.OnReload, enumOK(o.OnReload, OnReloadApply, OnReloadFail)},
		{"--on-truncate " + o.OnTruncate, enumOK(o.OnTruncate, OnTruncateIgnore, OnTruncateEmpty)},
		{"--on-missing-bookmark " + o.OnMissingBookmark, enumOK(o.OnMissingBookmark, OnMissingBookmarkFail, OnMissingBookmarkRebuild)},
	} {
		if c.v != "" {
			errs = append(errs, fmt.Errorf("%s: use %s", c.flag, c.v))
		}
	}
	if o.Catalog == catalog.KindS3Tables && (o.CompactWhenDeletes > 0 || o.CompactWhenFiles > 0) {
		errs = append(errs, errors.New("--compact-when-deletes and --compact-when-files do not apply to --catalog s3tables: S3 Tables compacts its tables itself "+
			"(icemerge maintain --only compact --force-managed compacts one anyway)"))
	}
	return usage(errors.Join(errs...))
}

// enumOK returns "" when v is one of the values (or empty: the default),
// else the values for a message.
func enumOK(v string, values ...string) string {
	if v == "" || slices.Contains(values, v) {
		return ""
	}
	return strings.Join(values, " or ")
}

// Bounds names the bounds of a run's batch, for messages: "--max-files 10".
func (o RunOptions) Bounds() string {
	var b []string
	if o.MaxFiles > 0 {
		b = append(b, fmt.Sprintf("--max-files %d", o.MaxFiles))
	}
	if o.MaxBytes > 0 {
		b = append(b, fmt.Sprintf("--max-bytes %d", o.MaxBytes))
	}
	return strings.Join(b, ", ")
}

// DatabaseOptions are the settings of a whole-database run: RunOptions
// for every table (less --table), and how the schema folder's table
// folders map to tables. The flags override the --config file.
type DatabaseOptions struct {
	RunOptions `embed:""`

	Config      string   `help:"Whole database: a YAML file of per-table settings (key, order_by, target, partition) and include/exclude lists." placeholder:"FILE"`
	Namespace   string   `help:"Whole database: the tables' namespace (default: the schema folder's name)." placeholder:"NS"`
	TablePrefix string   `help:"Whole database: a prefix of every table's name (<namespace>.<prefix><folder>)." placeholder:"PREFIX"`
	Parallel    int      `help:"Whole database: how many tables run at once (default 2)." default:"0" placeholder:"N"`
	Include     []string `help:"Whole database: only these table folders, comma-separated shell patterns." placeholder:"PATTERN,..."`
	Exclude     []string `help:"Whole database: not these table folders, comma-separated shell patterns." placeholder:"PATTERN,..."`
}

// Whole reports whether any setting of a whole-database run is set.
func (o DatabaseOptions) Whole() bool {
	return o.Config != "" || o.Namespace != "" || o.TablePrefix != "" || o.Parallel != 0 || len(o.Include) > 0 || len(o.Exclude) > 0
}

// The steps of `icemerge maintain`, in the order they run: compaction first
// (it leaves the files it replaced to the older snapshots), then the
// manifests, then expiry (which drops those snapshots and deletes the files
// only they used), then orphans (what no snapshot references any more).
const (
	StepCompact   = "compact"
	StepManifests = "manifests"
	StepExpire    = "expire"
	StepOrphans   = "orphans"
)

// AllSteps are the maintenance steps, in the order they run.
var AllSteps = []string{StepCompact, StepManifests, StepExpire, StepOrphans}

// minOrphanAge is the youngest --orphan-older-than accepted.
const minOrphanAge = time.Hour

// MaintainOptions are the settings of `icemerge maintain`.
type MaintainOptions struct {
	Common `embed:""`

	DryRun bool `help:"Print what each step would do and change nothing (no lock taken)."`
	// Steps are a subset of AllSteps; they run in AllSteps' order.
	Steps Columns `name:"only" help:"The steps to run, comma-separated: compact,manifests,expire,orphans." default:"compact,manifests,expire,orphans" placeholder:"STEP,..."`

	TargetFileSize  ByteSize `help:"compact: the size of the new data files." default:"128MiB" placeholder:"SIZE"`
	SmallFileSize   ByteSize `help:"compact: data files below this size are merged (0: 3/4 of --target-file-size)." default:"0" placeholder:"SIZE"`
	MinInputFiles   int      `help:"compact: merge small files only when there are at least this many (files with deleted rows are always rewritten)." default:"2" placeholder:"N"`
	MaxCompactBytes ByteSize `help:"compact: read at most this many bytes of data files in one maintenance, files with the most deleted rows first (0: no bound)." default:"0" placeholder:"SIZE"`
	// ExpireOlderThan and RetainLast: snapshots older than this expire,
	// beyond the newest RetainLast (and never the one holding the last
	// bookmark token, nor those after it).
	ExpireOlderThan Days `help:"expire: snapshots older than this go (a duration: 168h, or days: 7d)." default:"7d" placeholder:"AGE"`
	RetainLast      int  `help:"expire: always keep this many of the newest snapshots." default:"5" placeholder:"N"`
	// OrphanOlderThan protects unreferenced files younger than this: a
	// commit in flight (another writer's) has not referenced them yet.
	OrphanOlderThan Days          `help:"orphans: delete unreferenced files only when older than this (at least 1h)." default:"3d" placeholder:"AGE"`
	Wait            time.Duration `help:"Wait this long for a run of the table to finish (0: exit 3 at once)." default:"0s"`
	LockTTL         time.Duration `name:"lock-ttl" help:"The lease of the table's run lock, renewed every quarter of it while maintaining." default:"60s"`
	// ForceManaged runs compaction and expiry on a table whose catalog
	// maintains it itself (S3 Tables); orphan removal stays refused.
	ForceManaged bool `help:"Run compact and expire on a table its catalog maintains itself (S3 Tables), which they are otherwise declined on; orphans is always declined there (S3 Tables storage allows no listing or delete)."`
}

// NewMaintainOptions are the defaults of a maintenance.
func NewMaintainOptions() MaintainOptions {
	var o MaintainOptions
	applyDefaults(&o)
	return o
}

// Validate reports every problem at once.
func (o MaintainOptions) Validate() error {
	errs := []error{o.Common.validate(true)}
	if len(o.Steps) == 0 {
		errs = append(errs, fmt.Errorf("--only names no step: use some of %s", strings.Join(AllSteps, ",")))
	}
	for _, s := range o.Steps {
		if !slices.Contains(AllSteps, s) {
			errs = append(errs, fmt.Errorf("--only: unknown step %q: use %s", s, strings.Join(AllSteps, ", ")))
		}
	}
	if o.TargetFileSize <= 0 {
		errs = append(errs, errors.New("--target-file-size must be positive"))
	}
	if o.SmallFileSize < 0 || (o.SmallFileSize > 0 && o.SmallFileSize > o.TargetFileSize) {
		errs = append(errs, errors.New("--small-file-size must be between 0 (3/4 of --target-file-size) and --target-file-size"))
	}
	if o.MinInputFiles < 1 {
		errs = append(errs, errors.New("--min-input-files must be at least 1"))
	}
	if o.MaxCompactBytes < 0 {
		errs = append(errs, errors.New("--max-compact-bytes must be 0 (no bound) or more"))
	}
	if o.ExpireOlderThan < 0 || o.Wait < 0 {
		errs = append(errs, errors.New("--expire-older-than and --wait cannot be negative"))
	}
	if o.RetainLast < 1 {
		errs = append(errs, errors.New("--retain-last must be at least 1"))
	}
	if time.Duration(o.OrphanOlderThan) < minOrphanAge {
		errs = append(errs, fmt.Errorf("--orphan-older-than %s: use at least %s, so the files of a commit in flight are never deleted", time.Duration(o.OrphanOlderThan), minOrphanAge))
	}
	if o.LockTTL < minLockTTL {
		errs = append(errs, fmt.Errorf("--lock-ttl %s: use at least %s", o.LockTTL, minLockTTL))
	}
	return usage(errors.Join(errs...))
}

// compact is the compaction the options ask for.
func (o MaintainOptions) compact() catalog.CompactOptions {
	return catalog.CompactOptions{TargetFileSize: int64(o.TargetFileSize), SmallFileSize: int64(o.SmallFileSize),
		MinInputFiles: o.MinInputFiles, MaxInputBytes: int64(o.MaxCompactBytes), DryRun: o.DryRun}
}

// StatusOptions are the settings of `icemerge status`.
type StatusOptions struct {
	Common `embed:""`

	Source string `help:"The DMS folder of the table: a path, file:// or s3://; its files not applied yet are counted." placeholder:"URI"`
}

// Validate reports every problem at once.
func (o StatusOptions) Validate() error {
	errs := []error{o.Common.validate(true)}
	if o.Source == "" {
		errs = append(errs, errors.New("--source is required: the DMS folder of the table, to count the files not applied yet"))
	} else if _, err := source.ParseLocation(o.Source); err != nil {
		errs = append(errs, fmt.Errorf("--source: %w", err))
	}
	return usage(errors.Join(errs...))
}

// RewindOptions are the settings of `icemerge bookmark rewind`.
type RewindOptions struct {
	Common `embed:""`

	// To: the CDC files named after it are applied again. RFC 3339 or the
	// DMS name form yyyyMMdd-HHmmssSSS (UTC).
	To string `help:"Apply the CDC files named after this time again: RFC 3339 (2024-08-14T00:26:00Z) or yyyyMMdd-HHmmssSSS (UTC)." placeholder:"TIME"`
	// Source is optional: with it the rewind can reach into settled
	// history and count what the next run will process.
	Source string `help:"The DMS folder of the table: lets the rewind reach settled history and count what the next run processes." placeholder:"URI"`
}

// Validate reports every problem at once.
func (o RewindOptions) Validate() error {
	errs := []error{o.Common.validate(true)}
	if o.To == "" {
		errs = append(errs, errors.New("--to is required: the time after which applied CDC files are applied again, RFC 3339 (2024-08-14T00:26:00Z) or the DMS name form (20240814-002600000)"))
	} else if _, err := ParseRewindTime(o.To); err != nil {
		errs = append(errs, fmt.Errorf("--to: %w", err))
	}
	if o.Source != "" {
		if _, err := source.ParseLocation(o.Source); err != nil {
			errs = append(errs, fmt.Errorf("--source: %w", err))
		}
	}
	return usage(errors.Join(errs...))
}

// ParseRewindTime reads --to: RFC 3339 (any offset), or the time of a DMS
// CDC file name, yyyyMMdd-HHmmssSSS in UTC (with or without .parquet and
// folders, so a key can be pasted).
func ParseRewindTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, ok := source.CDCTime(s); ok {
		return t, nil
	}
	if t, ok := source.ParseCDCTime(s); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2024-08-14T00:26:00Z, 2024-08-14T02:26:00.123+02:00) or the DMS name form yyyyMMdd-HHmmssSSS in UTC (20240814-002600000)", s)
}

// TableOptions are the settings of a command on one table that needs no
// more: `icemerge bookmark show` and `icemerge bookmark reset`.
type TableOptions struct {
	Common `embed:""`
}

// Validate reports every problem at once.
func (o TableOptions) Validate() error { return usage(o.Common.validate(true)) }

// The values of show's --format.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// ShowOptions are the settings of `icemerge show`.
type ShowOptions struct {
	Common `embed:""`

	// Where is COL=VALUE: only the rows whose column holds the value,
	// found by the files' and row groups' statistics (a key lookup).
	Where  string `help:"Only the rows where the column holds the value: COL=VALUE (an int, bigint or string column; a key column reads the least)." placeholder:"COL=VALUE"`
	Limit  int    `help:"Print at most this many rows; reading stops once they are found (0: every row)." default:"100" placeholder:"N"`
	Format string `help:"Output format: table (aligned columns, for people), json (one JSON object per row) or csv (a header, then one line per row)." default:"table" enum:"table,json,csv" placeholder:"table|json|csv"`
}

// Validate reports every problem at once.
func (o ShowOptions) Validate() error {
	errs := []error{o.Common.validate(true)}
	if o.Limit < 0 {
		errs = append(errs, errors.New("--limit must be 0 (every row) or more"))
	}
	if o.Where != "" {
		if col, _, ok := strings.Cut(o.Where, "="); !ok || strings.TrimSpace(col) == "" {
			errs = append(errs, fmt.Errorf("--where %q: use COLUMN=VALUE, e.g. --where user_id=42", o.Where))
		}
	}
	switch o.Format {
	case "", FormatTable, FormatJSON, FormatCSV:
	default:
		errs = append(errs, fmt.Errorf("--format %q: use table, json or csv", o.Format))
	}
	return usage(errors.Join(errs...))
}

// where splits --where into its column (lower case, as stored) and value.
func (o ShowOptions) where() (col, value string) {
	col, value, _ = strings.Cut(o.Where, "=")
	return strings.ToLower(strings.TrimSpace(col)), value
}

// Columns is a list of column names: on the command line comma-separated,
// trimmed and lower-cased, as Glue and Athena store names. "source" alone
// (for --order-by) is the empty list: source order.
type Columns []string

// UnmarshalText reads a comma-separated list.
func (c *Columns) UnmarshalText(b []byte) error {
	*c = SplitColumns(string(b))
	if len(*c) == 1 && (*c)[0] == "source" {
		*c = Columns{}
	}
	return nil
}

// SplitColumns splits a comma-separated list of column names, trimmed and
// lower-cased.
func SplitColumns(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		out = append(out, strings.ToLower(strings.TrimSpace(p)))
	}
	return out
}

// ByteSize is a size: 134217728, 128MiB, 64KiB, 1GiB (powers of 1024), or
// 2GB, 500MB (powers of 1000).
type ByteSize int64

// UnmarshalText reads a size.
func (s *ByteSize) UnmarshalText(b []byte) error {
	v := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3}, {"B", 1}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size: want a byte count such as 134217728, 128MiB or 1GiB", string(b))
	}
	*s = ByteSize(n * mult)
	return nil
}

// String is the size in the largest binary unit that divides it: 256MiB.
func (s ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// Days is a duration that also takes whole days: 7d.
type Days time.Duration

// UnmarshalText reads a duration or a number of days.
func (d *Days) UnmarshalText(b []byte) error {
	v := strings.TrimSpace(string(b))
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("%q: want a duration such as 72h, 90m or 3d", v)
		}
		*d = Days(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q: want a duration such as 72h, 90m or 3d", v)
	}
	*d = Days(dur)
	return nil
}

// String is the duration, in days when whole.
func (d Days) String() string {
	if t := time.Duration(d); t > 0 && t%(24*time.Hour) == 0 {
		return strconv.Itoa(int(t/(24*time.Hour))) + "d"
	}
	return time.Duration(d).String()
}

// The memory budget (--memory) of a run: what it holds, at most.
//
//   - the source cache: the decoded rows of the files kept whole, at most
//     a sixteenth of the budget (or --source-cache, if smaller): it saves
//     only a second decode of a file's key and order columns (the others
//     are decoded once either way) and a second GET;
//   - the batch's per-key entries: about bytesPerChange per change of one
//     key-hash partition, a partition sized to half the budget (or
//     --partition-rows, if smaller);
//   - the key and order columns of every file not kept whole, about 20
//     bytes per change (for an integer key and a timestamp);
//   - two files being read, a row group of each, and one file being read
//     again to write its winners, a row group at a time; the writers' open
//     row groups (128Ki rows each, compressed).
//
// The Go heap's soft limit (HeapLimit) keeps the garbage of all this from
// piling up on top.
const (
	minMemory      ByteSize = 128 << 20
	bytesPerChange          = 200
	// heapHeadroom is what the process needs besides the Go heap: the
	// binary's pages, stacks, the runtime's own.
	heapHeadroom = 64 << 20
)

// sourceCache is the source cache the run uses (memoryBudget).
func (o RunOptions) sourceCache() int64 {
	if o.Memory > 0 {
		return min(int64(o.SourceCache), int64(o.Memory)/16)
	}
	return int64(o.SourceCache)
}

// partitionRows is the partition size the run uses (memoryBudget).
func (o RunOptions) partitionRows() int {
	if o.Memory <= 0 {
		return o.PartitionRows
	}
	rows := int(int64(o.Memory) / 2 / bytesPerChange)
	if o.PartitionRows > 0 {
		rows = min(rows, o.PartitionRows)
	}
	return rows
}

// HeapLimit is the soft limit of the Go heap for a process running with
// this budget (0: none): the budget less what the process holds besides
// the heap. A whole-database run shares it among its tables.
func (o RunOptions) HeapLimit() int64 {
	if o.Memory <= 0 {
		return 0
	}
	return int64(o.Memory) - heapHeadroom
}
