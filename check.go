package icemerge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// `icemerge check` (as `dbt debug`): with a run's settings, try each thing a
// run does once, harmlessly, and say which works and which permission is
// missing. It writes only objects of its own, which it removes.

// CheckResult is one check: what was tried, on what, and how it went.
type CheckResult struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	// Skipped: not tried (a check it depends on failed, or it does not
	// apply); not a failure.
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
	// Needs is the permission the step of a run needs, as IAM names it
	// (or the file permission, for a local folder).
	Needs string `json:"needs"`
}

// ErrChecksFailed: some check of `icemerge check` failed.
var ErrChecksFailed = errors.New("checks failed")

// Check tries, with the settings of a run of one table, each access a run
// needs: listing and reading the source, listing, writing and deleting in
// the table's location, the bookmark store's conditional writes, and the
// catalog (a Glue UpdateTable by a request that cannot change the table).
// The error is ErrChecksFailed when any check failed.
func Check(ctx context.Context, o RunOptions, e *Env) ([]CheckResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Table == "" {
		return nil, usage(errors.New("--table is required: check one table (with its --source)"))
	}
	c := &checker{o: o, e: e, id: newRunID(time.Now())}
	c.source(ctx)
	c.warehouse(ctx)
	c.bookmark(ctx)
	c.catalog(ctx)
	for _, r := range c.res {
		if !r.OK && !r.Skipped {
			return c.res, ErrChecksFailed
		}
	}
	return c.res, nil
}

type checker struct {
	o   RunOptions
	e   *Env
	id  string
	res []CheckResult
}

func (c *checker) add(r CheckResult) { c.res = append(c.res, r) }

// fail records a failed check, its detail the exact error.
func (c *checker) fail(name, target, needs string, err error) {
	c.add(CheckResult{Name: name, Target: target, Detail: err.Error(), Needs: needs})
}

func (c *checker) skip(name, target, needs, why string) {
	c.add(CheckResult{Name: name, Target: target, Skipped: true, Detail: why, Needs: needs})
}

func (c *checker) ok(name, target, needs, detail string) {
	c.add(CheckResult{Name: name, Target: target, OK: true, Detail: detail, Needs: needs})
}

// s3Object is the ARN of the objects under a location.
func s3Objects(l source.Location) string {
	if l.Prefix == "" {
		return "arn:aws:s3:::" + l.Bucket + "/*"
	}
	return "arn:aws:s3:::" + l.Bucket + "/" + l.Prefix + "/*"
}

func s3List(l source.Location) string {
	return fmt.Sprintf("s3:ListBucket on arn:aws:s3:::%s (prefix %s/)", l.Bucket, l.Prefix)
}

// source lists the source and reads the first data file's footer.
func (c *checker) source(ctx context.Context) {
	loc, err := source.ParseLocation(c.o.Source)
	if err != nil {
		c.fail("source listing", c.o.Source, "", usage(err))
		return
	}
	listNeeds, readNeeds := "read and execute permission on the folder", "read permission on the files"
	if loc.S3 {
		listNeeds, readNeeds = s3List(loc), "s3:GetObject on "+s3Objects(loc)
	}
	src, err := c.e.Source(c.o.Source)
	if err != nil {
		c.fail("source listing", loc.String(), listNeeds, err)
		return
	}
	var first string
	objects, data := 0, 0
	errEnough := errors.New("enough")
	err = src.List(ctx, "", func(obj source.Object) error {
		objects++
		if source.Classify(obj.Key) != merge.NotData {
			data++
			if first == "" || source.CompareKeys(obj.Key, first) < 0 {
				first = obj.Key // the first in source order: a run reads it first
			}
		}
		if objects >= 1000 {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		c.fail("source listing", loc.String(), listNeeds, err)
		c.skip("source reading", loc.String(), readNeeds, "the listing failed")
		return
	}
	more := ""
	if errors.Is(err, errEnough) {
		more = " (the first 1000 listed)"
	}
	c.ok("source listing", loc.String(), listNeeds, fmt.Sprintf("%d objects, %d DMS Parquet files%s", objects, data, more))
	if first == "" {
		c.skip("source reading", loc.String(), readNeeds, "no DMS Parquet file to read yet")
		return
	}
	r, err := src.Open(ctx, first, source.Version{})
	if err != nil {
		c.fail("source reading", loc.Join(first).String(), readNeeds, err)
		return
	}
	defer r.Close()
	ft, err := readFooter(first, r)
	if err != nil {
		c.fail("source reading", loc.Join(first).String(), readNeeds, err)
		return
	}
	c.ok("source reading", loc.Join(first).String(), readNeeds, fmt.Sprintf("%d columns: %s", len(ft.names()), strings.Join(ft.names(), ", ")))
}

// warehouse lists the table's location, and writes and deletes an object
// of its own there.
func (c *checker) warehouse(ctx context.Context) {
	tl, err := c.e.Catalog.TableLocation(c.o.Table)
	if err != nil {
		c.fail("warehouse write", c.o.Warehouse, "", err)
		return
	}
	if tl == "" {
		c.skip("warehouse write", "(the catalog places the table)", "", "S3 Tables writes the table's files itself")
		return
	}
	loc, err := source.ParseLocation(tl)
	if err != nil {
		c.fail("warehouse write", tl, "", err)
		return
	}
	probe := loc.Join("_icemerge_check", c.id)
	if !loc.S3 {
		needs := "write permission on " + loc.Path
		if err := os.MkdirAll(filepath.Dir(probe.Path), 0o755); err != nil {
			c.fail("warehouse write", probe.String(), needs, err)
			c.skip("warehouse delete", probe.String(), needs, "the write failed")
			return
		}
		if err := os.WriteFile(probe.Path, []byte("icemerge check\n"), 0o644); err != nil {
			c.fail("warehouse write", probe.String(), needs, err)
			c.skip("warehouse delete", probe.String(), needs, "the write failed")
			return
		}
		c.ok("warehouse write", probe.String(), needs, "wrote a 15-byte object")
		err := os.Remove(probe.Path)
		_ = os.Remove(filepath.Dir(probe.Path))
		if err != nil {
			c.fail("warehouse delete", probe.String(), needs, err)
			return
		}
		c.ok("warehouse delete", probe.String(), needs, "removed it")
		return
	}
	list := s3List(loc)
	_, err = c.e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &loc.Bucket, Prefix: aws.String(loc.Prefix + "/"), MaxKeys: aws.Int32(1)})
	if err != nil {
		c.fail("warehouse listing", loc.String(), list, err)
	} else {
		c.ok("warehouse listing", loc.String(), list, "listed (maintenance lists the table's files to find orphans)")
	}
	needs := s3Objects(loc)
	_, err = c.e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &loc.Bucket, Key: &probe.Prefix, Body: bytes.NewReader([]byte("icemerge check\n"))})
	if err != nil {
		c.fail("warehouse write", probe.String(), "s3:PutObject on "+needs, err)
		c.skip("warehouse delete", probe.String(), "s3:DeleteObject on "+needs, "the write failed")
		return
	}
	c.ok("warehouse write", probe.String(), "s3:PutObject on "+needs, "wrote a 15-byte object")
	if _, err := c.e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &loc.Bucket, Key: &probe.Prefix}); err != nil {
		c.fail("warehouse delete", probe.String(), "s3:DeleteObject on "+needs, fmt.Errorf("%w (the check's object is left behind)", err))
		return
	}
	c.ok("warehouse delete", probe.String(), "s3:DeleteObject on "+needs, "removed it (maintenance deletes replaced and orphan files)")
}

// bookmark tries the bookmark store's compare-and-swap: create only when
// absent, twice (the second must be refused), replace only the version
// read, then remove the object.
func (c *checker) bookmark(ctx context.Context) {
	const name = "bookmark conditional write"
	dir := c.e.bm.Join(c.o.Table)
	probe := dir.Join("check-" + c.id + ".json")
	if !c.e.bm.S3 {
		needs := "write permission on " + dir.Path
		if err := os.MkdirAll(dir.Path, 0o755); err != nil {
			c.fail(name, probe.String(), needs, err)
			return
		}
		f, err := os.OpenFile(probe.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			c.fail(name, probe.String(), needs, err)
			return
		}
		f.Close()
		defer os.Remove(probe.Path)
		if _, err := os.OpenFile(probe.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, os.ErrExist) {
			c.fail(name, probe.String(), needs, fmt.Errorf("a second exclusive create was not refused (%v): two runs could overwrite each other's bookmark", err))
			return
		}
		c.ok(name, probe.String(), needs, "exclusive create works, and a second one is refused")
		return
	}
	needs := "s3:PutObject, s3:GetObject on " + s3Objects(dir) + " (conditional writes: If-None-Match, If-Match)"
	put := func(ifNone bool, ifMatch string) (string, error) {
		in := &s3.PutObjectInput{Bucket: &probe.Bucket, Key: &probe.Prefix, Body: bytes.NewReader([]byte(`{"check":"` + c.id + `"}`))}
		if ifNone {
			in.IfNoneMatch = aws.String("*")
		}
		if ifMatch != "" {
			in.IfMatch = aws.String(ifMatch)
		}
		out, err := c.e.s3.PutObject(ctx, in)
		if err != nil {
			return "", err
		}
		return aws.ToString(out.ETag), nil
	}
	etag, err := put(true, "")
	if err != nil {
		c.fail(name, probe.String(), needs, fmt.Errorf("create with If-None-Match: *: %w", err))
		return
	}
	cleanup := func() string {
		if _, err := c.e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &probe.Bucket, Key: &probe.Prefix}); err != nil {
			return fmt.Sprintf("; the check's object is left behind (%v: runs never delete bookmarks, so this is not needed)", errorCode(err))
		}
		return ""
	}
	if _, err := put(true, ""); statusCode(err) != http.StatusPreconditionFailed {
		left := cleanup()
		c.fail(name, probe.String(), needs, fmt.Errorf("a second create with If-None-Match: * was not refused with 412 (%v): the store does not support conditional writes, and two runs could overwrite each other's bookmark%s", err, left))
		return
	}
	if _, err := put(false, etag); err != nil {
		left := cleanup()
		c.fail(name, probe.String(), needs, fmt.Errorf("replace with If-Match: %w%s", err, left))
		return
	}
	if _, err := put(false, `"0000000000000000"`); statusCode(err) != http.StatusPreconditionFailed {
		left := cleanup()
		c.fail(name, probe.String(), needs, fmt.Errorf("a replace with a stale If-Match was not refused with 412 (%v): two runs could overwrite each other's bookmark%s", err, left))
		return
	}
	c.ok(name, probe.String(), needs, "If-None-Match and If-Match are honoured (412 when stale)"+cleanup())
}

// catalog reads the table from the catalog and, for Glue, checks
// glue:UpdateTable by a request that cannot change it.
func (c *checker) catalog(ctx context.Context) {
	ns, name, _ := catalog.ParseName(c.o.Table)
	tbl, exists, loadErr := c.e.Catalog.Load(ctx, c.o.Table)
	if c.o.Catalog != catalog.KindGlue {
		target := "the sql catalog " + catalog.RedactURI(c.o.CatalogURI)
		needs := "read and write on the catalog database"
		if c.o.Catalog == catalog.KindS3Tables {
			target = "the S3 Tables table bucket " + c.o.TableBucketARN
			needs = "s3tables:GetTableMetadataLocation (and GetNamespace, CreateNamespace, CreateTable, UpdateTableMetadataLocation, GetTableData, PutTableData)"
		}
		switch {
		case loadErr != nil:
			c.fail("catalog access", target, needs, loadErr)
		case exists:
			c.ok("catalog access", target, needs, fmt.Sprintf("table %s at %s (snapshot %d)", c.o.Table, tbl.Location(), tbl.SnapshotID()))
		default:
			c.ok("catalog access", target, needs, fmt.Sprintf("table %s does not exist yet: the first run creates it", c.o.Table))
		}
		return
	}
	region := ""
	if c.e.aws != nil {
		region = c.e.aws.Region
	}
	arn := fmt.Sprintf("arn:aws:glue:%s:ACCOUNT:table/%s/%s", region, ns, name)
	target := "Glue table " + ns + "." + name
	if c.e.aws == nil {
		c.fail("catalog read", target, "", errors.New("no AWS configuration (this is a bug)"))
		return
	}
	gc := glue.NewFromConfig(*c.e.aws)
	got, err := gc.GetTable(ctx, &glue.GetTableInput{DatabaseName: &ns, Name: &name})
	var notFound *gluetypes.EntityNotFoundException
	switch {
	case errors.As(err, &notFound):
		c.ok("catalog read", target, "glue:GetTable on "+arn, "the table does not exist yet")
		c.skip("catalog update", target, "glue:CreateTable, glue:CreateDatabase (when missing) on "+arn,
			"the first run creates the table; Glue has no dry run for CreateTable, so it is not tried")
		return
	case err != nil:
		c.fail("catalog read", target, "glue:GetTable on "+arn, err)
		c.skip("catalog update", target, "glue:UpdateTable on "+arn, "the read failed")
		return
	}
	c.ok("catalog read", target, "glue:GetTable on "+arn, "metadata_location "+got.Table.Parameters["metadata_location"])
	// A dry request: the table's own definition at a version that is not
	// its current one. Glue authorizes it first (AccessDeniedException
	// without glue:UpdateTable), then refuses it as a concurrent
	// modification; nothing changes.
	in := tableInput(got.Table)
	ver := aws.ToString(got.Table.VersionId) + "-icemerge-check"
	_, err = gc.UpdateTable(ctx, &glue.UpdateTableInput{DatabaseName: &ns, TableInput: in, VersionId: &ver, SkipArchive: aws.Bool(true)})
	needs := "glue:UpdateTable on " + arn
	switch code := errorCode(err); {
	case err == nil:
		c.ok("catalog update", target, needs, "allowed (the dry request rewrote the table's definition unchanged)")
	case code == "AccessDeniedException" || code == "AccessDenied" || statusCode(err) == http.StatusForbidden:
		c.fail("catalog update", target, needs, err)
	default:
		c.ok("catalog update", target, needs, "allowed (the dry request was refused after authorization, as meant: "+code+")")
	}
}

// tableInput is a Glue table's definition as UpdateTable takes it.
func tableInput(t *gluetypes.Table) *gluetypes.TableInput {
	return &gluetypes.TableInput{Name: t.Name, Description: t.Description, Owner: t.Owner, Parameters: t.Parameters,
		PartitionKeys: t.PartitionKeys, Retention: t.Retention, StorageDescriptor: t.StorageDescriptor, TableType: t.TableType,
		TargetTable: t.TargetTable, ViewExpandedText: t.ViewExpandedText, ViewOriginalText: t.ViewOriginalText,
		LastAccessTime: t.LastAccessTime, LastAnalyzedTime: t.LastAnalyzedTime}
}

// errorCode is an AWS error's code, or the error's text.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// statusCode is an AWS error's HTTP status, 0 when it has none.
func statusCode(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
