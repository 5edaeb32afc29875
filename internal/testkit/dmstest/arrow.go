package dmstest

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
)

// ArrowValue returns arr[i] in the Go form internal/testkit/icecheck gives table
// values, so a table read through Arrow (iceberg-go's scan) compares with
// what icecheck reads: nil for null, int64 for int and long, float64 for
// float and double, bool, string, []byte (a copy) for binary, the decimal as
// a string with its scale, time.Time in UTC for date and timestamps, and a
// UUID's string.
func ArrowValue(arr arrow.Array, i int) (any, error) {
	if arr.IsNull(i) {
		return nil, nil
	}
	switch a := arr.(type) {
	case *array.Int32:
		return int64(a.Value(i)), nil
	case *array.Int64:
		return a.Value(i), nil
	case *array.Float32:
		return float64(a.Value(i)), nil
	case *array.Float64:
		return a.Value(i), nil
	case *array.Boolean:
		return a.Value(i), nil
	case *array.String:
		return a.Value(i), nil
	case *array.LargeString:
		return a.Value(i), nil
	case *array.Binary:
		return append([]byte{}, a.Value(i)...), nil
	case *array.LargeBinary:
		return append([]byte{}, a.Value(i)...), nil
	case *array.FixedSizeBinary:
		return append([]byte{}, a.Value(i)...), nil
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale), nil
	case *array.Date32:
		return a.Value(i).ToTime().UTC(), nil
	case *array.Timestamp:
		return a.Value(i).ToTime(a.DataType().(*arrow.TimestampType).Unit).UTC(), nil
	case *extensions.UUIDArray:
		return a.Value(i).String(), nil
	}
	return nil, fmt.Errorf("dmstest.ArrowValue: unexpected %s column", arr.DataType())
}
