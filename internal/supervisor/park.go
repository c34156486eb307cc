package supervisor

import (
	"context"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/types"
)

// Keeping what can be kept across a stop. A machine's network namespace
// stays from its first start to its destroy. Once a machine is stopped
// (by a user or by autostop), its next start is also prepared in the
// background when the driver can (runtime.Parker): the rootfs mounted with
// a fresh writable layer, the bundle, the shim and the container created,
// its process not started (it uses no CPU). The next start builds the spec
// as always; the driver only starts what it parked if the spec is the same
// (a new config, new secrets or anything else that changes it discards the
// parked task and starts afresh), so a start is never of stale state.
//
// Not parked: cordoned machines (a deploy's retired ones, which are
// destroyed next; a rollback starts them the slow way), and machines with
// volumes or [[files]] (a volume must stay free to detach, snapshot or
// extend while its machine is stopped, and files are only on disk while a
// task runs).

// parkAfterStop parks machine l's next start in the background, if the
// machine is still stopped at instance when its turn comes.
func (s *Supervisor) parkAfterStop(l *live, instance string) {
	if _, ok := s.opt.Driver.(runtime.Parker); !ok || s.opt.NoPark {
		return
	}
	go func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		s.parkLocked(context.Background(), l, instance)
	}()
}

// parkLocked parks machine l's next start if it is stopped at instance
// and may be parked (see above).
func (s *Supervisor) parkLocked(ctx context.Context, l *live, instance string) {
	p, ok := s.opt.Driver.(runtime.Parker)
	if !ok {
		return
	}
	r, err := s.getOwn(ctx, l.app, l.id)
	if err != nil || r.State != types.StateStopped || r.InstanceID != instance || !parkable(r) {
		return
	}
	t0 := time.Now()
	spec, err := s.buildSpec(ctx, r, nil)
	if err == nil && spec.NetNSReady != nil {
		err = spec.NetNSReady()
		spec.NetNSReady = nil
	}
	if err == nil {
		err = p.Park(ctx, spec)
	}
	if err != nil {
		// The next start goes the slow way; nothing is lost.
		s.log.Info("could not prepare the next start of a stopped machine", "app", l.app, "machine", l.id, "err", err)
		return
	}
	s.log.Debug("machine's next start prepared", "app", l.app, "machine", l.id, "took", time.Since(t0))
}

// parkable reports whether a stopped machine's next start may be parked.
func parkable(r *Record) bool {
	return r.Config != nil && !r.Cordoned && len(r.Config.Mounts) == 0 && len(r.Config.Files) == 0
}
