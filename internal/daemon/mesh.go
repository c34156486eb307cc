package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hangar-dev/hangar/internal/cluster"
	"github.com/hangar-dev/hangar/internal/mesh"
	"github.com/hangar-dev/hangar/internal/store"
)

// MeshOptions are the private network between a cluster's hosts (a
// WireGuard mesh, docs/mesh.md). A host of a cluster joins it unless Off.
type MeshOptions struct {
	Off bool
	// Port is the UDP port the host listens on (mesh.DefaultPort if 0).
	Port int
	// Userspace runs WireGuard in userspace (wireguard-go) even where
	// the kernel has it.
	Userspace bool
}

// startMesh puts a cluster host on the mesh: its /64 of the org's 6PN
// prefix (the machines' subnet from now on), its key, the WireGuard
// interface, its record for the other hosts, and a follower that keeps
// the peers equal to the other hosts. It does nothing for a single host.
// The returned stop removes the interface; the mesh is nil off the mesh.
func startMesh(ctx context.Context, o *Options, node *cluster.Node, st store.Store, log *slog.Logger) (func(), *mesh.Mesh, error) {
	if node == nil || o.Mesh.Off {
		return func() {}, nil, nil
	}
	base, err := netip.ParsePrefix(o.Network.Subnet6)
	if err != nil {
		return nil, nil, fmt.Errorf("mesh: --subnet6 %q: %w", o.Network.Subnet6, err)
	}
	org := netip.PrefixFrom(base.Addr(), 48).Masked()
	host := node.Name()
	sub, err := mesh.AllocateSubnet(ctx, st, org, host)
	if err != nil {
		return nil, nil, err
	}
	o.Network.Subnet6 = sub.String()
	o.Network.Mesh = mesh.DefaultDevice
	// Every host serves the Flycast range of the cluster's first /64, so
	// an app's Flycast address answers on each host, locally, whichever
	// host allocated it (docs/flycast.md).
	o.Network.Flycast6 = netip.PrefixFrom(netip.PrefixFrom(sub.Addr(), 48).Masked().Addr(), 64).String()
	key, err := mesh.LoadOrCreateKey(filepath.Join(o.DataDir, "mesh", "private.key"))
	if err != nil {
		return nil, nil, err
	}
	port := o.Mesh.Port
	if port == 0 {
		port = mesh.DefaultPort
	}
	u, err := url.Parse(node.ClusterURL())
	if err != nil || u.Hostname() == "" {
		return nil, nil, fmt.Errorf("mesh: this host's cluster URL %q names no host", node.ClusterURL())
	}
	dev, err := mesh.Up(mesh.Config{PrivateKey: key, ListenPort: port, Userspace: o.Mesh.Userspace, Log: log})
	if err != nil {
		return nil, nil, fmt.Errorf("%w; or run without the mesh (--no-mesh): machines then reach only their own host's", err)
	}
	// Org isolation: the mesh carries only the cluster's /48, delivers
	// only to this host's /64; nothing new enters the machines from
	// anywhere else (docs/mesh.md).
	if err := mesh.Isolate(mesh.Isolation{Bridge: o.Network.Bridge, Org: netip.PrefixFrom(sub.Addr(), 48).Masked(), Own: sub}); err != nil {
		dev.Close()
		return nil, nil, err
	}
	endpoint := net.JoinHostPort(u.Hostname(), strconv.Itoa(port))
	if err := mesh.Publish(ctx, st, host, dev.PublicKey(), endpoint); err != nil {
		dev.Close()
		return nil, nil, err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		mesh.Follow(fctx, st, host, dev, time.Minute, log)
	}()
	log.Info("on the mesh", "subnet", sub, "device", mesh.DefaultDevice, "wireguard", dev.Kind(), "endpoint", endpoint, "public_key", dev.PublicKey().String())
	return func() {
		cancel()
		<-done
		dev.Close()
	}, dev, nil
}
