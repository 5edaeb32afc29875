package icecheck

import (
	"bytes"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"
)

func TestPositionDeleteSequenceNumbers(t *testing.T) {
	d := make(positionDeletes)
	d.add("file:///t/data/a.parquet", 3, 5)
	d.add("file:///t/data/a.parquet", 3, 2) // a lower one does not win
	d.add("/t/data/b.parquet", 0, 7)
	tests := []struct {
		path     string
		pos, seq int64
		want     bool
	}{
		{"file:///t/data/a.parquet", 3, 4, true},  // older data file
		{"file:///t/data/a.parquet", 3, 5, true},  // same sequence number: applies
		{"file:///t/data/a.parquet", 3, 6, false}, // data file newer than the delete
		{"file:///t/data/a.parquet", 2, 1, false}, // other position
		{"/t/data/a.parquet", 3, 1, false},        // paths compare as strings
		{"/t/data/b.parquet", 0, 7, true},
	}
	for _, tt := range tests {
		if got := d.deleted(tt.path, tt.pos, tt.seq); got != tt.want {
			t.Errorf("deleted(%s, %d, seq %d) = %v, want %v", tt.path, tt.pos, tt.seq, got, tt.want)
		}
	}
}

func TestSequenceNumberInheritance(t *testing.T) {
	seq := func(n int64) *int64 { return &n }
	m := manifestFile{Path: "m.avro", SequenceNumber: 9, formatVersion: 2}
	parquetFile := dataFile{FilePath: "/d.parquet", FileFormat: "PARQUET"}
	tests := []struct {
		name    string
		m       manifestFile
		e       manifestEntry
		want    int64
		wantErr string
	}{
		{"added inherits", m, manifestEntry{Status: 1, DataFile: parquetFile}, 9, ""},
		{"explicit wins", m, manifestEntry{Status: 1, SequenceNumber: seq(4), DataFile: parquetFile}, 4, ""},
		{"existing keeps its own", m, manifestEntry{Status: 0, SequenceNumber: seq(3), DataFile: parquetFile}, 3, ""},
		{"existing without one", m, manifestEntry{Status: 0, DataFile: parquetFile}, 0, "EXISTING entry without a sequence number"},
		{"v1 is zero", manifestFile{Path: "m", formatVersion: 1}, manifestEntry{Status: 0, DataFile: parquetFile}, 0, ""},
		{"equality deletes", m, manifestEntry{Status: 1, DataFile: dataFile{Content: 2, FilePath: "/e.parquet", FileFormat: "PARQUET"}}, 0, "equality delete"},
		{"deletion vector", m, manifestEntry{Status: 1, DataFile: dataFile{Content: 1, FilePath: "/dv.puffin", FileFormat: "PUFFIN"}}, 0, "deletion vectors"},
		{"orc", m, manifestEntry{Status: 1, DataFile: dataFile{FilePath: "/d.orc", FileFormat: "ORC"}}, 0, "ORC files"},
		{"unknown content", m, manifestEntry{Status: 1, DataFile: dataFile{Content: 7, FilePath: "/x", FileFormat: "PARQUET"}}, 0, "unknown content 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.m.liveFile(tt.e)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || f.seq != tt.want {
				t.Fatalf("seq = %d, %v; want %d", f.seq, err, tt.want)
			}
		})
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/t/metadata/1.metadata.json":                  "/tmp/t/metadata/1.metadata.json",
		"file:///tmp/t/metadata/1.metadata.json":           "/tmp/t/metadata/1.metadata.json",
		"file:/tmp/t/x.avro":                               "/tmp/t/x.avro",
		"file://localhost/tmp/t/x.avro":                    "/tmp/t/x.avro",
		"file:///tmp/t/%41 #?.parquet":                     "/tmp/t/%41 #?.parquet",
		"/tmp/t/../t/x.parquet":                            "/tmp/t/x.parquet",
		"file:///tmp/warehouse/db.db/t/data/00000.parquet": "/tmp/warehouse/db.db/t/data/00000.parquet",
	} {
		if got, err := localPath(in); err != nil || got != want {
			t.Errorf("localPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"s3://b/k", "s3a://b/k", "abfss://c@a/k", "", "rel/x.json", "file://host/x"} {
		if _, err := localPath(in); err == nil {
			t.Errorf("localPath(%q) succeeded", in)
		}
	}
	if _, err := localPath("s3://b/k"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("s3 error %v does not wrap ErrUnsupported", err)
	}
}

func TestDecimals(t *testing.T) {
	tests := []struct {
		b     []byte
		scale int
		want  string
	}{
		{[]byte{0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, "18446744073709551615"},
		{[]byte{0xff, 0x6a}, 2, "-1.50"},
		{[]byte{0x05}, 3, "0.005"},
		{[]byte{0xfb}, 3, "-0.005"},
		{[]byte{0x00}, 2, "0.00"},
		{[]byte{0x80}, 0, "-128"},
	}
	for _, tt := range tests {
		if got := formatDecimal(twosComplement(tt.b), tt.scale); got != tt.want {
			t.Errorf("% x scale %d = %s, want %s", tt.b, tt.scale, got, tt.want)
		}
	}
	if got := formatDecimal(big.NewInt(-123456), 2); got != "-1234.56" {
		t.Errorf("got %s", got)
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]icebergType{
		"decimal(20, 0)": {name: "decimal", precision: 20},
		"decimal(9,2)":   {name: "decimal", precision: 9, scale: 2},
		"fixed[16]":      {name: "fixed", length: 16},
		"timestamptz":    {name: "timestamptz"},
	} {
		if got, err := parseType(in); err != nil || got != want {
			t.Errorf("parseType(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"time", "struct", "list", "decimal(39, 0)", "decimal(5, 6)", "fixed[0]", "variant"} {
		if _, err := parseType(in); err == nil {
			t.Errorf("parseType(%q) succeeded", in)
		}
	}
}

func TestCheckOCF(t *testing.T) {
	sc := avro.MustParse(`{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}`)
	var buf bytes.Buffer
	enc, err := ocf.NewEncoderWithSchema(sc, &buf, ocf.WithCodec(ocf.Deflate), ocf.WithBlockLength(2))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := enc.Encode(map[string]any{"a": int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	if err := checkOCF(good); err != nil {
		t.Fatalf("checkOCF(valid) = %v", err)
	}
	// Every cut inside the header or a block is caught; a cut exactly at a
	// block boundary is a shorter valid file and cannot be.
	caught := 0
	for n := 0; n < len(good); n++ {
		if checkOCF(good[:n]) != nil {
			caught++
		}
	}
	if caught < len(good)-3 {
		t.Errorf("only %d of %d truncations caught", caught, len(good))
	}
	bad := append([]byte{}, good...)
	bad[len(bad)-1] ^= 1
	if err := checkOCF(bad); err == nil || !strings.Contains(err.Error(), "sync marker") {
		t.Errorf("damaged sync marker: %v", err)
	}
	// A huge declared block size is an error, not an allocation.
	huge := append(append([]byte{}, good...), 0x02, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
	if err := checkOCF(huge); err == nil {
		t.Error("huge block size accepted")
	}
}

func TestCheckTotals(t *testing.T) {
	files := []liveFile{{content: contentData, recordCount: 4}, {content: contentData, recordCount: 1}, {content: contentPositionDeletes, recordCount: 2}}
	ok := &snapshot{Summary: map[string]string{"total-data-files": "2", "total-delete-files": "1", "total-records": "5", "total-position-deletes": "2", "operation": "delete"}}
	if err := checkTotals(ok, files); err != nil {
		t.Errorf("consistent totals: %v", err)
	}
	if err := checkTotals(&snapshot{}, files); err != nil {
		t.Errorf("no totals: %v", err)
	}
	bad := &snapshot{SnapshotID: 7, Summary: map[string]string{"total-records": "6"}}
	if err := checkTotals(bad, files); err == nil || !strings.Contains(err.Error(), "total-records=6") {
		t.Errorf("wrong total: %v", err)
	}
	if err := checkTotals(&snapshot{Summary: map[string]string{"total-data-files": "two"}}, files); err == nil {
		t.Error("unparsable total accepted")
	}
}

// A position delete applies only within its own spec and partition, so the
// scope tells apart specs, values and types; union branches and Avro ints
// normalise first.
func TestPartitionScope(t *testing.T) {
	base := partitionScope(0, partitionValues(map[string]any{"a": map[string]any{"int": int32(3)}, "b": nil}))
	if want := partitionScope(0, map[string]any{"a": int64(3), "b": nil}); base != want {
		t.Errorf("normalised scope %q, want %q", base, want)
	}
	for _, other := range []string{
		partitionScope(1, map[string]any{"a": int64(3), "b": nil}),
		partitionScope(0, map[string]any{"a": int64(4), "b": nil}),
		partitionScope(0, map[string]any{"a": "3", "b": nil}),
		partitionScope(0, map[string]any{"a": int64(3), "b": "<nil>"}),
		partitionScope(0, map[string]any{"a": int64(3)}),
	} {
		if other == base {
			t.Errorf("scope %q collides with %q", other, base)
		}
	}
	d := make(positionDeletes)
	d.add(base+"\x00/t/a.parquet", 1, 2)
	if d.deleted(partitionScope(0, map[string]any{"a": int64(4), "b": nil})+"\x00/t/a.parquet", 1, 1) {
		t.Error("a delete of another partition applied")
	}
}
