// Command icemerge-bench measures icemerge on DMS-format data at scale and
// prints the figures; it never fails because a target is missed.
//
//	icemerge-bench [run] [flags]   generate (or reuse) the data, run every scenario, print and save the figures
//	icemerge-bench gen [flags]     only generate the data (LOAD files and CDC batches) into the work dir
//	icemerge-bench naive [flags]   the naive merge (iceberg-go Delete with an In filter, then Append), one run
//	icemerge-bench duckdb [flags] FILES...   the same merge in DuckDB, a full rewrite of the table to zstd Parquet
//	icemerge-bench measure-child RESULT BIN ARGS...   (internal) run BIN, write its wall time and peak RSS
//
// The runner starts bin/icemerge (and itself, for DuckDB and the naive
// merge) as subprocesses, so each run's wall time and peak RSS are its own. `make
// bench` builds both binaries and runs it; see README.md in this folder.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/icemerge/icemerge/internal/testkit/naive"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && slices.Contains([]string{"run", "gen", "naive", "duckdb", "measure-child"}, args[0]) {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "gen":
		err = genMain(args)
	case "naive":
		err = naive.Main(ctx, args)
	case "duckdb":
		err = duckdbMain(ctx, args)
	case "measure-child":
		err = measureChildMain(args)
	default:
		err = benchMain(ctx, args)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "icemerge-bench: cancelled")
		os.Exit(130)
	default:
		fmt.Fprintf(os.Stderr, "icemerge-bench %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

// genMain is `icemerge-bench gen`.
func genMain(args []string) error {
	fs := flag.NewFlagSet("icemerge-bench gen", flag.ContinueOnError)
	var (
		p       genParams
		batches int
		work    string
	)
	fs.Uint64Var(&p.Seed, "seed", 1, "seed of the generated data")
	fs.IntVar(&p.Rows, "rows", 10_000_000, "rows of the base table (LOAD files)")
	fs.IntVar(&p.Changes, "changes", 1_000_000, "rows of each CDC batch (0: only the LOAD files)")
	fs.IntVar(&batches, "batches", 1, "CDC batches")
	fs.StringVar(&p.Spread, "spread", spreadUniform, "keys of the U and D changes: uniform (over the table) or clustered (the top 2% of the keys, at most the top 200k)")
	fs.StringVar(&p.Shape, "shape", shapeDMS, "the files: dms (DMS's Parquet settings: GZIP, parquet-1-0, 10,000-row row groups, dictionary, statistics; CDC files of about 32 MB of whole transactions) or legacy (snappy, 128Ki-row row groups, 250k-row CDC files, LOAD files without Op)")
	fs.Int64Var(&p.FileBytes, "cdc-file-bytes", dmsCDCFileBytes, "DMS shape: cut CDC files at about this size (CdcMinFileSize; -1: one file per batch)")
	fs.StringVar(&work, "dir", "bench-work", "work dir: the generated data is cached under DIR/data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := p.validate(batches); err != nil {
		return err
	}
	s, err := genBase(work, p)
	if err != nil {
		return err
	}
	printGen("LOAD", s)
	if p.Changes == 0 {
		return nil
	}
	for b := 1; b <= batches; b++ {
		s, err := genBatch(work, p, b)
		if err != nil {
			return err
		}
		printGen(fmt.Sprintf("CDC %s batch %d", p.Spread, b), s)
	}
	return nil
}

func (p genParams) validate(batches int) error {
	var errs []error
	if p.Rows < 1 || p.Rows > 1<<30 {
		errs = append(errs, fmt.Errorf("-rows %d: use 1 to %d", p.Rows, 1<<30))
	}
	if p.Changes < 0 || p.Changes > 1<<30 {
		errs = append(errs, fmt.Errorf("-changes %d: use 0 to %d", p.Changes, 1<<30))
	}
	if batches < 1 {
		errs = append(errs, fmt.Errorf("-batches %d: use 1 or more", batches))
	}
	if p.Spread != spreadUniform && p.Spread != spreadClustered {
		errs = append(errs, fmt.Errorf("-spread %q: use uniform or clustered", p.Spread))
	}
	if p.Shape != shapeDMS && p.Shape != shapeLegacy {
		errs = append(errs, fmt.Errorf("-shape %q: use dms or legacy", p.Shape))
	}
	if p.FileBytes == 0 || p.FileBytes < -1 {
		errs = append(errs, fmt.Errorf("-cdc-file-bytes %d: use a size in bytes, or -1 for one file per batch", p.FileBytes))
	}
	return errors.Join(errs...)
}

func printGen(what string, s *genStats) {
	how := fmt.Sprintf("generated in %.1fs", s.Seconds)
	if s.Cached {
		how = fmt.Sprintf("cached (generated in %.1fs)", s.Seconds)
	}
	files := fmt.Sprintf("%4d files", len(s.Files))
	if len(s.Files) > 1 && s.MaxFileBytes > 0 {
		files += fmt.Sprintf(" (%.1f–%.1f MiB)", mib(s.MinFileBytes), mib(s.MaxFileBytes))
	}
	extra := ""
	if s.Transactions > 0 {
		extra = fmt.Sprintf(", %d transactions, %d re-inserts", s.Transactions, s.Reinserts)
	}
	fmt.Printf("%-24s %10d rows %s %9.1f MiB  I %d U %d D %d, %d keys, %d repeats (%d equal updated_at)%s  %s  %s\n",
		what, s.Rows, files, mib(s.Bytes), s.Inserts, s.Updates, s.Deletes, s.Keys, s.Repeats, s.EqualTS, extra, how, s.Location)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// fmtBytes prints a size as 32 MiB, 512 KiB or 1000 B.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", mib(n))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
