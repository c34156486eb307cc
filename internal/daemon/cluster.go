package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/api"
	"github.com/hangar-dev/hangar/internal/cluster"
	"github.com/hangar-dev/hangar/internal/secrets"
)

// ClusterOptions make this daemon a host of a cluster with an embedded
// etcd (`hangar server --cluster-init` or `--join`; docs/cluster-join.md).
// A data dir that is in a cluster stays in it: the daemon restarts its
// member from <data-dir>/cluster whatever these say.
type ClusterOptions struct {
	// Init makes a new cluster with Voters voting members (3 or 5).
	Init   bool
	Voters int
	// Join is a member's cluster listener (https://HOST:PORT) and
	// JoinToken a token from `hangar cluster join-token`.
	Join, JoinToken string
	// Name is this host's name in the cluster (default: the hostname).
	Name string
	// AdvertiseAddr is the address other hosts reach this one at; the
	// listen addresses default to it with ports 4281, 2380 and 2379.
	AdvertiseAddr                           string
	ClusterListen, PeerListen, ClientListen string
	// Prefix is the namespace of the state in etcd (default
	// DefaultEtcdPrefix), shared by every host of the cluster.
	Prefix string
}

// clusterRetry is how long a reloading daemon waits for the old one to
// stop its etcd member (ports and data dir) before starting its own.
const clusterRetry = 2 * time.Minute

// openCluster starts this host's part of the cluster when the daemon is
// asked to (o.Cluster) or its data dir is in one, and points the state at
// the cluster's etcd; nil when neither.
func openCluster(ctx context.Context, o *Options, reloading bool, log *slog.Logger) (*cluster.Node, error) {
	in := cluster.InCluster(o.DataDir)
	if o.Cluster == nil && !in {
		return nil, nil
	}
	if o.Etcd != nil {
		if in {
			return nil, fmt.Errorf("data dir %s is a host of a cluster with an embedded etcd (%s): drop --etcd-endpoints, or use another --data-dir",
				o.DataDir, filepath.Join(o.DataDir, "cluster"))
		}
		return nil, errors.New("--etcd-endpoints is for an external etcd; --cluster-init and --join make the daemon run its own: use one or the other")
	}
	c := o.Cluster
	if c == nil {
		c = &ClusterOptions{}
	}
	if !in {
		if _, err := os.Stat(filepath.Join(o.DataDir, "state.db")); err == nil {
			return nil, fmt.Errorf("data dir %s holds a single-host state (state.db); a new cluster host needs a data dir without one (moving a single-host state into a cluster is not built yet)", o.DataDir)
		}
	}
	if c.Prefix == "" {
		// Restarted without flags: the namespace the data dir recorded.
		if b, err := os.ReadFile(filepath.Join(o.DataDir, EtcdStateFile)); err == nil {
			c.Prefix = strings.TrimSpace(strings.TrimPrefix(string(b), "etcd namespace "))
		}
	}
	cfg := cluster.Config{DataDir: o.DataDir, Name: c.Name, Region: o.Region, AdvertiseAddr: c.AdvertiseAddr,
		ClusterListen: c.ClusterListen, PeerListen: c.PeerListen, ClientListen: c.ClientListen, Voters: c.Voters, Log: log,
		SharedFiles: []string{secrets.KeyFile}}
	deadline := time.Now().Add(clusterRetry)
	for {
		node, err := cluster.Open(ctx, cfg, c.Init, c.Join, c.JoinToken)
		if err == nil {
			ca, cert, key := node.Files()
			o.Etcd = &EtcdOptions{Endpoints: node.Endpoints(), CAFile: ca, CertFile: cert, KeyFile: key, Prefix: c.Prefix,
				lockName: stateLock + "/" + node.Name()}
			return node, nil
		}
		// A reloading daemon's predecessor still runs the member until it
		// has handed over: try again until it is gone.
		if !reloading || !in || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		log.Info("waiting for the previous daemon to stop its etcd member", "err", err)
		time.Sleep(250 * time.Millisecond)
	}
}

// apiCluster hands the node to the API, or nil (not a nil *Node in an
// interface) on a single host.
func apiCluster(n *cluster.Node) api.Cluster {
	if n == nil {
		return nil
	}
	return n
}
