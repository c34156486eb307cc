package apps

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

// Deletions is the one watch of deleted apps. Cleaners (volumes, secrets,
// logs, Flycast addresses, certificates, routes) subscribe to it instead
// of each watching the store: Run watches Prefix and tells every
// subscriber the name of each app deleted. A store watch can end (it
// lagged behind, or the store closed); deletions may then have been
// missed, so Run tells every subscriber to sweep (app ""), and watches
// again from the current revision.
type Deletions struct {
	st store.Store
	// Retry is the pause before watching again after a watch ended
	// (default a second).
	Retry time.Duration

	mu   sync.Mutex // guards subs
	subs map[*subscriber]struct{}
}

// NewDeletions returns the deletions of the apps in st; call Run.
func NewDeletions(st store.Store) *Deletions {
	return &Deletions{st: st, subs: map[*subscriber]struct{}{}}
}

// subscriber queues what its handler has not seen yet, so that a slow
// handler delays no other and misses nothing.
type subscriber struct {
	handle func(ctx context.Context, app string)
	kick   chan struct{}

	mu    sync.Mutex // guards apps and sweep
	apps  []string
	sweep bool
}

func (s *subscriber) add(app string) {
	s.mu.Lock()
	if app == "" {
		s.sweep, s.apps = true, nil // a sweep covers every app
	} else if !s.sweep {
		s.apps = append(s.apps, app)
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *subscriber) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		s.mu.Lock()
		apps, sweep := s.apps, s.sweep
		s.apps, s.sweep = nil, false
		s.mu.Unlock()
		if sweep {
			s.handle(ctx, "")
		}
		for _, app := range apps {
			if ctx.Err() != nil {
				return
			}
			s.handle(ctx, app)
		}
	}
}

// Subscribe calls handle, in a goroutine of its own until ctx ends, with
// the name of each app deleted from now on, and with app "" (sweep: check
// every app, some deletions may have been missed) at once and whenever the
// watch had to start again. Calls are never concurrent.
func (d *Deletions) Subscribe(ctx context.Context, handle func(ctx context.Context, app string)) {
	s := &subscriber{handle: handle, kick: make(chan struct{}, 1)}
	d.mu.Lock()
	d.subs[s] = struct{}{}
	d.mu.Unlock()
	s.add("") // what was deleted before it subscribed
	go func() {
		s.run(ctx)
		d.mu.Lock()
		delete(d.subs, s)
		d.mu.Unlock()
	}()
}

func (d *Deletions) tell(app string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.subs {
		s.add(app)
	}
}

// Run watches the app records until ctx ends.
func (d *Deletions) Run(ctx context.Context) {
	retry := d.Retry
	if retry <= 0 {
		retry = time.Second
	}
	for ctx.Err() == nil {
		// A store that is unavailable for a while (etcd without quorum)
		// is retried; only a closed one ends the loop.
		rev, err := d.st.Revision(ctx)
		if errors.Is(err, store.ErrClosed) {
			return
		}
		var ch <-chan store.Event
		if err == nil {
			ch, err = d.st.Watch(ctx, Prefix, rev)
		}
		if err == nil {
			// What was deleted before the watch began: sweep.
			d.tell("")
			for ev := range ch {
				if name := NameOf(ev.KV.Key); name != "" && ev.Type == store.EventDelete {
					d.tell(name)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}
