package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Leaser is an optional capability of a Store (check it with a type
// assertion): keys that live only as long as the process that wrote them
// keeps them alive. The hosts registry marks a live daemon with one.
type Leaser interface {
	// PutLeased writes key = value unconditionally, bound to a lease of
	// ttl that the store renews in the background. The key is deleted
	// (a delete event for watchers) when the lease is released, or when it
	// was not renewed for ttl: the process died or lost the store. Done
	// of the result closes then. A later PutLeased of the same key gives
	// it a new lease.
	PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration) (LeasedKey, error)
}

// LeasedKey is a key written with Leaser.PutLeased.
type LeasedKey interface {
	// Done closes when the lease is lost (expired, released, or the store
	// closed): the key is gone or about to be, and must be written again.
	Done() <-chan struct{}
	// Release deletes the key and ends its lease at once (a clean
	// shutdown), rather than after ttl. Calling it twice is harmless.
	Release(ctx context.Context) error
}

// LeasedUpdater is an optional capability of a LeasedKey: writing a new
// value to the key under the same lease (no new lease per write, for a
// key rewritten often, like a host's edge record).
type LeasedUpdater interface {
	Update(ctx context.Context, value []byte) error
}

// PutLeased implements Leaser for the embedded store. One file has one
// writer process, so the key lives until Release or the store closes (a
// killed daemon's key stays until its next start writes it again): a
// single host is never unreachable to itself.
func (s *Local) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration) (LeasedKey, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("leased key %q: ttl %s must be positive: %w", key, ttl, ErrInvalid)
	}
	if _, err := s.Put(ctx, key, value, AnyRevision); err != nil {
		return nil, err
	}
	return &localLease{s: s, key: key, done: s.closing}, nil
}

type localLease struct {
	s    *Local
	key  string
	done <-chan struct{}
}

func (l *localLease) Done() <-chan struct{} { return l.done }

func (l *localLease) Release(ctx context.Context) error {
	_, err := l.s.Delete(ctx, l.key, AnyRevision)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("release leased key %q: %w", l.key, err)
	}
	return nil
}

// Update implements LeasedUpdater.
func (l *localLease) Update(ctx context.Context, value []byte) error {
	if _, err := l.s.Put(ctx, l.key, value, AnyRevision); err != nil {
		return fmt.Errorf("update leased key %q: %w", l.key, err)
	}
	return nil
}
