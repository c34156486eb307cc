package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

// Member is a host's record in the mesh, as every other host reads it:
// its /64, its public key and where it listens. It is the allocation
// record of AllocateSubnet, completed by Publish.
type Member struct {
	Host      string `json:"host"`
	Index     int    `json:"index"`
	Subnet    string `json:"subnet"`
	PublicKey *Key   `json:"public_key,omitempty"`
	// Endpoint is HOST:PORT, HOST an IP or a DNS name resolved by peers.
	Endpoint string `json:"endpoint,omitempty"`
}

// Publish completes host's record (made by AllocateSubnet) with its
// public key and endpoint, so the other hosts add it as a peer.
func Publish(ctx context.Context, st store.Store, host string, pub Key, endpoint string) error {
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return fmt.Errorf("mesh: endpoint %q: want HOST:PORT: %w", endpoint, err)
	}
	for attempt := 0; attempt < 16; attempt++ {
		var m Member
		rev, err := store.GetJSON(ctx, st, hostKeyPrefix+host, &m)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("mesh: host %s has no subnet yet (AllocateSubnet first)", host)
		}
		if err != nil {
			return fmt.Errorf("mesh: read host %s: %w", host, err)
		}
		if m.PublicKey != nil && *m.PublicKey == pub && m.Endpoint == endpoint {
			return nil
		}
		m.PublicKey, m.Endpoint = &pub, endpoint
		b, _ := json.Marshal(m)
		if _, err := st.Put(ctx, hostKeyPrefix+host, b, rev); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("mesh: publish host %s: %w", host, err)
		}
	}
	return fmt.Errorf("mesh: publish host %s: too many concurrent changes, try again", host)
}

// Members lists every host's record.
func Members(ctx context.Context, st store.Store) ([]Member, int64, error) {
	kvs, err := st.List(ctx, hostKeyPrefix)
	if err != nil {
		return nil, 0, fmt.Errorf("mesh: list hosts: %w", err)
	}
	var rev int64
	out := make([]Member, 0, len(kvs))
	for _, kv := range kvs {
		rev = max(rev, kv.ModRevision)
		var m Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			continue // not ours to judge; a damaged record is no peer
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, rev, nil
}

// Resolver finds the addresses of an endpoint's host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

func defaultResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// Peers turns the other hosts' records into peers: those with a public
// key and an endpoint that resolves. A record it cannot use is reported
// in skipped (host: reason), not an error: one bad host must not cut the
// others off.
func Peers(ctx context.Context, self string, members []Member, resolve Resolver) (peers []Peer, skipped map[string]string) {
	if resolve == nil {
		resolve = defaultResolver
	}
	skipped = map[string]string{}
	for _, m := range members {
		if m.Host == self {
			continue
		}
		if m.PublicKey == nil || m.Endpoint == "" {
			skipped[m.Host] = "no public key or endpoint published yet"
			continue
		}
		sub, err := netip.ParsePrefix(m.Subnet)
		if err != nil {
			skipped[m.Host] = "bad subnet " + m.Subnet
			continue
		}
		h, p, err := net.SplitHostPort(m.Endpoint)
		port, perr := strconv.Atoi(p)
		if err != nil || perr != nil || port < 1 || port > 65535 {
			skipped[m.Host] = "bad endpoint " + m.Endpoint
			continue
		}
		addr, err := netip.ParseAddr(h)
		if err != nil {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			addrs, rerr := resolve(rctx, h)
			cancel()
			if rerr != nil || len(addrs) == 0 {
				skipped[m.Host] = fmt.Sprintf("endpoint %s does not resolve: %v", h, rerr)
				continue
			}
			addr = addrs[0]
		}
		peers = append(peers, Peer{Host: m.Host, PublicKey: *m.PublicKey, Endpoint: netip.AddrPortFrom(addr.Unmap(), uint16(port)),
			AllowedIPs: []netip.Prefix{sub}, Keepalive: 25 * time.Second})
	}
	return peers, skipped
}

// Follow keeps dev's peers equal to the other hosts' records until ctx
// ends: once now, then at every change (a watch on the records), and
// every resync as a safety net (an endpoint's DNS name may move).
func Follow(ctx context.Context, st store.Store, self string, dev interface{ SetPeers([]Peer) error }, resync time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	if resync <= 0 {
		resync = time.Minute
	}
	var lastSkipped string
	apply := func() int64 {
		members, rev, err := Members(ctx, st)
		if err != nil {
			log.Warn("mesh: read the hosts; keeping the current peers", "err", err)
			return 0
		}
		peers, skipped := Peers(ctx, self, members, nil)
		if s := fmt.Sprint(skipped); len(skipped) > 0 && s != lastSkipped {
			log.Warn("mesh: hosts left out of the mesh", "hosts", skipped)
			lastSkipped = s
		}
		if err := dev.SetPeers(peers); err != nil {
			log.Warn("mesh: set peers", "err", err)
			return rev
		}
		log.Debug("mesh: peers set", "peers", len(peers))
		return rev
	}
	for ctx.Err() == nil {
		rev := apply()
		if rev == 0 {
			if r, err := st.Revision(ctx); err == nil {
				rev = r
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		ch, err := st.Watch(wctx, hostKeyPrefix, rev)
		if err != nil {
			cancel()
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			continue
		}
		tick := time.NewTicker(resync)
	watch:
		for {
			select {
			case <-ctx.Done():
				break watch
			case _, ok := <-ch:
				if !ok {
					break watch // watch again from a fresh list
				}
				apply()
			case <-tick.C:
				apply()
			}
		}
		tick.Stop()
		cancel()
	}
}
