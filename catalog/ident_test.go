package catalog_test

import (
	"strings"
	"testing"

	"github.com/icemerge/icemerge/catalog"
)

// Ident accepts exactly the names Athena can query and nothing that could
// leave a bookmark folder or address another table's.
func TestIdent(t *testing.T) {
	long := strings.Repeat("a", catalog.MaxNameBytes)
	for _, ok := range []struct{ in, ns, name string }{
		{"test_db.users", "test_db", "users"},
		{"db.t", "db", "t"},
		{"t_testfilelock_12_a3f09c.users", "t_testfilelock_12_a3f09c", "users"}, // testservers' moto databases
		{"_raw.2024_orders", "_raw", "2024_orders"},                             // Athena reads these, quoted
		{long + "." + long, long, long},
	} {
		id, err := catalog.Ident(ok.in)
		if err != nil || len(id) != 2 || id[0] != ok.ns || id[1] != ok.name {
			t.Errorf("Ident(%q) = %q, %v; want [%s %s]", ok.in, id, err, ok.ns, ok.name)
		}
	}
	for _, bad := range []struct{ in, says string }{
		{"", "NAMESPACE.NAME"},
		{"users", "NAMESPACE.NAME"},
		{".users", "empty"},
		{"test_db.", "empty"},
		{"a.b.c", "exactly one dot"},
		{"a..b", "exactly one dot"},
		{"a.b c", "' '"},
		{"ns.t*", "'*'"},
		{"x.../../../../tmp/t", "exactly one dot"},
		{"x.../../ns.other", "exactly one dot"},
		{"ns/x.t", "'/'"},
		{"ns.t/u", "'/'"},
		{`ns.a\b`, `'\\'`},
		{"ns.t\x00", `'\x00'`},
		{"Test_DB.users", "lower case (\"test_db\")"},
		{"test_db.Users", "lower case"},
		{"my-db.users", "'-'"},
		{"db.ü", "'ü'"},
		{long + "a.t", "256 bytes"},
		{"t." + long + "a", "256 bytes"},
	} {
		id, err := catalog.Ident(bad.in)
		if err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("Ident(%q) = %q, %v; want an error saying %s", bad.in, id, err, bad.says)
		}
	}
}
