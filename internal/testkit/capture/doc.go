// Package capture writes what AWS DMS writes to an S3 target with
// DataFormat=parquet, from a MariaDB server's binary log:
// a full load as LOAD files, then CDC files named by time, one folder per
// table. It is the source side of icemerge's end-to-end tests, built so a
// later `icemerge capture` command can drive it: [Options] validated up
// front, a context, an injected *slog.Logger, and a [State] kept with the
// output so each [Run] continues where the last one stopped.
//
// Layout and content, as DMS with IncludeOpForFullLoad=true:
//
//   - Output/<schema>/<table>/LOAD00000001.parquet, LOAD00000002… (hex
//     counter): every row of the table at one consistent snapshot (START
//     TRANSACTION WITH CONSISTENT SNAPSHOT, whose binlog position MariaDB
//     reports), Op I. An empty table gets no LOAD file.
//   - Output/<schema>/<table>/yyyyMMdd-HHmmssSSS.parquet: the changes
//     committed after the snapshot, in commit order, Op I with the after
//     image, U with the after image (one U also when the primary key
//     changes, carrying the new key: DMS does not name the old one), D with
//     the before image (the whole row: binlog_row_image=FULL); files are cut
//     every MaxBatchInterval of commit time or MaxFileSize of data, at a
//     change of the table's columns (ALTER TABLE), and at the end of each
//     run. Names come from the injectable clock and are strictly
//     increasing across runs, so icemerge applies them in commit order.
//   - Output/.capture-state.json: the binlog position after the last
//     transaction written and the last CDC file name. Files are written
//     (to dot-named temporary files, then renamed) before the state, so a
//     run that dies writes its changes again next time, in new files, as a
//     DMS task restart replays them.
//
// Types follow DMS's MySQL mapping (docs/semantics.md, "Type mapping"): TINYINT (also
// TINYINT(1)) INT(8), SMALLINT INT(16), MEDIUMINT and INT INT(32), BIGINT
// INT(64), UNSIGNED as unsigned of the same width, YEAR INT(32), FLOAT and
// DOUBLE as themselves, DECIMAL(p,s) a FIXED_LEN_BYTE_ARRAY DECIMAL(p,s)
// (above p=38, beyond Iceberg, the exact text), DATE a DATE, DATETIME a
// TIMESTAMP not adjusted to UTC (the wall clock), TIMESTAMP a UTC
// TIMESTAMP, both in microseconds, TIME the text [-]H:MM:SS.ffffff, BIT a
// BOOLEAN (non-zero is true), CHAR, VARCHAR, TEXT, JSON, ENUM and SET a
// STRING (utf8mb4 as it is, latin1 converted), BINARY, VARBINARY and BLOB a
// BYTE_ARRAY. Zero dates and the zero TIMESTAMP become nulls, as DMS
// writes them.
//
// Options.BeforeImage models DMS's transformation rule
// add-before-image-columns with column-filter pk-only: the named tables'
// files get a column <prefix><key column> (prefix BI_ by default) per
// primary key column, after the table's columns, in table order, of the
// key column's type, holding the key's value before the change: null in I
// rows and in the full load, the old key in U rows (the same as the key
// unless the key changed), the deleted key in D rows. Sources: the DMS
// user guide's before-image-def (prefix, pk-only) and an AWS answer on
// re:Post ("How to determine which record was updated when primary key is
// updated") showing DMS's output "I,30004,1,11,," and
// "U,30004,66,11,30004,1": after the table's columns, empty for an insert.
// Unverified: the values in D rows and the columns' presence in LOAD files
// (both as above).
//
// Options.HandleSourceTableTruncated models the DMS task setting: a
// TRUNCATE of a captured table deletes every object of its folder (LOAD
// and CDC files of every run so far, and the changes not yet written), and
// its later CDC files start from the empty table. [Reload] models "Reload
// table": the changes up to a consistent snapshot are written, the table's
// objects deleted, and a new full load written from the snapshot under the
// same LOAD names; the table's later CDC files come after it.
//
// The files are written through [dmstest.Target], with DMS's Parquet shape
// ([dmstest.DMSOptions]: GZIP, data page v1, 10,000-row row groups, 1 MiB
// pages and dictionaries, statistics).
//
// The server must run with --log-bin, --binlog-format=ROW,
// --binlog-row-image=FULL and --binlog-row-metadata=FULL (column names,
// character sets and ENUM/SET members in every table map, which lets an
// ALTER TABLE mid-stream decode without information_schema); Run checks
// them first. The binlog files are read directly (package binlog), so the
// server must be one whose data directory the caller can read.
//
// The Parquet files are written by internal/testkit/dmstest, the project's DMS-format
// writer (parquet-go, not the arrow-go icemerge reads with).
package capture
