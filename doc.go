// Package icemerge applies the change files AWS DMS writes to S3 (Parquet,
// full load then CDC, an Op column of I, U, D) to an Apache Iceberg table,
// one atomic commit per run, exactly once. It is the library behind the
// icemerge command and its Lambda handler; every entry point calls the same
// functions:
//
//   - [Run] applies one table's unprocessed files; [RunDatabase] runs every
//     table folder of a schema folder.
//   - [Maintain] compacts, rewrites manifests, expires snapshots and removes
//     orphan files.
//   - [Status] says what a table's next run will find; [Rewind], [Reset] and
//     [BookmarkOf] operate its bookmark; [Show] reads its rows.
//
// Each takes an options struct (defaults in its struct tags, [NewRunOptions]
// and friends; Validate before any I/O) and its dependencies ([Deps], small
// interfaces declared here: [Catalog], [BookmarkStore], [Locker], [Source]),
// and returns a result value. Nothing here prints: the Write* functions
// write a result for a person, and the report types are its JSON.
//
// The run protocol (docs/exactly-once.md) reads as the steps of run in
// run.go: take the lock, load the table, reconcile the bookmark with it,
// list, read and quarantine, evolve or create the schema, plan, commit,
// finish. The semantics (ordering, deduplication, the apply plan) are
// package merge's; Iceberg is package catalog's; the bookmark and the run
// lock are package bookmark's; DMS folders and their naming rules are
// internal/source's.
package icemerge
