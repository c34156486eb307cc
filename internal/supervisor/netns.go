package supervisor

import (
	"net"

	"github.com/hangar-dev/hangar/internal/network"
)

// Network is what the supervisor needs of the host's machine network: an
// address pair per address number and one network namespace per machine.
// The daemon passes its *network.Manager; tests that run without root pass
// one that hands out loopback addresses (runtime/runtimetest).
type Network interface {
	// AddressFor returns the n-th machine address pair (IPv4, 6PN IPv6).
	AddressFor(n int) (net.IP, net.IP, error)
	// NSPath is where machine id's network namespace is (to join).
	NSPath(id string) string
	// Exists reports whether machine id's namespace is made.
	Exists(id string) bool
	// Setup makes machine id's namespace with these addresses.
	Setup(id string, ip4, ip6 net.IP) (string, error)
	// Teardown removes machine id's namespace; idempotent.
	Teardown(id string) error
}

var _ Network = (*network.Manager)(nil)
