package pgcapture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/icemerge/icemerge/internal/testkit/dmstest"
)

// typeInfo is what capture needs of a pg_type row.
type typeInfo struct {
	name  string
	array bool
}

// catalog reads table and type descriptions from the source.
type catalog struct {
	conn  *pgconn.PgConn
	types map[uint32]typeInfo
}

// relation is a captured table's columns and primary key (indexes of
// cols, in table order).
type relation struct {
	name string // schema.table
	cols []column
	pk   []int
}

func (c *catalog) typeOf(ctx context.Context, oid uint32) (typeInfo, error) {
	if t, ok := c.types[oid]; ok {
		return t, nil
	}
	res := c.conn.ExecParams(ctx, "SELECT format_type(oid, NULL), typcategory::text FROM pg_type WHERE oid = $1",
		[][]byte{[]byte(strconv.FormatUint(uint64(oid), 10))}, []uint32{26}, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		return typeInfo{}, fmt.Errorf("pgcapture: type oid %d: %v", oid, res.Err)
	}
	t := typeInfo{name: string(res.Rows[0][0]), array: string(res.Rows[0][1]) == "A"}
	c.types[oid] = t
	return t, nil
}

// table describes a table from pg_attribute and pg_index, as it is now.
func (c *catalog) table(ctx context.Context, table string) (*relation, error) {
	res := c.conn.ExecParams(ctx, `SELECT a.attname, a.atttypid::text, a.atttypmod::text,
			coalesce(a.attnum = ANY(i.indkey), false)::text
		FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
		[][]byte{[]byte(quoteTable(table))}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("pgcapture: reading the columns of %s: %w", table, res.Err)
	}
	rel := &relation{name: table}
	for i, r := range res.Rows {
		oid, _ := strconv.ParseUint(string(r[1]), 10, 32)
		mod, _ := strconv.ParseInt(string(r[2]), 10, 32)
		col, err := c.column(ctx, string(r[0]), uint32(oid), int32(mod))
		if err != nil {
			return nil, err
		}
		rel.cols = append(rel.cols, col)
		if string(r[3]) == "true" {
			rel.pk = append(rel.pk, i)
		}
	}
	if len(rel.cols) == 0 {
		return nil, fmt.Errorf("pgcapture: table %s has no columns", table)
	}
	return rel, nil
}

func (c *catalog) column(ctx context.Context, name string, oid uint32, typmod int32) (column, error) {
	t, err := c.typeOf(ctx, oid)
	if err != nil {
		return column{}, err
	}
	return column{name: name, oid: oid, typmod: typmod, array: t.array, typ: t.name}, nil
}

// parquet is the relation's DMS Parquet columns, before-image columns
// included where o configures them.
func (r *relation) parquet(o Options) ([]dmstest.Column, error) {
	out := make([]dmstest.Column, len(r.cols))
	for i, c := range r.cols {
		var err error
		if out[i], err = c.parquet(); err != nil {
			return nil, fmt.Errorf("pgcapture: %s: %w", r.name, err)
		}
	}
	prefix, bi := o.beforeImagePrefix(r.name)
	if !bi {
		return out, nil
	}
	if len(r.pk) == 0 {
		return nil, fmt.Errorf("pgcapture: %s has add-before-image-columns (pk-only) but no primary key", r.name)
	}
	for _, i := range r.pk {
		c := out[i]
		c.Name = prefix + c.Name
		out = append(out, c)
	}
	return out, nil
}

// stream reads the slot and turns transactions into CDC files.
type stream struct {
	o       Options
	log     *slog.Logger
	res     *Result
	cat     *catalog
	target  *dmstest.Target
	tracked []string
	rels    map[uint32]*relation // by relation id (the table's oid)
	pcols   map[uint32][]dmstest.Column

	// A reload in this run: at the first commit at or after reloadAt (the
	// snapshot's consistent point), or at the end, the tables in reload
	// are deleted and loaded again from snap's snapshot.
	reload   []string
	reloadAt pglogrepl.LSN
	snap     *pgconn.PgConn
	st       *State

	inTx    bool
	commit  time.Time
	pending []pendingChange
}

type pendingChange struct {
	table string
	cols  []dmstest.Column
	op    string
	row   dmstest.Row
}

func (s *stream) run(ctx context.Context, conn *pgconn.PgConn, from pglogrepl.LSN, mark string) error {
	s.pcols = map[uint32][]dmstest.Column{}
	opts := pglogrepl.StartReplicationOptions{PluginArgs: []string{
		"proto_version '1'", "publication_names '" + s.o.Publication + "'", "messages 'true'"}}
	// The walsender of the previous run may still hold the slot for a
	// moment after its connection closed (SQLSTATE 55006): wait for it.
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		err := pglogrepl.StartReplication(ctx, conn, s.o.Slot, from, opts)
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || wait > 5*time.Second {
			return fmt.Errorf("pgcapture: starting replication from slot %s at %s: %w", s.o.Slot, from, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("pgcapture: reading slot %s: %w", s.o.Slot, err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("pgcapture: slot %s: %w", s.o.Slot, pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyData:
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("pgcapture: %w", err)
				}
				if ka.ReplyRequested {
					// Confirm only what an earlier run saved: this run's
					// changes are not in files yet.
					if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: from}); err != nil {
						return fmt.Errorf("pgcapture: %w", err)
					}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("pgcapture: %w", err)
				}
				done, err := s.message(ctx, xld, mark)
				if err != nil {
					return err
				}
				if done {
					return nil
				}
			}
		}
	}
}

// message handles one pgoutput message; done is set at the run's end mark.
func (s *stream) message(ctx context.Context, xld pglogrepl.XLogData, mark string) (done bool, err error) {
	msg, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return false, fmt.Errorf("pgcapture: at %s: %w", xld.WALStart, err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		return false, s.relation(ctx, m)
	case *pglogrepl.BeginMessage:
		if s.reload != nil && m.FinalLSN >= s.reloadAt {
			if err := s.doReload(ctx); err != nil {
				return false, err
			}
		}
		s.inTx, s.commit, s.pending = true, m.CommitTime, s.pending[:0]
	case *pglogrepl.CommitMessage:
		s.res.Transactions++
		for _, ch := range s.pending {
			if err := s.target.Change(ch.table, ch.cols, ch.op, ch.row, s.commit); err != nil {
				return false, fmt.Errorf("pgcapture: %w", err)
			}
			tr := s.res.Tables[ch.table]
			switch ch.op {
			case "I":
				tr.Inserts++
			case "U":
				tr.Updates++
			case "D":
				tr.Deletes++
			}
		}
		s.inTx, s.pending = false, s.pending[:0]
	case *pglogrepl.InsertMessage:
		return false, s.change(m.RelationID, "I", m.Tuple, 0, nil)
	case *pglogrepl.UpdateMessage:
		return false, s.change(m.RelationID, "U", m.NewTuple, m.OldTupleType, m.OldTuple)
	case *pglogrepl.DeleteMessage:
		return false, s.change(m.RelationID, "D", nil, m.OldTupleType, m.OldTuple)
	case *pglogrepl.TruncateMessage:
		return false, s.truncate(m)
	case *pglogrepl.LogicalDecodingMessage:
		if m.Prefix == markPrefix && string(m.Content) == mark {
			if s.reload != nil {
				if err := s.doReload(ctx); err != nil {
					return false, err
				}
			}
			return true, nil
		}
	}
	return false, nil
}

func (s *stream) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	name := m.Namespace + "." + m.RelationName
	if !slices.Contains(s.tracked, name) {
		delete(s.rels, m.RelationID)
		return nil
	}
	// The key from the catalog as it is now; the columns as the message
	// gives them (an ALTER TABLE sends a new Relation message first).
	now, err := s.cat.table(ctx, name)
	if err != nil {
		return err
	}
	rel := &relation{name: name}
	for _, c := range m.Columns {
		col, err := s.cat.column(ctx, c.Name, c.DataType, c.TypeModifier)
		if err != nil {
			return err
		}
		rel.cols = append(rel.cols, col)
	}
	for _, i := range now.pk {
		j := slices.IndexFunc(rel.cols, func(c column) bool { return c.name == now.cols[i].name })
		if j < 0 {
			return fmt.Errorf("pgcapture: %s: primary key column %s is not in the stream's relation", name, now.cols[i].name)
		}
		rel.pk = append(rel.pk, j)
	}
	slices.Sort(rel.pk)
	pcols, err := rel.parquet(s.o)
	if err != nil {
		return err
	}
	s.rels[m.RelationID], s.pcols[m.RelationID] = rel, pcols
	return nil
}

// change converts one row change, as DMS writes it for a PostgreSQL
// source: I the new row; U the new row (one U also when the key changes);
// D the old tuple pgoutput sends, which is the key alone (every other
// column null) under REPLICA IDENTITY DEFAULT and the whole row under
// FULL. With before-image columns, the key's old values follow: from the
// old tuple when pgoutput sends one (a key change under DEFAULT, every
// update under FULL), else the key, unchanged.
func (s *stream) change(relID uint32, op string, newTup *pglogrepl.TupleData, oldType uint8, oldTup *pglogrepl.TupleData) error {
	rel, ok := s.rels[relID]
	if !ok {
		return nil // not captured
	}
	var old dmstest.Row
	if oldTup != nil {
		var err error
		if old, err = s.tuple(rel, oldTup, nil); err != nil {
			return err
		}
	}
	var row dmstest.Row
	switch op {
	case "D":
		row = old
		if row == nil {
			return fmt.Errorf("pgcapture: %s: a delete without its old tuple", rel.name)
		}
	default:
		var full dmstest.Row
		if oldType == pglogrepl.UpdateMessageTupleTypeOld {
			full = old // REPLICA IDENTITY FULL: the whole old row
		}
		var err error
		if row, err = s.tuple(rel, newTup, full); err != nil {
			return err
		}
	}
	if _, bi := s.o.beforeImagePrefix(rel.name); bi {
		for _, i := range rel.pk {
			switch {
			case op == "I":
				row = append(row, nil)
			case old != nil:
				row = append(row, old[i])
			default:
				row = append(row, row[i]) // the key did not change
			}
		}
	}
	s.pending = append(s.pending, pendingChange{table: rel.name, cols: s.pcols[relID], op: op, row: row})
	return nil
}

// tuple converts a tuple's text values; an unchanged TOASTed value ('u')
// is taken from the full old row when there is one, and refused otherwise.
func (s *stream) tuple(rel *relation, t *pglogrepl.TupleData, full dmstest.Row) (dmstest.Row, error) {
	if len(t.Columns) != len(rel.cols) {
		return nil, fmt.Errorf("pgcapture: %s: a tuple of %d columns for %d", rel.name, len(t.Columns), len(rel.cols))
	}
	row := make(dmstest.Row, len(rel.cols), len(rel.cols)+len(rel.pk))
	for i, c := range t.Columns {
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
		case pglogrepl.TupleDataTypeText:
			v, err := rel.cols[i].value(c.Data)
			if err != nil {
				return nil, fmt.Errorf("pgcapture: %s: %w", rel.name, err)
			}
			row[i] = v
		case pglogrepl.TupleDataTypeToast:
			if full == nil {
				// pgoutput leaves out a TOASTed value an UPDATE did not
				// change unless the replica identity is FULL. What DMS
				// writes for it in an S3 target is not documented (its
				// PostgreSQL source maps text/jsonb/bytea to LOBs, whose
				// CDC handling depends on the LOB mode); refuse rather
				// than guess.
				return nil, fmt.Errorf("%w: %s column %s: set REPLICA IDENTITY FULL on the table, or update the column with the row", ErrUnchangedTOAST, rel.name, rel.cols[i].name)
			}
			row[i] = full[i]
		default:
			return nil, fmt.Errorf("pgcapture: %s column %s: tuple data of kind %q", rel.name, rel.cols[i].name, c.DataType)
		}
	}
	return row, nil
}

func (s *stream) truncate(m *pglogrepl.TruncateMessage) error {
	for _, id := range m.RelationIDs {
		rel, ok := s.rels[id]
		if !ok {
			continue
		}
		tr := s.res.Tables[rel.name]
		tr.Truncates++
		if !s.o.HandleSourceTableTruncated {
			s.log.Warn("pgcapture: TRUNCATE of a captured table is not replicated (DMS without HandleSourceTableTruncated)", "table", rel.name)
			continue
		}
		// The truncate is part of a transaction: changes of the table
		// before it in the transaction go with the table's objects.
		s.pending = slices.DeleteFunc(s.pending, func(p pendingChange) bool { return p.table == rel.name })
		deleted, err := s.target.DeleteTable(rel.name)
		tr.Deleted = append(tr.Deleted, deleted...)
		if err != nil {
			return fmt.Errorf("pgcapture: TRUNCATE %s: %w", rel.name, err)
		}
	}
	return nil
}

// doReload deletes each reloaded table's objects and writes its full load
// from the reload snapshot.
func (s *stream) doReload(ctx context.Context) error {
	if s.inTx {
		return errors.New("pgcapture: internal error: reload inside a transaction")
	}
	if err := s.target.FlushAll(); err != nil {
		return fmt.Errorf("pgcapture: %w", err)
	}
	for _, t := range s.reload {
		deleted, err := s.target.DeleteTable(t)
		tr := s.res.Tables[t]
		tr.Deleted = append(tr.Deleted, deleted...)
		if err != nil {
			return fmt.Errorf("pgcapture: reload: %w", err)
		}
		n, err := loadTable(ctx, s.o, s.snap, s.cat, s.target, t, tr)
		if err != nil {
			return err
		}
		s.st.LoadFiles[t] = n
		tr.Reloaded = true
	}
	if err := exec(ctx, s.snap, "COMMIT"); err != nil {
		return fmt.Errorf("pgcapture: %w", err)
	}
	s.log.Info("pgcapture: reloaded", "tables", strings.Join(s.reload, ","), "at", s.reloadAt)
	s.reload = nil
	return nil
}
