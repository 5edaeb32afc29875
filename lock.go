package icemerge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/icemerge/icemerge/bookmark"
)

// lockSpec says how a command holds a table's run lock.
type lockSpec struct {
	table string
	// command names the holder in the lock ("" for runs and maintenance):
	// "icemerge bookmark reset".
	command string
	// refuse, when set, says what the command cannot do while another
	// holds the lock: "reset the bookmark of".
	refuse string
	wait   time.Duration // how long to wait for another holder (0: fail at once with ErrLocked)
	ttl    time.Duration // the lease, renewed every third of it
}

// withLock runs fn under the table's run lock: a run, a maintenance, a
// rewind and a reset never overlap. The lock is taken (waiting up to
// spec.wait for another holder; a lease whose process died on this machine
// is taken over at once), renewed while fn runs and released at the end.
// lock nil runs fn unlocked.
func withLock[T any](ctx context.Context, lock Locker, spec lockSpec, now func() time.Time, log *slog.Logger, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if lock == nil {
		return fn(ctx)
	}
	lease, err := acquire(ctx, lock, spec, now, log)
	if err != nil {
		return zero, err
	}
	if was, ok := lease.TookOver(); ok {
		log.Warn("took over the run lock of a run that died", "table", spec.table, "owner", was.Owner, "host", was.Host, "pid", was.PID)
	}
	// Renewed every quarter of the lease; a renewal that keeps failing, or
	// the lock taken by another, cancels fn's context: nothing is committed
	// without the lock.
	ctx, stop := lease.Keep(ctx, func(err error) {
		log.Warn("renewing the run lock failed; retrying", "table", spec.table, "error", err)
	})
	defer func() {
		stop()
		if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
			log.Warn("releasing the run lock failed; it expires by itself", "table", spec.table, "error", rerr)
		}
	}()
	return fn(ctx)
}

// acquire takes the table's run lock, waiting up to spec.wait for another
// holder.
func acquire(ctx context.Context, lock Locker, spec lockSpec, now func() time.Time, log *slog.Logger) (*bookmark.Lease, error) {
	deadline := now().Add(spec.wait)
	owner := lockOwner(spec.command)
	for {
		lease, err := lock.Lock(ctx, owner, spec.ttl, now)
		if err == nil {
			return lease, nil
		}
		if !errors.Is(err, bookmark.ErrLocked) || !now().Before(deadline) {
			if errors.Is(err, bookmark.ErrLocked) && spec.refuse != "" {
				return nil, fmt.Errorf("cannot %s %s while a run holds the table: %w", spec.refuse, spec.table, err)
			}
			return nil, err
		}
		log.Info("waiting for another run of the table", "table", spec.table, "reason", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(time.Second, deadline.Sub(now()))):
		}
	}
}

// lockOwner names the holder of a lock: the command (if not a run), the
// host, the process and a fresh run id.
func lockOwner(command string) string {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/pid-%d/%s", host, os.Getpid(), newRunID(time.Now()))
	if command != "" {
		owner = command + "/" + owner
	}
	return owner
}

// newRunID is sortable by time and unique: 20261201T093512.123Z-1a2b3c4d.
func newRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}
