package icecheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Table is the content of an Iceberg table at its current snapshot.
type Table struct {
	// Columns of the current schema, in schema order.
	Columns []Column
	// Rows live at the current snapshot, one map per row keyed by column
	// name, holding every column (nil for null). Never nil.
	Rows []map[string]any
	// SnapshotID is the current snapshot's id, 0 when there is none.
	SnapshotID int64
	// Summary is the current snapshot's summary, "operation" included; nil
	// when there is no current snapshot.
	Summary map[string]string
	// Properties are the table properties.
	Properties map[string]string
	// DataFiles and DeleteFiles count the live data and delete files of the
	// current snapshot.
	DataFiles, DeleteFiles int
	// Files are the live data and delete files, in manifest order.
	Files []File
	// PartitionSpecs are the table's partition specs; DefaultSpecID is the
	// one new data is written with.
	PartitionSpecs []PartitionSpec
	DefaultSpecID  int
}

// File is a live data or position delete file of the current snapshot.
type File struct {
	Path        string
	Deletes     bool // a position delete file, else a data file
	RecordCount int64
	// SpecID and Partition are the file's partition spec and its partition
	// tuple keyed by partition field name (empty when unpartitioned), as the
	// manifest holds them: int64 for int and long, time.Time (UTC) for date
	// and timestamp, string, []byte, *big.Rat for decimal, nil for null.
	// day/month/year/hour partitions are ints (days, months, years, hours
	// from 1970) or, for day, a date.
	SpecID    int
	Partition map[string]any
}

// PartitionSpec is a partition spec of the table metadata.
type PartitionSpec struct {
	SpecID int
	Fields []PartitionField
}

// PartitionField is one field of a partition spec.
type PartitionField struct {
	Name      string `json:"name"`
	Transform string `json:"transform"` // "identity", "day", "bucket[16]", "truncate[10]"…
	SourceID  int    `json:"source-id"`
	FieldID   int    `json:"field-id"`
}

// Column is a top-level field of the current schema.
type Column struct {
	ID   int
	Name string
	// Type is the Iceberg type as the metadata spells it: "int", "long",
	// "string", "timestamptz", "decimal(20, 0)", "fixed[16]"… Nested types
	// are "struct", "list" or "map".
	Type     string
	Required bool
}

// ErrUnsupported is wrapped by the errors for tables icecheck cannot read:
// remote storage, equality deletes, deletion vectors, non-Parquet files,
// nested or time columns, format versions other than 1 and 2.
var ErrUnsupported = errors.New("unsupported by icecheck")

// Read reads the table whose metadata file is metadataLocation, a local path
// or a file:// URL of a *.metadata.json file, at its current snapshot. A table
// without a current snapshot has zero rows.
func Read(ctx context.Context, metadataLocation string) (*Table, error) {
	return ReadWith(ctx, metadataLocation, readLocal)
}

// Fetch returns the whole content of the file at a location (a metadata,
// manifest or data file path as the table's metadata spells it).
type Fetch func(ctx context.Context, location string) ([]byte, error)

// readLocal is the Fetch of Read: local paths and file:// URLs.
func readLocal(_ context.Context, loc string) ([]byte, error) {
	path, err := localPath(loc)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// ReadWith is Read with every file read through fetch, so tables on S3 can
// be checked with a plain S3 client.
func ReadWith(ctx context.Context, metadataLocation string, fetch Fetch) (*Table, error) {
	fetchCtx := func(loc string) ([]byte, error) { return fetch(ctx, loc) }
	raw, err := fetchCtx(metadataLocation)
	if err != nil {
		return nil, fmt.Errorf("icecheck: reading metadata: %w", err)
	}
	md, err := parseMetadata(raw)
	if err != nil {
		return nil, fmt.Errorf("icecheck: %s: %w", metadataLocation, err)
	}
	schema, err := md.currentSchema()
	if err != nil {
		return nil, fmt.Errorf("icecheck: %s: %w", metadataLocation, err)
	}
	t := &Table{
		Rows:          []map[string]any{},
		Properties:    md.Properties,
		DefaultSpecID: md.DefaultSpecID,
	}
	for _, ps := range md.PartitionSpecs {
		t.PartitionSpecs = append(t.PartitionSpecs, PartitionSpec{SpecID: ps.SpecID, Fields: ps.Fields})
	}
	if len(md.PartitionSpecs) == 0 && md.PartitionSpec != nil { // v1
		t.PartitionSpecs = []PartitionSpec{{Fields: md.PartitionSpec}}
	}
	if t.Properties == nil {
		t.Properties = map[string]string{}
	}
	for _, f := range schema.Fields {
		t.Columns = append(t.Columns, Column{ID: f.ID, Name: f.Name, Type: f.typeName(), Required: f.Required})
	}

	snap, err := md.currentSnapshot()
	if err != nil {
		return nil, fmt.Errorf("icecheck: %s: %w", metadataLocation, err)
	}
	if snap == nil {
		return t, nil
	}
	t.SnapshotID = snap.SnapshotID
	t.Summary = snap.Summary
	if t.Summary == nil {
		t.Summary = map[string]string{}
	}

	files, err := liveFiles(ctx, fetchCtx, snap.ManifestList, md.FormatVersion)
	if err != nil {
		return nil, err
	}
	if err := checkTotals(snap, files); err != nil {
		return nil, fmt.Errorf("icecheck: %s: %w", metadataLocation, err)
	}
	cols, err := columnReaders(schema)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		t.Files = append(t.Files, File{Path: f.path, Deletes: f.content == contentPositionDeletes, RecordCount: f.recordCount,
			SpecID: f.specID, Partition: f.partition})
	}
	deletes := make(positionDeletes)
	for _, f := range files {
		if f.content != contentPositionDeletes {
			continue
		}
		t.DeleteFiles++
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("icecheck: %w", err)
		}
		if err := readPositionDeletes(fetchCtx, f, deletes); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if f.content != contentData {
			continue
		}
		t.DataFiles++
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("icecheck: %w", err)
		}
		rows, err := readDataFile(fetchCtx, f, cols, deletes)
		if err != nil {
			return nil, err
		}
		t.Rows = append(t.Rows, rows...)
	}
	return t, nil
}

// localPath turns a metadata path (absolute, file:/path, file:///path or
// file://localhost/path) into a local file name.
func localPath(loc string) (string, error) {
	p := loc
	switch {
	case strings.HasPrefix(p, "file://localhost/"):
		p = strings.TrimPrefix(p, "file://localhost")
	case strings.HasPrefix(p, "file://"):
		p = strings.TrimPrefix(p, "file://")
	case strings.HasPrefix(p, "file:/"):
		p = strings.TrimPrefix(p, "file:")
	case strings.Contains(p, "://"):
		scheme, _, _ := strings.Cut(p, "://")
		return "", fmt.Errorf("icecheck: %q: %s:// storage is %w; only local paths and file:// URLs are", loc, scheme, ErrUnsupported)
	}
	if p == "" || !filepath.IsAbs(p) {
		return "", fmt.Errorf("icecheck: %q is not an absolute local path or file:// URL", loc)
	}
	return filepath.Clean(p), nil
}

// metadata is the part of the table metadata JSON icecheck needs.
type metadata struct {
	FormatVersion     int               `json:"format-version"`
	CurrentSchemaID   *int              `json:"current-schema-id"`
	Schemas           []schema          `json:"schemas"`
	Schema            *schema           `json:"schema"` // v1 tables
	CurrentSnapshotID *int64            `json:"current-snapshot-id"`
	Snapshots         []snapshot        `json:"snapshots"`
	Properties        map[string]string `json:"properties"`
	PartitionSpecs    []struct {
		SpecID int              `json:"spec-id"`
		Fields []PartitionField `json:"fields"`
	} `json:"partition-specs"`
	PartitionSpec []PartitionField `json:"partition-spec"` // v1 tables
	DefaultSpecID int              `json:"default-spec-id"`
}

type schema struct {
	SchemaID int     `json:"schema-id"`
	Type     string  `json:"type"`
	Fields   []field `json:"fields"`
}

type field struct {
	ID       int             `json:"id"`
	Name     string          `json:"name"`
	Required bool            `json:"required"`
	Type     json.RawMessage `json:"type"`
}

// typeName is the primitive type string, or the "type" of a nested type.
func (f field) typeName() string {
	var s string
	if json.Unmarshal(f.Type, &s) == nil {
		return s
	}
	var nested struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(f.Type, &nested) == nil && nested.Type != "" {
		return nested.Type
	}
	return string(f.Type)
}

type snapshot struct {
	SnapshotID     int64             `json:"snapshot-id"`
	SequenceNumber int64             `json:"sequence-number"`
	ManifestList   string            `json:"manifest-list"`
	Summary        map[string]string `json:"summary"`
}

func parseMetadata(raw []byte) (*metadata, error) {
	var md metadata
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&md); err != nil {
		return nil, fmt.Errorf("parsing metadata JSON: %w", err)
	}
	if md.FormatVersion != 1 && md.FormatVersion != 2 {
		return nil, fmt.Errorf("format-version %d is %w", md.FormatVersion, ErrUnsupported)
	}
	return &md, nil
}

func (md *metadata) currentSchema() (*schema, error) {
	if md.CurrentSchemaID == nil {
		if md.Schema == nil {
			return nil, errors.New("metadata has neither current-schema-id nor schema")
		}
		return md.Schema, nil
	}
	for i := range md.Schemas {
		if md.Schemas[i].SchemaID == *md.CurrentSchemaID {
			return &md.Schemas[i], nil
		}
	}
	return nil, fmt.Errorf("current-schema-id %d is not among the schemas", *md.CurrentSchemaID)
}

// currentSnapshot returns nil when the table has no current snapshot.
func (md *metadata) currentSnapshot() (*snapshot, error) {
	if md.CurrentSnapshotID == nil || *md.CurrentSnapshotID == -1 {
		return nil, nil
	}
	for i := range md.Snapshots {
		if md.Snapshots[i].SnapshotID == *md.CurrentSnapshotID {
			if md.Snapshots[i].ManifestList == "" {
				return nil, fmt.Errorf("snapshot %d has no manifest-list (v1 inline manifests are %w)", *md.CurrentSnapshotID, ErrUnsupported)
			}
			return &md.Snapshots[i], nil
		}
	}
	return nil, fmt.Errorf("current-snapshot-id %d is not among the snapshots", *md.CurrentSnapshotID)
}

// checkTotals compares the snapshot summary's running totals, where present,
// with the live files: a writer that miscounts is caught here.
func checkTotals(snap *snapshot, files []liveFile) error {
	var dataFiles, deleteFiles, records, posDeletes int64
	for _, f := range files {
		switch f.content {
		case contentData:
			dataFiles++
			records += f.recordCount
		case contentPositionDeletes:
			deleteFiles++
			posDeletes += f.recordCount
		}
	}
	for _, c := range []struct {
		key  string
		have int64
	}{
		{"total-data-files", dataFiles},
		{"total-delete-files", deleteFiles},
		{"total-records", records},
		{"total-position-deletes", posDeletes},
	} {
		v, ok := snap.Summary[c.key]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("snapshot %d summary %s=%q: %w", snap.SnapshotID, c.key, v, err)
		}
		if n != c.have {
			return fmt.Errorf("snapshot %d summary says %s=%d, the manifests hold %d", snap.SnapshotID, c.key, n, c.have)
		}
	}
	return nil
}
