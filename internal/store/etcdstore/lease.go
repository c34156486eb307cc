package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/store"
)

var _ store.Leaser = (*Store)(nil)

// PutLeased implements store.Leaser: the key is put under a fresh etcd
// lease of ttl (whole seconds, at least 1) that this process renews until
// Release or Close; etcd deletes the key when the lease expires, so a
// daemon that was killed or cut off from etcd loses it after ttl.
func (s *Store) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration) (store.LeasedKey, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := validKey(0, key); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("leased key %q: ttl %s must be positive: %w", key, ttl, store.ErrInvalid)
	}
	secs := max(1, int64((ttl+time.Second-1)/time.Second))
	octx, cancel := s.opContext(ctx)
	defer cancel()
	lease, err := s.cli.Grant(octx, secs)
	if err != nil {
		return nil, s.mapErr(ctx, octx, fmt.Sprintf("lease for %q", key), err)
	}
	if _, err := s.cli.Put(octx, s.key(key), string(value), clientv3.WithLease(lease.ID)); err != nil {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = s.cli.Revoke(rctx, lease.ID)
		rcancel()
		return nil, s.mapErr(ctx, octx, fmt.Sprintf("write leased %q", key), err)
	}
	kctx, stop := context.WithCancel(s.ctx)
	ch, err := s.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		stop()
		return nil, s.mapErr(ctx, nil, fmt.Sprintf("keep %q alive", key), err)
	}
	l := &leasedKey{s: s, key: key, id: lease.ID, stop: stop, done: make(chan struct{})}
	go func() {
		// The channel closes when the lease can no longer be renewed
		// (expired, revoked) or kctx ends.
		for range ch {
		}
		close(l.done)
	}()
	return l, nil
}

type leasedKey struct {
	s    *Store
	key  string
	id   clientv3.LeaseID
	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

func (l *leasedKey) Done() <-chan struct{} { return l.done }

func (l *leasedKey) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		l.stop()
		if l.s.closed.Load() {
			return
		}
		octx, cancel := l.s.opContext(ctx)
		defer cancel()
		if _, rerr := l.s.cli.Revoke(octx, l.id); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			err = l.s.mapErr(ctx, octx, fmt.Sprintf("release leased %q", l.key), rerr)
		}
	})
	return err
}

// Update implements store.LeasedUpdater: the new value under the key's
// lease. Once the lease is lost it fails (write the key again with
// PutLeased).
func (l *leasedKey) Update(ctx context.Context, value []byte) error {
	select {
	case <-l.done:
		return fmt.Errorf("update leased %q: the lease is lost: %w", l.key, store.ErrUnavailable)
	default:
	}
	octx, cancel := l.s.opContext(ctx)
	defer cancel()
	if _, err := l.s.cli.Put(octx, l.s.key(l.key), string(value), clientv3.WithLease(l.id)); err != nil {
		return l.s.mapErr(ctx, octx, fmt.Sprintf("update leased %q", l.key), err)
	}
	return nil
}
