// Package doccheck holds one check on the project's documentation: every
// relative link in README.md and docs/*.md points to a file that is in the
// repository, and every #anchor to a heading (or an id) of its target. It has
// no code of its own; the check runs with go test.
package doccheck

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestDocLinks checks the links of README.md and docs/*.md from the module
// root.
func TestDocLinks(t *testing.T) {
	root := moduleRoot(t)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{filepath.Join(root, "README.md")}, docs...)
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (the check needs README.md and docs/ at the module root)", err)
		}
	}
	for _, p := range checkLinks(root, files) {
		t.Error(p)
	}
}

// TestCheckLinksFindsBrokenLinks shows the check fails where it should: a
// link to a missing file, to a missing anchor, out of the repository, and an
// anchor into a file that has no such line; and passes links that resolve,
// absolute URLs and links inside code.
func TestCheckLinksFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("deploy/template.yaml", "a: 1\nb: 2\n")
	guide := write("docs/guide.md", "# Guide\n\n## What DMS writes, and what icemerge does with it\n\n"+
		"## `--order-by` and ties\n\n## Setup\n\n## Setup\n\n<a id=\"custom-id\"></a>\n\n"+
		"[self](#setup-1) [up](../README.md#a-section) [id](#custom-id)\n")
	readme := write("README.md", strings.Join([]string{
		"# Title",
		"## A section",
		"[ok](docs/guide.md#what-dms-writes-and-what-icemerge-does-with-it)",
		"[ok, code heading](docs/guide.md#--order-by-and-ties)",
		"[ok, file](deploy/template.yaml) [ok, line](deploy/template.yaml#L2) [ok, dir](docs/)",
		"[ok, absolute](https://example.com/missing.md) [ok, mail](mailto:a@b.c)",
		"`[not a link](missing-in-code.md)`",
		"```",
		"[not a link](missing-in-fence.md)",
		"```",
		"[bad file](docs/missing.md)",
		"[bad anchor](docs/guide.md#no-such-heading)",
		"[bad self anchor](#nowhere)",
		"[bad line](deploy/template.yaml#L9)",
		"[outside](../outside.md)",
		"![bad image](img/missing.png)",
		"[ref]: docs/missing-ref.md",
	}, "\n"))
	got := checkLinks(root, []string{readme, guide})
	want := []string{
		"docs/missing.md", "#no-such-heading", "#nowhere", "#L9", "../outside.md", "img/missing.png",
		"docs/missing-ref.md",
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("no problem reported for %q; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
	fine := []string{"missing-in-code.md", "missing-in-fence.md", "#what-dms-writes", "#--order-by", "template.yaml\"",
		"#L2", "docs/\"", "example.com", "mailto:", "#setup-1", "#a-section", "#custom-id"}
	for _, p := range got {
		for _, f := range fine {
			if strings.Contains(p, f) {
				t.Errorf("reported a link that is fine (%s): %s", f, p)
			}
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"What DMS writes, and what icemerge does with it":   "what-dms-writes-and-what-icemerge-does-with-it",
		"Bookmark: show, reset and rewind":                  "bookmark-show-reset-and-rewind",
		"Figures (`make bench BENCH_FLAGS=-full`, one run)": "figures-make-bench-bench_flags-full-one-run",
		"Deleted stays deleted: tombstones":                 "deleted-stays-deleted-tombstones",
		"A [linked](x.md) heading":                          "a-linked-heading",
		"Targets (issue 5)":                                 "targets-issue-5",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// moduleRoot is the directory holding go.mod, at or above the working
// directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

var (
	// inlineLink matches the target of [text](target) and ![alt](target),
	// with an optional "title".
	inlineLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// refDef matches a reference definition: [label]: target.
	refDef = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$`)
	// scheme matches an absolute URL (https:, mailto:, …).
	scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	// lineAnchor is GitHub's anchor of a line or lines of a non-Markdown file.
	lineAnchor = regexp.MustCompile(`^L(\d+)(?:-L(\d+))?$`)
	// htmlID matches an id or name attribute of an HTML element.
	htmlID = regexp.MustCompile(`<[^>]*\s(?:id|name)="([^"]+)"`)
)

// checkLinks returns one problem per broken relative link in files, which
// lie under root: the link's file and line, the target and what is wrong.
func checkLinks(root string, files []string) []string {
	var problems []string
	anchors := map[string]map[string]bool{} // by Markdown file
	for _, f := range files {
		links, err := linksOf(f)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		rel, _ := filepath.Rel(root, f)
		for _, l := range links {
			if err := checkLink(root, f, l.target, anchors); err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: %v", filepath.ToSlash(rel), l.line, l.target, err))
			}
		}
	}
	return problems
}

type link struct {
	line   int
	target string
}

// linksOf lists the link targets of a Markdown file, outside fenced code
// blocks and code spans.
func linksOf(path string) ([]link, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var links []link
	fence := ""
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if f := fenceOf(trimmed); f != "" {
			switch {
			case fence == "":
				fence = f
				continue
			case strings.HasPrefix(trimmed, fence) && strings.TrimLeft(trimmed, fence[:1]) == "":
				fence = ""
				continue
			}
		}
		if fence != "" {
			continue
		}
		line = stripCodeSpans(line)
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			links = append(links, link{i + 1, m[1]})
		}
		if m := refDef.FindStringSubmatch(line); m != nil {
			links = append(links, link{i + 1, m[1]})
		}
	}
	return links, nil
}

// fenceOf returns the fence (``` or ~~~, and longer) that opens or closes a
// code block on this line, or "".
func fenceOf(trimmed string) string {
	for _, c := range []string{"`", "~"} {
		n := len(trimmed) - len(strings.TrimLeft(trimmed, c))
		if n >= 3 {
			return trimmed[:n]
		}
	}
	return ""
}

// stripCodeSpans blanks the code spans of a line: a run of n backticks up
// to the next run of exactly n.
func stripCodeSpans(line string) string {
	var out strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			out.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(line) && line[j+m] == '`' {
				m++
			}
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 { // no closing run: literal backticks
			out.WriteString(line[i : i+n])
			i += n
			continue
		}
		out.WriteString(strings.Repeat(" ", end-i))
		i = end
	}
	return out.String()
}

// checkLink checks one target of a link in file from.
func checkLink(root, from, target string, anchors map[string]map[string]bool) error {
	if target == "" || scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return nil // absolute: not ours to check
	}
	pathPart, anchor, hasAnchor := strings.Cut(target, "#")
	if i := strings.IndexByte(pathPart, '?'); i >= 0 {
		pathPart = pathPart[:i]
	}
	dest := from
	if pathPart != "" {
		if strings.HasPrefix(pathPart, "/") {
			dest = filepath.Join(root, filepath.FromSlash(pathPart))
		} else {
			dest = filepath.Join(filepath.Dir(from), filepath.FromSlash(pathPart))
		}
		if rel, err := filepath.Rel(root, dest); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return errors.New("points outside the repository")
		}
		if _, err := os.Stat(dest); err != nil {
			return errors.New("no such file in the repository")
		}
	}
	if !hasAnchor || anchor == "" {
		return nil
	}
	if !strings.EqualFold(filepath.Ext(dest), ".md") {
		return checkLineAnchor(dest, anchor)
	}
	ids, ok := anchors[dest]
	if !ok {
		var err error
		if ids, err = anchorsOf(dest); err != nil {
			return err
		}
		anchors[dest] = ids
	}
	if !ids[strings.ToLower(anchor)] {
		return fmt.Errorf("no heading or id %q in %s", anchor, filepath.Base(dest))
	}
	return nil
}

// checkLineAnchor accepts #L<n> and #L<n>-L<m> within the file's lines.
func checkLineAnchor(path, anchor string) error {
	m := lineAnchor.FindStringSubmatch(anchor)
	if m == nil {
		return fmt.Errorf("anchor %q into a file that is not Markdown (only #L<line> works there)", anchor)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Count(string(b), "\n")
	if !strings.HasSuffix(string(b), "\n") {
		lines++
	}
	for _, s := range m[1:] {
		if s == "" {
			continue
		}
		if n, _ := strconv.Atoi(s); n < 1 || n > lines {
			return fmt.Errorf("anchor %q: %s has %d lines", anchor, filepath.Base(path), lines)
		}
	}
	return nil
}

// anchorsOf returns the anchors of a Markdown file: the slugs of its ATX
// headings as GitHub makes them (a repeated slug gets -1, -2, …) and the
// id and name attributes of its HTML elements. Setext headings (text
// underlined with === or ---) are not recognised: the docs do not use them.
func anchorsOf(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if fc := fenceOf(trimmed); fc != "" {
			switch {
			case fence == "":
				fence = fc
				continue
			case strings.HasPrefix(trimmed, fence) && strings.TrimLeft(trimmed, fence[:1]) == "":
				fence = ""
				continue
			}
		}
		if fence != "" {
			continue
		}
		for _, m := range htmlID.FindAllStringSubmatch(line, -1) {
			ids[strings.ToLower(m[1])] = true
		}
		text, ok := atxHeading(line)
		if !ok {
			continue
		}
		s := slug(text)
		if n := seen[s]; n > 0 {
			ids[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			ids[s] = true
		}
		seen[s]++
	}
	return ids, sc.Err()
}

// atxHeading returns the text of an ATX heading line (# to ######, at most
// three spaces of indent).
func atxHeading(line string) (string, bool) {
	indent := len(line) - len(strings.TrimLeft(line, " "))
	if indent > 3 {
		return "", false
	}
	s := line[indent:]
	n := len(s) - len(strings.TrimLeft(s, "#"))
	if n < 1 || n > 6 || (len(s) > n && s[n] != ' ' && s[n] != '\t') {
		return "", false
	}
	text := strings.TrimSpace(s[n:])
	// A closing sequence of #s, preceded by a space, is not part of it.
	if t := strings.TrimRight(text, "#"); t != text && (t == "" || strings.HasSuffix(t, " ")) {
		text = strings.TrimSpace(t)
	}
	return text, true
}

var mdLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)

// slug is GitHub's anchor of a heading: the rendered text lower-cased,
// without punctuation other than - and _, spaces as -.
func slug(heading string) string {
	text := mdLink.ReplaceAllString(heading, "$1")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
