package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	code = 0
	if err != nil {
		code = 1
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
		if ee == nil || ee.Err != nil {
			errb.WriteString(err.Error())
		}
	}
	return out.String(), errb.String(), code
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fly.toml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodConfig = `app = "demo"
primary_region = "ams"
kill_timeout = 5

[env]
  PORT = "3000"

[http_service]
  internal_port = 8080
  bogus = true
`

func TestConfigValidate(t *testing.T) {
	p := writeConfig(t, goodConfig)
	out, _, code := runCLI(t, "config", "validate", "-c", p)
	if code != 0 || !strings.Contains(out, "is valid") || !strings.Contains(out, ":10:3: warning: unknown key bogus") {
		t.Errorf("code %d, out:\n%s", code, out)
	}
	out, _, code = runCLI(t, "config", "validate", "-c", p, "--strict")
	if code != 1 || !strings.Contains(out, "unknown key bogus") || !strings.Contains(out, "is not valid") {
		t.Errorf("strict: code %d, out:\n%s", code, out)
	}
	out, _, code = runCLI(t, "config", "validate", "-c", p, "--strict", "--json")
	var rep struct {
		Valid  bool
		Errors []struct {
			Line    int
			Message string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if code != 1 || rep.Valid || len(rep.Errors) != 1 || rep.Errors[0].Line != 10 {
		t.Errorf("json: code %d, %+v", code, rep)
	}
}

func TestConfigValidateSyntaxError(t *testing.T) {
	p := writeConfig(t, "app = \"demo\"\n[http_service\n")
	_, errOut, code := runCLI(t, "config", "validate", "-c", p)
	if code != 1 || !strings.Contains(errOut, "fly.toml:2:") {
		t.Errorf("code %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = runCLI(t, "config", "validate", "-c", filepath.Join(t.TempDir(), "fly.toml"))
	if code != 1 || !strings.Contains(errOut, "config file not found") {
		t.Errorf("missing file: code %d, stderr:\n%s", code, errOut)
	}
}

func TestConfigShowAndLint(t *testing.T) {
	p := writeConfig(t, goodConfig)
	out, _, code := runCLI(t, "config", "show", "-c", p, "--json", "--image", "nginx:1")
	var shown struct {
		Config   map[string]any
		Machines map[string]struct {
			Image string
			Env   map[string]string
		}
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || code != 0 {
		t.Fatalf("show: code %d err %v\n%s", code, err, out)
	}
	if m := shown.Machines["app"]; m.Image != "nginx:1" || m.Env["FLY_PROCESS_GROUP"] != "app" || shown.Config["kill_timeout"] != "5s" {
		t.Errorf("show: %+v", shown)
	}
	out, _, code = runCLI(t, "config", "show", "-c", p)
	if code != 0 || !strings.Contains(out, "kill_timeout = '5s'") || !strings.Contains(out, `machine config for process group "app"`) {
		t.Errorf("show text: code %d\n%s", code, out)
	}
	out, _, code = runCLI(t, "config", "lint", "-c", p)
	if code != 0 || !strings.Contains(out, ":6:3: warning: env PORT is 3000 but the service sends traffic to internal_port 8080") {
		t.Errorf("lint: code %d\n%s", code, out)
	}
}
