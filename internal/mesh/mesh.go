// Package mesh is the host end of Hangar's private network across hosts:
// a WireGuard interface whose peers are the cluster's other hosts, each
// reached for its own /64 of the org's 6PN prefix (so an address says
// which host a machine lives on), with a route per peer through the
// interface. WireGuard runs in userspace (wireguard-go on a TUN device,
// embedded in the daemon), so a host needs no kernel module; each host's
// private key is made on the host and never leaves it (LoadOrCreateKey),
// only its public half is published.
//
// The package does not decide who the peers are: the daemon gives SetPeers
// the host set it reads from the store whenever that set changes, and
// SetPeers makes the interface and the routing table match (peers and
// routes no longer listed are removed). The 6PN prefix of each host is
// handed out by AllocateSubnet, once per host, in the shared store.
//
// Up must run in the network namespace the mesh serves (the daemon's);
// later calls use the netlink handle opened there.
package mesh

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Defaults.
const (
	DefaultDevice = "hangar-wg"
	DefaultPort   = 51820
	// DefaultMTU leaves room for WireGuard's 80 bytes of IPv6+UDP+header
	// on a 1500-byte path.
	DefaultMTU = 1420
	// routeProtocol marks the routes this package adds (rtnetlink's
	// protocol field), so it removes only its own.
	routeProtocol = netlink.RouteProtocol(72)
)

// Config is a host's end of the mesh.
type Config struct {
	// Device is the interface name (DefaultDevice if empty).
	Device     string
	PrivateKey Key
	// ListenPort is the UDP port peers send to (DefaultPort if 0).
	ListenPort int
	// Addresses are put on the interface (e.g. the host's own address in
	// its /64, for traffic from the host itself); may be empty when the
	// host's machines' bridge already holds one.
	Addresses []netip.Prefix
	// MTU of the interface (DefaultMTU if 0).
	MTU int
	Log *slog.Logger
}

// Peer is another host.
type Peer struct {
	// Host names the peer in logs and errors.
	Host      string
	PublicKey Key
	// Endpoint is where the peer listens (its address on the network
	// between hosts and its ListenPort).
	Endpoint netip.AddrPort
	// AllowedIPs are the prefixes routed to the peer and accepted from it
	// (its /64): WireGuard drops a packet from a peer whose source is not
	// in them.
	AllowedIPs []netip.Prefix
	// Keepalive, if set, keeps NAT mappings open (0: off).
	Keepalive time.Duration
}

// PeerStatus is what the interface knows about a peer.
type PeerStatus struct {
	PublicKey     Key
	Endpoint      string
	LastHandshake time.Time // zero: never
	RxBytes       int64
	TxBytes       int64
	AllowedIPs    []netip.Prefix
}

// Mesh is a running interface.
type Mesh struct {
	cfg  Config
	dev  *device.Device
	nl   *netlink.Handle
	link netlink.Link
	log  *slog.Logger

	mu     sync.Mutex // guards closed, endpoints and SetPeers
	closed bool
	// endpoints are the peers' endpoints as SetPeers last gave them: an
	// unchanged one is not set again, so WireGuard keeps the address it
	// learnt from the peer's packets (roaming).
	endpoints map[Key]netip.AddrPort
	// peerNets are the peers' prefixes as SetPeers last set them
	// (PeerHost reads them on every connection, without the lock).
	peerNets atomic.Pointer[[]netip.Prefix]
}

// Up creates the interface and brings it up with no peers.
func Up(cfg Config) (*Mesh, error) {
	if cfg.Device == "" {
		cfg.Device = DefaultDevice
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = DefaultPort
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("mesh: no private key (LoadOrCreateKey makes one)")
	}
	if len(cfg.Device) > 15 {
		return nil, fmt.Errorf("mesh: interface name %q is longer than Linux's 15 characters", cfg.Device)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("mesh: netlink: %w", err)
	}
	tdev, err := tun.CreateTUN(cfg.Device, cfg.MTU)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("mesh: create TUN device %s: %w (is /dev/net/tun there, and are we root or CAP_NET_ADMIN?)", cfg.Device, err)
	}
	wlog := &device.Logger{
		Verbosef: func(format string, args ...any) {
			log.Debug("wireguard: "+fmt.Sprintf(format, args...), "device", cfg.Device)
		},
		Errorf: func(format string, args ...any) {
			log.Warn("wireguard: "+fmt.Sprintf(format, args...), "device", cfg.Device)
		},
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), wlog)
	m := &Mesh{cfg: cfg, dev: dev, nl: nl, log: log}
	fail := func(err error) (*Mesh, error) {
		dev.Close()
		nl.Close()
		return nil, err
	}
	if err := dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", cfg.PrivateKey.hex(), cfg.ListenPort)); err != nil {
		return fail(fmt.Errorf("mesh: configure %s (port %d in use?): %w", cfg.Device, cfg.ListenPort, err))
	}
	if err := dev.Up(); err != nil {
		return fail(fmt.Errorf("mesh: bring up %s on UDP port %d: %w (is the port taken?)", cfg.Device, cfg.ListenPort, err))
	}
	link, err := nl.LinkByName(cfg.Device)
	if err != nil {
		return fail(fmt.Errorf("mesh: find %s: %w", cfg.Device, err))
	}
	m.link = link
	for _, a := range cfg.Addresses {
		addr := &netlink.Addr{IPNet: prefixNet(a)}
		if a.Addr().Is6() {
			addr.Flags = 0x80 // IFA_F_NODAD: a /128 on a point-to-point interface needs no duplicate detection
		}
		if err := nl.AddrReplace(link, addr); err != nil {
			return fail(fmt.Errorf("mesh: address %s on %s: %w", a, cfg.Device, err))
		}
	}
	if err := nl.LinkSetUp(link); err != nil {
		return fail(fmt.Errorf("mesh: set %s up: %w", cfg.Device, err))
	}
	return m, nil
}

// PublicKey is this host's public key, to publish.
func (m *Mesh) PublicKey() Key { return m.cfg.PrivateKey.Public() }

// ListenPort is the UDP port the interface listens on.
func (m *Mesh) ListenPort() int { return m.cfg.ListenPort }

// Kind says which WireGuard implementation runs: "userspace" (wireguard-go
// on a TUN device).
func (m *Mesh) Kind() string { return "userspace" }

// PeerHost reports whether a is another host's own address on the mesh:
// the first address (::1) of a current peer's prefix, which that host
// holds on its machine bridge and uses for its own connections to the
// others. WireGuard accepts a packet from a peer only with a source in
// the peer's prefix, and a machine of that host (another address of the
// prefix) cannot open a TCP connection from ::1 (the answers go to its
// host), so a TCP connection from such an address comes from that host.
func (m *Mesh) PeerHost(a netip.Addr) bool {
	nets := m.peerNets.Load()
	if nets == nil || !a.Is6() {
		return false
	}
	for _, p := range *nets {
		if p.Contains(a) && a == p.Masked().Addr().Next() {
			return true
		}
	}
	return false
}

// SetPeers makes the interface's peers and the routes to them exactly
// peers: new ones are added, changed ones updated, missing ones removed.
func (m *Mesh) SetPeers(peers []Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("mesh: closed")
	}
	own := m.PublicKey()
	seen := map[Key]string{}
	var b strings.Builder
	var want []netip.Prefix
	for _, p := range peers {
		if p.PublicKey == own {
			return fmt.Errorf("mesh: peer %s has this host's own public key: two hosts share a data dir's mesh key; remove mesh/private.key on one of them", p.Host)
		}
		if prev, dup := seen[p.PublicKey]; dup {
			return fmt.Errorf("mesh: hosts %s and %s publish the same public key", prev, p.Host)
		}
		seen[p.PublicKey] = p.Host
		if !p.Endpoint.IsValid() {
			return fmt.Errorf("mesh: peer %s has no endpoint", p.Host)
		}
		// Peers are changed in place, never replaced all at once
		// (replace_peers): that would end every session and drop the
		// traffic between the hosts that stay while one joins or leaves.
		fmt.Fprintf(&b, "public_key=%s\n", p.PublicKey.hex())
		if last, ok := m.endpoints[p.PublicKey]; !ok || last != p.Endpoint {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		b.WriteString("replace_allowed_ips=true\n")
		if p.Keepalive > 0 {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.Keepalive/time.Second))
		}
		for _, a := range p.AllowedIPs {
			a = a.Masked()
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
			for _, w := range want {
				if w.Overlaps(a) {
					return fmt.Errorf("mesh: peer %s's prefix %s overlaps another peer's %s", p.Host, a, w)
				}
			}
			want = append(want, a)
		}
	}
	// Peers no longer in the set are removed.
	cur, err := m.Status()
	if err != nil {
		return err
	}
	for _, c := range cur {
		if _, keep := seen[c.PublicKey]; !keep {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", c.PublicKey.hex())
		}
	}
	if err := m.dev.IpcSet(b.String()); err != nil {
		m.endpoints = nil // unknown now: set them all next time
		return fmt.Errorf("mesh: set peers: %w", err)
	}
	m.endpoints = map[Key]netip.AddrPort{}
	for _, p := range peers {
		m.endpoints[p.PublicKey] = p.Endpoint
	}
	m.peerNets.Store(&want)
	return m.syncRoutes(want)
}

// syncRoutes makes the routes through the interface that this package
// owns exactly want.
func (m *Mesh) syncRoutes(want []netip.Prefix) error {
	have, err := m.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: m.link.Attrs().Index, Protocol: routeProtocol},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("mesh: list routes: %w", err)
	}
	var errs []error
	for _, r := range have {
		if r.Dst == nil {
			continue
		}
		p, ok := netipPrefix(r.Dst)
		if ok && slices.Contains(want, p) {
			continue
		}
		if err := m.nl.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("mesh: remove route %s: %w", r.Dst, err))
		}
	}
	for _, p := range want {
		r := &netlink.Route{LinkIndex: m.link.Attrs().Index, Dst: prefixNet(p), Protocol: routeProtocol}
		if err := m.nl.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("mesh: route %s via %s: %w", p, m.cfg.Device, err))
		}
	}
	return errors.Join(errs...)
}

// Status lists the interface's peers as WireGuard sees them.
func (m *Mesh) Status() ([]PeerStatus, error) {
	s, err := m.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("mesh: read status: %w", err)
	}
	return parseStatus(s)
}

// parseStatus reads the peers out of a UAPI "get" answer.
func parseStatus(s string) ([]PeerStatus, error) {
	var out []PeerStatus
	var cur *PeerStatus
	var hsSec, hsNsec int64
	flush := func() {
		if cur != nil {
			if hsSec != 0 || hsNsec != 0 {
				cur.LastHandshake = time.Unix(hsSec, hsNsec)
			}
			out = append(out, *cur)
		}
		hsSec, hsNsec = 0, 0
	}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if k == "public_key" {
			flush()
			raw, err := hex.DecodeString(v)
			if err != nil || len(raw) != 32 {
				return nil, fmt.Errorf("mesh: status: bad public key %q", v)
			}
			cur = &PeerStatus{PublicKey: Key(raw)}
			continue
		}
		if cur == nil {
			continue
		}
		switch k {
		case "endpoint":
			cur.Endpoint = v
		case "last_handshake_time_sec":
			hsSec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			hsNsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			cur.RxBytes, _ = strconv.ParseInt(v, 10, 64)
		case "tx_bytes":
			cur.TxBytes, _ = strconv.ParseInt(v, 10, 64)
		case "allowed_ip":
			if p, err := netip.ParsePrefix(v); err == nil {
				cur.AllowedIPs = append(cur.AllowedIPs, p)
			}
		}
	}
	flush()
	return out, nil
}

// Close removes the interface (and with it its routes).
func (m *Mesh) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.dev.Close() // closes the TUN device: the kernel removes the interface
	m.nl.Close()
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
