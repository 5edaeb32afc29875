package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	minioUser     = "icemergebench"
	minioPassword = "icemergebench-secret"
	minioBucket   = "bench"
	minioRegion   = "us-east-1"
)

// minioServer is a MinIO started for the bench, on a free 127.0.0.1 port,
// with its data in a temporary folder.
type minioServer struct {
	cmd      *exec.Cmd
	done     chan struct{}
	endpoint string
	dir      string
	client   *s3.Client
	log      tailBuffer
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startMinio(ctx context.Context, bin string) (*minioServer, error) {
	dir, err := os.MkdirTemp("", "icemerge-bench-minio-")
	if err != nil {
		return nil, err
	}
	p1, err := freePort()
	if err == nil {
		var p2 int
		if p2, err = freePort(); err == nil && p2 != p1 {
			addr := "127.0.0.1:" + strconv.Itoa(p1)
			m := &minioServer{endpoint: "http://" + addr, dir: dir, done: make(chan struct{})}
			m.cmd = exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", "127.0.0.1:"+strconv.Itoa(p2), filepath.Join(dir, "data"))
			m.cmd.Env = append(cleanEnv(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
			m.cmd.Stdout, m.cmd.Stderr = &m.log, &m.log
			if err = m.cmd.Start(); err == nil {
				go func() { m.cmd.Wait(); close(m.done) }()
				m.client = s3.New(s3.Options{
					Region:       minioRegion,
					BaseEndpoint: aws.String(m.endpoint),
					UsePathStyle: true,
					Credentials:  credentials.NewStaticCredentialsProvider(minioUser, minioPassword, ""),
					HTTPClient:   &http.Client{Timeout: 5 * time.Minute},
				})
				if err = m.waitReady(ctx); err == nil {
					return m, nil
				}
				m.stop()
				return nil, fmt.Errorf("%w; MinIO said: %s", err, strings.TrimSpace(m.log.String()))
			}
		}
	}
	os.RemoveAll(dir)
	if err == nil {
		err = errors.New("no free port")
	}
	return nil, err
}

// waitReady polls a signed ListBuckets: MinIO answers its health check
// before its object layer serves S3 calls.
func (m *minioServer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := m.client.ListBuckets(cctx, &s3.ListBucketsInput{}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-m.done:
			return errors.New("MinIO exited before it served S3 calls")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MinIO does not serve S3 calls after 60s: %w", err)
		}
	}
}

// stop ends the server this bench started (SIGTERM, then SIGKILL) and
// removes its data.
func (m *minioServer) stop() {
	if m.cmd.Process != nil {
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			<-m.done
		}
	}
	os.RemoveAll(m.dir)
}

// upload puts files under prefix, four at a time.
func (m *minioServer) upload(ctx context.Context, prefix string, files []string) error {
	return parallelN(4, len(files), func(i int) error {
		f, err := os.Open(files[i])
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = m.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(minioBucket), Key: aws.String(prefix + "/" + filepath.Base(files[i])), Body: f})
		if err != nil {
			return fmt.Errorf("uploading %s: %w", files[i], err)
		}
		return nil
	})
}

// env is the environment of an icemerge run against this server.
func (m *minioServer) env() []string {
	return append(cleanEnv(), "AWS_ENDPOINT_URL_S3="+m.endpoint, "AWS_ACCESS_KEY_ID="+minioUser, "AWS_SECRET_ACCESS_KEY="+minioPassword,
		"AWS_REGION="+minioRegion, "AWS_EC2_METADATA_DISABLED=true")
}

// minioRuns is the same merge with the source and the warehouse in S3
// (MinIO); the SQLite catalog stays a local file. Sizes are smaller
// (-minio-rows, -minio-changes): every byte goes through HTTP on the same
// two cores.
func (b *bench) minioRuns(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== MinIO (S3) runs at %s rows, %s changes (-minio-rows, -minio-changes) ==\n", count(o.MinioRows), count(o.MinioChanges))
	p := genParams{Seed: o.Seed, Rows: o.MinioRows, Changes: o.MinioChanges}
	load, err := b.genBase(p)
	if err != nil {
		return err
	}
	m, err := startMinio(ctx, o.MinioBin)
	if err != nil {
		return err
	}
	defer m.stop()
	fmt.Fprintf(b.out, "  MinIO %s serving at %s (data in %s)\n", o.MinioBin, m.endpoint, m.dir)
	if _, err := m.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(minioBucket)}); err != nil {
		return fmt.Errorf("creating bucket %s: %w", minioBucket, err)
	}
	root := filepath.Join(o.Dir, "runs", "minio")
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, sp := range o.Spreads {
		p.Spread = sp
		batch, err := b.genBatch(p, 1)
		if err != nil {
			return err
		}
		src, wh := "src-"+sp, "wh-"+sp
		cat := filepath.Join(root, sp+".db")
		run := func(s *scenario) measure {
			args := []string{"run", "--source", "s3://" + minioBucket + "/" + src, "--table", "bench.t", "--key", "user_id",
				"--warehouse", "s3://" + minioBucket + "/" + wh, "--catalog-uri", cat, "--log-level", "warn"}
			b.seq++
			report := filepath.Join(root, fmt.Sprintf("report-%03d.json", b.seq))
			if b.report {
				args = append(args, "--report", report)
			}
			mm := b.runChild(ctx, o.RunTimeout, m.env(), b.icemerge, args...)
			if b.report {
				readReport(&mm, report)
			}
			b.progress(s, 1, 1, mm)
			s.Runs = append(s.Runs, mm)
			b.add(s)
			return mm
		}
		if err := m.upload(ctx, src, load); err != nil {
			return err
		}
		full := run(&scenario{ID: "g-minio-full-load-" + sp, Title: fmt.Sprintf("full load of %s rows (for %s)", count(o.MinioRows), sp), Tool: "icemerge", Storage: "minio", Rows: o.MinioRows, Changes: o.MinioRows})
		if !full.ok() {
			return fmt.Errorf("the full load on MinIO failed: %s", firstLine(full.Stderr))
		}
		if err := m.upload(ctx, src, batch); err != nil {
			return err
		}
		run(&scenario{ID: "g-minio-cdc-" + sp, Title: fmt.Sprintf("%s changes into %s rows, %s", count(o.MinioChanges), count(o.MinioRows), sp), Tool: "icemerge", Storage: "minio", Rows: o.MinioRows, Changes: o.MinioChanges, Spread: sp})
		run(&scenario{ID: "g-minio-noop-" + sp, Title: "run with no new files (no-op), " + sp, Tool: "icemerge", Storage: "minio", Rows: o.MinioRows})
	}
	return nil
}

// parallelN runs jobs 0..n-1 on k workers.
func parallelN(k, n int, job func(i int) error) error {
	sem := make(chan struct{}, k)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- job(i)
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
