package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/fsutil"
)

// Files under <data-dir>/certs:
//
//	account.key                       ACME account key (0600)
//	default/cert.pem, key.pem         self-signed default for *.<domain>
//	hosts/<hostname>/cert.pem         leaf + chain
//	hosts/<hostname>/key.pem          its key (0600)
//	hosts/<hostname>/meta.json        app, source, status, last error
const (
	accountKeyFile = "account.key"
	defaultDir     = "default"
	hostsDir       = "hosts"
	certFile       = "cert.pem"
	keyFile        = "key.pem"
	metaFile       = "meta.json"
)

// meta is what is kept about a hostname besides its certificate.
type meta struct {
	Version   int       `json:"version"` // 1
	Hostname  string    `json:"hostname"`
	App       string    `json:"app"`
	Source    string    `json:"source"` // SourceACME or SourceSelfSigned
	Status    string    `json:"status"` // Status*
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func decodeKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		if ek, err2 := x509.ParseECPrivateKey(blk.Bytes); err2 == nil {
			return ek, nil
		}
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", k)
	}
	return s, nil
}

func encodeChain(der [][]byte) []byte {
	var b []byte
	for _, d := range der {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return b
}

// saveCert writes the key, then the chain. A crash between the two leaves
// a key that does not match cert.pem: loading fails and the host is issued
// again, rather than a certificate being served without its key.
func saveCert(dir string, key crypto.Signer, chain [][]byte) error {
	kb, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, keyFile), kb, 0o600); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, certFile), encodeChain(chain), 0o644)
}

// loadPair reads a directory's key and chain.
func loadPair(dir string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, metaFile), err)
	}
	return m, nil
}

func writeMeta(dir string, m meta) error {
	m.Version = 1
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, metaFile), append(b, '\n'), 0o644)
}

// loadOrCreateKey reads an ECDSA key, creating it on first use.
func loadOrCreateKey(path string, gen func() (crypto.Signer, error)) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := decodeKey(b)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	k, err := gen()
	if err != nil {
		return nil, err
	}
	kb, err := encodeKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(path, kb, 0o600); err != nil {
		return nil, fmt.Errorf("write key %s: %w", path, err)
	}
	return k, nil
}

// normalizeHost lowercases a hostname and checks it is a DNS name Hangar
// can get a certificate for.
func normalizeHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if h == "" || len(h) > 253 {
		return "", fmt.Errorf("hostname %q: want a DNS name like www.example.com: %w", h, ErrInvalid)
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("hostname %q: want a fully qualified name like www.example.com: %w", h, ErrInvalid)
	}
	for i, l := range labels {
		if l == "*" && i == 0 {
			return "", fmt.Errorf("hostname %q: wildcard certificates need DNS-01, which Hangar does not do: %w", h, ErrInvalid)
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("hostname %q: label %q is not valid: %w", h, l, ErrInvalid)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("hostname %q: character %q is not allowed: %w", h, c, ErrInvalid)
			}
		}
	}
	return h, nil
}
