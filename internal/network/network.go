// Package network gives each machine its own network namespace, joined to
// a host bridge by a veth pair, with a private IPv6 address in the style of
// Fly.io's 6PN (fdaa:...) and an IPv4 address. The daemon's proxy reaches
// machines on these addresses from the host.
package network

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Config is the host side of the machine network.
type Config struct {
	Bridge  string // bridge interface name, e.g. "hangar0" (at most 15 bytes)
	Subnet4 string // e.g. "172.19.0.0/16"; the bridge takes the first address
	Subnet6 string // e.g. "fdaa:0:1::/64"; the bridge takes ::1
	// Mesh, if set, is the interface to the other hosts' machines (the
	// WireGuard mesh): IPv6 through it keeps the machines' addresses (it
	// is not masqueraded), as between machines on the bridge.
	Mesh string
	// Flycast6, if set, is the 6PN subnet whose Flycast range (a /96 in
	// it, FlycastRange) this host serves instead of its own Subnet6's: the
	// hosts of a cluster all serve the one range, so an app's Flycast
	// address is the same, and local, on every host.
	Flycast6 string
}

// DefaultConfig is the network a daemon uses unless told otherwise.
var DefaultConfig = Config{Bridge: "hangar0", Subnet4: "172.19.0.0/16", Subnet6: "fdaa:0:1::/64"}

// Manager creates and removes machine network namespaces.
type Manager struct {
	cfg   Config
	net4  *net.IPNet
	net6  *net.IPNet
	gw4   net.IP
	gw6   net.IP
	log   *slog.Logger
	nsDir string

	poolMu  sync.Mutex // guards pool, filling, closed
	pool    []pooledNS // made ahead of need
	filling bool
	closed  bool
}

// New checks cfg and makes sure the bridge exists with its gateway
// addresses and that the host forwards packets. Idempotent.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.Bridge) == 0 || len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("network: bridge name %q must be 1-15 bytes", cfg.Bridge)
	}
	_, n4, err := net.ParseCIDR(cfg.Subnet4)
	if err != nil || n4.IP.To4() == nil {
		return nil, fmt.Errorf("network: subnet %q is not an IPv4 CIDR like 172.19.0.0/16", cfg.Subnet4)
	}
	_, n6, err := net.ParseCIDR(cfg.Subnet6)
	if err != nil || n6.IP.To4() != nil {
		return nil, fmt.Errorf("network: subnet %q is not an IPv6 CIDR like fdaa:0:1::/64", cfg.Subnet6)
	}
	m := &Manager{cfg: cfg, net4: n4, net6: n6, log: log, nsDir: "/var/run/netns"}
	m.gw4 = nthIP(n4, 1)
	m.gw6 = nthIP(n6, 1)
	if err := m.ensureBridge(); err != nil {
		return nil, err
	}
	if err := m.ensureNAT(); err != nil {
		// Machines still reach the host and each other; only the way out
		// is missing. Say so rather than refuse to run.
		log.Warn("machines will not reach networks beyond this host", "err", err)
	}
	return m, nil
}

// Gateways returns the bridge's addresses, which the host uses to reach
// machines and machines use as their default route.
func (m *Manager) Gateways() (net.IP, net.IP) { return m.gw4, m.gw6 }

// Subnets returns the machine subnets.
func (m *Manager) Subnets() (*net.IPNet, *net.IPNet) { return m.net4, m.net6 }

// AddressFor returns the n-th machine address pair (n >= 2; 1 is the
// gateway), or an error when the subnet has no room.
func (m *Manager) AddressFor(n int) (net.IP, net.IP, error) {
	ones, bits := m.net4.Mask.Size()
	if n < 2 || n >= (1<<(bits-ones))-1 {
		return nil, nil, fmt.Errorf("network: subnet %s has no address number %d; use a larger --subnet", m.net4, n)
	}
	return nthIP(m.net4, n), nthIP(m.net6, n), nil
}

func nthIP(n *net.IPNet, i int) net.IP {
	ip := make(net.IP, len(n.IP))
	copy(ip, n.IP)
	carry := i
	for k := len(ip) - 1; k >= 0 && carry > 0; k-- {
		sum := int(ip[k]) + carry
		ip[k] = byte(sum)
		carry = sum >> 8
	}
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

func (m *Manager) ensureBridge() error {
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		la := netlink.NewLinkAttrs()
		la.Name = m.cfg.Bridge
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("network: create bridge %s: %w", m.cfg.Bridge, err)
		}
		if br, err = netlink.LinkByName(m.cfg.Bridge); err != nil {
			return fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
		}
	}
	ones4, _ := m.net4.Mask.Size()
	ones6, _ := m.net6.Mask.Size()
	for _, a := range []*netlink.Addr{
		{IPNet: &net.IPNet{IP: m.gw4, Mask: net.CIDRMask(ones4, 32)}},
		{IPNet: &net.IPNet{IP: m.gw6, Mask: net.CIDRMask(ones6, 128)}, Flags: unix.IFA_F_NODAD},
	} {
		if err := netlink.AddrReplace(br, a); err != nil {
			return fmt.Errorf("network: address %s on %s: %w", a.IPNet, m.cfg.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("network: bring up %s: %w", m.cfg.Bridge, err)
	}
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			m.log.Warn("could not enable forwarding; machines reach only the host", "sysctl", f, "err", err)
		}
	}
	return nil
}

// nsName is the name of a machine's namespace under /var/run/netns.
func nsName(id string) string { return "hangar-" + id }

// NSPath is the namespace file of a machine.
func (m *Manager) NSPath(id string) string { return filepath.Join(m.nsDir, nsName(id)) }

func vethNames(id string) (host, peer string) {
	s := id
	if len(s) > 12 {
		s = s[:12]
	}
	return "hg" + s, "hp" + s
}

// Setup creates the machine's namespace with eth0 at ip4/ip6 and default
// routes through the bridge, and returns the namespace's path. A leftover
// namespace of the same id is replaced.
//
// The namespace and its veth pair come from a small pool made ahead of
// need (making them costs milliseconds, more while the kernel is still
// freeing the namespaces of destroyed machines); Setup only names them for
// the machine and gives them their addresses and routes.
func (m *Manager) Setup(id string, ip4, ip6 net.IP) (string, error) {
	if strings.ContainsAny(id, "/. ") || id == "" {
		return "", fmt.Errorf("network: invalid machine id %q", id)
	}
	t0 := time.Now()
	_ = m.Teardown(id)
	p, err := m.take()
	if err != nil {
		return "", fmt.Errorf("network: machine %s: %w", id, err)
	}
	defer p.ns.Close() // the named mount keeps the namespace
	tNS := time.Now()
	ok := false
	defer func() {
		if !ok {
			p.delLink()
			_ = m.Teardown(id)
		}
	}()
	if err := bindNS(p.ns, m.NSPath(id)); err != nil {
		return "", fmt.Errorf("network: machine %s: name namespace: %w", id, err)
	}
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return "", fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
	}
	// The addresses may have belonged to a machine that is gone: forget its
	// MAC, or the host keeps sending to it until the neighbor entry expires.
	for _, ip := range []net.IP{ip4, ip6} {
		_ = netlink.NeighDel(&netlink.Neigh{LinkIndex: br.Attrs().Index, IP: ip})
	}
	hostName, _ := vethNames(id)
	host, err := netlink.LinkByName(p.hostName)
	if err == nil {
		err = netlink.LinkSetName(host, hostName)
	}
	if err == nil {
		p.hostName = hostName
		err = netlink.LinkSetUp(host)
	}
	if err != nil {
		return "", fmt.Errorf("network: machine %s: host veth: %w", id, err)
	}
	h, err := netlink.NewHandleAt(p.ns)
	if err != nil {
		return "", fmt.Errorf("network: machine %s: netlink in namespace: %w", id, err)
	}
	defer h.Close()
	peer, err := h.LinkByName("eth0")
	if err != nil {
		return "", fmt.Errorf("network: machine %s: eth0: %w", id, err)
	}
	ones4, _ := m.net4.Mask.Size()
	ones6, _ := m.net6.Mask.Size()
	for _, a := range []*netlink.Addr{
		{IPNet: &net.IPNet{IP: ip4, Mask: net.CIDRMask(ones4, 32)}},
		{IPNet: &net.IPNet{IP: ip6, Mask: net.CIDRMask(ones6, 128)}, Flags: unix.IFA_F_NODAD},
	} {
		if err := h.AddrAdd(peer, a); err != nil {
			return "", fmt.Errorf("network: machine %s: address %s: %w", id, a.IPNet, err)
		}
	}
	if err := h.LinkSetUp(peer); err != nil {
		return "", fmt.Errorf("network: machine %s: bring up eth0: %w", id, err)
	}
	for _, gw := range []net.IP{m.gw4, m.gw6} {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw}); err != nil {
			return "", fmt.Errorf("network: machine %s: default route via %s: %w", id, gw, err)
		}
	}
	ok = true
	m.log.Debug("machine network made", "machine", id, "take", tNS.Sub(t0), "configure", time.Since(tNS))
	return m.NSPath(id), nil
}

// poolSize is how many namespaces Manager keeps made ahead; fillDelay is
// how long after taking one it makes more.
const (
	poolSize  = 2
	fillDelay = 100 * time.Millisecond
)

// pooledNS is a network namespace made ahead of need: anonymous (held by
// its fd, so it vanishes with the process that holds it, veth pair
// included), with lo up and eth0, the peer of a host veth that is enslaved
// to the bridge but down and named hostName.
type pooledNS struct {
	ns       netns.NsHandle
	hostName string
}

// discard deletes the veth pair and lets the namespace go.
func (p pooledNS) discard() {
	p.delLink()
	_ = p.ns.Close()
}

// delLink deletes the veth pair, if it is still there.
func (p pooledNS) delLink() {
	if l, err := netlink.LinkByName(p.hostName); err == nil {
		_ = netlink.LinkDel(l)
	}
}

// take returns a pooled namespace, else makes one, and has the pool
// refilled in the background.
func (m *Manager) take() (pooledNS, error) {
	m.poolMu.Lock()
	var p pooledNS
	have := len(m.pool) > 0
	if have {
		p = m.pool[len(m.pool)-1]
		m.pool = m.pool[:len(m.pool)-1]
	}
	fill := !m.filling && !m.closed
	m.filling = m.filling || fill
	m.poolMu.Unlock()
	if fill {
		// Later, not to compete with the start in progress for the CPU
		// and the kernel's network locks.
		time.AfterFunc(fillDelay, m.fill)
	}
	if have {
		return p, nil
	}
	return m.makePooled()
}

// fill makes namespaces until the pool is full (or closed).
func (m *Manager) fill() {
	for {
		m.poolMu.Lock()
		if m.closed || len(m.pool) >= poolSize {
			m.filling = false
			m.poolMu.Unlock()
			return
		}
		m.poolMu.Unlock()
		p, err := m.makePooled()
		m.poolMu.Lock()
		if err != nil || m.closed {
			m.filling = false
			m.poolMu.Unlock()
			if err != nil {
				m.log.Warn("make a network namespace ahead of need", "err", err)
			} else {
				p.discard()
			}
			return
		}
		m.pool = append(m.pool, p)
		m.poolMu.Unlock()
	}
}

// Close lets the namespaces made ahead go. Machines' namespaces stay. (A
// daemon that exits without Close leaves nothing: the pooled namespaces
// are anonymous and their veth pairs die with them.)
func (m *Manager) Close() {
	m.poolMu.Lock()
	pool := m.pool
	m.pool, m.closed = nil, true
	m.poolMu.Unlock()
	for _, p := range pool {
		p.discard()
	}
}

// makePooled makes an anonymous namespace with lo up and a veth pair into
// it (see pooledNS).
func (m *Manager) makePooled() (pooledNS, error) {
	ns, err := newAnonNS()
	if err != nil {
		return pooledNS{}, fmt.Errorf("create namespace: %w", err)
	}
	var b [4]byte
	_, _ = crand.Read(b[:])
	p := pooledNS{ns: ns, hostName: "hgp" + hex.EncodeToString(b[:])}
	ok := false
	defer func() {
		if !ok {
			p.discard()
		}
	}()
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return pooledNS{}, fmt.Errorf("bridge %s: %w", m.cfg.Bridge, err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = p.hostName
	la.MasterIndex = br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		return pooledNS{}, fmt.Errorf("create veth: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return pooledNS{}, fmt.Errorf("netlink in namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return pooledNS{}, fmt.Errorf("loopback: %w", err)
	}
	ok = true
	return p, nil
}

// bindNS names namespace ns by bind-mounting it at path (as `ip netns`
// names them), so that it outlives its fd and the daemon.
func bindNS(ns netns.NsHandle, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", int(ns)), path, "bind", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// Teardown removes the machine's veth and namespace. Idempotent.
func (m *Manager) Teardown(id string) error {
	hostName, _ := vethNames(id)
	var errs []error
	if l, err := netlink.LinkByName(hostName); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", hostName, err))
		}
	}
	if _, err := os.Stat(m.NSPath(id)); err == nil {
		if err := netns.DeleteNamed(nsName(id)); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network: machine %s: %w", id, errors.Join(errs...))
	}
	return nil
}

// Exists reports whether the machine's namespace is still there (it
// survives daemon restarts; a host reboot removes it).
func (m *Manager) Exists(id string) bool {
	_, err := os.Stat(m.NSPath(id))
	return err == nil
}

// RemoveBridge deletes the bridge and its NAT rules (tests; a daemon keeps
// them).
func (m *Manager) RemoveBridge() error {
	m.Close()
	m.deleteNATTables(&nftables.Conn{})
	l, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}

// newAnonNS creates a network namespace and returns its fd. The switch
// happens on a throwaway locked thread: if it cannot return to the host
// namespace, the goroutine exits still locked and Go discards that thread.
func newAnonNS() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			goruntime.UnlockOSThread()
			ch <- result{0, err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if serr := netns.Set(orig); serr != nil {
			if err == nil {
				ns.Close()
			}
			ch <- result{0, fmt.Errorf("return to host namespace: %w", serr)}
			return // thread stays locked and is discarded
		}
		goruntime.UnlockOSThread()
		ch <- result{ns, err}
	}()
	r := <-ch
	return r.ns, r.err
}
