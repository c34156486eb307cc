package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/types"
)

const secretsConfig = `app = "sec"
primary_region = "tst"

[env]
  PORT = "8080"
  DB_URL = "from-env"
  APP_VERSION = "%s"

[[files]]
  guest_path = "/etc/app/cert.pem"
  secret_name = "CERT"

[[files]]
  guest_path = "/etc/app/motd"
  raw_value = "hello from files"

[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

// proxyDo sends a request for app through the proxy, optionally to one
// machine (fly-force-instance-id).
func proxyDo(t *testing.T, d *harness.Daemon, app, method, path, body, machine string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, d.HTTP+path, strings.NewReader(body))
	req.Host = app + ".test.internal"
	if machine != "" {
		req.Header.Set("Fly-Force-Instance-Id", machine)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s via the proxy: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// envOf reads a started machine's environment through the proxy.
func envOf(t *testing.T, d *harness.Daemon, app string) map[string]string {
	t.Helper()
	var body string
	harness.Poll(t, "app serves /env", 20*time.Second, func() (bool, string) {
		var code int
		code, body = proxyDo(t, d, app, "GET", "/env", "", "")
		return code == 200, fmt.Sprint(code, body)
	})
	env := map[string]string{}
	for _, l := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

func hangarOK(t *testing.T, d *harness.Daemon, args ...string) string {
	t.Helper()
	out, err := d.Hangar(args...)
	if err != nil {
		t.Fatalf("hangar %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// hangarStdin runs the CLI with stdin.
func hangarStdin(t *testing.T, bin string, d *harness.Daemon, stdin string, args ...string) string {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), "HANGAR_DATA_DIR="+d.DataDir, "HANGAR_API_URL=", "HANGAR_API_TOKEN=")
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("hangar %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func secretStatuses(t *testing.T, d *harness.Daemon, app string) map[string]string {
	t.Helper()
	var ls []secrets.Secret
	if err := json.Unmarshal([]byte(hangarOK(t, d, "secrets", "list", "-a", app, "--json")), &ls); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range ls {
		out[s.Name] = s.Status
		if len(s.Digest) != 16 {
			t.Errorf("secret %s digest %q", s.Name, s.Digest)
		}
	}
	return out
}

// TestSecrets walks the secrets lifecycle on real machines: stage, deploy,
// set (rolled out), unset, import, rollback to an earlier secrets version,
// key rotation with the daemon stopped; then greps everything a user or
// another process could see for the values and finds none.
func TestSecrets(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	// [[files]] live in a tmpfs outside the data dir.
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(secrets.RunDirFor(d.DataDir))) })
	ref := d.ImportTestApp()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fly.toml")
	writeCfg := func(version string) {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(secretsConfig, version)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Values we look for everywhere afterwards.
	const dbOne, dbTwo, imported = "postgres://u:Zq81-first-5e2d@db/x", "postgres://u:Zq81-second-77a1@db/x", "imported-Zq81-9c3b"
	cert := "-----BEGIN CERT Zq81-cert-41f0-----"
	leaks := []string{"Zq81-first-5e2d", "Zq81-second-77a1", "Zq81-9c3b", "Zq81-cert-41f0", base64.StdEncoding.EncodeToString([]byte(cert))}

	hangarOK(t, d, "apps", "create", "sec")
	// Staged before the first deploy: nothing to restart yet.
	out := hangarOK(t, d, "secrets", "set", "-a", "sec", "--stage", "DB_URL="+dbOne, "CERT="+base64.StdEncoding.EncodeToString([]byte(cert)))
	if !strings.Contains(out, "staged as version 1") {
		t.Fatalf("stage: %s", out)
	}
	if st := secretStatuses(t, d, "sec"); st["DB_URL"] != secrets.StatusStaged || st["CERT"] != secrets.StatusStaged {
		t.Fatalf("statuses before deploy: %v", st)
	}
	writeCfg("1")
	hangarOK(t, d, "deploy", "-c", cfg, "--image", ref)
	env := envOf(t, d, "sec")
	if env["DB_URL"] != dbOne {
		t.Fatalf("DB_URL = %q: the secret must override [env]", env["DB_URL"])
	}
	if _, body := proxyDo(t, d, "sec", "GET", "/file?path=/etc/app/cert.pem", "", ""); body != cert {
		t.Fatalf("[[files]] secret_name: %q", body)
	}
	if _, body := proxyDo(t, d, "sec", "GET", "/file?path=/etc/app/motd", "", ""); body != "hello from files" {
		t.Fatalf("[[files]] raw_value: %q", body)
	}
	if st := secretStatuses(t, d, "sec"); st["DB_URL"] != secrets.StatusDeployed {
		t.Fatalf("statuses after deploy: %v", st)
	}

	t.Run("set rolls out", func(t *testing.T) {
		out := hangarOK(t, d, "secrets", "set", "-a", "sec", "DB_URL="+dbTwo)
		if !strings.Contains(out, "Secrets are deployed") {
			t.Fatalf("set: %s", out)
		}
		if env := envOf(t, d, "sec"); env["DB_URL"] != dbTwo {
			t.Fatalf("after set: DB_URL = %q", env["DB_URL"])
		}
		if st := secretStatuses(t, d, "sec"); st["DB_URL"] != secrets.StatusDeployed {
			t.Fatalf("statuses after set: %v", st)
		}
	})

	t.Run("import stages, deploy rolls out", func(t *testing.T) {
		out := hangarStdin(t, bin, d, "# from .env\nIMPORTED=\""+imported+"\"\nexport OTHER=plain # comment\n", "secrets", "import", "-a", "sec", "--stage")
		if !strings.Contains(out, "staged") {
			t.Fatalf("import: %s", out)
		}
		if st := secretStatuses(t, d, "sec"); st["IMPORTED"] != secrets.StatusStaged || st["OTHER"] != secrets.StatusStaged {
			t.Fatalf("statuses after import: %v", st)
		}
		if env := envOf(t, d, "sec"); env["IMPORTED"] != "" {
			t.Fatal("a staged secret reached the running machine")
		}
		hangarOK(t, d, "secrets", "deploy", "-a", "sec")
		env := envOf(t, d, "sec")
		if env["IMPORTED"] != imported || env["OTHER"] != "plain" {
			t.Fatalf("after secrets deploy: IMPORTED=%q OTHER=%q", env["IMPORTED"], env["OTHER"])
		}
	})

	t.Run("unset", func(t *testing.T) {
		hangarOK(t, d, "secrets", "unset", "-a", "sec", "OTHER")
		if env := envOf(t, d, "sec"); env["OTHER"] != "" || env["IMPORTED"] != imported {
			t.Fatalf("after unset: %v", env)
		}
		if _, err := d.Hangar("secrets", "unset", "-a", "sec", "NEVER_SET"); err == nil {
			t.Fatal("unset of an unknown secret succeeded")
		}
	})

	t.Run("rollback restores the earlier secrets version", func(t *testing.T) {
		var rels []types.Release
		if err := d.Get("/v1/apps/sec/releases", &rels); err != nil {
			t.Fatal(err)
		}
		var first *types.Release
		for i := range rels {
			if rels[i].Version == 1 {
				first = &rels[i]
			}
		}
		if first == nil || first.SecretsVersion != 1 || rels[0].SecretsVersion <= 1 {
			t.Fatalf("releases do not record secrets versions: %+v", rels)
		}
		hangarOK(t, d, "rollback", "1", "-a", "sec")
		env := envOf(t, d, "sec")
		if env["DB_URL"] != dbOne || env["IMPORTED"] != "" {
			t.Fatalf("after rollback to v1: DB_URL=%q IMPORTED=%q, want the v1 secrets", env["DB_URL"], env["IMPORTED"])
		}
		// And forward again: a restart picks up the current secrets.
		hangarOK(t, d, "secrets", "deploy", "-a", "sec")
		if env := envOf(t, d, "sec"); env["DB_URL"] != dbTwo || env["IMPORTED"] != imported {
			t.Fatalf("after redeploying the current secrets: %v", env)
		}
	})

	t.Run("no value leaks", func(t *testing.T) {
		var found []string
		check := func(where, text string) {
			for _, l := range leaks {
				if strings.Contains(text, l) {
					found = append(found, fmt.Sprintf("%q in %s", l, where))
				}
			}
		}
		for _, p := range []string{"/v1/apps/sec/secrets", "/v1/apps/sec/machines", "/v1/apps/sec/releases", "/v1/apps/sec", "/v1/apps/sec/logs?lines=10000"} {
			code, body := d.Call("GET", p, nil)
			if code != 200 {
				t.Fatalf("GET %s: %d %s", p, code, body)
			}
			check("GET "+p, body)
		}
		for _, m := range d.Machines("sec") {
			_, body := d.Call("GET", "/v1/apps/sec/machines/"+m.ID+"/events", nil)
			check("machine events", body)
		}
		if code, _ := d.Call("GET", "/v1/apps/sec/secrets?show_secrets=true", nil); code != http.StatusBadRequest {
			t.Errorf("show_secrets=true: %d, want 400", code)
		}
		check("hangar status --json", hangarOK(t, d, "status", "-a", "sec", "--json"))
		check("hangar secrets list", hangarOK(t, d, "secrets", "list", "-a", "sec"))
		check("hangar releases", hangarOK(t, d, "releases", "-a", "sec", "--json"))
		check("hangar logs", hangarOK(t, d, "logs", "-a", "sec"))
		ps, err := exec.Command("ps", "-eo", "args").Output()
		if err != nil {
			t.Fatal(err)
		}
		check("ps -eo args", string(ps))
		// Every file of the data dir, state.db, logs and the running
		// tasks' OCI bundles included: the runtime's shim strips the env
		// from config.json once runc has read it.
		scanned := 0
		err = filepath.WalkDir(d.DataDir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !e.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(d.DataDir, p)
			if strings.HasPrefix(rel, "images/") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			if strings.HasPrefix(rel, "tasks/") && strings.HasSuffix(rel, "bundle/config.json") {
				scanned++
			}
			check(rel, string(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The positive controls: the scan reached the running tasks' bundles,
		// and the value is really in the machine (so its absence above
		// means something).
		if scanned == 0 {
			t.Fatal("no running task's config.json was scanned: the scan cannot be trusted")
		}
		if env := envOf(t, d, "sec"); env["DB_URL"] != dbTwo {
			t.Fatalf("the machine does not have DB_URL=%q: %v", dbTwo, env)
		}
		if len(found) > 0 {
			t.Fatalf("secret values leaked:\n%s", strings.Join(found, "\n"))
		}
		fi, err := os.Stat(filepath.Join(d.DataDir, secrets.KeyFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", fi, err)
		}
		if b, _ := os.ReadFile(filepath.Join(d.DataDir, "state.db")); bytes.Contains(b, []byte("Zq81")) {
			t.Fatal("state.db holds a secret in clear text")
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(d.DataDir, secrets.KeyFile))
		d.Stop(syscall.SIGTERM)
		out := hangarOK(t, d, "server", "--data-dir", d.DataDir, "--rotate-secrets-key")
		if !strings.Contains(out, "re-encrypted") {
			t.Fatalf("rotate: %s", out)
		}
		after, _ := os.ReadFile(filepath.Join(d.DataDir, secrets.KeyFile))
		if bytes.Equal(before, after) || len(after) == 0 {
			t.Fatal("the key did not change")
		}
		d.Start()
		// The machines kept running; a roll-out decrypts with the new key.
		hangarOK(t, d, "secrets", "set", "-a", "sec", "AFTER_ROTATION=yes")
		env := envOf(t, d, "sec")
		if env["DB_URL"] != dbTwo || env["AFTER_ROTATION"] != "yes" || env["IMPORTED"] != imported {
			t.Fatalf("after rotation: %v", env)
		}
	})

	var list types.SecretsList
	if err := d.Get("/v1/apps/sec/secrets", &list); err != nil {
		t.Fatal(err)
	}
	if list.Version < 5 {
		t.Fatalf("secrets versions: %+v", list)
	}
	for _, m := range d.Machines("sec") {
		if m.State == types.StateStarted && m.Config.Metadata[secrets.MetaVersion] != fmt.Sprint(list.Version) {
			t.Errorf("machine %s runs secrets version %q, want %d", m.ID, m.Config.Metadata[secrets.MetaVersion], list.Version)
		}
	}

	t.Run("deleting the app removes its secrets", func(t *testing.T) {
		hangarOK(t, d, "apps", "create", "tmp")
		hangarOK(t, d, "secrets", "set", "-a", "tmp", "--stage", "OLD=1")
		if code, body := d.Call("DELETE", "/v1/apps/tmp", nil); code != http.StatusAccepted {
			t.Fatalf("delete app: %d %s", code, body)
		}
		harness.Poll(t, "secrets removed with the app", 10*time.Second, func() (bool, string) {
			hangarOK(t, d, "apps", "create", "tmp")
			st := secretStatuses(t, d, "tmp")
			if len(st) != 0 {
				d.Call("DELETE", "/v1/apps/tmp", nil)
			}
			return len(st) == 0, fmt.Sprint(st)
		})
	})
}
