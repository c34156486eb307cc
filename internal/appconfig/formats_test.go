package appconfig

import (
	"errors"
	"testing"
)

// JSON and YAML configs are read like TOML ones, and their diagnostics
// carry lines too.
func TestJSONAndYAMLPositions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, src string
		line            int
		message         string
	}{
		{"json unknown key", "fly.json", "{\n  \"app\": \"a\",\n  \"http_service\": {\n    \"internal_port\": 8080,\n    \"bogus\": true\n  }\n}\n",
			5, "unknown key bogus in [http_service]"},
		{"yaml unknown key", "fly.yaml", "app: a\nhttp_service:\n  internal_port: 8080\n  bogus: true\n",
			4, "unknown key bogus in [http_service]"},
		{"yml single mounts", "fly.yml", "app: a\nmounts:\n  source: data\n  destination: /data\n",
			2, "[mounts] written as a single table; read as a list of one"},
		{"json strategy", "fly.json", "{\"deploy\": {\n\"strategy\": \"sideways\"}}",
			2, `unsupported deploy strategy "sideways"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.src), tc.file)
			if err != nil {
				t.Fatal(err)
			}
			ws, err := cfg.Validate(false)
			all := ws
			var e *Error
			if errors.As(err, &e) {
				all = append(all, e.Diagnostics...)
			}
			for _, d := range all {
				if d.Message == tc.message {
					if d.Line != tc.line || d.File != tc.file {
						t.Errorf("got %v, want %s line %d", d, tc.file, tc.line)
					}
					return
				}
			}
			t.Errorf("no %q in %v", tc.message, all)
		})
	}
	for _, tc := range []struct {
		file, src string
		line      int
	}{
		{"fly.json", "{\n  \"app\": \"a\",\n  \"env\": {\"A\": 1,,}\n}", 3},
		{"fly.json", "{\n  \"app\": \"a\",\n  \"http_service\": {\"internal_port\": \"x\"}\n}", 3},
		{"fly.yaml", "app: a\nenv:\n  A: [1\n  B: 2\n", 2}, // yaml.v3 reports the line of the open context
		{"fly.yaml", "app: a\nhttp_service:\n  internal_port: [1]\n", 3},
		{"fly.toml", "app = \"a\"\n\n[env\n", 3},
	} {
		_, err := Parse([]byte(tc.src), tc.file)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s %q: want an error, got %v", tc.file, tc.src, err)
			continue
		}
		if d := e.Diagnostics[0]; d.Line != tc.line || d.File != tc.file {
			t.Errorf("%s %q: got %v, want line %d", tc.file, tc.src, d, tc.line)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/does-not-exist/fly.toml")
	var e *Error
	if !errors.As(err, &e) || e.Hint() == "" {
		t.Fatalf("want an *Error with a hint, got %v", err)
	}
}

func TestLoadReadsLocalFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir+"/fly.toml", "[[files]]\n  guest_path = \"/etc/app.conf\"\n  local_path = \"app.conf\"\n")
	writeFile(t, dir+"/app.conf", "x=1\n")
	cfg := mustLoad(t, dir+"/fly.toml")
	mc, err := cfg.ToMachineConfig("app", "img")
	if err != nil {
		t.Fatal(err)
	}
	if len(mc.Files) != 1 || *mc.Files[0].RawValue != "eD0xCg==" {
		t.Errorf("files = %s", asJSON(t, mc.Files))
	}
	parsed, _ := Parse([]byte("[[files]]\n  guest_path = \"/x\"\n  local_path = \"x\"\n"), "fly.toml")
	if got := parsed.UnresolvedFiles(); len(got) != 1 || got[0] != "x" {
		t.Errorf("UnresolvedFiles = %v", got)
	}
}
