package clikit

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"

	"github.com/alecthomas/kong"
)

// EnvResolver reads a flag's ICEMERGE_* variable through env, so a test or
// the Lambda handler can pass the environment it means.
func EnvResolver(env func(string) (string, bool)) kong.ResolverFunc {
	return func(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
		for _, name := range f.Envs {
			if v, ok := env(name); ok {
				return v, nil
			}
		}
		return nil, nil
	}
}

// DoubleDash turns -flag into --flag for the long flags of the command
// line: icemerge's flags were single-dash once, and scripts may still say
// -table.
func DoubleDash(k *kong.Kong, args []string) []string {
	long := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			long[f.Name] = true
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(k.Model.Node)
	out := make([]string, len(args))
	for i, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && long[name] {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// Version is the module's version and the commit it was built from
// (commit: the build's stamp when it has no VCS information).
func Version(commit string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	rev, dirty := commit, ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if hash, rest, _ := strings.Cut(rev, "+"); len(hash) > 12 {
		rev = hash[:12]
		if rest != "" {
			rev += "+" + rest
		}
	}
	if rev != "" {
		v += " (" + rev + dirty + ")"
	}
	return v + " " + bi.GoVersion
}

// IsTerminal reports whether w is a terminal (a character device), where
// people read logs; pipes, files and log collectors get JSON.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// NewLogger is a logger at level (debug, info, warn or error) writing JSON
// lines, or text, to out.
func NewLogger(out io.Writer, level string, jsonLogs bool) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if jsonLogs {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// OnAWSCompute reports whether the process runs on AWS Lambda or as an ECS
// task (Fargate or EC2), by the variables their agents set.
func OnAWSCompute(env func(string) (string, bool)) bool {
	for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI"} {
		if v, ok := env(k); ok && v != "" {
			return true
		}
	}
	return false
}

// TuneGC sets the collector's target growth (GOGC, percent) and, when
// limit > 0, a soft memory limit, unless GOGC or GOMEMLIMIT are set in the
// environment, which win. It returns the limit it set, which runs may
// raise for a while (nil: none set).
func TuneGC(env func(string) (string, bool), percent int, limit int64) *SoftHeap {
	if _, ok := env("GOGC"); !ok {
		debug.SetGCPercent(percent)
	}
	if _, ok := env("GOMEMLIMIT"); !ok && limit > 0 {
		debug.SetMemoryLimit(limit)
		return &SoftHeap{base: limit}
	}
	return nil
}

// SoftHeap is the process's soft memory limit (debug.SetMemoryLimit):
// its base, raised by what runs reserve (icemerge.HeapLimit).
type SoftHeap struct {
	mu       sync.Mutex
	base     int64
	reserved int64
}

// Reserve raises the limit by n bytes until release is called (once).
func (h *SoftHeap) Reserve(n int64) (release func()) {
	h.add(n)
	var once sync.Once
	return func() { once.Do(func() { h.add(-n) }) }
}

func (h *SoftHeap) add(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reserved += n
	debug.SetMemoryLimit(h.base + h.reserved)
}

// Limit is the limit now.
func (h *SoftHeap) Limit() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.base + h.reserved
}

// WriteEMF writes a table's EMF line to w (nil: metrics off) in one write,
// so the line is one log event of its own even beside the log's lines. A
// line that cannot be built or written is logged, never fails the command.
func WriteEMF(w io.Writer, log *slog.Logger, table string, line []byte, err error) {
	if w == nil {
		return
	}
	if err == nil {
		_, err = w.Write(append(line, '\n'))
	}
	if err != nil {
		log.Warn("writing the run's metrics failed", "table", table, "error", err)
	}
}

// Profile writes a CPU profile to cpu and a heap profile to heap ("" for
// none) at the end (the returned function), for performance work: icemerge
// takes them from ICEMERGE_CPU_PROFILE and ICEMERGE_HEAP_PROFILE
// (docs/development.md). Problems are written to stderr.
func Profile(cpu, heap string, stderr io.Writer) func() {
	var done []func()
	if path := cpu; path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintf(stderr, "icemerge: ICEMERGE_CPU_PROFILE: %v\n", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "icemerge: ICEMERGE_CPU_PROFILE: %v\n", err)
		} else {
			done = append(done, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := heap; path != "" {
		done = append(done, func() {
			f, err := os.Create(path)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(stderr, "icemerge: ICEMERGE_HEAP_PROFILE: %v\n", err)
			}
		})
	}
	return func() {
		for _, f := range done {
			f()
		}
	}
}
