package types

import (
	"fmt"
	"slices"
	"strings"
)

// Bounds of a machine's size, far above every Fly size (its largest GPU
// machines have 8 GPUs and 416 GB) and any one host: a size beyond them is a
// typo or hostile input, never a machine. Whether this host can give a
// machine its size is another question, answered when it starts.
const (
	MaxGuestCPUs     = 256
	MaxGuestMemoryMB = 4 << 20 // 4 TiB
	MaxGuestGPUs     = 8
)

// Signals are the signal names a machine config may name (stop_config,
// kill_signal): the ones flyctl knows.
var Signals = []string{"SIGABRT", "SIGALRM", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT", "SIGKILL", "SIGPIPE", "SIGQUIT", "SIGSEGV", "SIGTERM", "SIGTRAP", "SIGUSR1", "SIGUSR2", "SIGWINCH"}

// ValidSignal reports whether name is one of Signals.
func ValidSignal(name string) error {
	if !slices.Contains(Signals, name) {
		return fmt.Errorf("signal %q: use one of %s: %w", name, strings.Join(Signals, ", "), ErrInvalid)
	}
	return nil
}

// ValidEnvName reports whether name can be an environment variable of a
// machine: not empty, and no '=' or NUL, which the process environment
// cannot hold ("A=B" would set A).
func ValidEnvName(name string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("env name %q: must not be empty or contain '=' or a NUL byte: %w", name, ErrInvalid)
	}
	return nil
}

// Validate checks a machine size against zero (unset) and the bounds
// above; errors name the field.
func (g *MachineGuest) Validate() error {
	for _, f := range []struct {
		name     string
		v, limit int
	}{{"cpus", g.CPUs, MaxGuestCPUs}, {"memory_mb", g.MemoryMB, MaxGuestMemoryMB}, {"gpus", g.GPUs, MaxGuestGPUs}} {
		if f.v < 0 || f.v > f.limit {
			return fmt.Errorf("guest.%s %d: use 0 (the default) to %d: %w", f.name, f.v, f.limit, ErrInvalid)
		}
	}
	return nil
}

// Validate checks the signal and timeout used to stop a machine.
func (s *StopConfig) Validate() error {
	if s.Signal != nil && *s.Signal != "" {
		if err := ValidSignal(*s.Signal); err != nil {
			return fmt.Errorf("stop_config.%w", err)
		}
	}
	if s.Timeout != nil && s.Timeout.Duration < 0 {
		return fmt.Errorf("stop_config.timeout %s: must not be negative: %w", s.Timeout.Duration, ErrInvalid)
	}
	return nil
}

// Validate checks what a machine config must satisfy before anything is
// created for it: its size, env names (of the machine and of each process),
// stop config, restart policy and service ports. Errors name the field,
// under "config.", and wrap ErrInvalid.
func (c *MachineConfig) Validate() error {
	if c.Guest != nil {
		if err := c.Guest.Validate(); err != nil {
			return fmt.Errorf("config.%w", err)
		}
	}
	for name := range c.Env {
		if err := ValidEnvName(name); err != nil {
			return fmt.Errorf("config.env: %w", err)
		}
	}
	for i, p := range c.Processes {
		for name := range p.ExtraEnv {
			if err := ValidEnvName(name); err != nil {
				return fmt.Errorf("config.processes[%d].env: %w", i, err)
			}
		}
	}
	if c.StopConfig != nil {
		if err := c.StopConfig.Validate(); err != nil {
			return fmt.Errorf("config.%w", err)
		}
	}
	if c.Restart != nil {
		switch c.Restart.Policy {
		case "", RestartNo, RestartAlways, RestartOnFailure:
		default:
			return fmt.Errorf("config.restart.policy %q: use \"no\", \"always\" or \"on-failure\": %w", c.Restart.Policy, ErrInvalid)
		}
	}
	for i, svc := range c.Services {
		if svc.InternalPort <= 0 || svc.InternalPort > 65535 {
			return fmt.Errorf("config.services[%d].internal_port %d: must be 1-65535: %w", i, svc.InternalPort, ErrInvalid)
		}
	}
	return nil
}
