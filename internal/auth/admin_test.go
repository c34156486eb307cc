package auth

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnsureAdminToken: the first start writes an admin token the state
// verifies (mode 0600); the next keeps it; a file the state does not know
// is replaced by a new token.
func TestEnsureAdminToken(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "admin-token")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if err := EnsureAdminToken(ctx, st, path, "acme", log); err != nil {
		t.Fatal(err)
	}
	first := read()
	if tok, err := Verify(ctx, st, first); err != nil || tok.Scope != ScopeOrg || tok.Org != "acme" {
		t.Fatalf("the admin token: %+v, %v", tok, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := EnsureAdminToken(ctx, st, path, "acme", log); err != nil || read() != first {
		t.Fatalf("second start changed the token: %v", err)
	}
	if err := os.WriteFile(path, []byte("hgr_unknown\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := EnsureAdminToken(ctx, st, path, "acme", log); err != nil {
		t.Fatal(err)
	}
	if now := read(); now == "hgr_unknown" || now == first {
		t.Fatalf("an unknown token file was kept: %q", now)
	} else if _, err := Verify(ctx, st, now); err != nil {
		t.Fatalf("the new admin token: %v", err)
	}
}
