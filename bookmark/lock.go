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

const lockName = "lock.json"

// lockRecord is what the lock object holds.
type lockRecord struct {
	Owner    string    `json:"owner"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// Lease is a held run lock. It expires unless renewed, so a run that died
// holding it blocks the next one for at most its TTL.
type Lease struct {
	b   *Bookmarks
	ttl time.Duration
	now func() time.Time

	mu  sync.Mutex // Renew runs beside the run; Release comes after
	rec lockRecord
	ver Version
}

// Lock takes the table's run lock for owner, for ttl. It fails with
// ErrLocked (naming the holder) when another owner's lease is live; an
// expired lease is taken over.
func (b *Bookmarks) Lock(ctx context.Context, owner string, ttl time.Duration, now func() time.Time) (*Lease, error) {
	name := b.name(lockName)
	t := now().UTC()
	rec := lockRecord{Owner: owner, Acquired: t, Expires: t.Add(ttl)}
	data, _ := json.Marshal(rec)

	cur, v, err := b.obj.get(ctx, name)
	switch {
	case errors.Is(err, errNotFound):
		v = ""
	case err != nil:
		return nil, fmt.Errorf("reading lock %s: %w", b.obj.where(name), err)
	default:
		var held lockRecord
		if json.Unmarshal(cur, &held) == nil && held.Owner != owner && held.Expires.After(t) {
			return nil, fmt.Errorf("%w: %s holds %s until %s (wait for it to finish; a run that died releases the table when its lease expires)",
				ErrLocked, held.Owner, b.table, held.Expires.Format(time.RFC3339))
		}
	}
	nv, err := b.obj.put(ctx, name, data, v)
	if errors.Is(err, ErrConflict) {
		// Our own write may have landed with its answer lost, and the
		// client's retry then met it: the lock is ours if it says so.
		if cur, cv, gerr := b.obj.get(ctx, name); gerr == nil {
			var held lockRecord
			if json.Unmarshal(cur, &held) == nil && held.Owner == owner && held.Acquired.Equal(rec.Acquired) {
				return &Lease{b: b, rec: held, ver: cv, ttl: ttl, now: now}, nil
			}
		}
		return nil, fmt.Errorf("%w: another run took %s at the same moment", ErrLocked, b.table)
	}
	if err != nil {
		return nil, fmt.Errorf("writing lock %s: %w", b.obj.where(name), err)
	}
	return &Lease{b: b, rec: rec, ver: nv, ttl: ttl, now: now}, nil
}

// Renew extends the lease by its TTL from now.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.rec
	rec.Expires = l.now().UTC().Add(l.ttl)
	data, _ := json.Marshal(rec)
	nv, err := l.b.obj.put(ctx, l.b.name(lockName), data, l.ver)
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("%w: %s", ErrLostLock, l.b.table)
	}
	if err != nil {
		return fmt.Errorf("renewing the lock of %s: %w", l.b.table, err)
	}
	l.rec, l.ver = rec, nv
	return nil
}

// Release gives the lock up by marking it expired, with a compare-and-swap
// on the version this lease wrote: a lock another run has taken over since
// is left alone. (Overwriting rather than deleting: conditional deletes are
// not supported by every S3 implementation.)
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := lockRecord{Owner: l.rec.Owner + " (released)", Acquired: l.rec.Acquired, Expires: l.now().UTC().Add(-time.Second)}
	data, _ := json.Marshal(rec)
	_, err := l.b.obj.put(ctx, l.b.name(lockName), data, l.ver)
	if errors.Is(err, ErrConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("releasing the lock of %s: %w", l.b.table, err)
	}
	return nil
}

// Expires is when the lease ends unless renewed.
func (l *Lease) Expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Expires
}

// Holder is who holds a table's run lock, as `icemerge status` shows it.
type Holder struct {
	Owner    string    `json:"owner"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// Holder reads the table's run lock without taking it: held is false when
// there is no lock, it was released, or its lease expired (a run that died).
// An unreadable lock record counts as not held, as Lock treats it.
func (b *Bookmarks) Holder(ctx context.Context, now time.Time) (h Holder, held bool, err error) {
	cur, _, err := b.obj.get(ctx, b.name(lockName))
	if errors.Is(err, errNotFound) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("reading lock %s: %w", b.obj.where(b.name(lockName)), err)
	}
	var rec lockRecord
	if json.Unmarshal(cur, &rec) != nil {
		return Holder{}, false, nil
	}
	h = Holder(rec)
	return h, rec.Expires.After(now), nil
}
