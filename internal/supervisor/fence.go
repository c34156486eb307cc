package supervisor

// Host failure, the supervisor's side (docs/cluster.md, "Host failure").
//
// A survivor replaces a machine of a lost host in three writes to the
// lost machine's record, each a compare-and-swap on its revision:
//
//	ClaimLost     state destroying, failover_claim = survivor  (one survivor wins)
//	ReplaceLost   a new machine on the survivor; replaced_by = its id
//	ReleaseClaim  (only if the new machine could not be made) the state back
//
// The lost host is fenced by those writes: they are newer than anything it
// wrote, and a host never serves a machine of its own whose record carries
// another host's claim. When it comes back (Recover, before it serves, or
// Fence on its running daemon when its link returns) it takes such a
// machine out of the proxy at once, and destroys it once replaced_by is
// set, so that an app never runs more copies than asked.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// ErrNotLost: a machine a survivor meant to replace is no longer a lost
// machine without a replacement (another survivor claimed it first, its
// host came back, or it was destroyed).
var ErrNotLost = types.NewError(types.ErrConflict, "machine not lost")

// sourceFailover is the events' source for what a host failure did.
const sourceFailover = "hangar"

// ClaimLost claims machine id of app, recorded for the lost host lostHost,
// for this host to replace: one conditional write, so that of several
// survivors exactly one wins (the others get ErrNotLost). A claim left by
// a host that is itself lost since (staleClaim reports it) may be taken
// over. The record reads destroying from then on.
func (s *Supervisor) ClaimLost(ctx context.Context, app, id, lostHost string, staleClaim func(host string) bool) (*Record, error) {
	out, _, err := store.UpdateJSON(ctx, s.opt.Store, machineKey(app, id), func(cur *Record) (*Record, error) {
		switch {
		case cur == nil:
			return nil, fmt.Errorf("machine %s of %s is gone: %w", id, app, ErrNotLost)
		case cur.HostID != lostHost || cur.ReplacedBy != "":
			return nil, fmt.Errorf("machine %s of %s is on host %s, replaced by %q: %w", id, app, cur.HostID, cur.ReplacedBy, ErrNotLost)
		case cur.FailoverClaim != "" && (staleClaim == nil || !staleClaim(cur.FailoverClaim)):
			return nil, fmt.Errorf("machine %s of %s is being replaced by host %s: %w", id, app, cur.FailoverClaim, ErrNotLost)
		case cur.FailoverClaim == "" && (cur.State == types.StateDestroyed || cur.State == types.StateDestroying):
			return nil, fmt.Errorf("machine %s of %s is %s: %w", id, app, cur.State, ErrNotLost)
		}
		if cur.FailoverClaim == "" {
			cur.FailoverFrom = cur.State
		}
		cur.FailoverClaim = s.opt.HostID
		cur.State = types.StateDestroying
		cur.UpdatedAt = now()
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return out, nil
}

// ReleaseClaim gives a claimed machine back its state when its
// replacement could not be made, so that a later round (of any survivor)
// tries again.
func (s *Supervisor) ReleaseClaim(ctx context.Context, app, id string) error {
	_, _, err := store.UpdateJSON(ctx, s.opt.Store, machineKey(app, id), func(cur *Record) (*Record, error) {
		if cur == nil || cur.FailoverClaim != s.opt.HostID || cur.ReplacedBy != "" {
			return nil, fmt.Errorf("machine %s of %s: %w", id, app, ErrNotLost)
		}
		cur.State, cur.FailoverClaim, cur.FailoverFrom = cur.FailoverFrom, "", ""
		cur.UpdatedAt = now()
		return cur, nil
	})
	return err
}

// ReplaceLost makes, on this host, the machine that replaces lost (claimed
// by ClaimLost): the same config, in region, started if lost was running.
// note says why (the region, when it is not lost's). The new machine's
// events and host_note name lost and its host; lost's record gets
// replaced_by.
func (s *Supervisor) ReplaceLost(ctx context.Context, lost *Record, region, note string) (*Record, error) {
	if lost.FailoverClaim != s.opt.HostID {
		return nil, fmt.Errorf("machine %s of %s is not claimed by this host: %w", lost.ID, lost.App, ErrNotLost)
	}
	reason := fmt.Sprintf("replaced machine %s lost with host %s", lost.ID, lost.HostID)
	if note != "" {
		reason += " (" + note + ")"
	}
	nm, err := s.Create(ctx, lost.App, cloneMachineConfig(lost.Config), CreateOptions{Region: region, SkipLaunch: true, Cordoned: lost.Cordoned})
	if err != nil {
		return nil, fmt.Errorf("replace machine %s of %s: %w", lost.ID, lost.App, err)
	}
	nm, err = s.update(ctx, lost.App, nm.ID, func(r *Record) error {
		r.HostNote = reason
		addEvent(r, "replace", r.State, sourceFailover, map[string]interface{}{
			"reason": reason, "replaces": lost.ID, "lost_host": lost.HostID,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.update(ctx, lost.App, lost.ID, func(r *Record) error {
		if r.FailoverClaim != s.opt.HostID {
			return fmt.Errorf("machine %s of %s: claim lost to host %s: %w", lost.ID, lost.App, r.FailoverClaim, ErrNotLost)
		}
		r.ReplacedBy = nm.ID
		r.HostNote = fmt.Sprintf("host %s was lost; replaced by machine %s on host %s; destroyed when its host returns", lost.HostID, nm.ID, s.opt.HostID)
		addEvent(r, "replaced", types.StateDestroying, sourceFailover, map[string]interface{}{
			"reason": "host " + lost.HostID + " lost", "replaced_by": nm.ID, "by_host": s.opt.HostID,
		})
		return nil
	}); err != nil {
		// Someone else won after all: this copy must not run.
		if derr := s.Destroy(context.WithoutCancel(ctx), lost.App, nm.ID, true); derr != nil {
			s.log.Warn("destroy a replacement that lost its claim", "machine", nm.ID, "err", derr)
		}
		return nil, err
	}
	switch lost.FailoverFrom {
	case types.StateStarted, types.StateStarting, types.StateReplacing, types.StateSuspended:
		if _, err := s.Start(ctx, lost.App, nm.ID); err != nil {
			return nm, fmt.Errorf("start machine %s, the replacement of %s: %w", nm.ID, lost.ID, err)
		}
	}
	return s.Get(ctx, lost.App, nm.ID)
}

func cloneMachineConfig(cfg *types.MachineConfig) *types.MachineConfig {
	if cfg == nil {
		return nil
	}
	c := *cfg
	if cfg.Metadata != nil {
		c.Metadata = make(map[string]string, len(cfg.Metadata))
		for k, v := range cfg.Metadata {
			c.Metadata[k] = v
		}
	}
	return &c
}

// fencedOut handles a machine of this host that another host claimed
// while this one was lost: it never serves again (out of the proxy, its
// task stopped, its exits ignored); once its replacement is recorded it
// is destroyed here. It reports whether r was such a machine.
func (s *Supervisor) fencedOut(ctx context.Context, r *Record) bool {
	if !s.Mine(r) || r.FailoverClaim == "" || r.FailoverClaim == s.opt.HostID {
		return false
	}
	l := s.liveFor(r.App, r.ID)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stateMu.Lock()
	l.stopRequested = true
	l.generation++ // its exit is not a crash to restart
	if l.cancelChecks != nil {
		l.cancelChecks()
		l.cancelChecks = nil
	}
	l.stateMu.Unlock()
	s.opt.Router.Remove(r.App, r.ID)
	if r.ReplacedBy == "" {
		// Being replaced: stop its task now, destroy it once replaced.
		if st, err := s.opt.Driver.Recover(ctx, r.ID); err == nil && st.Running {
			s.log.Info("stopping a machine another host is replacing", "app", r.App, "machine", r.ID, "by", r.FailoverClaim)
			if err := s.opt.Driver.Stop(ctx, r.ID, "SIGKILL", time.Second); err != nil {
				s.log.Warn("stop a fenced machine", "machine", r.ID, "err", err)
			}
		}
		return true
	}
	s.log.Info("destroying a machine replaced while this host was lost", "app", r.App, "machine", r.ID, "replaced_by", r.ReplacedBy, "by", r.FailoverClaim)
	if err := s.opt.Driver.Destroy(ctx, r.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		s.log.Warn("destroy a fenced machine's task", "machine", r.ID, "err", err)
		return true // the next sweep tries again
	}
	if err := s.opt.Network.Teardown(r.ID); err != nil {
		s.log.Warn("network teardown", "machine", r.ID, "err", err)
	}
	_ = os.RemoveAll(s.machineDir(r.ID))
	s.removeFiles(r.ID)
	if err := s.releaseAddr(ctx, r.ID, r.AddrIndex); err != nil {
		s.log.Warn("release a fenced machine's address", "machine", r.ID, "err", err)
		return true
	}
	if _, err := s.opt.Store.Delete(ctx, machineKey(r.App, r.ID), store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("delete a fenced machine's record", "machine", r.ID, "err", err)
		return true
	}
	s.keepDestroyed(ctx, r)
	s.mu.Lock()
	delete(s.machines, r.ID)
	s.mu.Unlock()
	s.notify()
	return true
}

// Fence sweeps this host's machines once for those another host claimed
// (fencedOut); it returns how many it found. The daemon runs it when its
// lease in the store is renewed after a loss, and every FenceInterval.
func (s *Supervisor) Fence(ctx context.Context) (int, error) {
	recs, err := s.List(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range recs {
		if s.fencedOut(ctx, r) {
			n++
		}
	}
	return n, nil
}

// FenceInterval is how often RunFence sweeps.
const FenceInterval = time.Second

// RunFence runs Fence every interval (0: FenceInterval) and whenever kick
// receives, until ctx ends.
func (s *Supervisor) RunFence(ctx context.Context, interval time.Duration, kick <-chan struct{}) {
	if interval <= 0 {
		interval = FenceInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		if n, err := s.Fence(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("fence sweep", "err", err)
		} else if n > 0 {
			s.log.Info("fenced machines replaced elsewhere", "count", n)
		}
	}
}
