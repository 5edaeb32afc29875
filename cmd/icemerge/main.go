// Command icemerge applies the change files AWS DMS writes to S3 to an
// Apache Iceberg table, one atomic MERGE commit per run. It is a thin shell
// over package icemerge: cli.go reads the command line into the library's
// options and writes the results, lambda.go serves Lambda invocations.
// See README.md and docs/reference.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/icemerge/icemerge/internal/clikit"
)

// gcPercent is the collector's target growth (GOGC) of every command but
// verify (verify.go).
const gcPercent = 50

func main() {
	// A run's heap is mostly the batch's key index, slabs and Arrow buffers,
	// with few pointers: collecting at half the default growth costs a few
	// percent of the time and keeps peak memory about a third lower. GOGC
	// set in the environment wins.
	clikit.TuneGC(os.LookupEnv, gcPercent, 0)
	// On AWS Lambda (provided.al2023, `make lambda`) the runtime API is set:
	// serve invocations, one run each, until the runtime stops the process.
	if _, ok := os.LookupEnv("AWS_LAMBDA_RUNTIME_API"); ok {
		lambdaMain()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := clikit.Profile(os.Getenv("ICEMERGE_CPU_PROFILE"), os.Getenv("ICEMERGE_HEAP_PROFILE"), os.Stderr)
	code := cli(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}
