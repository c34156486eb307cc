package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/hangar-dev/hangar/internal/types"
)

// Volumes is what a scale needs of the host's volumes: new machines of a
// group with [[mounts]] each need a volume of their own, and a scale that
// fails takes back the ones it made. The daemon's *volume.Manager
// implements it. It is owned here so that deploy does not depend on the
// volume package (and its loop devices) and tests can stand in for it.
//
// Only a scale provisions volumes: a deploy's new machines take over the
// volumes (and data) of the machines they replace, and must never get
// empty new ones because the old ones are still held.
type Volumes interface {
	// Provision makes sure the app has at least free volumes named
	// mount.Name that no existing machine holds, creating the missing ones
	// the size of the largest existing volume of that name (else the
	// mount's size_gb, else 1 GB) with the mount's snapshot_retention. It
	// returns the IDs of the volumes it created, also those created before
	// an error. A mount naming a volume by ID needs nothing.
	Provision(ctx context.Context, app string, mount types.MachineMount, free int) (created []string, err error)
	// Destroy removes a volume no existing machine holds.
	Destroy(ctx context.Context, app, id string) (*types.Volume, error)
}

// provisionVolumes makes sure n new machines of p find a free volume for
// each of their mounts, recording the volumes it creates in the run (a
// failed scale, or the rollback of an interrupted one, destroys them).
func (r *run) provisionVolumes(ctx context.Context, p *plan, n int) error {
	if n <= 0 || r.d.Volumes == nil {
		return nil
	}
	for _, mt := range p.cfg.Mounts {
		if mt.Name == "" || mt.Volume != "" {
			continue
		}
		created, err := r.d.Volumes.Provision(ctx, r.app, mt, n)
		if len(created) > 0 {
			r.emit("scale", "", p.group, "created %d volume(s) %s for the new machines of %s", len(created), mt.Name, p.group)
			if rerr := r.change(ctx, func(rec *runRecord) { rec.Volumes = append(rec.Volumes, created...) }); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if err != nil {
			return fmt.Errorf("volumes %s for %d new machine(s) of %s: %w; check the data dir's disk (`hangar status`) and `hangar volumes list -a %s`", mt.Name, n, p.group, err, r.app)
		}
	}
	return nil
}

// destroyVolumes destroys the volumes the run created (after the machines
// it created are gone).
func (r *run) destroyVolumes(ctx context.Context) {
	if r.d.Volumes == nil {
		return
	}
	r.mu.Lock()
	vols := append([]string(nil), r.rec.Volumes...)
	r.mu.Unlock()
	for _, id := range vols {
		r.emit("rollback", "", "", "destroying volume %s created for a new machine", id)
		if _, err := r.d.Volumes.Destroy(ctx, r.app, id); err != nil && !errors.Is(err, types.ErrNotFound) {
			r.d.Log.Warn("rollback: destroy a volume the scale created", "volume", id, "err", err)
		}
	}
}
