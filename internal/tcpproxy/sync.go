package tcpproxy

import (
	"context"

	"github.com/hangar-dev/hangar/internal/types"
)

// Services is where Sync reads the apps' services: their latest machine
// configs' (the proxy's).
type Services interface {
	AppServices() map[string][]types.MachineService
	// ServicesChanged is closed at the next change.
	ServicesChanged() <-chan struct{}
}

// Sync keeps m's listeners matching the apps' raw TCP services (every
// port but 80 and 443, which the HTTP listeners serve), until ctx ends.
func (m *Manager) Sync(ctx context.Context, src Services) {
	bound := map[string]bool{}
	for {
		all := src.AppServices()
		for app, svcs := range all {
			tcp := tcpServices(svcs)
			if len(tcp) == 0 && !bound[app] {
				continue
			}
			if err := m.Set(app, tcp); err != nil {
				m.log().Warn("raw TCP services", "app", app, "err", err)
			}
			bound[app] = len(tcp) > 0
		}
		for app := range bound {
			if _, ok := all[app]; !ok {
				m.Remove(app)
				delete(bound, app)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-src.ServicesChanged():
		}
	}
}

// tcpServices are the services' ports not served by the HTTP and HTTPS
// listeners (Fly serves 80 and 443 as HTTP).
func tcpServices(svcs []types.MachineService) []Service {
	var out []Service
	for _, s := range svcs {
		var ports []types.MachinePort
		for _, pt := range s.Ports {
			if pt.Port != nil && (*pt.Port == 80 || *pt.Port == 443) {
				continue
			}
			ports = append(ports, pt)
		}
		if len(ports) == 0 {
			continue
		}
		s.Ports = ports
		out = append(out, FromMachineService(s))
	}
	return out
}
