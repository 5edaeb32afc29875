package icemerge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// S3 and Glue calls retry throttling (503 SlowDown), 5xx, timeouts and
// dropped connections this many times in all, with jittered exponential
// backoff up to RetryMaxBackoff, then fail.
const (
	RetryMaxAttempts = 5
	RetryMaxBackoff  = 5 * time.Second
	// AttemptTimeout bounds one HTTP attempt, so a hung connection is
	// retried instead of waited on forever (a 128 MB data file needs
	// under 1 MB/s to make it).
	AttemptTimeout = 5 * time.Minute
)

// AWSOptions adjust LoadAWS; the zero value is production's.
type AWSOptions struct {
	// Wrap decorates the HTTP transport (tests: fault injection).
	Wrap           func(http.RoundTripper) http.RoundTripper
	MaxBackoff     time.Duration // 0: RetryMaxBackoff
	AttemptTimeout time.Duration // 0: AttemptTimeout
}

// LoadAWS builds the AWS configuration from the SDK's default chain
// (environment, shared config, instance or task role) and the standard
// endpoint variables (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_GLUE), with
// bounded retries and timeouts.
func LoadAWS(ctx context.Context, opt AWSOptions) (*aws.Config, error) {
	backoff, timeout := cmp.Or(opt.MaxBackoff, RetryMaxBackoff), cmp.Or(opt.AttemptTimeout, AttemptTimeout)
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
				o.MaxAttempts = RetryMaxAttempts
				o.MaxBackoff = backoff
			})
		}))
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, usage(errors.New("no AWS region: set AWS_REGION (or a region in the shared config)"))
	}
	if opt.Wrap != nil {
		if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
			cfg.HTTPClient = &http.Client{Transport: opt.Wrap(bc.GetTransport()), Timeout: bc.GetTimeout()}
		}
	}
	return &cfg, nil
}
