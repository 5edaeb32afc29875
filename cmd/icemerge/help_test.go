package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := cli(context.Background(), args, func(string) (string, bool) { return "", false }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Help at every level, on stdout: the command's purpose, its flags with
// two dashes, their meaning and defaults, and examples.
func TestHelpAtEveryLevel(t *testing.T) {
	for _, path := range []string{"", "run", "check", "show", "maintain", "status", "bookmark", "bookmark show", "bookmark reset", "bookmark rewind", "version", "completion"} {
		words := strings.Fields(path)
		for _, args := range [][]string{append(append([]string{}, words...), "--help"), append([]string{"help"}, words...)} {
			code, stdout, stderr := runCLI(args...)
			if code != exitOK || stderr != "" {
				t.Errorf("icemerge %v: exit %d, stderr %q", args, code, stderr)
			}
			for _, want := range []string{"Usage: icemerge " + path, "Examples:\n", "  -h, --help"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("icemerge %v lacks %q:\n%s", args, want, stdout)
				}
			}
			// The one-line purpose follows the usage line.
			if lines := strings.Split(stdout, "\n"); len(lines) < 3 || lines[1] != "" || len(lines[2]) < 10 {
				t.Errorf("icemerge %v: no purpose under the usage line:\n%s", args, stdout)
			}
		}
	}
	_, stdout, _ := runCLI("run", "--help")
	flat := strings.Join(strings.Fields(stdout), " ") // help wraps at 100 columns
	for _, want := range []string{"--settle-after=15m", "(default: 15m)", "(default: 256MiB)", "(default: 168h (7 days))", "(default: fail)", "($ICEMERGE_SOURCE)", "--order-by=COL,...", "(default: updated_at)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
	golden(t, "run-help.golden", stdout)
}

// An unknown flag is a short error: two lines, the command to get help.
func TestUnknownFlagIsShort(t *testing.T) {
	code, stdout, stderr := runCLI("run", "--tabel", "x")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != exitUsage || stdout != "" || len(lines) != 2 || !strings.Contains(lines[0], `did you mean "--table"`) || !strings.Contains(lines[1], "icemerge run --help") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// --version and version print the module version and the commit.
func TestVersion(t *testing.T) {
	old := commit
	defer func() { commit = old }()
	commit = "0123456789abcdef0123+dirty"
	for _, args := range [][]string{{"--version"}, {"version"}, {"run", "--version"}} {
		code, stdout, _ := runCLI(args...)
		if code != exitOK || !strings.HasPrefix(stdout, "icemerge ") || !strings.Contains(stdout, "(0123456789ab+dirty)") || !strings.Contains(stdout, "go1.") {
			t.Errorf("icemerge %v: exit %d, %q", args, code, stdout)
		}
	}
}

// The completion scripts complete commands, subcommands, flags and flag
// values; bash's is run by bash.
func TestCompletion(t *testing.T) {
	code, script, stderr := runCLI("completion", "bash")
	if code != exitOK {
		t.Fatalf("completion bash: exit %d: %s", code, stderr)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	f := filepath.Join(t.TempDir(), "icemerge.bash")
	os.WriteFile(f, []byte(script), 0o644)
	complete := func(words ...string) string {
		t.Helper()
		line := "source " + f + "; COMP_WORDS=(" + strings.Join(words, " ") + " ''); COMP_CWORD=" + strconv.Itoa(len(words)) + "; _icemerge; echo \"${COMPREPLY[*]}\""
		out, err := exec.Command(bash, "--norc", "-c", line).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"icemerge"}, "run check show maintain status bookmark version completion"},
		{[]string{"icemerge", "bookmark"}, "show reset rewind"},
		{[]string{"icemerge", "run", "--on-bad-file"}, "fail quarantine"},
		{[]string{"icemerge", "show", "--format"}, "table json csv"},
		{[]string{"icemerge", "completion"}, ""},
	} {
		got := complete(c.words...)
		if !strings.Contains(got, c.want) {
			t.Errorf("complete %v: %q, want %q among them", c.words, got, c.want)
		}
	}
	if got := complete("icemerge", "run"); !strings.Contains(got, "--source") || !strings.Contains(got, "--key") || strings.Contains(got, "--where") {
		t.Errorf("complete icemerge run: %q", got)
	}
	for _, shell := range []string{"zsh", "fish"} {
		code, script, _ := runCLI("completion", shell)
		if code != exitOK || !strings.Contains(script, "icemerge") {
			t.Errorf("completion %s: exit %d", shell, code)
		}
		if shell == "fish" && !strings.Contains(script, `complete -c icemerge -n "__fish_seen_subcommand_from run" -l on-bad-file`) {
			t.Errorf("fish script lacks run's --on-bad-file:\n%s", script)
		}
		if sh, err := exec.LookPath(shell); err == nil {
			if out, err := exec.Command(sh, "-n", "-c", script).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v: %s", shell, err, out)
			}
		}
	}
	if code, _, _ := runCLI("completion", "powershell"); code != exitUsage {
		t.Errorf("completion powershell: exit %d, want 2", code)
	}
}
