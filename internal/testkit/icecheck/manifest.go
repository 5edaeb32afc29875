package icecheck

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/hamba/avro/v2/ocf"
)

// Manifest entry status and content values from the Iceberg spec.
const (
	statusDeleted = 2

	contentData            = 0
	contentPositionDeletes = 1
	contentEqualityDeletes = 2
)

// manifestFile is a manifest list entry. Entries say themselves whether they
// are data or deletes, so the manifest's own content field is not needed.
type manifestFile struct {
	Path           string
	SequenceNumber int64 // 0 in v1, as the spec says
	SpecID         int   // partition_spec_id: the spec of every entry's partition
	// Entries counts by status, -1 when absent (optional in v1).
	Added, Existing, Deleted int64
	formatVersion            int
}

// decodeManifestFile reads a manifest list record decoded generically: the
// count fields are plain ints in v2 and nullable unions in v1, which no
// single struct field type of hamba/avro decodes both of.
func decodeManifestFile(rec map[string]any, formatVersion int) (manifestFile, error) {
	m := manifestFile{formatVersion: formatVersion}
	path, ok := rec["manifest_path"].(string)
	if !ok || path == "" {
		return m, errors.New("entry without a manifest_path")
	}
	m.Path = path
	if id, ok := avroInt(rec["partition_spec_id"]); ok {
		m.SpecID = int(id)
	}
	if formatVersion >= 2 {
		seq, ok := avroInt(rec["sequence_number"])
		if !ok {
			return m, fmt.Errorf("%s: no sequence_number", path)
		}
		m.SequenceNumber = seq
	}
	for field, dst := range map[string]*int64{"added_files_count": &m.Added, "existing_files_count": &m.Existing, "deleted_files_count": &m.Deleted} {
		*dst = -1
		if n, ok := avroInt(rec[field]); ok {
			*dst = n
		}
	}
	return m, nil
}

// avroInt reads an Avro int or long decoded into an any, unwrapping a
// non-null union branch ({"int": 3}).
func avroInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case map[string]any:
		if len(x) == 1 {
			for _, inner := range x {
				return avroInt(inner)
			}
		}
	}
	return 0, false
}

type manifestEntry struct {
	Status         int32    `avro:"status"`
	SequenceNumber *int64   `avro:"sequence_number"`
	DataFile       dataFile `avro:"data_file"`
}

type dataFile struct {
	Content     int32          `avro:"content"`
	FilePath    string         `avro:"file_path"`
	FileFormat  string         `avro:"file_format"`
	RecordCount int64          `avro:"record_count"`
	Partition   map[string]any `avro:"partition"`
}

// liveFile is a data or delete file of the current snapshot.
type liveFile struct {
	path        string // as written in the manifest: position deletes match it
	content     int32
	recordCount int64
	seq         int64 // data sequence number
	specID      int
	partition   map[string]any // partition field name → value (see File)
	scope       string         // spec and partition: a position delete applies within its own
}

// liveFiles reads the manifest list and its manifests and returns the files
// whose entries are not DELETED, with their data sequence numbers resolved.
func liveFiles(ctx context.Context, fetch func(string) ([]byte, error), manifestList string, formatVersion int) ([]liveFile, error) {
	var manifests []manifestFile
	err := readAvro(fetch, manifestList, func(dec *ocf.Decoder) error {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			return err
		}
		m, err := decodeManifestFile(rec, formatVersion)
		if err != nil {
			return fmt.Errorf("entry %d: %w", len(manifests), err)
		}
		manifests = append(manifests, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("icecheck: manifest list %s: %w", manifestList, err)
	}
	var files []liveFile
	for _, m := range manifests {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("icecheck: %w", err)
		}
		n := 0
		err := readAvro(fetch, m.Path, func(dec *ocf.Decoder) error {
			n++
			var e manifestEntry
			if err := dec.Decode(&e); err != nil {
				return err
			}
			if e.Status == statusDeleted {
				return nil
			}
			f, err := m.liveFile(e)
			if err != nil {
				return fmt.Errorf("entry %d: %w", n-1, err)
			}
			files = append(files, f)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("icecheck: manifest %s: %w", m.Path, err)
		}
		if m.Added >= 0 && m.Existing >= 0 && m.Deleted >= 0 {
			if want := m.Added + m.Existing + m.Deleted; int64(n) != want {
				return nil, fmt.Errorf("icecheck: manifest %s has %d entries, the manifest list says %d", m.Path, n, want)
			}
		}
	}
	return files, nil
}

// liveFile checks a live manifest entry and resolves its data sequence
// number: a null sequence_number is inherited from the manifest, which the
// spec allows for ADDED entries only; v1 tables have none, all are 0.
func (m manifestFile) liveFile(e manifestEntry) (liveFile, error) {
	df := e.DataFile
	f := liveFile{path: df.FilePath, content: df.Content, recordCount: df.RecordCount, specID: m.SpecID}
	f.partition = partitionValues(df.Partition)
	f.scope = partitionScope(f.specID, f.partition)
	switch {
	case m.formatVersion < 2:
		f.seq = 0
	case e.SequenceNumber != nil:
		f.seq = *e.SequenceNumber
	case e.Status == 1: // ADDED
		f.seq = m.SequenceNumber
	default:
		return f, fmt.Errorf("%s: EXISTING entry without a sequence number", df.FilePath)
	}
	if df.FilePath == "" {
		return f, fmt.Errorf("entry without a file_path")
	}
	switch df.Content {
	case contentData, contentPositionDeletes:
	case contentEqualityDeletes:
		return f, fmt.Errorf("%s: equality delete files are %w", df.FilePath, ErrUnsupported)
	default:
		return f, fmt.Errorf("%s: unknown content %d", df.FilePath, df.Content)
	}
	if !strings.EqualFold(df.FileFormat, "PARQUET") {
		what := df.FileFormat + " files are"
		if strings.EqualFold(df.FileFormat, "PUFFIN") {
			what = "deletion vectors are"
		}
		return f, fmt.Errorf("%s: %s %w", df.FilePath, what, ErrUnsupported)
	}
	return f, nil
}

// readAvro reads a local Avro object container file and calls each for
// every record.
func readAvro(fetch func(string) ([]byte, error), loc string, each func(*ocf.Decoder) error) (err error) {
	data, err := fetch(loc)
	if err != nil {
		return err
	}
	// hamba/avro's ocf decoder allocates the size a block header declares
	// before reading it (and panics on a negative one): check the framing
	// first so a damaged length is an error, not a huge allocation.
	if err := checkOCF(data); err != nil {
		return err
	}
	// A corrupt file must be an error, never a crash of the test binary.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("avro decoder panicked: %v", r)
		}
	}()
	dec, err := ocf.NewDecoder(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("reading Avro header: %w", err)
	}
	for dec.HasNext() {
		if err := each(dec); err != nil {
			return err
		}
	}
	if err := dec.Error(); err != nil {
		return fmt.Errorf("reading Avro blocks: %w", err)
	}
	return nil
}

// checkOCF checks the framing of an Avro object container file: magic,
// header metadata, and that every block is complete and ends with the sync
// marker of the header.
func checkOCF(data []byte) error {
	r := ocfReader{data: data}
	if !bytes.HasPrefix(data, []byte("Obj\x01")) {
		return errors.New("not an Avro object container file")
	}
	r.pos = 4
	for {
		count, err := r.long()
		if err != nil {
			return fmt.Errorf("Avro header: %w", err)
		}
		if count == 0 {
			break
		}
		if count < 0 {
			count = -count
			if _, err := r.long(); err != nil { // byte size of the block
				return fmt.Errorf("Avro header: %w", err)
			}
		}
		for i := int64(0); i < count*2; i++ { // key and value
			n, err := r.long()
			if err != nil {
				return fmt.Errorf("Avro header: %w", err)
			}
			if _, err := r.take(n); err != nil {
				return fmt.Errorf("Avro header: %w", err)
			}
		}
	}
	sync, err := r.take(16)
	if err != nil {
		return fmt.Errorf("Avro header: %w", err)
	}
	for block := 0; r.pos < len(data); block++ {
		count, err := r.long()
		if err == nil && count < 0 {
			err = fmt.Errorf("negative record count %d", count)
		}
		var size int64
		if err == nil {
			size, err = r.long()
		}
		if err == nil {
			_, err = r.take(size)
		}
		var marker []byte
		if err == nil {
			marker, err = r.take(16)
		}
		if err == nil && !bytes.Equal(marker, sync) {
			err = errors.New("sync marker mismatch")
		}
		if err != nil {
			return fmt.Errorf("Avro block %d: %w", block, err)
		}
	}
	return nil
}

type ocfReader struct {
	data []byte
	pos  int
}

// long reads an Avro long: a zig-zag varint, the encoding of binary.Varint.
func (r *ocfReader) long() (int64, error) {
	v, n := binary.Varint(r.data[r.pos:])
	if n <= 0 {
		return 0, errors.New("truncated or invalid varint")
	}
	r.pos += n
	return v, nil
}

func (r *ocfReader) take(n int64) ([]byte, error) {
	if n < 0 || n > int64(len(r.data)-r.pos) {
		return nil, fmt.Errorf("length %d past the end of the file", n)
	}
	b := r.data[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// partitionValues normalises a decoded partition record: ints and longs
// to int64, a non-null union branch ({"int": 3}) to its value; dates and
// timestamps stay the time.Time hamba/avro decodes their logical types to,
// decimals the *big.Rat.
func partitionValues(rec map[string]any) map[string]any {
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		out[k] = partitionValue(v)
	}
	return out
}

func partitionValue(v any) any {
	if u, ok := v.(map[string]any); ok && len(u) == 1 {
		for _, inner := range u {
			return partitionValue(inner)
		}
	}
	if n, ok := avroInt(v); ok {
		return n
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC()
	}
	return v
}

// partitionScope identifies a spec and partition tuple: the Iceberg v2
// spec applies a position delete file to a data file only when both have
// the same spec and partition values.
func partitionScope(specID int, partition map[string]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", specID)
	for _, k := range slices.Sorted(maps.Keys(partition)) {
		v := partition[k]
		if r, ok := v.(*big.Rat); ok {
			v = r.RatString()
		}
		fmt.Fprintf(&b, "|%q=%T:%v", k, v, v)
	}
	return b.String()
}
