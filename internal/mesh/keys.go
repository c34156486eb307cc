package mesh

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/curve25519"

	"github.com/hangar-dev/hangar/internal/fsutil"
)

// Key is a WireGuard Curve25519 key, private or public.
type Key [32]byte

// GenerateKey makes a private key (clamped as WireGuard does).
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("mesh: make a private key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Public is the public key of a private key.
func (k Key) Public() Key {
	var p Key
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil { // only for a low-order point, which a private key is not
		return Key{}
	}
	copy(p[:], pub)
	return p
}

// IsZero reports whether k is unset.
func (k Key) IsZero() bool { return k == Key{} }

// String is the key in base64, as `wg` shows keys.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// hex is the key as WireGuard's configuration protocol (UAPI) wants it.
func (k Key) hex() string { return hex.EncodeToString(k[:]) }

// MarshalText writes the base64 form (for JSON records of hosts).
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads the base64 form.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// ParseKey reads a base64 key.
func ParseKey(s string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return Key{}, fmt.Errorf("mesh: %q is not a WireGuard key: want 32 bytes in base64 (44 characters)", truncate(s, 60))
	}
	var k Key
	copy(k[:], b)
	return k, nil
}

// LoadOrCreateKey reads the host's private key from path, making it (mode
// 0600) the first time. The private key never leaves the host: only its
// public half is published.
func LoadOrCreateKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, perr := ParseKey(string(b))
		if perr != nil {
			return Key{}, fmt.Errorf("mesh: private key %s is damaged (%w); remove it to make a new one, then the host's peers learn the new public key", path, perr)
		}
		return k, nil
	case !errors.Is(err, os.ErrNotExist):
		return Key{}, fmt.Errorf("mesh: read private key: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return Key{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, fmt.Errorf("mesh: key directory: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, []byte(k.String()+"\n"), 0o600); err != nil {
		return Key{}, fmt.Errorf("mesh: write private key: %w", err)
	}
	return k, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
