package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// ScaleRequest changes an app's machine count or size.
type ScaleRequest struct {
	Group    string // "" = every group (size) / the app's only group (count)
	Count    *int
	VMSize   string
	MemoryMB int
	User     string
}

// Scale applies a scale change as a release of the current config, with
// the same gating as a deploy.
func (d *Deployer) Scale(ctx context.Context, app string, req ScaleRequest, progress func(Event)) (*Release, error) {
	rel, err := d.current(ctx, app)
	if err != nil {
		return nil, err
	}
	var guest *types.MachineGuest
	if req.VMSize != "" {
		g, err := types.GuestForSize(req.VMSize)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		guest = &g
	}
	counts := map[string]int{}
	for g, n := range rel.Counts {
		counts[g] = n
	}
	if req.Count != nil {
		if *req.Count < 0 {
			return nil, fmt.Errorf("%w: count must not be negative", ErrInvalid)
		}
		group := req.Group
		if group == "" {
			if len(rel.Machines) != 1 {
				return nil, fmt.Errorf("%w: app %s has several process groups; pass --process-group", ErrInvalid, app)
			}
			for g := range rel.Machines {
				group = g
			}
		}
		if _, ok := rel.Machines[group]; !ok {
			return nil, fmt.Errorf("%w: app %s has no process group %q", ErrInvalid, app, group)
		}
		counts[group] = *req.Count
	}
	desc := ""
	scaleOnly := req.Count != nil && guest == nil && req.MemoryMB <= 0
	var groups []string
	if !scaleOnly {
		desc = "scale"
		if req.Group != "" {
			// Only the named group changes; the others keep their machines.
			if _, ok := rel.Machines[req.Group]; !ok {
				return nil, fmt.Errorf("%w: app %s has no process group %q", ErrInvalid, app, req.Group)
			}
			groups = []string{req.Group}
			desc = "scale " + req.Group
		}
	}
	// A scale count's description (from the machines there are to the
	// count) is made by Deploy, which sees the machines.
	return d.redeploy(ctx, rel, Request{
		User: req.User, Counts: counts, Description: desc, Strategy: Rolling, ScaleOnly: scaleOnly,
		Groups: groups, NoReleaseCommand: true,
		// New machines boot with the secrets the running ones have, even
		// if newer secrets were staged since.
		SecretsVersion: pinnedSecrets(scaleOnly, rel),
		Override: func(group string, mc *types.MachineConfig) {
			if req.Group != "" && group != req.Group {
				return
			}
			if guest != nil {
				g := *guest
				mc.Guest = &g
			}
			if req.MemoryMB > 0 {
				if mc.Guest == nil {
					g := types.DefaultGuest
					mc.Guest = &g
				}
				mc.Guest.MemoryMB = req.MemoryMB
			}
		},
	}, progress)
}

// pinnedSecrets is the secrets version a scale keeps: the release's own for
// scale count (0 = the current one, as for any deploy).
func pinnedSecrets(scaleOnly bool, rel *Release) int {
	if scaleOnly {
		return rel.SecretsVersion
	}
	return 0
}

// scale brings a process group to p.want machines that are not failed,
// without touching the ones that stay. Failed machines never count: they
// are removed first (which frees their volumes). New machines get a volume
// each for the group's [[mounts]] (see provisionVolumes), are started and
// must pass their checks; surplus ones (stopped ones first, then the
// newest) are drained, stopped and destroyed once every group has reached
// its count.
func (r *run) scale(ctx context.Context, p *plan, waitTimeout time.Duration) error {
	live, failed := splitFailed(p.old)
	if len(failed) > 0 {
		r.emit("scale", "", p.group, "removing %d failed machine(s) of %s", len(failed), p.group)
		if err := r.addRemoved(failed); err != nil {
			return err
		}
		for _, m := range failed {
			if err := r.d.Sup.Destroy(ctx, r.app, m.ID, true); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
				return fmt.Errorf("remove failed machine %s: %w; remove it with `hangar machine destroy %s --force` and scale again", m.ID, err, m.ID)
			}
		}
	}
	have := len(live)
	switch {
	case p.want > have:
		r.emit("scale", "", p.group, "adding %d machine(s) to %s (%d → %d)", p.want-have, p.group, have, p.want)
		if err := r.provisionVolumes(ctx, p, p.want-have); err != nil {
			return err
		}
		_, err := r.launch(ctx, p, "", nil, p.want-have, waitTimeout, false, false)
		return err
	case p.want < have:
		victims := surplus(live, have-p.want)
		r.emit("scale", "", p.group, "removing %d machine(s) from %s (%d → %d)", len(victims), p.group, have, p.want)
		if err := r.addRemoved(victims); err != nil {
			return err
		}
		return r.retire(ctx, p, victims)
	default:
		return nil
	}
}

// splitFailed separates the failed machines from the others.
func splitFailed(machines []*supervisor.Record) (live, failed []*supervisor.Record) {
	for _, m := range machines {
		if m.State == types.StateFailed {
			failed = append(failed, m)
		} else {
			live = append(live, m)
		}
	}
	return live, failed
}

// surplus picks the n machines a scale-down removes: those not serving
// (stopped, failed, created) first, then suspended ones, then started
// ones; the newest first within each.
func surplus(machines []*supervisor.Record, n int) []*supervisor.Record {
	rank := func(m *supervisor.Record) int {
		switch m.State {
		case types.StateStarted, types.StateStarting:
			return 2
		case types.StateSuspended, types.StateSuspending:
			return 1
		}
		return 0
	}
	sorted := append([]*supervisor.Record(nil), machines...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if ri, rj := rank(sorted[i]), rank(sorted[j]); ri != rj {
			return ri < rj
		}
		return sorted[i].CreatedAt > sorted[j].CreatedAt
	})
	if n > len(sorted) {
		n = len(sorted)
	}
	return sorted[:n]
}

// finishScale destroys the machines a scale-down took away.
func (r *run) finishScale(ctx context.Context) {
	r.mu.Lock()
	removed := append([]string(nil), r.rec.Removed...)
	r.mu.Unlock()
	for _, id := range removed {
		r.emit("scale", id, "", "destroying machine %s", id)
		if err := r.d.Sup.Destroy(ctx, r.app, id, true); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
			r.d.Log.Warn("scale: destroy machine", "machine", id, "err", err)
		}
	}
}

// addRemoved records the machines a scale-down takes away.
func (r *run) addRemoved(victims []*supervisor.Record) error {
	return r.change(context.Background(), func(rec *runRecord) {
		for _, v := range victims {
			rec.Removed = append(rec.Removed, v.ID)
		}
	})
}

// scaleDescription says what a scale count does, from the machines each
// group has (failed ones apart) to what it will have: "scale count app
// 5→3", "scale count app 1→2 (1 failed machine removed)".
func scaleDescription(plans []*plan) string {
	var parts []string
	failedN := 0
	for _, p := range plans {
		live, failed := splitFailed(p.old)
		failedN += len(failed)
		if have := len(live); have != p.want {
			parts = append(parts, fmt.Sprintf("%s %d→%d", p.group, have, p.want))
		}
	}
	desc := "scale count " + strings.Join(parts, ", ")
	if len(parts) == 0 {
		desc = "scale count (no change)"
	}
	switch failedN {
	case 0:
	case 1:
		desc += " (1 failed machine removed)"
	default:
		desc += fmt.Sprintf(" (%d failed machines removed)", failedN)
	}
	return desc
}
