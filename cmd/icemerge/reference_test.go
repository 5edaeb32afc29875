package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// referencePath is the command reference of the docs, made of the help of
// every command.
var referencePath = filepath.Join("..", "..", "docs", "reference.md")

// docs/reference.md is the help of every command, as `icemerge COMMAND
// --help` prints it: run `go test ./cmd/icemerge -run TestReferenceDoc
// -update` after changing a flag.
func TestReferenceDoc(t *testing.T) {
	got := reference(t)
	if *update {
		if err := os.WriteFile(referencePath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("docs/reference.md differs from the commands' help: rerun with -update\n%s", lineDiff(string(want), got))
	}
}

// reference writes the help of every command as one Markdown page.
func reference(t *testing.T) string {
	t.Helper()
	t.Setenv("COLUMNS", "100") // help wraps at the terminal's width: the page's is fixed
	var g grammar
	parser, err := newParser(&g, func(string) (string, bool) { return "", false }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths [][]string
	var walk func(n *kong.Node, path []string)
	walk = func(n *kong.Node, path []string) {
		if n.Hidden {
			return
		}
		if len(n.Children) == 0 || len(path) == 0 {
			paths = append(paths, path)
		}
		for _, c := range n.Children {
			walk(c, append(append([]string{}, path...), c.Name))
		}
	}
	walk(parser.Model.Node, nil)

	var b strings.Builder
	b.WriteString("# Command reference\n\n")
	b.WriteString("Generated from `icemerge COMMAND --help` by `go test ./cmd/icemerge -run TestReferenceDoc -update`;\n")
	b.WriteString("a test keeps it equal to the commands' help. What the commands do: [operations.md](operations.md),\n")
	b.WriteString("[maintenance.md](maintenance.md), [semantics.md](semantics.md), [aws.md](aws.md).\n")
	for _, path := range paths {
		var out, errOut bytes.Buffer
		code := cli(context.Background(), append(append([]string{}, path...), "--help"), func(string) (string, bool) { return "", false }, &out, &errOut)
		if code != exitOK {
			t.Fatalf("icemerge %s --help: exit %d: %s", strings.Join(path, " "), code, errOut.String())
		}
		title := "icemerge"
		if len(path) > 0 {
			title += " " + strings.Join(path, " ")
		}
		b.WriteString("\n## " + title + "\n\n```text\n" + strings.TrimRight(out.String(), "\n") + "\n```\n")
	}
	return b.String()
}

// lineDiff shows the first lines that differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return ""
}
