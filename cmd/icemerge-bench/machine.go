package main

import (
	"bufio"
	"debug/buildinfo"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// machine is where the figures were taken.
type machine struct {
	Host       string `json:"host"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel,omitempty"`
	CPU        string `json:"cpu,omitempty"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	MemTotal   string `json:"mem_total,omitempty"`
	GoVersion  string `json:"go_version"`
	// The icemerge binary measured: its Go version and the VCS stamp Go
	// put in it (revision, and whether the tree had uncommitted edits).
	IcemergeGo       string `json:"icemerge_go_version,omitempty"`
	IcemergeRevision string `json:"icemerge_vcs_revision,omitempty"`
	IcemergeModified bool   `json:"icemerge_vcs_modified,omitempty"`
	GitCommit        string `json:"git_commit,omitempty"`
	GitDirty         bool   `json:"git_uncommitted_edits,omitempty"` // tracked files differ from the commit
	// The load average at the start and end: other work on the machine
	// shows in the figures.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
}

func describeMachine(icemerge string) machine {
	m := machine{OS: runtime.GOOS + "/" + runtime.GOARCH, Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	if bi, err := buildinfo.ReadFile(icemerge); err == nil {
		m.IcemergeGo = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				m.IcemergeRevision = s.Value
			case "vcs.modified":
				m.IcemergeModified = s.Value == "true"
			}
		}
	}
	// Read-only: rev-parse changes nothing in the repository.
	if out, err := exec.Command("git", "-C", filepath.Dir(icemerge), "rev-parse", "HEAD").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
		// diff-index only reads (it does not refresh the index).
		m.GitDirty = exec.Command("git", "-C", filepath.Dir(icemerge), "diff-index", "--quiet", "HEAD", "--").Run() != nil
	}
	m.LoadAvgStart = loadAvg()
	return m
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
