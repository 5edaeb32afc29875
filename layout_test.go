package icemerge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The layout is the architecture, and these rules keep it so (checked on
// the packages' non-test imports):
//   - merge holds the semantics: it depends on no AWS, no iceberg-go, no
//     catalog, bookmark, source or root package code, even indirectly;
//   - no product package imports the test scaffolding (internal/testkit),
//     which the tests and the bench (cmd/icemerge-bench) share;
//   - no package under cmd/ imports iceberg-go: package catalog owns it.
func TestImportRules(t *testing.T) {
	pkgs := goList(t, "./...")
	const mod = "github.com/icemerge/icemerge"
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for _, p := range violations(pkgs, mod) {
		t.Error(p)
	}
}

// A forbidden import is caught: each rule, given a package that breaks it.
func TestImportRulesCatchViolations(t *testing.T) {
	const mod = "github.com/icemerge/icemerge"
	for _, p := range []listedPackage{
		{ImportPath: mod + "/merge", Deps: []string{"github.com/aws/aws-sdk-go-v2/service/s3"}},
		{ImportPath: mod + "/merge", Deps: []string{mod + "/bookmark"}},
		{ImportPath: mod + "/merge", Deps: []string{mod + "/catalog"}},
		{ImportPath: mod + "/merge", Deps: []string{"github.com/apache/iceberg-go/table"}},
		{ImportPath: mod, Imports: []string{mod + "/internal/testkit/icecheck"}},
		{ImportPath: mod + "/catalog", Imports: []string{mod + "/internal/testkit/testservers"}},
		{ImportPath: mod + "/cmd/icemerge", Imports: []string{mod + "/internal/testkit/dmstest"}},
		{ImportPath: mod + "/cmd/icemerge", Imports: []string{"github.com/apache/iceberg-go"}},
		{ImportPath: mod + "/cmd/icemerge-bench", Imports: []string{"github.com/apache/iceberg-go/catalog/sql"}},
	} {
		if v := violations([]listedPackage{p}, mod); len(v) != 1 {
			t.Errorf("%s importing %v%v: %d violations found, want 1", p.ImportPath, p.Imports, p.Deps, len(v))
		}
	}
	// What the rules allow.
	ok := []listedPackage{
		{ImportPath: mod + "/merge", Deps: []string{"github.com/apache/arrow-go/v18/arrow"}},
		{ImportPath: mod + "/internal/testkit/icecheck", Imports: []string{mod + "/internal/testkit/dmstest"}},
		{ImportPath: mod + "/catalog", Imports: []string{"github.com/apache/iceberg-go", "github.com/aws/aws-sdk-go-v2/aws"}},
		{ImportPath: mod + "/cmd/icemerge", Imports: []string{mod}, Deps: []string{"github.com/apache/iceberg-go"}},
		{ImportPath: mod + "/cmd/icemerge-bench", Imports: []string{mod + "/internal/testkit/testservers", mod + "/internal/testkit/naive"}},
	}
	if v := violations(ok, mod); len(v) != 0 {
		t.Errorf("allowed imports reported: %v", v)
	}
}

// listedPackage is what `go list -json` says of a package.
type listedPackage struct {
	ImportPath string
	Imports    []string // direct
	Deps       []string // direct and indirect
}

func goList(t *testing.T, pattern string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", pattern)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// violations lists the packages that break an import rule, and why.
func violations(pkgs []listedPackage, mod string) []string {
	var out []string
	under := func(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }
	for _, p := range pkgs {
		if p.ImportPath == mod+"/merge" {
			for _, dep := range p.Deps {
				if under(dep, "github.com/aws") || under(dep, "github.com/apache/iceberg-go") || (under(dep, mod) && dep != mod+"/merge") {
					out = append(out, p.ImportPath+" depends on "+dep+": merge holds the semantics and imports only Arrow")
				}
			}
		}
		for _, dep := range p.Imports {
			switch {
			case !under(p.ImportPath, mod+"/internal/testkit") && p.ImportPath != mod+"/cmd/icemerge-bench" && under(dep, mod+"/internal/testkit"):
				out = append(out, p.ImportPath+" imports "+dep+": product code must not import test scaffolding")
			case under(p.ImportPath, mod+"/cmd") && under(dep, "github.com/apache/iceberg-go"):
				out = append(out, p.ImportPath+" imports "+dep+": only package catalog uses iceberg-go")
			}
		}
	}
	return out
}

// cmd/icemerge stays a thin shell over the library (issue 12): under 1,000
// lines of non-test code. A command's logic that grows past it belongs in
// the library or internal/clikit.
func TestCommandStaysThin(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("cmd", "icemerge", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines += bytes.Count(b, []byte("\n"))
	}
	if lines == 0 || lines >= 1000 {
		t.Errorf("cmd/icemerge holds %d lines of non-test code, want 1 to 999: move command logic into package icemerge or internal/clikit", lines)
	}
}
