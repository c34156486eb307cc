package tcpproxy

import (
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// FromMachineService converts a machine config's service (fly.toml's
// `[[services]]` after appconfig) to a Service. The idle timeout is the
// first port's `http_options.idle_timeout` (seconds), as Fly reads it for
// every handler.
func FromMachineService(s types.MachineService) Service {
	out := Service{Key: s.RouteKey(), InternalPort: s.InternalPort}
	for _, p := range s.Ports {
		var port Port
		if p.Port != nil {
			port.Port = *p.Port
		}
		if p.StartPort != nil {
			port.StartPort = *p.StartPort
		}
		if p.EndPort != nil {
			port.EndPort = *p.EndPort
		}
		port.Handlers = append([]string(nil), p.Handlers...)
		if p.ProxyProtoOptions != nil {
			port.ProxyProtoVersion = p.ProxyProtoOptions.Version
		}
		if p.HTTPOptions != nil && p.HTTPOptions.IdleTimeout != nil && out.IdleTimeout == 0 {
			out.IdleTimeout = time.Duration(*p.HTTPOptions.IdleTimeout) * time.Second
		}
		out.Ports = append(out.Ports, port)
	}
	return out
}
