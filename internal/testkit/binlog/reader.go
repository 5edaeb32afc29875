package binlog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Position is a place in the binary log: a file (its base name, as SHOW
// MASTER STATUS gives it) and a byte offset at an event boundary.
type Position struct {
	File   string `json:"file"`
	Offset uint32 `json:"offset"`
}

func (p Position) String() string { return fmt.Sprintf("%s:%d", p.File, p.Offset) }

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p == Position{} }

// Compare orders positions by file name (binlog file names carry a
// zero-padded sequence number) and then offset.
func (p Position) Compare(q Position) int {
	if c := strings.Compare(p.File, q.File); c != 0 {
		return c
	}
	switch {
	case p.Offset < q.Offset:
		return -1
	case p.Offset > q.Offset:
		return 1
	}
	return 0
}

// ErrCorrupt is wrapped by every error about the content of a binlog file:
// a truncated or malformed event, a checksum mismatch, an unknown type.
var ErrCorrupt = errors.New("corrupt binary log")

// Options says where a Reader reads.
type Options struct {
	// Index is the path of the index file (binlog.index) listing the
	// binlog files; they are looked up in its directory.
	Index string
	// From is the first event read. A zero From starts at the first file
	// of the index. From.Offset 0 or 4 starts at the file's first event.
	From Position
	// Until, when set, is where reading ends: Next returns io.EOF once it
	// is reached, and an error when an event crosses it or the files end
	// before it. Use the position of SHOW MASTER STATUS: the server has
	// written every event before it. A zero Until reads to the end of the
	// files as they are.
	Until Position
}

const (
	magic            = "\xfebin"
	headerLen        = 19
	checksumLen      = 4
	maxEventSize     = 1 << 30 // max_allowed_packet's ceiling; a larger size is corruption
	checksumOff      = 0
	checksumCRC32    = 1
	ignorableFlag    = 0x80
	binlogInUseFlag  = 0x01
	firstEventOffset = 4
)

// Reader reads events from binlog files. It is not safe for concurrent use.
type Reader struct {
	opts  Options
	dir   string
	file  string // base name of the open file
	f     *os.File
	br    *bufio.Reader
	off   uint32 // offset of the next event in file
	fde   *FormatDescription
	crc   bool
	maps  map[uint64]*TableMap
	ended bool
	// rotateTo is the file a ROTATE named, opened by the next Next.
	rotateTo string
}

// Open opens the file of opts.From and positions the reader there. The
// caller closes the Reader.
func Open(opts Options) (*Reader, error) {
	if opts.Index == "" {
		return nil, errors.New("binlog: no index file given (the server's binlog.index, in its data directory)")
	}
	r := &Reader{opts: opts, dir: filepath.Dir(opts.Index), maps: map[uint64]*TableMap{}}
	files, err := r.index()
	if err != nil {
		return nil, err
	}
	from := opts.From
	if from.File == "" {
		if len(files) == 0 {
			return nil, fmt.Errorf("binlog: index %s lists no files: is the binary log on (--log-bin)?", opts.Index)
		}
		from.File = files[0]
	}
	if !contains(files, from.File) {
		return nil, fmt.Errorf("binlog: %s is not in the index %s (purged? the server keeps files for expire_logs_days): start again from a full load", from.File, opts.Index)
	}
	if err := r.openFile(from.File); err != nil {
		r.Close()
		return nil, err
	}
	if from.Offset > firstEventOffset && from.Offset != r.off {
		if from.Offset < r.off {
			r.Close()
			return nil, fmt.Errorf("binlog: %s is inside the format description event of %s: %w", from, from.File, ErrCorrupt)
		}
		if _, err := r.f.Seek(int64(from.Offset), io.SeekStart); err != nil {
			r.Close()
			return nil, fmt.Errorf("binlog: seek %s: %w", from, err)
		}
		r.br.Reset(r.f)
		r.off = from.Offset
	}
	return r, nil
}

// index reads the index file: one path per line, relative to the data
// directory or absolute; only the base names are kept, the files being
// looked up next to the index.
func (r *Reader) index() ([]string, error) {
	b, err := os.ReadFile(r.opts.Index)
	if err != nil {
		return nil, fmt.Errorf("binlog: reading the index: %w", err)
	}
	var files []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			files = append(files, filepath.Base(line))
		}
	}
	return files, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// openFile opens a binlog file, checks its magic number and reads its
// format description event, which every later event of the file needs.
func (r *Reader) openFile(name string) error {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
	f, err := os.Open(filepath.Join(r.dir, name))
	if err != nil {
		return fmt.Errorf("binlog: %w", err)
	}
	r.f, r.file, r.off, r.fde = f, name, 0, nil
	if r.br == nil {
		r.br = bufio.NewReaderSize(f, 1<<16)
	} else {
		r.br.Reset(f)
	}
	var m [4]byte
	if _, err := io.ReadFull(r.br, m[:]); err != nil || string(m[:]) != magic {
		return fmt.Errorf("binlog: %s is not a binary log file (no magic number at offset 0): %w", name, ErrCorrupt)
	}
	r.off = firstEventOffset
	ev, err := r.readEvent()
	if err != nil {
		return err
	}
	fde, ok := ev.Body.(*FormatDescription)
	if !ok {
		return fmt.Errorf("binlog: %s:%d: first event is type %d, not a format description: %w", name, firstEventOffset, ev.Header.Type, ErrCorrupt)
	}
	r.fde = fde
	return nil
}

// Close closes the open file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Position returns the position of the next event: after a ROTATE, the
// start of the next file.
func (r *Reader) Position() Position {
	if r.rotateTo != "" {
		return Position{File: r.rotateTo, Offset: firstEventOffset}
	}
	return Position{File: r.file, Offset: r.off}
}

// FormatDescription returns the format description of the open file.
func (r *Reader) FormatDescription() *FormatDescription { return r.fde }

// Next returns the next event. It returns io.EOF at opts.Until, or at the
// end of the last file when Until is zero. The format description event
// at the start of each file is read when the file is opened and not
// returned; [Reader.FormatDescription] gives it.
func (r *Reader) Next() (*Event, error) {
	for {
		if r.ended {
			return nil, io.EOF
		}
		if r.rotateTo != "" {
			if (Position{File: r.file, Offset: r.off}) == r.opts.Until {
				r.ended = true // the end of the file is the end of the range
				return nil, io.EOF
			}
			files, err := r.index()
			if err != nil {
				return nil, err
			}
			if !contains(files, r.rotateTo) {
				if r.opts.Until.IsZero() {
					r.ended = true
					return nil, io.EOF
				}
				return nil, fmt.Errorf("binlog: %s rotates to %s, which the index does not list, before the end position %s: %w",
					r.file, r.rotateTo, r.opts.Until, ErrCorrupt)
			}
			next := r.rotateTo
			r.rotateTo = ""
			if err := r.openFile(next); err != nil {
				return nil, err
			}
		}
		pos := r.Position()
		if !r.opts.Until.IsZero() {
			switch c := pos.Compare(r.opts.Until); {
			case c == 0:
				r.ended = true
				return nil, io.EOF
			case c > 0:
				return nil, fmt.Errorf("binlog: read past the end position %s to %s: %w", r.opts.Until, pos, ErrCorrupt)
			}
		}
		if _, err := r.br.Peek(1); err == io.EOF {
			// The end of this file: a file without a closing ROTATE (the
			// server stopped) continues in the next one of the index.
			next, err := r.nextFile()
			if err != nil {
				return nil, err
			}
			if next == "" {
				if !r.opts.Until.IsZero() {
					return nil, fmt.Errorf("binlog: the files end at %s, before the end position %s: %w", pos, r.opts.Until, ErrCorrupt)
				}
				r.ended = true
				return nil, io.EOF
			}
			if err := r.openFile(next); err != nil {
				return nil, err
			}
			continue
		}
		ev, err := r.readEvent()
		if err != nil {
			return nil, err
		}
		if rot, ok := ev.Body.(*Rotate); ok {
			// The next file is opened by the next call: the caller may
			// stop here, and the file may not be listed yet.
			if rot.Position != firstEventOffset {
				return nil, fmt.Errorf("binlog: %s: rotate to %s:%d, want offset 4: %w", ev.Pos, rot.Next, rot.Position, ErrCorrupt)
			}
			r.rotateTo = rot.Next
			ev.End = r.Position()
		}
		return ev, nil
	}
}

// nextFile returns the file after the open one in the index, re-read since
// the server may have rotated meanwhile; "" when the open file is the last.
func (r *Reader) nextFile() (string, error) {
	files, err := r.index()
	if err != nil {
		return "", err
	}
	for i, f := range files {
		if f == r.file && i+1 < len(files) {
			return files[i+1], nil
		}
	}
	return "", nil
}

// readEvent reads one event at r.off: header, body and checksum.
func (r *Reader) readEvent() (*Event, error) {
	pos := r.Position()
	var hdr [headerLen]byte
	if n, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return nil, r.truncated(pos, fmt.Sprintf("%d of %d header bytes", n, headerLen), err)
	}
	h := Header{
		Timestamp: binary.LittleEndian.Uint32(hdr[0:]),
		Type:      EventType(hdr[4]),
		ServerID:  binary.LittleEndian.Uint32(hdr[5:]),
		Size:      binary.LittleEndian.Uint32(hdr[9:]),
		LogPos:    binary.LittleEndian.Uint32(hdr[13:]),
		Flags:     binary.LittleEndian.Uint16(hdr[17:]),
	}
	if h.Size < headerLen || h.Size > maxEventSize {
		return nil, fmt.Errorf("binlog: %s: event size %d is impossible: %w", pos, h.Size, ErrCorrupt)
	}
	if uint64(pos.Offset)+uint64(h.Size) > 1<<32-1 {
		return nil, fmt.Errorf("binlog: %s: event of %d bytes overruns the 4 GiB file limit: %w", pos, h.Size, ErrCorrupt)
	}
	end := pos.Offset + h.Size
	if !r.opts.Until.IsZero() && pos.File == r.opts.Until.File && end > r.opts.Until.Offset {
		return nil, fmt.Errorf("binlog: %s: event of %d bytes crosses the end position %s: %w", pos, h.Size, r.opts.Until, ErrCorrupt)
	}
	raw := make([]byte, h.Size)
	copy(raw, hdr[:])
	if n, err := io.ReadFull(r.br, raw[headerLen:]); err != nil {
		return nil, r.truncated(pos, fmt.Sprintf("%d of %d bytes of a type %d event", headerLen+n, h.Size, h.Type), err)
	}
	r.off = end
	if h.LogPos != 0 && h.LogPos != end {
		return nil, fmt.Errorf("binlog: %s: event says it ends at %d, its size says %d: %w", pos, h.LogPos, end, ErrCorrupt)
	}
	ev := &Event{Header: h, Pos: pos, End: Position{File: pos.File, Offset: end}}
	body := raw[headerLen:]

	if h.Type == FormatDescriptionEvent {
		fde, err := parseFormatDescription(body)
		if err != nil {
			return nil, fmt.Errorf("binlog: %s: format description: %w", pos, err)
		}
		if fde.ChecksumAlg == checksumCRC32 {
			// The server sets LOG_EVENT_BINLOG_IN_USE_F in the header of
			// the open file's format description after checksumming it,
			// and clears it when it closes the file.
			raw[17] &^= binlogInUseFlag
			if err := checkCRC(raw); err != nil {
				return nil, fmt.Errorf("binlog: %s: format description: %w", pos, err)
			}
		}
		if r.fde == nil {
			r.crc = fde.ChecksumAlg == checksumCRC32
		}
		ev.Body = fde
		return ev, nil
	}
	if r.fde == nil {
		return nil, fmt.Errorf("binlog: %s: type %d event before the format description: %w", pos, h.Type, ErrCorrupt)
	}
	if r.crc {
		if err := checkCRC(raw); err != nil {
			return nil, fmt.Errorf("binlog: %s: type %d event: %w", pos, h.Type, err)
		}
		body = body[:len(body)-checksumLen]
	}
	if err := r.parseBody(ev, body); err != nil {
		return nil, fmt.Errorf("binlog: %s: %s event: %w", pos, h.Type, err)
	}
	return ev, nil
}

func (r *Reader) truncated(pos Position, what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("binlog: %s: truncated event (%s before the end of the file): %w", pos, what, ErrCorrupt)
	}
	return fmt.Errorf("binlog: %s: %w", pos, err)
}

func checkCRC(raw []byte) error {
	if len(raw) < headerLen+checksumLen {
		return fmt.Errorf("no room for the checksum: %w", ErrCorrupt)
	}
	n := len(raw) - checksumLen
	want := binary.LittleEndian.Uint32(raw[n:])
	if got := crc32.ChecksumIEEE(raw[:n]); got != want {
		return fmt.Errorf("CRC32 %08x, the event says %08x: %w", got, want, ErrCorrupt)
	}
	return nil
}

// parseBody decodes the body of the events this package knows.
func (r *Reader) parseBody(ev *Event, body []byte) error {
	var err error
	switch t := ev.Header.Type; t {
	case RotateEvent:
		ev.Body, err = parseRotate(body, r.postHeader(t, 8))
	case QueryEvent:
		ev.Body, err = parseQuery(body, r.postHeader(t, 13))
	case XIDEvent:
		ev.Body, err = parseXID(body)
	case MariaGTIDEvent:
		ev.Body, err = parseGTID(body)
	case TableMapEvent:
		var tm *TableMap
		tm, err = parseTableMap(body, r.postHeader(t, 8))
		if err == nil {
			r.maps[tm.ID] = tm
			ev.Body = tm
		}
	case WriteRowsEventV1, UpdateRowsEventV1, DeleteRowsEventV1, WriteRowsEventV2, UpdateRowsEventV2, DeleteRowsEventV2:
		ev.Body, err = parseRows(t, body, r.postHeader(t, 8), r.maps)
	case WriteRowsCompressedV1, UpdateRowsCompressedV1, DeleteRowsCompressedV1,
		WriteRowsCompressed, UpdateRowsCompressed, DeleteRowsCompressed, QueryCompressedEvent:
		err = errors.New("compressed events are not supported: turn log_bin_compress off on the server")
	case StartEncryptionEvent:
		err = errors.New("the binary log is encrypted (encrypt_binlog): it cannot be read from the files")
	case IncidentEvent:
		err = errors.New("the server logged an incident (changes may be missing from the binary log): start again from a full load")
	default:
		if !t.known() && ev.Header.Flags&ignorableFlag == 0 {
			err = fmt.Errorf("unknown event type %d: %w", t, ErrCorrupt)
		}
	}
	return err
}

// postHeader is the post-header length of event type t from the format
// description, or def when it does not list t.
func (r *Reader) postHeader(t EventType, def int) int {
	if i := int(t) - 1; i >= 0 && i < len(r.fde.PostHeaderLengths) {
		return int(r.fde.PostHeaderLengths[i])
	}
	return def
}

// FormatDescription is the first event of every file: the binlog and
// server versions, the post-header length of each event type and the
// checksum algorithm of the file's events.
type FormatDescription struct {
	BinlogVersion     uint16
	ServerVersion     string
	HeaderLength      uint8
	PostHeaderLengths []byte // indexed by event type - 1
	ChecksumAlg       uint8  // 0 none, 1 CRC32
}

func parseFormatDescription(body []byte) (*FormatDescription, error) {
	// binlog version 2, server version 50, create timestamp 4, header
	// length 1, post-header lengths, checksum algorithm 1, checksum 4.
	const fixed = 2 + 50 + 4 + 1
	if len(body) < fixed+1+checksumLen {
		return nil, fmt.Errorf("%d bytes is too short: %w", len(body), ErrCorrupt)
	}
	fde := &FormatDescription{
		BinlogVersion: binary.LittleEndian.Uint16(body),
		ServerVersion: string(bytes.TrimRight(body[2:52], "\x00")),
		HeaderLength:  body[56],
	}
	if fde.BinlogVersion != 4 {
		return nil, fmt.Errorf("binlog version %d (only 4 is supported): %w", fde.BinlogVersion, ErrCorrupt)
	}
	if fde.HeaderLength != headerLen {
		return nil, fmt.Errorf("event header length %d (want %d): %w", fde.HeaderLength, headerLen, ErrCorrupt)
	}
	// Servers that checksum (MySQL 5.6.1+, MariaDB 5.3+) end the event with
	// the algorithm byte and a checksum, which are not post-header lengths.
	n := len(body) - 1 - checksumLen
	fde.ChecksumAlg = body[n]
	if fde.ChecksumAlg != checksumOff && fde.ChecksumAlg != checksumCRC32 {
		return nil, fmt.Errorf("checksum algorithm %d (want 0 or 1 CRC32): %w", fde.ChecksumAlg, ErrCorrupt)
	}
	fde.PostHeaderLengths = append([]byte(nil), body[fixed:n]...)
	return fde, nil
}
