package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/types"
)

// Wake starts or resumes one stopped or suspended machine of app for the
// proxy (Fly's auto_start_machines): machines in region first, suspended
// before stopped (a thaw takes about a millisecond, a start tens). It
// implements the proxy's Waker.
func (s *Supervisor) Wake(ctx context.Context, app, region string) (string, error) {
	recs, err := s.ListLocal(ctx, app)
	if err != nil {
		return "", err
	}
	cands := wakeOrder(recs, region)
	if len(cands) == 0 {
		if len(recs) == 0 {
			return "", fmt.Errorf("app %s has no machines; deploy it with `hangar deploy`: %w", app, types.ErrNoCapacity)
		}
		return "", fmt.Errorf("app %s: none of its %d machines is stopped or suspended with auto_start_machines on: %w", app, len(recs), types.ErrNoCapacity)
	}
	var firstErr error
	for _, r := range cands {
		l := s.liveFor(app, r.ID)
		l.mu.Lock()
		cur, err := s.startLocked(ctx, l, sourceAutostop)
		l.mu.Unlock()
		if err == nil && cur.State == types.StateStarted {
			return r.ID, nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = types.ErrNoCapacity
	}
	return "", fmt.Errorf("app %s: wake: %w", app, firstErr)
}

// wakeOrder lists the machines Wake may start (not cordoned), best first:
// in region before elsewhere, suspended before stopped, then in list
// order.
func wakeOrder(recs []*Record, region string) []*Record {
	var cands []*Record
	for _, r := range recs {
		// A cordoned machine takes no traffic, so waking it serves no
		// one; a deploy cordons the old machines it retires, so that
		// requests do not start them again (a retired machine that woke
		// would hold its volume against its replacement).
		if (r.State == types.StateStopped || r.State == types.StateSuspended) && autostartable(r.Config) && !r.Cordoned {
			cands = append(cands, r)
		}
	}
	rank := func(r *Record) int {
		n := 0
		if r.Region != region {
			n += 2
		}
		if r.State != types.StateSuspended {
			n++
		}
		return n
	}
	sort.SliceStable(cands, func(i, j int) bool { return rank(cands[i]) < rank(cands[j]) })
	return cands
}

// autostartable reports whether the proxy may start a machine with cfg.
func autostartable(cfg *types.MachineConfig) bool {
	if cfg == nil || len(cfg.Services) == 0 {
		return false
	}
	if cfg.DisableMachineAutostart != nil && *cfg.DisableMachineAutostart {
		return false
	}
	for _, svc := range cfg.Services {
		if svc.Autostart == nil || *svc.Autostart {
			return true // a service that wants it is enough
		}
	}
	return false
}

// Loads is what the autostop rule needs of the proxy: a machine's traffic
// (requests in flight, whether and since when it takes traffic, its last
// request).
type Loads interface {
	Traffic(app, machineID string) types.MachineLoad
}

// Autostopper stops or suspends idle machines beyond an app's
// min_machines_running (Fly's auto_stop_machines). Run calls Tick every
// Interval; tests call Tick (or plan) directly with their own clock.
//
// A machine is never a candidate while it is being deployed (leased, or
// cordoned and so not routable), until it has taken traffic for MinIdle,
// or within MinIdle of its last request: a deploy's new machine is not
// stopped in its smoke window, and a machine that was just woken for a
// request serves it. A stop or suspend by the rule is recorded with
// StopReason "autostop", so that no one takes it for a crash.
type Autostopper struct {
	Sup      *Supervisor
	Loads    Loads
	Interval time.Duration
	// MinIdle is how long a machine must have been routable, and idle,
	// before the rule may stop it; default max(Interval, 5s).
	MinIdle time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	Log *slog.Logger
}

// StopReasonAutostop is Record.StopReason for a machine that the
// autostop rule stopped or suspended.
const StopReasonAutostop = "autostop"

// sourceAutostop is the event source of the proxy's starts (autostart)
// and stops (autostop), as Fly names it.
const sourceAutostop = "fly-proxy"

func (a *Autostopper) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Autostopper) minIdle() time.Duration {
	if a.MinIdle > 0 {
		return a.MinIdle
	}
	return max(a.Interval, 5*time.Second)
}

// Run applies the rule every Interval until ctx ends.
func (a *Autostopper) Run(ctx context.Context) {
	every(ctx, a.Interval, func() {
		if _, err := a.Tick(ctx); err != nil && ctx.Err() == nil {
			a.log().Warn("autostop", "err", err)
		}
	})
}

func (a *Autostopper) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

// candidate is a running machine as the autostop rule sees it.
type candidate struct {
	app, id, region string
	load, soft      int
	mode            types.Autostop // "" or off: never stopped by the rule
}

// excess applies Fly's excess-capacity rule to the running machines of one
// app and returns those to stop or suspend: at most one per region, never
// taking the app below min running machines. In a region with more than
// one running machine, excess = running - (over soft_limit + 1), and one
// machine goes when excess >= 1; a region's only machine goes when it has
// no load. The machine chosen has the least load (then the highest id, for
// a stable choice).
func excess(running []candidate, min int) []candidate {
	byRegion := map[string][]candidate{}
	var regions []string
	for _, c := range running {
		if _, ok := byRegion[c.region]; !ok {
			regions = append(regions, c.region)
		}
		byRegion[c.region] = append(byRegion[c.region], c)
	}
	sort.Strings(regions)
	left := len(running)
	var out []candidate
	for _, rg := range regions {
		ms := byRegion[rg]
		if left-1 < min {
			break
		}
		if len(ms) > 1 {
			over := 0
			for _, c := range ms {
				if c.load >= c.soft {
					over++
				}
			}
			if len(ms)-(over+1) < 1 {
				continue
			}
		} else if ms[0].load != 0 {
			continue
		}
		var pick *candidate
		for i := range ms {
			c := &ms[i]
			if c.mode != types.AutostopStop && c.mode != types.AutostopSuspend {
				continue
			}
			if pick == nil || c.load < pick.load || (c.load == pick.load && c.id > pick.id) {
				pick = c
			}
		}
		if pick != nil {
			out = append(out, *pick)
			left--
		}
	}
	return out
}

// Tick applies the autostop rule once to every app and returns the ids of
// the machines it stopped or suspended.
func (a *Autostopper) Tick(ctx context.Context) ([]string, error) {
	stop, err := a.plan(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	var firstErr error
	for _, c := range stop {
		if err := a.stopOne(ctx, c); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		done = append(done, c.id)
	}
	return done, firstErr
}

// plan returns the machines the rule would stop or suspend now.
func (a *Autostopper) plan(ctx context.Context) ([]candidate, error) {
	recs, err := a.Sup.ListLocal(ctx, "") // each host for its own machines
	if err != nil {
		return nil, fmt.Errorf("autostop: %w", err)
	}
	now := a.now()
	apps := map[string][]candidate{}
	mins := map[string]int{}
	var names []string
	for _, r := range recs {
		if r.Config == nil || len(r.Config.Services) == 0 {
			continue
		}
		for _, svc := range r.Config.Services {
			if svc.MinMachinesRunning != nil && *svc.MinMachinesRunning > mins[r.App] {
				mins[r.App] = *svc.MinMachinesRunning
			}
		}
		if r.State != types.StateStarted {
			continue
		}
		t := a.Loads.Traffic(r.App, r.ID)
		load := t.Inflight
		if a.protected(r, t, now) {
			// Not idle capacity: count it as busy, so it is never the
			// one stopped (and it still counts toward the minimum).
			load = 1 << 30
		}
		soft, _ := r.Config.HTTPService().Limits()
		c := candidate{app: r.App, id: r.ID, region: r.Region, load: load, soft: soft, mode: autostopMode(r.Config)}
		if _, ok := apps[r.App]; !ok {
			names = append(names, r.App)
		}
		apps[r.App] = append(apps[r.App], c)
	}
	sort.Strings(names)
	var out []candidate
	for _, app := range names {
		out = append(out, excess(apps[app], mins[app])...)
	}
	return out, nil
}

// protected reports whether a started machine must not be stopped now:
// not taking traffic (just started, a deploy waiting for its checks or
// holding it cordoned, failing its checks, or leaving), leased (a deploy
// or an operator is working on it), routable for less than MinIdle, or
// used within MinIdle.
func (a *Autostopper) protected(r *Record, t types.MachineLoad, now time.Time) bool {
	idle := a.minIdle()
	switch {
	case !t.Routable, LeaseActive(r, now):
		return true
	case t.RoutableSince.IsZero() || now.Sub(t.RoutableSince) < idle:
		return true
	case !t.LastRequest.IsZero() && now.Sub(t.LastRequest) < idle:
		return true
	}
	return false
}

// autostopMode is a machine's autostop setting over all its services: the
// HTTP service's if it sets one, else the first other service's that asks
// to stop or suspend ("" if none does).
func autostopMode(cfg *types.MachineConfig) types.Autostop {
	if svc := cfg.HTTPService(); svc != nil && svc.Autostop != nil {
		return *svc.Autostop
	}
	for _, svc := range cfg.Services {
		if svc.Autostop != nil && (*svc.Autostop == types.AutostopStop || *svc.Autostop == types.AutostopSuspend) {
			return *svc.Autostop
		}
	}
	return ""
}

// stopOne stops or suspends an idle machine (draining it first). Suspend
// falls back to stop on a runtime that cannot freeze.
func (a *Autostopper) stopOne(ctx context.Context, c candidate) error {
	s := a.Sup
	if c.mode == types.AutostopSuspend {
		if _, ok := s.opt.Driver.(runtime.Pauser); ok {
			if _, err := s.suspend(ctx, c.app, c.id, sourceAutostop); err != nil {
				return fmt.Errorf("autostop: suspend machine %s of app %s: %w", c.id, c.app, err)
			}
			a.log().Info("suspended idle machine", "app", c.app, "machine", c.id)
			if s.opt.Observer != nil {
				s.opt.Observer.Autostopped(c.app, "suspend")
			}
			return nil
		}
	}
	l := s.liveFor(c.app, c.id)
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, err := s.Get(ctx, c.app, c.id)
	if err != nil {
		return err
	}
	if cur.State != types.StateStarted {
		return nil // someone else changed it meanwhile
	}
	if _, err := s.stopLocked(ctx, l, "", 0, sourceAutostop); err != nil {
		return fmt.Errorf("autostop: stop machine %s of app %s: %w", c.id, c.app, err)
	}
	a.log().Info("stopped idle machine", "app", c.app, "machine", c.id)
	if s.opt.Observer != nil {
		s.opt.Observer.Autostopped(c.app, "stop")
	}
	return nil
}

// Wakeable lists this host's machines that Wake could start (stopped or
// suspended, autostart on, not cordoned): what the host publishes for
// other hosts' edges.
func (s *Supervisor) Wakeable(ctx context.Context) ([]*Record, error) {
	recs, err := s.ListLocal(ctx, "")
	if err != nil {
		return nil, err
	}
	return wakeOrder(recs, ""), nil
}
