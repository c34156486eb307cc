package pgmigrate

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Report is the result of a migration or a verification, printed with
// --json. Field names are part of the CLI's interface.
type Report struct {
	Mode   string `json:"mode"`   // copy, live, cutover or verify-only
	Status string `json:"status"` // verified, mismatch or replicating
	OK     bool   `json:"ok"`
	Source string `json:"source"` // redacted URL
	Target string `json:"target"` // redacted URL

	SourceVersion string `json:"source_version,omitempty"`
	TargetVersion string `json:"target_version,omitempty"`
	// Snapshot is the exported source snapshot the copy and the source side
	// of the verification both read, when they shared one.
	Snapshot string `json:"snapshot,omitempty"`

	MismatchedTables    []string `json:"mismatched_tables"`
	MismatchedSequences []string `json:"mismatched_sequences"`
	Problems            []string `json:"problems"`
	Notes               []string `json:"notes,omitempty"`

	Extensions   ExtensionReport    `json:"extensions"`
	Tables       []TableReport      `json:"tables"`
	Sequences    []SequenceReport   `json:"sequences"`
	LargeObjects *LargeObjectReport `json:"large_objects,omitempty"`
	Replication  *ReplicationReport `json:"replication,omitempty"`
	Checksum     string             `json:"checksum_method"`
}

// ExtensionReport lists installed extensions on both sides.
type ExtensionReport struct {
	Match  bool        `json:"match"`
	Source []Extension `json:"source"`
	Target []Extension `json:"target"`
}

// TableReport compares one table.
type TableReport struct {
	Name     string     `json:"name"`
	Match    bool       `json:"match"`
	Problems []string   `json:"problems,omitempty"`
	Source   *TableSide `json:"source"`
	Target   *TableSide `json:"target"`
}

// TableSide is one side of a table comparison. Rows and Checksum are
// absent for partitioned parents: their partitions are listed on their own.
type TableSide struct {
	Columns     []Column `json:"columns"`
	PrimaryKey  bool     `json:"primary_key"`
	Indexes     []string `json:"indexes"`
	Constraints []string `json:"constraints"`
	Partitioned bool     `json:"partitioned,omitempty"`
	Rows        *int64   `json:"rows,omitempty"`
	Checksum    string   `json:"checksum,omitempty"`
}

// SequenceReport checks one sequence.
type SequenceReport struct {
	Name     string   `json:"name"`
	OwnedBy  string   `json:"owned_by,omitempty"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	Source   *SeqSide `json:"source"`
	Target   *SeqSide `json:"target"`
}

// SeqSide is a sequence's state on one side. LastValue is null until
// nextval or setval(…, true) has been called.
type SeqSide struct {
	LastValue *int64 `json:"last_value"`
	NextValue int64  `json:"next_value"`
	// ColumnExtreme is max (min for descending sequences) of the owning
	// column, null for an empty table or a non-integer column.
	ColumnExtreme *int64 `json:"column_max,omitempty"`
}

// LargeObjectReport compares pg_largeobject contents.
type LargeObjectReport struct {
	Match          bool   `json:"match"`
	SourceCount    int64  `json:"source_count"`
	TargetCount    int64  `json:"target_count"`
	SourceChecksum string `json:"source_checksum"`
	TargetChecksum string `json:"target_checksum"`
}

// ChecksumMethod documents, in the report, how checksums were computed.
const ChecksumMethod = "per table: count(*) and the exact numeric sums of the two 64-bit halves of md5(ROW(t.*)::text) over all rows, digested with md5; session settings pinned"

// tableSum is the count and checksum of one table.
type tableSum struct {
	Rows     int64
	Checksum string
}

// sideData is everything read from one database for a verification.
type sideData struct {
	inv    *inventory
	sums   map[string]tableSum // by display name
	seqs   map[string]seqSideData
	loSum  tableSum
	loRead bool
}

type seqSideData struct {
	state   seqState
	extreme *int64
}

// checksumSelect aggregates the md5 of each row's text form. Summing (not
// xor-ing) the halves as numeric keeps duplicates: two identical rows add
// twice instead of cancelling out, and numeric never overflows.
const checksumSelect = `SELECT pg_catalog.count(*),
	COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text,
	COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text
FROM (SELECT pg_catalog.md5(%s) AS h FROM %s) AS hangar_rows`

func digest(a, b string) string {
	sum := md5.Sum([]byte(a + ":" + b))
	return hex.EncodeToString(sum[:])
}

func checksumTable(ctx context.Context, tx pgx.Tx, t *tableInfo) (tableSum, error) {
	q := fmt.Sprintf(checksumSelect, "ROW(hangar_r.*)::text", "ONLY "+t.qualified()+" AS hangar_r")
	var s tableSum
	var a, b string
	if err := tx.QueryRow(ctx, q).Scan(&s.Rows, &a, &b); err != nil {
		return s, fmt.Errorf("checksum %s: %w", t.display(), err)
	}
	s.Checksum = digest(a, b)
	return s, nil
}

func checksumLargeObjects(ctx context.Context, tx pgx.Tx) (tableSum, error) {
	q := fmt.Sprintf(checksumSelect,
		"m.oid::text || ':' || pg_catalog.md5(pg_catalog.lo_get(m.oid))",
		"pg_catalog.pg_largeobject_metadata AS m")
	var s tableSum
	var a, b string
	if err := tx.QueryRow(ctx, q).Scan(&s.Rows, &a, &b); err != nil {
		return s, fmt.Errorf("checksum large objects: %w", err)
	}
	s.Checksum = digest(a, b)
	return s, nil
}

// beginSnapshot starts a read-only repeatable-read transaction on conn that
// sees snapshot (or, when snapshot is empty, a fresh one).
func beginSnapshot(ctx context.Context, conn *pgx.Conn, snapshot string) (pgx.Tx, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	if snapshot != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshot)); err != nil {
			_ = tx.Rollback(ctx)
			return nil, fmt.Errorf("import snapshot %s: %w", snapshot, err)
		}
	}
	return tx, nil
}

// collect reads one side. With a snapshot, it reads exactly that snapshot
// (the one the copy used); without, it exports its own so that all its
// workers agree with each other.
func collect(ctx context.Context, ep *endpoint, snapshot string, jobs int) (*sideData, error) {
	meta, err := ep.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer closeConn(meta)
	tx, err := beginSnapshot(ctx, meta, snapshot)
	if err != nil {
		return nil, ep.wrap("start verification", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if snapshot == "" {
		if err := tx.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&snapshot); err != nil {
			return nil, ep.wrap("export snapshot", err)
		}
	}
	inv, err := readInventory(ctx, tx)
	if err != nil {
		return nil, ep.wrap("read catalogs", err)
	}
	d := &sideData{inv: inv, sums: map[string]tableSum{}, seqs: map[string]seqSideData{}}
	for _, s := range inv.Sequences {
		st, err := readSequence(ctx, tx, s)
		if err != nil {
			return nil, ep.wrap("verify sequences", err)
		}
		ext, err := readOwnedExtreme(ctx, tx, s)
		if err != nil {
			return nil, ep.wrap("verify sequences", err)
		}
		d.seqs[s.display()] = seqSideData{state: st, extreme: ext}
	}
	if inv.LargeObject > 0 {
		d.loSum, err = checksumLargeObjects(ctx, tx)
		if err != nil {
			return nil, ep.wrap("verify large objects", err)
		}
		d.loRead = true
	}

	var todo []*tableInfo
	for _, t := range inv.Tables {
		if !t.Partitioned {
			todo = append(todo, t)
		}
	}
	if jobs < 1 {
		jobs = 1
	}
	if jobs > len(todo) {
		jobs = len(todo)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *tableInfo)
	var mu sync.Mutex // guards d.sums and firstErr
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := ep.connect(ctx)
			if err != nil {
				fail(err)
				for range work {
				}
				return
			}
			defer closeConn(conn)
			wtx, err := beginSnapshot(ctx, conn, snapshot)
			if err != nil {
				fail(ep.wrap("start verification worker", err))
				for range work {
				}
				return
			}
			defer func() { _ = wtx.Rollback(context.Background()) }()
			for t := range work {
				s, err := checksumTable(ctx, wtx, t)
				if err != nil {
					fail(ep.wrap("verify tables", err))
					continue
				}
				mu.Lock()
				d.sums[t.display()] = s
				mu.Unlock()
			}
		}()
	}
feed:
	for _, t := range todo {
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", ep.role, err)
	}
	return d, nil
}

// verify reads both sides in parallel and compares them.
func verify(ctx context.Context, src, dst *endpoint, srcSnapshot string, jobs int, r *Report) error {
	var sd, dd *sideData
	var serr, derr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sd, serr = collect(ctx, src, srcSnapshot, jobs) }()
	go func() { defer wg.Done(); dd, derr = collect(ctx, dst, "", jobs) }()
	wg.Wait()
	if serr != nil {
		return serr
	}
	if derr != nil {
		return derr
	}
	compare(sd, dd, r)
	return nil
}

// compare fills r with the comparison of src and dst.
func compare(src, dst *sideData, r *Report) {
	r.SourceVersion = src.inv.Version
	r.TargetVersion = dst.inv.Version
	r.Checksum = ChecksumMethod
	r.MismatchedTables = []string{}
	r.MismatchedSequences = []string{}
	r.Problems = []string{}

	// Extensions: each source extension must exist on the target with the
	// same version. Extra target extensions are noted, not failed: managed
	// services preinstall some.
	r.Extensions = ExtensionReport{Match: true, Source: src.inv.Extensions, Target: dst.inv.Extensions}
	dstExt := map[string]string{}
	for _, e := range dst.inv.Extensions {
		dstExt[e.Name] = e.Version
	}
	srcExt := map[string]bool{}
	for _, e := range src.inv.Extensions {
		srcExt[e.Name] = true
		v, ok := dstExt[e.Name]
		switch {
		case !ok:
			r.Extensions.Match = false
			r.Problems = append(r.Problems, fmt.Sprintf("extension %s %s is missing on the target", e.Name, e.Version))
		case v != e.Version:
			r.Extensions.Match = false
			r.Problems = append(r.Problems, fmt.Sprintf("extension %s is version %s on the source and %s on the target", e.Name, e.Version, v))
		}
	}
	for _, e := range dst.inv.Extensions {
		if !srcExt[e.Name] {
			r.Notes = append(r.Notes, fmt.Sprintf("extension %s %s exists only on the target", e.Name, e.Version))
		}
	}

	// Tables, by name, over the union of both sides.
	srcT := map[string]*tableInfo{}
	dstT := map[string]*tableInfo{}
	var names []string
	for _, t := range src.inv.Tables {
		srcT[t.display()] = t
		names = append(names, t.display())
	}
	for _, t := range dst.inv.Tables {
		dstT[t.display()] = t
		if srcT[t.display()] == nil {
			names = append(names, t.display())
		}
	}
	sort.Strings(names)
	r.Tables = []TableReport{}
	for _, name := range names {
		tr := TableReport{Name: name, Match: true}
		st, dt := srcT[name], dstT[name]
		if st != nil {
			tr.Source = tableSide(st, src)
		}
		if dt != nil {
			tr.Target = tableSide(dt, dst)
		}
		switch {
		case st == nil:
			tr.Problems = append(tr.Problems, "exists only on the target")
		case dt == nil:
			tr.Problems = append(tr.Problems, "missing on the target")
		default:
			if !sameColumns(st.Columns, dt.Columns) {
				tr.Problems = append(tr.Problems, fmt.Sprintf("columns differ: source (%s), target (%s)", columnList(st.Columns), columnList(dt.Columns)))
			}
			if d := setDiff(st.Indexes, dt.Indexes); d != "" {
				tr.Problems = append(tr.Problems, "indexes differ: "+d)
			}
			if d := setDiff(st.Constraints, dt.Constraints); d != "" {
				tr.Problems = append(tr.Problems, "constraints differ: "+d)
			}
			if st.Partitioned != dt.Partitioned {
				tr.Problems = append(tr.Problems, "partitioned on one side only")
			}
			if !st.Partitioned && !dt.Partitioned {
				ss, ds := src.sums[name], dst.sums[name]
				if ss.Rows != ds.Rows {
					tr.Problems = append(tr.Problems, fmt.Sprintf("row count differs: %d on the source, %d on the target", ss.Rows, ds.Rows))
				}
				if ss.Checksum != ds.Checksum {
					tr.Problems = append(tr.Problems, "row checksum differs")
				}
			}
		}
		if len(tr.Problems) > 0 {
			tr.Match = false
			r.MismatchedTables = append(r.MismatchedTables, name)
			for _, p := range tr.Problems {
				r.Problems = append(r.Problems, "table "+name+": "+p)
			}
		}
		r.Tables = append(r.Tables, tr)
	}

	// Sequences: present on the target and ahead of their column there.
	dstS := map[string]*sequenceInfo{}
	for _, s := range dst.inv.Sequences {
		dstS[s.display()] = s
	}
	r.Sequences = []SequenceReport{}
	for _, s := range src.inv.Sequences {
		name := s.display()
		sr := SequenceReport{Name: name, OwnedBy: s.ownedBy(), OK: true, Source: seqSide(s, src.seqs[name])}
		ds := dstS[name]
		if ds == nil {
			sr.Problems = append(sr.Problems, "missing on the target")
		} else {
			dd := dst.seqs[name]
			sr.Target = seqSide(ds, dd)
			if p := behind(ds, dd); p != "" {
				sr.Problems = append(sr.Problems, "on the target: "+p)
			}
			if p := behindSource(s, src.seqs[name], dd); p != "" {
				sr.Problems = append(sr.Problems, "on the target: "+p)
			}
		}
		if p := behind(s, src.seqs[name]); p != "" {
			r.Notes = append(r.Notes, fmt.Sprintf("sequence %s on the source: %s", name, p))
		}
		if len(sr.Problems) > 0 {
			sr.OK = false
			label := name
			if sr.OwnedBy != "" {
				label += " (owned by " + sr.OwnedBy + ")"
			}
			r.MismatchedSequences = append(r.MismatchedSequences, label)
			for _, p := range sr.Problems {
				r.Problems = append(r.Problems, "sequence "+label+": "+p)
			}
		}
		r.Sequences = append(r.Sequences, sr)
	}

	if src.inv.LargeObject > 0 || dst.inv.LargeObject > 0 {
		lo := &LargeObjectReport{
			SourceCount: src.inv.LargeObject, TargetCount: dst.inv.LargeObject,
			SourceChecksum: src.loSum.Checksum, TargetChecksum: dst.loSum.Checksum,
		}
		lo.Match = lo.SourceCount == lo.TargetCount && lo.SourceChecksum == lo.TargetChecksum
		if !lo.Match {
			r.Problems = append(r.Problems, fmt.Sprintf("large objects differ: %d on the source, %d on the target, checksums %s and %s",
				lo.SourceCount, lo.TargetCount, lo.SourceChecksum, lo.TargetChecksum))
		}
		r.LargeObjects = lo
	}

	r.OK = len(r.Problems) == 0
	if r.OK {
		r.Status = "verified"
	} else {
		r.Status = "mismatch"
	}
}

// mismatchError returns the error for a failed report, or nil.
func (r *Report) mismatchError() error {
	if r.OK {
		return nil
	}
	e := &MismatchError{Tables: r.MismatchedTables, Sequences: r.MismatchedSequences}
	for _, p := range r.Problems {
		if strings.HasPrefix(p, "extension ") || strings.HasPrefix(p, "large objects ") {
			e.Other = append(e.Other, p)
		}
	}
	return e
}

func tableSide(t *tableInfo, d *sideData) *TableSide {
	ts := &TableSide{Columns: t.Columns, PrimaryKey: t.HasPK, Partitioned: t.Partitioned,
		Indexes: nonNil(t.Indexes), Constraints: nonNil(t.Constraints)}
	if ts.Columns == nil {
		ts.Columns = []Column{}
	}
	if !t.Partitioned {
		if s, ok := d.sums[t.display()]; ok {
			rows := s.Rows
			ts.Rows = &rows
			ts.Checksum = s.Checksum
		}
	}
	return ts
}

func seqSide(s *sequenceInfo, d seqSideData) *SeqSide {
	ss := &SeqSide{NextValue: d.state.next(s.Increment), ColumnExtreme: d.extreme}
	if d.state.IsCalled {
		v := d.state.LastValue
		ss.LastValue = &v
	}
	return ss
}

// behind explains why s would hand out a value its column already holds,
// or returns "".
func behind(s *sequenceInfo, d seqSideData) string {
	if d.extreme == nil {
		return ""
	}
	next := d.state.next(s.Increment)
	if s.Increment > 0 && next <= *d.extreme {
		return fmt.Sprintf("next value %d is not above max(%s) = %d", next, s.Column, *d.extreme)
	}
	if s.Increment < 0 && next >= *d.extreme {
		return fmt.Sprintf("next value %d is not below min(%s) = %d", next, s.Column, *d.extreme)
	}
	return ""
}

// behindSource explains why the target's copy of sequence s would hand out
// a value the source already handed out (the only check an unowned
// sequence has: no column tells how far it went), or returns "".
func behindSource(s *sequenceInfo, src, dst seqSideData) string {
	want, got := src.state.next(s.Increment), dst.state.next(s.Increment)
	if s.Increment > 0 && got < want {
		return fmt.Sprintf("next value %d is behind the source's %d: run SELECT setval('%s', %d, false) on the target", got, want, s.display(), want)
	}
	if s.Increment < 0 && got > want {
		return fmt.Sprintf("next value %d is behind the source's %d (a descending sequence): run SELECT setval('%s', %d, false) on the target", got, want, s.display(), want)
	}
	return ""
}

func sameColumns(a, b []Column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func columnList(cs []Column) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Name + " " + c.Type
	}
	return strings.Join(parts, ", ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// setDiff describes what src has that dst lacks and the reverse, or "".
func setDiff(src, dst []string) string {
	in := func(set []string, x string) bool {
		for _, y := range set {
			if y == x {
				return true
			}
		}
		return false
	}
	var missing, extra []string
	for _, x := range src {
		if !in(dst, x) {
			missing = append(missing, x)
		}
	}
	for _, x := range dst {
		if !in(src, x) {
			extra = append(extra, x)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing on the target: "+strings.Join(missing, "; "))
	}
	if len(extra) > 0 {
		parts = append(parts, "only on the target: "+strings.Join(extra, "; "))
	}
	return strings.Join(parts, "; ")
}
