package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ReplicationReport describes a live migration.
type ReplicationReport struct {
	// Name is the publication on the source, and the subscription and
	// replication slot on the target and source.
	Name string `json:"name"`
	// ReplicaIdentityFull lists source tables without a primary key that
	// were switched to REPLICA IDENTITY FULL so that their updates and
	// deletes can be replicated.
	ReplicaIdentityFull []string `json:"replica_identity_full"`
	TablesReady         int      `json:"tables_ready"`
	TablesTotal         int      `json:"tables_total"`
	// LagBytes is the WAL the target had yet to confirm at the last poll.
	LagBytes int64 `json:"lag_bytes"`
	// CutoverLSN is the source WAL position after writes stopped; the
	// target confirmed it before verification.
	CutoverLSN          string `json:"cutover_lsn,omitempty"`
	SourceReadOnly      bool   `json:"source_read_only"`
	TerminatedSessions  int    `json:"terminated_sessions"`
	SequencesSynced     int    `json:"sequences_synced"`
	SubscriptionDropped bool   `json:"subscription_dropped"`
}

// replication names: one migration per source database at a time.
func replicationName(db string) string { return sanitizeName("hangar_", db) }

// checkLogical fails with the fix when the source cannot do logical
// decoding.
func (m *migration) checkLogical(ctx context.Context, conn *pgx.Conn) error {
	var walLevel string
	var slots, senders int
	err := conn.QueryRow(ctx, `SELECT pg_catalog.current_setting('wal_level'),
		pg_catalog.current_setting('max_replication_slots')::int, pg_catalog.current_setting('max_wal_senders')::int`).
		Scan(&walLevel, &slots, &senders)
	if err != nil {
		return m.src.wrap("read wal_level", err)
	}
	if walLevel != "logical" {
		return &Error{
			Msg: fmt.Sprintf("the source has wal_level=%s; --live needs wal_level=logical for logical replication", walLevel),
			Hint: "on the source run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL (a reload is not enough). " +
				"Managed services: set rds.logical_replication=1 in the RDS/Aurora parameter group, cloudsql.logical_decoding=on on Cloud SQL. " +
				"Or migrate without --live during a write freeze",
		}
	}
	if slots < 1 || senders < 1 {
		return &Error{
			Msg:  fmt.Sprintf("the source has max_replication_slots=%d and max_wal_senders=%d; --live needs at least one of each (plus one per table syncing)", slots, senders),
			Hint: "on the source set max_replication_slots and max_wal_senders to 10 or more (ALTER SYSTEM SET ...) and restart PostgreSQL",
		}
	}
	return nil
}

func (m *migration) live(ctx context.Context) error {
	srcConn, err := m.src.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(srcConn)
	dstConn, err := m.dst.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(dstConn)
	if err := m.checkLogical(ctx, srcConn); err != nil {
		return err
	}
	tx, err := srcConn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return m.src.wrap("read catalogs", err)
	}
	inv, err := readInventory(ctx, tx)
	_ = tx.Rollback(ctx)
	if err != nil {
		return m.src.wrap("read catalogs", err)
	}
	if inv.LargeObject > 0 {
		return &Error{
			Msg:  fmt.Sprintf("the source has %d large objects, which logical replication does not carry", inv.LargeObject),
			Hint: "migrate without --live (a snapshot copy includes large objects), or move them into bytea columns first",
		}
	}
	var unlogged []string
	for _, t := range inv.Tables {
		if t.Unlogged {
			unlogged = append(unlogged, t.display())
		}
	}
	if len(unlogged) > 0 {
		return &Error{
			Msg:  "logical replication cannot carry unlogged tables: " + strings.Join(unlogged, ", "),
			Hint: "make them logged on the source (ALTER TABLE ... SET LOGGED) or migrate without --live",
		}
	}
	name := replicationName(inv.Database)
	rep := &ReplicationReport{Name: name, ReplicaIdentityFull: []string{}}
	m.report.Replication = rep
	if err := m.checkNoReplication(ctx, srcConn, dstConn, name); err != nil {
		return err
	}
	if err := m.checkTargetEmpty(ctx, dstConn); err != nil {
		return err
	}
	tools, err := findTools(m.o.PgBin, inv.VersionNum/10000)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "hangar-pgschema-")
	if err != nil {
		return fmt.Errorf("create dump directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "schema")
	m.progress("copying the schema (pg_dump --schema-only, pg_restore)")
	if err := tools.dumpTo(ctx, m.src, nil, dir, "", 1, true); err != nil {
		return err
	}
	if err := tools.restoreFrom(ctx, m.dst, nil, dir, 1); err != nil {
		return err
	}

	var published []string
	for _, t := range inv.Tables {
		if t.Partitioned {
			continue // its partitions are published one by one
		}
		published = append(published, t.qualified())
		if (t.ReplIdent == "d" && !t.HasPK) || t.ReplIdent == "n" {
			if _, err := srcConn.Exec(ctx, "ALTER TABLE "+t.qualified()+" REPLICA IDENTITY FULL"); err != nil {
				return m.src.wrap("set REPLICA IDENTITY FULL on "+t.display()+" (it has no primary key)", err)
			}
			rep.ReplicaIdentityFull = append(rep.ReplicaIdentityFull, t.display())
			m.progress("%s has no primary key: set REPLICA IDENTITY FULL on the source so its updates and deletes replicate", t.display())
			if cols := noEqualityColumns(t); len(cols) > 0 {
				w := fmt.Sprintf("%s has no primary key and columns without an equality operator (%s): the target cannot match rows of its UPDATEs and DELETEs and replication will stop on the first one; add a primary key before migrating, or migrate without --live", t.display(), strings.Join(cols, ", "))
				m.progress("warning: %s", w)
				m.report.Notes = append(m.report.Notes, w)
			}
		}
	}
	pub := "CREATE PUBLICATION " + quoteIdent(name)
	if len(published) > 0 {
		pub += " FOR TABLE " + strings.Join(published, ", ")
	}
	if _, err := srcConn.Exec(ctx, pub); err != nil {
		return m.src.wrap("create publication "+name, err)
	}
	conninfo := m.o.SubscriptionConnInfo
	if conninfo == "" {
		conninfo = m.o.From
	}
	// The slot is created from here rather than by CREATE SUBSCRIPTION:
	// that would hang when source and target share a cluster (it waits for
	// its own transaction to build a consistent snapshot).
	if _, err := srcConn.Exec(ctx, "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", name); err != nil {
		err = m.src.wrap("create replication slot "+name, err)
		var pe *Error
		var pgErr *pgconn.PgError
		if errors.As(err, &pe) && errors.As(err, &pgErr) && pgErr.Code == codeInsufficientPriv {
			pe.Hint = "the source user needs the REPLICATION attribute: ALTER ROLE USER REPLICATION; (managed services: grant rds_replication on RDS)"
		}
		_, _ = srcConn.Exec(context.Background(), "DROP PUBLICATION IF EXISTS "+quoteIdent(name))
		return err
	}
	m.progress("creating subscription %s on the target; the initial table sync starts now", name)
	sub := "CREATE SUBSCRIPTION " + quoteIdent(name) + " CONNECTION " + quoteLiteral(conninfo) +
		" PUBLICATION " + quoteIdent(name) + " WITH (create_slot = false, slot_name = " + quoteLiteral(name) + ")"
	if _, err := dstConn.Exec(ctx, sub); err != nil {
		err = m.dst.wrap("create subscription "+name, err)
		var pe *Error
		var pgErr *pgconn.PgError
		if errors.As(err, &pe) && errors.As(err, &pgErr) && pgErr.Code == codeInsufficientPriv {
			pe.Hint = "CREATE SUBSCRIPTION needs a superuser on the target (PostgreSQL 15 and older) or the pg_create_subscription role (16 and newer)"
		} else if errors.As(err, &pe) && pe.Hint == "" {
			pe.Hint = "the target server must reach the source at --from (or --subscription-conninfo) as a user with the REPLICATION attribute, allowed by the source's pg_hba.conf"
		}
		_, _ = srcConn.Exec(context.Background(), "DROP PUBLICATION IF EXISTS "+quoteIdent(name))
		_, _ = srcConn.Exec(context.Background(), "SELECT pg_catalog.pg_drop_replication_slot($1)", name)
		return err
	}

	lag, err := m.waitReplication(ctx, srcConn, dstConn, name, func(ready, total int, lag int64) bool {
		return ready == total && lag >= 0 && lag <= m.o.LagThreshold
	})
	if err != nil {
		return err
	}
	m.progress("the target has caught up (lag %d bytes)", lag)
	proceed := m.o.Yes || m.o.Cutover
	if !proceed && m.o.Confirm != nil {
		proceed, err = m.o.Confirm(ctx, lag)
		if err != nil {
			return err
		}
	}
	if !proceed {
		m.report.Status = "replicating"
		m.report.OK = true
		m.report.Notes = append(m.report.Notes, "replication is running; finish with: hangar pg migrate --cutover --from SOURCE --to TARGET")
		return nil
	}
	closeConn(srcConn)
	closeConn(dstConn)
	return m.cutover(ctx)
}

// checkNoReplication refuses to start a second live migration of the same
// database.
func (m *migration) checkNoReplication(ctx context.Context, srcConn, dstConn *pgx.Conn, name string) error {
	var slot, pub, sub bool
	if err := srcConn.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1),
		EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)`, name).Scan(&slot, &pub); err != nil {
		return m.src.wrap("look for an earlier migration", err)
	}
	if err := dstConn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = $1)`, name).Scan(&sub); err != nil {
		return m.dst.wrap("look for an earlier migration", err)
	}
	if slot || pub || sub {
		return &Error{
			Msg: fmt.Sprintf("a live migration named %s already exists (slot on source: %v, publication on source: %v, subscription on target: %v)", name, slot, pub, sub),
			Hint: fmt.Sprintf("finish it with hangar pg migrate --cutover, or remove it: on the target DROP SUBSCRIPTION %s; on the source DROP PUBLICATION %s; and, if the slot remains, SELECT pg_drop_replication_slot('%s');",
				quoteIdent(name), quoteIdent(name), name),
		}
	}
	return nil
}

// waitReplication polls the subscription's table states and the slot's lag
// until done says so, printing progress, and returns the last lag.
func (m *migration) waitReplication(ctx context.Context, srcConn, dstConn *pgx.Conn, name string, done func(ready, total int, lag int64) bool) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, m.o.WaitTimeout)
	defer cancel()
	rep := m.report.Replication
	var lastPrint time.Time
	var lastErrors int64
	for {
		var ready, total int
		var subExists bool
		err := dstConn.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = $1),
			pg_catalog.count(*) FILTER (WHERE r.srsubstate = 'r'), pg_catalog.count(*)
			FROM pg_catalog.pg_subscription_rel r JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid
			WHERE s.subname = $1`, name).Scan(&subExists, &ready, &total)
		if err != nil {
			return 0, m.waitError(ctx, m.dst, "read subscription state", err)
		}
		if !subExists {
			return 0, &Error{Msg: fmt.Sprintf("subscription %s does not exist on the target", name), Hint: "start a live migration with hangar pg migrate --live"}
		}
		var lag int64
		var slotExists bool
		err = srcConn.QueryRow(ctx, `SELECT pg_catalog.count(*) > 0,
			COALESCE(pg_catalog.max(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn))::bigint, -1)
			FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name).Scan(&slotExists, &lag)
		if err != nil {
			return 0, m.waitError(ctx, m.src, "read replication lag", err)
		}
		if !slotExists {
			return 0, &Error{Msg: fmt.Sprintf("replication slot %s does not exist on the source", name), Hint: "the subscription lost its slot: drop the subscription on the target and start again with --live into an empty database"}
		}
		var errs int64
		if err := dstConn.QueryRow(ctx, `SELECT COALESCE(pg_catalog.sum(apply_error_count + sync_error_count), 0)::bigint
			FROM pg_catalog.pg_stat_subscription_stats WHERE subname = $1`, name).Scan(&errs); err == nil && errs > lastErrors {
			m.progress("warning: the subscription reports %d errors so far; the target server log says why", errs)
			lastErrors = errs
		}
		if rep != nil {
			rep.TablesReady, rep.TablesTotal, rep.LagBytes = ready, total, lag
		}
		if done(ready, total, lag) {
			return lag, nil
		}
		if time.Since(lastPrint) >= 2*time.Second {
			lagText := "unknown"
			if lag >= 0 {
				lagText = fmt.Sprintf("%d bytes", lag)
			}
			m.progress("replication: %d/%d tables synchronized, lag %s", ready, total, lagText)
			lastPrint = time.Now()
		}
		select {
		case <-ctx.Done():
			return lag, m.waitError(ctx, m.src, "wait for replication", ctx.Err())
		case <-time.After(m.o.PollInterval):
		}
	}
}

func (m *migration) waitError(ctx context.Context, ep *endpoint, doing string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		name := "hangar_<db>"
		if m.report.Replication != nil {
			name = m.report.Replication.Name
		}
		return &Error{
			Msg:  "interrupted while waiting for replication",
			Err:  err,
			Hint: fmt.Sprintf("replication %s keeps running: finish it with hangar pg migrate --cutover, or remove it with DROP SUBSCRIPTION %s; on the target and DROP PUBLICATION %s; on the source", name, quoteIdent(name), quoteIdent(name)),
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{
			Msg:  fmt.Sprintf("replication did not catch up within %s", m.o.WaitTimeout),
			Err:  err,
			Hint: "check the target server log for subscription errors (conflicts, missing privileges, tables without a replica identity), then run hangar pg migrate --cutover again",
		}
	}
	return ep.wrap(doing, err)
}

// cutover stops writes on the source, waits until the target has
// confirmed every byte of WAL written before, copies the sequences,
// verifies, and removes the replication.
func (m *migration) cutover(ctx context.Context) (err error) {
	defer func() {
		// Once writes are stopped, every failure must say so: the report
		// that would carry the note is not printed for errors.
		rep := m.report.Replication
		if err == nil || rep == nil || !rep.SourceReadOnly {
			return
		}
		undo := fmt.Sprintf("the source database is read-only for new sessions now: run hangar pg migrate --cutover again once the problem is fixed, or undo with ALTER DATABASE %s RESET default_transaction_read_only;", quoteIdent(m.srcDB))
		var pe *Error
		if errors.As(err, &pe) {
			if pe.Hint != "" {
				pe.Hint += "; "
			}
			pe.Hint += undo
			return
		}
		err = &Error{Msg: err.Error(), Err: err, Hint: undo}
	}()
	srcConn, err := m.src.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(srcConn)
	dstConn, err := m.dst.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn(dstConn)
	var db string
	if err := srcConn.QueryRow(ctx, "SELECT pg_catalog.current_database()").Scan(&db); err != nil {
		return m.src.wrap("read database name", err)
	}
	m.srcDB = db
	name := replicationName(db)
	rep := m.report.Replication
	if rep == nil {
		rep = &ReplicationReport{Name: name, ReplicaIdentityFull: []string{}}
		m.report.Replication = rep
	}
	// Our own session must stay writable after the database turns read-only.
	if _, err := srcConn.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
		return m.src.wrap("prepare cutover", err)
	}
	m.progress("cutover: waiting for every table of %s to finish its initial sync", name)
	if _, err := m.waitReplication(ctx, srcConn, dstConn, name, func(ready, total int, _ int64) bool { return ready == total }); err != nil {
		return err
	}

	m.progress("cutover: stopping writes on the source database %s", db)
	if _, err := srcConn.Exec(ctx, "ALTER DATABASE "+quoteIdent(db)+" SET default_transaction_read_only = on"); err != nil {
		return m.src.wrap("make the source read-only (ALTER DATABASE needs the database owner or a superuser)", err)
	}
	rep.SourceReadOnly = true
	m.report.Notes = append(m.report.Notes, fmt.Sprintf("the source database %s is read-only for new sessions; to undo: ALTER DATABASE %s RESET default_transaction_read_only;", db, quoteIdent(db)))
	n, err := m.terminateSessions(ctx, srcConn)
	if err != nil {
		return err
	}
	rep.TerminatedSessions = n

	lsn, err := m.cutoverLSN(ctx, srcConn)
	if err != nil {
		return err
	}
	rep.CutoverLSN = lsn
	m.progress("cutover: waiting for the target to confirm WAL up to %s", lsn)
	var confirmed bool
	if _, err := m.waitReplication(ctx, srcConn, dstConn, name, func(int, int, int64) bool {
		err := srcConn.QueryRow(ctx, `SELECT COALESCE(pg_catalog.bool_and(confirmed_flush_lsn >= $2::pg_lsn), false)
			FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name, lsn).Scan(&confirmed)
		return err == nil && confirmed
	}); err != nil {
		return err
	}
	rep.LagBytes = 0

	m.progress("cutover: copying sequence values")
	synced, err := m.syncSequences(ctx, srcConn, dstConn)
	if err != nil {
		return err
	}
	rep.SequencesSynced = synced

	m.progress("cutover: verifying")
	if err := verify(ctx, m.src, m.dst, "", m.o.Jobs, m.report); err != nil {
		return err
	}
	if !m.report.OK {
		m.report.Notes = append(m.report.Notes, fmt.Sprintf("replication %s was left in place for inspection; remove it with DROP SUBSCRIPTION %s; on the target and DROP PUBLICATION %s; on the source", name, quoteIdent(name), quoteIdent(name)))
		return nil
	}
	if _, err := dstConn.Exec(ctx, "DROP SUBSCRIPTION "+quoteIdent(name)); err != nil {
		return m.dst.wrap("drop subscription "+name, err)
	}
	rep.SubscriptionDropped = true
	if _, err := srcConn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(name)); err != nil {
		return m.src.wrap("drop publication "+name, err)
	}
	m.progress("cutover: done; subscription and publication %s removed", name)
	return nil
}

// terminateSessions ends every other client session of the source
// database, so that new ones come back read-only, and waits until they
// are gone. Replication connections are left alone.
func (m *migration) terminateSessions(ctx context.Context, srcConn *pgx.Conn) (int, error) {
	const others = `FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database()
		AND pid <> pg_catalog.pg_backend_pid() AND backend_type = 'client backend'`
	var n int
	if err := srcConn.QueryRow(ctx, "SELECT pg_catalog.count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid)) "+others).Scan(&n); err != nil {
		return 0, m.src.wrap("terminate the source's other sessions (needs a superuser or the pg_signal_backend role)", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left int
		if err := srcConn.QueryRow(ctx, "SELECT pg_catalog.count(*) "+others).Scan(&left); err != nil {
			return n, m.src.wrap("wait for sessions to end", err)
		}
		if left == 0 {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, &Error{Msg: fmt.Sprintf("%d sessions on the source did not end after pg_terminate_backend", left), Hint: "check pg_stat_activity on the source and end them, then run hangar pg migrate --cutover again"}
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// syncSequences copies every sequence's state to the target: logical
// replication does not carry sequences.
func (m *migration) syncSequences(ctx context.Context, srcConn, dstConn *pgx.Conn) (int, error) {
	tx, err := srcConn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, m.src.wrap("read sequences", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	inv, err := readInventory(ctx, tx)
	if err != nil {
		return 0, m.src.wrap("read sequences", err)
	}
	n := 0
	for _, s := range inv.Sequences {
		st, err := readSequence(ctx, tx, s)
		if err != nil {
			return n, m.src.wrap("read sequences", err)
		}
		if _, err := dstConn.Exec(ctx, "SELECT pg_catalog.setval($1::pg_catalog.regclass, $2, $3)", s.qualified(), st.LastValue, st.IsCalled); err != nil {
			return n, m.dst.wrap("set sequence "+s.display(), err)
		}
		n++
	}
	return n, nil
}

// cutoverLSN returns a WAL position after every write the source has
// committed. The insert position, not pg_current_wal_lsn (the write
// position): with synchronous_commit=off a commit can sit in the WAL
// buffers, behind the write position. A logical decoding message marks the
// spot with a record of its own, so the walsender passes it and the slot's
// confirmed position reaches it even if nothing else is ever written;
// without the privilege to emit one, fall back to the insert position.
func (m *migration) cutoverLSN(ctx context.Context, srcConn *pgx.Conn) (string, error) {
	var lsn string
	err := srcConn.QueryRow(ctx, "SELECT pg_catalog.pg_logical_emit_message(false, 'hangar-cutover', '')::text").Scan(&lsn)
	if err == nil {
		return lsn, nil
	}
	if err := srcConn.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return "", m.src.wrap("read the WAL position", err)
	}
	return lsn, nil
}

// typesWithoutEquality are common column types with no default equality
// operator: the subscriber's REPLICA IDENTITY FULL row lookup fails on them.
var typesWithoutEquality = map[string]bool{
	"json": true, "json[]": true, "xml": true, "xml[]": true, "point": true, "line": true, "lseg": true,
	"box": true, "path": true, "polygon": true, "circle": true, "txid_snapshot": true, "pg_snapshot": true,
}

func noEqualityColumns(t *tableInfo) []string {
	var cols []string
	for _, c := range t.Columns {
		if typesWithoutEquality[c.Type] {
			cols = append(cols, c.Name+" "+c.Type)
		}
	}
	return cols
}
