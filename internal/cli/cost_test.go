package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCostRegions runs `hangar cost` on fly.toml files whose primary_region
// is a region Fly no longer offers or Hangar's own local: each is priced
// with a note (before, both failed with "Fly region not in the price
// table").
func TestCostRegions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		region string
		args   []string
		want   []string
	}{
		{"bog", nil, []string{"Fly region bog (Bogotá) is no longer offered: priced as iad", "Fly.io (iad)"}},
		{"sea", []string{"--json"}, []string{`"fly_region": "sjc"`, "Seattle"}},
		{"local", []string{"--host-monthly", "40"}, []string{"Hangar (this host)", "40.00", "Note: primary_region local"}},
	} {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "fly.toml")
		toml := "app = \"shop\"\nprimary_region = \"" + c.region + "\"\n\n[http_service]\ninternal_port = 8080\nmin_machines_running = 1\n"
		if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := newCostCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"-c", cfg}, c.args...))
		if err := cmd.Execute(); err != nil {
			t.Errorf("region %s: %v", c.region, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("region %s: output lacks %q:\n%s", c.region, w, out.String())
			}
		}
	}
}
