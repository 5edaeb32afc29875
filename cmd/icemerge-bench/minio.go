package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

const minioBucket = "bench"

// minioServer is a MinIO of the bench's own (testservers.StartMinIO: a free
// 127.0.0.1 port, a temporary folder, stopped and removed by stop).
type minioServer struct {
	*testservers.S3
	stop   func()
	client *s3.Client
}

func startMinio(ctx context.Context, bin string) (*minioServer, error) {
	s, stop, err := testservers.StartMinIO(bin)
	if err != nil {
		return nil, err
	}
	cfg, err := testservers.LoadConfig(ctx, s.Env(), &http.Client{Timeout: 5 * time.Minute})
	if err != nil {
		stop()
		return nil, fmt.Errorf("AWS config for MinIO at %s: %w", s.Endpoint, err)
	}
	return &minioServer{S3: s, stop: stop, client: s3.NewFromConfig(cfg)}, nil
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

// env is the environment of an icemerge run against this server: the
// standard AWS variables testservers gives, without any of the caller's.
func (m *minioServer) env() []string {
	vars := m.Env()
	vars["AWS_EC2_METADATA_DISABLED"] = "true"
	env := cleanEnv()
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// minioRuns is the same merge with the source and the warehouse in S3
// (MinIO); the SQLite catalog stays a local file. Sizes are smaller
// (-minio-rows, -minio-changes): every byte goes through HTTP on the same
// two cores. DuckDB is not run here: its S3 support is an extension it
// downloads, and the comparison stays on local files.
func (b *bench) minioRuns(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "\n== MinIO (S3) runs at %s rows, %s changes (-minio-rows, -minio-changes) ==\n", count(o.MinioRows), count(o.MinioChanges))
	p := b.params(o.MinioRows, o.MinioChanges, "")
	load, err := b.genBase(p)
	if err != nil {
		return err
	}
	m, err := startMinio(ctx, o.MinioBin)
	if err != nil {
		return err
	}
	defer m.stop()
	fmt.Fprintf(b.out, "  MinIO %s serving at %s\n", o.MinioBin, m.Endpoint)
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
		batch, err := b.genBatch(p, 1, "")
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
		g := "g-minio-" + sp
		full := run(&scenario{ID: g + "-full-load/icemerge", Group: g + "-full-load", Title: fmt.Sprintf("full load of %s rows (for %s)", count(o.MinioRows), sp), Tool: "icemerge", Storage: "minio", Rows: o.MinioRows, Changes: o.MinioRows})
		if !full.ok() {
			return fmt.Errorf("the full load on MinIO failed: %s", firstLine(full.Stderr))
		}
		if err := m.upload(ctx, src, batch); err != nil {
			return err
		}
		run(&scenario{ID: g + "-cdc/icemerge", Group: g + "-cdc", Title: fmt.Sprintf("%s changes into %s rows, %s", count(o.MinioChanges), count(o.MinioRows), sp), Tool: "icemerge", Storage: "minio", Rows: o.MinioRows, Changes: o.MinioChanges, Spread: sp})
		run(&scenario{ID: g + "-noop/icemerge", Group: g + "-noop", Title: "run with no new files (no-op), " + sp, Tool: "icemerge", Storage: "minio", Rows: o.MinioRows})
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
