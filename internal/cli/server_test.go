package cli

import (
	"strings"
	"testing"
)

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "32MiB": 32 << 20, "32mb": 32 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "131072": 128 << 10, "2 MiB": 2 << 20,
	} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, int64(b), err, want)
		}
	}
	for in, msg := range map[string]string{
		"lots": "not a size", "-1MiB": "not a size", "3XB": "not a size", "1.5MiB": "not a size", "64KiB": "too small", "100": "too small",
	} {
		var b byteSize
		if err := b.Set(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Set(%q) = %v, want an error saying %q", in, err, msg)
		}
	}
	b := byteSize(32 << 20)
	if b.String() != "32MiB" {
		t.Errorf("String() = %q", b.String())
	}
}
