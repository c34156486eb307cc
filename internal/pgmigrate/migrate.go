package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure Run. From and To are libpq connection strings
// (postgres:// URLs or key=value).
type Options struct {
	From, To string

	// VerifyOnly compares the databases without copying anything.
	VerifyOnly bool
	// Live sets up logical replication instead of a one-shot copy; Cutover
	// finishes a live migration (started now or by an earlier run).
	Live, Cutover bool
	// Yes cuts over without asking once the target has caught up.
	Yes bool
	// Confirm asks whether to cut over now; nil means "not interactive":
	// without Yes, Run leaves replication running and returns.
	Confirm func(ctx context.Context, lagBytes int64) (bool, error)

	// Jobs is the parallelism of pg_dump, pg_restore and the checksums.
	Jobs int
	// PgBin is a directory with pg_dump and pg_restore.
	PgBin string
	// SubscriptionConnInfo is how the target server reaches the source for
	// replication, when it differs from From (another host name inside
	// the target's network, for instance).
	SubscriptionConnInfo string
	// LagThreshold is the lag, in bytes of WAL, under which the target
	// counts as caught up before cutover. Zero means 64 KiB.
	LagThreshold int64
	// WaitTimeout bounds each wait for replication (initial sync, catching
	// up, draining at cutover). Zero means one hour.
	WaitTimeout time.Duration
	// PollInterval is how often replication progress is polled. Zero means
	// 500ms.
	PollInterval time.Duration

	// Progress receives human-readable progress lines; nil discards them.
	Progress io.Writer
}

// Run performs what o asks and returns the report. A verification that
// finds differences returns the report and a *MismatchError; problems a
// person must fix return an *Error with a hint. Every string in the report
// and the error is free of passwords.
func Run(ctx context.Context, o Options) (*Report, error) {
	red := newRedactor(o.From, o.To, o.SubscriptionConnInfo)
	r, err := run(ctx, o, red)
	if err != nil {
		var me *MismatchError
		var pe *Error
		switch {
		case errors.As(err, &me):
		case errors.As(err, &pe):
			pe.Msg = red.scrub(pe.Msg)
			pe.Hint = red.scrubLiteral(pe.Hint)
		default:
			err = &Error{Msg: red.scrub(err.Error()), Err: err}
		}
	}
	return r, err
}

func run(ctx context.Context, o Options, red *redactor) (*Report, error) {
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	if o.LagThreshold <= 0 {
		o.LagThreshold = 64 << 10
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = time.Hour
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	n := 0
	for _, b := range []bool{o.VerifyOnly, o.Live, o.Cutover} {
		if b {
			n++
		}
	}
	if n > 1 && !(o.Live && o.Cutover) {
		return nil, &Error{Msg: "--verify-only cannot be combined with --live or --cutover", Hint: "run the migration first, then hangar pg migrate --verify-only"}
	}
	src, err := parseEndpoint("source", o.From, red)
	if err != nil {
		return nil, err
	}
	dst, err := parseEndpoint("target", o.To, red)
	if err != nil {
		return nil, err
	}
	if o.SubscriptionConnInfo != "" {
		if _, err := pgx.ParseConfig(o.SubscriptionConnInfo); err != nil {
			return nil, &Error{Msg: "--subscription-conninfo is not valid: " + red.scrub(err.Error()), Hint: "use postgres://USER:PASSWORD@HOST:5432/DBNAME as the target server would reach the source"}
		}
	}
	r := &Report{Source: src.redacted(), Target: dst.redacted(), Checksum: ChecksumMethod,
		MismatchedTables: []string{}, MismatchedSequences: []string{}, Problems: []string{}}
	m := &migration{o: o, src: src, dst: dst, red: red, report: r}
	switch {
	case o.VerifyOnly:
		r.Mode = "verify-only"
		err = m.verifyOnly(ctx)
	case o.Cutover && !o.Live:
		r.Mode = "cutover"
		err = m.cutover(ctx)
	case o.Live:
		r.Mode = "live"
		err = m.live(ctx)
	default:
		r.Mode = "copy"
		err = m.copy(ctx)
	}
	if err != nil {
		return r, err
	}
	if r.Status == "replicating" {
		return r, nil
	}
	return r, r.mismatchError()
}

// migration is one run of Run.
type migration struct {
	o        Options
	src, dst *endpoint
	red      *redactor
	report   *Report
	srcDB    string // source database name, once known
}

func (m *migration) progress(format string, args ...any) {
	fmt.Fprintln(m.o.Progress, "hangar: "+m.red.scrub(fmt.Sprintf(format, args...)))
}

// toolProgress forwards a pg_dump or pg_restore progress line.
func (m *migration) toolProgress(line string) { m.progress("%s", line) }

func (m *migration) verifyOnly(ctx context.Context) error {
	m.progress("verifying: counting and checksumming every table on both sides")
	return verify(ctx, m.src, m.dst, "", m.o.Jobs, m.report)
}

// checkTargetEmpty refuses to copy into a database that already has
// tables: a restore on top of them would fail halfway or mix data.
func (m *migration) checkTargetEmpty(ctx context.Context, conn *pgx.Conn) error {
	var n int
	var example string
	err := conn.QueryRow(ctx, `SELECT pg_catalog.count(*), COALESCE(pg_catalog.min(n.nspname || '.' || c.relname), '')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND `+userRelFilter).Scan(&n, &example)
	if err != nil {
		return m.dst.wrap("check that the target is empty", err)
	}
	if n > 0 {
		return &Error{
			Msg:  fmt.Sprintf("the target database is not empty: it has %d tables, views or sequences (for example %s)", n, example),
			Hint: "migrate into an empty database (createdb a new one, or dropdb and createdb this one), or compare the two with --verify-only",
		}
	}
	return nil
}

// serverMajor reads the major version of a server.
func serverMajor(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v int
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, err
	}
	return v / 10000, nil
}

// copy dumps the source from one exported snapshot, restores it into the
// target, and verifies the target against that same snapshot: the check
// holds even if the source takes writes meanwhile.
func (m *migration) copy(ctx context.Context) error {
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
	if err := m.checkTargetEmpty(ctx, dstConn); err != nil {
		return err
	}
	major, err := serverMajor(ctx, srcConn)
	if err != nil {
		return m.src.wrap("read server version", err)
	}
	tools, err := findTools(m.o.PgBin, major)
	if err != nil {
		return err
	}

	// The snapshot lives as long as this transaction: keep it open until
	// the source side of the verification has read it.
	tx, err := srcConn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return m.src.wrap("begin snapshot transaction", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&snapshot); err != nil {
		return m.src.wrap("export snapshot", err)
	}
	m.report.Snapshot = snapshot

	tmp, err := os.MkdirTemp("", "hangar-pgdump-")
	if err != nil {
		return fmt.Errorf("create dump directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "dump")

	start := time.Now()
	m.progress("dumping the source with %s --jobs %d from snapshot %s", filepath.Base(tools.dump), m.o.Jobs, snapshot)
	if err := tools.dumpTo(ctx, m.src, m.toolProgress, dir, snapshot, m.o.Jobs, false); err != nil {
		return err
	}
	m.progress("dumped in %s; restoring into the target with pg_restore --jobs %d", time.Since(start).Round(time.Millisecond), m.o.Jobs)
	start = time.Now()
	if err := tools.restoreFrom(ctx, m.dst, m.toolProgress, dir, m.o.Jobs); err != nil {
		return err
	}
	m.progress("restored in %s; verifying against the same snapshot", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := verify(ctx, m.src, m.dst, snapshot, m.o.Jobs, m.report); err != nil {
		return err
	}
	m.progress("verified in %s", time.Since(start).Round(time.Millisecond))
	m.report.Notes = append(m.report.Notes, "pg_restore does not collect planner statistics: run ANALYZE (or vacuumdb --analyze-in-stages) on the target before sending it traffic")
	return nil
}

// sanitizeName turns a database name into a replication slot name: lower
// case letters, digits and underscores, at most 63 bytes.
func sanitizeName(prefix, db string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, c := range strings.ToLower(db) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}
