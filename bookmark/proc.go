package bookmark

import (
	"fmt"
	"os"
	"sync"
)

// process identifies a process well enough that another process on the
// same machine can tell whether it still runs: a lock whose holder is gone
// is taken over at once instead of after its lease (restic's stale-lock
// rule, internal/repository/lock_file.go, made safe against reused pids and
// containers that share a hostname).
type process struct {
	Host string `json:"host"`
	// Boot is the kernel's boot id: after a reboot the same pid names
	// another process. Empty where the system does not tell it.
	Boot string `json:"boot,omitempty"`
	// PIDNS is the pid namespace: two containers may share a hostname and
	// a kernel while their pids mean different processes.
	PIDNS string `json:"pidns,omitempty"`
	PID   int    `json:"pid"`
	// Start is the process's start time (clock ticks after boot on Linux):
	// a pid reused by a later process has another.
	Start string `json:"start,omitempty"`
}

func (p process) String() string { return fmt.Sprintf("pid %d on %s", p.PID, p.Host) }

// sameMachine says whether pids in p mean what they mean here. A record
// with no boot id (another system, an older icemerge) counts as elsewhere
// unless this machine has none either.
func (p process) sameMachine(me process) bool {
	return p.Host != "" && p.Host == me.Host && p.Boot == me.Boot && p.PIDNS == me.PIDNS
}

// liveness is what can be known about a lock holder's process.
type liveness int

const (
	unknown liveness = iota // on another machine: only its lease tells
	alive
	gone // exited, or its pid now names another process
)

// livenessOf looks p up, if it ran on this machine.
func livenessOf(p *process, me process) liveness {
	if p == nil || p.PID <= 0 || !p.sameMachine(me) {
		return unknown
	}
	st, err := lookup(p.PID)
	switch {
	case err != nil:
		return unknown
	case !st.exists, st.zombie:
		return gone
	case p.Start != "" && st.start != "" && st.start != p.Start:
		return gone
	}
	return alive
}

// procState is what the system says about a pid.
type procState struct {
	exists bool
	zombie bool   // exited, not yet reaped by its parent
	start  string // start time, "" when unknown
	state  string // a word for a person: "stopped", "in uninterruptible I/O", ...
}

// thisProcess is the identity of the running process, looked up once.
var thisProcess = sync.OnceValue(func() process {
	host, _ := os.Hostname()
	p := process{Host: host, PID: os.Getpid(), Boot: bootID(), PIDNS: pidNamespace()}
	if st, err := lookup(p.PID); err == nil {
		p.Start = st.start
	}
	return p
})
