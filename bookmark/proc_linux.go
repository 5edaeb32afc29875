package bookmark

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// lookup reads /proc/<pid>/stat: "pid (comm) state ppid ...", starttime
// being field 22. comm may hold spaces and parentheses, so fields are
// counted from the last ')'.
func lookup(pid int) (procState, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		// /proc mounted with hidepid hides other users' processes: ask
		// the kernel before calling one gone. EPERM means it exists.
		switch err := syscall.Kill(pid, 0); {
		case errors.Is(err, syscall.ESRCH):
			return procState{}, nil
		case err == nil, errors.Is(err, syscall.EPERM):
			return procState{exists: true}, nil
		default:
			return procState{}, err
		}
	}
	if err != nil {
		return procState{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procState{}, fmt.Errorf("/proc/%d/stat: unexpected content", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return procState{}, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 20", pid, len(f))
	}
	st := procState{exists: true, start: f[19]}
	switch f[0] {
	case "Z", "X", "x":
		st.zombie, st.state = true, "exited"
	case "T":
		st.state = "stopped (SIGSTOP: resume it with kill -CONT, or kill it)"
	case "t":
		st.state = "stopped by a debugger"
	case "D":
		st.state = "waiting on I/O (a hung disk or network file system?)"
	default:
		st.state = "running"
	}
	return st, nil
}
