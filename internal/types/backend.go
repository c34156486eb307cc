package types

import (
	"fmt"
	"time"
)

// Backend is one machine as the supervisor hands it to the proxy: where
// it listens and which of its services the HTTP listeners serve.
type Backend struct {
	App       string
	MachineID string
	Region    string
	Addr      string // host:port of the HTTP service's internal_port
	// Service is the machine's service the proxy serves (see
	// MachineConfig.HTTPService): concurrency limits, autostart and
	// response header options. Nil means Fly's defaults (soft_limit 20, no
	// hard_limit).
	Service *MachineService
	// Config is the machine's whole config (statics, every service for
	// raw TCP, TLS options); nil keeps the one the proxy knows.
	Config *MachineConfig
	// DownServices are the RouteKeys of the machine's services whose own
	// checks do not all pass: raw TCP connections to those services are
	// not sent to it, while its other services still take them (a
	// Postgres member is routable on the primary's port or the replicas'
	// port by its role).
	DownServices []string
}

// RouteKey names a service among a machine's services for routing: its
// protocol, internal port and first public port. Two services that differ
// only in their checks and public ports (5432 for the primary, 5433 for a
// replica, both to internal port 5432) have different keys.
func (s *MachineService) RouteKey() string {
	first := 0
	if len(s.Ports) > 0 {
		switch p := s.Ports[0]; {
		case p.Port != nil:
			first = *p.Port
		case p.StartPort != nil:
			first = *p.StartPort
		}
	}
	return fmt.Sprintf("%s/%d/%d", s.Protocol, s.InternalPort, first)
}

// MachineLoad is what the proxy knows of a machine's traffic; the autostop
// rule reads it.
type MachineLoad struct {
	// Inflight is the number of requests (and raw TCP connections) in
	// flight to the machine.
	Inflight int
	// Routable: the machine takes new requests now (known, started with
	// passing checks, not draining).
	Routable bool
	// RoutableSince is when the machine last became routable (zero if it
	// is not).
	RoutableSince time.Time
	// LastRequest is when the proxy last sent it a request (zero: never
	// since it became known).
	LastRequest time.Time
}

// DefaultSoftLimit is Fly's soft_limit when a service sets none.
const DefaultSoftLimit = 20

// ErrNoCapacity means an app has no stopped or suspended machine that may
// be started (autostart).
var ErrNoCapacity = NewError(ErrUnavailable, "no stopped or suspended machine with autostart")

// Limits returns a service's soft and hard concurrency limits with Fly's
// defaults (soft_limit 20, no hard_limit; a hard_limit below the default
// soft_limit lowers it). A nil service has the defaults.
func (s *MachineService) Limits() (soft, hard int) {
	soft = DefaultSoftLimit
	if s == nil || s.Concurrency == nil {
		return soft, 0
	}
	c := s.Concurrency
	if c.HardLimit > 0 {
		hard = c.HardLimit
	}
	if c.SoftLimit > 0 {
		soft = c.SoftLimit
	} else if hard > 0 && hard < soft {
		soft = hard
	}
	return soft, hard
}

// HandlerHTTP is the handler of ports whose connections are HTTP.
const HandlerHTTP = "http"

// ServesHTTP reports whether one of the service's ports has the http
// handler ([http_service] always has).
func (s *MachineService) ServesHTTP() bool {
	for _, p := range s.Ports {
		for _, h := range p.Handlers {
			if h == HandlerHTTP {
				return true
			}
		}
	}
	return false
}

// HTTPService returns a copy of the service the proxy's HTTP listeners
// serve: the first service with an http handler, else (an app of raw TCP
// services only, whose HTTP address just names the machine) the first
// service; nil when the config has no service. It does not depend on the
// order in which fly.toml lists [http_service] and [[services]].
func (c *MachineConfig) HTTPService() *MachineService {
	if c == nil || len(c.Services) == 0 {
		return nil
	}
	i := 0
	for j := range c.Services {
		if c.Services[j].ServesHTTP() {
			i = j
			break
		}
	}
	s := c.Services[i]
	return &s
}
