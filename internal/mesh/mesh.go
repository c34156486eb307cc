// Package mesh is the host end of Hangar's private network across hosts:
// a WireGuard interface whose peers are the cluster's other hosts, each
// reached for its own /64 of the org's 6PN prefix (so an address says
// which host a machine lives on), with a route per peer through the
// interface. WireGuard runs in the kernel where the kernel has it (a
// "wireguard" link made by netlink, configured with wgctrl), else in
// userspace (wireguard-go on a TUN device, embedded in the daemon), so a
// host needs no kernel module; each host's private key is made on the
// host and never leaves it (LoadOrCreateKey), only its public half is
// published.
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
	// Userspace runs wireguard-go even where the kernel has WireGuard.
	Userspace bool
	Log       *slog.Logger
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
	cfg    Config
	dev    *device.Device // userspace; nil with the kernel's
	kernel *kernelDev     // the kernel's WireGuard; nil in userspace
	// fallback says why the kernel's WireGuard is not used ("" if it is,
	// or if userspace was asked for).
	fallback string
	nl       *netlink.Handle
	link     netlink.Link
	log      *slog.Logger

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
	fallback := ""
	if !cfg.Userspace {
		m, err := upKernel(cfg, nl, log)
		if err == nil {
			log.Info("mesh: WireGuard in the kernel", "device", cfg.Device)
			return m, nil
		}
		fallback = err.Error()
		log.Info("mesh: the kernel's WireGuard is not available; WireGuard runs in userspace (wireguard-go)", "device", cfg.Device, "reason", fallback)
	} else {
		log.Info("mesh: WireGuard in userspace (wireguard-go), as asked", "device", cfg.Device)
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
	m := &Mesh{cfg: cfg, dev: dev, nl: nl, log: log, fallback: fallback}
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
	if err := m.linkUp(link); err != nil {
		return fail(err)
	}
	return m, nil
}

// linkUp puts the configured addresses on the interface and sets it up.
func (m *Mesh) linkUp(link netlink.Link) error {
	m.link = link
	for _, a := range m.cfg.Addresses {
		addr := &netlink.Addr{IPNet: prefixNet(a)}
		if a.Addr().Is6() {
			addr.Flags = 0x80 // IFA_F_NODAD: a /128 on a point-to-point interface needs no duplicate detection
		}
		if err := m.nl.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("mesh: address %s on %s: %w", a, m.cfg.Device, err)
		}
	}
	if err := m.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("mesh: set %s up: %w", m.cfg.Device, err)
	}
	return nil
}

// PublicKey is this host's public key, to publish.
func (m *Mesh) PublicKey() Key { return m.cfg.PrivateKey.Public() }

// ListenPort is the UDP port the interface listens on.
func (m *Mesh) ListenPort() int { return m.cfg.ListenPort }

// Kind says which WireGuard implementation runs: "kernel" (the kernel's
// wireguard link) or "userspace" (wireguard-go on a TUN device).
func (m *Mesh) Kind() string {
	if m.kernel != nil {
		return KindKernel
	}
	return KindUserspace
}

// The kinds of WireGuard a mesh runs (Kind).
const (
	KindKernel    = "kernel"
	KindUserspace = "userspace"
)

// Fallback says why the kernel's WireGuard is not used: the kernel's
// refusal; "" when it is used or userspace was asked for.
func (m *Mesh) Fallback() string { return m.fallback }

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
	cur, err := m.Status()
	if err != nil {
		return err
	}
	have := make([]Key, len(cur))
	for i, c := range cur {
		have[i] = c.PublicKey
	}
	changes, want, err := peerChanges(m.PublicKey(), peers, m.endpoints, have)
	if err != nil {
		return err
	}
	if err := m.apply(changes); err != nil {
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

// apply makes the changes to the interface's peers.
func (m *Mesh) apply(changes []peerChange) error {
	if m.kernel != nil {
		return m.kernel.configure(m.cfg.Device, kernelConfig(changes))
	}
	return m.dev.IpcSet(uapiConfig(changes))
}

// Status lists the interface's peers as WireGuard sees them.
func (m *Mesh) Status() ([]PeerStatus, error) {
	if m.kernel != nil {
		return m.kernel.status(m.cfg.Device)
	}
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
	if m.kernel != nil {
		m.kernel.close(m.nl, m.link)
	} else {
		m.dev.Close() // closes the TUN device: the kernel removes the interface
	}
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
