package hosts

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// Placement errors (the API maps their categories to 400 and 409).
var (
	// ErrNoHost: no ready host in the region asked for, or the volume's
	// host is gone.
	ErrNoHost = types.NewError(types.ErrInvalid, "no host")
	// ErrNoCapacity: the region's hosts have no memory left for the
	// machine.
	ErrNoCapacity = types.NewError(types.ErrConflict, "no capacity")
)

// PlaceRequest is one machine to place.
type PlaceRequest struct {
	App    string
	Region string // required: the caller resolves the default
	// MemoryMB is the memory the machine's guest reserves.
	MemoryMB int64
	// VolumeHost, if set, pins the machine to the host of its volume.
	VolumeHost string
	// Prefer, if set, is taken when it is one of the hosts the machine
	// fits on (a deploy's new machine, on the host of the one it replaces).
	Prefer string
}

// Placed is a machine already placed, for spreading an app.
type Placed struct {
	App    string
	HostID string
}

// Place picks the host for a new machine. The region decides first; in it
// only ready hosts with the memory free are considered, the one with the
// fewest machines of the app first (spread), then the most memory free,
// then by id, so equal hosts are chosen the same way every time. A volume
// pins the machine to its host. Place is pure: hosts carry their usage,
// machines say where the app already runs.
func Place(req PlaceRequest, all []types.Host, machines []Placed) (types.Host, error) {
	if req.VolumeHost != "" {
		for _, h := range all {
			if h.ID != req.VolumeHost {
				continue
			}
			switch {
			case h.State == types.HostUnreachable:
				return types.Host{}, fmt.Errorf("the machine's volume is on host %s, which is unreachable; its machines wait for it (see `hangar hosts list`): %w", h.ID, ErrNoHost)
			case req.Region != "" && h.Region != req.Region:
				return types.Host{}, fmt.Errorf("the machine's volume is on host %s in region %s, not %s: create the volume in region %s, or ask for region %s: %w",
					h.ID, h.Region, req.Region, req.Region, h.Region, ErrNoHost)
			case h.FreeMemoryMB() < req.MemoryMB:
				return types.Host{}, fmt.Errorf("the machine's volume is on host %s, which has %d MB of memory free, and the machine needs %d MB: stop or destroy machines there, or pick a smaller size: %w",
					h.ID, max(0, h.FreeMemoryMB()), req.MemoryMB, ErrNoCapacity)
			}
			return h, nil
		}
		return types.Host{}, fmt.Errorf("the machine's volume is on host %s, which is not registered (see `hangar hosts list`): %w", req.VolumeHost, ErrNoHost)
	}
	var inRegion, fits []types.Host
	for _, h := range all {
		if h.Region != req.Region || h.State != types.HostReady {
			continue
		}
		inRegion = append(inRegion, h)
		if h.FreeMemoryMB() >= req.MemoryMB {
			fits = append(fits, h)
		}
	}
	if len(inRegion) == 0 {
		return types.Host{}, fmt.Errorf("no ready host in region %q (regions with one: %s): pick one of those, or add a host there with `hangar server --join … --region %s` on a new machine (`hangar cluster join-token` prints the command); `hangar hosts list` shows every host: %w",
			req.Region, readyRegions(all), req.Region, ErrNoHost)
	}
	if len(fits) == 0 {
		return types.Host{}, fmt.Errorf("no host in region %s has %d MB of memory free (%s): stop or destroy machines there, pick a smaller size or another region, or add a host with `hangar server --join … --region %s` on a new machine (`hangar cluster join-token` prints the command): %w",
			req.Region, req.MemoryMB, freeList(inRegion), req.Region, ErrNoCapacity)
	}
	for _, h := range fits {
		if h.ID == req.Prefer {
			return h, nil
		}
	}
	ofApp := map[string]int{}
	for _, m := range machines {
		if m.App == req.App {
			ofApp[m.HostID]++
		}
	}
	sort.Slice(fits, func(i, j int) bool {
		a, b := fits[i], fits[j]
		if ofApp[a.ID] != ofApp[b.ID] {
			return ofApp[a.ID] < ofApp[b.ID]
		}
		if a.FreeMemoryMB() != b.FreeMemoryMB() {
			return a.FreeMemoryMB() > b.FreeMemoryMB()
		}
		return a.ID < b.ID
	})
	return fits[0], nil
}

func readyRegions(all []types.Host) string {
	seen := map[string]bool{}
	var out []string
	for _, h := range all {
		if h.State == types.HostReady && !seen[h.Region] {
			seen[h.Region] = true
			out = append(out, h.Region)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func freeList(hs []types.Host) string {
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%s: %d MB free", h.ID, max(0, h.FreeMemoryMB())))
	}
	return strings.Join(parts, ", ")
}

// GuestMemoryMB is the memory a machine config reserves on its host.
func GuestMemoryMB(cfg *types.MachineConfig) int64 {
	if cfg != nil && cfg.Guest != nil && cfg.Guest.MemoryMB > 0 {
		return int64(cfg.Guest.MemoryMB)
	}
	return int64(types.DefaultGuest.MemoryMB)
}
