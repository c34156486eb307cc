package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	if err := json.Unmarshal([]byte(lastLine(hangarOK(t, d, "pg", "image", "build", "--json"))), &built); err != nil {
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
}

// lastLine is the last non-empty line of the CLI's output (its stdout's
// JSON; progress went to stderr before it).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
