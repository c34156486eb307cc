package proxy

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// choice is the outcome of one pick.
type choice struct {
	m        *machine
	full     bool // some machine matched but every match is at its hard_limit
	overSoft bool // the chosen machine was at or over its soft_limit
	known    int  // machines known for the app
	matched  int  // machines that matched the routing headers at all
}

// pickLocked chooses the machine for a request: among routable machines
// that are not draining and are under their hard_limit (and match the
// fly-force-* headers), the one under its soft_limit before one over it,
// then the one in the target region (fly-prefer-region, else this
// proxy's), then the one with the fewest requests in flight; ties at
// random. fly-prefer-instance-id wins when that machine is under its soft
// limit.
func (p *Proxy) pickLocked(a *app, rt routing) choice {
	c := choice{known: len(a.machines)}
	target := rt.preferRegion
	if target == "" {
		target = p.region
	}
	var best *machine
	bestKey, ties := 0, 0
	for _, m := range a.machines {
		if rt.forceInstance != "" && m.b.MachineID != rt.forceInstance {
			continue
		}
		if rt.forceRegion != "" && m.b.Region != rt.forceRegion || m.b.MachineID == rt.exclude {
			continue
		}
		c.matched++
		if !m.routable || m.draining || rt.service != "" && slices.Contains(m.b.DownServices, rt.service) {
			continue
		}
		if m.hard > 0 && m.inflight >= m.hard {
			c.full = true
			continue
		}
		over := m.inflight >= m.soft
		if rt.preferInstance == m.b.MachineID && !over {
			best, ties = m, 1
			break
		}
		// key orders by (over soft limit, outside the target region, load).
		key := m.inflight
		if m.b.Region != target {
			key += 1 << 30
		}
		if over {
			key += 1 << 40
		}
		switch {
		case best == nil || key < bestKey:
			best, bestKey, ties = m, key, 1
		case key == bestKey:
			ties++
			if mrand.IntN(ties) == 0 {
				best = m
			}
		}
	}
	if best != nil {
		c.m = best
		c.full = false
		c.overSoft = best.inflight >= best.soft
	}
	return c
}

// acquire finds a machine for a request and counts the request against it.
// With no capacity it waits: in the hard_limit queue, or for a machine the
// Waker starts. On failure it returns the status and message to answer
// with (status 0: the client went away).
func (p *Proxy) acquire(ctx context.Context, name string, rt routing) (*app, *machine, int, string) {
	return p.acquireWatch(ctx, name, rt, nil)
}

// acquireWatch is acquire; onWait, if set, is called once before the
// request first waits and gives the context to wait with (the fast path
// watches the client connection only then).
func (p *Proxy) acquireWatch(ctx context.Context, name string, rt routing, onWait func() context.Context) (*app, *machine, int, string) {
	var (
		timer    *time.Timer
		sawWake  = -1 // wakeGen when this request saw or began a wake
		deadline time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		a := p.apps[name]
		if a == nil {
			if p.Waker == nil || rt.forceInstance != "" {
				p.mu.Unlock()
				return nil, nil, http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: app %s has no machines; deploy it with `hangar deploy`", name)
			}
			a = p.appLocked(name)
		}
		c := p.pickLocked(a, rt)
		if c.m != nil {
			c.m.inflight++
			c.m.served++
			c.m.lastUsed = time.Now()
			if c.overSoft && p.Waker != nil && autostart(c.m) && !a.waking && time.Since(a.lastScale) > time.Second {
				// Every running machine is over its soft_limit: start
				// one more, and serve this request meanwhile.
				a.lastScale = time.Now()
				p.startWakeLocked(a, rt.region(p.region))
			}
			p.mu.Unlock()
			return a, c.m, 0, ""
		}
		var code int
		var msg string
		switch {
		case rt.forceInstance != "" && c.matched == 0:
			code, msg = http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: machine %s (fly-force-instance-id) is not running in app %s", rt.forceInstance, name)
		case c.full:
			if a.waiters >= p.QueueLimit {
				code, msg = http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: every machine of app %s is at its hard_limit and %d requests already wait; raise hard_limit or add machines", name, a.waiters)
			} else if deadline.IsZero() {
				deadline = time.Now().Add(p.QueueTimeout)
			}
		default:
			// No routable machine: wake one.
			switch {
			case p.Waker == nil:
				code, msg = noCapacity(name, c.known, nil)
			case a.waking:
				if sawWake < 0 {
					sawWake = a.wakeGen
				}
			case sawWake >= 0 && a.wakeGen != sawWake && a.wakeErr != nil:
				code, msg = noCapacity(name, c.known, a.wakeErr)
			case sawWake < 0:
				sawWake = a.wakeGen
				p.startWakeLocked(a, rt.region(p.region))
			}
			if code == 0 && deadline.IsZero() {
				deadline = time.Now().Add(p.WakeTimeout)
			}
		}
		if code == 0 && !time.Now().Before(deadline) {
			if c.full {
				code, msg = http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: every machine of app %s stayed at its hard_limit for %v; the request was not sent. Raise hard_limit or add machines", name, p.QueueTimeout)
			} else {
				code, msg = http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: no machine of app %s became ready within %v", name, p.WakeTimeout)
			}
		}
		if code != 0 {
			p.forgetLocked(a)
			p.mu.Unlock()
			return nil, nil, code, msg
		}
		a.waiters++
		ch := a.changed
		p.mu.Unlock()
		if onWait != nil {
			ctx = onWait()
			onWait = nil
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		var gone bool
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			gone = true
		}
		p.mu.Lock()
		a.waiters--
		if gone {
			p.forgetLocked(a)
		}
		p.mu.Unlock()
		if gone {
			return nil, nil, 0, ""
		}
	}
}

// forgetLocked drops the state of an app that has no machines and nobody
// waiting, so Host headers naming apps that do not exist leave nothing
// behind.
func (p *Proxy) forgetLocked(a *app) {
	if len(a.machines) == 0 && a.waiters == 0 && !a.waking && p.apps[a.name] == a {
		delete(p.apps, a.name)
	}
}

func noCapacity(name string, known int, wakeErr error) (int, string) {
	switch {
	case wakeErr != nil && known == 0:
		return http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: app %s has no running machine and none could be started: %v", name, wakeErr)
	case wakeErr != nil:
		return http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: app %s has no started machine with passing health checks (%d known) and none could be started: %v", name, known, wakeErr)
	case known == 0:
		return http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: app %s has no machines; deploy it with `hangar deploy`", name)
	}
	return http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: app %s has no started machine with passing health checks (%d known)", name, known)
}

// autostart reports whether the machine's service lets the proxy start
// machines (Fly's auto_start_machines, on unless set to false).
func autostart(m *machine) bool {
	s := m.b.Service
	return s == nil || s.Autostart == nil || *s.Autostart
}

// repick moves a request whose machine refused the connection to another
// machine (or the same one, if it is the only one) and returns it; nil if
// there is none now.
func (p *Proxy) repick(rq *request) *machine {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.pickLocked(rq.app, rq.prefs)
	if c.m == nil {
		return nil
	}
	rq.m.inflight--
	if rq.m.draining && rq.m.inflight == 0 {
		select {
		case <-rq.m.idle:
		default:
			close(rq.m.idle)
		}
	}
	c.m.inflight++
	c.m.lastUsed = time.Now()
	rq.m = c.m
	return c.m
}
