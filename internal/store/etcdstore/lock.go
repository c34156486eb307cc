package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/hangar-dev/hangar/internal/store"
)

// DefaultLockTTL is how long a lock outlives a holder that stopped renewing
// it (crashed, or cut off from etcd).
const DefaultLockTTL = 10 * time.Second

// Lock is a held owner lock (see Store.Lock).
type Lock struct {
	name string
	sess *concurrency.Session
	mu   *concurrency.Mutex
}

// Lock takes the lock name of the store's namespace (under
// <prefix>locks/<name>/): one holder at a time across processes and hosts,
// like the embedded store's file lock. It waits at most wait; when someone
// else still holds it then, the error wraps store.ErrLocked. The lock lives
// on an etcd lease of ttl (0: DefaultLockTTL) that this process renews: a
// holder that crashes frees it after ttl. If the holder cannot renew it for
// ttl (etcd unreachable), Done closes and another process may take the lock:
// the holder must then stop acting as the owner.
func (s *Store) Lock(ctx context.Context, name string, wait, ttl time.Duration) (*Lock, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	secs := max(1, int((ttl+time.Second-1)/time.Second))
	// Grant the lease within the request timeout; the session then renews
	// it until the store closes.
	octx, cancel := s.opContext(ctx)
	lease, err := s.cli.Grant(octx, int64(secs))
	if err != nil {
		cancel()
		return nil, s.mapErr(ctx, octx, "lock "+name, err)
	}
	cancel()
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease.ID), concurrency.WithContext(s.ctx))
	if err != nil {
		return nil, s.mapErr(ctx, nil, "lock "+name, err)
	}
	mu := concurrency.NewMutex(sess, s.opts.Prefix+"locks/"+name+"/")
	wctx, cancelWait := context.WithTimeout(ctx, wait)
	defer cancelWait()
	if err := mu.Lock(wctx); err != nil {
		sess.Close()
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("lock %s of etcd namespace %s: another process holds it (is another hangar daemon using this namespace?); gave up after %s: %w",
				name, s.opts.Prefix, wait, store.ErrLocked)
		}
		return nil, s.mapErr(ctx, nil, "lock "+name, err)
	}
	return &Lock{name: name, sess: sess, mu: mu}, nil
}

// Done closes when the lock is lost: its lease expired or the store closed.
func (l *Lock) Done() <-chan struct{} { return l.sess.Done() }

// Unlock releases the lock (and its lease) so that a waiting process gets it
// at once rather than after the lease's ttl. It gives up when ctx ends
// (the lease then expires by itself): Session.Close would wait up to the
// lease's ttl, so a daemon whose etcd had lost its quorum took that long
// to stop.
func (l *Lock) Unlock(ctx context.Context) error {
	err := l.mu.Unlock(ctx)
	l.sess.Orphan()
	if _, rerr := l.sess.Client().Revoke(ctx, l.sess.Lease()); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("unlock %s: %w", l.name, err)
	}
	return nil
}
