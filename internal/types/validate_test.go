package types

import (
	"errors"
	"testing"
)

func TestValidSignal(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"SIGTERM", "SIGINT", "SIGWINCH"} {
		if err := ValidSignal(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "SIGFOO", "TERM", "sigterm", "15"} {
		if err := ValidSignal(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestValidEnvName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"PORT", "a.b-c", "_", "É"} {
		if err := ValidEnvName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A=B", "=", "N\x00"} {
		if err := ValidEnvName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", bad, err)
		}
	}
}

// The presets are within the bounds.
func TestGuestPresetsWithinBounds(t *testing.T) {
	t.Parallel()
	for name, g := range GuestPresets {
		if g.CPUs > MaxGuestCPUs || g.MemoryMB > MaxGuestMemoryMB || g.GPUs > MaxGuestGPUs {
			t.Errorf("preset %s %+v is over the bounds", name, g)
		}
	}
}
