package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/types"
)

// ErrUnsupported is returned when the driver cannot do what was asked.
var ErrUnsupported = types.NewError(types.ErrUnsupported, "not supported by this runtime")

// Suspend freezes a started machine in memory (its cgroup is frozen: memory
// stays, CPU stops). It leaves rotation first; in-flight requests finish
// (bounded by the machine's stop timeout). Start resumes it.
func (s *Supervisor) Suspend(ctx context.Context, app, id string) (*Record, error) {
	return s.suspend(ctx, app, id, "user")
}

// suspend is Suspend on behalf of source ("user", or sourceAutostop for
// the autostop rule, recorded as the stop reason).
func (s *Supervisor) suspend(ctx context.Context, app, id, source string) (*Record, error) {
	p, ok := s.opt.Driver.(runtime.Pauser)
	if !ok {
		return nil, fmt.Errorf("suspend machine %s: %w", id, ErrUnsupported)
	}
	l := s.liveFor(app, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := s.getOwn(ctx, app, id)
	if err != nil {
		return nil, err
	}
	switch r.State {
	case types.StateSuspended:
		return r, nil
	case types.StateStarted:
	default:
		return nil, fmt.Errorf("machine %s is %s; only a started machine can be suspended: %w", id, r.State, ErrConflict)
	}
	if _, err := s.setState(ctx, app, id, types.StateSuspending, "", source, nil); err != nil {
		return nil, err
	}
	timeout := 5 * time.Second
	if r.Config != nil && r.Config.StopConfig != nil && r.Config.StopConfig.Timeout != nil {
		timeout = r.Config.StopConfig.Timeout.Duration
	}
	l.stateMu.Lock()
	if l.cancelChecks != nil {
		l.cancelChecks()
		l.cancelChecks = nil
	}
	l.stateMu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	_ = s.opt.Router.Drain(dctx, app, id)
	cancel()
	s.opt.Router.Remove(app, id)
	if err := p.Pause(ctx, id); err != nil {
		_, _ = s.setState(context.Background(), app, id, types.StateStarted, "", "flyd", nil)
		s.startChecks(l, r, true)
		return nil, fmt.Errorf("suspend machine %s: %w", id, err)
	}
	return s.update(ctx, app, id, func(r *Record) error {
		r.State = types.StateSuspended
		r.StopReason = stopReason(source)
		addEvent(r, "suspend", types.StateSuspended, source, stopRequest(source, nil))
		return nil
	})
}

// resumeLocked thaws a suspended machine; its checks run again and it
// returns to rotation as soon as they pass.
func (s *Supervisor) resumeLocked(ctx context.Context, l *live, r *Record, source string) (*Record, error) {
	p, ok := s.opt.Driver.(runtime.Pauser)
	if !ok {
		return nil, fmt.Errorf("resume machine %s: %w", l.id, ErrUnsupported)
	}
	if err := p.Resume(ctx, l.id); err != nil {
		return nil, fmt.Errorf("resume machine %s: %w", l.id, err)
	}
	r, err := s.update(ctx, l.app, l.id, func(r *Record) error {
		r.State = types.StateStarted
		r.StopReason = ""
		addEvent(r, "start", types.StateStarted, source, map[string]interface{}{"resumed": true})
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.startChecks(l, r, true)
	return r, nil
}

// startChecks (re)starts a running machine's checks and tells the proxy
// where it stands. A fresh task starts with every check critical; a resumed
// one (keepPassing) was healthy when frozen and keeps its last passing
// results, so it takes traffic at once while the checks confirm.
func (s *Supervisor) startChecks(l *live, r *Record, keepPassing bool) {
	cctx, cancel := context.WithCancel(context.Background())
	l.stateMu.Lock()
	if l.cancelChecks != nil {
		l.cancelChecks()
	}
	l.cancelChecks = cancel
	prev := l.checks
	l.checks = initialChecks(r.Config)
	if keepPassing {
		for name, c := range prev {
			if _, ok := l.checks[name]; ok && c.Status == types.CheckPassing {
				l.checks[name] = c
			}
		}
	}
	l.stateMu.Unlock()
	s.routeUpdate(l, r)
	go s.runChecks(cctx, l, r)
}
