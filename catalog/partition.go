package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// ErrPartitionSpec is wrapped by the errors of [ParsePartitionSpec].
var ErrPartitionSpec = errors.New("invalid partition spec")

// partitionForms is the help every parse error ends with.
const partitionForms = "use column or identity(column), year(column), month(column), day(column), hour(column), " +
	"bucket(N, column) or truncate(W, column), e.g. day(created_at), bucket(16, user_id)"

// transformHelp says which column types a transform takes, for errors.
var transformHelp = map[string]string{
	"identity": "any column type",
	"year":     "date, timestamp and timestamptz columns",
	"month":    "date, timestamp and timestamptz columns",
	"day":      "date, timestamp and timestamptz columns",
	"hour":     "timestamp and timestamptz columns",
	"bucket":   "int, long, decimal, date, timestamp, timestamptz, string and binary columns",
	"truncate": "int, long, decimal, string and binary columns",
}

// ParsePartitionSpec builds a partition spec of sc from Iceberg transform
// expressions, one partition field each, in order: a column name (or
// identity(column)), year(column), month(column), day(column),
// hour(column), bucket(N, column) or truncate(W, column). Function names
// are case-insensitive and Spark's plurals (days(ts)) are accepted; column
// names are matched case-insensitively. The partition fields are named as
// Iceberg names them: the column for identity, else column_year,
// column_month, column_day, column_hour, column_bucket, column_trunc. No
// expressions is the unpartitioned spec.
func ParsePartitionSpec(sc *iceberg.Schema, exprs []string) (iceberg.PartitionSpec, error) {
	if len(exprs) == 0 {
		return *iceberg.UnpartitionedSpec, nil
	}
	opts := make([]iceberg.PartitionOption, 0, len(exprs))
	seen := map[string]string{} // partition field name → expression
	for i, expr := range exprs {
		name, col, tr, err := parsePartitionExpr(sc, expr)
		if err != nil {
			return iceberg.PartitionSpec{}, err
		}
		if prev, ok := seen[name]; ok {
			return iceberg.PartitionSpec{}, fmt.Errorf("%w: partition %q repeats %q: list each partition once", ErrPartitionSpec, expr, prev)
		}
		seen[name] = expr
		id := iceberg.PartitionDataIDStart + i
		opts = append(opts, iceberg.AddPartitionFieldBySourceID(col.ID, name, tr, sc, &id))
	}
	spec, err := iceberg.NewPartitionSpecOpts(opts...)
	if err != nil {
		return iceberg.PartitionSpec{}, fmt.Errorf("%w: %s: %w", ErrPartitionSpec, strings.Join(exprs, ", "), err)
	}
	return spec, nil
}

// parsePartitionExpr parses one expression into the partition field's
// name, its source column and its transform.
func parsePartitionExpr(sc *iceberg.Schema, expr string) (string, iceberg.NestedField, iceberg.Transform, error) {
	bad := func(format string, args ...any) (string, iceberg.NestedField, iceberg.Transform, error) {
		return "", iceberg.NestedField{}, nil, fmt.Errorf("%w: partition %q: %s; %s", ErrPartitionSpec, expr, fmt.Sprintf(format, args...), partitionForms)
	}
	s := strings.TrimSpace(expr)
	if s == "" {
		return bad("empty")
	}
	fn, args := "identity", []string{s}
	if open := strings.IndexByte(s, '('); open >= 0 {
		if !strings.HasSuffix(s, ")") {
			return bad("no closing parenthesis")
		}
		fn = strings.ToLower(strings.TrimSpace(s[:open]))
		args = strings.Split(s[open+1:len(s)-1], ",")
		for i := range args {
			args[i] = strings.TrimSpace(args[i])
		}
	} else if strings.ContainsAny(s, ") ,") {
		return bad("not a column name nor a transform")
	}
	switch fn {
	case "years", "months", "days", "hours":
		fn = strings.TrimSuffix(fn, "s")
	}
	var n int // bucket count or truncate width
	switch fn {
	case "identity", "year", "month", "day", "hour":
		if len(args) != 1 || args[0] == "" {
			return bad("%s takes one column", fn)
		}
	case "bucket", "truncate":
		what := map[string]string{"bucket": "bucket count", "truncate": "width"}[fn]
		if len(args) != 2 || args[0] == "" || args[1] == "" {
			return bad("%s takes a %s and a column: %s(N, column)", fn, what, fn)
		}
		v, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || v < 1 || v > math.MaxInt32 {
			return bad("the %s %q is not a whole number from 1 to %d", what, args[0], math.MaxInt32)
		}
		n, args = int(v), args[1:]
	case "void":
		return bad("void partitions nothing")
	default:
		return bad("unknown transform %q", fn)
	}
	col, ok := sc.FindFieldByNameCaseInsensitive(args[0])
	if !ok {
		return bad("the table has no column %q (columns: %s)", args[0], strings.Join(columnNames(sc), ", "))
	}
	var tr iceberg.Transform
	name := col.Name
	switch fn {
	case "identity":
		tr = iceberg.IdentityTransform{}
	case "year":
		tr, name = iceberg.YearTransform{}, col.Name+"_year"
	case "month":
		tr, name = iceberg.MonthTransform{}, col.Name+"_month"
	case "day":
		tr, name = iceberg.DayTransform{}, col.Name+"_day"
	case "hour":
		tr, name = iceberg.HourTransform{}, col.Name+"_hour"
	case "bucket":
		tr, name = iceberg.BucketTransform{NumBuckets: n}, col.Name+"_bucket"
	case "truncate":
		tr, name = iceberg.TruncateTransform{Width: n}, col.Name+"_trunc"
	}
	if !tr.CanTransform(col.Type) {
		return bad("%s cannot partition column %q of type %s: it takes %s", fn, col.Name, col.Type, transformHelp[fn])
	}
	return name, col, tr, nil
}

func columnNames(sc *iceberg.Schema) []string {
	var names []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	return names
}

// deleteGroup is the position deletes of the data files of one partition:
// a position delete file applies only to the data files of its own spec
// and partition (Iceberg v2 scan planning matches them by partition), so
// each partition gets its own delete file.
type deleteGroup struct {
	spec      iceberg.PartitionSpec
	partition map[int]any // partition field ID → value, nil when unpartitioned
	paths     []string    // sorted data file paths
}

// groupDeletes splits the deletes by the spec and partition of their data
// files. A table that was never partitioned needs no look-up; otherwise
// the partitions come from the data manifests of the current snapshot,
// which must hold every data file named (the positions were found in it).
func groupDeletes(ctx context.Context, tbl *table.Table, deletes map[string][]int64) ([]deleteGroup, error) {
	md := tbl.Metadata()
	if specs := md.PartitionSpecs(); len(specs) == 1 && specs[0].IsUnpartitioned() {
		return []deleteGroup{{spec: specs[0], paths: slices.Sorted(maps.Keys(deletes))}}, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the file system of %s: %w", Name(tbl), err)
	}
	parts, err := dataFilePartitions(tbl, fs, deletes)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*deleteGroup{}
	var keys []string
	for _, path := range slices.Sorted(maps.Keys(deletes)) {
		p := parts[path]
		key := partitionKey(p.spec, p.values)
		g, ok := byKey[key]
		if !ok {
			spec := md.PartitionSpecByID(int(p.spec))
			if spec == nil {
				return nil, fmt.Errorf("data file %s of %s has partition spec %d, which the table metadata lacks", path, Name(tbl), p.spec)
			}
			g = &deleteGroup{spec: *spec, partition: p.values}
			byKey[key] = g
			keys = append(keys, key)
		}
		g.paths = append(g.paths, path)
	}
	out := make([]deleteGroup, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	return out, nil
}

type filePartition struct {
	spec   int32
	values map[int]any
}

// dataFilePartitions reads the spec ID and partition of each data file in
// want from the current snapshot's data manifests.
func dataFilePartitions(tbl *table.Table, fs iceio.IO, want map[string][]int64) (map[string]filePartition, error) {
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return nil, fmt.Errorf("table %s has no snapshot, yet the run deletes rows of it: rerun", Name(tbl))
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest list of %s: %w", Name(tbl), err)
	}
	out := make(map[string]filePartition, len(want))
	for _, m := range manifests {
		if len(out) == len(want) {
			break
		}
		if m.ManifestContent() != iceberg.ManifestContentData {
			continue
		}
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, fmt.Errorf("reading manifest %s of %s: %w", m.FilePath(), Name(tbl), err)
			}
			df := e.DataFile()
			if _, ok := want[df.FilePath()]; ok && df.ContentType() == iceberg.EntryContentData {
				out[df.FilePath()] = filePartition{spec: df.SpecID(), values: df.Partition()}
			}
		}
	}
	for path := range want {
		if _, ok := out[path]; !ok {
			return nil, fmt.Errorf("data file %s, whose rows the run deletes, is not in the current snapshot of %s: rerun to plan against the table as it is", path, Name(tbl))
		}
	}
	return out, nil
}

// partitionKey identifies a spec and partition tuple; types are part of
// the key so that a string "<nil>" and a null differ.
func partitionKey(spec int32, values map[int]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", spec)
	for _, id := range slices.Sorted(maps.Keys(values)) {
		fmt.Fprintf(&b, "|%d=%T:%v", id, values[id], values[id])
	}
	return b.String()
}

// partitionLogicalTypes are the Avro logical types of a spec's partition
// fields, as iceberg-go's own writers give them to iceberg.NewDataFileBuilder
// (the names of github.com/twmb/avro/atype).
func partitionLogicalTypes(spec iceberg.PartitionSpec, sc *iceberg.Schema) map[int]string {
	out := map[int]string{}
	for _, f := range spec.Fields() {
		src, ok := sc.FindFieldByID(f.SourceID())
		if !ok {
			continue
		}
		switch f.Transform.ResultType(src.Type).(type) {
		case iceberg.DateType:
			out[f.FieldID] = "date"
		case iceberg.TimeType:
			out[f.FieldID] = "time-micros"
		case iceberg.TimestampType, iceberg.TimestampTzType:
			out[f.FieldID] = "timestamp-micros"
		case iceberg.DecimalType:
			out[f.FieldID] = "decimal"
		case iceberg.UUIDType:
			out[f.FieldID] = "uuid"
		}
	}
	return out
}

// partitionPath is the folder of a partition under the data folder, as
// iceberg-go's writers name it ("created_at_day=2024-08-14"); "" when
// unpartitioned.
func partitionPath(spec iceberg.PartitionSpec, sc *iceberg.Schema, values map[int]any) (path string) {
	if spec.IsUnpartitioned() {
		return ""
	}
	// The folder is cosmetic (readers go by the manifest's partition): a
	// value iceberg-go cannot format leaves the file in the data folder.
	defer func() {
		if recover() != nil {
			path = ""
		}
	}()
	rec := make(partitionRecord, 0, spec.NumFields())
	for _, f := range spec.Fields() {
		rec = append(rec, values[f.FieldID])
	}
	return spec.PartitionToPath(rec, sc)
}

// partitionRecord is a partition tuple in spec field order.
type partitionRecord []any

func (r partitionRecord) Size() int        { return len(r) }
func (r partitionRecord) Get(i int) any    { return r[i] }
func (r partitionRecord) Set(i int, v any) { r[i] = v }
