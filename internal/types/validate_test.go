package types

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMachineConfigValidate(t *testing.T) {
	t.Parallel()
	sig := func(s string) *string { return &s }
	good := func() *MachineConfig {
		g := GuestPresets["performance-16x"]
		return &MachineConfig{
			Image: "x", Guest: &g, Env: map[string]string{"PORT": "8080", "a.b-c": "1"},
			Processes:  []MachineProcess{{ExtraEnv: map[string]string{"X": "1"}}},
			StopConfig: &StopConfig{Signal: sig("SIGTERM"), Timeout: &Duration{10 * time.Second}},
			Restart:    &MachineRestart{Policy: RestartOnFailure},
			Services:   []MachineService{{Protocol: "tcp", InternalPort: 8080}},
		}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	for _, tc := range []struct {
		field  string
		change func(c *MachineConfig)
	}{
		{"config.guest.cpus 100000", func(c *MachineConfig) { c.Guest.CPUs = 100000 }},
		{"config.guest.memory_mb 1000000000", func(c *MachineConfig) { c.Guest.MemoryMB = 1_000_000_000 }},
		{"config.guest.cpus -1", func(c *MachineConfig) { c.Guest.CPUs = -1 }},
		{"config.guest.gpus 9", func(c *MachineConfig) { c.Guest.GPUs = 9 }},
		{`config.env: env name "A=B"`, func(c *MachineConfig) { c.Env["A=B"] = "x" }},
		{`config.env: env name ""`, func(c *MachineConfig) { c.Env[""] = "x" }},
		{`config.processes[0].env: env name "N\x00"`, func(c *MachineConfig) { c.Processes[0].ExtraEnv["N\x00"] = "x" }},
		{"config.stop_config.timeout -5s", func(c *MachineConfig) { c.StopConfig.Timeout.Duration = -5 * time.Second }},
		{`config.stop_config.signal "SIGFOO"`, func(c *MachineConfig) { c.StopConfig.Signal = sig("SIGFOO") }},
		{`config.restart.policy "sometimes"`, func(c *MachineConfig) { c.Restart.Policy = "sometimes" }},
		{"config.services[0].internal_port 0", func(c *MachineConfig) { c.Services[0].InternalPort = 0 }},
	} {
		c := good()
		tc.change(c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("%s: err = %v, want an ErrInvalid that starts with the field", tc.field, err)
		}
	}
}

func TestGuestPresetsAreValid(t *testing.T) {
	t.Parallel()
	for name, g := range GuestPresets {
		if err := g.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}
