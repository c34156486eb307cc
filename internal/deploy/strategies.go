package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// rollout runs every group's plan in parallel.
func (r *run) rollout(ctx context.Context, plans []*plan, strategy string, waitTimeout time.Duration, maxUnavail float64) error {
	var wg sync.WaitGroup
	errs := make([]error, len(plans))
	for i, p := range plans {
		wg.Add(1)
		go func(i int, p *plan) {
			defer wg.Done()
			var err error
			switch strategy {
			case StrategyScale:
				err = r.scale(ctx, p, waitTimeout)
			case Immediate:
				err = r.immediate(ctx, p)
			case BlueGreen:
				err = r.blueGreen(ctx, p, waitTimeout)
			case Canary:
				err = r.rolling(ctx, p, waitTimeout, maxUnavail, true)
			default:
				err = r.rolling(ctx, p, waitTimeout, maxUnavail, false)
			}
			if err != nil {
				errs[i] = fmt.Errorf("process group %s: %w", p.group, err)
			}
		}(i, p)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// launch creates n new machines of p in region ("": the deploying
// host's) and waits until each is healthy; with smoke, it also waits out
// the smoke window and checks for restarts.
//
// prefer[i], if there, is the host the i-th new machine is placed on when
// it fits there: the host of the old machine it replaces, so that each
// host keeps serving from machines of its own through the rollout.
func (r *run) launch(ctx context.Context, p *plan, region string, prefer []string, n int, waitTimeout time.Duration, cordoned, smoke bool) ([]string, error) {
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			hint := ""
			if i < len(prefer) {
				hint = prefer[i]
			}
			m, err := r.create(ctx, p, region, hint, cordoned)
			if m != nil {
				ids[i] = m.ID
			}
			if err != nil {
				errs[i] = err
				return
			}
			r.emit("machine", m.ID, p.group, "machine %s started; waiting for its checks", m.ID)
			if err := r.d.Sup.WaitHealthy(ctx, r.app, m.ID, waitTimeout); err != nil {
				errs[i] = err
				return
			}
			if smoke {
				if errs[i] = r.smoke(ctx, m.ID); errs[i] != nil {
					return
				}
			}
			r.emit("machine", m.ID, p.group, "machine %s is healthy", m.ID)
		}(i)
	}
	wg.Wait()
	return ids, errors.Join(errs...)
}

// smoke waits out the smoke window of a healthy new machine and fails if
// it restarted or left started meanwhile (a crash loop its checks did
// not catch).
func (r *run) smoke(ctx context.Context, id string) error {
	if r.d.SmokeWindow <= 0 {
		return nil
	}
	select {
	case <-time.After(r.d.SmokeWindow):
	case <-ctx.Done():
		return ctx.Err()
	}
	cur, err := r.d.Sup.Get(ctx, r.app, id)
	if err != nil {
		return err
	}
	// A machine the proxy stopped for being idle did not crash.
	if cur.RestartCount > 0 || cur.State != types.StateStarted && !cur.StoppedByAutostop() {
		return fmt.Errorf("machine %s is crash-looping (state %s, %d restarts in the smoke window); see `hangar logs --machine %s`", id, cur.State, cur.RestartCount, id)
	}
	return nil
}

// spearhead launches the first new machine of a rolling deploy (the
// canary, with canary) and waits out its smoke window while the next
// batch of next machines starts cordoned: they take no traffic until the
// spearhead has passed (then the caller uncordons them), so a bad
// release still reaches one machine's users only, but the next batch's
// start and checks no longer wait for the window. It returns the next
// batch's ids.
func (r *run) spearhead(ctx context.Context, p *plan, region string, prefer []string, next int, waitTimeout time.Duration) ([]string, error) {
	ids, err := r.launch(ctx, p, region, prefer, 1, waitTimeout, false, false)
	if err != nil {
		return nil, err
	}
	var smokeErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		smokeErr = r.smoke(ctx, ids[0])
	}()
	var nextIDs []string
	var nextErr error
	if next > 0 {
		r.emit("batch", "", p.group, "starting the next %d machine(s) without traffic during the smoke window of %s", next, ids[0])
		nextIDs, nextErr = r.launch(ctx, p, region, prefer[min(1, len(prefer)):], next, waitTimeout, true, false)
	}
	<-done
	if smokeErr == nil {
		r.emit("machine", ids[0], p.group, "machine %s passed its smoke window", ids[0])
	}
	return nextIDs, errors.Join(smokeErr, nextErr)
}

// create makes a new machine of p in region ("": on the deploying host;
// else placed on a host of the region) and starts it, then records it in
// the run. The machine carries the run's mark (metadata hangar_release),
// so one whose start failed (the create returns no record then) is found
// by it and recorded too, and a rollback removes it rather than leave it
// behind; a crash before the record is covered by the mark as well
// (resume.go). Created and started in one call, the machine is saved
// once (starting) instead of created, recorded, then starting: two store
// commits fewer on each new machine's way to its checks.
func (r *run) create(ctx context.Context, p *plan, region, prefer string, cordoned bool) (*supervisor.Record, error) {
	m, err := r.d.Sup.Create(ctx, r.app, cloneConfig(p.cfg), supervisor.CreateOptions{Region: region, PreferHost: prefer, Cordoned: cordoned})
	if m != nil {
		if rerr := r.addCreated(m.ID); rerr != nil {
			return m, errors.Join(err, rerr)
		}
	}
	if err != nil {
		if aerr := r.addMarked(ctx, p.group); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return m, err
	}
	return m, nil
}

// retire drains old machines out of rotation (in-flight requests finish)
// and stops them; they are destroyed when the release completes.
func (r *run) retire(ctx context.Context, p *plan, olds []*supervisor.Record) error {
	stop, err := r.leave(ctx, p, olds)
	if err != nil {
		return err
	}
	return stop()
}

// leave takes old machines out of rotation (cordoned: the proxy neither
// routes to them nor wakes them again once stopped, which would take a
// volume back from its replacement; a rollback uncordons them) and
// returns the rest of their retire: draining and stopping them.
func (r *run) leave(ctx context.Context, p *plan, olds []*supervisor.Record) (func() error, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(olds))
	left := make([]bool, len(olds))
	for i, o := range olds {
		wg.Add(1)
		go func(i int, o *supervisor.Record) {
			defer wg.Done()
			if o.State != types.StateStarted && o.State != types.StateStarting && o.State != types.StateSuspended {
				return
			}
			r.emit("retire", o.ID, p.group, "draining and stopping old machine %s", o.ID)
			if err := r.addStopped(o.ID); err != nil {
				errs[i] = err
				return
			}
			if _, err := r.d.Sup.SetCordoned(ctx, r.app, o.ID, true); err != nil {
				errs[i] = fmt.Errorf("cordon old machine %s: %w", o.ID, err)
				return
			}
			left[i] = true
		}(i, o)
	}
	wg.Wait()
	stop := func() error {
		var wg sync.WaitGroup
		for i, o := range olds {
			if !left[i] {
				continue
			}
			wg.Add(1)
			go func(i int, o *supervisor.Record) {
				defer wg.Done()
				if _, err := r.d.Sup.Stop(ctx, r.app, o.ID, "", 0); err != nil {
					errs[i] = fmt.Errorf("stop old machine %s: %w", o.ID, err)
				}
			}(i, o)
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if errors.Join(errs...) != nil {
		// The others are stopped as before; the errors include these.
		return nil, stop()
	}
	return stop, nil
}

// rolling replaces old machines region by region (regionParts: the
// primary region first), and in each batch by batch: new ones first, then
// the old ones of that batch go. The first batch is a single spearhead
// (the canary, with canary) that must survive the smoke window.
func (r *run) rolling(ctx context.Context, p *plan, waitTimeout time.Duration, maxUnavail float64, canary bool) error {
	if len(p.cfg.Mounts) > 0 {
		return r.rollingWithVolumes(ctx, p, waitTimeout)
	}
	parts := regionParts(p)
	for i, part := range parts {
		if len(parts) > 1 {
			r.emit("region", "", p.group, "region %s: %d old machine(s), %d new (region %d of %d)", part.region, len(part.old), part.want, i+1, len(parts))
		}
		sub := &plan{group: p.group, cfg: p.cfg, old: part.old, want: part.want}
		if err := r.rollingIn(ctx, sub, part.region, waitTimeout, maxUnavail, canary && i == 0); err != nil {
			if len(parts) > 1 {
				return fmt.Errorf("region %s: %w", part.region, err)
			}
			return err
		}
	}
	return nil
}

// rollingIn is rolling within one region.
func (r *run) rollingIn(ctx context.Context, p *plan, region string, waitTimeout time.Duration, maxUnavail float64, canary bool) error {
	olds := p.old
	remaining := p.want
	if canary && remaining > 0 {
		r.emit("canary", "", p.group, "starting a canary machine of the new release")
	}
	first := true
	ahead := 0 // new machines up beyond the old ones retired (a canary)
	// next is the batch after the spearhead, started cordoned during its
	// smoke window (spearhead), taken into rotation in its turn.
	var next []string
	// A batch's old machines leave rotation at once, then drain and stop
	// while the next batch starts: the new machines that replace them
	// already serve. The deploy ends once every retire has.
	var retiring background
	defer retiring.wait()
	for remaining > 0 || len(olds) > 0 {
		if err := retiring.failed(); err != nil {
			return retiring.wait()
		}
		n := batchSize(p.want, maxUnavail)
		if first {
			n = 1
		}
		if n > remaining {
			n = remaining
		}
		if n > 0 {
			// Each new machine on the host of an old one still without
			// its replacement.
			prefer := hostsOf(olds[min(ahead, len(olds)):])
			switch {
			case len(next) > 0:
				// Started and healthy during the spearhead's smoke window.
				n = len(next)
				if err := r.uncordon(ctx, next); err != nil {
					return errors.Join(err, retiring.wait())
				}
				next = nil
			case first && r.d.SmokeWindow > 0:
				var err error
				if next, err = r.spearhead(ctx, p, region, prefer, min(batchSize(p.want, maxUnavail), remaining-n), waitTimeout); err != nil {
					return errors.Join(err, retiring.wait())
				}
			default:
				if _, err := r.launch(ctx, p, region, prefer, n, waitTimeout, false, first); err != nil {
					return errors.Join(err, retiring.wait())
				}
			}
			remaining -= n
		}
		// Retire as many old machines as came up (all that are left at the
		// end). A canary adds capacity first and retires nothing yet.
		k := n
		if canary && first {
			k = 0
		}
		if remaining == 0 {
			k = len(olds)
		}
		if k > len(olds) {
			k = len(olds)
		}
		if k > 0 {
			// Out of rotation now (the routable count never exceeds a
			// batch over the group's), drained and stopped meanwhile.
			stop, err := r.leave(ctx, p, olds[:k])
			if err != nil {
				return errors.Join(err, retiring.wait())
			}
			retiring.run(stop)
		}
		olds = olds[k:]
		ahead = max(0, ahead+n-k)
		first = false
		if n == 0 && k == 0 {
			break
		}
	}
	return retiring.wait()
}

// uncordon takes new machines started cordoned into rotation.
func (r *run) uncordon(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if _, err := r.d.Sup.SetCordoned(ctx, r.app, id, false); err != nil {
			return fmt.Errorf("take new machine %s into rotation: %w", id, err)
		}
	}
	return nil
}

// background runs functions in goroutines and collects their errors.
type background struct {
	wg   sync.WaitGroup
	mu   sync.Mutex // guards errs
	errs []error
}

func (b *background) run(f func() error) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := f(); err != nil {
			b.mu.Lock()
			b.errs = append(b.errs, err)
			b.mu.Unlock()
		}
	}()
}

// failed returns the errors of the functions done so far.
func (b *background) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return errors.Join(b.errs...)
}

// wait waits for every function and returns their errors.
func (b *background) wait() error {
	b.wg.Wait()
	return b.failed()
}

// rollingWithVolumes replaces machines that mount volumes one at a time:
// a volume attaches to one machine, so the old machine must stop (and
// release it) before its replacement starts. Each such machine is out of
// rotation for its replacement's start; the others keep serving.
func (r *run) rollingWithVolumes(ctx context.Context, p *plan, waitTimeout time.Duration) error {
	for i := 0; i < p.want || i < len(p.old); i++ {
		if i < len(p.old) {
			if err := r.retire(ctx, p, p.old[i:i+1]); err != nil {
				return err
			}
		}
		if i < p.want {
			if _, err := r.launch(ctx, p, regionOfOld(p, i), hostsOf(p.old[min(i, len(p.old)):]), 1, waitTimeout, false, i == 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// blueGreen starts every new machine cordoned, waits until all are healthy,
// then switches traffic: the new ones are uncordoned, the old ones drained.
func (r *run) blueGreen(ctx context.Context, p *plan, waitTimeout time.Duration) error {
	var ids []string
	for _, part := range regionParts(p) {
		got, err := r.launch(ctx, p, part.region, hostsOf(part.old), part.want, waitTimeout, true, true)
		ids = append(ids, got...)
		if err != nil {
			return err
		}
	}
	r.emit("switch", "", p.group, "all %d green machines healthy; switching traffic", len(ids))
	for _, id := range ids {
		if _, err := r.d.Sup.SetCordoned(ctx, r.app, id, false); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if err := r.d.Sup.WaitHealthy(ctx, r.app, id, waitTimeout); err != nil {
			return err
		}
	}
	return r.retire(ctx, p, p.old)
}

// immediate replaces every machine at once without waiting for checks.
func (r *run) immediate(ctx context.Context, p *plan) error {
	if err := r.retire(ctx, p, p.old); err != nil {
		return err
	}
	var regions, prefer []string
	for _, part := range regionParts(p) {
		hs := hostsOf(part.old)
		for i := range part.want {
			regions = append(regions, part.region)
			if i < len(hs) {
				prefer = append(prefer, hs[i])
			} else {
				prefer = append(prefer, "")
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, p.want)
	for i := 0; i < p.want; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m, err := r.create(ctx, p, regions[i], prefer[i], false)
			if err == nil {
				r.emit("machine", m.ID, p.group, "machine %s started", m.ID)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rollback starts the old machines this deploy stopped again, waits until
// they are healthy, then removes the new machines and the volumes made
// for them.
func (r *run) rollback(emit func(step, machine, group, format string, args ...any)) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r.mu.Lock()
	stopped, created := append([]string(nil), r.rec.Stopped...), append([]string(nil), r.rec.Created...)
	r.mu.Unlock()
	// New machines holding volumes go first: the old machines need their
	// volumes back before they can start.
	var rest []string
	for _, id := range created {
		if m, err := r.d.Sup.Get(ctx, r.app, id); err == nil && m.Config != nil && len(m.Config.Mounts) > 0 {
			emit("rollback", id, "", "removing new machine %s to free its volume", id)
			if err := r.d.Sup.Destroy(ctx, r.app, id, true); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
				r.d.Log.Warn("rollback: destroy new machine", "machine", id, "err", err)
			}
			continue
		}
		rest = append(rest, id)
	}
	created = rest
	var wg sync.WaitGroup
	for _, id := range stopped {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			emit("rollback", id, "", "starting old machine %s again", id)
			if _, err := r.d.Sup.SetCordoned(ctx, r.app, id, false); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
				r.d.Log.Warn("rollback: uncordon old machine", "machine", id, "err", err)
			}
			if _, err := r.d.Sup.Start(ctx, r.app, id); err != nil {
				if errors.Is(err, supervisor.ErrNotFound) {
					return
				}
				r.d.Log.Warn("rollback: restart old machine", "machine", id, "err", err)
				return
			}
			if err := r.d.Sup.WaitHealthy(ctx, r.app, id, 2*time.Minute); err != nil {
				r.d.Log.Warn("rollback: old machine not healthy", "machine", id, "err", err)
			}
		}(id)
	}
	wg.Wait()
	for _, id := range created {
		emit("rollback", id, "", "removing new machine %s", id)
		if err := r.d.Sup.Destroy(ctx, r.app, id, true); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
			r.d.Log.Warn("rollback: destroy new machine", "machine", id, "err", err)
		}
	}
	r.destroyVolumes(ctx)
}

// finish destroys the old machines of a completed release (in the groups
// it rolled out) and the machines of process groups the new config no
// longer has.
func (r *run) finish(ctx context.Context, existing []*supervisor.Record, configs map[string]*types.MachineConfig) {
	r.mu.Lock()
	stopped := map[string]bool{}
	for _, id := range r.rec.Stopped {
		stopped[id] = true
	}
	created := map[string]bool{}
	for _, id := range r.rec.Created {
		created[id] = true
	}
	rolled := map[string]bool{}
	for _, g := range r.rec.Groups {
		rolled[g] = true
	}
	r.mu.Unlock()
	// The old machines are destroyed in parallel: each destroy is a few
	// store commits and a network teardown, which add up when one waits
	// for the other.
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, o := range existing {
		g := groupOf(o)
		_, kept := configs[g]
		if kept && !rolled[g] {
			continue // a group this release left alone (scale vm --process-group)
		}
		if created[o.ID] || (kept && !stopped[o.ID] && o.State != types.StateStopped && o.State != types.StateFailed && o.State != types.StateCreated && o.State != types.StateDestroying) {
			continue
		}
		if g == appconfig.ReleaseCommandGroup || g == types.ConsoleGroup {
			continue // ephemeral: their own commands end them
		}
		if !kept {
			r.emit("retire", o.ID, g, "removing machine %s: process group %s is gone from fly.toml", o.ID, g)
		}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			if err := r.d.Sup.Destroy(ctx, r.app, id, true); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
				r.d.Log.Warn("destroy old machine", "machine", id, "err", err)
			}
		}(o.ID)
	}
}
