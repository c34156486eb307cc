package export

import (
	"fmt"

	"github.com/hangar-dev/hangar/internal/types"
)

// FargateSize is a task size Fargate accepts: CPU in units (1024 = 1 vCPU)
// and memory in MiB.
type FargateSize struct {
	CPU      int `json:"cpu"`
	MemoryMB int `json:"memory_mb"`
}

// VCPU is the size's CPU in vCPUs.
func (s FargateSize) VCPU() float64 { return float64(s.CPU) / 1024 }

// fargateCPU lists the CPU values Fargate (Linux) accepts and, for each,
// the memory values allowed with it: from min to max in steps of step MiB.
// Source: Amazon ECS Developer Guide, "Task CPU and memory" (task definition
// parameters, cpu/memory table for the Fargate launch type).
var fargateCPU = []struct {
	cpu            int
	memory         []int // explicit values (0.25 vCPU)
	min, max, step int
}{
	{cpu: 256, memory: []int{512, 1024, 2048}},
	{cpu: 512, min: 1024, max: 4096, step: 1024},
	{cpu: 1024, min: 2048, max: 8192, step: 1024},
	{cpu: 2048, min: 4096, max: 16384, step: 1024},
	{cpu: 4096, min: 8192, max: 30720, step: 1024},
	{cpu: 8192, min: 16384, max: 61440, step: 4096},
	{cpu: 16384, min: 32768, max: 122880, step: 8192},
}

// ValidFargate reports whether cpu/memory is a combination Fargate accepts.
func ValidFargate(s FargateSize) bool {
	for _, c := range fargateCPU {
		if c.cpu != s.CPU {
			continue
		}
		if c.memory != nil {
			for _, m := range c.memory {
				if m == s.MemoryMB {
					return true
				}
			}
			return false
		}
		return s.MemoryMB >= c.min && s.MemoryMB <= c.max && (s.MemoryMB-c.min)%c.step == 0
	}
	return false
}

// SharedCPUFraction is the share of a vCPU that one Fly shared CPU is
// mapped to. A Fly shared vCPU is a time slice of a core that may burst;
// a quarter of a Fargate vCPU is the closest steady equivalent.
const SharedCPUFraction = 0.25

// EffectiveVCPU is the number of dedicated vCPUs a Fly guest corresponds to:
// performance CPUs count whole, shared CPUs count SharedCPUFraction each.
func EffectiveVCPU(g types.MachineGuest) float64 {
	cpus := g.CPUs
	if cpus <= 0 {
		cpus = 1
	}
	if g.CPUKind == "performance" {
		return float64(cpus)
	}
	return float64(cpus) * SharedCPUFraction
}

// FargateFor returns the smallest Fargate size with at least the guest's
// effective vCPUs and memory. A guest larger than the largest Fargate task
// (16 vCPU, 120 GiB) or one with GPUs is an error: Fargate cannot run it.
func FargateFor(g types.MachineGuest) (FargateSize, error) {
	if g.GPUs > 0 || g.GPUKind != "" {
		return FargateSize{}, fmt.Errorf("guest with %d %s GPU(s): Fargate has no GPUs; use ECS on EC2 GPU instances", g.GPUs, g.GPUKind)
	}
	mem := g.MemoryMB
	if mem <= 0 {
		mem = types.DefaultGuest.MemoryMB
	}
	wantCPU := int(EffectiveVCPU(g)*1024 + 0.5)
	for _, c := range fargateCPU {
		if c.cpu < wantCPU {
			continue
		}
		if c.memory != nil {
			for _, m := range c.memory {
				if m >= mem {
					return FargateSize{CPU: c.cpu, MemoryMB: m}, nil
				}
			}
			continue
		}
		if mem > c.max {
			continue
		}
		m := c.min
		for m < mem {
			m += c.step
		}
		return FargateSize{CPU: c.cpu, MemoryMB: m}, nil
	}
	return FargateSize{}, fmt.Errorf("guest with %g vCPU and %d MB: larger than the largest Fargate task (16 vCPU, 120 GB)", EffectiveVCPU(g), mem)
}
