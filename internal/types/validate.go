package types

import (
	"fmt"
	"slices"
	"strings"
)

// Bounds of a machine's size, shared by fly.toml validation (appconfig) and
// machine configs sent to the API: Fly's largest sizes (16 CPUs; GPU
// machines with 8 GPUs and, in real fly.toml files, 416 GB). A size beyond
// them is a typo or hostile input, never a machine.
const (
	MaxGuestCPUs     = 16
	MaxGuestMemoryMB = 512 << 10 // 512 GB
	MaxGuestGPUs     = 8
)

// Signals are the signal names a machine may be stopped with (kill_signal,
// stop_config.signal): the ones flyctl knows.
var Signals = []string{"SIGABRT", "SIGALRM", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT", "SIGKILL", "SIGPIPE", "SIGQUIT", "SIGSEGV", "SIGTERM", "SIGTRAP", "SIGUSR1", "SIGUSR2", "SIGWINCH"}

// ValidSignal reports whether name is one of Signals.
func ValidSignal(name string) error {
	if !slices.Contains(Signals, name) {
		return fmt.Errorf("signal %q: use one of %s: %w", name, strings.Join(Signals, ", "), ErrInvalid)
	}
	return nil
}

// ValidEnvName reports whether name can be an environment variable of a
// machine: not empty, and no '=' or NUL, which a process environment cannot
// hold ("A=B" would set A).
func ValidEnvName(name string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("env name %q: must not be empty or contain '=' or a NUL byte: %w", name, ErrInvalid)
	}
	return nil
}
