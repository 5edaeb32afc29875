package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/testkit/naive"
)

// tableReport is one table of icemerge's `--report` JSON: the library's
// own type.
type tableReport = icemerge.TableReport

// duckdbReport is what `icemerge-bench duckdb -report` writes.
type duckdbReport struct {
	Version      string             `json:"duckdb_version"`
	Files        int                `json:"files"`
	BytesRead    int64              `json:"bytes_read"`  // the source files
	TableBytes   int64              `json:"table_bytes"` // the table file it read (merge)
	RowsWritten  int64              `json:"rows_written"`
	BytesWritten int64              `json:"bytes_written"`
	SQL          string             `json:"sql"`
	Durations    map[string]float64 `json:"durations"`
}

// measure is one child process: its wall time and peak RSS, and what it
// reported.
type measure struct {
	Wall float64 `json:"wall_s"`
	// CPU is the child's user plus system time: on a shared machine it
	// varies less with other work than the wall time does.
	CPU float64 `json:"cpu_s"`
	// LoadAvg is the machine's load average when the run started.
	LoadAvg  string  `json:"loadavg,omitempty"`
	RSSMiB   float64 `json:"peak_rss_mib"`
	Exit     int     `json:"exit_code"`
	TimedOut bool    `json:"timed_out,omitempty"`
	Timeout  float64 `json:"timeout_s,omitempty"`
	// Report is icemerge's --report table (nil when the binary has no
	// --report yet, or the run wrote none).
	Report    *tableReport    `json:"report,omitempty"`
	RawReport json.RawMessage `json:"raw_report,omitempty"`
	Naive     *naive.Report   `json:"naive_report,omitempty"`
	DuckDB    *duckdbReport   `json:"duckdb_report,omitempty"`
	// TableRows are the table's live rows after the run: icemerge's and the
	// naive merge's from the snapshot summary, DuckDB's as COPY counted
	// them. nil: not known (the run failed).
	TableRows *int64 `json:"table_rows,omitempty"`
	// AddedBytes is what the run added under the warehouse folder, measured
	// on disk (local runs only): data, deletes, metadata and bookmark.
	AddedBytes int64  `json:"warehouse_bytes_added,omitempty"`
	Stderr     string `json:"stderr,omitempty"` // its tail, when the run failed
	// RSSLimitHit: killed because its RSS passed -rss-limit.
	RSSLimitHit bool `json:"rss_limit_hit,omitempty"`
}

func (m measure) ok() bool { return m.Exit == 0 && !m.TimedOut && !m.RSSLimitHit }

// runChild runs bin with args as a subprocess and measures its wall time
// and peak RSS. It goes through `icemerge-bench measure-child`, a small
// process that starts bin and reports bin's rusage: Go starts children with
// clone(CLONE_VM), and Linux folds the high-water RSS of the memory the
// child shared until exec into the child's Maxrss, so a child of this (big)
// process would report at least this process's RSS. The helper is small,
// so bin's Maxrss (KiB on Linux) is its own, plus at most the helper's few
// MiB.
func (b *bench) runChild(ctx context.Context, timeout time.Duration, env []string, bin string, args ...string) measure {
	cctx := ctx
	var cancel context.CancelFunc = func() {}
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	res, err := os.CreateTemp("", "icemerge-bench-measure-*.json")
	if err != nil {
		return measure{Exit: -1, Stderr: err.Error()}
	}
	res.Close()
	defer os.Remove(res.Name())
	cmd := exec.CommandContext(cctx, b.self, append([]string{"measure-child", res.Name(), fmt.Sprint(b.o.RSSLimit), bin}, args...)...)
	cmd.Env = env
	// Its own process group, so a timeout or ^C kills bin too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stderr tailBuffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	load := loadAvg()
	start := time.Now()
	runErr := cmd.Run()
	m := measure{Wall: time.Since(start).Seconds(), Exit: -1, LoadAvg: load}
	var r childResult
	if data, err := os.ReadFile(res.Name()); err == nil && json.Unmarshal(data, &r) == nil && r.Wall > 0 {
		m.Wall, m.CPU, m.RSSMiB, m.Exit, m.RSSLimitHit = r.Wall, r.CPU, float64(r.MaxRSSKiB)/1024, r.Exit, r.RSSLimitHit
	}
	if timeout > 0 && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		m.TimedOut, m.Timeout = true, timeout.Seconds()
	}
	if m.RSSLimitHit {
		m.Stderr = fmt.Sprintf("killed: its RSS passed -rss-limit %d MiB", b.o.RSSLimit)
	} else if m.Exit != 0 || m.TimedOut {
		m.Stderr = strings.TrimSpace(stderr.String())
		if m.Stderr == "" && runErr != nil {
			m.Stderr = runErr.Error()
		}
	}
	return m
}

// childResult is what measure-child reports of its child.
type childResult struct {
	Wall      float64 `json:"wall_s"`
	CPU       float64 `json:"cpu_s"` // user + system
	MaxRSSKiB int64   `json:"maxrss_kib"`
	Exit      int     `json:"exit_code"`
	// RSSLimitHit: killed because its RSS passed the limit.
	RSSLimitHit bool `json:"rss_limit_hit,omitempty"`
}

// measureChildMain is `icemerge-bench measure-child RESULT LIMIT BIN
// ARGS...`: it runs BIN (stdout and stderr passed through) and writes its
// wall time, peak RSS and exit code to RESULT. LIMIT (MiB, 0: none) kills
// BIN when its RSS passes it, so that a run cannot take a shared machine's
// memory.
func measureChildMain(args []string) error {
	if len(args) < 3 {
		return errors.New("usage: measure-child RESULT LIMIT_MIB BIN [ARGS...]")
	}
	limit, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		return fmt.Errorf("limit %q: %w", args[1], err)
	}
	cmd := exec.Command(args[2], args[3:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	var hit atomic.Bool
	done := make(chan struct{})
	if limit > 0 {
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					if rssKiB(cmd.Process.Pid) > limit<<10 {
						hit.Store(true)
						cmd.Process.Kill()
						return
					}
				}
			}
		}()
	}
	err = cmd.Wait()
	close(done)
	r := childResult{Wall: time.Since(start).Seconds(), RSSLimitHit: hit.Load()}
	if cmd.ProcessState == nil {
		return err
	}
	r.Exit = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSSKiB = ru.Maxrss
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(args[0], data, 0o644)
}

// rssKiB is a process's resident set (VmRSS), 0 when unknown.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// tailBuffer keeps the last 8 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-8<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// readReport reads icemerge's --report file into m.
func readReport(m *measure, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var doc struct {
		Tables []tableReport `json:"tables"`
	}
	if json.Unmarshal(b, &doc) != nil || len(doc.Tables) == 0 {
		return
	}
	m.Report, m.RawReport = &doc.Tables[0], json.RawMessage(bytes.TrimSpace(b))
}

// hasReportFlag reports whether the icemerge binary knows --report (it is
// being added; without it the bench shows wall time and RSS only).
func hasReportFlag(bin string) bool {
	out, _ := exec.Command(bin, "run", "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-report"))
}

// Restoring a table: the files Iceberg writes are never modified in place
// (new names every commit), so a copy of the table hardlinks them; the
// SQLite catalog and the bookmark are rewritten by a run and are copied.
func immutable(rel string) bool {
	if strings.HasPrefix(rel, "_icemerge"+string(filepath.Separator)) {
		return false
	}
	return strings.HasSuffix(rel, ".parquet") || strings.HasSuffix(rel, ".avro") || strings.HasSuffix(rel, ".metadata.json")
}

// cloneTree makes dst a copy of src: immutable files hardlinked, the rest
// copied.
func cloneTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case !d.Type().IsRegular():
			return nil
		case immutable(rel):
			return os.Link(p, to)
		}
		return copyFile(p, to)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// linkFiles makes dir hold hardlinks to files (icemerge lists regular
// files only, so symlinks would not do).
func linkFiles(dir string, files []string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Link(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			return fmt.Errorf("linking %s into %s: %w", f, dir, err)
		}
	}
	return nil
}
