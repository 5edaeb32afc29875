// Package merge owns the semantics of an icemerge run: which raw DMS objects
// are data files and in what order they apply, how a DMS Parquet file is read
// into typed changes, how the changes are deduplicated per primary key, and
// which rows of the table a batch deletes and which it writes.
//
// The rules, in the order a run applies them:
//
//   - Files apply in source order: full-load (LOAD…) files before CDC files,
//     then by object key. Rows apply in file order.
//   - A file without an Op column holds inserts. Op is I, U or D, matched
//     case-insensitively; anything else, or a null, is an error naming the
//     file, row and value.
//   - Per key the winning change is the greatest by (order columns…, file
//     order, row order). Nulls in an order column sort first.
//   - A winner never replaces a live table row whose order value is newer:
//     late or replayed changes leave newer rows alone. On equal order values
//     the incoming change wins.
//   - A D winner deletes the key's live rows; an I or U winner replaces them
//     with exactly the winning row.
//
// The package never imports AWS or catalog code: it works on Arrow records and
// on plain descriptions of objects, so every rule is tested without a table.
package merge
