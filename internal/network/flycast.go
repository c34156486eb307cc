package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Flycast addresses are app-wide private IPv6 addresses that the daemon's
// proxy listens on (Fly.io's Flycast). They come from a range inside the
// machine 6PN subnet, so machines reach them on-link through the bridge
// like the gateway: for the default fdaa:0:1::/64 the range is
// fdaa:0:1::fc:0:0/96 (address n is fdaa:0:1::fc:0:n), far above the
// machine addresses, which follow the IPv4 subnet's size (at most 2^24).

// flycastOffset is where the Flycast range starts inside the 6PN subnet.
const flycastOffset = 0xfc << 32

// FlycastRange returns the /96 of Flycast addresses inside a 6PN subnet,
// or an error when the subnet is too small to hold one (it needs at least
// 40 host bits: /88 or larger).
func FlycastRange(subnet6 netip.Prefix) (netip.Prefix, error) {
	if !subnet6.Addr().Is6() || subnet6.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("network: %s is not an IPv6 subnet", subnet6)
	}
	if subnet6.Bits() > 88 {
		return netip.Prefix{}, fmt.Errorf("network: 6PN subnet %s is too small for Flycast addresses; use a /88 or larger --subnet6 (the default is a /64)", subnet6)
	}
	base := subnet6.Masked().Addr().As16()
	add(&base, flycastOffset)
	return netip.PrefixFrom(netip.AddrFrom16(base), 96), nil
}

// FlycastAddr returns the n-th address (n >= 1) of a Flycast range.
func FlycastAddr(rng netip.Prefix, n int) (netip.Addr, error) {
	if n < 1 || n >= 1<<32-1 {
		return netip.Addr{}, fmt.Errorf("network: no Flycast address number %d in %s", n, rng)
	}
	b := rng.Masked().Addr().As16()
	add(&b, uint64(n))
	return netip.AddrFrom16(b), nil
}

// add adds v to the 128-bit big-endian number b.
func add(b *[16]byte, v uint64) {
	carry := v
	for k := 15; k >= 0 && carry > 0; k-- {
		sum := uint64(b[k]) + carry&0xff
		b[k] = byte(sum)
		carry = carry>>8 + sum>>8
	}
}

// FlycastRange is the manager's Flycast range (see the package function).
func (m *Manager) FlycastRange() (netip.Prefix, error) {
	a, _ := netip.AddrFromSlice(m.net6.IP.To16())
	ones, _ := m.net6.Mask.Size()
	return FlycastRange(netip.PrefixFrom(a, ones))
}

// AddFlycast puts a Flycast address on the bridge (as a /128, without
// duplicate address detection, so it can be bound at once); machines then
// reach it through the bridge. Idempotent.
func (m *Manager) AddFlycast(addr netip.Addr) error {
	br, err := m.flycastBridge(addr)
	if err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrReplace(br, a); err != nil {
		return fmt.Errorf("network: add Flycast address %s to %s: %w", addr, m.cfg.Bridge, err)
	}
	return nil
}

// RemoveFlycast takes a Flycast address off the bridge; removing one that
// is not there is a no-op.
func (m *Manager) RemoveFlycast(addr netip.Addr) error {
	br, err := m.flycastBridge(addr)
	if err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(128, 128)}}
	if err := netlink.AddrDel(br, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("network: remove Flycast address %s from %s: %w", addr, m.cfg.Bridge, err)
	}
	return nil
}

// FlycastAddrs lists the Flycast addresses on the bridge (to remove those
// released while the daemon was down).
func (m *Manager) FlycastAddrs() ([]netip.Addr, error) {
	rng, err := m.FlycastRange()
	if err != nil {
		return nil, err
	}
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
	}
	// A dump that links or addresses changed during (machines starting,
	// the namespace pool refilling) is incomplete: read it again.
	var addrs []netlink.Addr
	for try := 0; ; try++ {
		addrs, err = netlink.AddrList(br, netlink.FAMILY_V6)
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try == 10 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("network: addresses of %s: %w", m.cfg.Bridge, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && rng.Contains(ip) {
			out = append(out, ip)
		}
	}
	return out, nil
}

// flycastBridge checks that addr is in the Flycast range and returns the
// bridge.
func (m *Manager) flycastBridge(addr netip.Addr) (netlink.Link, error) {
	rng, err := m.FlycastRange()
	if err != nil {
		return nil, err
	}
	if !rng.Contains(addr) {
		return nil, fmt.Errorf("network: %s is not in the Flycast range %s", addr, rng)
	}
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
	}
	return br, nil
}
