package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The two WireGuard implementations share one description of a change to
// the peers (peerChange, made by peerChanges from the host set); each
// renders it its own way: wireguard-go as UAPI text (uapiConfig), the
// kernel's as a wgctrl configuration sent over generic netlink
// (kernelConfig). The private key is given to the interface on this host
// only, in both.

// peerChange is one peer to add or update, or to remove.
type peerChange struct {
	Key Key
	// Remove drops the peer; the other fields are unused then.
	Remove bool
	// Endpoint is set only when it changed since the last SetPeers: an
	// unchanged one is not set again, so WireGuard keeps the address it
	// learnt from the peer's packets (roaming).
	Endpoint   netip.AddrPort
	Keepalive  time.Duration
	AllowedIPs []netip.Prefix // replace the peer's
}

// peerChanges validates the host set and computes the changes that make
// the interface's peers exactly peers, given the endpoints set last time
// (last) and the peers the interface has now (have); want is the prefixes
// to route through it.
func peerChanges(own Key, peers []Peer, last map[Key]netip.AddrPort, have []Key) (changes []peerChange, want []netip.Prefix, err error) {
	seen := map[Key]string{}
	for _, p := range peers {
		if p.PublicKey == own {
			return nil, nil, fmt.Errorf("mesh: peer %s has this host's own public key: two hosts share a data dir's mesh key; remove mesh/private.key on one of them", p.Host)
		}
		if prev, dup := seen[p.PublicKey]; dup {
			return nil, nil, fmt.Errorf("mesh: hosts %s and %s publish the same public key", prev, p.Host)
		}
		seen[p.PublicKey] = p.Host
		if !p.Endpoint.IsValid() {
			return nil, nil, fmt.Errorf("mesh: peer %s has no endpoint", p.Host)
		}
		c := peerChange{Key: p.PublicKey, Keepalive: p.Keepalive}
		if prev, ok := last[p.PublicKey]; !ok || prev != p.Endpoint {
			c.Endpoint = p.Endpoint
		}
		for _, a := range p.AllowedIPs {
			a = a.Masked()
			for _, w := range want {
				if w.Overlaps(a) {
					return nil, nil, fmt.Errorf("mesh: peer %s's prefix %s overlaps another peer's %s", p.Host, a, w)
				}
			}
			want = append(want, a)
			c.AllowedIPs = append(c.AllowedIPs, a)
		}
		changes = append(changes, c)
	}
	// Peers no longer in the set are removed. Peers are changed in
	// place, never replaced all at once: that would end every session
	// and drop the traffic between the hosts that stay while one joins
	// or leaves.
	for _, k := range have {
		if _, keep := seen[k]; !keep {
			changes = append(changes, peerChange{Key: k, Remove: true})
		}
	}
	return changes, want, nil
}

// uapiConfig renders changes as wireguard-go's UAPI "set" text.
func uapiConfig(changes []peerChange) string {
	var b strings.Builder
	for _, c := range changes {
		fmt.Fprintf(&b, "public_key=%s\n", c.Key.hex())
		if c.Remove {
			b.WriteString("remove=true\n")
			continue
		}
		if c.Endpoint.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", c.Endpoint)
		}
		b.WriteString("replace_allowed_ips=true\n")
		if c.Keepalive > 0 {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(c.Keepalive/time.Second))
		}
		for _, a := range c.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	return b.String()
}

// kernelConfig renders changes as a wgctrl configuration of the kernel's
// interface (the peers only: the key and port were set at Up).
func kernelConfig(changes []peerChange) wgtypes.Config {
	var cfg wgtypes.Config
	for _, c := range changes {
		pc := wgtypes.PeerConfig{PublicKey: wgtypes.Key(c.Key), Remove: c.Remove}
		if !c.Remove {
			pc.ReplaceAllowedIPs = true
			if c.Endpoint.IsValid() {
				pc.Endpoint = net.UDPAddrFromAddrPort(c.Endpoint)
			}
			if c.Keepalive > 0 {
				ka := c.Keepalive.Truncate(time.Second)
				pc.PersistentKeepaliveInterval = &ka
			}
			for _, a := range c.AllowedIPs {
				pc.AllowedIPs = append(pc.AllowedIPs, *prefixNet(a))
			}
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	return cfg
}

// kernelDev is the kernel's WireGuard interface, configured over generic
// netlink.
type kernelDev struct {
	wg *wgctrl.Client
}

// upKernel creates a "wireguard" link and configures it with the key and
// port. An error means the kernel has no WireGuard (or refused it): the
// caller falls back to userspace, and nothing is left behind.
func upKernel(cfg Config, nl *netlink.Handle, log *slog.Logger) (*Mesh, error) {
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = cfg.Device, cfg.MTU
	if err := nl.LinkAdd(&netlink.Wireguard{LinkAttrs: la}); err != nil {
		return nil, fmt.Errorf("create a wireguard link %s: %w", cfg.Device, err)
	}
	link, err := nl.LinkByName(cfg.Device)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("find %s: %w", cfg.Device, err), delLink(nl, cfg.Device))
	}
	fail := func(err error) (*Mesh, error) {
		_ = nl.LinkDel(link)
		return nil, err
	}
	wg, err := wgctrl.New()
	if err != nil {
		return fail(fmt.Errorf("wgctrl: %w", err))
	}
	port := cfg.ListenPort
	key := wgtypes.Key(cfg.PrivateKey)
	if err := wg.ConfigureDevice(cfg.Device, wgtypes.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
		wg.Close()
		return fail(fmt.Errorf("configure %s (port %d in use?): %w", cfg.Device, port, err))
	}
	m := &Mesh{cfg: cfg, kernel: &kernelDev{wg: wg}, nl: nl, log: log}
	if err := m.linkUp(link); err != nil {
		wg.Close()
		return fail(err)
	}
	return m, nil
}

func delLink(nl *netlink.Handle, name string) error {
	l, err := nl.LinkByName(name)
	if err != nil {
		return nil
	}
	return nl.LinkDel(l)
}

func (k *kernelDev) configure(name string, cfg wgtypes.Config) error {
	return k.wg.ConfigureDevice(name, cfg)
}

func (k *kernelDev) status(name string) ([]PeerStatus, error) {
	d, err := k.wg.Device(name)
	if err != nil {
		return nil, fmt.Errorf("mesh: read status of %s: %w", name, err)
	}
	out := make([]PeerStatus, 0, len(d.Peers))
	for _, p := range d.Peers {
		ps := PeerStatus{PublicKey: Key(p.PublicKey), LastHandshake: p.LastHandshakeTime, RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		if ps.LastHandshake.Unix() <= 0 {
			ps.LastHandshake = time.Time{}
		}
		for _, a := range p.AllowedIPs {
			if pf, ok := netipPrefix(&a); ok {
				ps.AllowedIPs = append(ps.AllowedIPs, pf)
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

func (k *kernelDev) close(nl *netlink.Handle, link netlink.Link) {
	if link != nil {
		_ = nl.LinkDel(link)
	}
	_ = k.wg.Close()
}
