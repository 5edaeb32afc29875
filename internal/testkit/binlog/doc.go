// Package binlog reads MariaDB (and MySQL) binary log files in ROW format:
// the events a change-data-capture reader needs, with every column value of
// a row image decoded into a Go value.
//
// It reads the files of a server's data directory directly, by the index
// file that lists them (binlog.index), not over the replication protocol:
// it is for a server whose files the caller can read, such as a test's own
// mariadbd. [Open] starts at a [Position] (a file and an offset at an event
// boundary, as SHOW MASTER STATUS or a previous run gives) and [Reader.Next]
// returns one event at a time, following ROTATE events and the index into
// later files, up to an optional end position.
//
// What it owns: the event framing (header, CRC32 checksums, the format
// description that gives post-header lengths and the checksum algorithm),
// and the bodies of the events a row-based reader needs: QUERY (DDL, BEGIN,
// COMMIT), XID, MariaDB GTID, ROTATE, TABLE_MAP (with the optional metadata
// of binlog_row_metadata=FULL: column names, signedness, character sets,
// ENUM and SET values, the primary key) and the rows events WRITE, UPDATE
// and DELETE (v1, types 23-25, as MariaDB writes them, and v2, 30-32).
// Other events are returned with their header only. It knows nothing of
// DMS, Parquet or tables beyond one event: grouping events into
// transactions and mapping types is the caller's.
//
// Every length and offset read from a file is checked: a truncated or
// corrupt event, a checksum mismatch, a rows event whose table map is
// missing or a value that overruns its event is an error naming the file
// and the offset, never a panic.
//
// Column values, by column type (nil is SQL NULL):
//
//	TINYINT … BIGINT           int64, or uint64 when unsigned
//	FLOAT, DOUBLE              float32, float64
//	DECIMAL                    string, plain notation with exactly Scale fraction digits ("-1.50")
//	DATE                       Date (may be the zero date or have zero parts)
//	DATETIME                   DateTime (likewise), the wall clock as stored
//	TIMESTAMP                  time.Time in UTC; the zero TIMESTAMP is the Unix epoch
//	TIME                       time.Duration
//	YEAR                       int64 (0 for 0000)
//	BIT                        uint64
//	CHAR, VARCHAR, TEXT, JSON  string (the column's bytes; utf8mb4 is UTF-8)
//	BINARY, VARBINARY, BLOB    []byte (BINARY padded with zero bytes to its length)
//	ENUM, SET                  string (the member names; "" for ENUM's error value)
//
// Text and binary columns share binlog types and differ only by collation
// (63 is binary), which only binlog_row_metadata=FULL (or MINIMAL) logs.
// Without it string columns decode as []byte and ENUM and SET as their
// index and bit mask (uint64); [TableMap.HasFullMetadata] says which.
package binlog
