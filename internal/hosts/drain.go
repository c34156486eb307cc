package hosts

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// ErrPinned: a drain met machines a volume keeps on the host.
var ErrPinned = types.NewError(types.ErrConflict, "machines pinned by volumes")

// SetDraining marks host id draining (placement gives it no new machine)
// or ready again.
func (r *Registry) SetDraining(ctx context.Context, id string, draining bool) error {
	_, _, err := store.UpdateJSON(ctx, r.Store, hostsPrefix+id, func(cur *record) (*record, error) {
		if cur == nil {
			return nil, fmt.Errorf("host %s is not registered (see `hangar hosts list`): %w", id, ErrNotFound)
		}
		cur.Draining = draining
		return cur, nil
	})
	return err
}

// DrainMachines is what a drain needs to move machines: a create placed
// by the installation (never on a draining host), a wait and a destroy
// through the machine's host. The API implements it over its own routes.
type DrainMachines interface {
	Create(ctx context.Context, app string, req types.CreateMachineRequest) (types.Machine, error)
	WaitStarted(ctx context.Context, app, id string) error
	Destroy(ctx context.Context, app, id string) error
}

// Drain moves the machines off host id: it marks the host draining, then
// for each of its machines creates one like it in its region on another
// host, waits until it is started (when the old one was), and destroys the
// old one. A machine that mounts a volume cannot move (the volume stays on
// its host): without force the drain refuses before it moves anything,
// naming them; with force they are left on the host (DrainResult.Left).
func (r *Registry) Drain(ctx context.Context, id string, force bool, ms DrainMachines) (*types.DrainResult, error) {
	if _, err := r.Get(ctx, id); err != nil {
		return nil, err
	}
	kvs, err := r.Store.List(ctx, "machines/")
	if err != nil {
		return nil, fmt.Errorf("drain host %s: %w", id, err)
	}
	var move, pinned []machineRec
	for _, kv := range kvs {
		var m machineRec
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("machine record %s: %w", kv.Key, err)
		}
		hostID := m.HostID
		if hostID == "" {
			hostID = r.Self.ID
		}
		if hostID != id || m.State == types.StateDestroyed || m.State == types.StateDestroying {
			continue
		}
		if hasVolume(m.Config) {
			pinned = append(pinned, m)
		} else {
			move = append(move, m)
		}
	}
	res := &types.DrainResult{Host: id, Moved: []types.DrainMove{}, Left: []string{}}
	for _, m := range pinned {
		res.Left = append(res.Left, m.App+"/"+m.ID)
	}
	sort.Strings(res.Left)
	if len(pinned) > 0 && !force {
		return nil, fmt.Errorf("host %s runs machines that volumes keep there: %s; they cannot move without their volumes: stop them, or drain with --force to move the others and leave these: %w",
			id, strings.Join(res.Left, ", "), ErrPinned)
	}
	if err := r.SetDraining(ctx, id, true); err != nil {
		return nil, err
	}
	for _, m := range move {
		started := m.State == types.StateStarted || m.State == types.StateStarting
		// No name: names are unique in an app while the old one lives.
		nm, err := ms.Create(ctx, m.App, types.CreateMachineRequest{Config: m.Config, Region: m.Region, SkipLaunch: !started})
		if err != nil {
			return res, fmt.Errorf("drain host %s: move machine %s of %s (%d moved so far): %w", id, m.ID, m.App, len(res.Moved), err)
		}
		if started {
			if err := ms.WaitStarted(ctx, m.App, nm.ID); err != nil {
				return res, fmt.Errorf("drain host %s: machine %s, the new copy of %s, did not start; the old one is kept: %w", id, nm.ID, m.ID, err)
			}
		}
		if err := ms.Destroy(ctx, m.App, m.ID); err != nil {
			return res, fmt.Errorf("drain host %s: destroy machine %s after its move to %s: %w", id, m.ID, nm.ID, err)
		}
		res.Moved = append(res.Moved, types.DrainMove{App: m.App, From: m.ID, To: nm.ID, ToHost: nm.HostID})
	}
	return res, nil
}

// MountsVolume reports whether a machine config mounts a volume: such a
// machine is pinned to the volume's host (never moved nor replaced).
func MountsVolume(cfg *types.MachineConfig) bool { return hasVolume(cfg) }

func hasVolume(cfg *types.MachineConfig) bool {
	if cfg == nil {
		return false
	}
	for _, mt := range cfg.Mounts {
		if mt.Volume != "" || mt.Name != "" {
			return true
		}
	}
	return false
}
