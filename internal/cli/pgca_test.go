package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/pg"
	"github.com/hangar-dev/hangar/internal/types"
)

// A rotation's key goes under a new secret name each time; the bundle's
// first certificate is the current CA; a file's raw value replaces its
// secret reference.
func TestPgRotationHelpers(t *testing.T) {
	for cur, next := range map[string]string{"PG_TLS_KEY": "PG_TLS_KEY_2", "PG_TLS_KEY_2": "PG_TLS_KEY_3", "PG_TLS_KEY_19": "PG_TLS_KEY_20"} {
		if got := pgNextKeySecret(cur); got != next {
			t.Errorf("after %s: %s, want %s", cur, got, next)
		}
	}
	a, _, err := pg.NewCA("db", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := pg.NewCA("db", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first, err := pgFirstCert(string(b) + string(a))
	if err != nil || first != string(b) {
		t.Fatalf("first of the bundle: %v %q", err, first)
	}
	if _, err := pgFirstCert("not a certificate"); err == nil {
		t.Fatal("garbage accepted as a CA")
	}
	secret := pg.SecretServerKey
	cfg := &types.MachineConfig{Files: []types.File{{GuestPath: pg.ConfigDir + "/server.key", SecretName: &secret}}}
	if got := pgKeySecret(&types.Machine{Config: cfg}); got != pg.SecretServerKey {
		t.Fatalf("key secret %s", got)
	}
	pgSetFile(cfg, pg.ConfigDir+"/ca.crt", b)
	pgSetFile(cfg, pg.ConfigDir+"/server.key", []byte("x"))
	if len(cfg.Files) != 2 || cfg.Files[0].SecretName != nil || cfg.Files[1].RawValue == nil {
		t.Fatalf("files %+v", cfg.Files)
	}
	if got := pgCAOf(&types.Machine{Config: cfg}); !strings.HasPrefix(got, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("the CA file reads %q", got)
	}
}
