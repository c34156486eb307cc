package types

import (
	"fmt"
	"sort"
)

// GuestPresets are Fly.io's named machine sizes.
var GuestPresets = map[string]MachineGuest{
	"shared-cpu-1x":    {CPUKind: "shared", CPUs: 1, MemoryMB: 256},
	"shared-cpu-2x":    {CPUKind: "shared", CPUs: 2, MemoryMB: 512},
	"shared-cpu-4x":    {CPUKind: "shared", CPUs: 4, MemoryMB: 1024},
	"shared-cpu-8x":    {CPUKind: "shared", CPUs: 8, MemoryMB: 2048},
	"performance-1x":   {CPUKind: "performance", CPUs: 1, MemoryMB: 2048},
	"performance-2x":   {CPUKind: "performance", CPUs: 2, MemoryMB: 4096},
	"performance-4x":   {CPUKind: "performance", CPUs: 4, MemoryMB: 8192},
	"performance-8x":   {CPUKind: "performance", CPUs: 8, MemoryMB: 16384},
	"performance-16x":  {CPUKind: "performance", CPUs: 16, MemoryMB: 32768},
	"a100-40gb":        {CPUKind: "performance", CPUs: 8, MemoryMB: 32768, GPUKind: "a100-pcie-40gb", GPUs: 1},
	"a100-80gb":        {CPUKind: "performance", CPUs: 8, MemoryMB: 32768, GPUKind: "a100-sxm4-80gb", GPUs: 1},
	"l40s":             {CPUKind: "performance", CPUs: 8, MemoryMB: 32768, GPUKind: "l40s", GPUs: 1},
	"a10":              {CPUKind: "performance", CPUs: 8, MemoryMB: 32768, GPUKind: "a10", GPUs: 1},
	"dedicated-cpu-1x": {CPUKind: "performance", CPUs: 1, MemoryMB: 2048},
}

// DefaultGuest is the size of a machine that names none.
var DefaultGuest = GuestPresets["shared-cpu-1x"]

// GuestForSize returns the preset named size.
func GuestForSize(size string) (MachineGuest, error) {
	g, ok := GuestPresets[size]
	if !ok {
		names := make([]string, 0, len(GuestPresets))
		for n := range GuestPresets {
			names = append(names, n)
		}
		sort.Strings(names)
		return MachineGuest{}, fmt.Errorf("unknown vm size %q: use one of %v", size, names)
	}
	return g, nil
}
