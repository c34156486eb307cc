package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// current returns the newest complete release of an app.
func (d *Deployer) current(ctx context.Context, app string) (*Release, error) {
	rels, err := Releases(ctx, d.Store, app)
	if err != nil {
		return nil, err
	}
	for _, r := range rels {
		if r.Status == StatusComplete {
			return r, nil
		}
	}
	return nil, fmt.Errorf("app %s has no completed release; deploy it first with `hangar deploy`: %w", app, supervisor.ErrConflict)
}

// redeploy deploys rel's config and image again with req's adjustments.
func (d *Deployer) redeploy(ctx context.Context, rel *Release, req Request, progress func(Event)) (*Release, error) {
	req.App = rel.App
	req.Config = []byte(rel.Config)
	req.ConfigFile = rel.ConfigFile
	req.LocalFiles = rel.LocalFiles
	if req.Image == "" {
		req.Image = rel.Image
		// Pin the digest so a re-tagged image cannot change what runs.
		if rel.ImageDigest != "" {
			if _, err := d.Images.Get(ctx, rel.ImageDigest); err == nil {
				req.Image = rel.ImageDigest
			}
		}
	}
	if req.Counts == nil {
		req.Counts = rel.Counts
	}
	prevOverride := req.Override
	req.Override = func(group string, mc *types.MachineConfig) {
		// Keep what scale commands set on the release being redeployed.
		if old := rel.Machines[group]; old != nil && old.Guest != nil {
			g := *old.Guest
			mc.Guest = &g
		}
		if prevOverride != nil {
			prevOverride(group, mc)
		}
	}
	return d.Deploy(ctx, req, progress)
}

// Restart rolls the app's current release out again, picking up the
// current secrets (secrets set / unset / deploy).
func (d *Deployer) Restart(ctx context.Context, app string, progress func(Event)) (*Release, error) {
	rel, err := d.current(ctx, app)
	if err != nil {
		return nil, err
	}
	return d.redeploy(ctx, rel, Request{Description: "restart with current secrets"}, progress)
}

// Rollback redeploys release version (0 = the one before the current) with
// its image, its config and its secrets version. The machine counts stay
// as they are now: scaling is not part of what a rollback undoes.
func (d *Deployer) Rollback(ctx context.Context, app string, version int, user string, progress func(Event)) (*Release, error) {
	cur, err := d.current(ctx, app)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		rels, err := Releases(ctx, d.Store, app)
		if err != nil {
			return nil, err
		}
		// Releases that only scaled run what the release before them ran:
		// the one before the current is the second release that deployed
		// something, counting the current's own base.
		seen := 0
		for _, r := range rels {
			if r.Status != StatusComplete || r.Strategy == StrategyScale || r.Version > cur.Version {
				continue
			}
			if seen++; seen == 2 {
				version = r.Version
				break
			}
		}
		if version == 0 {
			return nil, fmt.Errorf("app %s has no earlier completed release to roll back to: %w", app, supervisor.ErrConflict)
		}
	}
	rel, err := GetRelease(ctx, d.Store, app, version)
	if err != nil {
		return nil, err
	}
	if rel.Status != StatusComplete {
		return nil, fmt.Errorf("release v%d of %s is %s, not complete; pick a completed release: %w", version, app, rel.Status, supervisor.ErrConflict)
	}
	sv := rel.SecretsVersion
	return d.redeploy(ctx, rel, Request{
		User: user, SecretsVersion: sv, RollbackOf: version, Counts: cur.Counts,
		Description: fmt.Sprintf("rollback to v%d", version),
	}, progress)
}

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
	desc := "scale"
	scaleOnly := req.Count != nil && guest == nil && req.MemoryMB <= 0
	if scaleOnly {
		var parts []string
		for _, g := range slices.Sorted(maps.Keys(counts)) {
			if counts[g] != rel.Counts[g] {
				parts = append(parts, fmt.Sprintf("%s %d→%d", g, rel.Counts[g], counts[g]))
			}
		}
		desc = "scale count " + strings.Join(parts, ", ")
		if len(parts) == 0 {
			desc = "scale count (no change)"
		}
	}
	return d.redeploy(ctx, rel, Request{
		User: req.User, Counts: counts, Description: desc, Strategy: Rolling, ScaleOnly: scaleOnly,
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

// scale brings a process group to p.want machines without touching the
// ones that stay: new machines are started and must pass their checks;
// surplus ones (stopped ones first, then the newest) are drained, stopped
// and destroyed once every group has reached its count.
func (r *run) scale(ctx context.Context, p *plan, waitTimeout time.Duration) error {
	have := len(p.old)
	switch {
	case p.want > have:
		r.emit("scale", "", p.group, "adding %d machine(s) to %s (%d → %d)", p.want-have, p.group, have, p.want)
		_, err := r.launch(ctx, p, p.want-have, waitTimeout, false, false)
		return err
	case p.want < have:
		victims := surplus(p.old, have-p.want)
		r.emit("scale", "", p.group, "removing %d machine(s) from %s (%d → %d)", len(victims), p.group, have, p.want)
		r.mu.Lock()
		for _, v := range victims {
			r.removed = append(r.removed, v.ID)
		}
		r.mu.Unlock()
		return r.retire(ctx, p, victims)
	default:
		return nil
	}
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
	removed := append([]string(nil), r.removed...)
	r.mu.Unlock()
	for _, id := range removed {
		r.emit("scale", id, "", "destroying machine %s", id)
		if err := r.d.Sup.Destroy(ctx, r.app, id, true); err != nil {
			r.d.Log.Warn("scale: destroy machine", "machine", id, "err", err)
		}
	}
}
