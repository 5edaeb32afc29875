package main

import (
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

const icebergModule = "github.com/apache/iceberg-go"

// substraitInit is GODEBUG=inittrace=1's line for iceberg-go's
// table/substrait package.
var substraitInit = regexp.MustCompile(`(?m)^init github\.com/apache/iceberg-go/table/substrait @(\S+) ms, (\S+) ms clock, (\d+) bytes, (\d+) allocs$`)

// The Makefile builds with iceberg-go patched (third_party/iceberg-go) so
// that table/substrait loads Substrait's extension catalogue when a filter
// is first converted, not in its init: unpatched, that init is about 0.1 s
// and 534k allocations of every start, half the no-op run's budget. This
// binary's own start (the same packages as icemerge) is measured. An
// unpatched build (a plain go test) skips, or fails with CI=true; so does
// a patched one whose init still allocates, and an iceberg-go that is lazy
// of its own passes unpatched (then the patch can go: see its README).
func TestIcebergSubstraitInitIsLazy(t *testing.T) {
	replaced := "not replaced"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == icebergModule && d.Replace != nil {
				replaced = "replaced by " + d.Replace.Path
			}
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	godebug := "inittrace=1"
	if v := os.Getenv("GODEBUG"); v != "" {
		godebug = v + "," + godebug
	}
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s with GODEBUG=inittrace=1: %v\n%s", os.Args[0], err, out)
	}
	m := substraitInit.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no init line of iceberg-go's table/substrait in the output of GODEBUG=inittrace=1:\n%s", out)
	}
	allocs, _ := strconv.Atoi(string(m[4]))
	t.Logf("%s (%s): table/substrait init %s ms clock, %s bytes, %d allocs", icebergModule, replaced, m[2], m[3], allocs)
	const most = 10_000
	if allocs < most {
		return
	}
	switch {
	case strings.HasPrefix(replaced, "replaced"):
		t.Errorf("iceberg-go is %s, yet table/substrait's init made %d allocations (want < %d): the copy is not patched; rm -rf build and run make again",
			replaced, allocs, most)
	case os.Getenv("CI") == "true":
		t.Errorf("iceberg-go is not the patched copy: table/substrait's init made %d allocations (want < %d). make test builds with the patched copy (third_party/iceberg-go/README.md)",
			allocs, most)
	default:
		t.Skipf("iceberg-go is not the patched copy (table/substrait's init: %d allocations): run make test, which builds with it (third_party/iceberg-go/README.md)", allocs)
	}
}
