package clikit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icemerge/icemerge/internal/source"
)

// What a bar says: the phase, rows per second and an ETA; while a file is
// read, before any file is done, its bytes.
func TestProgressText(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := newTracker(func() time.Time { return now })
	// The first large file, being read: no step reported yet.
	f := tr.open("db.users", "LOAD00000001.parquet")
	f.setSize(100 << 20)
	now = now.Add(2 * time.Second)
	f.add(50 << 20)
	if got, want := tr.view("db.users").text(), "reading · LOAD00000001.parquet 50.0 MiB/100.0 MiB · 50.0 MiB read, 25.0 MiB/s"; got != want {
		t.Errorf("while the first file is read:\n got %q\nwant %q", got, want)
	}
	f.add(50 << 20)
	f.close()
	tr.Step("db.users", "reading files", 1, 2)
	v := tr.view("db.users")
	if v.fraction != 0.5 {
		t.Errorf("one of two files read: fraction %v", v.fraction)
	}
	tr.Step("db.users", "writing rows", 0, 1_000_000)
	now = now.Add(5 * time.Second)
	tr.Step("db.users", "writing rows", 250_000, 1_000_000)
	if got, want := tr.view("db.users").text(), "writing rows 250,000/1,000,000 · 50,000 rows/s · ETA 15s"; got != want {
		t.Errorf("writing:\n got %q\nwant %q", got, want)
	}
	now = now.Add(time.Second)
	tr.Done("db.users")
	if got := tr.view("db.users").text(); got != "done in 8s (100.0 MiB read)" {
		t.Errorf("done: %q", got)
	}
}

// fakeConsole is a terminal for mpb: frames go to out, each starting by
// moving up over the last one.
type fakeConsole struct {
	bytes.Buffer
	out bytes.Buffer
}

func (c *fakeConsole) IsTerminal() bool                            { return true }
func (c *fakeConsole) GetTermSize() (width, height int, err error) { return 120, 40, nil }
func (c *fakeConsole) Flush(lines int) error {
	c.out.Write(c.Bytes())
	c.Reset()
	if lines > 0 {
		fmt.Fprintf(&c.Buffer, "\x1b[%dA\x1b[J", lines)
	}
	return nil
}

// Two tables draw two bars; a log line written meanwhile is printed whole,
// above them, never into a bar's line.
func TestBarsKeepLogLinesAbove(t *testing.T) {
	var stderr bytes.Buffer
	console := &fakeConsole{}
	logs := NewSwitchWriter(&stderr)
	log := slog.New(slog.NewTextHandler(logs, nil))
	p := newBarProgress(&stderr, logs, console)
	p.Step("db.users", "reading files", 1, 4)
	p.Step("db.posts", "writing rows", 10, 100)
	time.Sleep(400 * time.Millisecond) // a few frames
	log.Info("committed", "snapshot", 42)
	time.Sleep(400 * time.Millisecond)
	p.Done("db.users")
	p.Done("db.posts")
	p.Close()
	log.Info("after the bars")
	out := console.out.String()
	// The line starts after the bars were cleared (or a line's end), and
	// ends with its own newline.
	if !regexp.MustCompile(`(\x1b\[J|\n)time=\S+ level=INFO msg=committed snapshot=42\n`).MatchString(out) {
		t.Errorf("the log line is not a whole line above the bars:\n%q", out)
	}
	last := out[strings.LastIndex(out, "\x1b[J"):]
	for _, want := range []string{"db.users", "db.posts", "done in"} {
		if !strings.Contains(last, want) {
			t.Errorf("the last frame lacks %q:\n%s", want, last)
		}
	}
	if strings.Count(last, "\n") != 2 {
		t.Errorf("the last frame is not one line per table:\n%q", last)
	}
	if !strings.Contains(stderr.String(), "msg=\"after the bars\"") {
		t.Errorf("after Close the log goes to stderr again: %q", stderr.String())
	}
	if strings.Contains(stderr.String(), "committed") {
		t.Errorf("a log line went around the bars: %q", stderr.String())
	}
}

// JSON logs never get bars, on a terminal or not; text logs on a terminal
// do; elsewhere progress is logged.
func TestProgressChoice(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		term, json, bars bool
	}{{true, true, false}, {true, false, true}, {false, false, false}, {false, true, false}} {
		p := NewProgress(io.Discard, c.term, c.json, NewSwitchWriter(io.Discard), log)
		_, bars := p.(*barProgress)
		p.Close()
		if bars != c.bars {
			t.Errorf("terminal %v, JSON logs %v: bars %v", c.term, c.json, bars)
		}
	}
}

// slowSource serves one file slowly, as a large S3 object arrives.
type slowSource struct{ path string }

func (s slowSource) List(context.Context, string, func(source.Object) error) error { return nil }
func (s slowSource) String() string                                                { return s.path }
func (s slowSource) Open(_ context.Context, key string, _ source.Version) (source.Reader, error) {
	f, err := os.Open(filepath.Join(s.path, key))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return localFile{f, st.Size()}, nil
}

// localFile is a local source file, as Open returns it (read, so hashed).
type localFile struct {
	*os.File
	size int64
}

func (f localFile) Version() source.Version { return source.Version{Size: f.size, SHA256: "(hashed)"} }

// Not on a terminal, a long run logs its progress at least every interval,
// also while its first file is read and no step is reported.
func TestProgressLoggedOffTerminal(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(b) }), nil))
	p := newLogProgress(log, 30*time.Millisecond)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "LOAD00000001.parquet"), make([]byte, 1<<20), 0o644)
	src := p.Source("db.users", slowSource{dir})
	r, err := src.Open(context.Background(), "LOAD00000001.parquet", source.Version{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < 1<<20; off += int64(len(buf)) {
		r.ReadAt(buf, off)
		time.Sleep(10 * time.Millisecond) // 16 reads: about 160 ms
	}
	r.Close()
	p.Close()
	mu.Lock()
	defer mu.Unlock()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) < 3 {
		t.Fatalf("%d progress lines in about 160 ms at one per 30 ms:\n%s", len(lines), logs.String())
	}
	last := lines[len(lines)-1]
	if last["msg"] != "progress" || last["table"] != "db.users" || last["bytes_read"].(float64) <= 0 || !strings.Contains(last["reading"].(string), "LOAD00000001.parquet") {
		t.Errorf("last progress line: %v", last)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
