package testservers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The credentials of the test MinIO. moto accepts any, so they serve for
// Glue as well.
const (
	testAccessKey = "icemergetest"
	testSecretKey = "icemergetest-secret"
	testRegion    = "us-east-1"
)

// S3 is a running MinIO server.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string

	log     *tailBuffer
	startup time.Duration // until ready, including retries
}

var minio = sync.OnceValues(startMinIO)

// MinIO returns the MinIO server of this test process, starting it on the
// first call. It skips the test when MinIO cannot be found or started, or
// fails it when CI=true.
func MinIO(t testing.TB) *S3 {
	t.Helper()
	s, err := minio()
	if err != nil {
		unavailable(t, err)
	}
	hintMain(t)
	return s
}

func minioBinary() (string, error) {
	const hint = "run `make test`, which builds it into ./bin"
	if bin, ok, err := binaryFromEnv("ICEMERGE_MINIO_BIN", "MinIO", hint); ok {
		return bin, err
	}
	var tried []string
	if root, err := moduleRoot(); err == nil {
		bin := filepath.Join(root, "bin", "minio")
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
		tried = append(tried, bin)
	} else {
		tried = append(tried, "bin/minio in the module root ("+err.Error()+")")
	}
	if bin, err := exec.LookPath("minio"); err == nil {
		return bin, nil
	}
	tried = append(tried, "minio on PATH")
	return "", &startError{msg: fmt.Sprintf("MinIO not found at %s: %s", strings.Join(tried, " or "), hint)}
}

// binaryFromEnv returns the binary an environment variable names; ok is
// false when the variable is unset.
func binaryFromEnv(env, name, hint string) (bin string, ok bool, err error) {
	bin = os.Getenv(env)
	if bin == "" {
		return "", false, nil
	}
	if _, err := os.Stat(bin); err != nil {
		return "", true, &startError{msg: fmt.Sprintf("%s not found at %s (%s): %s", name, bin, env, hint)}
	}
	return bin, true, nil
}

func startMinIO() (*S3, error) {
	bin, err := minioBinary()
	if err != nil {
		return nil, err
	}
	s, _, err := launchMinIO(bin)
	return s, err
}

// StartMinIO starts a MinIO server of the caller's own, for a program that
// is not a test (the bench, cmd/icemerge-bench): bin is the MinIO binary,
// "" to look for it where [MinIO] does. It is not the server [MinIO]
// shares between tests; stop ends it (SIGTERM, then SIGKILL after 10 s)
// and removes its directory. Like every server here it runs in its own
// process group on a free 127.0.0.1 port and dies with the process that
// started it.
func StartMinIO(bin string) (s *S3, stop func(), err error) {
	if bin == "" {
		if bin, err = minioBinary(); err != nil {
			return nil, nil, err
		}
	} else if _, err := os.Stat(bin); err != nil {
		return nil, nil, &startError{msg: fmt.Sprintf("MinIO not found at %s: run `make minio`, which builds it into ./bin", bin)}
	}
	s, p, err := launchMinIO(bin)
	if err != nil {
		return nil, nil, err
	}
	return s, p.abandon, nil
}

// launchMinIO starts MinIO from bin and waits until it serves S3 calls.
func launchMinIO(bin string) (*S3, *process, error) {
	var s *S3
	p, took, err := startWithRetry("MinIO", func() (*process, error) {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		dir, err := serverDir("minio")
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(ports[0])
		p, err := start("MinIO", dir, []string{
			"MINIO_ROOT_USER=" + testAccessKey,
			"MINIO_ROOT_PASSWORD=" + testSecretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
		}, bin, "server",
			"--address", addr,
			"--console-address", "127.0.0.1:"+strconv.Itoa(ports[1]),
			filepath.Join(dir, "data"))
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, &startError{msg: fmt.Sprintf("MinIO at %s: %v", bin, err)}
		}
		s = &S3{Endpoint: "http://" + addr, Region: testRegion, AccessKey: testAccessKey, SecretKey: testSecretKey, log: p.log}
		err = p.waitReady(s.Endpoint+"/minio/health/live", func(r *http.Response) bool { return r.StatusCode == http.StatusOK })
		if err == nil {
			// Live is not ready: MinIO answers health checks before its
			// object layer is up, and until then S3 calls get 503
			// XMinioServerNotInitialized. Wait for a signed call to work.
			err = p.waitS3(s)
		}
		if err != nil {
			p.abandon()
			return nil, startFailure(p, fmt.Errorf("MinIO at %s: %w", bin, err))
		}
		return p, nil
	})
	if err != nil {
		return nil, nil, err
	}
	s.startup = took
	return s, p, nil
}

// waitS3 polls a signed ListBuckets until MinIO serves S3 requests, the
// process exits or the start timeout passes.
func (p *process) waitS3(s *S3) error {
	cfg, err := LoadConfig(context.Background(), s.Env(), &http.Client{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("AWS config for MinIO: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	deadline := time.Now().Add(startTimeout)
	for {
		_, err := client.ListBuckets(context.Background(), &s3.ListBucketsInput{})
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it served S3 requests (%v)", p.name, p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not serve S3 requests after %v: %w", p.name, startTimeout, err)
		}
	}
}

// LogTail returns the last n lines MinIO printed, for failure messages.
func (s *S3) LogTail(n int) string { return s.log.tail(n) }

var bucketSeq atomic.Int64

// NewBucket creates an empty bucket for t, named after the test and unique
// in the process, and returns its name.
func (s *S3) NewBucket(t testing.TB) string {
	t.Helper()
	name := bucketName(t.Name())
	client := s3.NewFromConfig(s.Config(t, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s on MinIO %s: %v", name, s.Endpoint, err)
	}
	return name
}

// bucketName makes a valid S3 bucket name (3–63 characters of a-z, 0-9 and
// inner hyphens) from a test name plus a sequence number and random suffix.
func bucketName(testName string) string {
	var b strings.Builder
	dash := true
	for _, r := range strings.ToLower(testName) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	slug := strings.Trim(b.String(), "-")
	if slug == "" {
		slug = "test"
	}
	suffix := fmt.Sprintf("-%d-%s", bucketSeq.Add(1), randomHex(3))
	if max := 63 - len("t-") - len(suffix); len(slug) > max {
		slug = strings.TrimRight(slug[:max], "-")
	}
	return "t-" + slug + suffix
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// Env returns the standard AWS variables that point the SDK's S3 client at
// this server: AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION. Use it for a subprocess's
// environment or with LoadConfig.
func (s *S3) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_S3":   s.Endpoint,
		"AWS_ACCESS_KEY_ID":     s.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s.SecretKey,
		"AWS_REGION":            s.Region,
	}
}

// Config returns an AWS config whose S3 clients talk to this server; see
// LoadConfig. httpClient nil means the SDK's default client.
func (s *S3) Config(t testing.TB, httpClient *http.Client) aws.Config {
	t.Helper()
	return AWSConfig(t, s, nil, httpClient)
}
