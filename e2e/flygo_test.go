package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hangar-dev/hangar/internal/harness"
)

// TestFlyGoClient runs Fly's own Go client against a real daemon: the
// program in e2e/flygo calls every method of fly-go's flaps client (apps,
// machines with leases, waits, exec, metadata, cordon, update, suspend;
// volumes and snapshots; secrets; ip_assignments; certificates; regions)
// and checks that each works or gets the deliberate 4xx docs/api.md lists,
// and that a machine config with every field comes back whole.
//
// fly-go is not on the Go module proxy (it answers 403), so the test
// needs a checkout: HANGAR_FLYGO_SRC=/path/to/fly-go. Without it the test
// skips, saying so; its other dependencies come from the module proxy.
func TestFlyGoClient(t *testing.T) {
	src := os.Getenv("HANGAR_FLYGO_SRC")
	if src == "" {
		t.Skip("set HANGAR_FLYGO_SRC to a checkout of github.com/superfly/fly-go: the module proxy does not serve it")
	}
	harness.RequireRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"main.go", "go.mod"} {
		b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "e2e", "flygo", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	prog := filepath.Join(dir, "flygo")
	for _, args := range [][]string{
		{"mod", "edit", "-replace", "github.com/superfly/fly-go=" + src},
		{"mod", "tidy"},
		{"build", "-o", prog, "."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
	}
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	cmd := exec.Command(prog)
	cmd.Env = append(os.Environ(), "FLY_FLAPS_BASE_URL="+d.API, "FLY_API_TOKEN="+d.Token, "FLYGO_IMAGE="+ref,
		"FLYGO_FULL_CONFIG="+filepath.Join(harness.RepoRoot(), "internal/types/testdata/machine-config-full.json"))
	out, err := cmd.CombinedOutput()
	t.Logf("fly-go against Hangar:\n%s", out)
	if err != nil {
		t.Fatalf("fly-go's calls: %v", err)
	}
}
