package binlog

import "fmt"

// ColumnType is a column's type code in a table map (MySQL's
// enum_field_types). For CHAR columns logged as STRING whose real type is
// ENUM or SET, [Column.Type] holds TypeEnum or TypeSet.
type ColumnType uint8

// The column type codes.
const (
	TypeDecimal    ColumnType = 0 // the pre-5.0 DECIMAL; not decoded
	TypeTiny       ColumnType = 1
	TypeShort      ColumnType = 2
	TypeLong       ColumnType = 3
	TypeFloat      ColumnType = 4
	TypeDouble     ColumnType = 5
	TypeNull       ColumnType = 6
	TypeTimestamp  ColumnType = 7 // before MySQL 5.6 / MariaDB 10.1 temporal format
	TypeLongLong   ColumnType = 8
	TypeInt24      ColumnType = 9
	TypeDate       ColumnType = 10
	TypeTime       ColumnType = 11 // old format
	TypeDateTime   ColumnType = 12 // old format
	TypeYear       ColumnType = 13
	TypeNewDate    ColumnType = 14
	TypeVarchar    ColumnType = 15
	TypeBit        ColumnType = 16
	TypeTimestamp2 ColumnType = 17
	TypeDateTime2  ColumnType = 18
	TypeTime2      ColumnType = 19
	TypeJSON       ColumnType = 245 // MySQL's binary JSON; MariaDB's JSON is LONGTEXT
	TypeNewDecimal ColumnType = 246
	TypeEnum       ColumnType = 247
	TypeSet        ColumnType = 248
	TypeTinyBlob   ColumnType = 249
	TypeMediumBlob ColumnType = 250
	TypeLongBlob   ColumnType = 251
	TypeBlob       ColumnType = 252
	TypeVarString  ColumnType = 253
	TypeString     ColumnType = 254
	TypeGeometry   ColumnType = 255
)

var typeNames = map[ColumnType]string{
	TypeDecimal: "DECIMAL(old)", TypeTiny: "TINYINT", TypeShort: "SMALLINT", TypeLong: "INT",
	TypeFloat: "FLOAT", TypeDouble: "DOUBLE", TypeNull: "NULL", TypeTimestamp: "TIMESTAMP(old)",
	TypeLongLong: "BIGINT", TypeInt24: "MEDIUMINT", TypeDate: "DATE", TypeTime: "TIME(old)",
	TypeDateTime: "DATETIME(old)", TypeYear: "YEAR", TypeNewDate: "NEWDATE", TypeVarchar: "VARCHAR",
	TypeBit: "BIT", TypeTimestamp2: "TIMESTAMP", TypeDateTime2: "DATETIME", TypeTime2: "TIME",
	TypeJSON: "JSON(binary)", TypeNewDecimal: "DECIMAL", TypeEnum: "ENUM", TypeSet: "SET",
	TypeTinyBlob: "TINYBLOB", TypeMediumBlob: "MEDIUMBLOB", TypeLongBlob: "LONGBLOB", TypeBlob: "BLOB",
	TypeVarString: "VAR_STRING", TypeString: "CHAR", TypeGeometry: "GEOMETRY",
}

func (t ColumnType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// BinaryCollation is the collation id of the binary character set: BINARY,
// VARBINARY and BLOB columns have it, text columns another.
const BinaryCollation = 63

// Column is one column of a table map.
type Column struct {
	// Name is the column's name; "" unless binlog_row_metadata=FULL.
	Name string
	Type ColumnType
	// Meta is the raw type metadata of the table map.
	Meta     uint16
	Nullable bool
	// Unsigned, for the numeric types, from the optional metadata.
	Unsigned bool
	// Collation of a string, ENUM or SET column (63 binary); 0 when the
	// table map carries no charset metadata.
	Collation uint64
	// Precision and Scale of a DECIMAL.
	Precision, Scale int
	// FSP is the fractional seconds precision (0..6) of TIME, DATETIME
	// and TIMESTAMP.
	FSP int
	// Length is, for VARCHAR the maximum length in bytes, for CHAR and
	// BINARY the length in bytes, for BLOB and TEXT the size in bytes of
	// the length prefix (1..4), for ENUM and SET the size of the value in
	// bytes, for BIT the number of bits.
	Length int
	// Members are the values of an ENUM or SET, in order; nil unless
	// binlog_row_metadata=FULL.
	Members []string
}

// IsText reports whether values of c decode as strings: a character column
// with a known, non-binary collation.
func (c *Column) IsText() bool {
	return c.isCharacter() && c.Collation != 0 && c.Collation != BinaryCollation
}

// isCharacter reports whether c counts among the "character columns" of
// the charset metadata.
func (c *Column) isCharacter() bool {
	switch c.Type {
	case TypeString, TypeVarString, TypeVarchar, TypeBlob, TypeTinyBlob, TypeMediumBlob, TypeLongBlob:
		return true
	}
	return false
}

func (c *Column) isNumeric() bool {
	switch c.Type {
	case TypeTiny, TypeShort, TypeInt24, TypeLong, TypeLongLong, TypeFloat, TypeDouble, TypeNewDecimal, TypeDecimal:
		return true
	}
	return false
}

func (c *Column) label() string {
	if c.Name != "" {
		return fmt.Sprintf("%s %s", c.Name, c.Type)
	}
	return c.Type.String()
}

// TableMap maps a table id of the rows events that follow to a table and
// its columns, as the server knew them when it logged the change.
type TableMap struct {
	ID            uint64
	Flags         uint16
	Schema, Table string
	Columns       []Column
	// PrimaryKey lists the indexes of the primary key columns, from the
	// optional metadata (binlog_row_metadata=FULL); nil without it.
	PrimaryKey []int
	// hasNames and hasCharsets record which optional metadata was there.
	hasNames, hasCharsets bool
}

// HasFullMetadata reports whether the table map carries the column names
// and character sets of binlog_row_metadata=FULL. A table without
// character, ENUM or SET columns has no character set metadata to carry.
func (tm *TableMap) HasFullMetadata() bool {
	if !tm.hasNames {
		return false
	}
	if tm.hasCharsets {
		return true
	}
	for i := range tm.Columns {
		switch c := &tm.Columns[i]; {
		case c.isCharacter(), c.Type == TypeEnum, c.Type == TypeSet:
			return false
		}
	}
	return true
}

// Optional metadata field types (Table_map_log_event::Optional_metadata_field_type).
const (
	metaSignedness       = 1
	metaDefaultCharset   = 2
	metaColumnCharset    = 3
	metaColumnName       = 4
	metaSetStrValue      = 5
	metaEnumStrValue     = 6
	metaGeometryType     = 7
	metaSimplePrimaryKey = 8
	metaPrimaryKeyPrefix = 9
	metaEnumSetDefault   = 10
	metaEnumSetColumn    = 11
)

func parseTableMap(body []byte, post int) (*TableMap, error) {
	d := &decoder{b: body}
	if post != 6 && post != 8 {
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
	tm := &TableMap{ID: id, Flags: flags}
	if tm.Schema, err = d.nulString(); err != nil {
		return nil, fmt.Errorf("schema name: %w", err)
	}
	if tm.Table, err = d.nulString(); err != nil {
		return nil, fmt.Errorf("table name: %w", err)
	}
	n, err := d.lenencInt()
	if err != nil {
		return nil, err
	}
	types, err := d.take(n)
	if err != nil {
		return nil, fmt.Errorf("column types: %w", err)
	}
	tm.Columns = make([]Column, n)
	for i := range tm.Columns {
		tm.Columns[i].Type = ColumnType(types[i])
	}
	metaLen, err := d.lenencInt()
	if err != nil {
		return nil, err
	}
	meta, err := d.take(metaLen)
	if err != nil {
		return nil, fmt.Errorf("column metadata: %w", err)
	}
	if err := tm.parseColumnMeta(meta); err != nil {
		return nil, fmt.Errorf("%s.%s: %w", tm.Schema, tm.Table, err)
	}
	nulls, err := d.take(bitmapLen(n))
	if err != nil {
		return nil, fmt.Errorf("null bitmap: %w", err)
	}
	for i := range tm.Columns {
		tm.Columns[i].Nullable = bit(nulls, i)
	}
	if err := tm.parseOptionalMeta(d); err != nil {
		return nil, fmt.Errorf("%s.%s: optional metadata: %w", tm.Schema, tm.Table, err)
	}
	return tm, nil
}

func (d *decoder) nulString() (string, error) {
	n, err := d.uint8()
	if err != nil {
		return "", err
	}
	b, err := d.take(int(n) + 1)
	if err != nil {
		return "", err
	}
	if b[n] != 0 {
		return "", fmt.Errorf("name not NUL-terminated: %w", ErrCorrupt)
	}
	return string(b[:n]), nil
}

// parseColumnMeta decodes the per-type metadata block of a table map.
func (tm *TableMap) parseColumnMeta(meta []byte) error {
	d := &decoder{b: meta}
	for i := range tm.Columns {
		c := &tm.Columns[i]
		var err error
		switch c.Type {
		case TypeFloat, TypeDouble:
			var b uint8
			b, err = d.uint8()
			c.Meta = uint16(b)
		case TypeBlob, TypeTinyBlob, TypeMediumBlob, TypeLongBlob, TypeGeometry, TypeJSON:
			var b uint8
			b, err = d.uint8()
			c.Meta, c.Length = uint16(b), int(b)
			if err == nil && (b < 1 || b > 4) {
				err = fmt.Errorf("column %d: BLOB length size %d: %w", i+1, b, ErrCorrupt)
			}
		case TypeTimestamp2, TypeDateTime2, TypeTime2:
			var b uint8
			b, err = d.uint8()
			c.Meta, c.FSP = uint16(b), int(b)
			if err == nil && b > 6 {
				err = fmt.Errorf("column %d: fractional seconds precision %d: %w", i+1, b, ErrCorrupt)
			}
		case TypeVarchar, TypeVarString:
			c.Meta, err = d.uint16()
			c.Length = int(c.Meta)
		case TypeNewDecimal:
			var b []byte
			b, err = d.take(2)
			if err == nil {
				c.Meta = uint16(b[0])<<8 | uint16(b[1])
				c.Precision, c.Scale = int(b[0]), int(b[1])
				if c.Precision < 1 || c.Precision > 65 || c.Scale > c.Precision || c.Scale > 30 {
					err = fmt.Errorf("column %d: DECIMAL(%d,%d): %w", i+1, c.Precision, c.Scale, ErrCorrupt)
				}
			}
		case TypeBit:
			var b []byte
			b, err = d.take(2)
			if err == nil {
				c.Meta = uint16(b[1])<<8 | uint16(b[0])
				c.Length = int(b[1])*8 + int(b[0])
				if c.Length < 1 || c.Length > 64 {
					err = fmt.Errorf("column %d: BIT(%d): %w", i+1, c.Length, ErrCorrupt)
				}
			}
		case TypeString, TypeEnum, TypeSet:
			var b []byte
			b, err = d.take(2)
			if err == nil {
				c.Meta = uint16(b[0])<<8 | uint16(b[1])
				real, length := b[0], int(b[1])
				// CHAR lengths above 255 keep their two high bits in the
				// real type byte, inverted.
				if real&0x30 != 0x30 {
					length |= int((real&0x30)^0x30) << 4
					real |= 0x30
				}
				switch ColumnType(real) {
				case TypeEnum, TypeSet:
					c.Type = ColumnType(real)
					if length < 1 || length > 8 || (c.Type == TypeEnum && length > 2) {
						err = fmt.Errorf("column %d: %s of %d bytes: %w", i+1, c.Type, length, ErrCorrupt)
					}
				case TypeString:
				default:
					err = fmt.Errorf("column %d: CHAR with real type %d: %w", i+1, real, ErrCorrupt)
				}
				c.Length = length
			}
		}
		if err != nil {
			return err
		}
	}
	if d.rest() != 0 {
		return fmt.Errorf("%d bytes of column metadata left over: %w", d.rest(), ErrCorrupt)
	}
	return nil
}

// parseOptionalMeta decodes the type-length-value fields after the null
// bitmap (binlog_row_metadata=MINIMAL or FULL).
func (tm *TableMap) parseOptionalMeta(d *decoder) error {
	var chars, enumSets, numerics []int
	for i := range tm.Columns {
		c := &tm.Columns[i]
		switch {
		case c.isCharacter():
			chars = append(chars, i)
		case c.Type == TypeEnum || c.Type == TypeSet:
			enumSets = append(enumSets, i)
		case c.isNumeric():
			numerics = append(numerics, i)
		}
	}
	for d.rest() > 0 {
		typ, err := d.uint8()
		if err != nil {
			return err
		}
		n, err := d.lenencInt()
		if err != nil {
			return err
		}
		val, err := d.take(n)
		if err != nil {
			return fmt.Errorf("field type %d: %w", typ, err)
		}
		f := &decoder{b: val}
		switch typ {
		case metaSignedness:
			for j, i := range numerics {
				if j/8 >= len(val) {
					return fmt.Errorf("signedness bitmap of %d bytes for %d numeric columns: %w", len(val), len(numerics), ErrCorrupt)
				}
				tm.Columns[i].Unsigned = val[j/8]&(0x80>>(j%8)) != 0
			}
		case metaDefaultCharset, metaEnumSetDefault:
			cols := chars
			if typ == metaEnumSetDefault {
				cols = enumSets
			}
			def, err := f.lenenc()
			if err != nil {
				return err
			}
			for _, i := range cols {
				tm.Columns[i].Collation = def
			}
			for f.rest() > 0 {
				j, err := f.lenencInt()
				if err != nil {
					return err
				}
				coll, err := f.lenenc()
				if err != nil {
					return err
				}
				if j >= len(cols) {
					return fmt.Errorf("charset of character column %d of %d: %w", j+1, len(cols), ErrCorrupt)
				}
				tm.Columns[cols[j]].Collation = coll
			}
			if typ == metaDefaultCharset {
				tm.hasCharsets = true
			}
		case metaColumnCharset, metaEnumSetColumn:
			cols := chars
			if typ == metaEnumSetColumn {
				cols = enumSets
			}
			for _, i := range cols {
				coll, err := f.lenenc()
				if err != nil {
					return err
				}
				tm.Columns[i].Collation = coll
			}
			if typ == metaColumnCharset {
				tm.hasCharsets = true
			}
		case metaColumnName:
			for i := range tm.Columns {
				if tm.Columns[i].Name, err = f.lenencString(); err != nil {
					return fmt.Errorf("column names: %w", err)
				}
			}
			tm.hasNames = true
		case metaSetStrValue, metaEnumStrValue:
			want := TypeSet
			if typ == metaEnumStrValue {
				want = TypeEnum
			}
			for _, i := range enumSets {
				if tm.Columns[i].Type != want {
					continue
				}
				count, err := f.lenencInt()
				if err != nil {
					return err
				}
				if count > f.rest() {
					return fmt.Errorf("%d members in %d bytes: %w", count, f.rest(), ErrCorrupt)
				}
				members := make([]string, count)
				for k := range members {
					if members[k], err = f.lenencString(); err != nil {
						return fmt.Errorf("%s members: %w", want, err)
					}
				}
				tm.Columns[i].Members = members
			}
		case metaSimplePrimaryKey:
			for f.rest() > 0 {
				i, err := f.lenencInt()
				if err != nil {
					return err
				}
				if i >= len(tm.Columns) {
					return fmt.Errorf("primary key column %d of %d: %w", i+1, len(tm.Columns), ErrCorrupt)
				}
				tm.PrimaryKey = append(tm.PrimaryKey, i)
			}
		case metaPrimaryKeyPrefix:
			for f.rest() > 0 {
				i, err := f.lenencInt()
				if err != nil {
					return err
				}
				if _, err := f.lenenc(); err != nil { // the prefix length
					return err
				}
				if i >= len(tm.Columns) {
					return fmt.Errorf("primary key column %d of %d: %w", i+1, len(tm.Columns), ErrCorrupt)
				}
				tm.PrimaryKey = append(tm.PrimaryKey, i)
			}
		default:
			// Geometry types and fields of newer servers: not needed.
		}
	}
	return nil
}

// be reads a big-endian unsigned integer of up to 8 bytes.
func be(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}
