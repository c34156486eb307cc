package cluster

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// tokenPrefix starts every join token; the digit is the format's version.
const tokenPrefix = "hj1_"

// Token is a join token: the pin of the cluster CA (SHA-256 of its public
// key), which the joining host checks the server it dials against instead
// of the system's roots, and a one-time secret, of which the cluster keeps
// only the hash.
//
// Text form: "hj1_" + base64url(pin[32] | secret[32] | crc32[4]), no
// padding; the checksum tells a mistyped token from a wrong one.
type Token struct {
	Pin    [32]byte
	Secret [32]byte
}

const tokenRawLen = 32 + 32 + 4

// errBadToken is the parse error's common part.
var errBadToken = errors.New("malformed join token")

// tokenHint says what to do about any token that cannot be used.
const tokenHint = "run `hangar cluster join-token` on a member of the cluster to get a new one"

// newToken makes a token for the CA with the given pin and a fresh secret.
func newToken(pin [32]byte) (Token, error) {
	t := Token{Pin: pin}
	if _, err := rand.Read(t.Secret[:]); err != nil {
		return Token{}, fmt.Errorf("join token secret: %w", err)
	}
	return t, nil
}

// String is the token's text form.
func (t Token) String() string {
	raw := make([]byte, 0, tokenRawLen)
	raw = append(raw, t.Pin[:]...)
	raw = append(raw, t.Secret[:]...)
	raw = binary.BigEndian.AppendUint32(raw, crc32.ChecksumIEEE(raw))
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// secretHash names the token's record in etcd: the cluster never stores
// the secret itself.
func (t Token) secretHash() string {
	h := sha256.Sum256(t.Secret[:])
	return hex.EncodeToString(h[:])
}

// ParseToken reads a join token's text form (surrounding spaces allowed).
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, tokenPrefix) {
		if s == "" {
			return Token{}, fmt.Errorf("%w: empty; %s", errBadToken, tokenHint)
		}
		return Token{}, fmt.Errorf("%w: it does not start with %q (is it a join token from `hangar cluster join-token`?)", errBadToken, tokenPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s[len(tokenPrefix):])
	if err != nil || len(raw) != tokenRawLen {
		return Token{}, fmt.Errorf("%w: wrong length or characters (cut or mistyped?); copy it whole, or %s", errBadToken, tokenHint)
	}
	body, sum := raw[:64], binary.BigEndian.Uint32(raw[64:])
	if crc32.ChecksumIEEE(body) != sum {
		return Token{}, fmt.Errorf("%w: its checksum does not match (a character changed?); copy it whole, or %s", errBadToken, tokenHint)
	}
	var t Token
	copy(t.Pin[:], body[:32])
	copy(t.Secret[:], body[32:])
	return t, nil
}
