package capture

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/icemerge/icemerge/internal/testkit/binlog"
)

// querier is what the full load needs of a connection.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// collations maps every collation id of the server to its character set,
// to read the collation ids of binlog table maps.
func collations(ctx context.Context, q querier) (map[uint64]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL AND CHARACTER_SET_NAME IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("reading information_schema.COLLATIONS: %w", err)
	}
	defer rows.Close()
	out := map[uint64]string{}
	for rows.Next() {
		var id uint64
		var cs string
		if err := rows.Scan(&id, &cs); err != nil {
			return nil, err
		}
		out[id] = cs
	}
	return out, rows.Err()
}

// dataTypes maps information_schema.COLUMNS.DATA_TYPE to the binlog type
// of the column (MariaDB reports a JSON column as longtext).
var dataTypes = map[string]binlog.ColumnType{
	"tinyint": binlog.TypeTiny, "smallint": binlog.TypeShort, "mediumint": binlog.TypeInt24,
	"int": binlog.TypeLong, "integer": binlog.TypeLong, "bigint": binlog.TypeLongLong,
	"float": binlog.TypeFloat, "double": binlog.TypeDouble, "real": binlog.TypeDouble,
	"decimal": binlog.TypeNewDecimal, "numeric": binlog.TypeNewDecimal,
	"date": binlog.TypeDate, "datetime": binlog.TypeDateTime2, "timestamp": binlog.TypeTimestamp2,
	"time": binlog.TypeTime2, "year": binlog.TypeYear, "bit": binlog.TypeBit,
	"char": binlog.TypeString, "binary": binlog.TypeString,
	"varchar": binlog.TypeVarchar, "varbinary": binlog.TypeVarchar,
	"tinytext": binlog.TypeBlob, "text": binlog.TypeBlob, "mediumtext": binlog.TypeBlob, "longtext": binlog.TypeBlob,
	"json":     binlog.TypeBlob,
	"tinyblob": binlog.TypeBlob, "blob": binlog.TypeBlob, "mediumblob": binlog.TypeBlob, "longblob": binlog.TypeBlob,
	"enum": binlog.TypeEnum, "set": binlog.TypeSet,
}

// tableColumns describes the columns of schema.table from
// information_schema, in table order, and its primary key (indexes of
// cols, in key order).
func tableColumns(ctx context.Context, q querier, schema, table string) (cols []column, pk []int, err error) {
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_SET_NAME
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the columns of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, dataType, columnType string
		var precision, scale sql.NullInt64
		var charset sql.NullString
		if err := rows.Scan(&name, &dataType, &columnType, &precision, &scale, &charset); err != nil {
			return nil, nil, fmt.Errorf("reading the columns of %s.%s: %w", schema, table, err)
		}
		typ, ok := dataTypes[strings.ToLower(dataType)]
		if !ok {
			return nil, nil, fmt.Errorf("%s.%s column %s: %w %s", schema, table, name, errUnsupported, columnType)
		}
		c := column{name: name, typ: typ, unsigned: strings.Contains(strings.ToLower(columnType), "unsigned"),
			precision: int(precision.Int64), scale: int(scale.Int64)}
		switch typ {
		case binlog.TypeString, binlog.TypeVarchar, binlog.TypeBlob, binlog.TypeEnum, binlog.TypeSet:
			if !charset.Valid || charset.String == "binary" {
				c.binary = typ != binlog.TypeEnum && typ != binlog.TypeSet
			} else {
				c.charset = charset.String
			}
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if len(cols) == 0 {
		return nil, nil, fmt.Errorf("table %s.%s not found (information_schema.COLUMNS lists no column): check --tables", schema, table)
	}
	keys, err := q.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the primary key of %s.%s: %w", schema, table, err)
	}
	defer keys.Close()
	for keys.Next() {
		var name string
		if err := keys.Scan(&name); err != nil {
			return nil, nil, fmt.Errorf("reading the primary key of %s.%s: %w", schema, table, err)
		}
		i := slices.IndexFunc(cols, func(c column) bool { return c.name == name })
		if i < 0 {
			return nil, nil, fmt.Errorf("primary key column %s of %s.%s is not among its columns", name, schema, table)
		}
		pk = append(pk, i)
	}
	return cols, pk, keys.Err()
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// selectAll reads every row of schema.table with the binary protocol (a
// prepared statement), which gives FLOAT and DOUBLE bit for bit, and calls
// each with the row's values converted as fromBinlog converts CDC values.
func selectAll(ctx context.Context, q querier, schema, table string, cols []column, each func(row []any) error) error {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.name)
	}
	// The placeholder makes database/sql prepare the statement: the binary
	// protocol, not the text one, whose FLOAT has six digits.
	query := fmt.Sprintf("SELECT %s FROM %s.%s WHERE ? = 1", strings.Join(names, ", "), quoteIdent(schema), quoteIdent(table))
	rows, err := q.QueryContext(ctx, query, 1)
	if err != nil {
		return fmt.Errorf("full load of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	raw := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	n := 0
	for rows.Next() {
		n++
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("full load of %s.%s, row %d: %w", schema, table, n, err)
		}
		row := make([]any, len(cols))
		for i, c := range cols {
			v, err := c.fromSQL(raw[i])
			if err != nil {
				return fmt.Errorf("full load of %s.%s, row %d: %w", schema, table, n, err)
			}
			row[i] = v
		}
		if err := each(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("full load of %s.%s: %w", schema, table, err)
	}
	return nil
}
