package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/utils"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
)

// S3 and Glue calls retry throttling (503 SlowDown), 5xx, timeouts and
// dropped connections this many times in all, with jittered exponential
// backoff up to retryMaxBackoff, then fail.
const (
	retryMaxAttempts = 5
	retryMaxBackoff  = 5 * time.Second
	// attemptTimeout bounds one HTTP attempt, so a hung connection is
	// retried instead of waited on forever (a 128 MB data file needs
	// under 1 MB/s to make it).
	attemptTimeout = 5 * time.Minute
)

// awsOptions adjust loadAWS for tests.
type awsOptions struct {
	wrap           func(http.RoundTripper) http.RoundTripper // decorates the HTTP transport (fault injection)
	maxBackoff     time.Duration                             // 0: retryMaxBackoff
	attemptTimeout time.Duration                             // 0: attemptTimeout
}

// loadAWS builds the AWS configuration from the SDK's default chain
// (environment, shared config, instance or task role) and the standard
// endpoint variables (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_GLUE), with
// bounded retries and timeouts.
func loadAWS(ctx context.Context, opt awsOptions) (*aws.Config, error) {
	backoff, timeout := cmp.Or(opt.maxBackoff, retryMaxBackoff), cmp.Or(opt.attemptTimeout, attemptTimeout)
	// The SDK's buildable client, so AWS_CA_BUNDLE and proxies work.
	hc := awshttp.NewBuildableClient().
		WithTimeout(timeout).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = 10 * time.Second
			t.ResponseHeaderTimeout = 60 * time.Second // a hung request is retried, not waited on forever
			t.MaxIdleConnsPerHost = 64
		})
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(hc),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = retryMaxAttempts
				o.MaxBackoff = backoff
			})
		}))
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION (or a region in the shared config)")
	}
	if opt.wrap != nil {
		if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
			cfg.HTTPClient = &http.Client{Transport: opt.wrap(bc.GetTransport()), Timeout: bc.GetTimeout()}
		}
	}
	return &cfg, nil
}

// opened is what a command talks to.
type opened struct {
	cat   *catalog.Catalog
	store *bookmark.Bookmarks
	src   Source
	s3    *s3.Client      // nil when nothing is on S3
	bm    source.Location // --bookmark
}

// bookmarks is the bookmark store of one table.
func (o *opened) bookmarks(table string) *bookmark.Bookmarks {
	if o.bm.S3 {
		return bookmark.NewS3Store(o.s3, o.bm.Bucket, o.bm.Prefix, table)
	}
	return bookmark.NewFileStore(o.bm.Path, table)
}

// source opens the DMS folder at uri.
func (o *opened) source(uri string) (Source, error) {
	l, err := source.ParseLocation(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: --source: %w", errUsage, err)
	}
	return source.Open(l, o.s3)
}

// needsAWS reports whether any setting points at S3 or Glue.
func (c Common) needsAWS(src string) bool {
	for _, u := range []string{c.Warehouse, c.Bookmark, src} {
		if l, err := source.ParseLocation(u); err == nil && l.S3 {
			return true
		}
	}
	return c.Catalog == catalog.KindGlue
}

// open opens the catalog, the bookmark store and (when source is not "")
// the source. The returned context carries the AWS configuration:
// iceberg-go's S3 file IO reads it from the context (utils.WithAwsConfig),
// and this is the one place it is put there. awsCfg nil loads the default.
func (c Common) open(ctx context.Context, log *slog.Logger, awsCfg *aws.Config, src string) (context.Context, *opened, error) {
	if awsCfg == nil && c.needsAWS(src) {
		var err error
		if awsCfg, err = loadAWS(ctx, awsOptions{}); err != nil {
			return ctx, nil, err
		}
	}
	var s3c *s3.Client
	props := iceberg.Properties{}
	if awsCfg != nil {
		ctx = utils.WithAwsConfig(ctx, awsCfg)
		s3c = s3.NewFromConfig(*awsCfg, func(o *s3.Options) {
			// A custom endpoint (MinIO, LocalStack) needs path-style
			// addressing; AWS itself takes virtual-hosted style.
			o.UsePathStyle = c.S3Endpoint != ""
		})
		if c.S3Endpoint != "" {
			props[iceio.S3EndpointURL] = c.S3Endpoint
		}
		props[iceio.S3Region] = awsCfg.Region
	}

	wh, _ := source.ParseLocation(c.Warehouse)
	catCfg := catalog.Config{Kind: c.Catalog, Warehouse: wh.String(), Props: props, AWS: awsCfg}
	if c.Catalog == catalog.KindSQL && catalog.IsPostgresURI(c.CatalogURI) {
		catCfg.URI = c.CatalogURI
	} else if c.Catalog == catalog.KindSQL {
		l, err := source.ParseLocation(c.CatalogURI)
		if err != nil || l.S3 {
			return ctx, nil, fmt.Errorf("%w: --catalog-uri %q: the sql catalog is a local SQLite file or a postgres:// URI", errUsage, catalog.RedactURI(c.CatalogURI))
		}
		catCfg.URI = l.Path
	}
	cat, err := catalog.Open(ctx, catCfg, log)
	if err != nil {
		return ctx, nil, err
	}
	o := &opened{cat: cat, s3: s3c}
	o.bm, _ = source.ParseLocation(c.Bookmark)
	if c.Table != "" {
		o.store = o.bookmarks(c.Table)
	}
	if src != "" {
		if o.src, err = o.source(src); err != nil {
			cat.Close()
			return ctx, nil, err
		}
	}
	return ctx, o, nil
}

// Source is the DMS folder of one table.
type Source = source.Source
