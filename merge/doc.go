// Package merge owns the semantics of an icemerge run: which raw DMS objects
// are data files and in what order they apply, how a DMS Parquet file is read
// into typed changes, how the changes are deduplicated per primary key, and
// which rows of the table a batch deletes and which it writes.
//
// The rules, in the order a run applies them (testdata/plan holds them as
// examples, run by TestPlanDataDriven):
//
//   - Files apply in source order: full-load (LOAD…) files before CDC files,
//     then by object key. Rows apply in file order.
//   - A file without an Op column holds inserts. Op is I, U or D, matched
//     case-insensitively; anything else, or a null, is an error naming the
//     file, row and value.
//   - Before images (File.SplitBeforeImage): the BI_<column> columns of DMS's
//     add-before-image-columns rule never become table columns. A U whose
//     before-image key differs from its key is a D of the old key followed by
//     the U of the new one, both at the U's place in source order with its
//     order value; so a chain of key changes leaves only the last key.
//     Without before images the old key of a key change is not named, and its
//     row stays.
//   - Per key, the changes of a run apply in source order, each against the
//     key's winner so far. A change with an order value wins if its value is
//     at least the winner's: the winner is the greatest by (order value,
//     file, row). A change with a null in any order column (a key-only delete:
//     DMS writes only the key of a deleted row for a PostgreSQL source with
//     REPLICA IDENTITY DEFAULT, and for Oracle or SQL Server without full
//     supplemental logging) is ordered by source order alone: it wins over
//     the changes before it and loses to every change after it.
//   - Against the table (the changes of earlier runs) a winner is ordered by
//     its order value, unless it is or follows (in the run) a change of its
//     key with a null order value. Ordered by value, it never replaces a
//     live row whose order value is greater, nor revives a key whose
//     tombstone is greater: it is stale; on equal values the incoming change
//     wins. Otherwise it applies whatever the table holds: source order says
//     it comes after. A live row with a null order value loses to any change.
//   - A D winner deletes the key's live rows; an I or U winner replaces them
//     with exactly the winning row.
//   - Tombstones (see Tombstones; kept by the caller for a TTL): a D winner
//     that applies records the greatest order value its key is known to have
//     had, of the key's changes in the run and its live rows. For a D with an
//     order value that is its own. For a key-only delete it is the deleted
//     row's value (or that of a newer change of the run before it): what a
//     delete carrying the row's image would have recorded. A key-only delete
//     of a key with no known value records none. A change of a later run
//     older than the tombstone is stale; one at least as new brings the key
//     back and the tombstone goes; an I or U winner that applies removes it.
//   - So, across runs, a key-only delete deletes whatever its key holds,
//     also when it is replayed or arrives late: it carries nothing to compare.
//     And a change of a later run after a key-only delete is ordered by its
//     value against the deleted row's: a re-insert older than that row stays
//     out (in one run source order lets it in).
//
// The package never imports AWS or catalog code: it works on Arrow records and
// on plain descriptions of objects, so every rule is tested without a table.
package merge
