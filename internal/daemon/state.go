package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
)

// EtcdOptions put the daemon's state in etcd instead of
// <data-dir>/state.db (`hangar server --etcd-endpoints`).
type EtcdOptions struct {
	// Endpoints are the client URLs of the etcd members.
	Endpoints []string
	// CAFile, CertFile and KeyFile are PEM files for https endpoints: the
	// CA that signed the members' certificates, and this daemon's client
	// certificate and key (both or neither).
	CAFile, CertFile, KeyFile string
	// Prefix is the namespace of this daemon's state in etcd (default
	// etcdstore.DefaultPrefix).
	Prefix string

	// lockName is the etcd lock this daemon holds (default stateLock). In
	// a cluster every host's daemon shares the namespace, so each holds a
	// lock of its own, named for the host.
	lockName string
}

// DefaultEtcdPrefix is the namespace of the state in etcd unless
// EtcdOptions.Prefix says otherwise.
const DefaultEtcdPrefix = etcdstore.DefaultPrefix

// stateLock names the etcd lock that makes one daemon at a time use a
// namespace, as the file lock does for state.db, when no host id is
// given; a daemon with a host id takes "host-<id>" instead: one daemon per
// host, several hosts on one namespace, each the authority for its own
// machines (docs/cluster.md).
const stateLock = "daemon"

func lockName(o Options) string {
	if o.HostID != "" {
		return "host-" + o.HostID
	}
	return stateLock
}

// state is the daemon's state store. On etcd it holds the namespace's lock
// until closed; lost closes if the lock is lost (nil for the file).
type state struct {
	store.Store
	lost  <-chan struct{}
	close func() error
	// relock takes the lock again after it was lost, waiting for etcd to
	// answer; it fails (wrapping store.ErrLocked) if another daemon took
	// it meanwhile. nil for the file.
	relock func(ctx context.Context) error
}

// openState opens the state: <data-dir>/state.db, or the etcd namespace of
// o.Etcd. lockWait is how long to wait for another daemon to let go of it
// (0: store.DefaultLockTimeout for the file; for etcd, long enough for the
// lease of a daemon that was killed to expire).
func openState(ctx context.Context, o Options, lockWait time.Duration) (*state, error) {
	if err := checkStateKind(o); err != nil {
		return nil, err
	}
	if o.Etcd == nil {
		st, err := store.OpenOptions(filepath.Join(o.DataDir, "state.db"), store.Options{LockTimeout: lockWait})
		if err != nil {
			return nil, err
		}
		return &state{Store: st, close: st.Close}, nil
	}
	e := o.Etcd
	cfg := clientv3.Config{Endpoints: e.Endpoints}
	if e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" || hasHTTPS(e.Endpoints) {
		tlsCfg, err := etcdstore.ClientTLS(e.CAFile, e.CertFile, e.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tlsCfg
	}
	st, err := etcdstore.Open(ctx, cfg, etcdstore.Options{Prefix: e.Prefix})
	if err != nil {
		return nil, err
	}
	if lockWait <= 0 {
		// Unlike a file lock, the lock of a daemon that was killed
		// lives on until its lease expires: a restart waits that long.
		lockWait = etcdstore.DefaultLockTTL + 5*time.Second
	}
	name := lockName(o)
	if e.lockName != "" {
		name = e.lockName // a cluster host's: daemon/<its name>
	}
	lock, err := st.Lock(ctx, name, lockWait, 0)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(o.DataDir, EtcdStateFile), []byte(etcdMarker(o)), 0o600); err != nil {
		lock.Unlock(ctx)
		st.Close()
		return nil, fmt.Errorf("data dir %s: %w", o.DataDir, err)
	}
	out := &state{Store: st, lost: lock.Done()}
	var mu sync.Mutex // guards lock
	out.close = func() error {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		mu.Lock()
		uerr := lock.Unlock(uctx)
		mu.Unlock()
		if err := st.Close(); err != nil {
			return err
		}
		return uerr
	}
	out.relock = func(ctx context.Context) error {
		for {
			l, err := st.Lock(ctx, name, lockWait, 0)
			if err == nil {
				mu.Lock()
				lock = l
				mu.Unlock()
				out.lost = l.Done()
				return nil
			}
			if errors.Is(err, store.ErrLocked) || ctx.Err() != nil {
				return err
			}
			select { // etcd still unreachable: try again
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	return out, nil
}

// EtcdStateFile, in the data dir, says that the state of the data dir's
// machines is in etcd, and in which namespace.
const EtcdStateFile = "state-etcd"

func etcdMarker(o Options) string {
	prefix := o.Etcd.Prefix
	if prefix == "" {
		prefix = etcdstore.DefaultPrefix
	}
	return "etcd namespace " + prefix + "\n"
}

// checkStateKind refuses to pair a data dir with a state other than its
// own: the data dir holds the machines, volumes and secrets key that the
// state describes, and a daemon on the wrong state would treat them as
// strangers.
func checkStateKind(o Options) error {
	marker, err := os.ReadFile(filepath.Join(o.DataDir, EtcdStateFile))
	switch {
	case err != nil && !os.IsNotExist(err):
		return fmt.Errorf("data dir %s: %w", o.DataDir, err)
	case err == nil && o.Etcd == nil:
		return fmt.Errorf("data dir %s keeps its state in etcd (%s, says %s): start the daemon with --etcd-endpoints and that --etcd-prefix, or use another --data-dir",
			o.DataDir, strings.TrimSpace(string(marker)), EtcdStateFile)
	case err == nil && string(marker) != etcdMarker(o):
		return fmt.Errorf("data dir %s belongs to %s (says %s), not %s: pass the same --etcd-prefix, or use another --data-dir",
			o.DataDir, strings.TrimSpace(string(marker)), EtcdStateFile, strings.TrimSpace(etcdMarker(o)))
	}
	if o.Etcd != nil {
		if _, err := os.Stat(filepath.Join(o.DataDir, "state.db")); err == nil {
			return fmt.Errorf("data dir %s holds a single-host state (state.db); with --etcd-endpoints it would be ignored and its machines treated as strangers: use another --data-dir (moving a single-host state into etcd is not built yet)", o.DataDir)
		}
	}
	return nil
}

func hasHTTPS(endpoints []string) bool {
	for _, ep := range endpoints {
		if strings.HasPrefix(ep, "https://") {
			return true
		}
	}
	return false
}

// describe names the state for logs and errors.
func (o Options) stateName() string {
	if o.Etcd == nil {
		return filepath.Join(o.DataDir, "state.db")
	}
	prefix := o.Etcd.Prefix
	if prefix == "" {
		prefix = etcdstore.DefaultPrefix
	}
	return fmt.Sprintf("etcd %s %s", strings.Join(o.Etcd.Endpoints, ","), prefix)
}
