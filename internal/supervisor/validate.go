package supervisor

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

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
	if cfg.Schedule != "" {
		if _, err := types.ParseSchedule(cfg.Schedule); err != nil {
			return fmt.Errorf("config.schedule: %v: %w", err, ErrInvalid)
		}
	}
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
	if err := validateFlyFields(cfg); err != nil {
		return err
	}
	return nil
}

// validateFlyFields checks the Fly config fields Hangar gives a meaning
// (dns, checks' kind, processes' env_from and secrets) and refuses, naming
// them, the values it cannot honour (a persistent root filesystem).
func validateFlyFields(cfg *types.MachineConfig) error {
	persist := func(field, v string) error {
		switch v {
		case "", types.RootfsPersistNever:
			return nil
		case types.RootfsPersistRestart, types.RootfsPersistAlways:
			return fmt.Errorf("%s %q: not supported yet: a machine's root filesystem is the image with a writable layer discarded when it stops (persist \"never\"); keep data on a volume (config.mounts): %w", field, v, ErrInvalid)
		}
		return fmt.Errorf("%s %q: use \"never\", \"restart\" or \"always\": %w", field, v, ErrInvalid)
	}
	if cfg.Rootfs != nil {
		if err := persist("config.rootfs.persist", cfg.Rootfs.Persist); err != nil {
			return err
		}
	}
	if cfg.Guest != nil {
		if err := persist("config.guest.persist_rootfs", cfg.Guest.PersistRootfs); err != nil {
			return err
		}
		if cfg.Guest.GPUs > 0 || cfg.Guest.GPUKind != "" {
			return fmt.Errorf("config.guest.gpus/gpu_kind: Hangar runs machines as containers without GPUs; leave them out: %w", ErrInvalid)
		}
		if cfg.Guest.MaxMemoryMB < 0 {
			return fmt.Errorf("config.guest.max_memory_mb %d: must not be negative: %w", cfg.Guest.MaxMemoryMB, ErrInvalid)
		}
	}
	for name, c := range cfg.Checks {
		switch c.Kind {
		case "", "readiness", "informational":
		default:
			return fmt.Errorf("config.checks.%s.kind %q: use \"readiness\" or \"informational\": %w", name, c.Kind, ErrInvalid)
		}
	}
	if d := cfg.DNS; d != nil {
		for _, ns := range d.Nameservers {
			if net.ParseIP(ns) == nil {
				return fmt.Errorf("config.dns.nameservers: %q is not an IP address: %w", ns, ErrInvalid)
			}
		}
		for _, sd := range d.Searches {
			if !validHostname(sd) {
				return fmt.Errorf("config.dns.searches: %q is not a domain name: %w", sd, ErrInvalid)
			}
		}
		for _, o := range d.Options {
			if o.Name == "" || strings.ContainsAny(o.Name+o.Value, " \t\n:") {
				return fmt.Errorf("config.dns.options: %q:%q: want a name (like ndots) and an optional value without spaces or colons: %w", o.Name, o.Value, ErrInvalid)
			}
		}
		if d.Hostname != "" && (!validHostname(d.Hostname) || len(d.Hostname) > 63) {
			return fmt.Errorf("config.dns.hostname %q: want a host name of at most 63 letters, digits, '-' and '.': %w", d.Hostname, ErrInvalid)
		}
		if d.HostnameFqdn != "" && !validHostname(d.HostnameFqdn) {
			return fmt.Errorf("config.dns.hostname_fqdn %q: not a domain name: %w", d.HostnameFqdn, ErrInvalid)
		}
	}
	for i, p := range cfg.Processes {
		for _, ef := range p.EnvFrom {
			if err := types.ValidEnvName(ef.EnvVar); err != nil {
				return fmt.Errorf("config.processes[%d].env_from: %w", i, err)
			}
			if !slices.Contains(types.EnvFromFields, ef.FieldRef) {
				return fmt.Errorf("config.processes[%d].env_from %s: field_ref %q: use one of %s: %w", i, ef.EnvVar, ef.FieldRef, strings.Join(types.EnvFromFields, ", "), ErrInvalid)
			}
		}
		for _, sec := range p.Secrets {
			if err := types.ValidEnvName(sec.EnvVar); err != nil {
				return fmt.Errorf("config.processes[%d].secrets: %w", i, err)
			}
		}
	}
	return nil
}

// validHostname reports whether name is a DNS name: dot-separated labels
// of letters, digits and '-', none empty or over 63, at most 253 in all.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}
