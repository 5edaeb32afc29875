package icemerge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"

	"github.com/icemerge/icemerge/bookmark"
	"github.com/icemerge/icemerge/catalog"
	"github.com/icemerge/icemerge/internal/source"
)

// A whole-database run: --source names a schema folder of DMS
// (raw_input/test_db/), each of whose subfolders is one table's folder.

// DatabaseConfig is the --config file: how the tables of a schema folder
// map to Iceberg tables. The flags override its top-level settings.
type DatabaseConfig struct {
	// Namespace of the tables (default: the schema folder's name).
	Namespace string `yaml:"namespace"`
	// TablePrefix starts every table's name: <namespace>.<prefix><folder>.
	TablePrefix string `yaml:"table_prefix"`
	// Parallel is how many tables run at once (default 2).
	Parallel int `yaml:"parallel"`
	// Include and Exclude select table folders by name (shell patterns,
	// path.Match); no Include means every folder.
	Include []string `yaml:"include"`
	Exclude []string `yaml:"exclude"`
	// Defaults apply to every table; Tables, by folder name, override them.
	Defaults TableConfig            `yaml:"defaults"`
	Tables   map[string]TableConfig `yaml:"tables"`
}

// TableConfig is one table's settings.
type TableConfig struct {
	// Key: the primary key columns, to create the table (an existing
	// table's own key is used).
	Key columnList `yaml:"key"`
	// OrderBy: the columns ordering a key's changes; [source] for source
	// order only.
	OrderBy columnList `yaml:"order_by"`
	// Target is the table's name in the namespace (default
	// <table_prefix><folder>, lower case).
	Target string `yaml:"target"`
	// Partition is the partition spec of a new table, as Iceberg
	// transforms: day(created_at), bucket(16, id), identity(region).
	Partition []string `yaml:"partition"`
}

// columnList takes a YAML list or a comma-separated string.
type columnList []string

func (c *columnList) UnmarshalYAML(unmarshal func(any) error) error {
	var list []string
	if err := unmarshal(&list); err == nil {
		*c = columnList(SplitColumns(strings.Join(list, ",")))
		return nil
	}
	var s string
	if err := unmarshal(&s); err != nil {
		return errors.New("want a list of column names or a comma-separated string")
	}
	*c = columnList(SplitColumns(s))
	return nil
}

// LoadDatabaseConfig reads a --config file; unknown fields are errors, so a
// misspelt setting is never silently ignored. Errors name the file, line
// and column, never the file's text: a file given by mistake (a secret, the
// environment) is not echoed.
func LoadDatabaseConfig(file string) (DatabaseConfig, error) {
	var cfg DatabaseConfig
	b, err := os.ReadFile(file)
	if err != nil {
		return cfg, usage(fmt.Errorf("--config: %w", err))
	}
	if err := yaml.UnmarshalWithOptions(b, &cfg, yaml.Strict()); err != nil {
		return cfg, usage(fmt.Errorf("--config %s: %s (fix the YAML there)", file, yamlErrorPosition(err)))
	}
	return cfg, nil
}

// yamlErrorPosition says where and what a YAML error is, without the
// source text the parser's message quotes.
func yamlErrorPosition(err error) string {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return "not valid YAML"
	}
	// Type and field errors name types and keys; a syntax error's message
	// may quote the text, so it is not repeated.
	msg := "not valid YAML"
	var (
		syntax *yaml.SyntaxError
		dup    *yaml.DuplicateKeyError
	)
	if !errors.As(err, &syntax) && !errors.As(err, &dup) {
		msg = ye.GetMessage()
	}
	if tok := ye.GetToken(); tok != nil && tok.Position != nil {
		return fmt.Sprintf("line %d, column %d: %s", tok.Position.Line, tok.Position.Column, msg)
	}
	return msg
}

// Validate reports every problem of the config at once.
func (c DatabaseConfig) Validate() error {
	var errs []error
	if c.Parallel < 0 {
		errs = append(errs, fmt.Errorf("parallel %d: use 1 or more", c.Parallel))
	}
	for _, p := range append(slices.Clone(c.Include), c.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("include/exclude pattern %q: %w", p, err))
		}
	}
	check := func(where string, t TableConfig) {
		if t.Target != "" {
			// The name part of a table name, by the same rule as --table.
			if _, err := catalog.Ident("ns." + t.Target); err != nil {
				errs = append(errs, fmt.Errorf("%s: target %q: a lower-case table name without dots: %w", where, t.Target, err))
			}
		}
		if slices.Contains(t.OrderBy, "source") && len(t.OrderBy) > 1 {
			errs = append(errs, fmt.Errorf("%s: order_by: 'source' stands alone", where))
		}
	}
	check("defaults", c.Defaults)
	if c.Defaults.Target != "" {
		errs = append(errs, errors.New("defaults: target is per table"))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Tables)) {
		check("tables."+name, c.Tables[name])
	}
	if err := errors.Join(errs...); err != nil {
		return usage(fmt.Errorf("--config: %w", err))
	}
	return nil
}

// selected reports whether the table folder is run.
func (c DatabaseConfig) selected(folder string) bool {
	match := func(ps []string) bool {
		return slices.ContainsFunc(ps, func(p string) bool { ok, _ := path.Match(p, folder); return ok })
	}
	if len(c.Include) > 0 && !match(c.Include) {
		return false
	}
	return !match(c.Exclude)
}

// table is the settings of one table folder: the config's defaults, then
// its own entry.
func (c DatabaseConfig) table(folder string) (name string, t TableConfig) {
	t = c.Defaults
	if own, ok := c.Tables[folder]; ok {
		if len(own.Key) > 0 {
			t.Key = own.Key
		}
		if len(own.OrderBy) > 0 {
			t.OrderBy = own.OrderBy
		}
		if len(own.Partition) > 0 {
			t.Partition = own.Partition
		}
		t.Target = own.Target
	}
	target := t.Target
	if target == "" {
		target = strings.ToLower(c.TablePrefix + folder)
	}
	return c.Namespace + "." + target, t
}

// Tables opens the tables of a whole-database run; *Env is the real one.
type Tables interface {
	TableFolders(ctx context.Context, uri string) ([]string, error)
	Deps(table, src string) (Deps, error)
}

var _ Tables = (*Env)(nil)

// TableRun is one table of a whole-database run: its result (nil when it
// did not start) and its error.
type TableRun struct {
	Table  string
	Folder string
	Result *Result
	Err    error
}

// Config is the whole-database config o names (--config, then the flags
// over it, then the defaults), validated.
func (o DatabaseOptions) DatabaseConfig() (DatabaseConfig, error) {
	var cfg DatabaseConfig
	if o.Config != "" {
		var err error
		if cfg, err = LoadDatabaseConfig(o.Config); err != nil {
			return cfg, err
		}
	}
	cfg.Namespace = cmp.Or(o.Namespace, cfg.Namespace)
	cfg.TablePrefix = cmp.Or(o.TablePrefix, cfg.TablePrefix)
	cfg.Parallel = cmp.Or(o.Parallel, cfg.Parallel)
	if len(o.Include) > 0 {
		cfg.Include = trimmed(o.Include)
	}
	if len(o.Exclude) > 0 {
		cfg.Exclude = trimmed(o.Exclude)
	}
	if cfg.Namespace == "" && o.Source != "" {
		if l, err := source.ParseLocation(o.Source); err == nil {
			cfg.Namespace = strings.ToLower(l.Base())
		}
	}
	cfg.Parallel = cmp.Or(cfg.Parallel, 2)
	return cfg, cfg.Validate()
}

// trimmed drops blanks around and empty entries of a list of patterns.
func trimmed(ps []string) []string {
	var out []string
	for _, p := range ps {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// RunDatabase runs every selected table folder of the schema folder
// o.Source, cfg.Parallel at a time, each as Run does. One table failing
// does not stop the others; the error says which failed (ErrTablesFailed),
// or that every failure was another run holding its table
// (bookmark.ErrLocked).
func RunDatabase(ctx context.Context, o DatabaseOptions, tables Tables) ([]TableRun, error) {
	if o.Table != "" {
		return nil, usage(errors.New("--table names one table: drop it to run a whole database, or drop the whole-database settings"))
	}
	if err := o.RunOptions.Validate(); err != nil {
		return nil, err
	}
	cfg, err := o.DatabaseConfig()
	if err != nil {
		return nil, err
	}
	folders, err := tables.TableFolders(ctx, o.Source)
	if err != nil {
		return nil, err
	}
	var runs []*TableRun
	var opts []RunOptions
	seen := map[string]string{}
	for _, folder := range folders {
		if !cfg.selected(folder) {
			continue
		}
		name, tc := cfg.table(folder)
		if _, err := catalog.Ident(name); err != nil {
			return nil, usage(fmt.Errorf("table folder %q: %w (set its target in --config)", folder, err))
		}
		if other, ok := seen[name]; ok {
			return nil, usage(fmt.Errorf("table folders %q and %q both map to table %s: set a target for one in --config", other, folder, name))
		}
		seen[name] = folder
		to := o.RunOptions
		to.Table, to.Source = name, strings.TrimSuffix(o.Source, "/")+"/"+folder
		// The tables running at once share the budget.
		to.Memory = o.Memory / ByteSize(max(cfg.Parallel, 1))
		if len(tc.Key) > 0 {
			to.Keys = Columns(tc.Key)
		}
		switch {
		case slices.Equal(tc.OrderBy, []string{"source"}):
			to.OrderBy = nil
		case len(tc.OrderBy) > 0:
			to.OrderBy = Columns(tc.OrderBy)
		}
		to.Partition = tc.Partition
		runs = append(runs, &TableRun{Table: name, Folder: folder})
		opts = append(opts, to)
	}
	log := tablesLog(tables)
	for folder := range cfg.Tables {
		if !slices.Contains(folders, folder) {
			log.Warn("a table of --config has no folder in the source", "folder", folder, "source", o.Source)
		}
	}
	if len(runs) == 0 {
		return nil, usage(fmt.Errorf("no table folders to run in %s (%d folders, none selected by include/exclude)", o.Source, len(folders)))
	}
	log.Info("running tables", "tables", len(runs), "parallel", cfg.Parallel, "source", o.Source)

	sem := make(chan struct{}, max(cfg.Parallel, 1))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.Err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			r.Result, r.Err = runTable(ctx, opts[i], tables)
		}()
	}
	wg.Wait()

	out := make([]TableRun, len(runs))
	var failed, locked []string
	for i, r := range runs {
		out[i] = *r
		switch {
		case r.Err == nil:
		case errors.Is(r.Err, bookmark.ErrLocked):
			locked = append(locked, r.Table)
		default:
			failed = append(failed, r.Table)
		}
	}
	switch {
	case len(failed) > 0 && len(failed) == len(runs) && allUsage(out):
		// Every table stopped at its settings (no key to create it, a
		// column no file has): the settings are wrong, not the run.
		return out, usage(fmt.Errorf("%w: every table (%d) stopped at its settings: %s (see the log or --report)", ErrTablesFailed, len(runs), strings.Join(failed, ", ")))
	case len(failed) > 0:
		return out, fmt.Errorf("%w: %d of %d tables failed: %s (the others ran; see the log or --report)", ErrTablesFailed, len(failed), len(runs), strings.Join(failed, ", "))
	case len(locked) > 0:
		return out, fmt.Errorf("%w: %s", bookmark.ErrLocked, strings.Join(locked, ", "))
	}
	return out, ctx.Err()
}

// allUsage reports whether every table failed with a settings error.
func allUsage(runs []TableRun) bool {
	for _, r := range runs {
		if !errors.Is(r.Err, ErrUsage) {
			return false
		}
	}
	return true
}

// runTable runs one table of a database run, recovering nothing: a panic
// is a bug and stops the process like any other.
func runTable(ctx context.Context, o RunOptions, tables Tables) (*Result, error) {
	d, err := tables.Deps(o.Table, o.Source)
	if err != nil {
		return nil, err
	}
	res, err := Run(ctx, o, d)
	if err != nil {
		d.Log.Error("table failed", "table", o.Table, "error", err)
	}
	return res, err
}

// tablesLog is the logger of a database run's own messages.
func tablesLog(tables Tables) *slog.Logger {
	if e, ok := tables.(*Env); ok && e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}
