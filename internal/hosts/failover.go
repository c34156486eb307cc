package hosts

// Failover: the machines of a host lost for longer than the grace are
// started again on the hosts that remain (docs/cluster.md, "Host
// failure"). Every host runs the loop; for each lost machine they all
// compute the same choice of host (ChooseReplacementHost over the same
// snapshot), and the chosen host makes the replacement after winning a
// conditional write on the lost machine's record (the supervisor's
// ClaimLost), so two survivors never both replace it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// DefaultFailoverGrace is how long a host stays unreachable before its
// machines are replaced elsewhere (`--host-failure-grace`).
const DefaultFailoverGrace = 60 * time.Second

// Replacer makes replacements on this host: *supervisor.Supervisor.
type Replacer interface {
	ClaimLost(ctx context.Context, app, id, lostHost string, staleClaim func(host string) bool) (*supervisor.Record, error)
	ReplaceLost(ctx context.Context, lost *supervisor.Record, region, note string) (*supervisor.Record, error)
	ReleaseClaim(ctx context.Context, app, id string) error
}

// Failover replaces the machines of lost hosts. Its fields are set before
// Run and never change.
type Failover struct {
	Registry *Registry
	Machines Replacer
	// Grace: how long a host must read unreachable (0: DefaultFailoverGrace).
	Grace time.Duration
	Log   *slog.Logger
	// Now is the clock (nil: time.Now), for tests.
	Now func() time.Time

	mu    sync.Mutex           // guards since
	since map[string]time.Time // host id → when this host first read it unreachable
}

func (f *Failover) grace() time.Duration {
	if f.Grace > 0 {
		return f.Grace
	}
	return DefaultFailoverGrace
}

func (f *Failover) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Failover) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

// Run calls Step every interval until ctx ends. An error is logged when
// it differs from the last one (a machine nobody can take would otherwise
// be logged every round).
func (f *Failover) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := f.Step(ctx)
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != last:
			last = err.Error()
			f.log().Warn("replace the machines of lost hosts", "err", err)
		case err == nil:
			last = ""
		}
	}
}

// lostRec is what failover reads of a machine record.
type lostRec struct {
	types.Machine
	App           string `json:"app"`
	FailoverClaim string `json:"failover_claim,omitempty"`
}

// Step is one round: it notes which hosts read unreachable since when,
// and replaces, on this host, the lost machines that the choice gives to
// it. It returns how many it replaced.
func (f *Failover) Step(ctx context.Context) (int, error) {
	self := f.Registry.SelfID()
	states, err := f.Registry.States(ctx)
	if err != nil {
		return 0, err
	}
	now := f.now()
	f.mu.Lock()
	if f.since == nil {
		f.since = map[string]time.Time{}
	}
	lost := map[string]bool{}
	for id, h := range states {
		if h.State != types.HostUnreachable {
			delete(f.since, id)
			continue
		}
		if _, ok := f.since[id]; !ok {
			f.since[id] = now
		}
		if now.Sub(f.since[id]) >= f.grace() {
			lost[id] = true
		}
	}
	f.mu.Unlock()
	if me, ok := states[self]; !ok || me.State == types.HostUnreachable || len(lost) == 0 {
		// A host cut off from the others replaces nothing: it may be the
		// lost one.
		return 0, nil
	}
	all, placed, err := f.Registry.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	kvs, err := f.Registry.Store.List(ctx, "machines/")
	if err != nil {
		return 0, fmt.Errorf("list machines: %w", err)
	}
	var todo []lostRec
	for _, kv := range kvs {
		var m lostRec
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return 0, fmt.Errorf("machine record %s: %w", kv.Key, err)
		}
		if Replaceable(m.Machine, m.FailoverClaim, lost) && (m.FailoverClaim == "" || states[m.FailoverClaim].State == types.HostUnreachable) {
			todo = append(todo, m)
		}
	}
	sort.Slice(todo, func(i, j int) bool {
		if todo[i].App != todo[j].App {
			return todo[i].App < todo[j].App
		}
		return todo[i].ID < todo[j].ID
	})
	staleClaim := func(host string) bool { return states[host].State == types.HostUnreachable }
	n := 0
	var errs []error
	for _, m := range todo {
		h, note, err := ChooseReplacementHost(m.App, m.Region, GuestMemoryMB(m.Config), all, placed)
		if err != nil {
			errs = append(errs, fmt.Errorf("machine %s of %s, lost with host %s: %w", m.ID, m.App, m.HostID, err))
			continue
		}
		// Every host makes the same choices in the same order.
		placed = append(placed, Placed{App: m.App, HostID: h.ID})
		for i := range all {
			if all[i].ID == h.ID {
				all[i].Used.Machines++
				all[i].Used.MemoryMB += GuestMemoryMB(m.Config)
			}
		}
		if h.ID != self {
			continue
		}
		rec, err := f.Machines.ClaimLost(ctx, m.App, m.ID, m.HostID, staleClaim)
		if errors.Is(err, supervisor.ErrNotLost) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		nm, err := f.Machines.ReplaceLost(ctx, rec, h.Region, note)
		if err != nil {
			if nm == nil { // nothing made: let a later round try again
				if rerr := f.Machines.ReleaseClaim(context.WithoutCancel(ctx), m.App, m.ID); rerr != nil {
					f.log().Warn("release the claim on a lost machine", "machine", m.ID, "err", rerr)
				}
			}
			errs = append(errs, err)
			continue
		}
		n++
		f.log().Info("replaced a machine lost with its host", "app", m.App, "machine", m.ID, "lost_host", m.HostID, "replacement", nm.ID, "region", h.Region, "note", note)
	}
	return n, errors.Join(errs...)
}

// Replaceable reports whether m (claimed by host claim, "" if none) is a
// machine failover replaces: its host is lost, it mounts no volume (those
// wait for their host), it is not an ephemeral machine (a release
// command, a console), it has no replacement yet and is not being
// destroyed (but for a survivor's claim).
func Replaceable(m types.Machine, claim string, lost map[string]bool) bool {
	if !lost[m.HostID] || m.ReplacedBy != "" || hasVolume(m.Config) {
		return false
	}
	if m.Config != nil {
		switch m.Config.Metadata[types.MetaProcessGroup] {
		case types.ConsoleGroup, appconfig.ReleaseCommandGroup:
			return false
		}
	}
	return m.State != types.StateDestroyed && (m.State != types.StateDestroying || claim != "")
}

// ChooseReplacementHost picks the host for the replacement of a lost
// machine of app in region: as Place would in that region, else (no ready
// host there, or none with the memory) in the nearest region that has
// one (NearestRegions); note says so then. It is pure.
func ChooseReplacementHost(app, region string, memoryMB int64, all []types.Host, placed []Placed) (types.Host, string, error) {
	req := PlaceRequest{App: app, Region: region, MemoryMB: memoryMB}
	h, err := Place(req, all, placed)
	if err == nil {
		return h, "", nil
	}
	first := err
	var regions []string
	seen := map[string]bool{region: true}
	for _, h := range all {
		if h.State == types.HostReady && !seen[h.Region] {
			seen[h.Region] = true
			regions = append(regions, h.Region)
		}
	}
	why := fmt.Sprintf("no ready host in %s", region)
	if errors.Is(first, ErrNoCapacity) {
		why = fmt.Sprintf("no host in %s has %d MB free", region, memoryMB)
	}
	for _, r := range NearestRegions(region, regions) {
		req.Region = r
		if h, err := Place(req, all, placed); err == nil {
			return h, fmt.Sprintf("%s; placed in the nearest region, %s", why, r), nil
		}
	}
	return types.Host{}, "", fmt.Errorf("no host can take its replacement: %w", first)
}
