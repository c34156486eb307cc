package mesh

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RFC 7748 section 6.1's X25519 test vector (Alice's keys).
func TestPublicKeyVector(t *testing.T) {
	var priv Key
	b, _ := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	copy(priv[:], b)
	pub := priv.Public()
	if got := hex.EncodeToString(pub[:]); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatalf("public key %s", got)
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh", "private.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v, want 0600", st.Mode(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || k2 != k1 {
		t.Fatalf("second load gave another key (%v)", err)
	}
	if k1[0]&7 != 0 || k1[31]&128 != 0 || k1[31]&64 == 0 {
		t.Fatal("private key is not clamped")
	}
	other, _ := GenerateKey()
	if other == k1 || other.Public() == k1.Public() {
		t.Fatal("two generated keys are the same")
	}
	// The public half goes into JSON host records and comes back.
	j, _ := json.Marshal(struct{ K Key }{k1.Public()})
	var back struct{ K Key }
	if err := json.Unmarshal(j, &back); err != nil || back.K != k1.Public() {
		t.Fatalf("JSON round trip: %s %v", j, err)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("damaged key file: %v, want an error saying what to do", err)
	}
}

func FuzzParseKey(f *testing.F) {
	k, _ := GenerateKey()
	f.Add(k.String())
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 44))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if again, err := ParseKey(k.String()); err != nil || again != k {
			t.Fatalf("%q parsed but its String does not round-trip", s)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add("private_key=00\npublic_key=" + strings.Repeat("ab", 32) + "\nendpoint=10.0.0.1:51820\nlast_handshake_time_sec=5\nrx_bytes=10\nallowed_ip=fdaa::/64\nerrno=0\n")
	f.Add("public_key=zz\n")
	f.Fuzz(func(t *testing.T, s string) {
		peers, err := parseStatus(s)
		if err != nil {
			return
		}
		for _, p := range peers {
			if p.PublicKey.IsZero() && !strings.Contains(s, "public_key="+strings.Repeat("00", 32)) {
				t.Fatalf("a peer with a zero key from %q", s)
			}
		}
	})
}
