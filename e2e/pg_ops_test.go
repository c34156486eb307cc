package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/pgtest"
)

// pgConfigRow is a row of `hangar pg config show --json`.
type pgConfigRow struct {
	Name           string `json:"name"`
	Value          string `json:"value"`
	PendingRestart bool   `json:"pending_restart"`
	Context        string `json:"context"`
}

func pgConfigShow(t *testing.T, d *harness.Daemon, db string) map[string]pgConfigRow {
	t.Helper()
	var rows []pgConfigRow
	if err := json.Unmarshal([]byte(hangarOK(t, d, "pg", "config", "show", "-a", db, "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	m := map[string]pgConfigRow{}
	for _, r := range rows {
		m[r.Name] = r
	}
	return m
}

// testPgConfigImport: on a one-member cluster, `pg config update` sets a
// parameter applied at a reload and one that needs a restart (the server
// runs with both afterwards, nothing pending), and refuses an unknown
// parameter, a bad value and a parameter Hangar manages, changing
// nothing; `pg ca rotate` gives an attached app the new CA and the
// member a certificate of it (a client trusting only the old CA is then
// refused); `pg import` copies a real PostgreSQL's database into the
// cluster and proves it (verified counts and checksums), drops its
// temporary user, and refuses a database that is not empty.
func testPgConfigImport(t *testing.T, bin string, d *harness.Daemon) {
	const db = "pgops"
	cleanupVolumes(t, d, db)
	hangarOK(t, d, "pg", "create", "--name", db, "--volume-size-mb", "256")

	show := pgConfigShow(t, d, db)
	for _, n := range []string{"max_connections", "shared_buffers", "work_mem", "log_min_duration_statement"} {
		if show[n].Value == "" {
			t.Fatalf("config show has no %s: %+v", n, show)
		}
	}
	if show["max_connections"].Context != "postmaster" {
		t.Fatalf("max_connections %+v", show["max_connections"])
	}

	out := hangarOK(t, d, "pg", "config", "update", "-a", db, "--work-mem", "8MB", "--log-min-duration-statement", "2s")
	if !strings.Contains(out, "no restart needed") {
		t.Fatalf("update of reloadable parameters:\n%s", out)
	}
	if s := pgConfigShow(t, d, db); s["work_mem"].Value != "8MB" || s["log_min_duration_statement"].Value != "2s" {
		t.Fatalf("after the update: %+v %+v", s["work_mem"], s["log_min_duration_statement"])
	}
	want := fmt.Sprint(mustAtoi(t, show["max_connections"].Value) + 20)
	out = hangarOK(t, d, "pg", "config", "update", "-a", db, "--max-connections", want)
	if !strings.Contains(out, "restart") || !strings.Contains(out, "is back") {
		t.Fatalf("update of max_connections:\n%s", out)
	}
	if s := pgConfigShow(t, d, db); s["max_connections"].Value != want || s["max_connections"].PendingRestart {
		t.Fatalf("after the restart: %+v, want %s and nothing pending", s["max_connections"], want)
	}
	for _, c := range []struct {
		args  []string
		about string
	}{
		{[]string{"--work-mem", "8XB"}, "unknown unit"},
		{[]string{"--max-connections", "0"}, "below the minimum"},
		{[]string{"--set", "no_such_parameter=1"}, "has no parameter no_such_parameter"},
		{[]string{"--set", "listen_addresses=*"}, "cannot be changed"},
		{[]string{"--log-statement", "sometimes"}, "one of none, ddl, mod, all"},
	} {
		out, err := d.Hangar(append([]string{"pg", "config", "update", "-a", db}, c.args...)...)
		if err == nil || !strings.Contains(out, c.about) {
			t.Errorf("config update %v: %v, want an error about %q:\n%s", c.args, err, c.about, out)
		}
	}
	if s := pgConfigShow(t, d, db); s["work_mem"].Value != "8MB" || s["max_connections"].Value != want {
		t.Fatalf("a refused update changed something: %+v %+v", s["work_mem"], s["max_connections"])
	}

	// Import from a real PostgreSQL outside Hangar.
	src := pgtest.Start(t, pgtest.Options{})
	src.Exec(t, "postgres", "create database shop")
	src.Exec(t, "shop",
		"create table customers (id bigserial primary key, name text not null, joined timestamptz default now())",
		"create table orders (id bigserial primary key, customer bigint references customers, total numeric(10,2), note jsonb)",
		"insert into customers (name) select 'customer ' || g from generate_series(1, 2000) g",
		"insert into orders (customer, total, note) select 1 + g % 2000, g * 1.25, jsonb_build_object('n', g) from generate_series(1, 5000) g")
	out = hangarOK(t, d, "pg", "import", "--from", src.URL("shop"), "-a", db, "--json")
	var rep struct {
		Status string `json:"status"`
		OK     bool   `json:"ok"`
		Tables []struct {
			Name   string `json:"name"`
			Match  bool   `json:"match"`
			Target *struct {
				Rows int64 `json:"rows"`
			} `json:"target"`
		} `json:"tables"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("import report: %v\n%s", err, out)
	}
	rows := map[string]int64{}
	for _, tb := range rep.Tables {
		if tb.Match && tb.Target != nil {
			rows[tb.Name] = tb.Target.Rows
		}
	}
	if !rep.OK || rep.Status != "verified" || rows["public.customers"] != 2000 || rows["public.orders"] != 5000 {
		t.Fatalf("import: status %q ok %v rows %v\n%s", rep.Status, rep.OK, rows, out)
	}
	if strings.Contains(out, pgtest.Password) {
		t.Fatal("the source's password is in the import's output")
	}
	// In the cluster: the rows, owned by postgres; the import's user gone.
	got := strings.TrimSpace(hangarStdin(t, bin, d, "select count(*) || ' ' || (select tableowner from pg_tables where tablename = 'orders') || ' ' || (select count(*) from pg_roles where rolname = 'hangar_import') from orders;\n",
		"pg", "connect", "-a", db, "-d", "shop"))
	if !strings.Contains(got, "5000 postgres 0") {
		t.Fatalf("in the cluster after the import: %q", got)
	}
	// A second import into the now non-empty database is refused.
	if out, err := d.Hangar("pg", "import", "--from", src.URL("shop"), "-a", db); err == nil || !strings.Contains(out, "empty") {
		t.Fatalf("import into a non-empty database: %v\n%s", err, out)
	}

	// CA rotation: an attached app trusts the new CA too, the member
	// serves a certificate of the new CA only, the data stays.
	hangarOK(t, d, "apps", "create", "pgopsweb")
	hangarOK(t, d, "pg", "attach", db, "-a", "pgopsweb", "--database-name", "shop")
	oldCA := hangarOK(t, d, "pg", "ca", "-a", db)
	out = hangarOK(t, d, "pg", "ca", "rotate", "-a", db)
	if !strings.Contains(out, "App pgopsweb trusts the new CA") || !strings.Contains(out, "Step 2 of 2") {
		t.Fatalf("pg ca rotate:\n%s", out)
	}
	bundle := hangarOK(t, d, "pg", "ca", "-a", db)
	if strings.Count(bundle, "BEGIN CERTIFICATE") != 2 || !strings.HasSuffix(strings.TrimSpace(bundle), strings.TrimSpace(oldCA)) {
		t.Fatalf("after the rotation pg ca prints:\n%s", bundle)
	}
	newCA := bundle[:strings.Index(bundle, "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----")] + "\n"
	digest := func(app, name string) string {
		var ls struct {
			Secrets []struct{ Name, Digest string }
		}
		if err := json.Unmarshal([]byte(hangarOK(t, d, "secrets", "list", "-a", app, "--json")), &ls.Secrets); err != nil {
			t.Fatal(err)
		}
		for _, s := range ls.Secrets {
			if s.Name == name {
				return s.Digest
			}
		}
		return ""
	}
	if a, b := digest("pgopsweb", "DATABASE_CA_CERT"), digest(db, "PG_CA_CERT"); a == "" || a != b {
		t.Fatalf("the attached app's CA secret (%s) is not the cluster's bundle (%s)", a, b)
	}
	var ips []struct{ Address, Type string }
	if err := d.Get("/v1/apps/"+db+"/ips", &ips); err != nil || len(ips) == 0 {
		t.Fatalf("ips %v %v", ips, err)
	}
	dir := t.TempDir()
	verify := func(ca string) error {
		f := filepath.Join(dir, fmt.Sprintf("ca-%d.crt", len(ca)))
		if err := os.WriteFile(f, []byte(ca), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://hangar@%s.flycast:5432/shop?sslmode=verify-full&sslrootcert=%s&connect_timeout=5", db, f))
		if err != nil {
			t.Fatal(err)
		}
		cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{ips[0].Address}, nil }
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	// TLS comes before authentication: a certificate the client refuses
	// fails the handshake; one it accepts gets to the password.
	harness.Poll(t, "the member serves a certificate of the new CA", 60*time.Second, func() (bool, string) {
		err := verify(newCA)
		return err != nil && strings.Contains(err.Error(), "password"), fmt.Sprint(err)
	})
	if err := verify(oldCA); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client trusting only the old CA: %v, want a certificate error", err)
	}
	got = strings.TrimSpace(hangarStdin(t, bin, d, "select count(*) from orders;\n", "pg", "connect", "-a", db, "-d", "shop"))
	if !strings.Contains(got, "5000") {
		t.Fatalf("after the rotation: %q", got)
	}
	// The backup repository was rotated too: it and the members still
	// trust each other (a backup takes TLS both ways).
	if !strings.Contains(out, "the backup repository") {
		t.Fatalf("pg ca rotate left the backup repository out:\n%s", out)
	}
	hangarOK(t, d, "pg", "backup", "create", "-a", db, "--type", "incr")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
