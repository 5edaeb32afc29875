package icemerge

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/icemerge/icemerge/internal/source"
	"github.com/icemerge/icemerge/merge"
)

// The run's look at what it listed, before it reads anything: settings no
// file can satisfy are settings errors (exit 2), never files to quarantine;
// a folder that cannot be what the user meant is warned about; and a table
// is never created over another table's metadata.

// footerFiles bounds the files whose footers the settings check reads to
// find a column: normally the first has it.
const footerFiles = 20

// warnings is the list step's look at the batch (docs/operations.md,
// "What a run checks first").
func (r *run) warnings(ctx context.Context) error {
	if len(r.todo) == 0 {
		return r.warnNothing(ctx)
	}
	r.warnTableFolders()
	if r.tbl == nil {
		if err := r.refuseSecondTable(ctx); err != nil {
			return err
		}
	}
	return r.checkSettings(ctx)
}

// warnNothing says why a folder gave nothing to do, when it looks like a
// mistake: only CSV objects (DMS's default DataFormat), objects of which
// none is data, or an empty folder for a table nothing was ever applied to.
func (r *run) warnNothing(ctx context.Context) error {
	if appliedCount(r.st) > 0 && r.res.Listed == 0 {
		return nil // settled history, nothing new: the normal case
	}
	var csv, other []string
	err := r.eachListed(func(o source.Object) error {
		if source.Classify(o.Key) != merge.NotData {
			return nil
		}
		base := strings.ToLower(path.Base(o.Key))
		switch {
		case strings.HasSuffix(base, ".csv"), strings.HasSuffix(base, ".csv.gz"):
			csv = append(csv, o.Key)
		case !hidden(o.Key):
			other = append(other, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil // the list step listed it a moment ago; this is only advice
	}
	switch {
	case len(csv) > 0:
		r.log.Warn(fmt.Sprintf("%s holds %d CSV objects (%s) and no Parquet file: icemerge reads the Parquet files DMS writes with DataFormat=parquet, "+
			"and CSV is the S3 target endpoint's default. Set DataFormat=parquet (with ParquetVersion=parquet-1-0) on the DMS target endpoint and reload the table",
			r.res.Source, len(csv), examples(csv)), "csv_objects", len(csv))
	case len(other) > 0:
		r.log.Warn(fmt.Sprintf("%s holds %d objects (%s) but no DMS Parquet file (*.parquet): check --source and the DMS target endpoint's DataFormat=parquet",
			r.res.Source, len(other), examples(other)), "objects", len(other))
	case appliedCount(r.st) == 0 && r.res.Listed == 0:
		r.log.Warn(fmt.Sprintf("%s holds no objects: check --source (the DMS folder of one table, e.g. s3://BUCKET/raw_input/SCHEMA/TABLE)", r.res.Source))
	}
	return nil
}

// hidden reports whether a key is a marker or temporary object (a name
// starting with "." or "_"), which DMS folders may hold.
func hidden(key string) bool {
	for _, p := range strings.Split(key, "/") {
		if strings.HasPrefix(p, ".") || strings.HasPrefix(p, "_") {
			return true
		}
	}
	return false
}

// examples names up to three keys.
func examples(keys []string) string {
	if len(keys) > 3 {
		return strings.Join(keys[:3], ", ") + ", …"
	}
	return strings.Join(keys, ", ")
}

// dateFolder matches the date-partition folders of DMS's
// DatePartitionEnabled (2024, 202408, 20240814, 2024-08-14, 2024_08_14…).
var dateFolder = regexp.MustCompile(`^\d{4}([-_]?\d{2}){0,3}$`)

// warnTableFolders warns when the batch's files sit in subfolders that look
// like tables (users/LOAD…, posts/LOAD…): --source is a schema folder, and a
// run of one table would merge every table's files into it.
func (r *run) warnTableFolders() {
	var folders []string
	for _, o := range r.todo {
		first, _, nested := strings.Cut(o.Key, "/")
		if nested && !dateFolder.MatchString(first) && !source.DateFolder(first) && !slices.Contains(folders, first) {
			folders = append(folders, first)
		}
	}
	if len(folders) < 2 {
		return
	}
	r.log.Warn(fmt.Sprintf("the files of %s sit in %d subfolders that look like tables (%s): this run merges all of them into table %s. "+
		"If --source is a schema folder, run every table of it instead: drop --table (icemerge run --source %s); or point --source at one table's folder",
		r.res.Source, len(folders), examples(folders), r.o.Table, r.res.Source), "subfolders", len(folders))
}

// metadataLister is what the catalog can say of a table it does not hold:
// *catalog.Catalog lists the metadata files at the table's location.
type metadataLister interface {
	ExistingMetadata(ctx context.Context, name string) ([]string, error)
}

// refuseSecondTable refuses a run that would create a table where table
// metadata already exists: that table was created through another catalog
// (another --catalog-uri), and a second one over it would be a second
// history in one location.
func (r *run) refuseSecondTable(ctx context.Context) error {
	ml, ok := r.d.Catalog.(metadataLister)
	if !ok {
		return nil
	}
	found, err := ml.ExistingMetadata(ctx, r.o.Table)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return nil
	}
	slices.Sort(found)
	return usage(fmt.Errorf("%w: table %s does not exist in this catalog, but %d table metadata files are already at its location (newest %s): "+
		"the table was created through another catalog. Pass the catalog that holds it (--catalog, --catalog-uri: by default "+
		"<warehouse>/%s, before that ./icemerge.db in the folder a command ran in), or register that metadata file in this catalog; "+
		"icemerge never creates a second table over it",
		ErrTableElsewhere, r.o.Table, len(found), found[len(found)-1], DefaultCatalogFile))
}

// ErrTableElsewhere: a run would create a table where another catalog's
// table already keeps its metadata.
var ErrTableElsewhere = errors.New("table metadata already exists at the table's location")

// checkSettings reads the footers of the batch's first files until each
// key and order column is found in one: a column no file has is a setting
// (--key, --order-by, or the table's own key) that names nothing, a
// settings error, never a reason to quarantine every file.
func (r *run) checkSettings(ctx context.Context) error {
	var tableCols []string
	if r.tbl != nil {
		if sc, err := r.tbl.Schema(); err == nil {
			for _, f := range sc.Fields() {
				tableCols = append(tableCols, f.Name)
			}
		}
	}
	// The key of an existing table is the table's: a file without it is bad
	// input (--on-bad-file), not a setting.
	var keys []string
	if r.tbl == nil {
		keys = slices.Clone(r.keys)
	}
	var order []string
	for _, c := range r.o.OrderBy {
		if !slices.Contains(tableCols, c) {
			order = append(order, c)
		}
	}
	if len(keys) == 0 && len(order) == 0 {
		return nil
	}
	cache := &onceSource{Source: r.d.Source}
	r.d.Source = cache // the read step reads the object checked here once
	var first *footer
	checked := 0
	for _, o := range r.todo {
		if checked == footerFiles || (len(keys) == 0 && len(order) == 0) {
			break
		}
		ft, err := cache.footer(ctx, o.Key)
		if err != nil {
			continue // a bad file: the read step fails or quarantines it
		}
		checked++
		if first == nil {
			first = ft
		}
		for _, k := range keys {
			if i := ft.schema.FieldIndices(k); len(i) == 1 {
				if typ := ft.schema.Field(i[0]).Type; typ.ID() == arrow.FLOAT32 || typ.ID() == arrow.FLOAT64 {
					return usage(fmt.Errorf("key column %q is a %s in %s: an Iceberg key cannot be floating point; pass another --key", k, typ, o.Key))
				}
			}
		}
		keys = slices.DeleteFunc(keys, ft.has)
		order = slices.DeleteFunc(order, ft.has)
	}
	if first == nil {
		return nil // no readable file: the read step names the bad ones
	}
	if len(keys) > 0 || len(order) > 0 {
		defer cache.release() // the run stops here
	}
	which := fmt.Sprintf("no file of %s", r.res.Source)
	if checked < len(r.todo) {
		which = fmt.Sprintf("none of the first %d files of %s", checked, r.res.Source)
	}
	var errs []error
	if len(keys) > 0 {
		errs = append(errs, fmt.Errorf("--key %s: %s has column(s) %s; the files have %s (the key is usually the first column after Op; pass --key with it)",
			strings.Join(r.keys, ","), which, strings.Join(keys, ", "), strings.Join(first.names(), ", ")))
	}
	if len(order) > 0 {
		errs = append(errs, fmt.Errorf("--order-by %s: %s has column(s) %s (nor the table); candidates: %s",
			strings.Join(r.o.OrderBy, ","), which, strings.Join(order, ", "), strings.Join(first.orderCandidates(), ", ")))
	}
	return usage(errors.Join(errs...))
}

// footer is what a file's Parquet footer says: its columns as the table
// would store them (lower case, no Op) and the first row group's minimum
// of each string column.
type footer struct {
	schema *arrow.Schema
	minStr map[string]string
}

func (f *footer) has(col string) bool { return len(f.schema.FieldIndices(col)) == 1 }

func (f *footer) names() []string {
	var out []string
	for _, fl := range f.schema.Fields() {
		out = append(out, fl.Name)
	}
	return out
}

// dmsTimestamp is the form of the column TimestampColumnName adds:
// yyyy-MM-dd HH:mm:ss.SSSSSS.
var dmsTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$`)

// orderCandidates are the columns that could order a key's changes:
// timestamp columns, a change sequence ($AR_H_CHANGE_SEQ), a string column
// holding DMS's TimestampColumnName form, and source (order only).
func (f *footer) orderCandidates() []string {
	var out []string
	for _, fl := range f.schema.Fields() {
		switch {
		case fl.Type.ID() == arrow.TIMESTAMP:
			out = append(out, fl.Name+" (timestamp)")
		case strings.Contains(fl.Name, "change_seq"):
			out = append(out, fl.Name+" (change sequence)")
		case fl.Type.ID() == arrow.STRING && dmsTimestamp.MatchString(f.minStr[fl.Name]):
			out = append(out, fl.Name+" (DMS TimestampColumnName)")
		}
	}
	return append(out, "source (the order of the files and rows alone: pass --order-by source)")
}

// onceSource is the run's source, keeping an object the settings check
// opened for the read step's first open of it: an S3 object is read into
// memory when opened, so it is fetched once (one GET).
type onceSource struct {
	Source
	mu   sync.Mutex
	kept map[string]source.Reader
}

func (s *onceSource) Open(ctx context.Context, key string, pin source.Version) (source.Reader, error) {
	s.mu.Lock()
	r, ok := s.kept[key]
	delete(s.kept, key)
	s.mu.Unlock()
	if ok {
		if v := r.Version(); (pin.ETag == "" || v.ETag == "" || pin.ETag == v.ETag) && (pin.Size == 0 || pin.Size == v.Size) &&
			(pin.ModTime.IsZero() || v.ModTime.IsZero() || pin.ModTime.Equal(v.ModTime)) {
			return r, nil
		}
		r.Close() // not the version asked for: the pinned open says so
	}
	return s.Source.Open(ctx, key, pin)
}

// release closes the objects kept and not opened again.
func (s *onceSource) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.kept {
		r.Close()
		delete(s.kept, k)
	}
}

// footer reads the footer of the object key, and keeps the object open
// for the next Open of it.
func (s *onceSource) footer(ctx context.Context, key string) (*footer, error) {
	r, err := s.Source.Open(ctx, key, source.Version{})
	if err != nil {
		return nil, err
	}
	ft, err := readFooter(key, keepOpen{r})
	if err != nil {
		r.Close()
		return ft, err
	}
	if _, err := r.Seek(0, 0); err != nil {
		r.Close()
		return ft, nil
	}
	s.mu.Lock()
	if s.kept == nil {
		s.kept = map[string]source.Reader{}
	}
	s.kept[key] = r
	s.mu.Unlock()
	return ft, nil
}

// keepOpen is a reader the Parquet reader cannot close: closing its file
// reader closes the object it reads.
type keepOpen struct{ source.Reader }

func (keepOpen) Close() error { return nil }

// readFooter reads a Parquet file's columns from its footer; a damaged
// file is an error, never a panic.
func readFooter(key string, r source.Reader) (ft *footer, err error) {
	defer func() {
		if p := recover(); p != nil {
			ft, err = nil, fmt.Errorf("%s: not a readable Parquet file: %v", key, p)
		}
	}()
	pf, err := file.NewParquetReader(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	defer pf.Close()
	sc, err := pqarrow.FromParquet(pf.MetaData().Schema, nil, pf.MetaData().KeyValueMetadata())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if i := merge.OpIndex(sc); i >= 0 {
		sc = arrow.NewSchema(slices.Delete(slices.Clone(sc.Fields()), i, i+1), nil) // DMS's Op, not a column of the table
	}
	stored, err := merge.StoredSchema(key, sc)
	if err != nil {
		return nil, err
	}
	ft = &footer{schema: stored, minStr: map[string]string{}}
	if pf.NumRowGroups() == 0 {
		return ft, nil
	}
	rg := pf.MetaData().RowGroup(0)
	psc := pf.MetaData().Schema
	for i := 0; i < psc.NumColumns(); i++ {
		cc, err := rg.ColumnChunk(i)
		if err != nil {
			continue
		}
		st, err := cc.Statistics()
		if err != nil || st == nil || !st.HasMinMax() {
			continue
		}
		if bs, ok := st.(*metadata.ByteArrayStatistics); ok {
			ft.minStr[strings.ToLower(psc.Column(i).Name())] = string(bs.Min())
		}
	}
	return ft, nil
}

// SourceColumns are the columns of a new table's files, which a dry run
// without --key shows instead of a plan.
type SourceColumns struct {
	Table  string
	Source string
	// Files counts the unprocessed data files; File is the one read.
	Files int
	File  string
	// Schema is the file's columns as the table would store them.
	Schema *arrow.Schema
	// OrderCandidates could order a key's changes (--order-by).
	OrderCandidates []string
}

// PreviewColumns reads the footer of the first readable unprocessed file
// of a table that does not exist yet, so a dry run without --key can show
// the columns to choose the key from. It returns nil when the table
// exists (a run uses the table's own key) or when --key is given.
func PreviewColumns(ctx context.Context, o RunOptions, d Deps) (*SourceColumns, error) {
	if len(o.Keys) > 0 {
		return nil, nil
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if _, exists, err := d.Catalog.Load(ctx, o.Table); err != nil || exists {
		return nil, err
	}
	st, _, err := loadBookmark(ctx, d.Bookmark, o.Table)
	if err != nil {
		return nil, err
	}
	todo, _, err := unprocessed(ctx, d.Source, st, d.Now())
	if err != nil {
		return nil, err
	}
	sc := &SourceColumns{Table: o.Table, Source: d.Source.String(), Files: len(todo)}
	src := &onceSource{Source: d.Source}
	for _, obj := range todo {
		ft, err := src.footer(ctx, obj.Key)
		if err != nil {
			continue
		}
		sc.File, sc.Schema, sc.OrderCandidates = obj.Key, ft.schema, ft.orderCandidates()
		break
	}
	src.release()
	return sc, nil
}
