// Package pgcapture writes what AWS DMS writes to an S3 target with
// DataFormat=parquet for a PostgreSQL source (CONTEXT.md §2), from a
// logical replication slot (pgoutput, github.com/jackc/pglogrepl): the
// PostgreSQL side of icemerge's end-to-end tests, the twin of
// internal/testkit/capture (MariaDB). Files go through dmstest.Target:
// Output/<schema>/<table>/LOAD00000001.parquet… then CDC files
// yyyyMMdd-HHmmssSSS.parquet, in DMS's Parquet shape.
//
// The first [Run] creates a publication for the tables and a slot with an
// exported snapshot (CREATE_REPLICATION_SLOT … LOGICAL pgoutput
// EXPORT_SNAPSHOT), reads every table in a REPEATABLE READ transaction
// with SET TRANSACTION SNAPSHOT (the full load), then streams the slot from
// its consistent point. Each run streams up to a non-transactional logical
// message it writes at its start (pg_logical_emit_message, PostgreSQL 14
// or later), so it ends after every transaction committed before it
// started. The slot's position is confirmed only after the files and the
// state (Output/.pgcapture-state.json) are written: a run that fails is
// read again by the next one, as a DMS task restart.
//
// Rows, as DMS writes them for a PostgreSQL source:
//
//   - I: the new row. U: the new row; a primary key change is one U with
//     the new key (DMS writes the U row; the old key is named only by
//     before-image columns).
//   - D: the old tuple pgoutput sends: under REPLICA IDENTITY DEFAULT the
//     key columns only, every other column null (updated_at too); under
//     FULL the whole old row.
//   - Options.BeforeImage (add-before-image-columns, pk-only): a
//     <prefix><key column> column per primary key column after the table's
//     columns, in table order: null in I rows and the full load, the old
//     key in U rows (pgoutput sends it for a key change under DEFAULT, and
//     the whole old row under FULL; otherwise the key is unchanged) and the
//     deleted key in D rows. See internal/testkit/capture for the sources.
//   - A TRUNCATE, with Options.HandleSourceTableTruncated, deletes every
//     object of the table's folder; [Reload] deletes them and writes a new
//     full load from a temporary slot's snapshot at the point of the
//     stream where it was taken.
//   - An unchanged TOASTed value of an UPDATE (pgoutput's 'u'): under
//     REPLICA IDENTITY FULL the value from the old row, which pgoutput
//     sends in full; under DEFAULT the run fails with [ErrUnchangedTOAST].
//     What DMS writes then is not documented: the DMS user guide maps
//     text, jsonb and bytea to LOB types (NCLOB, BLOB), whose CDC values
//     depend on the task's LOB mode, and no public source was found that
//     shows DMS's output for them (other pipelines write NULL or a
//     placeholder). Refusing keeps a test from relying on a guess.
//
// Types (README "Type mapping"; DMS user guide, "Source data types for
// PostgreSQL"): smallint INT(16), integer INT(32), bigint INT(64),
// numeric(p,s) DECIMAL(p,s) up to p=38 and a string beyond, numeric
// without precision DECIMAL(28,6) (a value whose rounding and truncation
// to 6 digits differ is refused: DMS's example does not tell them apart),
// boolean BOOLEAN (the DMS type table says CHAR(5) 'true'/'false'; the
// README's BOOLEAN is followed here), real FLOAT, double precision
// DOUBLE, date DATE, timestamp a TIMESTAMP not adjusted to UTC,
// timestamptz a UTC TIMESTAMP (microseconds), text/varchar/char/name a
// STRING (char(n) padded, as PostgreSQL outputs it), uuid/json/jsonb a
// STRING (their text form), bytea BYTE_ARRAY, arrays a STRING of their
// text form (DMS maps ARRAY to NCLOB). Other types (time, interval,
// money, enums, …) and infinite dates and timestamps are refused with
// [ErrUnsupported] or an error naming the value.
//
// Values are read in text form on every connection (TimeZone=UTC,
// DateStyle=ISO, extra_float_digits=3, bytea_output=hex), in the full load
// as in the stream, so both give the same values.
package pgcapture
