package icemerge

import (
	"context"
	"errors"
	"fmt"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/merge"
)

// ErrUsage marks errors the user fixes in the settings (flags, environment,
// event, config file): retrying does not help.
var ErrUsage = errors.New("usage")

// ErrTablesFailed means some tables of a whole-database run failed (the
// others ran).
var ErrTablesFailed = errors.New("tables failed")

// usage marks err, if any, as a settings error.
func usage(err error) error {
	if err == nil || errors.Is(err, ErrUsage) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUsage, err)
}

// Class is what kind of failure an error is, for exit codes and for the
// Lambda's error types: the one place errors are classified.
type Class int

const (
	// OK: no error.
	OK Class = iota
	// Failed: the run failed; nothing partial is visible in the table and
	// the bookmark is never ahead of it.
	Failed
	// Usage: bad settings; retrying does not help.
	Usage
	// Locked: another run holds the table; nothing was done. Retry later.
	Locked
	// Cancelled: interrupted (a signal, or a deadline); nothing partial was
	// committed.
	Cancelled
	// BadInput: a DMS file is not readable or not valid; nothing was
	// written.
	BadInput
)

// Classify says what kind of failure err is. ctx is the command's context:
// a cancellation counts only when it was cancelled.
func Classify(ctx context.Context, err error) Class {
	var bad *merge.InputError
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrUsage):
		return Usage
	case errors.Is(err, bookmark.ErrLocked):
		return Locked
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return Cancelled
	case errors.As(err, &bad):
		return BadInput
	}
	return Failed
}
