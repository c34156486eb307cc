package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/api"
	"github.com/hangar-dev/hangar/internal/cluster"
	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
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
			return nil, fmt.Errorf("data dir %s holds a single-host state (state.db): to make this host the first member of a new cluster with that state, stop the daemon and run `hangar cluster init --from-data-dir %s`; to join a cluster, use another --data-dir", o.DataDir, o.DataDir)
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

// MigratedStateFile is what state.db is renamed to once ClusterInitFromDataDir
// has copied it into etcd (kept, never read again).
const MigratedStateFile = "state.db.pre-cluster"

// migrateBatch is how many keys one etcd transaction copies (etcd takes at
// most 128 ops per transaction by default).
const migrateBatch = 64

// ClusterInitFromDataDir turns a single-host data dir (o.DataDir, its state
// in state.db) into the first member of a new cluster (`hangar cluster init
// --from-data-dir`): it makes the cluster (o.Cluster's addresses and
// voters), copies every key of state.db into the cluster's etcd namespace,
// checks the copy, and renames state.db to MigratedStateFile. The daemon
// using the data dir must be stopped (its machines keep running); the next
// `hangar server --data-dir` starts the member and re-adopts them. Until
// the rename, a failure removes the new cluster dir, so the data dir is as
// before. It returns how many keys were copied.
func ClusterInitFromDataDir(ctx context.Context, o Options) (n int, err error) {
	if o.Cluster == nil {
		o.Cluster = &ClusterOptions{}
	}
	c := *o.Cluster
	if c.Prefix == "" {
		c.Prefix = DefaultEtcdPrefix
	}
	if cluster.InCluster(o.DataDir) {
		return 0, fmt.Errorf("data dir %s is already a cluster host's (%s)", o.DataDir, filepath.Join(o.DataDir, "cluster"))
	}
	dbPath := filepath.Join(o.DataDir, "state.db")
	if _, err := os.Stat(dbPath); err != nil {
		return 0, fmt.Errorf("data dir %s has no single-host state (%w): with a new data dir, start `hangar server --cluster-init` instead", o.DataDir, err)
	}
	local, err := store.OpenOptions(dbPath, store.Options{})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return 0, fmt.Errorf("%w: stop the daemon using %s first (its machines keep running; `hangar server --data-dir %s` re-adopts them once the state is in the cluster)", err, o.DataDir, o.DataDir)
		}
		return 0, err
	}
	defer local.Close()
	kvs, err := local.List(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", dbPath, err)
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	cfg := cluster.Config{DataDir: o.DataDir, Name: c.Name, Region: o.Region, AdvertiseAddr: c.AdvertiseAddr,
		ClusterListen: c.ClusterListen, PeerListen: c.PeerListen, ClientListen: c.ClientListen, Voters: c.Voters, Log: log,
		SharedFiles: []string{secrets.KeyFile}}
	node, err := cluster.Open(ctx, cfg, true, "", "")
	if err != nil {
		return 0, err
	}
	renamed := false
	defer func() {
		node.Close()
		if !renamed {
			// Nothing of the attempt stays: the data dir is single-host.
			os.RemoveAll(filepath.Join(o.DataDir, "cluster"))
		}
	}()
	ca, cert, key := node.Files()
	tlsCfg, err := etcdstore.ClientTLS(ca, cert, key)
	if err != nil {
		return 0, err
	}
	remote, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: node.Endpoints(), TLS: tlsCfg}, etcdstore.Options{Prefix: c.Prefix})
	if err != nil {
		return 0, err
	}
	defer remote.Close()
	for i := 0; i < len(kvs); i += migrateBatch {
		var ops []store.Op
		for _, kv := range kvs[i:min(i+migrateBatch, len(kvs))] {
			ops = append(ops, store.Op{Key: kv.Key, Value: kv.Value, Expect: 0})
		}
		if _, err := remote.Txn(ctx, ops); err != nil {
			return 0, fmt.Errorf("copy the state into etcd (key %d of %d): %w", i, len(kvs), err)
		}
	}
	copied, err := remote.List(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("check the copy: %w", err)
	}
	if len(copied) != len(kvs) {
		return 0, fmt.Errorf("check the copy: %d keys in etcd, %d in %s", len(copied), len(kvs), dbPath)
	}
	for i := range kvs {
		if copied[i].Key != kvs[i].Key || !bytes.Equal(copied[i].Value, kvs[i].Value) {
			return 0, fmt.Errorf("check the copy: key %q differs in etcd", kvs[i].Key)
		}
	}
	o.Etcd = &EtcdOptions{Prefix: c.Prefix}
	if err := fsutil.WriteFileAtomic(filepath.Join(o.DataDir, EtcdStateFile), []byte(etcdMarker(o)), 0o600); err != nil {
		return 0, fmt.Errorf("data dir %s: %w", o.DataDir, err)
	}
	local.Close()
	if err := os.Rename(dbPath, filepath.Join(o.DataDir, MigratedStateFile)); err != nil {
		os.Remove(filepath.Join(o.DataDir, EtcdStateFile))
		return 0, fmt.Errorf("data dir %s: %w", o.DataDir, err)
	}
	renamed = true
	log.Info("the single-host state is now the cluster's", "keys", len(kvs), "cluster", node.ClusterID(), "join_url", node.ClusterURL())
	return len(kvs), nil
}
