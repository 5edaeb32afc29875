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
//     image, U with the after image, D with the before image; files are cut
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
// One deliberate difference: an UPDATE that changes a primary key is
// written as D (before image) and I (after image), so the old key does not
// linger in the target.
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
