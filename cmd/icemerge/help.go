package main

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

// helpValue is a flag's help: its text, its default and its ICEMERGE_*
// variable. (kong's own formatter hides defaults.)
func helpValue(v *kong.Value) string {
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

// examples are each command's examples, by command path.
var examples = map[string]string{
	"": `  # Apply a table's DMS folder (the first run creates the table; --key is its primary key):
  icemerge run --source ./raw_input/test_db/users --table test_db.users --key user_id
  # Check a deployment's access before its first run:
  icemerge check --catalog glue --source s3://dms/raw_input/test_db/users --warehouse s3://lake/warehouse --table test_db.users
  # Where a table stands, and its rows:
  icemerge status --table test_db.users --source ./raw_input/test_db/users
  icemerge show --table test_db.users --where user_id=42`,
	"run": `  # One table from a local DMS folder; tables under ./warehouse, catalog and bookmarks in ./warehouse/_icemerge:
  icemerge run --source ./raw_input/test_db/users --table test_db.users --key user_id
  # The plan, writing nothing (for a new table without --key: the files' columns):
  icemerge run --source ./raw_input/test_db/users --table test_db.users --dry-run
  # S3 into the Glue Data Catalog, a JSON report on stdout:
  AWS_REGION=eu-west-1 icemerge run --catalog glue --source s3://dms/raw_input/test_db/users --warehouse s3://lake/warehouse --table test_db.users --key user_id --report -
  # Every table of a schema folder (drop --table), keys per table in a YAML file:
  icemerge run --catalog glue --source s3://dms/raw_input/test_db/ --warehouse s3://lake/warehouse --config icemerge.yaml
  # No updated_at column: order each key's changes by the files alone:
  icemerge run --source ./raw_input/test_db/events --table test_db.events --key event_id --order-by source`,
	"check": `  # The permissions of a Glue deployment, before its first run (exit 0 only when every check passes):
  AWS_REGION=eu-west-1 icemerge check --catalog glue --source s3://dms/raw_input/test_db/users --warehouse s3://lake/warehouse --table test_db.users
  # The same settings as the deployment's runs, from its environment:
  ICEMERGE_SOURCE=s3://dms/raw_input/test_db/users ICEMERGE_TABLE=test_db.users icemerge check --json`,
	"show": `  # The first rows, by primary key:
  icemerge show --table test_db.users --limit 20
  # One key, reading only the files and row groups that may hold it:
  icemerge show --table test_db.users --where user_id=42
  # Every row as CSV, or as JSON lines for jq:
  icemerge show --table test_db.users --limit 0 --format csv > users.csv
  icemerge show --table test_db.users --format json | jq .email`,
	"maintain": `  # What maintenance would do, changing nothing:
  icemerge maintain --table test_db.users --dry-run
  # Compaction only, files of 256 MiB:
  icemerge maintain --table test_db.users --only compact --target-file-size 256MiB
  # Keep a day of snapshots (at least 3):
  icemerge maintain --table test_db.users --expire-older-than 1d --retain-last 3`,
	"status": `  # Where a table stands: last snapshot, last run, pending files, lag:
  icemerge status --table test_db.users --source s3://dms/raw_input/test_db/users
  # For alarms: the lag in seconds
  icemerge status --table test_db.users --source s3://dms/raw_input/test_db/users --json | jq '.tables[0].pending.lag_seconds'`,
	"bookmark": `  icemerge bookmark show --table test_db.users
  icemerge bookmark rewind --table test_db.users --to 2024-08-14T00:30:00Z
  icemerge bookmark reset --table test_db.users`,
	"bookmark show": `  icemerge bookmark show --table test_db.users --files
  icemerge bookmark show --table test_db.users --json | jq .quarantined`,
	"bookmark reset": `  # Apply every file again (rows already current stay unchanged):
  icemerge bookmark reset --table test_db.users`,
	"bookmark rewind": `  # Apply again the CDC files named after 00:30 UTC:
  icemerge bookmark rewind --table test_db.users --to 2024-08-14T00:30:00Z
  # The same in DMS's name form, counting what the next run processes:
  icemerge bookmark rewind --table test_db.users --to 20240814-003000000 --source ./raw_input/test_db/users`,
	"version": `  icemerge version
  icemerge --version`,
	"completion": `  # bash (add to ~/.bashrc):
  source <(icemerge completion bash)
  # zsh (add to ~/.zshrc):
  source <(icemerge completion zsh)
  # fish:
  icemerge completion fish > ~/.config/fish/completions/icemerge.fish`,
}

// helpPrinter is kong's help, then the command's examples.
func helpPrinter(options kong.HelpOptions, ctx *kong.Context) error {
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

// completionCmd is `icemerge completion`.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

func (c *completionCmd) Run(a *app, kctx *kong.Context) error {
	m := completionModel(kctx.Model.Node)
	switch c.Shell {
	case "bash":
		writeBash(a.stdout, m)
	case "zsh":
		fmt.Fprintln(a.stdout, "#compdef icemerge\n# icemerge zsh completion: source <(icemerge completion zsh)\nautoload -U +X bashcompinit && bashcompinit")
		writeBash(a.stdout, m)
	case "fish":
		writeFish(a.stdout, m)
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
