package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/api"
	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestCertsCommands drives `hangar certs` against a real API server (with
// ACME off: hostnames get self-signed certificates).
func TestCertsCommands(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := certs.New(certs.Options{Dir: filepath.Join(t.TempDir(), "certs"), Domain: "apps.test", ACMEDirectory: "off"})
	if err != nil {
		t.Fatal(err)
	}
	s := api.New(api.Options{Store: st, Sup: supervisor.New(supervisor.Options{Store: st}), Certs: m, Org: "acme", Region: "tst"})
	tok, _, err := auth.Create(context.Background(), st, auth.Token{Name: "admin", Scope: auth.ScopeOrg, Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	t.Setenv("HANGAR_API_URL", srv.URL)
	t.Setenv("HANGAR_API_TOKEN", tok)
	run := func(args ...string) (string, error) {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	if out, err := run("apps", "create", "web"); err != nil {
		t.Fatalf("apps create: %v %s", err, out)
	}
	out, err := run("certs", "add", "www.example.com", "-a", "web", "--wait", "20s")
	if err != nil || !strings.Contains(out, "Status      = Ready") {
		t.Fatalf("certs add: %v\n%s", err, out)
	}
	out, err = run("certs", "list", "-a", "web")
	if err != nil || !strings.Contains(out, "www.example.com") || !strings.Contains(out, "Ready") {
		t.Fatalf("certs list: %v\n%s", err, out)
	}
	out, err = run("certs", "show", "www.example.com", "-a", "web", "--json")
	var in types.Certificate
	if err != nil || json.Unmarshal([]byte(out), &in) != nil || in.Hostname != "www.example.com" || !in.Configured {
		t.Fatalf("certs show --json: %v\n%s", err, out)
	}
	out, err = run("certs", "check", "www.example.com", "-a", "web")
	if err != nil || !strings.Contains(out, in.Serial) {
		t.Fatalf("certs check: %v\n%s", err, out)
	}
	if out, err = run("certs", "remove", "www.example.com", "-a", "web"); err != nil {
		t.Fatalf("certs remove: %v\n%s", err, out)
	}
	_, err = run("certs", "show", "www.example.com", "-a", "web")
	var he *HintError
	if !errors.As(err, &he) || !strings.Contains(he.Hint, "certs list") {
		t.Fatalf("show after remove: %v", err)
	}
	out, err = run("certs", "list", "-a", "web", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty list --json: %v %q", err, out)
	}
}
