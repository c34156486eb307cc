package pgmigrate

import (
	"bytes"
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

// testPassword is the superuser password of the test servers. Tests check
// that it never shows up in any output.
const testPassword = "Hangar-Sup3r-Secret-PW"

// pgServer is a throwaway PostgreSQL server started by a test.
type pgServer struct {
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	log  string
}

// pgBinDir finds the server binaries or skips the test.
func pgBinDir(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("HANGAR_PG_BIN"), "/usr/lib/postgresql/15/bin"}
	if dirs, _ := filepath.Glob(debianPgBinGlob); len(dirs) > 0 {
		candidates = append(candidates, dirs...)
	}
	for _, d := range candidates {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d
			}
		}
	}
	t.Skip("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or $HANGAR_PG_BIN: apt-get install postgresql to run these tests")
	return ""
}

// asPostgres makes cmd run as the postgres OS user when we are root:
// PostgreSQL refuses to run as root.
func asPostgres(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("running as root and there is no postgres user to run the server as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		// If the test binary dies without running its cleanups (a
		// timeout panic), do not leave the server behind.
		Pdeathsig: syscall.SIGKILL,
	}
	cmd.Env = append(os.Environ(), "HOME="+u.HomeDir)
}

func chownPostgres(t *testing.T, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatalf("chown %s: %v", p, err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPG initdbs and starts a server with the given wal_level, and stops
// it in t.Cleanup.
func startPG(t *testing.T, walLevel string) *pgServer {
	t.Helper()
	bin := pgBinDir(t)
	base := t.TempDir()
	// t.TempDir's directories are 0700 and owned by us; the server runs as
	// postgres and must reach its data directory.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &pgServer{bin: bin, dir: base, log: filepath.Join(base, "server.log")}
	data := filepath.Join(base, "data")
	sock := filepath.Join(base, "sock")
	pwfile := filepath.Join(base, "pwfile")
	if err := os.Mkdir(sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwfile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chownPostgres(t, sock, pwfile)

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	asPostgres(t, initdb)
	// initdb creates data itself; it needs a writable parent.
	chownPostgres(t, base)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}

	// A free port can be taken by someone else before the server binds it:
	// try a few.
	for attempt := 1; ; attempt++ {
		err := s.launch(t, data, sock, walLevel)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("port %d was taken, retrying with another", s.port)
	}
}

var errPortTaken = errors.New("port taken")

// launch starts the server on a fresh port and waits until it accepts
// connections. The server is stopped in t.Cleanup.
func (s *pgServer) launch(t *testing.T, data, sock, walLevel string) error {
	t.Helper()
	s.port = freePort(t)
	logf, err := os.Create(s.log)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "wal_level="+walLevel,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=60", "-c", "max_wal_senders=10", "-c", "max_replication_slots=10",
		"-c", "shared_buffers=16MB", "-c", "wal_receiver_status_interval=1s",
		// The subscriber's launcher waits this long before starting an apply
		// worker again; the default 5s would dominate the test.
		"-c", "wal_retrieve_retry_interval=200ms",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	asPostgres(t, cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd = cmd
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done); logf.Close() }()
	port := s.port
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
		conn, err := pgx.Connect(ctx, s.url("postgres"))
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

// url is a connection URL for db as the superuser, password included.
func (s *pgServer) url(db string) string {
	return s.urlAs(url.UserPassword("postgres", testPassword), db)
}

func (s *pgServer) urlAs(u *url.Userinfo, db string) string {
	return (&url.URL{Scheme: "postgres", User: u, Host: fmt.Sprintf("127.0.0.1:%d", s.port), Path: "/" + db, RawQuery: "sslmode=disable"}).String()
}

// exec runs SQL statements in db as the superuser.
func (s *pgServer) exec(t *testing.T, db string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url(db))
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

// queryInt runs a query returning one integer.
func (s *pgServer) queryInt(t *testing.T, db, q string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url(db))
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

func (s *pgServer) createDB(t *testing.T, name string) {
	t.Helper()
	s.exec(t, "postgres", "CREATE DATABASE "+quoteIdent(name))
}

// loadSQL runs a file from testdata in db.
func (s *pgServer) loadSQL(t *testing.T, db, file string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	s.exec(t, db, string(b))
}

// syncBuffer is a bytes.Buffer safe to share between goroutines.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// containsSecret reports whether s leaks testPassword in any common form.
func containsSecret(s string, secrets ...string) bool {
	for _, sec := range append(secrets, testPassword, url.QueryEscape(testPassword)) {
		if strings.Contains(s, sec) {
			return true
		}
	}
	return false
}
