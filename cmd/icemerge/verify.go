package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/clikit"
)

// runVerify is `icemerge verify`: it writes what the verification found
// (to stderr when the report goes to stdout) and its JSON report. A table
// that differs is ErrNotEqual: exit 1.
func runVerify(a *app, c *verifyCmd) error {
	ctx, d, done, err := a.deps(&c.Common, "")
	if err != nil {
		return err
	}
	defer done()
	out := a.stdout
	if c.Report == "-" {
		out = a.stderr // stdout carries the report alone
	}
	verifyGC(a.env)
	started := time.Now()
	res, err := icemerge.Verify(ctx, c.VerifyOptions, d)
	icemerge.WriteVerify(out, res)
	if c.Report != "" && (res != nil || err != nil) {
		if rerr := icemerge.WriteJSON(c.Report, a.stdout, "verify report", icemerge.VerifyReportOf(started, res, err)); rerr != nil {
			if err != nil {
				return errors.Join(err, rerr)
			}
			return fmt.Errorf("the verification is done, but writing its report failed: %w", rerr)
		}
	}
	return err
}

// verifyGC: a verification's live heap is bounded by design (the bucket
// digests, a batch of 4,096 table rows decoded from their Parquet pages, a
// range of differing keys), and its garbage is the rows it encodes and
// hashes: collecting at 400% growth, with a soft limit that keeps the heap
// under 512 MiB, takes about a fifth less CPU than main's GOGC=50.
func verifyGC(env func(string) (string, bool)) { clikit.TuneGC(env, 400, 512<<20) }
