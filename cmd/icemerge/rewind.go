package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// RewindOptions are the settings of `icemerge bookmark rewind`.
type RewindOptions struct {
	Common
	// To: the CDC files named after it are applied again.
	To time.Time
	// ToText is --to as given, for messages and Validate.
	ToText string
	// Source is optional: with it the rewind can reach into settled
	// history and count what the next run will process.
	Source string
}

// Validate reports every problem at once.
func (o RewindOptions) Validate() error {
	errs := []error{o.Common.Validate()}
	if o.ToText == "" {
		errs = append(errs, errors.New("--to is required: the time after which applied CDC files are applied again, RFC 3339 (2024-08-14T00:26:00Z) or the DMS name form (20240814-002600000)"))
	} else if _, err := parseRewindTime(o.ToText); err != nil {
		errs = append(errs, fmt.Errorf("--to: %w", err))
	}
	if o.Source != "" {
		if _, err := source.ParseLocation(o.Source); err != nil {
			errs = append(errs, fmt.Errorf("--source: %w", err))
		}
	}
	return errors.Join(errs...)
}

// parseRewindTime reads --to: RFC 3339 (any offset), or the time of a DMS
// CDC file name, yyyyMMdd-HHmmssSSS in UTC (with or without .parquet and
// folders, so a key can be pasted).
func parseRewindTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, ok := source.CDCTime(s); ok {
		return t, nil
	}
	if t, ok := source.ParseCDCTime(s); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2024-08-14T00:26:00Z, 2024-08-14T02:26:00.123+02:00) or the DMS name form yyyyMMdd-HHmmssSSS in UTC (20240814-002600000)", s)
}

// rewindLockTTL is the lease a rewind holds the table's run lock for: it
// lists the source at most, and renews it while it lasts.
const rewindLockTTL = time.Minute

// RewindDeps are what a rewind talks to.
type RewindDeps struct {
	Log      *slog.Logger
	Out      io.Writer
	Now      func() time.Time
	Source   Source // nil: no --source
	Bookmark bookmark.Store
	Lock     Locker
}

// RewindResult is what a rewind did and what the next run will process.
type RewindResult struct {
	bookmark.Rewinding
	// Saved: the bookmark changed.
	Saved bool
	// Next is what the next run processes (listed only with a source):
	// Reapplied of them are forgotten files.
	Next      []source.Object
	Reapplied int
	Listed    bool
}

func cmdBookmarkRewind(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := newFlagSet("icemerge bookmark rewind", stderr)
	var o RewindOptions
	o.register(fs)
	fs.StringVar(&o.ToText, "to", "", "apply the CDC files named after this time again: RFC 3339 or yyyyMMdd-HHmmssSSS (UTC)")
	fs.StringVar(&o.Source, "source", "", "the DMS folder of the table: lets the rewind reach settled history and count what the next run processes")
	if err := parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if err := o.defaults(env); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return usageErr(err)
	}
	o.To, _ = parseRewindTime(o.ToText)
	log := o.logger(stderr)
	ctx, op, err := o.open(ctx, log, nil, o.Source)
	if err != nil {
		return err
	}
	defer op.cat.Close()
	_, err = rewindBookmark(ctx, o, RewindDeps{Log: log, Out: stdout, Now: time.Now, Source: op.src, Bookmark: op.store, Lock: op.store})
	return err
}

// rewindBookmark is `icemerge bookmark rewind`: under the table's run lock
// (so no run is in progress, and none starts meanwhile), forget the CDC
// files named after o.To and say what the next run processes.
func rewindBookmark(ctx context.Context, o RewindOptions, d RewindDeps) (*RewindResult, error) {
	lease, err := d.Lock.Lock(ctx, "icemerge bookmark rewind/"+runOwner(), rewindLockTTL, d.Now)
	if err != nil {
		return nil, fmt.Errorf("cannot rewind the bookmark of %s while a run holds the table: %w", o.Table, err)
	}
	ctx, stop := keepLease(ctx, lease, rewindLockTTL, d.Log)
	defer func() {
		stop()
		if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
			d.Log.Warn("releasing the run lock failed; it expires by itself", "error", rerr)
		}
	}()

	st, ver, err := d.Bookmark.Load(ctx)
	if err != nil {
		return nil, err
	}
	if ver == "" {
		fmt.Fprintf(d.Out, "bookmark of %s: none saved yet, nothing to rewind: the next run processes every file\n", o.Table)
		return &RewindResult{}, nil
	}
	if st.Table != o.Table {
		return nil, fmt.Errorf("bookmark %s belongs to table %s, not %s: use another --bookmark", d.Bookmark.Location(), st.Table, o.Table)
	}
	var list func() ([]source.Object, error)
	if d.Source != nil {
		list = func() ([]source.Object, error) {
			var objs []source.Object
			err := d.Source.List(ctx, "", func(obj source.Object) error {
				if source.Classify(obj.Key) != merge.NotData {
					objs = append(objs, obj)
				}
				return nil
			})
			return objs, err
		}
	}
	next, r, err := st.Rewind(o.To, d.Now(), list)
	if errors.Is(err, bookmark.ErrSettledHistory) {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if err != nil {
		return nil, err
	}
	res := &RewindResult{Rewinding: r}
	to := o.To.Format(time.RFC3339Nano)
	if len(r.Files) == 0 && r.Quarantined == 0 && r.Settled == r.SettledBefore {
		fmt.Fprintf(d.Out, "bookmark of %s: no applied CDC file is named after %s; nothing to rewind\n", o.Table, to)
	} else {
		if _, err := d.Bookmark.Save(ctx, next, ver); err != nil {
			return nil, err
		}
		res.Saved = true
		fmt.Fprintf(d.Out, "bookmark of %s rewound to %s: forgot %s named after it", o.Table, to, count(len(r.Files), "applied file"))
		if r.Quarantined > 0 {
			fmt.Fprintf(d.Out, " (%d of them quarantined: they are read again)", r.Quarantined)
		}
		fmt.Fprintf(d.Out, "; kept %d (full load and earlier files)\n", r.Kept)
		if r.Settled != r.SettledBefore {
			fmt.Fprintf(d.Out, "  listings start after %s again (settled up to %s before)\n", orStart(r.Settled), r.SettledBefore)
		}
	}
	if d.Source == nil {
		if len(r.Files) > 0 {
			fmt.Fprintf(d.Out, "  the next run re-applies %s from %s on, and any new ones (pass --source to count them)\n", count(len(r.Files), "file"), r.Files[0])
		}
		return res, nil
	}
	if res.Next, _, err = unprocessed(ctx, d.Source, next); err != nil {
		return nil, err
	}
	res.Listed = true
	forgot := make(map[string]bool, len(r.Files))
	for _, k := range r.Files {
		forgot[k] = true
	}
	var bytes int64
	for _, obj := range res.Next {
		bytes += obj.Size
		if forgot[obj.Key] {
			res.Reapplied++
		}
	}
	if len(res.Next) == 0 {
		fmt.Fprintf(d.Out, "  the next run has nothing to process in %s\n", d.Source)
		return res, nil
	}
	fmt.Fprintf(d.Out, "  the next run processes %s, %s, from %s on (%d of them forgotten by this rewind)\n",
		count(len(res.Next), "file"), sizeText(bytes), res.Next[0].Key, res.Reapplied)
	return res, nil
}

func orStart(key string) string {
	if key == "" {
		return "nothing (the whole folder is listed)"
	}
	return key
}

// resetNext says what the next run processes after a reset of st.
func resetNext(st bookmark.State) string {
	var b strings.Builder
	b.WriteString("the next run lists the whole source folder and applies every file, the full load first")
	if st.Settled != "" {
		fmt.Fprintf(&b, ", settled history (up to %s) included", st.Settled)
	}
	b.WriteString("; rows already current stay unchanged")
	if n := len(st.Quarantined); n > 0 {
		fmt.Fprintf(&b, "; the %d quarantined files are read again", n)
	}
	if n := len(st.Tombstones); n > 0 {
		fmt.Fprintf(&b, "; the %d tombstones of deleted keys are forgotten", n)
	}
	return b.String()
}
