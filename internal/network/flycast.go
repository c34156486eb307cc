package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
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
	if m.cfg.Flycast6 != "" {
		p, err := netip.ParsePrefix(m.cfg.Flycast6)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("network: Flycast subnet %q: %w", m.cfg.Flycast6, err)
		}
		return FlycastRange(p)
	}
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
	// Deprecated (preferred lifetime 0, valid for ever): the kernel never
	// picks it as the source of a connection the host opens. In a cluster
	// every host has the address, so a reply to it would stay on the host
	// that answers (docs/flycast.md).
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD,
		PreferedLft: 0, ValidLft: math.MaxUint32}
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

// RedirectFlycast steers TCP connections to the given Flycast addresses
// (any port) to one local listener, to, with nftables DNAT in the
// manager's ip6 table: a nat prerouting chain for machines (traffic that
// enters from the bridge) and a nat output chain for the host itself. The
// listener learns the address and port that were called from the
// connection's original destination (OriginalDst). So Flycast never binds
// the addresses' ports and does not care what else on the host listens
// on them, wildcard listeners included.
//
// Each call replaces the chains' rules in one transaction (idempotent; a
// restarted daemon points them at its own listener). The rules stay when
// the daemon exits (a reloading daemon's successor keeps serving through
// them) and go with the table (RemoveBridge).
func (m *Manager) RedirectFlycast(addrs []netip.Addr, to netip.AddrPort) error {
	rng, err := m.FlycastRange()
	if err != nil {
		return err
	}
	if !to.Addr().Is6() || to.Addr().Is4In6() || to.Port() == 0 {
		return fmt.Errorf("network: Flycast redirect target %s is not an IPv6 address with a port", to)
	}
	c := &nftables.Conn{}
	t := c.AddTable(m.natTable(nftables.TableFamilyIPv6))
	chains := []*nftables.Chain{
		c.AddChain(&nftables.Chain{Name: "flycast_prerouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest}),
		c.AddChain(&nftables.Chain{Name: "flycast_output", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest}),
	}
	port := binary.BigEndian.AppendUint16(nil, to.Port())
	for _, ch := range chains {
		c.FlushChain(ch)
		for _, a := range addrs {
			if !rng.Contains(a) {
				return fmt.Errorf("network: %s is not in the Flycast range %s", a, rng)
			}
			var exprs []expr.Any
			if ch.Hooknum == nftables.ChainHookPrerouting {
				// Machines only: the address is not routed anywhere else.
				exprs = append(exprs,
					&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(m.cfg.Bridge)})
			}
			exprs = append(exprs,
				// ip6 daddr <a> meta l4proto tcp dnat to [to.Addr]:to.Port
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
				&expr.Immediate{Register: 1, Data: to.Addr().AsSlice()},
				&expr.Immediate{Register: 2, Data: port},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
			)
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: nftables redirect of Flycast addresses on %s to %s: %w (is nftables NAT available? `nft list ruleset` shows the tables)", m.cfg.Bridge, to, err)
	}
	return nil
}

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h),
// which golang.org/x/sys/unix does not name.
const ip6tSOOriginalDst = 80

// OriginalDst returns the address and port a redirected IPv6 TCP
// connection was made to (before RedirectFlycast's DNAT), from conntrack.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("network: original destination: %w", err)
	}
	var info *unix.IPv6MTUInfo // its first member is the sockaddr_in6 the kernel fills
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst)
	}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("network: original destination: %w", err)
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("network: original destination of a connection from %s: %w (not redirected by nftables?)", c.RemoteAddr(), serr)
	}
	// The port is in network byte order in memory.
	port := binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, info.Addr.Port))
	return netip.AddrPortFrom(netip.AddrFrom16(info.Addr.Addr), port), nil
}
