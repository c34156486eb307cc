package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
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

// TestImportedComposeAppsDeploy: a compose file of a web service and its
// worker (sharing a volume, as in issue 21) imported with `hangar launch`;
// then every next step of the report is run as written, in order (apps
// create, volumes create, secrets import, deploy): both apps deploy on the
// first try and the web one serves. Before, the next steps created volumes
// for apps that did not exist yet, with a --region the host refuses.
func TestImportedComposeAppsDeploy(t *testing.T) {
	harness.RequireRoot(t)
	for _, b := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
	bin := harness.BuildBinary(t)
	d := harness.StartDaemonWith(t, bin, "--https-listen", "127.0.0.1:0", "--acme-directory", "off")
	// cleanupVolumes checks that no volume of the daemon is left mounted:
	// the one of shop-worker runs last, after shop-web's are gone.
	cleanupVolumes(t, d, "shop-worker")
	t.Cleanup(func() {
		var ms []types.Machine
		if d.Get("/v1/apps/shop-web/machines", &ms) == nil {
			for _, m := range ms {
				d.Call("DELETE", "/v1/apps/shop-web/machines/"+m.ID+"?force=true", nil)
			}
		}
		var vs []types.Volume
		if d.Get("/v1/apps/shop-web/volumes", &vs) == nil {
			for _, v := range vs {
				if code, body := d.Call("DELETE", "/v1/apps/shop-web/volumes/"+v.ID, nil); code != 200 {
					t.Errorf("cleanup: destroy volume %s: %d %s", v.ID, code, body)
				}
			}
		}
	})
	ref := d.ImportTestApp()
	dir := t.TempDir()
	compose := `name: shop
services:
  web:
    image: ` + ref + `
    ports:
      - "8080:8080"
    environment:
      PORT: "8080"
      APP_VERSION: compose-web
      SESSION_SECRET: ${SESSION_SECRET:-not-for-production}
    healthcheck:
      test: ["CMD", "wget", "-q", "--spider", "http://localhost:8080/healthz"]
      interval: 5s
    volumes:
      - uploads:/data
  worker:
    image: ` + ref + `
    environment:
      PORT: "9090"
      APP_VERSION: compose-worker
    volumes:
      - uploads:/data
volumes:
  uploads:
`
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := d.Hangar("launch", "--from", "compose", dir, "--out", dir, "--region", "local", "--include-secret-values", "--json")
	if err != nil {
		t.Fatalf("launch: %v\n%s", err, out)
	}
	var res struct {
		Report struct {
			Entries []struct{ Warning string }
			Actions []string `json:"next_steps"`
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("launch --json: %v\n%s", err, out)
	}
	shared := false
	for _, e := range res.Report.Entries {
		shared = shared || strings.Contains(e.Warning, "volume uploads is shared with service")
	}
	if !shared {
		t.Error("the report does not say that the volume is no longer shared")
	}
	// Run the next steps as a person would, with this daemon's hangar.
	pathDir := filepath.Dir(bin)
	for _, a := range res.Report.Actions {
		cmd := exec.Command("sh", "-c", a)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+pathDir+":"+os.Getenv("PATH"), "HANGAR_DATA_DIR="+d.DataDir, "HANGAR_API_URL=", "HANGAR_API_TOKEN=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("next step %q: %v\n%s", a, err, b)
		}
	}
	pt := &protoEnv{d: d, roots: defaultCertPool(t, d)}
	client := pt.httpsClient()
	harness.Poll(t, "the imported web app answers", 60*time.Second, func() (bool, string) {
		resp, err := client.Get("https://shop-web.test.internal/env")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "compose-web") && strings.Contains(string(b), "SESSION_SECRET=not-for-production"), resp.Status + " " + string(b)
	})
	harness.Poll(t, "the worker runs", 60*time.Second, func() (bool, string) {
		ms := d.Machines("shop-worker")
		return len(ms) == 1 && ms[0].State == types.StateStarted, fmt.Sprintf("%d machines", len(ms))
	})
}
