package tcpproxy

import (
	"context"

	"github.com/hangar-dev/hangar/internal/types"
)

// Services tells which services each app's machines declare (the proxy,
// told by the supervisor), and when that changes.
type Services interface {
	// AppServices returns every app's services, from its latest machine
	// configs.
	AppServices() map[string][]types.MachineService
	// ServicesChanged is closed when AppServices may have changed.
	ServicesChanged() <-chan struct{}
}

// Sync keeps the manager's listeners matching the apps' public raw TCP
// services (PublicServices of src's), until ctx ends: an app's ports are
// bound when they appear, changed when they change, and closed when the
// app has none left.
func (m *Manager) Sync(ctx context.Context, src Services) {
	bound := map[string]bool{}
	for {
		all := src.AppServices()
		for app, svcs := range all {
			tcp := PublicServices(svcs)
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

// PublicServices are the services' ports that the public listeners do not
// serve: all but 80 and 443, which Fly serves as HTTP and HTTPS.
func PublicServices(svcs []types.MachineService) []Service {
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
