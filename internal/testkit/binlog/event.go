package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EventType is the type code of an event header.
type EventType uint8

// The event types this package reads or recognises.
const (
	QueryEvent             EventType = 2
	StopEvent              EventType = 3
	RotateEvent            EventType = 4
	IntvarEvent            EventType = 5
	RandEvent              EventType = 13
	UserVarEvent           EventType = 14
	FormatDescriptionEvent EventType = 15
	XIDEvent               EventType = 16
	TableMapEvent          EventType = 19
	WriteRowsEventV1       EventType = 23
	UpdateRowsEventV1      EventType = 24
	DeleteRowsEventV1      EventType = 25
	IncidentEvent          EventType = 26
	HeartbeatEvent         EventType = 27
	IgnorableEvent         EventType = 28
	RowsQueryEvent         EventType = 29
	WriteRowsEventV2       EventType = 30
	UpdateRowsEventV2      EventType = 31
	DeleteRowsEventV2      EventType = 32
	MySQLGTIDEvent         EventType = 33
	AnonymousGTIDEvent     EventType = 34
	PreviousGTIDsEvent     EventType = 35
	AnnotateRowsEvent      EventType = 160 // MariaDB: the statement of the rows events that follow
	BinlogCheckpointEvent  EventType = 161
	MariaGTIDEvent         EventType = 162 // MariaDB: starts a transaction or a standalone statement
	GTIDListEvent          EventType = 163
	StartEncryptionEvent   EventType = 164
	QueryCompressedEvent   EventType = 165
	WriteRowsCompressedV1  EventType = 166
	UpdateRowsCompressedV1 EventType = 167
	DeleteRowsCompressedV1 EventType = 168
	WriteRowsCompressed    EventType = 169
	UpdateRowsCompressed   EventType = 170
	DeleteRowsCompressed   EventType = 171
)

var eventNames = map[EventType]string{
	QueryEvent: "QUERY", StopEvent: "STOP", RotateEvent: "ROTATE", IntvarEvent: "INTVAR",
	RandEvent: "RAND", UserVarEvent: "USER_VAR", FormatDescriptionEvent: "FORMAT_DESCRIPTION",
	XIDEvent: "XID", TableMapEvent: "TABLE_MAP", WriteRowsEventV1: "WRITE_ROWS_V1",
	UpdateRowsEventV1: "UPDATE_ROWS_V1", DeleteRowsEventV1: "DELETE_ROWS_V1", IncidentEvent: "INCIDENT",
	HeartbeatEvent: "HEARTBEAT", IgnorableEvent: "IGNORABLE", RowsQueryEvent: "ROWS_QUERY",
	WriteRowsEventV2: "WRITE_ROWS", UpdateRowsEventV2: "UPDATE_ROWS", DeleteRowsEventV2: "DELETE_ROWS",
	MySQLGTIDEvent: "GTID (MySQL)", AnonymousGTIDEvent: "ANONYMOUS_GTID", PreviousGTIDsEvent: "PREVIOUS_GTIDS",
	AnnotateRowsEvent: "ANNOTATE_ROWS", BinlogCheckpointEvent: "BINLOG_CHECKPOINT", MariaGTIDEvent: "GTID",
	GTIDListEvent: "GTID_LIST", StartEncryptionEvent: "START_ENCRYPTION", QueryCompressedEvent: "QUERY_COMPRESSED",
	WriteRowsCompressedV1: "WRITE_ROWS_COMPRESSED_V1", UpdateRowsCompressedV1: "UPDATE_ROWS_COMPRESSED_V1",
	DeleteRowsCompressedV1: "DELETE_ROWS_COMPRESSED_V1", WriteRowsCompressed: "WRITE_ROWS_COMPRESSED",
	UpdateRowsCompressed: "UPDATE_ROWS_COMPRESSED", DeleteRowsCompressed: "DELETE_ROWS_COMPRESSED",
}

func (t EventType) String() string {
	if s, ok := eventNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// known reports whether t is a type a MariaDB or MySQL server writes to a
// file, whether or not this package decodes its body.
func (t EventType) known() bool {
	_, ok := eventNames[t]
	return ok || t == 1 || (t >= 6 && t <= 12) || (t >= 17 && t <= 22) || (t >= 36 && t <= 40)
}

// Header is the common header of every event.
type Header struct {
	Timestamp uint32 // seconds since the epoch: when the statement started
	Type      EventType
	ServerID  uint32
	Size      uint32 // of the whole event, header and checksum included
	LogPos    uint32 // offset of the next event
	Flags     uint16
}

// Event is one event: its header, where it is, and for the types this
// package decodes its body: *FormatDescription, *Rotate, *Query, *XID,
// *GTID, *TableMap or *Rows. Body is nil for other types.
type Event struct {
	Header Header
	Pos    Position // where the event starts
	End    Position // where the next event starts (in the next file after a ROTATE)
	Body   any
}

// Rotate ends a file: the log continues in Next at Position.
type Rotate struct {
	Position uint64
	Next     string
}

func parseRotate(body []byte, post int) (*Rotate, error) {
	if post < 8 || len(body) < post {
		return nil, fmt.Errorf("%d bytes is too short: %w", len(body), ErrCorrupt)
	}
	name := string(body[post:])
	if name == "" || len(name) > 512 {
		return nil, fmt.Errorf("next file name %q: %w", name, ErrCorrupt)
	}
	return &Rotate{Position: binary.LittleEndian.Uint64(body), Next: name}, nil
}

// Query is a statement logged as text: DDL, and in ROW format BEGIN,
// COMMIT and ROLLBACK around changes to non-transactional tables.
type Query struct {
	ThreadID  uint32
	ErrorCode uint16
	Schema    string // the default database of the statement
	SQL       string
}

func parseQuery(body []byte, post int) (*Query, error) {
	if post < 13 || len(body) < post {
		return nil, fmt.Errorf("%d bytes is too short: %w", len(body), ErrCorrupt)
	}
	q := &Query{ThreadID: binary.LittleEndian.Uint32(body)}
	dbLen := int(body[8])
	q.ErrorCode = binary.LittleEndian.Uint16(body[9:])
	statusLen := int(binary.LittleEndian.Uint16(body[11:]))
	rest := body[post:]
	if statusLen+dbLen+1 > len(rest) {
		return nil, fmt.Errorf("status variables (%d bytes) and database name (%d) overrun the event: %w", statusLen, dbLen, ErrCorrupt)
	}
	rest = rest[statusLen:]
	q.Schema = string(rest[:dbLen])
	if rest[dbLen] != 0 {
		return nil, fmt.Errorf("database name not NUL-terminated: %w", ErrCorrupt)
	}
	q.SQL = string(rest[dbLen+1:])
	return q, nil
}

// XID commits a transaction of a transactional engine.
type XID struct {
	XID uint64
}

func parseXID(body []byte) (*XID, error) {
	if len(body) < 8 {
		return nil, fmt.Errorf("%d bytes is too short: %w", len(body), ErrCorrupt)
	}
	return &XID{XID: binary.LittleEndian.Uint64(body)}, nil
}

// GTID is MariaDB's global transaction id event. It starts an event group:
// a transaction ending in XID or COMMIT, or, when Standalone, a single
// statement (DDL) with no BEGIN and no COMMIT.
type GTID struct {
	SeqNo      uint64
	DomainID   uint32
	Flags      uint8
	Standalone bool
}

const gtidStandalone = 1

func parseGTID(body []byte) (*GTID, error) {
	if len(body) < 13 {
		return nil, fmt.Errorf("%d bytes is too short: %w", len(body), ErrCorrupt)
	}
	g := &GTID{SeqNo: binary.LittleEndian.Uint64(body), DomainID: binary.LittleEndian.Uint32(body[8:]), Flags: body[12]}
	g.Standalone = g.Flags&gtidStandalone != 0
	return g, nil
}

// RowsKind says what a rows event does.
type RowsKind int

// The kinds of rows events.
const (
	Insert RowsKind = iota + 1
	Update
	Delete
)

func (k RowsKind) String() string {
	switch k {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("RowsKind(%d)", int(k))
}

// Rows is a WRITE, UPDATE or DELETE rows event: the row images of one
// statement's changes to one table.
type Rows struct {
	Kind  RowsKind
	Table *TableMap
	Flags uint16
	// Rows holds one change per row. An insert has only After, a delete
	// only Before, an update both. An image has one value per column of
	// Table; a column the image does not carry (binlog_row_image other
	// than FULL) holds Absent.
	Rows []Change
}

// Change is one row's images.
type Change struct {
	Before, After []any
}

// absent is the type of Absent.
type absent struct{}

func (absent) String() string { return "(absent)" }

// Absent stands for a column a row image does not carry.
var Absent any = absent{}

// StmtEndFlag marks the last rows event of a statement.
const StmtEndFlag = 1

func parseRows(t EventType, body []byte, post int, maps map[uint64]*TableMap) (*Rows, error) {
	d := &decoder{b: body}
	if post != 6 && post != 8 && post != 10 {
		return nil, fmt.Errorf("post-header length %d: %w", post, ErrCorrupt)
	}
	id, err := d.tableID(post)
	if err != nil {
		return nil, err
	}
	flags, err := d.uint16()
	if err != nil {
		return nil, err
	}
	rows := &Rows{Flags: flags}
	switch t {
	case WriteRowsEventV1, WriteRowsEventV2:
		rows.Kind = Insert
	case UpdateRowsEventV1, UpdateRowsEventV2:
		rows.Kind = Update
	default:
		rows.Kind = Delete
	}
	if t >= WriteRowsEventV2 {
		// v2: extra data, its length counting its own two bytes.
		n, err := d.uint16()
		if err != nil {
			return nil, err
		}
		if n < 2 {
			return nil, fmt.Errorf("extra data length %d: %w", n, ErrCorrupt)
		}
		if _, err := d.take(int(n) - 2); err != nil {
			return nil, err
		}
	}
	tm, ok := maps[id]
	if !ok {
		return nil, fmt.Errorf("table id %d has no table map event before it (reading from the middle of a transaction?): %w", id, ErrCorrupt)
	}
	rows.Table = tm
	width, err := d.lenenc()
	if err != nil {
		return nil, err
	}
	if width != uint64(len(tm.Columns)) {
		return nil, fmt.Errorf("%d columns, the table map of %s.%s has %d: %w", width, tm.Schema, tm.Table, len(tm.Columns), ErrCorrupt)
	}
	present, err := d.take(bitmapLen(len(tm.Columns)))
	if err != nil {
		return nil, err
	}
	presentAfter := present
	if rows.Kind == Update {
		if presentAfter, err = d.take(bitmapLen(len(tm.Columns))); err != nil {
			return nil, err
		}
	}
	if !anyBit(present, len(tm.Columns)) || !anyBit(presentAfter, len(tm.Columns)) {
		return nil, fmt.Errorf("a row image without columns: %w", ErrCorrupt)
	}
	for d.rest() > 0 {
		var c Change
		img, err := d.image(tm, present)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", len(rows.Rows)+1, err)
		}
		switch rows.Kind {
		case Insert:
			c.After = img
		case Delete:
			c.Before = img
		case Update:
			c.Before = img
			if c.After, err = d.image(tm, presentAfter); err != nil {
				return nil, fmt.Errorf("row %d, after image: %w", len(rows.Rows)+1, err)
			}
		}
		rows.Rows = append(rows.Rows, c)
	}
	return rows, nil
}

func bitmapLen(n int) int { return (n + 7) / 8 }

func anyBit(bm []byte, n int) bool {
	for i := range n {
		if bit(bm, i) {
			return true
		}
	}
	return false
}

func bit(bm []byte, i int) bool { return bm[i/8]&(1<<(i%8)) != 0 }

// image decodes one row image: a null bitmap over the present columns,
// then the values of the present, non-null columns.
func (d *decoder) image(tm *TableMap, present []byte) ([]any, error) {
	n := 0
	for i := range tm.Columns {
		if bit(present, i) {
			n++
		}
	}
	nulls, err := d.take(bitmapLen(n))
	if err != nil {
		return nil, err
	}
	img := make([]any, len(tm.Columns))
	j := 0
	for i := range tm.Columns {
		if !bit(present, i) {
			img[i] = Absent
			continue
		}
		isNull := bit(nulls, j)
		j++
		if isNull {
			continue
		}
		v, err := d.value(&tm.Columns[i])
		if err != nil {
			return nil, fmt.Errorf("column %d (%s): %w", i+1, tm.Columns[i].label(), err)
		}
		img[i] = v
	}
	return img, nil
}

// decoder reads little-endian fields from an event body with bounds checks.
type decoder struct {
	b   []byte
	pos int
}

var errShort = errors.New("value overruns the event")

func (d *decoder) rest() int { return len(d.b) - d.pos }

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || n > d.rest() {
		return nil, fmt.Errorf("%w (%d bytes wanted at body offset %d, %d left): %w", errShort, n, d.pos, d.rest(), ErrCorrupt)
	}
	b := d.b[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) uint8() (uint8, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) uint16() (uint16, error) {
	b, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

// uintN reads an n-byte little-endian unsigned integer, n <= 8.
func (d *decoder) uintN(n int) (uint64, error) {
	b, err := d.take(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (d *decoder) tableID(post int) (uint64, error) {
	if post == 6 {
		return d.uintN(4)
	}
	return d.uintN(6)
}

// lenenc reads a length-encoded integer.
func (d *decoder) lenenc() (uint64, error) {
	b, err := d.uint8()
	if err != nil {
		return 0, err
	}
	switch {
	case b < 0xfb:
		return uint64(b), nil
	case b == 0xfc:
		return d.uintN(2)
	case b == 0xfd:
		return d.uintN(3)
	case b == 0xfe:
		return d.uintN(8)
	}
	return 0, fmt.Errorf("length-encoded integer starting with %#x at body offset %d: %w", b, d.pos-1, ErrCorrupt)
}

// lenencInt reads a length-encoded integer that is a count or length
// within the event.
func (d *decoder) lenencInt() (int, error) {
	v, err := d.lenenc()
	if err != nil {
		return 0, err
	}
	// Lengths are checked against the bytes left where they are used;
	// this keeps counts and indexes in int range.
	if v > 1<<31 {
		return 0, fmt.Errorf("count %d is impossible: %w", v, ErrCorrupt)
	}
	return int(v), nil
}

func (d *decoder) lenencString() (string, error) {
	n, err := d.lenencInt()
	if err != nil {
		return "", err
	}
	b, err := d.take(n)
	return string(b), err
}
