package pgmigrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// runChecked runs a migration and fails the test if the password of any
// URL involved shows up in the report, the error, its hint or the
// progress output.
func runChecked(t *testing.T, o Options, secrets ...string) (*Report, error, string) {
	t.Helper()
	progress := newSyncBuffer()
	o.Progress = progress
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 60 * time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	r, err := Run(ctx, o)
	t.Logf("Run(mode live=%v cutover=%v verify-only=%v) took %s", o.Live, o.Cutover, o.VerifyOnly, time.Since(start).Round(time.Millisecond))
	var out strings.Builder
	if r != nil {
		b, jerr := json.Marshal(r)
		if jerr != nil {
			t.Fatalf("marshal report: %v", jerr)
		}
		out.Write(b)
	}
	if err != nil {
		out.WriteString("\n" + err.Error())
		var pe *Error
		if errors.As(err, &pe) {
			out.WriteString("\n" + pe.Hint)
		}
	}
	out.WriteString("\n" + progress.String())
	if containsSecret(out.String(), secrets...) {
		t.Fatalf("a password leaked into the output:\n%s", out.String())
	}
	return r, err, progress.String()
}

func tableReport(t *testing.T, r *Report, name string) TableReport {
	t.Helper()
	for _, tr := range r.Tables {
		if tr.Name == name {
			return tr
		}
	}
	t.Fatalf("table %s not in report; tables: %v", name, tableNames(r))
	return TableReport{}
}

func tableNames(r *Report) []string {
	var names []string
	for _, tr := range r.Tables {
		names = append(names, tr.Name)
	}
	return names
}

func rowsOf(t *testing.T, side *TableSide) int64 {
	t.Helper()
	if side == nil || side.Rows == nil {
		t.Fatalf("no row count in %+v", side)
	}
	return *side.Rows
}

// TestPostgres runs the migration against two real PostgreSQL servers: a
// source with wal_level=logical and a target with wal_level=replica (the
// target doubles as the source that cannot do logical replication).
func TestPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PostgreSQL servers")
	}
	start := time.Now()
	src := startPG(t, "logical")
	dst := startPG(t, "replica")
	t.Logf("two servers up in %s (source port %d, target port %d)", time.Since(start).Round(time.Millisecond), src.Port, dst.Port)

	src.createDB(t, "app")
	src.loadSQL(t, "app", "source.sql")
	src.exec(t, "app",
		`SELECT lo_from_bytea(0, convert_to('hello, large object', 'UTF8'))`,
		`SELECT lo_from_bytea(0, decode(repeat('00ff', 5000), 'hex'))`,
		// The old server's replication setup must not follow the data.
		`CREATE PUBLICATION app_pub FOR TABLE items`)

	t.Run("CopyVerifiesEqual", func(t *testing.T) {
		dst.createDB(t, "copy_ok")
		r, err, progress := runChecked(t, Options{From: src.url("app"), To: dst.url("copy_ok"), Jobs: 2})
		if err != nil || ExitCode(err) != 0 {
			t.Fatalf("copy: %v\nprogress:\n%s", err, progress)
		}
		if !r.OK || r.Status != "verified" || r.Mode != "copy" {
			t.Fatalf("report not ok: ok=%v status=%s problems=%v", r.OK, r.Status, r.Problems)
		}
		// pg_dump --jobs reports from its workers as they go; which table a
		// line names depends on scheduling, so only the kinds are checked.
		for _, want := range []string{`dumping contents of table "`, `processing data for table "`, "verified in"} {
			if !strings.Contains(progress, want) {
				t.Errorf("progress does not mention %s:\n%s", want, progress)
			}
		}
		if r.Snapshot == "" {
			t.Error("copy did not record the snapshot it used")
		}
		want := map[string]int64{
			"public.items": 400, "public.events": 1000, "public.log_lines": 303,
			"Billing.Invoice Lines": 50, "public.readings_2024": 213, "public.readings_2025": 87,
		}
		for name, rows := range want {
			tr := tableReport(t, r, name)
			if !tr.Match || rowsOf(t, tr.Source) != rows || rowsOf(t, tr.Target) != rows {
				t.Errorf("%s: match=%v rows %v/%v, want %d", name, tr.Match, tr.Source.Rows, tr.Target.Rows, rows)
			}
			if tr.Source.Checksum == "" || tr.Source.Checksum != tr.Target.Checksum {
				t.Errorf("%s: checksums %q and %q", name, tr.Source.Checksum, tr.Target.Checksum)
			}
		}
		if p := tableReport(t, r, "public.readings"); !p.Source.Partitioned || p.Source.Rows != nil {
			t.Errorf("partitioned parent should have no own row count: %+v", p.Source)
		}
		items := tableReport(t, r, "public.items")
		if items.Source.Columns[0] != (Column{Name: "id", Type: "bigint"}) || len(items.Source.Columns) != 21 {
			t.Errorf("items columns: %+v", items.Source.Columns)
		}
		if !slices.Contains(items.Target.Indexes, "items_pkey: CREATE UNIQUE INDEX items_pkey ON public.items USING btree (id)") {
			t.Errorf("items indexes on target: %v", items.Target.Indexes)
		}
		events := tableReport(t, r, "public.events")
		if len(events.Target.Indexes) != 2 || !slices.Contains(events.Target.Constraints, "events_item_id_fkey: FOREIGN KEY (item_id) REFERENCES public.items(id)") {
			t.Errorf("events indexes %v, constraints %v", events.Target.Indexes, events.Target.Constraints)
		}
		if !slices.Contains(r.Extensions.Source, Extension{Name: "hstore", Version: "1.8"}) || !r.Extensions.Match {
			t.Errorf("extensions: %+v", r.Extensions)
		}
		if r.LargeObjects == nil || !r.LargeObjects.Match || r.LargeObjects.TargetCount != 2 {
			t.Errorf("large objects: %+v", r.LargeObjects)
		}
		seqs := map[string]SequenceReport{}
		for _, s := range r.Sequences {
			seqs[s.Name] = s
			if !s.OK {
				t.Errorf("sequence %s: %v", s.Name, s.Problems)
			}
		}
		if s := seqs["public.items_id_seq"]; s.OwnedBy != "public.items.id" || s.Target == nil || s.Target.NextValue != 401 {
			t.Errorf("items_id_seq: %+v target %+v", s, s.Target)
		}
		if s := seqs["public.invoice_no"]; s.Target == nil || s.Target.LastValue == nil || *s.Target.LastValue != 1004 {
			t.Errorf("invoice_no: %+v", s)
		}
		if _, ok := seqs["public.events_id_seq"]; !ok {
			t.Errorf("identity sequence of events missing: %v", seqs)
		}

		if n := dst.queryInt(t, "copy_ok", `SELECT count(*) FROM pg_publication`); n != 0 {
			t.Errorf("the source's publication was copied (%d on target)", n)
		}

		// The JSON report has the documented shape.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"mode", "status", "ok", "source", "target", "mismatched_tables", "mismatched_sequences",
			"problems", "extensions", "tables", "sequences", "large_objects", "checksum_method"} {
			if _, ok := doc[key]; !ok {
				t.Errorf("report has no %q: %s", key, b)
			}
		}
		if mt, ok := doc["mismatched_tables"].([]any); !ok || len(mt) != 0 {
			t.Errorf("mismatched_tables should be an empty list: %v", doc["mismatched_tables"])
		}

		// The copy is verified against the snapshot, so a fresh comparison
		// of the quiet databases agrees.
		r2, err, _ := runChecked(t, Options{From: src.url("app"), To: dst.url("copy_ok"), VerifyOnly: true})
		if err != nil || !r2.OK {
			t.Fatalf("verify-only after copy: %v %v", err, r2.Problems)
		}
	})

	t.Run("CorruptedTargetIsNamed", func(t *testing.T) {
		dst.createDB(t, "copy_bad")
		if _, err, _ := runChecked(t, Options{From: src.url("app"), To: dst.url("copy_bad"), Jobs: 2}); err != nil {
			t.Fatalf("copy: %v", err)
		}
		dst.exec(t, "copy_bad",
			`UPDATE items SET price = price + 0.0001 WHERE id = 8`,
			`DELETE FROM log_lines WHERE ctid = (SELECT ctid FROM log_lines WHERE line = 'line 3' LIMIT 1)`,
			`SELECT setval('items_id_seq', 1)`,
			// Nobody owns invoice_no, so only the source's own position
			// tells that the target's is behind.
			`SELECT setval('invoice_no', 5)`,
			`ALTER TABLE "Billing"."Invoice Lines" DROP CONSTRAINT "Invoice Lines_pkey"`)
		r, err, _ := runChecked(t, Options{From: src.url("app"), To: dst.url("copy_bad"), VerifyOnly: true, Jobs: 3})
		var me *MismatchError
		if !errors.As(err, &me) {
			t.Fatalf("want a MismatchError, got %v", err)
		}
		if code := ExitCode(err); code != ExitMismatch || code == 0 {
			t.Errorf("exit code for a mismatch = %d, want %d", code, ExitMismatch)
		}
		if r.OK || r.Status != "mismatch" {
			t.Errorf("report says ok=%v status=%s", r.OK, r.Status)
		}
		if !slices.Equal(r.MismatchedTables, []string{"Billing.Invoice Lines", "public.items", "public.log_lines"}) {
			t.Errorf("mismatched tables = %v, want Billing.Invoice Lines, public.items and public.log_lines", r.MismatchedTables)
		}
		if inv := tableReport(t, r, "Billing.Invoice Lines"); len(inv.Problems) != 2 || !strings.HasPrefix(inv.Problems[0], "indexes differ: missing on the target: Invoice Lines_pkey") ||
			!strings.HasPrefix(inv.Problems[1], "constraints differ: missing on the target: Invoice Lines_pkey: PRIMARY KEY") {
			t.Errorf("dropped primary key: %v", inv.Problems)
		}
		if len(r.MismatchedSequences) != 2 || !strings.Contains(r.MismatchedSequences[0], "public.invoice_no") ||
			!strings.Contains(r.MismatchedSequences[1], "public.items_id_seq") || !strings.Contains(r.MismatchedSequences[1], "public.items.id") {
			t.Errorf("mismatched sequences = %v, want public.invoice_no and public.items_id_seq", r.MismatchedSequences)
		}
		for _, name := range []string{"public.items", "public.log_lines", "public.items_id_seq", "public.invoice_no"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
		}
		items := tableReport(t, r, "public.items")
		if rowsOf(t, items.Target) != 400 || !slices.Equal(items.Problems, []string{"row checksum differs"}) {
			t.Errorf("items: same count, different checksum expected: %+v", items.Problems)
		}
		logs := tableReport(t, r, "public.log_lines")
		if rowsOf(t, logs.Target) != 302 {
			t.Errorf("log_lines target rows = %d", rowsOf(t, logs.Target))
		}
		if ev := tableReport(t, r, "public.events"); !ev.Match {
			t.Errorf("untouched events reported as different: %v", ev.Problems)
		}
	})

	t.Run("CopyUnderWritesIsVerifiedAgainstItsSnapshot", func(t *testing.T) {
		src.createDB(t, "busy")
		src.loadSQL(t, "busy", "source.sql")
		dst.createDB(t, "busy_copy")
		writer := connectT(t, src.url("busy"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		started := make(chan struct{})
		writes := make(chan int)
		go func() {
			n := 0
			for ctx.Err() == nil {
				if _, err := writer.Exec(ctx, `INSERT INTO log_lines VALUES ('concurrent', 1, now())`); err == nil {
					n++
				}
				if _, err := writer.Exec(ctx, `UPDATE items SET price = price + 1 WHERE id = $1`, 1+n%400); err == nil && n == 1 {
					close(started)
				}
			}
			writes <- n
		}()
		<-started
		r, err, _ := runChecked(t, Options{From: src.url("busy"), To: dst.url("busy_copy"), Jobs: 2})
		cancel()
		n := <-writes
		if err != nil || !r.OK {
			t.Fatalf("copy under writes: %v %v", err, r.Problems)
		}
		copied := rowsOf(t, tableReport(t, r, "public.log_lines").Target)
		now := src.queryInt(t, "busy", `SELECT count(*) FROM log_lines`)
		if copied >= now || copied < 303 {
			t.Errorf("copied %d log lines, source has %d after %d writes: the writes did not overlap the copy", copied, now, n)
		}
	})

	t.Run("ChecksumIsOrderIndependentAndCountsDuplicates", func(t *testing.T) {
		src.createDB(t, "dup_a")
		dst.createDB(t, "dup_b")
		const schema = `CREATE TABLE t (a text, n integer, at timestamptz)`
		src.exec(t, "dup_a", schema,
			`SET TimeZone = 'America/New_York'`,
			`INSERT INTO t VALUES ('x', 1, '2025-01-01 10:00'), ('x', 1, '2025-01-01 10:00'), ('y', 2, NULL), ('z', 3, 'infinity')`)
		dst.exec(t, "dup_b", schema,
			`SET TimeZone = 'Asia/Kolkata'`,
			`ALTER DATABASE dup_b SET DateStyle = 'SQL, DMY'`,
			`INSERT INTO t VALUES ('z', 3, 'infinity'), ('y', 2, NULL), ('x', 1, '2025-01-01 20:30'), ('x', 1, '2025-01-01 20:30')`)
		o := Options{From: src.url("dup_a"), To: dst.url("dup_b"), VerifyOnly: true}
		if r, err, _ := runChecked(t, o); err != nil {
			t.Fatalf("same rows in another order and another time zone should match: %v %v", err, r.Problems)
		}
		// Replacing a pair of identical rows with another identical pair
		// keeps the count and would keep an XOR of row hashes.
		dst.exec(t, "dup_b", `UPDATE t SET a = 'w' WHERE a = 'x'`)
		r, err, _ := runChecked(t, o)
		if err == nil {
			t.Fatal("a changed duplicate pair was not detected")
		}
		tr := tableReport(t, r, "public.t")
		if !slices.Equal(tr.Problems, []string{"row checksum differs"}) {
			t.Errorf("problems = %v", tr.Problems)
		}
	})

	t.Run("Live", func(t *testing.T) { testLive(t, src, dst) })
	t.Run("LiveThenSeparateCutover", func(t *testing.T) { testLiveTwoSteps(t, src, dst) })

	t.Run("LiveWithinOneCluster", func(t *testing.T) {
		src.createDB(t, "one")
		src.exec(t, "one", `CREATE TABLE kv (k text PRIMARY KEY, v jsonb)`, `INSERT INTO kv SELECT 'k' || g, to_jsonb(g) FROM generate_series(1, 50) g`)
		src.createDB(t, "one_new")
		r, err, _ := runChecked(t, Options{From: src.url("one"), To: src.url("one_new"), Live: true, Yes: true})
		if err != nil || !r.OK || r.Replication == nil || !r.Replication.SubscriptionDropped {
			t.Fatalf("live migration inside one cluster: %v %+v", err, r)
		}
		if n := src.queryInt(t, "one_new", `SELECT count(*) FROM kv`); n != 50 {
			t.Errorf("kv on target: %d rows", n)
		}
	})

	t.Run("LiveNeedsLogicalWAL", func(t *testing.T) {
		dst.createDB(t, "wal_src")
		src.createDB(t, "wal_dst")
		_, err, _ := runChecked(t, Options{From: dst.url("wal_src"), To: src.url("wal_dst"), Live: true})
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("want *Error, got %v", err)
		}
		if !strings.Contains(pe.Msg, "wal_level=replica") || !strings.Contains(pe.Hint, "ALTER SYSTEM SET wal_level = logical") ||
			!strings.Contains(pe.Hint, "restart") {
			t.Errorf("unclear error:\n%s\nhint: %s", pe.Msg, pe.Hint)
		}
	})

	t.Run("BadInput", func(t *testing.T) { testBadInput(t, src, dst) })
	t.Logf("whole test: %s", time.Since(start).Round(time.Millisecond))
}

func connectT(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { closeConn(c) })
	return c
}

func testLive(t *testing.T, src, dst *pgServer) {
	src.createDB(t, "shop")
	src.loadSQL(t, "shop", "source.sql")
	dst.createDB(t, "shop_new")
	app := connectT(t, src.url("shop")) // an application session that cutover must end

	confirmed := false
	o := Options{From: src.url("shop"), To: dst.url("shop_new"), Live: true, Jobs: 2,
		Confirm: func(ctx context.Context, lag int64) (bool, error) {
			confirmed = true
			// Writes made after the initial copy, while replication runs.
			for _, q := range []string{
				`INSERT INTO items (name, price, data, docb, tags, created) VALUES ('after copy', 9.99, '\xdeadbeef', '{"live": true}', ARRAY['x', NULL], now())`,
				`UPDATE items SET note = 'updated live', span = span + interval '1 hour' WHERE id BETWEEN 10 AND 20`,
				`DELETE FROM events WHERE id <= 5`,
				`INSERT INTO log_lines VALUES ('live dup', 1, NULL), ('live dup', 1, NULL)`,
				`DELETE FROM log_lines WHERE ctid = (SELECT ctid FROM log_lines WHERE line = 'line 7' LIMIT 1)`,
				`UPDATE log_lines SET level = 99 WHERE line = 'line 8'`,
				`INSERT INTO readings (at, value) VALUES ('2024-12-31', 1), ('2025-12-31', 2)`,
				`SELECT nextval('invoice_no') FROM generate_series(1, 10)`,
			} {
				if _, err := app.Exec(ctx, q); err != nil {
					return false, fmt.Errorf("write on source: %w", err)
				}
			}
			return true, nil
		}}
	r, err, progress := runChecked(t, o)
	if err != nil {
		t.Fatalf("live migration: %v\nprogress:\n%s", err, progress)
	}
	if !confirmed {
		t.Fatal("cutover happened without asking")
	}
	if !r.OK || r.Status != "verified" || r.Mode != "live" {
		t.Fatalf("report: ok=%v status=%s problems=%v", r.OK, r.Status, r.Problems)
	}
	rep := r.Replication
	if rep == nil || !rep.SubscriptionDropped || !rep.SourceReadOnly || rep.CutoverLSN == "" || rep.TerminatedSessions < 1 {
		t.Fatalf("replication report: %+v", rep)
	}
	if !slices.Equal(rep.ReplicaIdentityFull, []string{"public.log_lines"}) {
		t.Errorf("replica identity full set on %v, want public.log_lines only", rep.ReplicaIdentityFull)
	}
	if !strings.Contains(progress, "lag") {
		t.Errorf("no lag was reported:\n%s", progress)
	}
	// The writes made after the copy arrived (the verification compared
	// every row; spot-check a few anyway).
	if n := dst.queryInt(t, "shop_new", `SELECT count(*) FROM items WHERE name = 'after copy'`); n != 1 {
		t.Errorf("row inserted after the copy: %d on target", n)
	}
	if n := dst.queryInt(t, "shop_new", `SELECT count(*) FROM log_lines WHERE line = 'live dup'`); n != 2 {
		t.Errorf("duplicate rows inserted after the copy: %d on target", n)
	}
	if n := dst.queryInt(t, "shop_new", `SELECT count(*) FROM log_lines WHERE line = 'line 8' AND level = 99`); n != 6 {
		t.Errorf("update of a table without a primary key: %d rows on target", n)
	}
	// Sequences were synced: the target hands out fresh ids.
	if n := dst.queryInt(t, "shop_new", `SELECT nextval('items_id_seq')`); n != 402 {
		t.Errorf("items_id_seq on target gave %d, want 402", n)
	}
	if n := dst.queryInt(t, "shop_new", `SELECT nextval('invoice_no')`); n != 1015 {
		t.Errorf("invoice_no on target gave %d, want 1015", n)
	}
	// Replication is gone from both sides.
	if n := dst.queryInt(t, "shop_new", `SELECT count(*) FROM pg_subscription`); n != 0 {
		t.Errorf("%d subscriptions left on target", n)
	}
	if n := src.queryInt(t, "shop", `SELECT count(*) FROM pg_replication_slots`); n != 0 {
		t.Errorf("%d replication slots left on source", n)
	}
	if n := src.queryInt(t, "shop", `SELECT count(*) FROM pg_publication`); n != 0 {
		t.Errorf("%d publications left on source", n)
	}
	// The old application session was ended and new ones are read-only.
	if _, err := app.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Error("the application's session on the source survived cutover")
	}
	c := connectT(t, src.url("shop"))
	_, err = c.Exec(context.Background(), `INSERT INTO log_lines VALUES ('too late', 0, NULL)`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != codeReadOnlyTransaction {
		t.Errorf("write to the source after cutover: %v, want read-only error", err)
	}
}

func testLiveTwoSteps(t *testing.T, src, dst *pgServer) {
	src.createDB(t, "blog")
	src.exec(t, "blog",
		`CREATE TABLE posts (id serial PRIMARY KEY, title text, body jsonb, tags text[], published timestamptz)`,
		`INSERT INTO posts (title, body, tags, published) SELECT 'post ' || g, jsonb_build_object('words', g), ARRAY['t' || g], now() FROM generate_series(1, 100) g`)
	dst.createDB(t, "blog_new")
	base := Options{From: src.url("blog"), To: dst.url("blog_new")}

	// No --yes and nobody to ask: replication keeps running.
	o := base
	o.Live = true
	r, err, _ := runChecked(t, o)
	if err != nil || r.Status != "replicating" || r.Replication == nil || r.Replication.TablesReady != 1 {
		t.Fatalf("live without cutover: err=%v report=%+v", err, r)
	}
	src.exec(t, "blog", `INSERT INTO posts (title) VALUES ('written between the two commands')`, `DELETE FROM posts WHERE id = 1`)

	// Starting again must refuse: a migration is already running.
	_, err, _ = runChecked(t, o)
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Hint, "--cutover") {
		t.Errorf("second --live: %v", err)
	}

	o = base
	o.Cutover = true
	r, err, _ = runChecked(t, o)
	if err != nil || !r.OK || r.Mode != "cutover" {
		t.Logf("source: %d rows, written: %d, id1: %d", src.queryInt(t, "blog", "SELECT count(*) FROM posts"), src.queryInt(t, "blog", "SELECT count(*) FROM posts WHERE title LIKE 'written%'"), src.queryInt(t, "blog", "SELECT count(*) FROM posts WHERE id = 1"))
		t.Logf("target: %d rows, written: %d, id1: %d", dst.queryInt(t, "blog_new", "SELECT count(*) FROM posts"), dst.queryInt(t, "blog_new", "SELECT count(*) FROM posts WHERE title LIKE 'written%'"), dst.queryInt(t, "blog_new", "SELECT count(*) FROM posts WHERE id = 1"))
		t.Fatalf("cutover: %v %+v", err, r)
	}
	if tr := tableReport(t, r, "public.posts"); rowsOf(t, tr.Target) != 100 {
		t.Errorf("posts on target: %d rows", rowsOf(t, tr.Target))
	}
	if n := dst.queryInt(t, "blog_new", `SELECT nextval('posts_id_seq')`); n != 102 {
		t.Errorf("posts_id_seq on target gave %d, want 102", n)
	}
}

func testBadInput(t *testing.T, src, dst *pgServer) {
	src.exec(t, "app", `CREATE ROLE weak LOGIN PASSWORD 'Weak-Secret-456'`)
	weak := url.UserPassword("weak", "Weak-Secret-456")
	wrong := url.UserPassword("postgres", "Wrong-Pass-789")
	closed := freePort(t)
	dst.createDB(t, "empty_target")
	cases := []struct {
		name    string
		o       Options
		msg     string // in the error message
		hint    string // in the hint
		secrets []string
	}{
		{name: "EmptyURL", o: Options{From: "", To: dst.url("x")}, msg: "empty", hint: "--from"},
		{name: "MalformedURL", o: Options{From: "postgres://postgres:" + testPassword + "@127.0.0.1:notaport/app", To: dst.url("x")},
			msg: "not valid", hint: "postgres://USER:PASSWORD@HOST"},
		{name: "MalformedKeyValue", o: Options{From: src.url("app"), To: "host=127.0.0.1 password='" + testPassword + "' port=x"},
			msg: "target database URL is not valid", hint: "--to"},
		{name: "Unreachable", o: Options{From: fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/app?sslmode=disable", testPassword, closed), To: dst.url("x")},
			msg: "cannot connect to the source", hint: "unreachable"},
		{name: "UnknownHost", o: Options{From: "postgres://postgres:" + testPassword + "@no-such-host.invalid/app?sslmode=disable", To: dst.url("x")},
			msg: "cannot connect to the source", hint: "does not resolve"},
		{name: "WrongPassword", o: Options{From: src.urlAs(wrong, "app"), To: dst.url("x")},
			msg: "password authentication failed", hint: "password", secrets: []string{"Wrong-Pass-789"}},
		{name: "MissingDatabase", o: Options{From: src.url("app"), To: dst.url("does_not_exist"), VerifyOnly: true},
			msg: "does_not_exist", hint: "createdb"},
		{name: "NoReadPermission", o: Options{From: src.urlAs(weak, "app"), To: src.url("app"), VerifyOnly: true},
			msg: "permission denied", hint: "privilege", secrets: []string{"Weak-Secret-456"}},
		{name: "TargetNotEmpty", o: Options{From: src.url("app"), To: src.url("app")},
			msg: "not empty", hint: "--verify-only"},
		{name: "CutoverWithoutLive", o: Options{From: src.url("app"), To: dst.url("empty_target"), Cutover: true},
			msg: "subscription hangar_app does not exist", hint: "--live"},
		{name: "NoPgDump", o: Options{From: src.url("app"), To: dst.url("empty_target"), PgBin: t.TempDir()},
			msg: "pg_dump and pg_restore were not found", hint: "postgresql-client"},
		{name: "LiveWithLargeObjects", o: Options{From: src.url("app"), To: dst.url("empty_target"), Live: true},
			msg: "2 large objects", hint: "without --live"},
		{name: "VerifyOnlyAndLive", o: Options{From: src.url("app"), To: dst.url("empty_target"), VerifyOnly: true, Live: true},
			msg: "cannot be combined", hint: "--verify-only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err, _ := runChecked(t, tc.o, tc.secrets...)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("want *Error, got %T %v", err, err)
			}
			if code := ExitCode(err); code != ExitFailed {
				t.Errorf("exit code %d, want %d", code, ExitFailed)
			}
			if !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", pe.Msg, tc.msg)
			}
			if !strings.Contains(pe.Hint, tc.hint) {
				t.Errorf("hint %q does not contain %q (message %q)", pe.Hint, tc.hint, pe.Msg)
			}
		})
	}

	// A user who may read but not create: the restore fails with advice.
	dst.createDB(t, "weak_target")
	dst.exec(t, "postgres", `CREATE ROLE weak LOGIN PASSWORD 'Weak-Secret-456'`, `GRANT CONNECT ON DATABASE weak_target TO weak`)
	_, err, _ := runChecked(t, Options{From: src.url("app"), To: dst.urlAs(weak, "weak_target")}, "Weak-Secret-456")
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "pg_restore failed") || !strings.Contains(pe.Hint, "privileges") {
		t.Errorf("restore as an unprivileged user: %v (hint %q)", err, func() string {
			if pe != nil {
				return pe.Hint
			}
			return ""
		}())
	}
}
