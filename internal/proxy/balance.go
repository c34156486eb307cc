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
	wake     bool // best: start one of this host's stopped machines (m is nil)
	known    int  // machines known for the app
	matched  int  // machines that matched the routing headers at all
}

// The order of candidates, most significant first: under the soft_limit
// before over it; the region (0 the target region, then by distance, see
// rankLocked); a machine that takes requests before one to wake; this
// host's before another's; then the fewest requests in flight.
const (
	keyOver   = 1 << 62
	keyRank   = 1 << 41 // times the rank (< 1<<19)
	keyWake   = 1 << 40
	keyRemote = 1 << 39
	keyLoad   = 1<<39 - 1
)

// pickLocked chooses the machine for a request: among routable machines
// that are not draining and are under their hard_limit (and match the
// fly-force-* headers), the one under its soft_limit before one over it,
// then the nearest to the target region (fly-prefer-region, else this
// proxy's): this host's, then another host's in the region, then other
// regions nearest first; a stopped machine to wake counts as farther than
// a running one in its region (but nearer than any other region); then
// the one with the fewest requests in flight; ties at random.
// fly-prefer-instance-id wins when that machine is under its soft limit.
// Other hosts' machines (remote.go) are candidates unless rt.local.
func (p *Proxy) pickLocked(a *app, rt routing) choice {
	c := choice{known: len(a.machines)}
	target := rt.preferRegion
	if target == "" {
		target = p.region
	}
	var best *machine
	var bestKey uint64
	ties, bestWake := 0, false
	consider := func(m *machine, key uint64) {
		switch {
		case best == nil && !bestWake || key < bestKey:
			best, bestKey, ties, bestWake = m, key, 1, false
		case key == bestKey:
			ties++
			if mrand.IntN(ties) == 0 {
				best = m
			}
		}
	}
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
			best, ties, bestWake = m, 1, false
			goto done
		}
		key := min(uint64(m.inflight), keyLoad) + p.rankLocked(m, target)*keyRank
		if over {
			key += keyOver
		}
		consider(m, key)
	}
	if !rt.local && len(a.remote) > 0 {
		now := time.Now()
		for _, m := range a.remote {
			if rt.forceInstance != "" && m.b.MachineID != rt.forceInstance {
				continue
			}
			if rt.forceRegion != "" && m.b.Region != rt.forceRegion || rt.exclude != "" && m.b.MachineID == rt.exclude {
				continue
			}
			if now.Before(m.remote.downUntil) || rt.service != "" && slices.Contains(m.rdown, rt.service) {
				continue
			}
			c.matched++
			c.known++
			load := m.inflight + m.rload
			// Its own host holds the hard_limit; here a full machine
			// only ranks as over its soft_limit.
			over := load >= m.soft || m.hard > 0 && load >= m.hard
			if !m.wakeOnly && rt.preferInstance == m.b.MachineID && !over {
				best, ties, bestWake = m, 1, false
				goto done
			}
			key := min(uint64(load), keyLoad) + p.rankLocked(m, target)*keyRank + keyRemote
			if m.wakeOnly {
				key += keyWake
			}
			if over {
				key += keyOver
			}
			consider(m, key)
		}
	}
	if p.Waker != nil && p.localWake[a.name] && rt.forceInstance == "" && (rt.forceRegion == "" || rt.forceRegion == p.region) {
		// One of this host's stopped machines.
		var key uint64 = keyWake
		if p.region != target {
			key += keyRank
		}
		if best == nil || key < bestKey {
			best, bestKey, bestWake = nil, key, true
		}
	}
done:
	switch {
	case bestWake:
		c.wake, c.full = true, false
	case best != nil:
		c.m = best
		c.full = false
		c.overSoft = best.inflight+best.rload >= best.soft
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
		if c.m != nil && c.m.wakeOnly {
			// Another host starts one of its machines: forward there.
			c.m.inflight++
			c.m.lastUsed = time.Now()
			p.mu.Unlock()
			return a, c.m, 0, ""
		}
		if c.m != nil {
			c.m.inflight++
			c.m.served++
			c.m.lastUsed = time.Now()
			if c.overSoft && c.m.remote == nil && p.Waker != nil && autostart(c.m) && !a.waking && time.Since(a.lastScale) > time.Second {
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
		case c.full && !c.wake:
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
	if len(a.machines) == 0 && len(a.remote) == 0 && a.waiters == 0 && !a.waking && p.apps[a.name] == a {
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
