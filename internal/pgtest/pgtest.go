// Package pgtest starts throwaway PostgreSQL servers for tests: Debian's
// server binaries (initdb, postgres) on a temp data directory and a free
// loopback port, run as the postgres OS user when the test runs as root
// (PostgreSQL refuses root), stopped in t.Cleanup. Tests that need a real
// Postgres (the migration toolkit, the proxy's pg_tls handler, Hangar
// Postgres) share it; without the binaries they skip, naming the package
// to install.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Password is the superuser (postgres) password of every test server.
// Tests may check that it never shows up in any output.
const Password = "Hangar-Sup3r-Secret-PW"

// BinGlob is where Debian and Ubuntu install the server binaries.
const BinGlob = "/usr/lib/postgresql/*/bin"

// Options tune a server. The zero value is a server with wal_level=replica.
type Options struct {
	// WalLevel is the server's wal_level ("" = replica).
	WalLevel string
	// Settings are extra `-c name=value` settings.
	Settings []string
}

// Server is a running test server.
type Server struct {
	Bin  string // the directory of initdb and postgres
	Dir  string // the server's base directory (data/, sock/, server.log)
	Port int    // its port on 127.0.0.1
	log  string
}

// BinDir finds the server binaries or skips the test.
func BinDir(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("HANGAR_PG_BIN"), "/usr/lib/postgresql/15/bin"}
	if dirs, _ := filepath.Glob(BinGlob); len(dirs) > 0 {
		candidates = append(candidates, dirs...)
	}
	for _, d := range candidates {
		if d == "" {
			continue
		}
		_, err1 := os.Stat(filepath.Join(d, "initdb"))
		_, err2 := os.Stat(filepath.Join(d, "postgres"))
		if err1 == nil && err2 == nil {
			return d
		}
	}
	t.Skip("PostgreSQL server binaries (initdb, postgres) not found in " + BinGlob + " or $HANGAR_PG_BIN: apt-get install postgresql to run these tests")
	return ""
}

// AsPostgres makes cmd run as the postgres OS user when the test runs as
// root, and be killed if the test binary dies without its cleanups.
func AsPostgres(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	uid, gid, home := postgresUser(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid},
		Pdeathsig:  syscall.SIGKILL,
	}
	cmd.Env = append(os.Environ(), "HOME="+home)
}

// Chown gives paths to the postgres OS user when the test runs as root.
func Chown(t testing.TB, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	uid, gid, _ := postgresUser(t)
	for _, p := range paths {
		if err := os.Chown(p, int(uid), int(gid)); err != nil {
			t.Fatalf("chown %s to postgres: %v", p, err)
		}
	}
}

func postgresUser(t testing.TB) (uid, gid uint32, home string) {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("running as root and there is no postgres user to run the server as (apt-get install postgresql makes it): %v", err)
	}
	a, _ := strconv.Atoi(u.Uid)
	b, _ := strconv.Atoi(u.Gid)
	return uint32(a), uint32(b), u.HomeDir
}

// Start initdbs and starts a server, and stops it in t.Cleanup (printing
// its log's tail when the test failed).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := BinDir(t)
	base := t.TempDir()
	// t.TempDir's directories are 0700 and ours; the server runs as
	// postgres and must reach its data directory.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Bin: bin, Dir: base, log: filepath.Join(base, "server.log")}
	data := filepath.Join(base, "data")
	sock := filepath.Join(base, "sock")
	pwfile := filepath.Join(base, "pwfile")
	if err := os.Mkdir(sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwfile, []byte(Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	Chown(t, sock, pwfile)
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	AsPostgres(t, initdb)
	Chown(t, base) // initdb creates data itself: it needs a writable parent
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	wal := o.WalLevel
	if wal == "" {
		wal = "replica"
	}
	// A free port can be taken by someone else before the server binds
	// it: try a few.
	for attempt := 1; ; attempt++ {
		err := s.launch(t, data, sock, wal, o.Settings)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("port %d was taken, retrying with another", s.Port)
	}
}

var errPortTaken = errors.New("port taken")

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// launch starts the server on a fresh port and waits until it accepts
// connections.
func (s *Server) launch(t testing.TB, data, sock, walLevel string, settings []string) error {
	t.Helper()
	s.Port = freePort(t)
	logf, err := os.Create(s.log)
	if err != nil {
		return err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(s.Port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "wal_level=" + walLevel,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=60", "-c", "max_wal_senders=10", "-c", "max_replication_slots=10",
		"-c", "shared_buffers=16MB", "-c", "wal_receiver_status_interval=1s",
		// The subscriber's launcher waits this long before starting an
		// apply worker again; the default 5s would dominate tests.
		"-c", "wal_retrieve_retry_interval=200ms",
	}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(filepath.Join(s.Bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	AsPostgres(t, cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done); logf.Close() }()
	port := s.Port
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown: roll back and exit.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			if b, err := os.ReadFile(s.log); err == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("server log (%s, port %d), tail:\n%s", walLevel, port, b)
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(s.log)
			if strings.Contains(string(b), "could not bind") || strings.Contains(string(b), "already in use") {
				return errPortTaken
			}
			return fmt.Errorf("postgres exited during startup:\n%s", b)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			closeConn(conn)
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.log)
			return fmt.Errorf("postgres did not accept connections within 30s: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is a connection URL for db as the superuser, password included.
func (s *Server) URL(db string) string {
	return s.URLAs(url.UserPassword("postgres", Password), db)
}

// URLAs is a connection URL for db as u, without TLS.
func (s *Server) URLAs(u *url.Userinfo, db string) string {
	return (&url.URL{Scheme: "postgres", User: u, Host: s.Addr(), Path: "/" + db, RawQuery: "sslmode=disable"}).String()
}

// Exec runs SQL statements in db as the superuser.
func (s *Server) Exec(t testing.TB, db string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	defer closeConn(conn)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v\nSQL: %s", db, err, q)
		}
	}
}

// QueryInt runs a query returning one integer in db as the superuser.
func (s *Server) QueryInt(t testing.TB, db, q string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	defer closeConn(conn)
	var n int64
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v\nSQL: %s", db, err, q)
	}
	return n
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
