package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Key files in the data dir. KeyFile is the key in use; NextKeyFile exists
// only while a rotation is under way (or was interrupted), and both are
// loaded so every ciphertext stays readable whatever point a crash hit.
const (
	KeyFile     = "secrets.key"
	NextKeyFile = "secrets.key.next"
)

// key is one AES-256 key with a short id stored beside each ciphertext.
type key struct {
	id   string // first 8 bytes of SHA-256(key), hex
	aead cipher.AEAD
	mac  []byte // HMAC key for digests, derived from the key
}

func newKey(raw []byte) (*key, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("secrets key: %d bytes, want 32", len(raw))
	}
	blk, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("hangar secrets digest v1"))
	return &key{id: hex.EncodeToString(sum[:8]), aead: aead, mac: m.Sum(nil)}, nil
}

// loadKeyFile reads a hex key file; it must be 0600 (or stricter).
func loadKeyFile(path string) (*key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets key %s has mode %v: it must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: not hex: %w", path, err)
	}
	k, err := newKey(raw)
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	return k, nil
}

// generateKeyFile writes a fresh random key to path (0600, atomically).
func generateKeyFile(path string) (*key, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write secrets key %s: %w", path, err)
	}
	return newKey(raw)
}

// keyring is the key used for new ciphertexts plus every key that can
// still decrypt stored ones.
type keyring struct {
	current *key
	byID    map[string]*key
}

// loadKeyring loads (or on first use creates) the data dir's keys.
func loadKeyring(dataDir string) (*keyring, error) {
	kr := &keyring{byID: map[string]*key{}}
	cur, err := loadKeyFile(filepath.Join(dataDir, KeyFile))
	if errors.Is(err, os.ErrNotExist) {
		cur, err = generateKeyFile(filepath.Join(dataDir, KeyFile))
	}
	if err != nil {
		return nil, err
	}
	kr.current = cur
	kr.byID[cur.id] = cur
	if next, err := loadKeyFile(filepath.Join(dataDir, NextKeyFile)); err == nil {
		kr.byID[next.id] = next
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return kr, nil
}

// sealed is one encrypted value as stored: key id, nonce and ciphertext.
type sealed struct {
	KeyID string `json:"key_id"`
	Data  string `json:"data"` // base64(nonce || ciphertext)
}

func (k *key) seal(plain []byte, aad string) (sealed, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return sealed{}, err
	}
	out := k.aead.Seal(nonce, nonce, plain, []byte(aad))
	return sealed{KeyID: k.id, Data: base64.StdEncoding.EncodeToString(out)}, nil
}

func (kr *keyring) open(s sealed, aad string) ([]byte, error) {
	k := kr.byID[s.KeyID]
	if k == nil {
		return nil, fmt.Errorf("encrypted with key %s, which is not in the data dir (was %s replaced?): %w", s.KeyID, KeyFile, ErrKey)
	}
	b, err := base64.StdEncoding.DecodeString(s.Data)
	if err != nil || len(b) < k.aead.NonceSize() {
		return nil, fmt.Errorf("corrupt ciphertext: %w", ErrKey)
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, b[:n], b[n:], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("decrypt with key %s: %w", s.KeyID, ErrKey)
	}
	return plain, nil
}

// digest is a keyed hash of a value: equal values have equal digests, but
// a digest cannot be checked against guesses without the key.
func (k *key) digest(value []byte) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil))[:16]
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
