package supervisor

import (
	"errors"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

func TestSignalsAreFlyctls(t *testing.T) {
	t.Parallel()
	if len(signals) != len(types.Signals) {
		t.Fatalf("%d signals, flyctl knows %d", len(signals), len(types.Signals))
	}
	for _, name := range types.Signals {
		if _, err := ParseSignal(name); err != nil {
			t.Errorf("ParseSignal(%s): %v", name, err)
		}
	}
}

// TestValidateFlyFields: Fly config fields Hangar cannot honour are
// refused with a 400 naming them; the values it honours pass.
func TestValidateFlyFields(t *testing.T) {
	t.Parallel()
	ok := []types.MachineConfig{
		{Image: "x", Rootfs: &types.MachineRootfs{Persist: "never", SizeGB: 10}, CacheDrive: &types.MachineCacheDrive{SizeMB: 100}, Spot: &types.MachineSpot{MaxPriceFraction: 0.5}},
		{Image: "x", Guest: &types.MachineGuest{MaxMemoryMB: 1024, PersistRootfs: "never"}},
		{Image: "x", Checks: map[string]types.MachineCheck{"a": {Kind: "informational"}, "b": {Kind: "readiness"}, "c": {}}},
		{Image: "x", DNS: &types.DNSConfig{Nameservers: []string{"1.1.1.1", "::1"}, Searches: []string{"a.example"}, Options: []types.DNSOption{{Name: "ndots", Value: "2"}}, Hostname: "web-1", HostnameFqdn: "web-1.example.com."}},
		{Image: "x", Processes: []types.MachineProcess{{EnvFrom: []types.EnvFrom{{EnvVar: "ID", FieldRef: "id"}}, Secrets: []types.MachineSecret{{EnvVar: "DB_URL", Name: "DATABASE_URL"}}, IgnoreAppSecrets: true}}},
	}
	for i, cfg := range ok {
		if err := validateConfig(&cfg); err != nil {
			t.Errorf("config %d: %v", i, err)
		}
	}
	for _, c := range []struct {
		cfg   types.MachineConfig
		names string
	}{
		{types.MachineConfig{Rootfs: &types.MachineRootfs{Persist: "always"}}, "config.rootfs.persist"},
		{types.MachineConfig{Rootfs: &types.MachineRootfs{Persist: "sometimes"}}, "config.rootfs.persist"},
		{types.MachineConfig{Guest: &types.MachineGuest{PersistRootfs: "restart"}}, "config.guest.persist_rootfs"},
		{types.MachineConfig{Checks: map[string]types.MachineCheck{"a": {Kind: "liveness"}}}, "config.checks.a.kind"},
		{types.MachineConfig{Guest: &types.MachineGuest{GPUs: 1}}, "config.guest.gpus"},
		{types.MachineConfig{Guest: &types.MachineGuest{GPUKind: "a100-pcie-40gb"}}, "config.guest.gpus"},
		{types.MachineConfig{DNS: &types.DNSConfig{Nameservers: []string{"dns.google"}}}, "config.dns.nameservers"},
		{types.MachineConfig{DNS: &types.DNSConfig{Searches: []string{"a b"}}}, "config.dns.searches"},
		{types.MachineConfig{DNS: &types.DNSConfig{Options: []types.DNSOption{{Value: "2"}}}}, "config.dns.options"},
		{types.MachineConfig{DNS: &types.DNSConfig{Hostname: "bad_name"}}, "config.dns.hostname"},
		{types.MachineConfig{Processes: []types.MachineProcess{{EnvFrom: []types.EnvFrom{{EnvVar: "X", FieldRef: "secret"}}}}}, "config.processes[0].env_from"},
		{types.MachineConfig{Processes: []types.MachineProcess{{Secrets: []types.MachineSecret{{EnvVar: ""}}}}}, "config.processes[0].secrets"},
	} {
		c.cfg.Image = "x"
		err := validateConfig(&c.cfg)
		if !errors.Is(err, types.ErrInvalid) || !strings.Contains(err.Error(), c.names) {
			t.Errorf("%+v: %v, want ErrInvalid naming %s", c.cfg, err, c.names)
		}
	}
}
