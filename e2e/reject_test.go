package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestRejectedCreatesChangeNothing: a machine create or update the daemon
// refuses (400, 404) records no machine, takes no address and leaves the
// machine it would have changed as it was; the error names the field.
func TestRejectedCreatesChangeNothing(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "rej"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	sig := "SIGFOO"
	neg := types.Duration{Duration: -1}
	raw := "aGk="
	cases := []struct {
		name string
		cfg  func(c *types.MachineConfig)
		code int
		want string
	}{
		{"files guest_path escapes", func(c *types.MachineConfig) {
			c.Files = []types.File{{GuestPath: "../../etc/x", RawValue: &raw}}
		}, 400, "guest_path"},
		{"files without a source", func(c *types.MachineConfig) {
			c.Files = []types.File{{GuestPath: "/etc/app.conf"}}
		}, 400, "raw_value or secret_name"},
		{"missing volume", func(c *types.MachineConfig) {
			c.Mounts = []types.MachineMount{{Volume: "vol_doesnotexist", Path: "/data"}}
		}, 404, "vol_doesnotexist"},
		{"mount path", func(c *types.MachineConfig) {
			c.Mounts = []types.MachineMount{{Name: "data", Path: "/proc/x"}}
		}, 400, "mount path"},
		{"cpus without bound", func(c *types.MachineConfig) {
			c.Guest = &types.MachineGuest{CPUKind: "shared", CPUs: 100000, MemoryMB: 256}
		}, 400, "config.guest.cpus"},
		{"memory without bound", func(c *types.MachineConfig) {
			c.Guest = &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 1000000000}
		}, 400, "config.guest.memory_mb"},
		{"env name with =", func(c *types.MachineConfig) {
			c.Env = map[string]string{"A=B": "1"}
		}, 400, "config.env"},
		{"negative stop timeout", func(c *types.MachineConfig) {
			c.StopConfig = &types.StopConfig{Timeout: &neg}
		}, 400, "stop_config.timeout"},
		{"unknown signal", func(c *types.MachineConfig) {
			c.StopConfig = &types.StopConfig{Signal: &sig}
		}, 400, "stop_config.signal"},
	}
	ipam := func() int {
		// Every machine, destroyed ones too, with the addresses in use.
		var ms []types.Machine
		if err := d.Get("/v1/apps/rej/machines?include_deleted=true", &ms); err != nil {
			t.Fatal(err)
		}
		return len(ms)
	}
	for _, c := range cases {
		cfg := types.MachineConfig{Image: ref}
		c.cfg(&cfg)
		code, body := d.Call("POST", "/v1/apps/rej/machines", types.CreateMachineRequest{Config: &cfg})
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("create with %s: %d %s, want %d naming %q", c.name, code, body, c.code, c.want)
		}
		if n := ipam(); n != 0 {
			t.Fatalf("after the refused create with %s: %d machines recorded", c.name, n)
		}
	}

	// An update refused the same way leaves the machine as it was.
	good := types.MachineConfig{Image: ref}
	code, body := d.Call("POST", "/v1/apps/rej/machines", types.CreateMachineRequest{Config: &good})
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	m := d.Machines("rej")[0]
	for _, c := range cases {
		cfg := types.MachineConfig{Image: ref}
		c.cfg(&cfg)
		code, body := d.Call("POST", "/v1/apps/rej/machines/"+m.ID, types.CreateMachineRequest{Config: &cfg})
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("update with %s: %d %s, want %d naming %q", c.name, code, body, c.code, c.want)
		}
	}
	after := d.Machines("rej")
	if len(after) != 1 || after[0].InstanceID != m.InstanceID || after[0].State != types.StateStarted {
		t.Fatalf("after refused updates: %+v, want %s unchanged and started", after, m.ID)
	}
}
