package bookmark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLocked means another live run holds the table's run lock.
var ErrLocked = errors.New("another run holds the table")

// ErrLostLock means the lease expired and another run took the lock.
var ErrLostLock = errors.New("the run lost its lock on the table")

// Run-lock timing. A lease is short and renewed while its run lasts, so a
// run that died on another machine blocks the table for about one lease at
// most; one that died on this machine is taken over at once (Lock).
const (
	// DefaultLeaseTTL is how long a lease lasts unless renewed.
	DefaultLeaseTTL = 60 * time.Second
	// DefaultRenewInterval is RenewInterval(DefaultLeaseTTL).
	DefaultRenewInterval = DefaultLeaseTTL / 4
)

// RenewInterval is how often Keep renews a lease of the given TTL: four
// times a lease, so three renewals in a row may fail (a slow or briefly
// unreachable store) before the run has to stop.
func RenewInterval(ttl time.Duration) time.Duration { return ttl / 4 }

// A failed Release is retried releaseAttempts times in all, the waits
// doubling from releaseBackoff (0.2 + 0.4 + 0.8 s); after that the lease
// expires by itself.
const (
	releaseAttempts = 4
	releaseBackoff  = 200 * time.Millisecond
)

const lockName = "lock.json"

// lockRecord is what the lock object holds.
type lockRecord struct {
	Owner string `json:"owner"`
	// Process is the holder's process (absent in records of older
	// versions, which then count as held by another machine).
	Process  *process  `json:"process,omitempty"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	// Released is set by Release where the record cannot be deleted (S3);
	// Expires is then in the past as well, for older readers.
	Released bool `json:"released,omitempty"`
}

// LockState is the state of a table's run lock, as Holder reports it.
type LockState string

// The states of a run lock. Only LockHeld and LockStuck stop a run.
const (
	LockFree     LockState = "free"     // never taken, or released by deletion
	LockReleased LockState = "released" // its run finished
	LockExpired  LockState = "expired"  // not renewed in time: its run died or froze
	// LockDead: its process has exited on this machine; the next run here
	// takes it over at once.
	LockDead LockState = "dead"
	LockHeld LockState = "held" // a live run holds it
	// LockStuck: a frozen or hung process holds the local bookmark folder's
	// .cas.lock, so no run can take the table (see ErrStoreLocked).
	LockStuck LockState = "stuck"
)

// Holder is who holds a table's run lock, as `icemerge status` shows it.
type Holder struct {
	Owner    string    `json:"owner"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	State    LockState `json:"state"`
	// Detail says what is going on and what a person can do, for the
	// dead and stuck states.
	Detail string `json:"detail,omitempty"`
}

// holder judges the record at now, from the process me.
func (r lockRecord) holder(now time.Time, me process) Holder {
	h := Holder{Owner: r.Owner, Acquired: r.Acquired, Expires: r.Expires, State: LockHeld}
	if r.Process != nil {
		h.Host, h.PID = r.Process.Host, r.Process.PID
	}
	switch {
	case r.Released:
		h.State = LockReleased
	case !r.Expires.After(now):
		h.State = LockExpired
	case livenessOf(r.Process, me) == gone:
		h.State = LockDead
		h.Detail = fmt.Sprintf("%s has exited without releasing the lock: the next run on this machine takes the table over at once, one elsewhere at %s",
			r.Process, r.Expires.Format(time.RFC3339))
	}
	return h
}

// from says where the holder runs, for messages.
func (h Holder) from() string {
	if h.PID == 0 {
		return ""
	}
	return fmt.Sprintf(" from pid %d on %s", h.PID, h.Host)
}

// Lease is a held run lock. It expires unless renewed, so a run that died
// holding it blocks the next one for at most its TTL, and not at all on the
// machine it ran on.
type Lease struct {
	b   *Bookmarks
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex // Renew runs beside the run; Release comes after
	rec      lockRecord
	ver      Version
	released bool
	took     *Holder
}

// Lock takes the table's run lock for owner, for ttl (DefaultLeaseTTL
// unless there is a reason), recording this process so that another run on
// the same machine can tell whether it still runs. It fails with ErrLocked
// (naming the holder) when another owner's lease is live. It takes over a
// lease that expired, and at once one whose process has exited on this
// machine (TookOver tells). A local folder whose .cas.lock a stuck process
// holds fails it after DefaultStoreLockWait with ErrLocked and
// ErrStoreLocked.
func (b *Bookmarks) Lock(ctx context.Context, owner string, ttl time.Duration, now func() time.Time) (*Lease, error) {
	name, err := b.name(lockName)
	if err != nil {
		return nil, err
	}
	me := thisProcess()
	t := now().UTC()
	rec := lockRecord{Owner: owner, Process: &me, Acquired: t, Expires: t.Add(ttl)}
	data, _ := json.Marshal(rec)

	cur, v, err := b.obj.get(ctx, name)
	var took *Holder
	switch {
	case errors.Is(err, errNotFound):
		v = ""
	case err != nil:
		return nil, fmt.Errorf("reading lock %s: %w", b.obj.where(name), err)
	default:
		var held lockRecord
		if json.Unmarshal(cur, &held) == nil && held.Owner != owner {
			switch h := held.holder(t, me); h.State {
			case LockHeld:
				return nil, fmt.Errorf("%w: %s holds %s%s until %s, renewing its lease while it runs (wait for it to finish or retry later; a run that dies frees the table at once on its own machine, elsewhere when its lease ends)",
					ErrLocked, h.Owner, b.table, h.from(), h.Expires.Format(time.RFC3339))
			case LockDead:
				took = &h
			}
		}
	}
	nv, err := b.obj.put(ctx, name, data, v)
	switch {
	case errors.Is(err, ErrConflict):
		// Our own write may have landed with its answer lost, and the
		// client's retry then met it: the lock is ours if it says so.
		if held, cv, mine, gerr := b.reread(ctx, name, rec); gerr == nil && mine {
			return &Lease{b: b, rec: held, ver: cv, ttl: ttl, now: now, took: took}, nil
		}
		return nil, fmt.Errorf("%w: another run took %s at the same moment", ErrLocked, b.table)
	case errors.Is(err, ErrStoreLocked):
		return nil, fmt.Errorf("%w: %w", ErrLocked, err)
	case err != nil:
		return nil, fmt.Errorf("writing lock %s: %w", b.obj.where(name), err)
	}
	return &Lease{b: b, rec: rec, ver: nv, ttl: ttl, now: now, took: took}, nil
}

// reread reads the lock and says whether it is still the lease rec began
// (same owner, same acquisition, not released).
func (b *Bookmarks) reread(ctx context.Context, name string, rec lockRecord) (lockRecord, Version, bool, error) {
	cur, v, err := b.obj.get(ctx, name)
	if errors.Is(err, errNotFound) {
		return lockRecord{}, "", false, nil
	}
	if err != nil {
		return lockRecord{}, "", false, err
	}
	var held lockRecord
	if json.Unmarshal(cur, &held) != nil {
		return lockRecord{}, "", false, nil
	}
	return held, v, held.Owner == rec.Owner && held.Acquired.Equal(rec.Acquired) && !held.Released, nil
}

// TookOver is the lease Lock took over because its process had exited on
// this machine, for the run's log.
func (l *Lease) TookOver() (Holder, bool) {
	if l.took == nil {
		return Holder{}, false
	}
	return *l.took, true
}

// Renew extends the lease by its TTL from now. ErrLostLock means another
// run has taken the table; any other error may be passing.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	name, err := l.b.name(lockName)
	if err != nil {
		return err
	}
	rec := l.rec
	rec.Expires = l.now().UTC().Add(l.ttl)
	data, _ := json.Marshal(rec)
	for range 2 {
		nv, err := l.b.obj.put(ctx, name, data, l.ver)
		if err == nil {
			l.rec, l.ver = rec, nv
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return fmt.Errorf("renewing the lock of %s: %w", l.b.table, err)
		}
		// A renewal whose answer was lost leaves us a version behind our
		// own record: adopt it and try once more.
		_, cv, mine, gerr := l.b.reread(ctx, name, l.rec)
		if gerr != nil {
			return fmt.Errorf("renewing the lock of %s: %w", l.b.table, gerr)
		}
		if !mine {
			break
		}
		l.ver = cv
	}
	return fmt.Errorf("%w: %s", ErrLostLock, l.b.table)
}

// Keep renews the lease every RenewInterval of its TTL until stop is
// called. A failed renewal is retried at the next interval; the returned
// context is cancelled, with a cause wrapping ErrLostLock, when another run
// took the table or when the lease would expire before the next attempt,
// so nothing is committed without the lock. warn (may be nil) hears every
// failed renewal. stop does not release the lease: call Release after it.
func (l *Lease) Keep(ctx context.Context, warn func(error)) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	every := RenewInterval(l.ttl)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, every)
			err := l.Renew(rctx)
			rcancel()
			switch {
			case err == nil:
				continue
			case errors.Is(err, ErrLostLock):
				cancel(err)
				return
			case ctx.Err() != nil:
				return
			}
			if warn != nil {
				warn(err)
			}
			if exp := l.Expires(); !l.now().Add(every).Before(exp) {
				cancel(fmt.Errorf("%w: %s: the lease ends at %s and could not be renewed: %w", ErrLostLock, l.b.table, exp.Format(time.RFC3339), err))
				return
			}
		}
	}()
	return ctx, func() { close(done); <-exited; cancel(nil) }
}

// Release gives the lock up with a compare-and-swap on the version this
// lease wrote: a lock another run has taken over since is left alone. A
// local folder deletes the record (which needs no disk space, so it works
// on a full disk); S3 overwrites it as released (conditional deletes are
// not supported by every S3 implementation). A failure is retried with
// backoff a few times; if it persists the lease still expires by itself
// within its TTL.
func (l *Lease) Release(ctx context.Context) error {
	delay := releaseBackoff
	var err error
	for attempt := 1; ; attempt++ {
		if err = l.release(ctx); err == nil {
			return nil
		}
		if attempt == releaseAttempts || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay *= 2
	}
	return fmt.Errorf("releasing the lock of %s: %w (it expires by itself at %s)", l.b.table, err, l.Expires().Format(time.RFC3339))
}

func (l *Lease) release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	name, err := l.b.name(lockName)
	if err != nil {
		return err
	}
	if rm, ok := l.b.obj.(remover); ok {
		err = rm.remove(ctx, name, l.ver)
	} else {
		rec := l.rec
		rec.Released, rec.Expires = true, l.now().UTC().Add(-time.Second)
		data, _ := json.Marshal(rec)
		_, err = l.b.obj.put(ctx, name, data, l.ver)
	}
	if errors.Is(err, ErrConflict) {
		_, cv, mine, gerr := l.b.reread(ctx, name, l.rec)
		switch {
		case gerr != nil:
			return gerr
		case !mine:
			l.released = true // another run's now (or gone): leave it alone
			return nil
		}
		l.ver = cv // our own renewal landed unseen: retry from its version
		return err
	}
	if err == nil {
		l.released = true
	}
	return err
}

// Expires is when the lease ends unless renewed.
func (l *Lease) Expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Expires
}

// stuckProber is an objects whose writes can be blocked by a stuck process
// (the local folder's .cas.lock): heldTooLong waits as long as a write
// would and returns ErrStoreLocked if it still could not write.
type stuckProber interface {
	heldTooLong(ctx context.Context, name string) error
}

// Holder reads the table's run lock without taking it and says who holds
// it: held is true when a run would be refused now, by a live lease
// (LockHeld) or by a stuck process holding the local folder's .cas.lock
// (LockStuck). A lease whose process has exited on this machine is
// LockDead, not held; an unreadable record counts as free, as Lock treats
// it.
func (b *Bookmarks) Holder(ctx context.Context, now time.Time) (h Holder, held bool, err error) {
	name, err := b.name(lockName)
	if err != nil {
		return Holder{}, false, err
	}
	h = Holder{State: LockFree}
	cur, _, err := b.obj.get(ctx, name)
	switch {
	case errors.Is(err, errNotFound):
	case err != nil:
		return Holder{}, false, fmt.Errorf("reading lock %s: %w", b.obj.where(name), err)
	default:
		var rec lockRecord
		if json.Unmarshal(cur, &rec) == nil {
			h = rec.holder(now, thisProcess())
		}
	}
	if h.State == LockHeld {
		return h, true, nil
	}
	if p, ok := b.obj.(stuckProber); ok {
		err := p.heldTooLong(ctx, name)
		if errors.Is(err, ErrStoreLocked) {
			s := Holder{Owner: "a stuck process", State: LockStuck, Detail: err.Error()}
			if c, ok := b.obj.(fileObjects); ok {
				if ch, ok := c.casHolderOf(name); ok {
					s.Owner, s.Host, s.PID, s.Acquired = ch.process.String(), ch.Host, ch.PID, ch.Since
				}
			}
			return s, true, nil
		}
		if err != nil {
			return Holder{}, false, fmt.Errorf("checking the lock of %s: %w", b.obj.where(name), err)
		}
	}
	return h, false, nil
}
