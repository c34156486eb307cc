package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/image"
)

// TestDeployBuiltinGoWithoutGoMod: `hangar deploy` of a builtin = "go" app
// whose directory is no Go module says what to run, before it contacts the
// daemon.
func TestDeployBuiltinGoWithoutGoMod(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []struct{ name, body string }{
		{"fly.toml", "app = \"myapp\"\n\n[build]\n  builtin = \"go\"\n"},
		{"main.go", "package main\n\nfunc main() {}\n"},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	configPath := filepath.Join(dir, "fly.toml")
	cfg, err := appconfig.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = resolveImage(context.Background(), nil, cfg, configPath, "myapp", "", func(string, ...any) {}, io.Discard)
	var he *HintError
	if !errors.Is(err, image.ErrNoGoModule) || !errors.As(err, &he) {
		t.Fatalf("err = %v, want a HintError wrapping image.ErrNoGoModule", err)
	}
	if !strings.Contains(he.Hint, "go mod init myapp") || !strings.Contains(he.Hint, dir) {
		t.Fatalf("hint %q does not say to run `go mod init myapp` in %s", he.Hint, dir)
	}
}

// TestParseScaleCounts: `scale count` takes flyctl's forms, one number
// or GROUP=N pairs, and refuses a mix with --process-group.
func TestParseScaleCounts(t *testing.T) {
	got, err := parseScaleCounts([]string{"web=2", "worker=1"}, "")
	if err != nil || len(got) != 2 || got[0] != (groupCount{"web", 2}) || got[1] != (groupCount{"worker", 1}) {
		t.Errorf("web=2 worker=1: %v, %v", got, err)
	}
	got, err = parseScaleCounts([]string{"3"}, "worker")
	if err != nil || len(got) != 1 || got[0] != (groupCount{"worker", 3}) {
		t.Errorf("3 --process-group worker: %v, %v", got, err)
	}
	for _, bad := range [][]string{{"-1"}, {"x"}, {"web=x"}, {"=2"}, {"web=2", "web=3"}, {"2", "3"}, {"web=2", "3"}} {
		if got, err := parseScaleCounts(bad, ""); err == nil {
			t.Errorf("%q: %v, want an error", bad, got)
		}
	}
	if _, err := parseScaleCounts([]string{"web=2"}, "web"); err == nil {
		t.Error("web=2 with --process-group web: accepted")
	}
}

// TestRegionList: scale count's --region is a comma-separated list as
// flyctl's, sent without blanks or repeats.
func TestRegionList(t *testing.T) {
	for in, want := range map[string]string{"": "", "tst": "tst", "tst,tst": "tst", " tst , ": "tst", "fra, iad,fra": "fra,iad"} {
		if got := regionList(in); got != want {
			t.Errorf("%q: %q; want %q", in, got, want)
		}
	}
}
