package cluster

import (
	"errors"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	var pin [32]byte
	pin[0], pin[31] = 1, 2
	tok, err := newToken(pin)
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	if !strings.HasPrefix(s, "hj1_") {
		t.Fatalf("token %q lacks its prefix", s)
	}
	got, err := ParseToken("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != tok {
		t.Fatalf("round trip: %+v, want %+v", got, tok)
	}
	// Every single changed character is caught (checksum or decoding).
	for i := len(tokenPrefix); i < len(s); i++ {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, err := ParseToken(string(b)); !errors.Is(err, errBadToken) {
			t.Fatalf("token with character %d changed: err %v, want a malformed token", i, err)
		}
	}
	for _, bad := range []string{"", "hj1_", "abc", s[:len(s)-1], s + "A", "hj2_" + s[4:]} {
		_, err := ParseToken(bad)
		if !errors.Is(err, errBadToken) {
			t.Errorf("ParseToken(%q) = %v, want malformed", bad, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	var pin [32]byte
	tok, _ := newToken(pin)
	f.Add(tok.String())
	f.Add("hj1_")
	f.Add("")
	f.Add("hj1_AAAA")
	f.Add(" hj1_" + strings.Repeat("A", 91) + " ")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, errBadToken) {
				t.Fatalf("error %v does not wrap errBadToken", err)
			}
			return
		}
		// A token that parses prints back to the same text.
		if got := tok.String(); got != strings.TrimSpace(s) {
			t.Fatalf("ParseToken(%q).String() = %q", s, got)
		}
	})
}
