package workload

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RowKey renders a row's key the same from the source's values and the
// Iceberg table's (icecheck's): the key columns' values joined by NUL.
func RowKey(keys []string, row map[string]any) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprint(row[k])
	}
	return strings.Join(parts, "\x00")
}

// Rows reads SELECT * of table as the Iceberg table must hold it, under
// the README's type mapping, in icecheck's Go types: nil, int64, float64
// (a float32 widened exactly), string (decimals with their scale, json,
// uuid), []byte, bool, time.Time in UTC (dates at midnight; timestamps
// without time zone as their wall clock). It returns the column names in
// table order and the rows by [RowKey].
func (w *Workload) Rows(ctx context.Context, table string) ([]string, map[string]map[string]any, error) {
	t := w.Table(table)
	if t == nil {
		return nil, nil, fmt.Errorf("workload: no table %s", table)
	}
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("workload: %w", err)
	}
	defer conn.Close()
	names := make([]string, len(t.Columns))
	sel := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
		sel[i] = w.q(c.Name)
		if w.Engine == Postgres {
			sel[i] += "::text" // parsed below, as pgcapture parses pgoutput's text
		}
	}
	query := fmt.Sprintf("SELECT %s FROM %s", strings.Join(sel, ", "), w.q(t.Name))
	var args []any
	if w.Engine == MariaDB {
		// TIMESTAMP as instants in UTC; the placeholder makes the driver
		// prepare the statement: the binary protocol, FLOAT bit for bit.
		if _, err := conn.ExecContext(ctx, "SET time_zone = '+00:00'"); err != nil {
			return nil, nil, fmt.Errorf("workload: %w", err)
		}
		query += " WHERE ? = 1"
		args = []any{1}
	} else if _, err := conn.ExecContext(ctx, "SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'"); err != nil {
		return nil, nil, fmt.Errorf("workload: %w", err)
	}
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("workload: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]any{}
	raw := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, fmt.Errorf("workload: %w", err)
		}
		row := map[string]any{}
		for i, c := range t.Columns {
			v, err := canonical(w.Engine, &c, raw[i])
			if err != nil {
				return nil, nil, fmt.Errorf("workload: %s column %s: %w", table, c.Name, err)
			}
			row[c.Name] = v
		}
		out[RowKey(t.Keys, row)] = row
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("workload: %w", err)
	}
	return names, out, nil
}

// canonical is the table's value for a value the source returned.
func canonical(e Engine, c *Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	var s string
	switch x := v.(type) {
	case []byte:
		s = string(x)
	case string:
		s = x
	case int64:
		if c.Kind == KInt {
			return x, nil
		}
	case float32:
		if c.Kind == KFloat32 {
			return float64(x), nil
		}
	case float64:
		if c.Kind == KFloat64 || c.Kind == KFloat32 {
			return x, nil
		}
	}
	bad := func(err error) (any, error) {
		if err == nil {
			err = fmt.Errorf("unexpected %T %v", v, v)
		}
		return nil, fmt.Errorf("%s value %.40q: %w", c.Kind, s, err)
	}
	switch c.Kind {
	case KInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad(err)
		}
		return n, nil
	case KFloat32:
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return bad(err)
		}
		return float64(float32(f)), nil
	case KFloat64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad(err)
		}
		return f, nil
	case KDecimal:
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return bad(nil)
		}
		return r.FloatString(c.Scale), nil
	case KDate, KWall, KInstant:
		layout := "2006-01-02 15:04:05.999999"
		if c.Kind == KDate {
			layout = "2006-01-02"
		}
		if e == Postgres && c.Kind == KInstant {
			s = strings.TrimSuffix(s, "+00") // the session is in UTC
		}
		t, err := time.ParseInLocation(layout, s, time.UTC)
		if err != nil {
			return bad(err)
		}
		return t, nil
	case KText:
		return s, nil
	case KBytes:
		if e == Postgres {
			b, err := hex.DecodeString(strings.TrimPrefix(s, `\x`))
			if err != nil {
				return bad(err)
			}
			return b, nil
		}
		return slices.Clone([]byte(s)), nil
	case KBool:
		if e == Postgres {
			return s == "t" || s == "true", nil // boolout gives t, a ::text cast true
		}
		return strings.Trim(s, "\x00") != "", nil
	}
	return bad(nil)
}
