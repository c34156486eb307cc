package proxy

import "slices"

// ServiceUp reports whether the service (its RouteKey) of an app's
// machine takes connections now: the machine is routable, not draining,
// and its checks of that service pass, as this host sees it or as the
// machine's host publishes it. known is false for a machine the proxy
// does not know.
func (p *Proxy) ServiceUp(app, machineID, service string) (up, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[app]
	if a == nil {
		return false, false
	}
	for _, m := range a.machines {
		if m.b.MachineID == machineID {
			return m.routable && !m.draining && !slices.Contains(m.b.DownServices, service), true
		}
	}
	for _, m := range a.remote {
		if m.b.MachineID == machineID && !m.wakeOnly {
			return m.routable && !slices.Contains(m.rdown, service), true
		}
	}
	return false, false
}
