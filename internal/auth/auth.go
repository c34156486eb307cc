// Package auth owns API tokens: creation, storage (only a hash is kept)
// and verification. A token is "hgr_" followed by 32 random bytes in
// base64url; the store holds the SHA-256 of it under tokens/<hash>.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// ErrUnauthorized is returned for a missing, unknown, revoked or expired token.
var ErrUnauthorized = types.NewError(types.ErrUnauthorized, "unauthorized")

// Token is a stored token (never its plain text).
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Hash      string     `json:"hash"`
	Scope     string     `json:"scope"` // "org" or "app"
	Org       string     `json:"org"`
	App       string     `json:"app,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked,omitempty"`
}

func hashOf(plain string) string {
	h := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(h[:])
}

// Create makes a new token and returns its plain text (shown once) and record.
func Create(ctx context.Context, s store.Store, t Token) (string, *Token, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	plain := "hgr_" + base64.RawURLEncoding.EncodeToString(b[:])
	t.Hash = hashOf(plain)
	t.ID = t.Hash[:12]
	t.CreatedAt = time.Now().UTC()
	if t.Scope == "" {
		t.Scope = "org"
	}
	if _, err := store.PutJSON(ctx, s, "tokens/"+t.Hash, &t, 0); err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	return plain, &t, nil
}

// Verify returns the token for a plain-text bearer token.
func Verify(ctx context.Context, s store.Store, plain string) (*Token, error) {
	plain = strings.TrimSpace(plain)
	if !strings.HasPrefix(plain, "hgr_") || len(plain) > 200 {
		return nil, fmt.Errorf("token is not a Hangar token (they start with hgr_): %w", ErrUnauthorized)
	}
	h := hashOf(plain)
	var t Token
	if _, err := store.GetJSON(ctx, s, "tokens/"+h, &t); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("unknown token: %w", ErrUnauthorized)
		}
		return nil, fmt.Errorf("verify token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) != 1 {
		return nil, fmt.Errorf("unknown token: %w", ErrUnauthorized)
	}
	if t.Revoked {
		return nil, fmt.Errorf("token %s was revoked: %w", t.ID, ErrUnauthorized)
	}
	if t.ExpiresAt != nil && time.Now().After(*t.ExpiresAt) {
		return nil, fmt.Errorf("token %s expired at %s: %w", t.ID, t.ExpiresAt.Format(time.RFC3339), ErrUnauthorized)
	}
	return &t, nil
}

// CanAccessApp reports whether the token may act on app: an org token on
// every app of its org, an app token on its app only.
func (t *Token) CanAccessApp(app string) bool {
	return t.Scope == ScopeOrg || (t.Scope == ScopeApp && t.App == app)
}

// Token scopes.
const (
	ScopeOrg = "org"
	ScopeApp = "app"
)

// ErrNotFound is returned for an unknown token id.
var ErrNotFound = types.NewError(types.ErrNotFound, "token not found")

// ErrInvalid is returned for a token that cannot be created as asked.
var ErrInvalid = types.NewError(types.ErrInvalid, "invalid token request")

// Validate checks a token request before Create.
func (t *Token) Validate() error {
	switch t.Scope {
	case ScopeOrg:
		if t.App != "" {
			return fmt.Errorf("an org token names no app: %w", ErrInvalid)
		}
	case ScopeApp:
		if t.App == "" {
			return fmt.Errorf("an app token needs an app: %w", ErrInvalid)
		}
	default:
		return fmt.Errorf("scope %q: use %q or %q: %w", t.Scope, ScopeOrg, ScopeApp, ErrInvalid)
	}
	if len(t.Name) > 100 {
		return fmt.Errorf("name: at most 100 characters: %w", ErrInvalid)
	}
	if !utf8.ValidString(t.Name) || strings.IndexFunc(t.Name, unicode.IsControl) >= 0 {
		return fmt.Errorf("name %q: printable text only, no control characters or NUL bytes: %w", t.Name, ErrInvalid)
	}
	if t.ExpiresAt != nil && !t.ExpiresAt.After(time.Now()) {
		return fmt.Errorf("expiry must be in the future: %w", ErrInvalid)
	}
	return nil
}

// List returns every token (revoked and expired ones too), oldest first.
func List(ctx context.Context, s store.Store) ([]Token, error) {
	kvs, err := s.List(ctx, "tokens/")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]Token, 0, len(kvs))
	for _, kv := range kvs {
		var t Token
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return nil, fmt.Errorf("token record %s: %w", kv.Key, err)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Revoke marks the token with this id revoked; it fails verification from
// then on.
func Revoke(ctx context.Context, s store.Store, id string) (*Token, error) {
	if len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("token id %q: ids are 12 hex characters (see `hangar tokens list`): %w", id, ErrNotFound)
	}
	kvs, err := s.List(ctx, "tokens/"+id)
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if len(kvs) != 1 {
		return nil, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	out, _, err := store.UpdateJSON(ctx, s, kvs[0].Key, func(cur *Token) (*Token, error) {
		if cur == nil {
			return nil, fmt.Errorf("token %s: %w", id, ErrNotFound)
		}
		cur.Revoked = true
		return cur, nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return out, nil
}

// EnsureAdminToken makes sure the org's admin token is in path (0600), for
// the CLI on this host: it keeps the token there if the state knows it,
// else creates a new admin token (only its hash goes into the state) and
// writes it there atomically.
func EnsureAdminToken(ctx context.Context, st store.Store, path, org string, log *slog.Logger) error {
	if b, err := os.ReadFile(path); err == nil {
		if _, err := Verify(ctx, st, strings.TrimSpace(string(b))); err == nil {
			return nil
		}
		log.Warn("admin token file does not match the state; creating a new admin token", "path", path)
	}
	plain, _, err := Create(ctx, st, Token{Name: "admin", Scope: "org", Org: org})
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, []byte(plain+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	log.Info("created the admin API token; the CLI on this host reads it from the file", "path", path)
	return nil
}
