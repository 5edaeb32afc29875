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
// spec.wait for another holder), renewed every third of its lease while fn
// runs (a failed renewal cancels fn's context, so nothing is committed
// without the lock) and released at the end. lock nil runs fn unlocked.
func withLock[T any](ctx context.Context, lock Locker, spec lockSpec, now func() time.Time, log *slog.Logger, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if lock == nil {
		return fn(ctx)
	}
	lease, err := acquire(ctx, lock, spec, now, log)
	if err != nil {
		return zero, err
	}
	ctx, stop := keepLease(ctx, lease, spec.ttl, log)
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

// keepLease renews the lease every third of its TTL; if that fails the
// returned context is cancelled, so nothing is committed without the lock.
func keepLease(ctx context.Context, lease *bookmark.Lease, ttl time.Duration, log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := lease.Renew(ctx); err != nil {
					log.Error("lost the run lock: stopping", "error", err)
					cancel(err)
					return
				}
			}
		}
	}()
	return ctx, func() { close(done); <-exited; cancel(nil) }
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
