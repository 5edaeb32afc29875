package testservers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMariaDBBinlog pins the settings the capture harness relies on: the
// binary log on, ROW format, full row image and full row metadata, files
// readable in BinlogDir and listed in BinlogIndex.
func TestMariaDBBinlog(t *testing.T) {
	t.Parallel()
	s := MariaDB(t)
	t.Logf("MariaDB %s ready after %v", s.Addr, s.startup.Round(time.Millisecond))
	db := s.Open(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	want := map[string]string{
		"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
		"binlog_row_metadata": "FULL", "binlog_checksum": "CRC32", "time_zone": s.TimeZone,
		"character_set_server": "utf8mb4",
	}
	for name, v := range want {
		var n, got string
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE '"+name+"'").Scan(&n, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	file, pos, err := s.BinlogPosition(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(s.BinlogIndex)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(index), file) {
		t.Errorf("index %s does not list the current file %s:\n%s", s.BinlogIndex, file, index)
	}
	st, err := os.Stat(filepath.Join(s.BinlogDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < int64(pos) {
		t.Errorf("%s is %d bytes, SHOW MASTER STATUS says %d", file, st.Size(), pos)
	}
	db2 := s.NewDatabase(t)
	if _, err := s.Open(t, db2).ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
}
