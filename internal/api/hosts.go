package api

// Hosts: GET /v1/hosts (the installation's hosts), the regions they make
// (GET /v1/platform/regions), and the placement of a new machine.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"

	"github.com/hangar-dev/hangar/internal/hosts"
	"github.com/hangar-dev/hangar/internal/types"
)

// listHosts answers every host with its region, state and usage.
func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) error {
	if s.hosts == nil {
		return notConfigured("hosts")
	}
	hs, err := s.hosts.List(r.Context())
	if err != nil {
		return err
	}
	if hs == nil {
		hs = []types.Host{}
	}
	writeJSON(w, http.StatusOK, hs)
	return nil
}

// regions answers fly-go's GetRegions with this installation's regions and
// the hosts in each (unreachable ones too: a region is there while its
// hosts are registered).
func (s *Server) regions(w http.ResponseWriter, r *http.Request) error {
	out := types.Regions{Nearest: s.region}
	if s.hosts == nil {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("this host's name: %w", err)
		}
		out.Regions = []types.Region{{Code: s.region, Name: s.region, Hosts: []string{host}}}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	hs, err := s.hosts.List(r.Context())
	if err != nil {
		return err
	}
	byRegion := map[string]*types.Region{}
	for _, h := range hs {
		reg := byRegion[h.Region]
		if reg == nil {
			reg = &types.Region{Code: h.Region, Name: h.Region, Hosts: []string{}}
			byRegion[h.Region] = reg
		}
		reg.Hosts = append(reg.Hosts, h.ID)
		if h.State == types.HostReady {
			reg.Capacity += h.FreeMemoryMB()
		}
	}
	for _, reg := range byRegion {
		out.Regions = append(out.Regions, *reg)
	}
	sort.Slice(out.Regions, func(i, j int) bool { return out.Regions[i].Code < out.Regions[j].Code })
	writeJSON(w, http.StatusOK, out)
	return nil
}

// place picks the host for a new machine of app in region ("" = this
// daemon's) for cfg (nil: a volume). With one host (or no registry) it is this one, as it
// always was: a single host places every machine on itself, whatever
// region is asked.
func (s *Server) place(ctx context.Context, app, region string, cfg *types.MachineConfig) (types.Host, bool, error) {
	return s.placePreferring(ctx, app, region, "", cfg)
}

// placePreferring is place with a host preferred when the machine fits
// on it (hosts.PlaceRequest.Prefer).
func (s *Server) placePreferring(ctx context.Context, app, region, prefer string, cfg *types.MachineConfig) (types.Host, bool, error) {
	if !s.clustered() {
		return types.Host{}, true, nil
	}
	// The cheap read first: one host (the create path of a single host
	// lists no machines for placement).
	if states, err := s.hosts.States(ctx); err != nil {
		return types.Host{}, false, err
	} else if len(states) <= 1 {
		return types.Host{}, true, nil
	}
	all, placed, err := s.hosts.Snapshot(ctx)
	if err != nil {
		return types.Host{}, false, err
	}
	if region == "" {
		region = s.region
	}
	req := hosts.PlaceRequest{App: app, Region: region, Prefer: prefer}
	if cfg != nil { // a volume (nil) takes no memory
		req.MemoryMB = hosts.GuestMemoryMB(cfg)
	}
	if req.VolumeHost, err = s.volumeHost(ctx, app, cfg); err != nil {
		return types.Host{}, false, err
	}
	h, err := hosts.Place(req, all, placed)
	if err != nil {
		return types.Host{}, false, err
	}
	return h, h.ID == s.sup.HostID(), nil
}

// manyHosts reports an installation of several hosts.
func (s *Server) manyHosts(ctx context.Context) (bool, error) {
	if !s.clustered() {
		return false, nil
	}
	states, err := s.hosts.States(ctx)
	return len(states) > 1, err
}

// volumeHost is the host of the volume cfg mounts by id ("" when none, or
// when the volume was made before volumes had hosts).
func (s *Server) volumeHost(ctx context.Context, app string, cfg *types.MachineConfig) (string, error) {
	if s.volumes == nil || cfg == nil {
		return "", nil
	}
	for _, m := range cfg.Mounts {
		if m.Volume == "" {
			continue
		}
		v, err := s.volumes.Get(ctx, app, m.Volume)
		if err != nil {
			return "", err
		}
		return v.HostID, nil
	}
	return "", nil
}

// drainHost moves the machines off a host (hosts.Registry.Drain): each is
// created again through this API (placed on another host of its region),
// waited for and destroyed through its host, as the caller.
func (s *Server) drainHost(w http.ResponseWriter, r *http.Request) error {
	if s.hosts == nil {
		return notConfigured("hosts")
	}
	force, err := boolParam(r.URL.Query(), "force")
	if err != nil {
		return err
	}
	res, err := s.hosts.Drain(r.Context(), r.PathValue("id"), force, &apiMachines{s: s, r: r})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// undrainHost makes a draining host take new machines again.
func (s *Server) undrainHost(w http.ResponseWriter, r *http.Request) error {
	if s.hosts == nil {
		return notConfigured("hosts")
	}
	if err := s.hosts.SetDraining(r.Context(), r.PathValue("id"), false); err != nil {
		return err
	}
	h, err := s.hosts.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// apiMachines drives machines through this host's own API as the caller
// of r, so that creates are placed and operations reach the machines'
// hosts.
type apiMachines struct {
	s *Server
	r *http.Request
}

func (m *apiMachines) self() types.Host { return m.s.hosts.Self }

func (m *apiMachines) Create(ctx context.Context, app string, req types.CreateMachineRequest) (types.Machine, error) {
	var out types.Machine
	err := m.s.callWith(ctx, m.r, m.self(), http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/machines", req, &out, false)
	return out, err
}

func (m *apiMachines) WaitStarted(ctx context.Context, app, id string) error {
	return m.s.callWith(ctx, m.r, m.self(), http.MethodGet, "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(id)+"/wait?state=started&timeout=60", nil, nil, false)
}

func (m *apiMachines) Destroy(ctx context.Context, app, id string) error {
	return m.s.callWith(ctx, m.r, m.self(), http.MethodDelete, "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(id)+"?force=true", nil, nil, false)
}

// HostRemover forgets a host for good (hosts.Remover).
type HostRemover interface {
	Remove(ctx context.Context, id string, force bool) (types.HostRemoval, error)
}

// removeHost forgets an unreachable host: its record, its 6PN subnet, its
// cluster membership, the stale records of machines failover replaced,
// and with force the machines and volumes that lived only there.
func (s *Server) removeHost(w http.ResponseWriter, r *http.Request) error {
	if s.hosts == nil || s.remover == nil {
		return notConfigured("hosts")
	}
	force, err := boolParam(r.URL.Query(), "force")
	if err != nil {
		return err
	}
	res, err := s.remover.Remove(r.Context(), r.PathValue("id"), force)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
