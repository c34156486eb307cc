package supervisor

import (
	"context"
	"fmt"

	"github.com/hangar-dev/hangar/internal/types"
)

// Validator checks a machine config of app before anything is recorded;
// its error wraps ErrInvalid or ErrNotFound and names the field.
type Validator func(ctx context.Context, app string, cfg *types.MachineConfig) error

// validate checks cfg itself, then with every Validator, so that a create
// or update that would fail at start is refused before it takes an
// address or changes a record.
func (s *Supervisor) validate(ctx context.Context, app string, cfg *types.MachineConfig) error {
	if err := validateConfig(cfg); err != nil {
		return err
	}
	for _, v := range s.opt.Validators {
		if err := v(ctx, app, cfg); err != nil {
			return err
		}
	}
	return nil
}

func validateConfig(cfg *types.MachineConfig) error {
	if cfg.Restart != nil {
		switch cfg.Restart.Policy {
		case "", types.RestartNo, types.RestartAlways, types.RestartOnFailure:
		default:
			return fmt.Errorf("config.restart.policy %q: use \"no\", \"always\" or \"on-failure\": %w", cfg.Restart.Policy, ErrInvalid)
		}
	}
	if g := cfg.Guest; g != nil {
		if g.MemoryMB < 0 || g.CPUs < 0 {
			return fmt.Errorf("config.guest: cpus and memory_mb must not be negative: %w", ErrInvalid)
		}
		if g.CPUs > types.MaxGuestCPUs {
			return fmt.Errorf("config.guest.cpus %d: at most %d: %w", g.CPUs, types.MaxGuestCPUs, ErrInvalid)
		}
		if g.MemoryMB > types.MaxGuestMemoryMB {
			return fmt.Errorf("config.guest.memory_mb %d: at most %d: %w", g.MemoryMB, types.MaxGuestMemoryMB, ErrInvalid)
		}
	}
	for name := range cfg.Env {
		if err := types.ValidEnvName(name); err != nil {
			return fmt.Errorf("config.env: %w", err)
		}
	}
	if sc := cfg.StopConfig; sc != nil {
		if sc.Timeout != nil && sc.Timeout.Duration < 0 {
			return fmt.Errorf("config.stop_config.timeout %s: must not be negative: %w", sc.Timeout.Duration, ErrInvalid)
		}
		if sc.Signal != nil && *sc.Signal != "" {
			if _, err := ParseSignal(*sc.Signal); err != nil {
				return fmt.Errorf("config.stop_config.signal: %w", err)
			}
		}
	}
	for i, svc := range cfg.Services {
		if svc.InternalPort <= 0 || svc.InternalPort > 65535 {
			return fmt.Errorf("config.services[%d].internal_port %d: must be 1-65535: %w", i, svc.InternalPort, ErrInvalid)
		}
	}
	return nil
}
