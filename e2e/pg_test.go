package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-dev/hangar/internal/harness"
)

const pgConfig = `app = "pgdb"
primary_region = "tst"

[[mounts]]
  source = "pg_data"
  destination = "/data"

[[services]]
  internal_port = 5432
  protocol = "tcp"
  auto_stop_machines = "off"
  [[services.ports]]
    port = %d
    handlers = ["pg_tls"]
  [[services.tcp_checks]]
    interval = "2s"
    timeout = "2s"
`

// TestHangarPostgresImage builds the Hangar Postgres image from Debian's
// packages with `hangar pg image build` (mmdebstrap; minutes the first
// time), runs it on a volume, and reaches it from outside through the
// proxy's pg_tls handler: TLS on the public side (a client without TLS is
// refused), the data survives a machine restart, and a second build is
// skipped because the daemon has the image.
func TestHangarPostgresImage(t *testing.T) {
	harness.RequireRoot(t)
	if os.Getenv("HANGAR_PG_IMAGE_TEST") == "" {
		t.Skip("builds a Debian image from the network (a few minutes): set HANGAR_PG_IMAGE_TEST=1 (CI's second step does)")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("mmdebstrap not installed: apt-get install -y mmdebstrap")
	}
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	cleanupVolumes(t, d, "pgdb")

	var built struct {
		Ref   string `json:"ref"`
		Built bool   `json:"built"`
	}
	if err := json.Unmarshal([]byte(lastLine(hangarOK(t, d, "pg", "image", "build", "--json", "--save", pgImageArchive))), &built); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(built.Ref, "hangar/postgres:15-") || !built.Built {
		t.Fatalf("build result %+v", built)
	}
	var again struct{ Built bool }
	if err := json.Unmarshal([]byte(lastLine(hangarOK(t, d, "pg", "image", "build", "--json"))), &again); err != nil || again.Built {
		t.Fatalf("second build: %+v %v; want it skipped (the daemon has the image)", again, err)
	}

	port := freePorts(t, 1)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fly.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(pgConfig, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	const password = "Pg-Operator-Secret-1"
	hangarOK(t, d, "apps", "create", "pgdb")
	hangarOK(t, d, "volumes", "create", "pg_data", "--size-mb", "256", "-a", "pgdb")
	hangarOK(t, d, "secrets", "set", "OPERATOR_PASSWORD="+password, "-a", "pgdb", "--stage")
	hangarOK(t, d, "deploy", "-c", cfg, "--image", built.Ref)
	m := startedMachine(t, d, "pgdb")

	u := func(mode string) string {
		return (&url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password), Host: "127.0.0.1:" + strconv.Itoa(port),
			Path: "/postgres", RawQuery: "sslmode=" + mode}).String()
	}
	connect := func(what string) *pgx.Conn {
		t.Helper()
		var conn *pgx.Conn
		harness.Poll(t, what, 90*time.Second, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, u("require"))
			if err != nil {
				return false, err.Error()
			}
			conn = c
			return true, ""
		})
		return conn
	}
	ctx := context.Background()
	conn := connect("postgres through pg_tls")
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("the client's connection is %T, want TLS", conn.PgConn().Conn())
	}
	var v string
	if err := conn.QueryRow(ctx, "select current_setting('server_version_num')").Scan(&v); err != nil || !strings.HasPrefix(v, "15") {
		t.Fatalf("server version %q %v", v, err)
	}
	if _, err := conn.Exec(ctx, "create table kept (id int primary key, note text); insert into kept values (1, 'on the volume')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	if _, err := pgx.Connect(ctx, u("disable")); err == nil || !strings.Contains(err.Error(), "accepts only TLS") {
		t.Fatalf("a client without TLS: %v, want refused", err)
	}

	hangarOK(t, d, "machine", "restart", m.ID, "-a", "pgdb")
	conn = connect("postgres after a restart")
	defer conn.Close(ctx)
	var note string
	if err := conn.QueryRow(ctx, "select note from kept where id = 1").Scan(&note); err != nil || note != "on the volume" {
		t.Fatalf("after restart: %q %v", note, err)
	}
	logs, _ := d.Hangar("logs", "-a", "pgdb")
	if strings.Contains(logs, password) {
		t.Fatal("the operator password is in the machine's logs")
	}

	t.Run("create attach connect detach", func(t *testing.T) { testPgVerbs(t, bin, d) })
	t.Run("patroni cluster failover", func(t *testing.T) { testPgCluster(t, d) })
	t.Run("config import", func(t *testing.T) { testPgConfigImport(t, bin, d) })
	t.Run("backup restore", func(t *testing.T) { testPgBackup(t, d) })
}

// testPgVerbs: `hangar pg create` makes a database app (the image is
// there already) and prints its password once; `pg attach` gives an app
// its own database, user and DATABASE_URL secret; `pg connect` opens psql;
// `pg detach` removes the user and the secret and keeps the data; bad
// input leaves nothing half-made.
func testPgVerbs(t *testing.T, bin string, d *harness.Daemon) {
	cleanupVolumes(t, d, "pgc")
	out := hangarOK(t, d, "pg", "create", "--name", "pgc", "--volume-size-mb", "256", "--no-backup")
	m := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "pgc.flycast") {
		t.Fatalf("pg create output:\n%s", out)
	}
	operator := m[1]
	ms := d.Machines("pgc")
	if len(ms) != 1 || ms[0].PrivateIP == "" {
		t.Fatalf("pgc machines: %+v", ms)
	}
	ip := ms[0].PrivateIP
	ctx := context.Background()
	direct := func(user, pw, db string) (*pgx.Conn, error) {
		// A Patroni member takes only TLS connections from the network.
		u := (&url.URL{Scheme: "postgres", User: url.UserPassword(user, pw), Host: net.JoinHostPort(ip, "5432"), Path: "/" + db, RawQuery: "sslmode=require"}).String()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return pgx.Connect(cctx, u)
	}
	c, err := direct("postgres", operator, "postgres")
	if err != nil {
		t.Fatalf("the operator password from pg create: %v", err)
	}
	c.Close(ctx)
	if out, err := d.Hangar("pg", "create", "--name", "pgc"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("a taken name: %v\n%s", err, out)
	}
	if out, err := d.Hangar("pg", "create", "--name", "pgsmall", "--volume-size-mb", "10"); err == nil || !strings.Contains(out, "too small") {
		t.Fatalf("a volume too small: %v\n%s", err, out)
	}
	if code, _ := d.Call("GET", "/v1/apps/pgsmall", nil); code != 404 {
		t.Fatalf("refused create left app pgsmall (GET %d)", code)
	}

	hangarOK(t, d, "apps", "create", "shop-web")
	out = hangarOK(t, d, "pg", "attach", "pgc", "-a", "shop-web")
	um := regexp.MustCompile(`postgres://\S+`).FindString(out)
	dsn, err := url.Parse(um)
	if err != nil || dsn.Host != "pgc.flycast:5432" || dsn.Path != "/shop_web" || dsn.User.Username() != "shop_web" || dsn.Query().Get("sslmode") != "verify-full" {
		t.Fatalf("attach printed %q (%v):\n%s", um, err, out)
	}
	if st := secretStatuses(t, d, "shop-web"); st["DATABASE_URL"] == "" {
		t.Fatalf("DATABASE_URL not set on shop-web: %v", st)
	}
	pw, _ := dsn.User.Password()
	c, err = direct("shop_web", pw, "shop_web")
	if err != nil {
		t.Fatalf("the attached user: %v", err)
	}
	if _, err := c.Exec(ctx, "create table orders (id int); insert into orders values (7)"); err != nil {
		t.Fatalf("the attached user owns its database: %v", err)
	}
	c.Close(ctx)
	if out, err := d.Hangar("pg", "attach", "pgc", "-a", "shop-web"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("attaching twice: %v\n%s", err, out)
	}

	psql := hangarStdin(t, bin, d, "select 40 + 2;\n", "pg", "connect", "-a", "pgc", "-d", "shop_web")
	if !strings.Contains(psql, "42") {
		t.Fatalf("pg connect: %s", psql)
	}

	hangarOK(t, d, "pg", "detach", "pgc", "-a", "shop-web")
	if _, err := direct("shop_web", pw, "shop_web"); err == nil {
		t.Fatal("the detached user still logs in")
	}
	if st := secretStatuses(t, d, "shop-web"); st["DATABASE_URL"] != "" {
		t.Fatalf("DATABASE_URL left on shop-web: %v", st)
	}
	c, err = direct("postgres", operator, "shop_web")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "select id from orders").Scan(&n); err != nil || n != 7 {
		t.Fatalf("the data after detach: %d %v", n, err)
	}
}

// lastLine is the last non-empty line of the CLI's output (its stdout's
// JSON; progress went to stderr before it).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
