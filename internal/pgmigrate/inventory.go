package pgmigrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Column is one column of a table, in table order.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Extension is an installed extension.
type Extension struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// tableInfo is a user table as the catalogs describe it.
type tableInfo struct {
	Schema, Name string
	Partitioned  bool   // relkind 'p': holds no rows itself
	ReplIdent    string // pg_class.relreplident
	Unlogged     bool
	HasPK        bool
	Columns      []Column
	// Indexes and Constraints are "name: definition", sorted by name.
	Indexes, Constraints []string
}

func (t *tableInfo) qualified() string { return quoteIdent(t.Schema, t.Name) }
func (t *tableInfo) display() string   { return t.Schema + "." + t.Name }

// sequenceInfo is a sequence and the column that owns it, if any.
type sequenceInfo struct {
	Schema, Name string
	Increment    int64
	// Owning column (OWNED BY, serial or identity); empty when none.
	TableSchema, Table, Column, ColumnType string
}

func (s *sequenceInfo) qualified() string { return quoteIdent(s.Schema, s.Name) }
func (s *sequenceInfo) display() string   { return s.Schema + "." + s.Name }
func (s *sequenceInfo) ownedBy() string {
	if s.Table == "" {
		return ""
	}
	return s.TableSchema + "." + s.Table + "." + s.Column
}

// inventory is the catalog view of one database.
type inventory struct {
	Database    string
	Version     string
	VersionNum  int
	Tables      []*tableInfo
	Extensions  []Extension
	Sequences   []*sequenceInfo
	LargeObject int64
}

// userRelFilter keeps objects of user schemas that do not belong to an
// extension (an extension recreates its own tables and sequences).
const userRelFilter = `
	n.nspname NOT IN ('pg_catalog', 'information_schema')
	AND n.nspname NOT LIKE 'pg\_toast%'
	AND n.nspname NOT LIKE 'pg\_temp\_%'
	AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
		WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')`

// readInventory reads the catalogs through q (a connection or transaction).
func readInventory(ctx context.Context, q pgx.Tx) (*inventory, error) {
	inv := &inventory{}
	if err := q.QueryRow(ctx, `SELECT pg_catalog.current_database(), pg_catalog.current_setting('server_version'),
		pg_catalog.current_setting('server_version_num')::int,
		(SELECT pg_catalog.count(*) FROM pg_catalog.pg_largeobject_metadata)`).
		Scan(&inv.Database, &inv.Version, &inv.VersionNum, &inv.LargeObject); err != nil {
		return nil, fmt.Errorf("read server version: %w", err)
	}

	rows, err := q.Query(ctx, `SELECT n.nspname, c.relname, c.relkind = 'p', c.relreplident::text, c.relpersistence = 'u',
			EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
			COALESCE((SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
				WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'),
			COALESCE((SELECT pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
				WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'),
			COALESCE((SELECT pg_catalog.array_agg(i.relname::text || ': ' || pg_catalog.pg_get_indexdef(x.indexrelid) ORDER BY i.relname)
				FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid), '{}'),
			COALESCE((SELECT pg_catalog.array_agg(k.conname::text || ': ' || pg_catalog.pg_get_constraintdef(k.oid) ORDER BY k.conname)
				FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid), '{}')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND `+userRelFilter+`
		ORDER BY n.nspname, c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for rows.Next() {
		t := &tableInfo{}
		var names, types []string
		if err := rows.Scan(&t.Schema, &t.Name, &t.Partitioned, &t.ReplIdent, &t.Unlogged, &t.HasPK, &names, &types, &t.Indexes, &t.Constraints); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		for i := range names {
			t.Columns = append(t.Columns, Column{Name: names[i], Type: types[i]})
		}
		inv.Tables = append(inv.Tables, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}

	rows, err = q.Query(ctx, `SELECT extname::text, extversion FROM pg_catalog.pg_extension ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list extensions: %w", err)
	}
	for rows.Next() {
		var e Extension
		if err := rows.Scan(&e.Name, &e.Version); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list extensions: %w", err)
		}
		inv.Extensions = append(inv.Extensions, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list extensions: %w", err)
	}

	rows, err = q.Query(ctx, `SELECT n.nspname, c.relname, s.seqincrement,
			COALESCE(tn.nspname, ''), COALESCE(tc.relname, ''), COALESCE(a.attname::text, ''),
			COALESCE(pg_catalog.format_type(a.atttypid, a.atttypmod), '')
		FROM pg_catalog.pg_sequence s
		JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN LATERAL (SELECT d.refobjid, d.refobjsubid FROM pg_catalog.pg_depend d
			WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.seqrelid
			  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
			  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
			LIMIT 1) o ON true
		LEFT JOIN pg_catalog.pg_class tc ON tc.oid = o.refobjid
		LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = o.refobjid AND a.attnum = o.refobjsubid
		WHERE `+userRelFilter+`
		ORDER BY n.nspname, c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	for rows.Next() {
		s := &sequenceInfo{}
		if err := rows.Scan(&s.Schema, &s.Name, &s.Increment, &s.TableSchema, &s.Table, &s.Column, &s.ColumnType); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list sequences: %w", err)
		}
		inv.Sequences = append(inv.Sequences, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	return inv, nil
}

// seqState is what a sequence will hand out next.
type seqState struct {
	LastValue int64
	IsCalled  bool
}

// next is the value nextval would return.
func (s seqState) next(increment int64) int64 {
	if s.IsCalled {
		return s.LastValue + increment
	}
	return s.LastValue
}

func readSequence(ctx context.Context, q pgx.Tx, s *sequenceInfo) (seqState, error) {
	var st seqState
	err := q.QueryRow(ctx, `SELECT last_value, is_called FROM `+s.qualified()).Scan(&st.LastValue, &st.IsCalled)
	if err != nil {
		return st, fmt.Errorf("read sequence %s: %w", s.display(), err)
	}
	return st, nil
}

// integerTypes are the column types a sequence value can be compared with.
var integerTypes = map[string]bool{"smallint": true, "integer": true, "bigint": true}

// readOwnedExtreme returns max (ascending sequences) or min (descending) of
// the owning column, or nil when the table is empty or the column is not an
// integer.
func readOwnedExtreme(ctx context.Context, q pgx.Tx, s *sequenceInfo) (*int64, error) {
	if s.Table == "" || !integerTypes[s.ColumnType] {
		return nil, nil
	}
	agg := "max"
	if s.Increment < 0 {
		agg = "min"
	}
	var v *int64
	err := q.QueryRow(ctx, `SELECT pg_catalog.`+agg+`(`+quoteIdent(s.Column)+`)::bigint FROM `+quoteIdent(s.TableSchema, s.Table)).Scan(&v)
	if err != nil {
		return nil, fmt.Errorf("read %s(%s): %w", agg, s.ownedBy(), err)
	}
	return v, nil
}
