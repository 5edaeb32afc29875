package testservers

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Retry settings of the configs made here: few, short retries keep fault
// injection tests fast.
const (
	RetryMaxAttempts = 3
	RetryMaxBackoff  = 200 * time.Millisecond
)

// AWSConfig returns an AWS config for S3 clients talking to s and Glue
// clients talking to g; either may be nil. It is LoadConfig over the merged
// Env maps, failing t on error. httpClient nil means the SDK's default.
func AWSConfig(t testing.TB, s *S3, g *Glue, httpClient *http.Client) aws.Config {
	t.Helper()
	env := map[string]string{}
	if g != nil {
		maps.Copy(env, g.Env())
	}
	if s != nil {
		maps.Copy(env, s.Env())
	}
	cfg, err := LoadConfig(t.Context(), env, httpClient)
	if err != nil {
		t.Fatalf("testservers: AWS config: %v", err)
	}
	return cfg
}

// LoadConfig builds an AWS config from the standard variables in env (not
// the process environment): AWS_REGION (or AWS_DEFAULT_REGION),
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>. Shared config and
// credentials files are not read. LoadDefaultConfig still reads the process
// environment for what is not given here (AWS_CA_BUNDLE, for one); an
// AWS_PROFILE there makes it fail, as the profile cannot be found. Retries are RetryMaxAttempts attempts with
// backoff up to RetryMaxBackoff and no retry quota, so many injected
// failures in a row never run into "retry quota exceeded".
//
// Per-service endpoints go into cfg.ServiceOptions, which every client's
// NewFromConfig applies after its own endpoint resolution, so
// s3.NewFromConfig(cfg) and glue.NewFromConfig(cfg) reach their servers
// without options, whatever the process environment says. The S3 client
// also gets UsePathStyle, which MinIO needs for bucket names. Options passed
// to NewFromConfig run later and still win.
func LoadConfig(ctx context.Context, env map[string]string, httpClient *http.Client) (aws.Config, error) {
	region := env["AWS_REGION"]
	if region == "" {
		region = env["AWS_DEFAULT_REGION"]
	}
	id, secret := env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
	var missing []string
	if region == "" {
		missing = append(missing, "AWS_REGION")
	}
	if id == "" {
		missing = append(missing, "AWS_ACCESS_KEY_ID")
	}
	if secret == "" {
		missing = append(missing, "AWS_SECRET_ACCESS_KEY")
	}
	if len(missing) > 0 {
		return aws.Config{}, fmt.Errorf("testservers.LoadConfig: %s missing from the environment map", strings.Join(missing, ", "))
	}

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, env["AWS_SESSION_TOKEN"])),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithRetryMaxAttempts(RetryMaxAttempts),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = RetryMaxAttempts
				o.MaxBackoff = RetryMaxBackoff
				o.RateLimiter = ratelimit.None
			})
		}),
		config.WithServiceOptions(endpointOptions(env)),
	}
	if u := env["AWS_ENDPOINT_URL"]; u != "" {
		opts = append(opts, config.WithBaseEndpoint(u))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("testservers.LoadConfig: %w", err)
	}
	// Set after loading, not with config.WithHTTPClient: LoadDefaultConfig
	// still reads the process environment, and with AWS_CA_BUNDLE set (as
	// on our machines) it refuses a plain *http.Client ("unable to add
	// custom RootCAs HTTPClient"). The caller's client is used as it is.
	if httpClient != nil {
		cfg.HTTPClient = httpClient
	}
	return cfg, nil
}

// endpointOptions returns the ServiceOptions callback that sets each
// client's BaseEndpoint from AWS_ENDPOINT_URL_<SERVICE ID> (upper case,
// spaces as underscores, as the SDK names them), falling back to
// AWS_ENDPOINT_URL.
func endpointOptions(env map[string]string) func(serviceID string, opts any) {
	return func(serviceID string, opts any) {
		key := "AWS_ENDPOINT_URL_" + strings.ReplaceAll(strings.ToUpper(serviceID), " ", "_")
		u := env[key]
		if u == "" {
			u = env["AWS_ENDPOINT_URL"]
		}
		if u == "" {
			return
		}
		if o, ok := opts.(*s3.Options); ok {
			o.BaseEndpoint = aws.String(u)
			o.UsePathStyle = true
			return
		}
		// Every client's Options has BaseEndpoint *string; reflection
		// spares importing every service package.
		v := reflect.ValueOf(opts)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return
		}
		f := v.Elem().FieldByName("BaseEndpoint")
		if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeFor[*string]() {
			f.Set(reflect.ValueOf(aws.String(u)))
		}
	}
}
