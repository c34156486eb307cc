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
