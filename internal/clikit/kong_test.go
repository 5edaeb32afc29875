package clikit

import (
	"runtime/debug"
	"testing"
)

// A run's reservation raises the soft memory limit until it is released,
// once; reservations of runs at once add up.
func TestSoftHeapReserve(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	h := TuneGC(func(string) (string, bool) { return "", false }, 100, 512<<20)
	if h == nil || debug.SetMemoryLimit(-1) != 512<<20 {
		t.Fatalf("TuneGC set limit %d, heap %v", debug.SetMemoryLimit(-1), h)
	}
	r1 := h.Reserve(100 << 20)
	r2 := h.Reserve(50 << 20)
	if got := debug.SetMemoryLimit(-1); got != 662<<20 || h.Limit() != got {
		t.Errorf("two reservations: limit %d, want %d", got, 662<<20)
	}
	r1()
	r1()
	if got := debug.SetMemoryLimit(-1); got != 562<<20 {
		t.Errorf("one released (twice): limit %d, want %d", got, 562<<20)
	}
	r2()
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Errorf("all released: limit %d, want the base", got)
	}
	if h := TuneGC(func(k string) (string, bool) { return "1GiB", k == "GOMEMLIMIT" }, 100, 512<<20); h != nil {
		t.Errorf("GOMEMLIMIT set: TuneGC returned a limit to raise")
	}
}
