package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/hangar-dev/hangar/internal/hosts"
	"github.com/hangar-dev/hangar/internal/mesh"
	"github.com/hangar-dev/hangar/internal/network"
	"github.com/hangar-dev/hangar/internal/store"
)

// rttInterval is how often a mesh host measures its RTT to the others.
const rttInterval = 2 * time.Second

// startRTT follows the hosts and the RTTs between them (DNS's nearest and
// reachability read them) and, on a mesh host, measures this host's RTT to
// every other host over the mesh: a UDP echo on each host's own address of
// its /64 (its bridge's ::1, port hosts.RTTPort), so the probes take the
// path machines' traffic takes (docs/mesh.md says why not WireGuard's
// handshakes). The returned stop ends both.
func startRTT(ctx context.Context, o Options, st store.Store, netm *network.Manager, log *slog.Logger) (*hosts.RTTs, func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rtts := &hosts.RTTs{Store: st, Log: log}
	if err := rtts.Refresh(rctx); err != nil {
		log.Warn("read the hosts and their RTTs", "err", err)
	}
	done := make(chan struct{}, 2)
	go func() { rtts.Run(rctx, 5*time.Second); done <- struct{}{} }()
	waits := 1
	if o.Network.Mesh != "" {
		waits++
		go func() { measureRTT(rctx, o, st, netm, log); done <- struct{}{} }()
	}
	return rtts, func() {
		cancel()
		for range waits {
			<-done
		}
	}
}

// measureRTT runs the prober until ctx ends. Binding the bridge's address
// is retried: IPv6 duplicate address detection may hold it for a moment.
func measureRTT(ctx context.Context, o Options, st store.Store, netm *network.Manager, log *slog.Logger) {
	_, gw6 := netm.Gateways()
	self, _ := netip.AddrFromSlice(gw6)
	own, _ := netip.ParsePrefix(o.Network.Subnet6)
	var conn *net.UDPConn
	for {
		var err error
		conn, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(self.Unmap(), hosts.RTTPort)))
		if err == nil {
			break
		}
		log.Debug("rtt: bind the echo; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	p := &hosts.Prober{Self: o.HostID, Conn: conn, Store: st, Log: log,
		Targets: func(ctx context.Context) ([]netip.AddrPort, error) {
			members, _, err := mesh.Members(ctx, st)
			if err != nil {
				return nil, err
			}
			var out []netip.AddrPort
			for _, m := range members {
				sub, err := netip.ParsePrefix(m.Subnet)
				if err != nil || sub.Masked() == own.Masked() || m.PublicKey == nil {
					continue
				}
				out = append(out, netip.AddrPortFrom(sub.Masked().Addr().Next(), hosts.RTTPort))
			}
			return out, nil
		}}
	served := make(chan struct{})
	go func() { p.Serve(); close(served) }()
	p.Run(ctx, rttInterval)
	conn.Close()
	<-served
}

// meshPrefixes is the org's 6PN /48 on a mesh host (the other hosts'
// machines are in it), nothing on a single host.
func meshPrefixes(o Options) []netip.Prefix {
	sub, err := netip.ParsePrefix(o.Network.Subnet6)
	if o.Network.Mesh == "" || err != nil {
		return nil
	}
	return []netip.Prefix{netip.PrefixFrom(sub.Addr(), 48).Masked()}
}
