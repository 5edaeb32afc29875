package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/icemerge/icemerge"
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
