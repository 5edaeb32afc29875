//go:build !linux

package bookmark

import (
	"errors"
	"syscall"
)

// Without /proc there is no boot id, no pid namespace and no start time:
// a reused pid then counts as alive, and its lock is taken over only when
// its lease expires, which is safe.
func bootID() string       { return "" }
func pidNamespace() string { return "" }

func lookup(pid int) (procState, error) {
	err := syscall.Kill(pid, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EPERM):
		return procState{exists: true, state: "running"}, nil
	case errors.Is(err, syscall.ESRCH):
		return procState{}, nil
	}
	return procState{}, err
}
