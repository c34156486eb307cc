package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
)

// TestImportedHerokuGoAppDeploys: a Heroku Go app (Procfile, app.json with
// the Go buildpack, go.mod) imported with `hangar launch --from heroku`
// deploys with `hangar deploy` as written, and serves. Before issue 21 the
// import wrote builder = "heroku/builder:24" and the deploy stopped at
// "nothing to deploy: no [build] image or builtin, and no Dockerfile".
func TestImportedHerokuGoAppDeploys(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemonWith(t, bin, "--https-listen", "127.0.0.1:0", "--acme-directory", "off")
	// The app's source, as a user's checkout: the import writes fly.toml
	// next to it (the default --out is the current directory).
	src := t.TempDir()
	from := filepath.Join(harness.RepoRoot(), "internal", "importer", "testdata", "heroku", "go-getting-started", "input")
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := d.Hangar("launch", "--from", "heroku", src, "--out", src)
	if err != nil {
		t.Fatalf("launch: %v\n%s", err, out)
	}
	cfg, err := os.ReadFile(filepath.Join(src, "fly.toml"))
	if err != nil || !strings.Contains(string(cfg), "builtin = 'go'") {
		t.Fatalf("fly.toml (%v):\n%s", err, cfg)
	}
	if out, err := d.Hangar("config", "validate", "-c", filepath.Join(src, "fly.toml")); err != nil {
		t.Fatalf("config validate: %v\n%s", err, out)
	}
	if out, err := d.Hangar("deploy", "-c", filepath.Join(src, "fly.toml")); err != nil {
		t.Fatalf("deploy of the imported app: %v\n%s", err, out)
	}
	// The app listens on $PORT (8080, set in [env] to match internal_port)
	// and answers with the greeting from app.json's env, over HTTPS
	// (force_https) through the proxy.
	pt := &protoEnv{d: d, roots: defaultCertPool(t, d)}
	client := pt.httpsClient()
	harness.Poll(t, "the imported app answers", 60*time.Second, func() (bool, string) {
		resp, err := client.Get("https://shopfront.test.internal/")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "shopfront hello from an imported Heroku app"), resp.Status + " " + string(b)
	})
	// Heroku web dynos never sleep: the import keeps one machine running.
	if ms := d.Machines("shopfront"); len(ms) != 1 {
		t.Errorf("machines = %d, want 1", len(ms))
	}
}
