package types

import (
	"errors"
	"fmt"
	"testing"
)

func TestNewErrorMatchesItsCategory(t *testing.T) {
	own := NewError(ErrNotFound, "volume not found")
	err := fmt.Errorf("volume vol_1: %w", own)
	if !errors.Is(err, own) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("errors.Is failed for %v", err)
	}
	if errors.Is(err, ErrConflict) {
		t.Fatalf("%v matched another category", err)
	}
	if got := err.Error(); got != "volume vol_1: volume not found" {
		t.Fatalf("message %q", got)
	}
}
