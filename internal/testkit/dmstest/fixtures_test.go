package dmstest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// TestUsersFixtures checks the committed fixtures of the worked users example
// (written by gendemo) hold what the example says.
func TestUsersFixtures(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2024, 8, 14, h, m, s, 0, time.UTC) }
	load := at(0, 0, 36)
	tests := []struct {
		file string
		want [][]any // Op, user_id, first_name, last_name, email, created_at, updated_at
	}{
		{"LOAD00000001.parquet", [][]any{
			{"I", int64(1), "user", "0", "user0@example.com", load, load},
			{"I", int64(2), "user", "1", "user1@example.com", load, load},
			{"I", int64(3), "user", "2", "user2@example.com", load, load},
			{"I", int64(4), "user", "3", "user3@example.com", load, load},
			{"I", int64(5), "user", "4", "user4@example.com", load, load},
		}},
		{"20240814-002642123.parquet", [][]any{
			{"I", int64(6), "user", "5", "user5@example.com", at(0, 26, 34), at(0, 26, 34)},
			{"U", int64(1), "user", "0", "update-user0@example.com", load, at(0, 26, 42)},
			{"D", int64(4), "user", "3", "user3@example.com", load, load},
		}},
	}
	names := []string{"Op", "user_id", "first_name", "last_name", "email", "created_at", "updated_at"}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "users", tt.file))
			if err != nil {
				t.Fatalf("%v (regenerate with go generate ./internal/testkit/dmstest)", err)
			}
			f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for i, fl := range f.Schema().Fields() {
				if i >= len(names) || fl.Name() != names[i] {
					t.Fatalf("column %d is %q, want columns %v", i, fl.Name(), names)
				}
			}
			var got [][]any
			for _, row := range readRows(t, f) {
				var r []any
				for i, v := range row {
					switch {
					case v.IsNull():
						r = append(r, nil)
					case i == 1:
						r = append(r, int64(v.Int32()))
					case i >= 5:
						r = append(r, time.UnixMicro(v.Int64()).UTC())
					default:
						r = append(r, string(v.ByteArray()))
					}
				}
				got = append(got, r)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rows:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}
