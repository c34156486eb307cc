package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/store"
)

// Watch implements store.Store with an etcd watch on the namespaced prefix
// from etcd revision afterRev+base+1, with previous values (a delete event
// carries the key's last value). etcd replays history and then streams live
// changes on one stream, so there is no hand-over to get wrong.
//
// As in the embedded store, a watcher replaying history (revisions up to
// the one current when Watch was called) waits for its consumer. A live
// revision is forwarded whole or not at all: if the channel's free space
// cannot take all of its events, the watch is closed with
// store.ErrWatcherLagged, and watching again from the last revision received
// loses nothing. If the member the watch is on loses its leader (or the
// stream breaks), the watch closes with an error wrapping
// store.ErrUnavailable; the same recovery applies.
func (s *Store) Watch(ctx context.Context, prefix string, afterRev int64) (<-chan store.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if afterRev < 0 {
		return nil, fmt.Errorf("watch from revision %d: %w", afterRev, store.ErrInvalid)
	}
	start := afterRev + s.base + 1
	replayEnd, err := s.checkCompacted(ctx, start, afterRev)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()

	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	wch := s.cli.Watch(clientv3.WithRequireLeader(wctx), s.key(prefix),
		clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithPrevKV())
	ch := make(chan store.Event, s.opts.WatchBuffer)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		s.forward(ctx, wch, ch, replayEnd)
	}()
	return ch, nil
}

// checkCompacted fails with store.ErrCompacted when etcd no longer has the
// revisions from start on: a read at start is refused exactly when a watch
// from start would be. A compaction racing with the watch's creation is
// still reported, through store.WatchErr. It returns the etcd revision up to
// which the watch replays history (start-1 if start is in the future).
func (s *Store) checkCompacted(ctx context.Context, start, afterRev int64) (int64, error) {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.metaKey, clientv3.WithRev(start), clientv3.WithCountOnly())
	switch {
	case err == nil:
		return resp.Header.Revision, nil
	case errors.Is(err, rpctypes.ErrFutureRev):
		return start - 1, nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return 0, fmt.Errorf("watch from revision %d: etcd has compacted its history past it; list again and watch from a fresh revision: %w", afterRev, store.ErrCompacted)
	}
	return 0, s.mapErr(ctx, octx, fmt.Sprintf("watch from revision %d", afterRev), err)
}

// forward copies events from wch to ch, whole revisions at a time, and
// closes ch with the reason the watch ended. Events up to etcd revision
// replayEnd are history: for them it waits for the consumer.
func (s *Store) forward(ctx context.Context, wch clientv3.WatchChan, ch chan store.Event, replayEnd int64) {
	var cause error
	for resp := range wch {
		if resp.CompactRevision != 0 {
			cause = fmt.Errorf("watch: etcd compacted its history up to store revision %d while the watch replayed it; list again and watch from a fresh revision: %w",
				s.rev(resp.CompactRevision), store.ErrCompacted)
			break
		}
		if err := resp.Err(); err != nil {
			cause = err
			break
		}
		if resp.Canceled {
			cause = fmt.Errorf("canceled by etcd: %s", resp.CancelReason)
			break
		}
		evs := resp.Events
		for i := 0; i < len(evs); {
			j := i + 1
			for j < len(evs) && evs[j].Kv.ModRevision == evs[i].Kv.ModRevision {
				j++
			}
			if evs[i].Kv.ModRevision <= replayEnd {
				for _, ev := range evs[i:j] {
					select {
					case ch <- s.event(ev):
					case <-ctx.Done():
						s.closeWatch(ctx, ch, nil)
						return
					case <-s.ctx.Done():
						s.closeWatch(ctx, ch, nil)
						return
					}
				}
				i = j
				continue
			}
			// Only this goroutine sends on ch, so its free space can
			// only grow until the sends below.
			if cap(ch)-len(ch) < j-i {
				store.CloseWatch(ch, store.ErrWatcherLagged)
				return
			}
			for _, ev := range evs[i:j] {
				ch <- s.event(ev)
			}
			i = j
		}
	}
	if cause == nil {
		cause = errors.New("etcd ended the watch stream")
	}
	s.closeWatch(ctx, ch, cause)
}

// closeWatch closes ch with the reason WatchErr must report: the store's
// closing and the end of ctx come before cause (whatever etcd said then).
func (s *Store) closeWatch(ctx context.Context, ch chan store.Event, cause error) {
	switch {
	case s.closed.Load():
		store.CloseWatch(ch, store.ErrClosed)
	case ctx.Err() != nil:
		store.CloseWatch(ch, nil)
	case errors.Is(cause, store.ErrCompacted):
		store.CloseWatch(ch, cause)
	default:
		store.CloseWatch(ch, unavailable("watch", cause))
	}
}

func (s *Store) event(ev *clientv3.Event) store.Event {
	key := strings.TrimPrefix(string(ev.Kv.Key), s.kvPrefix)
	rev := s.rev(ev.Kv.ModRevision)
	if ev.Type == clientv3.EventTypeDelete {
		kv := store.KV{Key: key, ModRevision: rev}
		// etcd's delete event has only the key; the last value and create
		// revision come from the previous version (absent only if that
		// was compacted away).
		if p := ev.PrevKv; p != nil {
			kv.Value = p.Value
			kv.CreateRevision = s.rev(p.CreateRevision)
		}
		return store.Event{Type: store.EventDelete, KV: kv, Revision: rev}
	}
	return store.Event{Type: store.EventPut, Revision: rev, KV: store.KV{
		Key: key, Value: ev.Kv.Value, CreateRevision: s.rev(ev.Kv.CreateRevision), ModRevision: rev}}
}
