// Package icecheck reads an Apache Iceberg table from its metadata file, for
// tests that must check what icemerge committed without trusting the library
// that wrote it.
//
// It deliberately imports neither iceberg-go nor arrow-go: it follows the
// Iceberg table spec (format v2, and v1) with encoding/json for table
// metadata, github.com/hamba/avro/v2 for manifest lists and manifests, and
// github.com/parquet-go/parquet-go for data and delete files. A bug in how
// iceberg-go writes or reads a table therefore shows up as a disagreement
// between icecheck and the table scan instead of cancelling itself out.
//
// [Read] follows the current snapshot:
//
//  1. the metadata JSON gives the current snapshot, its manifest list, the
//     current schema and the table properties;
//  2. the manifest list (Avro OCF) names the manifests and the sequence
//     number each one inherits to its ADDED entries;
//  3. manifest entries with status DELETED (2) are dropped; the rest are data
//     files (content 0) or position delete files (content 1); equality
//     deletes (content 2) and deletion vectors are rejected;
//  4. a position delete (file_path, pos) removes row pos of the data file
//     whose path equals file_path when the data file's data sequence number
//     is less than or equal to the delete file's and both files have the
//     same partition spec and partition values (so a delete file written
//     with the wrong partition deletes nothing, as in other v2 readers);
//  5. data files are read with Parquet columns matched to schema fields by
//     field_id, or by name in files without field ids.
//
// Read also checks what a reader can check: each manifest's entry count
// against the manifest list, each data and delete file's row count against its entry,
// the snapshot summary's total-data-files, total-delete-files, total-records
// and total-position-deletes against the live files, and that no required
// column holds a null. Corrupt files are errors, never panics.
//
// Only local tables are supported: the metadata location and every path
// inside the metadata may be absolute paths or file:// URLs. Other schemes
// (s3://, gs://, …) are reported as errors. Only primitive column types are
// read; nested types (struct, list, map) and time are reported as errors.
//
// Values in [Table.Rows] have these Go types, nil for null:
//
//	boolean                       bool
//	int, long                     int64
//	float, double                 float64
//	decimal(p, s)                 string, plain notation with s fraction digits ("-1.50")
//	string, uuid                  string (uuid in 8-4-4-4-12 form)
//	binary, fixed[n]              []byte
//	date                          time.Time, midnight UTC
//	timestamp, timestamptz        time.Time in UTC (also the _ns variants)
//
// Rows are in manifest list order, then manifest entry order, then file
// order; compare them as a set or sort them.
package icecheck
