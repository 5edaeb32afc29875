package clikit

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// The help a data engineer reads: every flag with its meaning, its
// default in human units and its variable; examples per command; shell
// completion.

// HelpValue is a flag's help: its text, its default and its ICEMERGE_*
// variable. (kong's own formatter hides defaults.)
func HelpValue(v *kong.Value) string {
	help := strings.TrimSuffix(v.Help, ".")
	if d := defaultText(v); d != "" {
		help += " (default: " + d + ")"
	}
	if len(v.Tag.Envs) > 0 {
		help += " ($" + strings.Join(v.Tag.Envs, ", $") + ")"
	}
	return help + "."
}

// defaultText is a flag's default for people: 168h (7 days), 256MiB; ""
// when it has none worth saying.
func defaultText(v *kong.Value) string {
	d := v.Default
	if !v.HasDefault || d == "" || (v.IsBool() && d == "false") {
		return ""
	}
	if dur, err := time.ParseDuration(d); err == nil && dur >= 48*time.Hour && dur%(24*time.Hour) == 0 {
		return fmt.Sprintf("%s (%d days)", d, dur/(24*time.Hour))
	}
	return d
}

// HelpPrinter is kong's help, then the command's examples (by command
// path, "" for the top level).
func HelpPrinter(examples map[string]string) kong.HelpPrinter {
	return func(options kong.HelpOptions, ctx *kong.Context) error { return printHelp(examples, options, ctx) }
}

func printHelp(examples map[string]string, options kong.HelpOptions, ctx *kong.Context) error {
	if err := kong.DefaultHelpPrinter(options, ctx); err != nil {
		return err
	}
	path := ""
	if sel := ctx.Selected(); sel != nil {
		path = sel.Path()
	}
	if ex, ok := examples[path]; ok {
		fmt.Fprintf(ctx.Stdout, "\nExamples:\n%s\n", ex)
	}
	return nil
}

// WriteCompletion writes the completion script of the shell (bash, zsh or
// fish) for the command line whose model is root.
func WriteCompletion(w io.Writer, shell string, root *kong.Node) error {
	m := completionModel(root)
	switch shell {
	case "bash":
		writeBash(w, m)
	case "zsh":
		fmt.Fprintln(w, "#compdef icemerge\n# icemerge zsh completion: source <(icemerge completion zsh)\nautoload -U +X bashcompinit && bashcompinit")
		writeBash(w, m)
	case "fish":
		writeFish(w, m)
	default:
		return fmt.Errorf("no completion for the shell %q: use bash, zsh or fish", shell)
	}
	return nil
}

// completion is what a shell completes: for each command path its
// subcommands and flags, and each flag's values.
type completion struct {
	paths []string            // " run", " bookmark show"; "" is the root
	words map[string][]string // path → subcommands and --flags
	help  map[string]string   // path or flag → one line
	enums map[string][]string // --flag → values
	files []string            // flags taking a path
	cmds  map[string][]string // path → subcommands
	flags map[string][]*kong.Flag
}

func completionModel(root *kong.Node) completion {
	m := completion{words: map[string][]string{}, help: map[string]string{}, enums: map[string][]string{},
		cmds: map[string][]string{}, flags: map[string][]*kong.Flag{}}
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		m.paths = append(m.paths, path)
		for _, c := range n.Children {
			if c.Hidden {
				continue
			}
			m.words[path] = append(m.words[path], c.Name)
			m.cmds[path] = append(m.cmds[path], c.Name)
			m.help[path+" "+c.Name] = c.Help
			walk(c, path+" "+c.Name)
		}
		for _, group := range n.AllFlags(true) {
			for _, f := range group {
				name := "--" + f.Name
				m.words[path] = append(m.words[path], name)
				m.flags[path] = append(m.flags[path], f)
				if f.Enum != "" {
					m.enums[name] = strings.Split(f.Enum, ",")
				}
				if ph := f.FormatPlaceHolder(); ph == "URI" || ph == "FILE" {
					if !slices.Contains(m.files, name) {
						m.files = append(m.files, name)
					}
				}
			}
		}
	}
	walk(root, "")
	return m
}

func writeBash(w io.Writer, m completion) {
	fmt.Fprint(w, `# icemerge bash completion: source <(icemerge completion bash)
_icemerge() {
  local cur prev path="" w i
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  for ((i=1; i<COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case "$path $w" in
`)
	var cmdPaths []string
	for _, p := range m.paths {
		if p != "" {
			cmdPaths = append(cmdPaths, `"`+p+`"`)
		}
	}
	fmt.Fprintf(w, "      %s) path=\"$path $w\";;\n    esac\n  done\n  case \"$prev\" in\n", strings.Join(cmdPaths, "|"))
	for _, flag := range slices.Sorted(maps.Keys(m.enums)) {
		fmt.Fprintf(w, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return;;\n", flag, strings.Join(m.enums[flag], " "))
	}
	if len(m.files) > 0 {
		fmt.Fprintf(w, "    %s) COMPREPLY=($(compgen -f -- \"$cur\")); return;;\n", strings.Join(m.files, "|"))
	}
	fmt.Fprint(w, "  esac\n  local words\n  case \"$path\" in\n")
	for _, p := range m.paths {
		fmt.Fprintf(w, "    %q) words=%q;;\n", p, strings.Join(m.words[p], " "))
	}
	fmt.Fprint(w, `  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _icemerge icemerge
`)
}

func writeFish(w io.Writer, m completion) {
	fmt.Fprintln(w, "# icemerge fish completion: icemerge completion fish > ~/.config/fish/completions/icemerge.fish")
	fmt.Fprintln(w, "complete -c icemerge -f")
	for _, p := range m.paths {
		words := strings.Fields(p)
		cond := "__fish_use_subcommand"
		if len(words) > 0 {
			cond = "__fish_seen_subcommand_from " + words[len(words)-1]
			if len(words) > 1 {
				cond = "__fish_seen_subcommand_from " + words[0] + "; and __fish_seen_subcommand_from " + words[len(words)-1]
			}
		}
		for _, c := range m.cmds[p] {
			fmt.Fprintf(w, "complete -c icemerge -n %q -a %s -d %q\n", cond, c, firstLine(m.help[p+" "+c]))
		}
		if p == "" {
			continue
		}
		for _, f := range m.flags[p] {
			line := fmt.Sprintf("complete -c icemerge -n %q -l %s -d %q", cond, f.Name, firstLine(f.Help))
			switch {
			case f.Enum != "":
				line += fmt.Sprintf(" -x -a %q", strings.ReplaceAll(f.Enum, ",", " "))
			case slices.Contains(m.files, "--"+f.Name):
				line += " -r -F"
			case !f.IsBool():
				line += " -r"
			}
			fmt.Fprintln(w, line)
		}
	}
}

// firstLine is a help text's first sentence, for a completion menu.
func firstLine(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}
