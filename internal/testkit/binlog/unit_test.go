package binlog

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"
)

// Values decoded from hand-made bytes: the examples of MySQL's binary
// DECIMAL documentation, and encodings the server under test does not
// write (rows events v2, the old temporal types).
func TestDecodeValues(t *testing.T) {
	cases := []struct {
		name string
		col  Column
		hex  string
		want any
	}{
		{"decimal(14,4) positive", Column{Type: TypeNewDecimal, Precision: 14, Scale: 4}, "810dfb38d204d2", "1234567890.1234"},
		{"decimal(14,4) negative", Column{Type: TypeNewDecimal, Precision: 14, Scale: 4}, "7ef204c72dfb2d", "-1234567890.1234"},
		{"decimal(5,2) zero", Column{Type: TypeNewDecimal, Precision: 5, Scale: 2}, "800000", "0.00"},
		{"decimal(5,2) negative zero", Column{Type: TypeNewDecimal, Precision: 5, Scale: 2}, "7fffff", "0.00"},
		{"old timestamp", Column{Type: TypeTimestamp}, "01000000", time.Unix(1, 0).UTC()},
		{"old datetime", Column{Type: TypeDateTime}, "a44787ae68120000",
			DateTime{Date: Date{2024, 8, 14}, Hour: 0, Minute: 0, Second: 36}},
		{"old time negative", Column{Type: TypeTime}, "ffffff", -time.Second},
		{"year zero", Column{Type: TypeYear}, "00", int64(0)},
		{"int24 max", Column{Type: TypeInt24}, "ffff7f", int64(8388607)},
		{"int24 min", Column{Type: TypeInt24}, "000080", int64(-8388608)},
		{"enum without names", Column{Type: TypeEnum, Length: 1}, "02", uint64(2)},
		{"set without names", Column{Type: TypeSet, Length: 1}, "05", uint64(5)},
		{"varchar without charset", Column{Type: TypeVarchar, Length: 10}, "026869", []byte("hi")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			d := &decoder{b: b}
			got, err := d.value(&tc.col)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if d.rest() != 0 {
				t.Errorf("%d bytes left", d.rest())
			}
			for cut := range len(b) { // every truncation is an error, never a panic
				if _, err := (&decoder{b: b[:cut]}).value(&tc.col); err == nil && cut < len(b) && tc.col.Type != TypeNull {
					t.Errorf("cut at %d: no error", cut)
				}
			}
		})
	}
}

// Rows events v1 and v2 (MySQL 5.6+ writes v2, with its extra data)
// decode alike.
func TestRowsEventVersions(t *testing.T) {
	tm := &TableMap{ID: 7, Schema: "s", Table: "t", Columns: []Column{{Type: TypeLong}, {Type: TypeVarchar, Length: 20, Collation: 45}}}
	maps := map[uint64]*TableMap{7: tm}
	rowsBody := []byte{2, 0x03, 0x00, 0x2a, 0, 0, 0, 2, 'h', 'i', 0x02, 0x07, 0, 0, 0}
	v1 := append([]byte{7, 0, 0, 0, 0, 0, 1, 0}, rowsBody...)
	v2 := append([]byte{7, 0, 0, 0, 0, 0, 1, 0, 4, 0, 0xaa, 0xbb}, rowsBody...)
	want := []Change{{After: []any{int64(42), "hi"}}, {After: []any{int64(7), nil}}}
	for name, c := range map[string]struct {
		t    EventType
		body []byte
		post int
	}{"v1": {WriteRowsEventV1, v1, 8}, "v2": {WriteRowsEventV2, v2, 10}} {
		got, err := parseRows(c.t, c.body, c.post, maps)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Kind != Insert || got.Table != tm || !reflect.DeepEqual(got.Rows, want) {
			t.Errorf("%s: %+v", name, got)
		}
	}
	if _, err := parseRows(WriteRowsEventV1, append([]byte{8, 0, 0, 0, 0, 0, 1, 0}, rowsBody...), 8, maps); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown table id: %v", err)
	}
}
