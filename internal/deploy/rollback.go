package deploy

import (
	"context"
	"fmt"

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
func (d *Deployer) Restart(ctx context.Context, app, user string, progress func(Event)) (*Release, error) {
	rel, err := d.current(ctx, app)
	if err != nil {
		return nil, err
	}
	return d.redeploy(ctx, rel, Request{Description: "restart with current secrets", User: user}, progress)
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
