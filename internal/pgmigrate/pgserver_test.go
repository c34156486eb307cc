package pgmigrate

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/pgtest"
)

// testPassword is the superuser password of the test servers. Tests check
// that it never shows up in any output.
const testPassword = pgtest.Password

// pgServer is a throwaway PostgreSQL server started by a test (pgtest).
type pgServer struct{ *pgtest.Server }

// startPG starts a server with the given wal_level, stopped in t.Cleanup.
func startPG(t *testing.T, walLevel string) *pgServer {
	t.Helper()
	return &pgServer{pgtest.Start(t, pgtest.Options{WalLevel: walLevel})}
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

func (s *pgServer) url(db string) string                    { return s.URL(db) }
func (s *pgServer) urlAs(u *url.Userinfo, db string) string { return s.URLAs(u, db) }
func (s *pgServer) exec(t *testing.T, db string, stmts ...string) {
	t.Helper()
	s.Exec(t, db, stmts...)
}
func (s *pgServer) queryInt(t *testing.T, db, q string, args ...any) int64 {
	t.Helper()
	return s.QueryInt(t, db, q, args...)
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
