package bookmark_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/internal/testkit/testservers"
)

// The lock tests run real child processes: the test binary run again with
// helperEnv set, which opens the same store, takes the lock (or holds the
// local folder's .cas.lock), prints "ready" and sleeps until killed.
const helperEnv = "ICEMERGE_BOOKMARK_LOCK_HELPER"

// helperSpec tells the child what to open and do.
type helperSpec struct {
	Do     string            `json:"do"` // "lease", "caslock" or "churn"
	Dir    string            `json:"dir,omitempty"`
	Bucket string            `json:"bucket,omitempty"`
	Prefix string            `json:"prefix,omitempty"`
	Env    map[string]string `json:"env,omitempty"` // the S3 server's AWS variables
	Table  string            `json:"table"`
	Owner  string            `json:"owner,omitempty"`
}

func (s helperSpec) open(t testing.TB) *bookmark.Bookmarks {
	if s.Bucket == "" {
		return bookmark.NewFileStore(s.Dir, s.Table)
	}
	cfg, err := testservers.LoadConfig(context.Background(), s.Env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bookmark.NewS3Store(s3.NewFromConfig(cfg), s.Bucket, s.Prefix, s.Table)
}

// TestLockHelperProcess is the child's side; it skips in a normal run.
func TestLockHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("the lock tests run this in a child process")
	}
	var s helperSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	b := s.open(t)
	ctx := context.Background()
	switch s.Do {
	case "lease":
		if _, err := b.Lock(ctx, s.Owner, bookmark.DefaultLeaseTTL, time.Now); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("ready")
	case "caslock":
		err := bookmark.HoldStoreLock(ctx, b, func() {
			fmt.Println("ready")
			time.Sleep(time.Hour)
		})
		fmt.Println("error:", err)
		os.Exit(2)
	case "churn":
		// Lock, renew, save, release, again and again, until killed.
		fmt.Println("ready")
		for i := 0; ; i++ {
			l, err := b.Lock(ctx, fmt.Sprintf("%s-%d", s.Owner, i), bookmark.DefaultLeaseTTL, time.Now)
			if err != nil {
				fmt.Fprintln(os.Stderr, "churn:", err)
				os.Exit(2)
			}
			if err := l.Renew(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "churn:", err)
				os.Exit(2)
			}
			_, v, err := b.Load(ctx)
			if err == nil {
				_, err = b.Save(ctx, bookmark.New(s.Table).Begin(strconv.Itoa(i), nil, time.Now()), v)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "churn:", err)
				os.Exit(2)
			}
			if err := l.Release(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "churn:", err)
				os.Exit(2)
			}
		}
	}
	time.Sleep(time.Hour)
}

// child is a helper process.
type child struct {
	cmd      *exec.Cmd
	pid      int
	waitOnce sync.Once
	stderr   bytes.Buffer
}

// startChild runs the helper and waits until it says it holds the lock.
func startChild(t *testing.T, spec helperSpec) *child {
	t.Helper()
	raw, _ := json.Marshal(spec)
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")}
	c.cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	c.cmd.Stderr = &c.stderr
	// Killed with the test should the test die first.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.pid = c.cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(c.pid, syscall.SIGKILL)
		c.wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); l == "ready" || strings.HasPrefix(l, "error:") {
				lines <- l
				break
			}
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-lines:
		if l != "ready" {
			t.Fatalf("helper process: %q; stderr: %s", l, c.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper process did not take the lock in 30s; stderr: %s", c.stderr.String())
	}
	return c
}

func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(c.pid, sig); err != nil {
		t.Fatalf("kill -%d %d: %v", sig, c.pid, err)
	}
}

// wait reaps the child.
func (c *child) wait() { c.waitOnce.Do(func() { _ = c.cmd.Wait() }) }

// lockStore is a store under test, with what a child needs to open the
// same one, raw access to its lock record and a way to make its lock
// writes fail.
type lockStore struct {
	b     *bookmark.Bookmarks
	spec  helperSpec
	read  func(t *testing.T) []byte
	write func(t *testing.T, data []byte)
	// failWrites makes the next n write calls of the lock fail (n < 0:
	// every one) and returns how many calls failed so far.
	failWrites func(t *testing.T, n int) func() int
}

func newFileLockStore(t *testing.T) lockStore {
	dir := t.TempDir()
	b := bookmark.NewFileStore(dir, "db.t")
	p := filepath.Join(dir, "db.t", "lock.json")
	return lockStore{
		b:    b,
		spec: helperSpec{Dir: dir, Table: "db.t"},
		read: func(t *testing.T) []byte {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return data
		},
		write: func(t *testing.T, data []byte) {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		failWrites: func(t *testing.T, n int) func() int {
			return bookmark.Faults(b, "lock.json", n, fmt.Errorf("writing lock.json: %w", syscall.ENOSPC))
		},
	}
}

func newS3LockStore(srv *testservers.S3) func(t *testing.T) lockStore {
	return func(t *testing.T) lockStore {
		ft := testservers.NewFaultTransport(nil)
		client := s3.NewFromConfig(srv.Config(t, &http.Client{Transport: ft}))
		clean := s3.NewFromConfig(srv.Config(t, nil))
		bucket, prefix := srv.NewBucket(t), "warehouse/_icemerge"
		key := prefix + "/db.t/lock.json"
		return lockStore{
			b:    bookmark.NewS3Store(client, bucket, prefix, "db.t"),
			spec: helperSpec{Bucket: bucket, Prefix: prefix, Env: srv.Env(), Table: "db.t"},
			read: func(t *testing.T) []byte {
				out, err := clean.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
				if err != nil {
					t.Fatal(err)
				}
				defer out.Body.Close()
				data, err := io.ReadAll(out.Body)
				if err != nil {
					t.Fatal(err)
				}
				return data
			},
			write: func(t *testing.T, data []byte) {
				if _, err := clean.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
					t.Fatal(err)
				}
			},
			failWrites: func(t *testing.T, n int) func() int {
				// Each call is RetryMaxAttempts requests: the SDK retries a 503.
				ft.Reset()
				if n == 0 {
					return func() int { return 0 }
				}
				ft.Add(testservers.Rule{Name: "lock", Match: testservers.MatchS3("PUT", `/lock\.json$`), Action: testservers.Status,
					Status: http.StatusServiceUnavailable, Body: testservers.S3ErrorBody("SlowDown", "Please reduce your request rate."),
					Times: max(n, 0) * testservers.RetryMaxAttempts})
				return func() int { return ft.Hits("lock") / testservers.RetryMaxAttempts }
			},
		}
	}
}

func TestFileLockProcesses(t *testing.T) { processLockSuite(t, newFileLockStore) }

func TestS3LockProcesses(t *testing.T) { processLockSuite(t, newS3LockStore(testservers.MinIO(t))) }

// editProcess rewrites the process recorded in a lock record.
func editProcess(t *testing.T, data []byte, edit func(p map[string]any)) []byte {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	p, ok := rec["process"].(map[string]any)
	if !ok {
		t.Fatalf("lock record %s records no process", data)
	}
	edit(p)
	out, _ := json.Marshal(rec)
	return out
}

// processLockSuite is how every run lock treats the processes holding it.
func processLockSuite(t *testing.T, newStore func(t *testing.T) lockStore) {
	ctx := context.Background()
	host, _ := os.Hostname()

	t.Run("a live holder on this machine is kept, a killed one is taken over at once", func(t *testing.T) {
		s := newStore(t)
		spec := s.spec
		spec.Do, spec.Owner = "lease", "child-run"
		c := startChild(t, spec)

		h, held, err := s.b.Holder(ctx, time.Now())
		if err != nil || !held || h.State != bookmark.LockHeld || h.Owner != "child-run" || h.PID != c.pid || h.Host != host {
			t.Fatalf("Holder = %+v, %v, %v; want child-run held by pid %d on %s", h, held, err, c.pid, host)
		}
		if _, err := s.b.Lock(ctx, "next", bookmark.DefaultLeaseTTL, time.Now); !errors.Is(err, bookmark.ErrLocked) ||
			!strings.Contains(err.Error(), "child-run holds") || !strings.Contains(err.Error(), "pid "+strconv.Itoa(c.pid)) {
			t.Fatalf("Lock beside a live holder: %v, want ErrLocked naming child-run and its pid", err)
		}
		// Frozen is not dead: it may resume, and its lease says until when.
		c.signal(t, syscall.SIGSTOP)
		if _, err := s.b.Lock(ctx, "next", bookmark.DefaultLeaseTTL, time.Now); !errors.Is(err, bookmark.ErrLocked) {
			t.Fatalf("Lock beside a stopped holder: %v, want ErrLocked", err)
		}

		c.signal(t, syscall.SIGKILL)
		// Not reaped yet: a zombie counts as exited.
		deadline := time.Now().Add(5 * time.Second)
		for {
			h, held, err = s.b.Holder(ctx, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if h.State == bookmark.LockDead || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if held || h.State != bookmark.LockDead || h.PID != c.pid {
			t.Fatalf("Holder after SIGKILL = %+v, held %v; want dead, not held", h, held)
		}
		began := time.Now()
		lease, err := s.b.Lock(ctx, "next", bookmark.DefaultLeaseTTL, time.Now)
		if err != nil {
			t.Fatalf("Lock after the holder was killed: %v (want it taken over at once)", err)
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("taking over a dead holder's lease took %s", took)
		}
		if was, ok := lease.TookOver(); !ok || was.Owner != "child-run" || was.PID != c.pid {
			t.Errorf("TookOver = %+v, %v; want child-run's lease", was, ok)
		}
		if h, held, _ := s.b.Holder(ctx, time.Now()); !held || h.Owner != "next" || h.PID != os.Getpid() {
			t.Errorf("Holder after the takeover = %+v, %v; want next, this process", h, held)
		}
		c.wait()
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("killed at any point, a run never blocks the next one", func(t *testing.T) {
		s := newStore(t)
		spec := s.spec
		spec.Do, spec.Owner = "churn", "churn"
		found := map[bookmark.LockState]int{}
		const kills = 25
		for i := range kills {
			c := startChild(t, spec)
			time.Sleep(time.Duration(rand.IntN(40_000)) * time.Microsecond)
			c.signal(t, syscall.SIGKILL)
			c.wait()
			if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("kill %d: the churning child ended by itself (%v): %s", i, c.cmd.ProcessState, c.stderr.String())
			}
			h, _, err := s.b.Holder(ctx, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			found[h.State]++
			began := time.Now()
			lease, err := s.b.Lock(ctx, "next", bookmark.DefaultLeaseTTL, time.Now)
			if err != nil {
				t.Fatalf("kill %d (lock %s): Lock after the kill: %v", i, h.State, err)
			}
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("kill %d: Lock took %s", i, took)
			}
			if _, _, err := s.b.Load(ctx); err != nil {
				t.Errorf("kill %d: the bookmark: %v", i, err)
			}
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%d kills; the lock was found %v", kills, found)
	})

	t.Run("a lease whose pid now names another process, or none, is taken over", func(t *testing.T) {
		for _, c := range []struct {
			name string
			edit func(p map[string]any)
		}{
			{"pid reused", func(p map[string]any) { p["start"] = "1" }},
			{"no such pid", func(p map[string]any) { p["pid"] = 1<<30 - 1 }},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := newStore(t)
				if _, err := s.b.Lock(ctx, "a", bookmark.DefaultLeaseTTL, time.Now); err != nil {
					t.Fatal(err)
				}
				s.write(t, editProcess(t, s.read(t), c.edit))
				if h, held, err := s.b.Holder(ctx, time.Now()); err != nil || held || h.State != bookmark.LockDead {
					t.Errorf("Holder = %+v, %v, %v; want dead", h, held, err)
				}
				if _, err := s.b.Lock(ctx, "b", bookmark.DefaultLeaseTTL, time.Now); err != nil {
					t.Errorf("Lock over a lease whose process is gone: %v", err)
				}
			})
		}
	})

	t.Run("another machine's lease is taken over only when it expires", func(t *testing.T) {
		for _, c := range []struct {
			name string
			edit func(t *testing.T, data []byte) []byte
		}{
			{"another host", func(t *testing.T, d []byte) []byte {
				return editProcess(t, d, func(p map[string]any) { p["host"], p["pid"] = "elsewhere", 1<<30-1 })
			}},
			{"same host name, another boot or kernel", func(t *testing.T, d []byte) []byte {
				return editProcess(t, d, func(p map[string]any) { p["boot"], p["pid"] = "another-boot", 1<<30-1 })
			}},
			{"same host name, another container", func(t *testing.T, d []byte) []byte {
				return editProcess(t, d, func(p map[string]any) { p["pidns"], p["pid"] = "pid:[1]", 1<<30-1 })
			}},
			{"a record of an older icemerge", func(t *testing.T, d []byte) []byte {
				var rec map[string]any
				_ = json.Unmarshal(d, &rec)
				delete(rec, "process")
				rec["owner"] = host + "/pid-1073741823/run"
				out, _ := json.Marshal(rec)
				return out
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := newStore(t)
				clock := now
				tick := func() time.Time { return clock }
				if _, err := s.b.Lock(ctx, "a", bookmark.DefaultLeaseTTL, tick); err != nil {
					t.Fatal(err)
				}
				s.write(t, c.edit(t, s.read(t)))
				clock = now.Add(bookmark.DefaultLeaseTTL - time.Second)
				if h, held, _ := s.b.Holder(ctx, clock); !held || h.State != bookmark.LockHeld {
					t.Errorf("Holder within the lease = %+v, %v; want held", h, held)
				}
				if _, err := s.b.Lock(ctx, "b", bookmark.DefaultLeaseTTL, tick); !errors.Is(err, bookmark.ErrLocked) {
					t.Fatalf("Lock within the lease: %v, want ErrLocked", err)
				}
				clock = now.Add(bookmark.DefaultLeaseTTL + time.Second)
				if h, held, _ := s.b.Holder(ctx, clock); held || h.State != bookmark.LockExpired {
					t.Errorf("Holder after the lease = %+v, %v; want expired", h, held)
				}
				if _, err := s.b.Lock(ctx, "b", bookmark.DefaultLeaseTTL, tick); err != nil {
					t.Fatalf("Lock after the lease: %v", err)
				}
			})
		}
	})

	t.Run("a failing release is retried", func(t *testing.T) {
		s := newStore(t)
		l, err := s.b.Lock(ctx, "a", bookmark.DefaultLeaseTTL, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		failed := s.failWrites(t, 2)
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release after 2 failures: %v", err)
		}
		if n := failed(); n != 2 {
			t.Errorf("%d release writes failed, want 2", n)
		}
		if h, held, err := s.b.Holder(ctx, time.Now()); err != nil || held {
			t.Errorf("Holder after Release = %+v, %v, %v; want free", h, held, err)
		}
		if _, err := s.b.Lock(ctx, "b", bookmark.DefaultLeaseTTL, time.Now); err != nil {
			t.Errorf("Lock after Release: %v", err)
		}
	})

	t.Run("a release that keeps failing leaves a lease that expires by itself", func(t *testing.T) {
		s := newStore(t)
		clock := now
		tick := func() time.Time { return clock }
		l, err := s.b.Lock(ctx, "a", bookmark.DefaultLeaseTTL, tick)
		if err != nil {
			t.Fatal(err)
		}
		failed := s.failWrites(t, -1)
		err = l.Release(ctx)
		if err == nil || !strings.Contains(err.Error(), "expires by itself") {
			t.Fatalf("Release that cannot write: %v, want an error saying the lease expires by itself", err)
		}
		if n := failed(); n != 4 {
			t.Errorf("Release tried %d times, want 4", n)
		}
		s.failWrites(t, 0)
		clock = now.Add(bookmark.DefaultLeaseTTL + time.Second)
		if _, err := s.b.Lock(ctx, "b", bookmark.DefaultLeaseTTL, tick); err != nil {
			t.Errorf("Lock a lease after the unreleased one ended: %v", err)
		}
	})
}

// A process frozen while it holds a local folder's .cas.lock makes others
// fail after a bounded wait, naming it; cancelling stops the wait; the
// kernel frees the lock when the process is killed.
func TestFrozenStoreLockHolder(t *testing.T) {
	ctx := context.Background()
	s := newFileLockStore(t)
	spec := s.spec
	spec.Do = "caslock"
	c := startChild(t, spec)
	c.signal(t, syscall.SIGSTOP)

	const wait = time.Second
	bookmark.SetStoreLockWait(s.b, wait)
	// bounded runs fn, which must return within about limit.
	bounded := func(what string, limit time.Duration, fn func() error) error {
		t.Helper()
		began := time.Now()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			if took := time.Since(began); took > limit+2*time.Second {
				t.Errorf("%s took %s, want about %s", what, took, limit)
			}
			return err
		case <-time.After(limit + 10*time.Second):
			t.Fatalf("%s hangs behind a frozen holder of the .cas.lock", what)
			return nil
		}
	}
	pid := "pid " + strconv.Itoa(c.pid)
	err := bounded("Lock", wait, func() error { _, err := s.b.Lock(ctx, "next", bookmark.DefaultLeaseTTL, time.Now); return err })
	if !errors.Is(err, bookmark.ErrLocked) || !errors.Is(err, bookmark.ErrStoreLocked) || !strings.Contains(err.Error(), pid) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Lock: %v, want ErrLocked and ErrStoreLocked naming the stopped %s", err, pid)
	}
	err = bounded("Save", wait, func() error { _, err := s.b.Save(ctx, bookmark.New("db.t"), ""); return err })
	if !errors.Is(err, bookmark.ErrStoreLocked) {
		t.Errorf("Save: %v, want ErrStoreLocked", err)
	}
	var h bookmark.Holder
	var held bool
	err = bounded("Holder", wait, func() (err error) { h, held, err = s.b.Holder(ctx, time.Now()); return err })
	if err != nil || !held || h.State != bookmark.LockStuck || h.PID != c.pid {
		t.Errorf("Holder = %+v, %v, %v; want stuck, held by %s", h, held, err, pid)
	}

	// A cancelled run stops waiting at once (SIGTERM cancels the context).
	bookmark.SetStoreLockWait(s.b, time.Hour)
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = bounded("Lock with a context that ends", 200*time.Millisecond, func() error {
		_, err := s.b.Lock(cctx, "next", bookmark.DefaultLeaseTTL, time.Now)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock with a cancelled context: %v, want context.DeadlineExceeded", err)
	}

	// SIGKILL: the kernel drops the flock; nothing else holds it.
	c.signal(t, syscall.SIGKILL)
	c.wait()
	bookmark.SetStoreLockWait(s.b, 5*time.Second)
	began := time.Now()
	lease, err := s.b.Lock(ctx, "next", bookmark.DefaultLeaseTTL, time.Now)
	if err != nil {
		t.Fatalf("Lock after the holder of the .cas.lock was killed: %v", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Lock after the kill took %s", took)
	}
	if _, err := os.Stat(bookmark.StoreLockPath(s.b)); err != nil {
		t.Errorf("the .cas.lock must stay in place: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Keep renews the lease while the run lasts and stops the run, before the
// lease ends, when it cannot renew or another run took the table.
func TestKeep(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Second // renewed every 250ms

	t.Run("renewals keep the table", func(t *testing.T) {
		s := newFileLockStore(t)
		l, err := s.b.Lock(ctx, "a", ttl, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		kctx, stop := l.Keep(ctx, func(err error) { t.Logf("renewal failed: %v", err) })
		time.Sleep(5 * ttl / 2)
		if err := context.Cause(kctx); err != nil {
			t.Fatalf("run stopped: %v", err)
		}
		if _, err := s.b.Lock(ctx, "b", ttl, time.Now); !errors.Is(err, bookmark.ErrLocked) {
			t.Errorf("Lock 2.5 TTLs later: %v, want ErrLocked", err)
		}
		stop()
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("failed renewals stop the run before the lease ends", func(t *testing.T) {
		s := newFileLockStore(t)
		l, err := s.b.Lock(ctx, "a", ttl, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		s.failWrites(t, -1)
		var mu sync.Mutex
		warned := 0
		kctx, stop := l.Keep(ctx, func(error) { mu.Lock(); warned++; mu.Unlock() })
		defer stop()
		select {
		case <-kctx.Done():
		case <-time.After(5 * ttl):
			t.Fatal("the run went on without its lease")
		}
		if at, ends := time.Now(), l.Expires(); !at.Before(ends) {
			t.Errorf("stopped at %s, after the lease ended at %s", at.Format(time.StampMilli), ends.Format(time.StampMilli))
		}
		if err := context.Cause(kctx); !errors.Is(err, bookmark.ErrLostLock) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("cause = %v, want ErrLostLock with the renewal's error", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if warned < 2 {
			t.Errorf("%d failed renewals reported, want the retries before giving up", warned)
		}
	})

	t.Run("a lock taken by another run stops the run", func(t *testing.T) {
		s := newFileLockStore(t)
		l, err := s.b.Lock(ctx, "a", ttl, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		kctx, stop := l.Keep(ctx, nil)
		defer stop()
		var rec map[string]any
		_ = json.Unmarshal(s.read(t), &rec)
		rec["owner"] = "other"
		out, _ := json.Marshal(rec)
		s.write(t, out)
		select {
		case <-kctx.Done():
		case <-time.After(5 * ttl):
			t.Fatal("the run went on after another took its lock")
		}
		if err := context.Cause(kctx); !errors.Is(err, bookmark.ErrLostLock) {
			t.Errorf("cause = %v, want ErrLostLock", err)
		}
	})
}

// A renewal whose answer is lost, retried by the SDK into a 412, keeps the
// lease: the record is still this run's.
func TestS3RenewAfterLostAnswer(t *testing.T) {
	srv := testservers.MinIO(t)
	ft := testservers.NewFaultTransport(nil)
	b := bookmark.NewS3Store(s3.NewFromConfig(srv.Config(t, &http.Client{Transport: ft})), srv.NewBucket(t), "p", "db.t")
	ctx := context.Background()
	l, err := b.Lock(ctx, "a", time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ft.Add(testservers.Rule{Name: "lost", Match: testservers.MatchS3("PUT", `/lock\.json$`), Action: testservers.FailAfter, Times: 1})
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("Renew whose first answer was lost: %v", err)
	}
	if ft.Hits("lost") != 1 {
		t.Fatalf("the fault did not fire: %v", ft.Requests())
	}
	if err := l.Renew(ctx); err != nil {
		t.Errorf("the next Renew: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
	if h, held, err := b.Holder(ctx, time.Now()); err != nil || held || h.State != bookmark.LockReleased {
		t.Errorf("Holder after Release = %+v, %v, %v; want released", h, held, err)
	}
}

// A run that fails on a full disk still releases its lock (a local folder
// deletes the record, which needs no space), so once space is freed the
// next run starts at once instead of after the lease.
func TestFileLockReleaseOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("filling a disk needs a small tmpfs, and mounting one needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	ctx := context.Background()
	b := bookmark.NewFileStore(dir, "db.t")
	lease, err := b.Lock(ctx, "a", bookmark.DefaultLeaseTTL, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.Save(ctx, bookmark.New("db.t"), "")
	if err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	filler.Close()
	if _, err := b.Save(ctx, bookmark.New("db.t").Begin("run", nil, now), v); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Save on a full disk: %v, want ENOSPC (is the disk full?)", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release on a full disk: %v", err)
	}
	if h, held, err := b.Holder(ctx, time.Now()); err != nil || held {
		t.Errorf("Holder after Release = %+v, %v, %v; want free", h, held, err)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "b", bookmark.DefaultLeaseTTL, time.Now); err != nil {
		t.Errorf("Lock once space is freed: %v", err)
	}
}

// A table name that is not one plain path element never reaches another
// table's bookmark nor anything outside the bookmark folder: every
// operation refuses it and nothing is written.
func TestBadTableNamesStayOut(t *testing.T) {
	ctx := context.Background()
	bad := []string{"x.../../ns.other", "x.../../../../tmp/t", "../ns.other", "ns.other/..", "ns/other", "..", ".", "", `ns\other`, "ns.t\x00"}
	try := func(t *testing.T, b *bookmark.Bookmarks, name string) {
		t.Helper()
		if _, _, err := b.Load(ctx); !errors.Is(err, bookmark.ErrBadName) {
			t.Errorf("Load of %q: %v, want ErrBadName", name, err)
		}
		if _, err := b.Save(ctx, bookmark.Reset(name, now), ""); !errors.Is(err, bookmark.ErrBadName) {
			t.Errorf("Save of %q: %v, want ErrBadName", name, err)
		}
		if _, err := b.Lock(ctx, "a", bookmark.DefaultLeaseTTL, time.Now); !errors.Is(err, bookmark.ErrBadName) {
			t.Errorf("Lock of %q: %v, want ErrBadName", name, err)
		}
		if _, _, err := b.Holder(ctx, now); !errors.Is(err, bookmark.ErrBadName) {
			t.Errorf("Holder of %q: %v, want ErrBadName", name, err)
		}
		_ = b.Location()
	}

	t.Run("file", func(t *testing.T) {
		root := t.TempDir()
		base := filepath.Join(root, "a", "b", "c", "bookmarks") // deep enough for ../../../../tmp
		other := bookmark.NewFileStore(base, "ns.other")
		v, err := other.Save(ctx, bookmark.New("ns.other").Begin("kept", nil, now).Finish(now), "")
		if err != nil {
			t.Fatal(err)
		}
		tree := func() map[string]string {
			files := map[string]string{}
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					data, _ := os.ReadFile(p)
					files[p] = string(data)
				} else if err == nil {
					files[p+"/"] = ""
				}
				return nil
			})
			return files
		}
		before := tree()
		for _, name := range bad {
			try(t, bookmark.NewFileStore(base, name), name)
		}
		if after := tree(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("files changed: before %v\nafter %v", keys(before), keys(after))
		}
		if st, v2, err := other.Load(ctx); err != nil || v2 != v || st.Token != "kept" {
			t.Errorf("ns.other's bookmark = %+v, %q, %v; want it unchanged", st, v2, err)
		}
	})

	t.Run("s3", func(t *testing.T) {
		srv := testservers.MinIO(t)
		client := s3.NewFromConfig(srv.Config(t, nil))
		bucket := srv.NewBucket(t)
		prefix := "warehouse/a/b/_icemerge"
		other := bookmark.NewS3Store(client, bucket, prefix, "ns.other")
		if _, err := other.Save(ctx, bookmark.New("ns.other").Begin("kept", nil, now).Finish(now), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Lock(ctx, "other-run", bookmark.DefaultLeaseTTL, time.Now); err != nil {
			t.Fatal(err)
		}
		list := func() map[string]string {
			out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
			if err != nil {
				t.Fatal(err)
			}
			objs := map[string]string{}
			for _, o := range out.Contents {
				objs[*o.Key] = *o.ETag
			}
			return objs
		}
		before := list()
		for _, name := range bad {
			try(t, bookmark.NewS3Store(client, bucket, prefix, name), name)
		}
		if after := list(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("objects changed: before %v\nafter %v", before, after)
		}
	})

	t.Run("the path checks", func(t *testing.T) {
		base := filepath.Join(t.TempDir(), "bm")
		if p, err := bookmark.JoinInside(base, "ns.t/lock.json"); err != nil || p != filepath.Join(base, "ns.t", "lock.json") {
			t.Errorf("JoinInside = %q, %v", p, err)
		}
		if k, err := bookmark.KeyInside("", "ns.t/lock.json"); err != nil || k != "ns.t/lock.json" {
			t.Errorf("KeyInside at the root = %q, %v", k, err)
		}
		if k, err := bookmark.KeyInside("w/_icemerge/", "ns.t/lock.json"); err != nil || k != "w/_icemerge/ns.t/lock.json" {
			t.Errorf("KeyInside = %q, %v", k, err)
		}
		for _, name := range []string{"../x", "ns.t/../../x", "..", "", "ns.t/", "/etc/passwd", "ns.t/./lock.json"} {
			if p, err := bookmark.JoinInside(base, name); !errors.Is(err, bookmark.ErrBadName) {
				t.Errorf("JoinInside(%q) = %q, %v; want ErrBadName", name, p, err)
			}
			if k, err := bookmark.KeyInside("w/_icemerge", name); !errors.Is(err, bookmark.ErrBadName) {
				t.Errorf("KeyInside(%q) = %q, %v; want ErrBadName", name, k, err)
			}
		}
	})
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
