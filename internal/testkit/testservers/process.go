package testservers

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The servers are shared by every test of a test process, so they live in
// package state: starting MinIO or moto per test would cost seconds each.
// Main stops them; Pdeathsig stops them when the process dies without Main.
var (
	procMu     sync.Mutex
	procs      []*process
	mainActive atomic.Bool
	hinted     atomic.Bool
)

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
	tailBytes    = 64 << 10
)

// Main runs the tests of a package that uses the servers, then stops every
// server started (SIGTERM, then SIGKILL after 10 s) and removes their
// temporary directories. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testservers.Main(m) }
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	stopAll()
	os.Exit(code)
}

// process is one server child process with its log and temporary directory.
type process struct {
	name string
	cmd  *exec.Cmd
	dir  string // removed after the process ends
	log  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// start starts argv[0] with args in its own process group, killed with
// SIGKILL if the thread that started it dies (Pdeathsig is per thread, so
// the thread is locked and kept for as long as the child lives).
func start(name, dir string, env []string, argv ...string) (*process, error) {
	return startAs(name, dir, env, nil, argv...)
}

// startAs is start with the child running as another user (cred), as
// PostgreSQL must when the tests run as root.
func startAs(name, dir string, env []string, cred *syscall.Credential, argv ...string) (*process, error) {
	p := &process{name: name, dir: dir, log: &tailBuffer{max: tailBytes}, done: make(chan struct{})}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	cmd.WaitDelay = 2 * time.Second // a stray grandchild holding the log pipe
	p.cmd = cmd

	started := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine ends the thread goes too,
		// which is fine because the child has exited by then.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	procMu.Lock()
	procs = append(procs, p)
	procMu.Unlock()
	return p, nil
}

// waitReady polls url until ok accepts the response, the process exits or
// the timeout passes.
func (p *process) waitReady(url string, ok func(*http.Response) bool) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if ok(resp) {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v)", p.name, p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after %v", p.name, url, startTimeout)
		}
	}
}

// stop ends the process group (SIGTERM, then SIGKILL) and removes the
// temporary directory.
func (p *process) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM while the leader exited.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

// abandon stops a process that failed to start and forgets it.
func (p *process) abandon() {
	p.stop()
	procMu.Lock()
	defer procMu.Unlock()
	for i, q := range procs {
		if q == p {
			procs = append(procs[:i], procs[i+1:]...)
			break
		}
	}
}

func stopAll() {
	procMu.Lock()
	ps := procs
	procs = nil
	procMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// startError is a failure to start a server that retrying with other
// ports will not cure.
type startError struct {
	msg string
}

// startFailure classifies a server that did not become ready: retryable
// when its log says a port was taken, final otherwise.
func startFailure(p *process, err error) error {
	tail := p.log.tail(40)
	err = fmt.Errorf("%w; log tail:\n%s", err, tail)
	// MinIO: "Specified port is already in use"; moto (werkzeug): "Address
	// already in use".
	if strings.Contains(strings.ToLower(tail), "already in use") {
		return err
	}
	return &startError{msg: err.Error()}
}

func (e *startError) Error() string { return e.msg }

// unavailable fails the test in CI (CI=true), where a missing server is a
// broken setup, and skips it elsewhere.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v", err)
	}
	t.Skipf("%v", err)
}

// hintMain is logged when a server starts without Main, which leaves its
// temporary directory behind.
func hintMain(t testing.TB) {
	t.Helper()
	if !mainActive.Load() && !hinted.Swap(true) {
		t.Log("testservers: TestMain does not call testservers.Main; servers die with the process but leave their temporary directories")
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. Another process
// may take one before the server binds it; callers retry with new ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// serverDir makes the temporary directory of a server, recording the test
// process's pid in it, and first removes the directories that killed test
// processes left behind.
func serverDir(kind string) (string, error) {
	pattern := "icemerge-" + kind + "-"
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), pattern+"*"))
	for _, dir := range old {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // being created, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

const ownerFile = "owner.pid"

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// tail returns the last n lines.
func (b *tailBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(bytes.TrimSpace(b.buf)) == 0 {
		return "(no output)"
	}
	lines := bytes.Split(bytes.TrimRight(b.buf, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// startWithRetry starts a server up to three times with fresh ports, since
// a port picked by freePorts can be taken before the server binds it.
func startWithRetry(name string, launch func() (*process, error)) (*process, time.Duration, error) {
	begin := time.Now()
	var errs []string
	for range 3 {
		p, err := launch()
		if err == nil {
			return p, time.Since(begin), nil
		}
		errs = append(errs, err.Error())
		var se *startError
		if errors.As(err, &se) {
			break // not a port taken meanwhile: trying again will not help
		}
	}
	return nil, 0, &startError{msg: fmt.Sprintf("%s failed to start: %s", name, strings.Join(errs, "\n---\n"))}
}
