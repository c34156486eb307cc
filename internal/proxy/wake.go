package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Waker starts or resumes stopped and suspended machines (Fly's
// auto_start_machines). The supervisor implements it.
type Waker interface {
	// Wake starts or resumes one stopped or suspended machine of app whose
	// service allows autostart, nearest to region first, and returns its
	// id once it is started; the machine then becomes routable through
	// SetBackend when its checks pass. It returns an error wrapping
	// ErrNoCapacity when the app has no machine that could be started.
	// Concurrent calls for one app do not happen: the proxy runs at most
	// one per app at a time.
	Wake(ctx context.Context, app, region string) (machineID string, err error)
}

// ErrNoCapacity means an app has no stopped or suspended machine that may
// be started.
// (types.ErrNoCapacity).
var ErrNoCapacity = types.ErrNoCapacity

// startWakeLocked asks the Waker, in the background, to start a machine of
// a. Requests waiting for capacity are told when it finishes.
func (p *Proxy) startWakeLocked(a *app, region string) {
	a.waking = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.WakeTimeout)
		t0 := time.Now()
		id, err := p.Waker.Wake(ctx, a.name, region)
		d := time.Since(t0)
		cancel()
		if err == nil {
			a.stats.observeWake(d)
			p.log.Info("woke machine", "app", a.name, "machine", id, "took", d)
		} else if !errors.Is(err, ErrNoCapacity) {
			a.stats.wakeErrors.Add(1)
			p.log.Warn("wake failed", "app", a.name, "err", err)
		}
		p.mu.Lock()
		a.waking = false
		a.wakeErr = err
		a.wakeGen++
		p.notifyLocked(a)
		p.forgetLocked(a)
		p.mu.Unlock()
	}()
}
