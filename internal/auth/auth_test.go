package auth

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestCreateVerifyRevoke(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	plain, tok, err := Create(ctx, st, Token{Name: "ci", Scope: ScopeApp, App: "web", Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain, "hgr_") || len(tok.ID) != 12 || tok.Hash == "" || strings.Contains(tok.Hash, plain) {
		t.Fatalf("created %q %+v", plain, tok)
	}
	// Only the hash is stored.
	kvs, _ := st.List(ctx, "tokens/")
	if len(kvs) != 1 || strings.Contains(string(kvs[0].Value), plain) {
		t.Fatalf("stored: %s", kvs[0].Value)
	}
	got, err := Verify(ctx, st, plain)
	if err != nil || got.ID != tok.ID || !got.CanAccessApp("web") || got.CanAccessApp("other") {
		t.Fatalf("verify: %+v %v", got, err)
	}
	for _, bad := range []string{"", "hgr_", plain + "x", plain[:len(plain)-1], "Bearer " + plain, strings.Repeat("hgr_", 100)} {
		if _, err := Verify(ctx, st, bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Verify(%q) = %v, want ErrUnauthorized", bad, err)
		}
	}
	if _, err := Revoke(ctx, st, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, st, plain); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked token: %v", err)
	}
	for _, id := range []string{"", "zzzzzzzzzzzz", tok.ID[:11], "0123456789ab"} {
		if _, err := Revoke(ctx, st, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Revoke(%q) = %v, want ErrNotFound", id, err)
		}
	}

	past := time.Now().Add(-time.Second)
	plain2, _, err := Create(ctx, st, Token{Name: "old", Scope: ScopeOrg, ExpiresAt: &past})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, st, plain2); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	ts, err := List(ctx, st)
	if err != nil || len(ts) != 2 || ts[0].Name != "ci" || !ts[0].Revoked {
		t.Fatalf("list: %+v %v", ts, err)
	}
}

func TestValidate(t *testing.T) {
	future := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		tok Token
		ok  bool
	}{
		{Token{Scope: ScopeOrg}, true},
		{Token{Scope: ScopeApp, App: "a", ExpiresAt: &future}, true},
		{Token{Scope: ScopeApp}, false},
		{Token{Scope: ScopeOrg, App: "a"}, false},
		{Token{Scope: "root"}, false},
		{Token{Scope: ScopeOrg, ExpiresAt: &past}, false},
		{Token{Scope: ScopeOrg, Name: strings.Repeat("n", 101)}, false},
		{Token{Scope: ScopeOrg, Name: "ci deploy – café"}, true},
		{Token{Scope: ScopeOrg, Name: "\x00\x00\x00"}, false},
		{Token{Scope: ScopeOrg, Name: "a\nb"}, false},
		{Token{Scope: ScopeOrg, Name: "\xff"}, false},
	} {
		if err := c.tok.Validate(); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("Validate(%+v) = %v", c.tok, err)
		}
	}
}

// FuzzVerify feeds arbitrary bearer tokens: never a panic, never a match.
func FuzzVerify(f *testing.F) {
	st := openStore(f)
	plain, _, err := Create(context.Background(), st, Token{Scope: ScopeOrg})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("hgr_abc")
	f.Add(plain[:len(plain)-2])
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Verify(context.Background(), st, s)
		if err == nil && strings.TrimSpace(s) != plain {
			t.Fatalf("%q verified as %+v", s, tok)
		}
	})
}
