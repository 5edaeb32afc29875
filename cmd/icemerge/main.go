// Command icemerge applies the change files AWS DMS writes to S3 to an
// Apache Iceberg table, one atomic MERGE commit per run. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	// A run's heap is mostly the batch's key index, slabs and Arrow buffers,
	// with few pointers: collecting at half the default growth costs a few
	// percent of the time and keeps peak memory about a third lower. GOGC
	// set in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// On AWS Lambda (provided.al2023, `make lambda`) the runtime API is set:
	// serve invocations, one run each, until the runtime stops the process.
	if _, ok := os.LookupEnv("AWS_LAMBDA_RUNTIME_API"); ok {
		lambdaMain()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := profile()
	code := cli(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// profile writes a CPU profile to $ICEMERGE_CPU_PROFILE and a heap profile
// to $ICEMERGE_HEAP_PROFILE at exit, for performance work
// (docs/development.md).
func profile() func() {
	var done []func()
	if path := os.Getenv("ICEMERGE_CPU_PROFILE"); path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintf(os.Stderr, "icemerge: ICEMERGE_CPU_PROFILE: %v\n", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "icemerge: ICEMERGE_CPU_PROFILE: %v\n", err)
		} else {
			done = append(done, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv("ICEMERGE_HEAP_PROFILE"); path != "" {
		done = append(done, func() {
			f, err := os.Create(path)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "icemerge: ICEMERGE_HEAP_PROFILE: %v\n", err)
			}
		})
	}
	return func() {
		for _, f := range done {
			f()
		}
	}
}
