package volume

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// SpecHook is a supervisor.SpecHook: every mount of the machine's config is
// attached (see Attach) and bind-mounted into the task.
func (m *Manager) SpecHook(ctx context.Context, r *supervisor.Record, spec *runtime.Spec) error {
	if r.Config == nil {
		return nil
	}
	for _, mt := range r.Config.Mounts {
		v, err := m.Attach(ctx, r, mt)
		if err != nil {
			return err
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: m.mountPath(v.ID), Destination: mt.Path})
	}
	return nil
}

func validMountPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.HasPrefix(p, "/proc") || strings.HasPrefix(p, "/sys") || strings.HasPrefix(p, "/dev") {
		return fmt.Errorf("mount path %q: want an absolute, clean directory other than /, /proc, /sys, /dev: %w", p, ErrInvalid)
	}
	return nil
}

// ValidateMounts is a supervisor.Validator: every mount of a machine config
// has a valid path and names a volume, and a volume named by id exists,
// before the machine is recorded. (Whether a volume is free is decided at
// start, when it is attached.)
func (m *Manager) ValidateMounts(ctx context.Context, app string, cfg *types.MachineConfig) error {
	for i, mt := range cfg.Mounts {
		if err := validMountPath(mt.Path); err != nil {
			return fmt.Errorf("config.mounts[%d]: %w", i, err)
		}
		switch {
		case mt.Volume != "":
			if _, err := m.Get(ctx, app, mt.Volume); err != nil {
				return fmt.Errorf("config.mounts[%d]: %w", i, err)
			}
		case mt.Name == "":
			return fmt.Errorf("config.mounts[%d] at %s names no volume: set volume (an id) or name: %w", i, mt.Path, ErrInvalid)
		}
	}
	return nil
}

// Attach gives a machine the volume a mount names: by id (mount.Volume), or
// by name — the volume of that name already attached to the machine (a
// machine with a volume is pinned to it), else a free one. The first
// machine to mount a name that has no volume at all gets a new one
// (size_gb of the mount, else 1 GB), as a first deploy does on Fly. A
// volume held by another existing machine is never taken: that is an error
// wrapping ErrConflict, with one exception that is what a deploy does: a
// machine of a newer release of the same process group takes the volume
// of a stopped machine of an older release. A volume is released when its
// machine is destroyed (or by Detach).
func (m *Manager) Attach(ctx context.Context, r *supervisor.Record, mt types.MachineMount) (*types.Volume, error) {
	app, machineID := r.App, r.ID
	if err := validMountPath(mt.Path); err != nil {
		return nil, err
	}
	var cands []*types.Volume
	switch {
	case mt.Volume != "":
		v, err := m.Get(ctx, app, mt.Volume)
		if err != nil {
			return nil, err
		}
		cands = []*types.Volume{v}
	case mt.Name != "":
		all, err := m.List(ctx, app)
		if err != nil {
			return nil, err
		}
		for _, v := range all {
			if v.Name == mt.Name {
				cands = append(cands, v)
			}
		}
		if len(cands) == 0 {
			size := mt.SizeGB
			if size <= 0 {
				size = 1
			}
			req := types.CreateVolumeRequest{Name: mt.Name, SizeGB: size}
			if mt.SnapshotRetention > 0 {
				req.SnapshotRetention = &mt.SnapshotRetention
			}
			v, err := m.Create(ctx, app, req)
			if err != nil {
				return nil, fmt.Errorf("machine %s: create volume %s for its mount: %w", machineID, mt.Name, err)
			}
			m.log.Info("created a volume for a mount that had none", "app", app, "machine", machineID, "volume", v.ID, "name", v.Name)
			cands = []*types.Volume{v}
		}
	default:
		return nil, fmt.Errorf("mount at %s names no volume: set volume (an id) or name: %w", mt.Path, ErrInvalid)
	}
	// Pinned first, then free ones, oldest first.
	for _, v := range cands {
		if v.AttachedMachineID != nil && *v.AttachedMachineID == machineID {
			return m.attachOne(ctx, r, v.ID, mt)
		}
	}
	var held []string
	for _, v := range cands {
		out, err := m.attachOne(ctx, r, v.ID, mt)
		if err == nil {
			return out, nil
		}
		held = append(held, err.Error())
	}
	return nil, fmt.Errorf("machine %s: no free volume for mount %s: %s; a volume attaches to one machine at a time: create another with `hangar volumes create %s -a %s`, or destroy the machine that holds it: %w",
		machineID, mt.Path, strings.Join(held, "; "), firstNonEmpty(mt.Name, "NAME"), app, ErrConflict)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (m *Manager) attachOne(ctx context.Context, r *supervisor.Record, id string, mt types.MachineMount) (*types.Volume, error) {
	app, machineID := r.App, r.ID
	unlock := m.lock(id)
	defer unlock()
	v, err := m.update(ctx, app, id, func(v *types.Volume) error {
		if v.AttachedMachineID != nil && *v.AttachedMachineID != "" && *v.AttachedMachineID != machineID {
			h, err := m.holder(ctx, v)
			if err != nil {
				return err
			}
			if h != nil && !replaces(r, h) {
				return fmt.Errorf("volume %s (%s) is attached to machine %s (%s): %w", v.ID, v.Name, h.ID, h.State, ErrConflict)
			}
		}
		v.AttachedMachineID, v.AttachedAllocID = &machineID, &machineID
		v.AttachedMountPoint = mt.Path
		v.AutoExtend = nil
		if mt.ExtendThresholdPercent > 0 {
			v.AutoExtend = &types.VolumeExtend{ThresholdPercent: mt.ExtendThresholdPercent, AddGB: mt.AddSizeGB, LimitGB: mt.SizeGBLimit}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if v.ResizePending {
		// The machine that held it has stopped: grow the filesystem now.
		if err := m.offlineResize(ctx, id); err != nil {
			return nil, fmt.Errorf("volume %s: grow the filesystem: %w", id, err)
		}
		if v, err = m.update(ctx, app, id, func(v *types.Volume) error { v.ResizePending = false; return nil }); err != nil {
			return nil, err
		}
		m.log.Info("volume filesystem grown before its machine starts", "volume", id)
	}
	if err := m.mount(ctx, id); err != nil {
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	return v, nil
}

// Detach releases the volumes attached to a machine (for a deploy that
// replaces the machine by a new one). The machine must not be running.
func (m *Manager) Detach(ctx context.Context, app, machineID string) error {
	vols, err := m.List(ctx, app)
	if err != nil {
		return err
	}
	if m.Machines != nil {
		if r, err := m.Machines.Get(ctx, app, machineID); err == nil && (r.State == types.StateStarted || r.State == types.StateStarting || r.State == types.StateSuspended) {
			return fmt.Errorf("machine %s is %s; stop it before releasing its volumes: %w", machineID, r.State, ErrConflict)
		}
	}
	for _, v := range vols {
		if v.AttachedMachineID == nil || *v.AttachedMachineID != machineID {
			continue
		}
		unlock := m.lock(v.ID)
		_, err := m.update(ctx, app, v.ID, func(v *types.Volume) error {
			if v.AttachedMachineID != nil && *v.AttachedMachineID == machineID {
				v.AttachedMachineID, v.AttachedAllocID, v.AttachedMountPoint = nil, nil, ""
			}
			return nil
		})
		unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// replaces reports whether machine r replaces machine h in a deploy: h is
// stopped, both are of the same process group, and r is of a newer release.
func replaces(r, h *supervisor.Record) bool {
	if h.State != types.StateStopped || r.Config == nil || h.Config == nil {
		return false
	}
	group := func(c *types.MachineConfig) string {
		if g := c.Metadata[types.MetaProcessGroup]; g != "" {
			return g
		}
		return types.DefaultProcessGroup
	}
	if group(r.Config) != group(h.Config) {
		return false
	}
	rv, err1 := strconv.Atoi(r.Config.Metadata[types.MetaRelease])
	hv, err2 := strconv.Atoi(h.Config.Metadata[types.MetaRelease])
	return err1 == nil && err2 == nil && rv > hv
}

// Provision makes sure the app has at least free volumes named mt.Name
// that no existing machine holds, for the new machines of a scale count
// (what flyctl does when it scales a group with [[mounts]]). The missing
// ones are created the size of the largest existing volume of that name
// (else the mount's size_gb, else 1 GB), with the mount's
// snapshot_retention. It returns the IDs it created, also those created
// before an error, so that the caller can remove them again. A mount that
// names a volume by ID needs nothing.
//
// Attach does not do this on its own: a deploy's new machine that finds
// its volume still held must fail rather than start on an empty one.
func (m *Manager) Provision(ctx context.Context, app string, mt types.MachineMount, free int) ([]string, error) {
	if mt.Volume != "" || mt.Name == "" || free <= 0 {
		return nil, nil
	}
	all, err := m.List(ctx, app) // List shows volumes whose machine is gone as free
	if err != nil {
		return nil, err
	}
	have, sizeMB := 0, 0
	for _, v := range all {
		if v.Name != mt.Name {
			continue
		}
		sizeMB = max(sizeMB, v.SizeMB)
		if v.AttachedMachineID == nil || *v.AttachedMachineID == "" {
			have++
		}
	}
	if sizeMB == 0 {
		sizeMB = max(mt.SizeGB, 1) * 1024
	}
	req := types.CreateVolumeRequest{Name: mt.Name, SizeMB: sizeMB}
	if mt.SnapshotRetention > 0 {
		req.SnapshotRetention = &mt.SnapshotRetention
	}
	var created []string
	for ; have < free; have++ {
		v, err := m.Create(ctx, app, req)
		if err != nil {
			return created, fmt.Errorf("create volume %s (%d MB) for a new machine: %w", mt.Name, sizeMB, err)
		}
		m.log.Info("created a volume for a new machine of a scale", "app", app, "volume", v.ID, "name", v.Name, "size_mb", sizeMB)
		created = append(created, v.ID)
	}
	return created, nil
}
