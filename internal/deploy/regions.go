package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// ClusterMachines drives machines anywhere in an installation of several
// hosts: a create placed by region (on the region's hosts), a wait and a
// destroy through the machine's host. The API implements it over its own
// routes (which forward to the machines' hosts).
type ClusterMachines interface {
	Create(ctx context.Context, app string, req types.CreateMachineRequest) (types.Machine, error)
	WaitStarted(ctx context.Context, app, id string) error
	Destroy(ctx context.Context, app, id string) error
}

// ScaleRegions brings a process group of app (group "": its only one) to
// count machines in each of regions, on the hosts of each region, through
// ms (`hangar scale count N --region fra,iad`). A region short of machines
// gets new ones like the group's machines (placed, started, waited for);
// one over has its surplus destroyed, stopped ones first, then the newest.
// The other regions' machines are left alone; new machines are waited
// for until their checks pass (d.Sup.WaitHealthy, through their hosts).
// The machines run the release their group runs; the change is recorded
// as a release of strategy scale with the group's new count, so that the
// next deploy keeps it. Groups with [[mounts]] are refused: their volumes
// would have to be made on the new machines' hosts first, which is not
// built yet.
func (d *Deployer) ScaleRegions(ctx context.Context, app, group string, count int, regions []string, ms ClusterMachines, progress func(Event)) (*Release, error) {
	emit := func(step, machine, format string, args ...any) {
		if progress != nil {
			progress(Event{Time: time.Now(), Step: step, MachineID: machine, Group: group, Message: fmt.Sprintf(format, args...)})
		}
	}
	if count < 0 {
		return nil, fmt.Errorf("%w: count must not be negative", ErrInvalid)
	}
	rel, err := d.current(ctx, app)
	if err != nil {
		return nil, err
	}
	if group == "" {
		if len(rel.Machines) != 1 {
			return nil, fmt.Errorf("%w: app %s has several process groups; pass --process-group", ErrInvalid, app)
		}
		for g := range rel.Machines {
			group = g
		}
	}
	relCfg, ok := rel.Machines[group]
	if !ok {
		return nil, fmt.Errorf("%w: app %s has no process group %q", ErrInvalid, app, group)
	}
	if len(relCfg.Mounts) > 0 {
		return nil, fmt.Errorf("%w: process group %s mounts volumes; scaling it across hosts and regions is not built yet: scale it on its host with `hangar scale count N` and no --region", ErrInvalid, group)
	}
	all, err := d.Sup.List(ctx, app)
	if err != nil {
		return nil, err
	}
	var ofGroup []types.Machine
	for _, m := range all {
		if m.Config != nil && m.Config.Metadata[types.MetaProcessGroup] == group &&
			m.State != types.StateDestroyed && m.State != types.StateDestroying && m.State != types.StateFailed {
			ofGroup = append(ofGroup, m.Machine)
		}
	}
	// New machines are like the group's newest (its release, its secrets
	// version), else the release's config.
	template := relCfg
	if n := len(ofGroup); n > 0 {
		template = ofGroup[n-1].Config
	}
	for _, region := range regions {
		var here []types.Machine
		for _, m := range ofGroup {
			if m.Region == region {
				here = append(here, m)
			}
		}
		switch {
		case len(here) < count:
			emit("scale", "", "adding %d machine(s) of %s in %s (%d → %d)", count-len(here), group, region, len(here), count)
			for i := len(here); i < count; i++ {
				m, err := ms.Create(ctx, app, types.CreateMachineRequest{Region: region, Config: template})
				if err != nil {
					return rel, fmt.Errorf("scale %s in %s: %w", group, region, err)
				}
				if err := ms.WaitStarted(ctx, app, m.ID); err != nil {
					return rel, fmt.Errorf("scale %s in %s: machine %s did not start: %w", group, region, m.ID, err)
				}
				if err := d.Sup.WaitHealthy(ctx, app, m.ID, 2*time.Minute); err != nil {
					return rel, fmt.Errorf("scale %s in %s: machine %s is not healthy: %w", group, region, m.ID, err)
				}
				emit("scale", m.ID, "machine %s started in %s on host %s", m.ID, region, m.HostID)
			}
		case len(here) > count:
			emit("scale", "", "removing %d machine(s) of %s in %s (%d → %d)", len(here)-count, group, region, len(here), count)
			// Stopped ones first, then the newest.
			sort.SliceStable(here, func(i, j int) bool {
				si, sj := here[i].State == types.StateStarted, here[j].State == types.StateStarted
				if si != sj {
					return !si
				}
				return here[i].CreatedAt > here[j].CreatedAt
			})
			for _, m := range here[:len(here)-count] {
				if err := ms.Destroy(ctx, app, m.ID); err != nil {
					return rel, fmt.Errorf("scale %s in %s: destroy machine %s: %w", group, region, m.ID, err)
				}
				emit("scale", m.ID, "machine %s destroyed in %s", m.ID, region)
			}
		default:
			emit("scale", "", "%s has %d machine(s) of %s already", region, count, group)
		}
	}
	return d.recordRegionalScale(ctx, rel, group, count, regions)
}

// recordRegionalScale records a completed release of strategy scale: rel
// (the current release) with group's count as its machines now number.
func (d *Deployer) recordRegionalScale(ctx context.Context, rel *Release, group string, count int, regions []string) (*Release, error) {
	all, err := d.Sup.List(ctx, rel.App)
	if err != nil {
		return rel, err
	}
	n := 0
	for _, m := range all {
		if m.Config != nil && m.Config.Metadata[types.MetaProcessGroup] == group &&
			m.State != types.StateDestroyed && m.State != types.StateDestroying && m.State != types.StateFailed {
			n++
		}
	}
	next := *rel
	next.Counts = map[string]int{}
	for g, c := range rel.Counts {
		next.Counts[g] = c
	}
	next.Counts[group] = n
	now := time.Now().UTC()
	next.Strategy, next.Status, next.Reason, next.RollbackOf = StrategyScale, StatusComplete, "", 0
	next.Description = fmt.Sprintf("scale count %s %d --region %s (%d in all)", group, count, strings.Join(regions, ","), n)
	next.CreatedAt, next.FinishedAt = now, &now
	out, err := d.newRelease(ctx, &next)
	if err != nil {
		return rel, fmt.Errorf("scale %s: the machines are scaled, but the release was not recorded: %w", group, err)
	}
	return out, nil
}
