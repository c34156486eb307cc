package api

// Deploys across hosts: the deployer's Machines for an installation of
// several hosts. Reads and leases are answered from the shared state here;
// a machine of this host is driven by the local supervisor, one of
// another host through that host's API (its owner, marked forwarded so it
// is served there), as this host (its own admin token, in the shared
// state, is valid on every host); a create is placed first (hosts.Place,
// in the region asked) and made by the host it is placed on.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// clusterMachines is deploy.Machines across the hosts of an installation.
type clusterMachines struct {
	*supervisor.Supervisor // reads, leases, logs: the shared state and this host
	s                      *Server
	auth                   string // "Bearer " + this host's token
}

var _ deploy.Machines = (*clusterMachines)(nil)

// ClusterMachines returns the machines a deploy drives: on one host (or
// without a registry) the supervisor itself; in an installation of
// several hosts, each machine through its host. token is this host's
// admin token, for its calls to the other hosts.
func (s *Server) ClusterMachines(token string) deploy.Machines {
	if !s.clustered() {
		return s.sup
	}
	return &clusterMachines{Supervisor: s.sup, s: s, auth: "Bearer " + token}
}

// owner is the host that runs machine id, nil when it is this one (or the
// machine does not exist: the local supervisor answers not found).
func (c *clusterMachines) owner(ctx context.Context, app, id string) (*types.Host, *supervisor.Record, error) {
	rec, err := c.Supervisor.Get(ctx, app, id)
	if err != nil || c.Supervisor.Mine(rec) || rec.HostID == "" {
		return nil, rec, nil
	}
	hs, err := c.s.hosts.States(ctx)
	if err != nil {
		return nil, nil, err
	}
	h, ok := hs[rec.HostID]
	if !ok || h.State == types.HostUnreachable {
		if !ok {
			h = types.Host{ID: rec.HostID}
		}
		return nil, nil, unreachable(&h, id, nil)
	}
	return &h, rec, nil
}

// call sends one request to host h's API as this host, marked forwarded
// (h serves it), with the lease nonce the machine holds (the deploy's own
// lease: the local supervisor's operations are not guarded either).
func (c *clusterMachines) call(ctx context.Context, h *types.Host, rec *supervisor.Record, method, path string, body, out any) error {
	hdr := http.Header{"Authorization": {c.auth}}
	if rec != nil && rec.LeaseNonce != "" {
		hdr.Set(NonceHeader, rec.LeaseNonce)
	}
	return c.s.callHost(ctx, hdr, *h, method, path, body, out, true)
}

func machinePath(app, id, rest string) string {
	return "/v1/apps/" + url.PathEscape(app) + "/machines/" + url.PathEscape(id) + rest
}

// Create places a machine for a region (opt.Region) on a host of it and
// has that host make it; without a region it is made here (a release
// command's machine, whose output the deploy follows in its log file).
func (c *clusterMachines) Create(ctx context.Context, app string, cfg *types.MachineConfig, opt supervisor.CreateOptions) (*supervisor.Record, error) {
	if opt.Region == "" {
		return c.Supervisor.Create(ctx, app, cfg, opt)
	}
	h, here, err := c.s.placePreferring(ctx, app, opt.Region, opt.PreferHost, cfg)
	if err != nil {
		return nil, err
	}
	if here {
		return c.Supervisor.Create(ctx, app, cfg, opt)
	}
	var m types.Machine
	req := types.CreateMachineRequest{Name: opt.Name, Region: opt.Region, Config: cfg, SkipLaunch: opt.SkipLaunch,
		SkipServiceRegistration: opt.Cordoned, LeaseTTL: int(opt.LeaseTTL / time.Second)}
	if err := c.call(ctx, &h, nil, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/machines", req, &m); err != nil {
		return nil, fmt.Errorf("create a machine of %s on host %s (region %s): %w", app, h.ID, h.Region, err)
	}
	return c.Supervisor.Get(ctx, app, m.ID)
}

func (c *clusterMachines) Start(ctx context.Context, app, id string) (*supervisor.Record, error) {
	h, rec, err := c.owner(ctx, app, id)
	if err != nil || h == nil {
		if err != nil {
			return nil, err
		}
		return c.Supervisor.Start(ctx, app, id)
	}
	if err := c.call(ctx, h, rec, http.MethodPost, machinePath(app, id, "/start"), nil, nil); err != nil {
		return nil, err
	}
	return c.Supervisor.Get(ctx, app, id)
}

func (c *clusterMachines) Stop(ctx context.Context, app, id, signal string, timeout time.Duration) (*supervisor.Record, error) {
	h, rec, err := c.owner(ctx, app, id)
	if err != nil || h == nil {
		if err != nil {
			return nil, err
		}
		return c.Supervisor.Stop(ctx, app, id, signal, timeout)
	}
	req := types.StopRequest{Signal: signal}
	if timeout > 0 {
		req.Timeout = &types.Duration{Duration: timeout}
	}
	if err := c.call(ctx, h, rec, http.MethodPost, machinePath(app, id, "/stop"), req, nil); err != nil {
		return nil, err
	}
	return c.Supervisor.Get(ctx, app, id)
}

func (c *clusterMachines) Update(ctx context.Context, app, id string, cfg *types.MachineConfig, skipLaunch bool) (*supervisor.Record, error) {
	h, rec, err := c.owner(ctx, app, id)
	if err != nil || h == nil {
		if err != nil {
			return nil, err
		}
		return c.Supervisor.Update(ctx, app, id, cfg, skipLaunch)
	}
	req := types.CreateMachineRequest{Config: cfg, SkipLaunch: skipLaunch}
	if err := c.call(ctx, h, rec, http.MethodPost, machinePath(app, id, ""), req, nil); err != nil {
		return nil, err
	}
	return c.Supervisor.Get(ctx, app, id)
}

func (c *clusterMachines) Destroy(ctx context.Context, app, id string, force bool) error {
	h, rec, err := c.owner(ctx, app, id)
	if err != nil || h == nil {
		if err != nil {
			return err
		}
		return c.Supervisor.Destroy(ctx, app, id, force)
	}
	err = c.call(ctx, h, rec, http.MethodDelete, machinePath(app, id, fmt.Sprintf("?force=%t", force)), nil, nil)
	if errors.Is(err, types.ErrNotFound) {
		return fmt.Errorf("machine %s: %w", id, supervisor.ErrNotFound)
	}
	return err
}

func (c *clusterMachines) SetCordoned(ctx context.Context, app, id string, cordoned bool) (*supervisor.Record, error) {
	h, rec, err := c.owner(ctx, app, id)
	if err != nil || h == nil {
		if err != nil {
			return nil, err
		}
		return c.Supervisor.SetCordoned(ctx, app, id, cordoned)
	}
	op := "/uncordon"
	if cordoned {
		op = "/cordon"
	}
	if err := c.call(ctx, h, rec, http.MethodPost, machinePath(app, id, op), nil, nil); err != nil {
		return nil, err
	}
	return c.Supervisor.Get(ctx, app, id)
}

// Get adds, for a machine of another host, its live checks as its host
// reports them.
func (c *clusterMachines) Get(ctx context.Context, app, id string) (*supervisor.Record, error) {
	h, rec, err := c.owner(ctx, app, id)
	if err != nil || h == nil {
		if err != nil {
			return nil, err
		}
		return c.Supervisor.Get(ctx, app, id)
	}
	var m types.Machine
	if err := c.call(ctx, h, nil, http.MethodGet, machinePath(app, id, ""), nil, &m); err != nil {
		return nil, err
	}
	rec.Machine = m
	return rec, nil
}

// WaitHealthy waits until the machine is started and every check that
// gates traffic passes, as its host sees them.
func (c *clusterMachines) WaitHealthy(ctx context.Context, app, id string, timeout time.Duration) error {
	h, _, err := c.owner(ctx, app, id)
	if err != nil || h == nil {
		if err != nil {
			return err
		}
		return c.Supervisor.WaitHealthy(ctx, app, id, timeout)
	}
	deadline := time.Now().Add(timeout)
	for {
		var m types.Machine
		err := c.call(ctx, h, nil, http.MethodGet, machinePath(app, id, ""), nil, &m)
		if err == nil && supervisor.Healthy(&m) {
			return nil
		}
		if err == nil && (m.State == types.StateFailed || m.State == types.StateDestroyed) {
			return fmt.Errorf("machine %s on host %s is %s: %w", id, h.ID, m.State, supervisor.ErrConflict)
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("machine %s on host %s not healthy within %v: %w", id, h.ID, timeout, err)
			}
			return fmt.Errorf("machine %s on host %s not healthy within %v: state %s, checks %+v: %w", id, h.ID, timeout, m.State, m.Checks, supervisor.ErrTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
