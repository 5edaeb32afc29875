package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
// map to Iceberg tables. Flags on the command line override its top-level
// settings.
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
		*c = columnList(splitList(strings.Join(list, ",")))
		return nil
	}
	var s string
	if err := unmarshal(&s); err != nil {
		return errors.New("want a list of column names or a comma-separated string")
	}
	*c = columnList(splitList(s))
	return nil
}

// loadDatabaseConfig reads a --config file; unknown fields are errors, so a
// misspelt setting is never silently ignored.
func loadDatabaseConfig(file string) (DatabaseConfig, error) {
	var cfg DatabaseConfig
	b, err := os.ReadFile(file)
	if err != nil {
		return cfg, fmt.Errorf("%w: --config: %w", errUsage, err)
	}
	if err := yaml.UnmarshalWithOptions(b, &cfg, yaml.Strict()); err != nil {
		return cfg, fmt.Errorf("%w: --config %s: %s", errUsage, file, yaml.FormatError(err, false, true))
	}
	return cfg, nil
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
		if t.Target != "" && (strings.ContainsAny(t.Target, "./ ") || t.Target != strings.ToLower(t.Target)) {
			errs = append(errs, fmt.Errorf("%s: target %q: a lower-case table name without dots", where, t.Target))
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
		return fmt.Errorf("%w: --config: %w", errUsage, err)
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

// tableFolders lists the subfolders of a schema folder, sorted.
func tableFolders(ctx context.Context, op *opened, uri string) ([]string, error) {
	l, err := source.ParseLocation(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: --source: %w", errUsage, err)
	}
	return source.TableFolders(ctx, l, op.s3)
}

// errTablesFailed: some tables of a database run failed (the others ran).
var errTablesFailed = errors.New("tables failed")

// databaseRun is one table of a database run.
type databaseRun struct {
	opts   RunOptions
	folder string
	report TableReport
	err    error
}

// runDatabase runs every selected table folder of o.Source, cfg.Parallel
// at a time. One table failing does not stop the others; the error says
// which failed (errTablesFailed), or that every failure was another run
// holding its table (bookmark.ErrLocked, exit 3).
func runDatabase(ctx context.Context, o RunOptions, cfg DatabaseConfig, op *opened, d Deps) ([]TableReport, error) {
	folders, err := tableFolders(ctx, op, o.Source)
	if err != nil {
		return nil, err
	}
	var runs []*databaseRun
	seen := map[string]string{}
	for _, folder := range folders {
		if !cfg.selected(folder) {
			continue
		}
		name, tc := cfg.table(folder)
		if _, err := catalog.Ident(name); err != nil {
			return nil, fmt.Errorf("%w: table folder %q: %w (set its target in --config)", errUsage, folder, err)
		}
		if other, ok := seen[name]; ok {
			return nil, fmt.Errorf("%w: table folders %q and %q both map to table %s: set a target for one in --config", errUsage, other, folder, name)
		}
		seen[name] = folder
		to := o
		to.Table, to.Source = name, strings.TrimSuffix(o.Source, "/")+"/"+folder
		if len(tc.Key) > 0 {
			to.Keys = tc.Key
		}
		switch {
		case slices.Equal(tc.OrderBy, []string{"source"}):
			to.OrderBy = nil
		case len(tc.OrderBy) > 0:
			to.OrderBy = tc.OrderBy
		}
		to.Partition = tc.Partition
		runs = append(runs, &databaseRun{opts: to, folder: folder})
	}
	for folder := range cfg.Tables {
		if !slices.Contains(folders, folder) {
			d.Log.Warn("a table of --config has no folder in the source", "folder", folder, "source", o.Source)
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w: no table folders to run in %s (%d folders, none selected by include/exclude)", errUsage, o.Source, len(folders))
	}
	d.Log.Info("running tables", "tables", len(runs), "parallel", cfg.Parallel, "source", o.Source)

	sem := make(chan struct{}, max(cfg.Parallel, 1))
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.err = ctx.Err()
				r.report = tableReport(r.opts.Table, nil, r.opts.DryRun, r.err)
				return
			}
			defer func() { <-sem }()
			r.err = runTable(ctx, r.opts, op, d, &r.report)
		}()
	}
	wg.Wait()

	reports := make([]TableReport, len(runs))
	var failed, locked []string
	for i, r := range runs {
		reports[i] = r.report
		switch {
		case r.err == nil:
		case errors.Is(r.err, bookmark.ErrLocked):
			locked = append(locked, r.opts.Table)
		default:
			failed = append(failed, r.opts.Table)
		}
	}
	switch {
	case len(failed) > 0:
		return reports, fmt.Errorf("%w: %d of %d tables failed: %s (the others ran; see the log or --report)", errTablesFailed, len(failed), len(runs), strings.Join(failed, ", "))
	case len(locked) > 0:
		return reports, fmt.Errorf("%w: %s", bookmark.ErrLocked, strings.Join(locked, ", "))
	}
	if err := ctx.Err(); err != nil {
		return reports, err
	}
	return reports, nil
}

// runTable runs one table of a database run, recovering nothing: a panic
// is a bug and stops the process like any other.
func runTable(ctx context.Context, o RunOptions, op *opened, d Deps, report *TableReport) error {
	src, err := op.source(o.Source)
	if err != nil {
		*report = tableReport(o.Table, nil, o.DryRun, err)
		return err
	}
	store := op.bookmarks(o.Table)
	td := d
	td.Log = d.Log.With("table", o.Table)
	td.Source, td.Bookmark, td.Lock = src, store, store
	res, err := runMerge(ctx, o, td)
	*report = tableReport(o.Table, res, o.DryRun, err)
	if err != nil {
		td.Log.Error("table failed", "error", err)
		fmt.Fprintf(d.Out, "%s: failed: %v\n", o.Table, err)
	}
	return err
}

// dbFlags are the flags of a whole-database run; they override --config.
type dbFlags struct {
	file, namespace, prefix, include, exclude string
	parallel                                  int
}

func (f *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "config", "", "whole database: a YAML file of per-table settings (key, order_by, target, partition) and include/exclude lists")
	fs.StringVar(&f.namespace, "namespace", "", "whole database: the tables' namespace (default: the schema folder's name)")
	fs.StringVar(&f.prefix, "table-prefix", "", "whole database: prefix of every table's name (<namespace>.<prefix><folder>)")
	fs.IntVar(&f.parallel, "parallel", 0, "whole database: tables run at once (default 2)")
	fs.StringVar(&f.include, "include", "", "whole database: only these table folders, comma-separated shell patterns")
	fs.StringVar(&f.exclude, "exclude", "", "whole database: not these table folders, comma-separated shell patterns")
}

func (f *dbFlags) any() bool {
	return f.file != "" || f.namespace != "" || f.prefix != "" || f.parallel != 0 || f.include != "" || f.exclude != ""
}

// config loads --config and applies the flags and defaults over it.
func (f *dbFlags) config(uri string) (DatabaseConfig, error) {
	var cfg DatabaseConfig
	if f.file != "" {
		var err error
		if cfg, err = loadDatabaseConfig(f.file); err != nil {
			return cfg, err
		}
	}
	if f.namespace != "" {
		cfg.Namespace = f.namespace
	}
	if f.prefix != "" {
		cfg.TablePrefix = f.prefix
	}
	if f.parallel != 0 {
		cfg.Parallel = f.parallel
	}
	patterns := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	if f.include != "" {
		cfg.Include = patterns(f.include)
	}
	if f.exclude != "" {
		cfg.Exclude = patterns(f.exclude)
	}
	if cfg.Namespace == "" && uri != "" {
		if l, err := source.ParseLocation(uri); err == nil {
			cfg.Namespace = strings.ToLower(l.Base())
		}
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 2
	}
	return cfg, cfg.Validate()
}

// syncWriter serialises the writes of tables running at once.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
