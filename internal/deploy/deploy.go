// Package deploy turns a fly.toml and an image into a release and rolls it
// out with one of Fly's strategies (rolling, bluegreen, canary, immediate).
//
// Rollouts never lower capacity: a new machine is started and must be
// started, healthy (all checks pass within wait_timeout) and stable (a
// smoke window without restarts) before an old machine is drained (its
// in-flight requests finish) and stopped. Old machines are only stopped
// during the rollout, not destroyed, so that if anything fails they are
// started again and the new machines removed: the previous release keeps
// serving and the release is marked failed with the reason. They are
// destroyed when the release completes.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// ErrInvalid marks a deploy request that cannot be carried out as given.
var ErrInvalid = types.NewError(types.ErrInvalid, "invalid deploy")

// Release statuses.
const (
	StatusRunning  = types.ReleaseRunning
	StatusComplete = types.ReleaseComplete
	StatusFailed   = types.ReleaseFailed
)

// Strategies.
const (
	Rolling   = "rolling"
	BlueGreen = "bluegreen"
	Canary    = "canary"
	Immediate = "immediate"
	// StrategyScale marks a release that only added or removed machines
	// (scale count); it is not a strategy a deploy can ask for.
	StrategyScale = "scale"
)

// MetaSecretsVersion is the machine metadata key naming the secrets version
// a machine boots with.
const MetaSecretsVersion = "hangar_secrets_version"

// Release is the immutable record of one deploy. The wire type lives in
// types; this alias is a bridge until deploy and api name types.Release.
type Release = types.Release

// Event is one progress step, streamed to the deploying user.
type Event struct {
	Time      time.Time `json:"time"`
	Step      string    `json:"step"`
	MachineID string    `json:"machine_id,omitempty"`
	Group     string    `json:"group,omitempty"`
	Message   string    `json:"message"`
}

// Images resolves an image reference.
type Images interface {
	Get(ctx context.Context, refOrDigest string) (*image.Image, error)
}

// Deployer runs deploys.
type Deployer struct {
	Store     store.Store
	Sup       *supervisor.Supervisor
	Images    Images
	EnsureApp func(ctx context.Context, name string) error
	// SecretsVersion returns the app's current secrets version (nil: 0).
	SecretsVersion func(ctx context.Context, app string) (int, error)
	Log            *slog.Logger
	// SmokeWindow is how long a machine must stay up without restarting
	// after its checks pass, before old machines go (the spearhead only).
	SmokeWindow time.Duration

	mu     sync.Mutex // guards active
	active map[string]bool
}

// Request asks for a deploy.
type Request struct {
	App        string
	Config     []byte
	ConfigFile string
	// LocalFiles are the contents of [[files]] local_path entries, read by
	// the client next to its fly.toml.
	LocalFiles  map[string][]byte
	Image       string
	Strategy    string
	WaitTimeout time.Duration
	User        string
	// Counts sets the number of machines per group (scale count); groups
	// not named keep their current count (at least one).
	Counts map[string]int
	// Override adjusts each group's machine config (scale vm / memory).
	Override func(group string, mc *types.MachineConfig)
	// SecretsVersion pins the secrets version (rollback); 0 = current.
	SecretsVersion int
	RollbackOf     int
	Description    string
	// ScaleOnly adds or removes machines to reach Counts and leaves the
	// running ones alone (scale count); no release_command runs.
	ScaleOnly bool
}

func releaseKey(app string, v int) string { return fmt.Sprintf("releases/%s/%08d", app, v) }

// Releases lists an app's releases, newest first.
func Releases(ctx context.Context, s store.Store, app string) ([]*Release, error) {
	kvs, err := s.List(ctx, "releases/"+app+"/")
	if err != nil {
		return nil, fmt.Errorf("list releases of %s: %w", app, err)
	}
	out := make([]*Release, 0, len(kvs))
	for _, kv := range kvs {
		var r Release
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("release %s: %w", kv.Key, err)
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
}

// GetRelease returns one release.
func GetRelease(ctx context.Context, s store.Store, app string, version int) (*Release, error) {
	var r Release
	if _, err := store.GetJSON(ctx, s, releaseKey(app, version), &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("app %s has no release v%d: %w", app, version, supervisor.ErrNotFound)
		}
		return nil, err
	}
	return &r, nil
}

// plan is one process group's rollout.
type plan struct {
	group string
	cfg   *types.MachineConfig
	old   []*supervisor.Record
	want  int
}

// run is the state of one deploy, for rollback.
type run struct {
	d    *Deployer
	app  string
	emit func(step, machine, group, format string, args ...any)

	mu         sync.Mutex // guards created, stoppedOld and removed
	created    []string   // new machines
	stoppedOld []string   // old machines stopped by this deploy
	removed    []string   // machines scale count takes away
}

func (r *run) addCreated(id string) {
	r.mu.Lock()
	r.created = append(r.created, id)
	r.mu.Unlock()
}

func (r *run) addStopped(id string) {
	r.mu.Lock()
	r.stoppedOld = append(r.stoppedOld, id)
	r.mu.Unlock()
}

// Deploy runs one deploy to the end and returns the release.
func (d *Deployer) Deploy(ctx context.Context, req Request, progress func(Event)) (*Release, error) {
	emit := func(step, machine, group, format string, args ...any) {
		if progress != nil {
			progress(Event{Time: time.Now().UTC(), Step: step, MachineID: machine, Group: group, Message: fmt.Sprintf(format, args...)})
		}
	}
	cfg, err := appconfig.Parse(req.Config, req.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for path, b := range req.LocalFiles {
		cfg.SetLocalFile(path, b)
	}
	if missing := cfg.UnresolvedFiles(); len(missing) > 0 {
		return nil, fmt.Errorf("%w: [[files]] local_path %v: the client did not send these files; deploy with `hangar deploy` from the directory of fly.toml", ErrInvalid, missing)
	}
	warnings, err := cfg.Validate(false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, w := range warnings {
		emit("validate", "", "", "warning: %s", w.String())
	}
	app := req.App
	if app == "" {
		app = cfg.AppName
	}
	if app == "" {
		return nil, fmt.Errorf("%w: no app name: set `app` in fly.toml or pass --app", ErrInvalid)
	}
	if req.Image == "" {
		return nil, fmt.Errorf("%w: no image: build one with [build] or pass --image", ErrInvalid)
	}
	strategy := req.Strategy
	if strategy == "" && cfg.Deploy != nil {
		strategy = cfg.Deploy.Strategy
	}
	if strategy == "" {
		strategy = Rolling
	}
	switch strategy {
	case Rolling, BlueGreen, Canary, Immediate:
	default:
		return nil, fmt.Errorf("%w: strategy %q: use rolling, bluegreen, canary or immediate", ErrInvalid, strategy)
	}
	img, err := d.Images.Get(ctx, req.Image)
	if err != nil {
		return nil, fmt.Errorf("%w: image %s: %v", ErrInvalid, req.Image, err)
	}
	configs, err := cfg.ToMachineConfigs(req.Image)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for g, mc := range configs {
		if req.Override != nil {
			req.Override(g, mc)
		}
		if (strategy == BlueGreen || strategy == Canary) && len(mc.Mounts) > 0 {
			return nil, fmt.Errorf("%w: the %s strategy cannot be used with volumes (group %s mounts %s): a volume attaches to one machine at a time; use rolling or immediate", ErrInvalid, strategy, g, mc.Mounts[0].Path)
		}
	}

	if !d.lock(app) {
		return nil, fmt.Errorf("app %s: another deploy is in progress; wait for it to finish (see `hangar releases`): %w", app, supervisor.ErrConflict)
	}
	defer d.unlock(app)
	if err := d.EnsureApp(ctx, app); err != nil {
		return nil, err
	}
	secretsVersion := req.SecretsVersion
	if secretsVersion == 0 && d.SecretsVersion != nil {
		if secretsVersion, err = d.SecretsVersion(ctx, app); err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", app, err)
		}
	}
	existing, err := d.Sup.List(ctx, app)
	if err != nil {
		return nil, err
	}
	plans := plansFor(configs, existing, req.Counts)
	counts := map[string]int{}
	for _, p := range plans {
		counts[p.group] = p.want
	}
	if req.ScaleOnly {
		strategy = StrategyScale
	}
	rel, err := d.newRelease(ctx, &Release{
		App: app, Image: req.Image, ImageDigest: img.Digest, Strategy: strategy,
		Config: string(req.Config), ConfigFile: req.ConfigFile, LocalFiles: req.LocalFiles, Machines: configs, Counts: counts,
		SecretsVersion: secretsVersion, RollbackOf: req.RollbackOf, Description: req.Description,
		Status: StatusRunning, User: req.User, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		return nil, err
	}
	emit("release", "", "", "release v%d created (image %s, strategy %s)", rel.Version, req.Image, strategy)
	for _, mc := range configs {
		if mc.Metadata == nil {
			mc.Metadata = map[string]string{}
		}
		mc.Metadata[types.MetaRelease] = fmt.Sprint(rel.Version)
		mc.Metadata[MetaSecretsVersion] = fmt.Sprint(secretsVersion)
	}
	if req.ScaleOnly {
		// Machines a scale adds run the release their group runs, and say
		// so: a newer release number would let them take over the volume
		// of a stopped sibling, as a deploy's replacement does.
		for _, p := range plans {
			if v := newestRelease(p.old); v > 0 {
				p.cfg.Metadata[types.MetaRelease] = fmt.Sprint(v)
			}
		}
	}
	waitTimeout := req.WaitTimeout
	if waitTimeout == 0 && cfg.Deploy != nil && cfg.Deploy.WaitTimeout != nil {
		waitTimeout = cfg.Deploy.WaitTimeout.Duration
	}
	if waitTimeout == 0 {
		waitTimeout = 2 * time.Minute
	}
	maxUnavail := 0.33
	if cfg.Deploy != nil && cfg.Deploy.MaxUnavailable != nil && *cfg.Deploy.MaxUnavailable > 0 {
		maxUnavail = *cfg.Deploy.MaxUnavailable
	}

	start := time.Now()
	runErr := func() error {
		release, err := d.leaseMachines(ctx, app, rel.Version, existing)
		if err != nil {
			return err
		}
		defer release()
		if !req.ScaleOnly && cfg.Deploy != nil && strings.TrimSpace(cfg.Deploy.ReleaseCommand) != "" {
			rc, err := cfg.ToReleaseMachineConfig(req.Image)
			if err != nil {
				return err
			}
			rc.Metadata[types.MetaRelease] = fmt.Sprint(rel.Version)
			rc.Metadata[MetaSecretsVersion] = fmt.Sprint(secretsVersion)
			timeout := 5 * time.Minute
			if cfg.Deploy.ReleaseCommandTimeout != nil && cfg.Deploy.ReleaseCommandTimeout.Duration > 0 {
				timeout = cfg.Deploy.ReleaseCommandTimeout.Duration
			}
			if err := d.releaseCommand(ctx, app, rc, timeout, emit); err != nil {
				return err
			}
		}
		r := &run{d: d, app: app, emit: emit}
		err = r.rollout(ctx, plans, strategy, waitTimeout, maxUnavail)
		if err != nil {
			r.rollback(emit)
			return err
		}
		if req.ScaleOnly {
			r.finishScale(ctx)
		} else {
			r.finish(ctx, existing, configs)
		}
		return nil
	}()
	fin := time.Now().UTC()
	rel.FinishedAt = &fin
	if runErr != nil {
		rel.Status, rel.Reason = StatusFailed, runErr.Error()
	} else {
		rel.Status = StatusComplete
	}
	if _, err := store.PutJSON(context.Background(), d.Store, releaseKey(app, rel.Version), rel, store.AnyRevision); err != nil {
		return rel, fmt.Errorf("record release v%d: %w", rel.Version, err)
	}
	if runErr != nil {
		emit("failed", "", "", "release v%d failed: %v; the previous release keeps serving", rel.Version, runErr)
		return rel, runErr
	}
	emit("complete", "", "", "release v%d complete in %s", rel.Version, time.Since(start).Round(time.Millisecond))
	return rel, nil
}

// deployLeaseTTL bounds how long a crashed deploy keeps its machines.
const deployLeaseTTL = 30 * time.Second

// leaseMachines leases every machine the deploy may touch, so that API
// clients (and, on a cluster, other deployers) cannot change them midway;
// a machine leased by someone else fails the deploy before anything
// changed. The leases are refreshed until the returned release func runs,
// and expire on their own if the daemon dies.
func (d *Deployer) leaseMachines(ctx context.Context, app string, version int, machines []*supervisor.Record) (func(), error) {
	type held struct{ id, nonce string }
	var leases []held
	releaseAll := func() {
		for _, h := range leases {
			if err := d.Sup.ReleaseLease(context.Background(), app, h.id, h.nonce); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
				d.Log.Debug("release deploy lease", "machine", h.id, "err", err)
			}
		}
	}
	for _, m := range machines {
		if m.State == types.StateDestroyed || m.State == types.StateDestroying {
			continue
		}
		l, err := d.Sup.AcquireLease(ctx, app, m.ID, "hangar-deploy", fmt.Sprintf("deploy of release v%d", version), deployLeaseTTL)
		if err != nil {
			releaseAll()
			return nil, fmt.Errorf("lease machine %s: %w; wait for its holder to finish or release the lease", m.ID, err)
		}
		leases = append(leases, held{m.ID, l.Nonce})
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(deployLeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, h := range leases {
					_, _ = d.Sup.RefreshLease(context.Background(), app, h.id, h.nonce, deployLeaseTTL)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		releaseAll()
	}, nil
}

func (d *Deployer) lock(app string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active == nil {
		d.active = map[string]bool{}
	}
	if d.active[app] {
		return false
	}
	d.active[app] = true
	return true
}

func (d *Deployer) unlock(app string) {
	d.mu.Lock()
	delete(d.active, app)
	d.mu.Unlock()
}

func plansFor(configs map[string]*types.MachineConfig, existing []*supervisor.Record, counts map[string]int) []*plan {
	old := map[string][]*supervisor.Record{}
	for _, r := range existing {
		g := groupOf(r)
		if g == appconfig.ReleaseCommandGroup || r.State == types.StateDestroyed || r.State == types.StateDestroying {
			continue
		}
		old[g] = append(old[g], r)
	}
	var plans []*plan
	for g, mc := range configs {
		want := len(old[g])
		if n, ok := counts[g]; ok {
			want = n
		}
		if want == 0 && len(old[g]) == 0 {
			if _, ok := counts[g]; !ok {
				want = 1
			}
		}
		plans = append(plans, &plan{group: g, cfg: mc, old: old[g], want: want})
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].group < plans[j].group })
	return plans
}

func (d *Deployer) newRelease(ctx context.Context, rel *Release) (*Release, error) {
	for attempt := 0; attempt < 20; attempt++ {
		prev, err := Releases(ctx, d.Store, rel.App)
		if err != nil {
			return nil, err
		}
		rel.Version = 1
		if len(prev) > 0 {
			rel.Version = prev[0].Version + 1
		}
		_, err = store.PutJSON(ctx, d.Store, releaseKey(rel.App, rel.Version), rel, 0)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("record release: %w", err)
		}
		return rel, nil
	}
	return nil, fmt.Errorf("record release: too much contention: %w", supervisor.ErrConflict)
}

// newestRelease is the highest release number among machines (0: none).
func newestRelease(machines []*supervisor.Record) int {
	best := 0
	for _, m := range machines {
		if m.Config == nil {
			continue
		}
		if v, err := strconv.Atoi(m.Config.Metadata[types.MetaRelease]); err == nil && v > best {
			best = v
		}
	}
	return best
}

func groupOf(r *supervisor.Record) string {
	if r.Config != nil {
		if g := r.Config.Metadata[types.MetaProcessGroup]; g != "" {
			return g
		}
	}
	return types.DefaultProcessGroup
}

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

func cloneConfig(c *types.MachineConfig) *types.MachineConfig {
	var out types.MachineConfig
	b, _ := json.Marshal(c)
	_ = json.Unmarshal(b, &out)
	return &out
}

// launch creates n new machines of p and waits until each is healthy; with
// smoke, it also waits out the smoke window and checks for restarts.
func (r *run) launch(ctx context.Context, p *plan, n int, waitTimeout time.Duration, cordoned, smoke bool) ([]string, error) {
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m, err := r.d.Sup.Create(ctx, r.app, cloneConfig(p.cfg), supervisor.CreateOptions{Cordoned: cordoned})
			if m != nil {
				ids[i] = m.ID
				r.addCreated(m.ID)
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
			if smoke && r.d.SmokeWindow > 0 {
				select {
				case <-time.After(r.d.SmokeWindow):
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				}
				cur, err := r.d.Sup.Get(ctx, r.app, m.ID)
				if err != nil {
					errs[i] = err
					return
				}
				if cur.RestartCount > 0 || cur.State != types.StateStarted {
					errs[i] = fmt.Errorf("machine %s is crash-looping (state %s, %d restarts in the smoke window); see `hangar logs --machine %s`", m.ID, cur.State, cur.RestartCount, m.ID)
					return
				}
			}
			r.emit("machine", m.ID, p.group, "machine %s is healthy", m.ID)
		}(i)
	}
	wg.Wait()
	return ids, errors.Join(errs...)
}

// retire drains old machines out of rotation (in-flight requests finish)
// and stops them; they are destroyed when the release completes.
func (r *run) retire(ctx context.Context, p *plan, olds []*supervisor.Record) error {
	var wg sync.WaitGroup
	errs := make([]error, len(olds))
	for i, o := range olds {
		wg.Add(1)
		go func(i int, o *supervisor.Record) {
			defer wg.Done()
			if o.State != types.StateStarted && o.State != types.StateStarting && o.State != types.StateSuspended {
				return
			}
			r.emit("retire", o.ID, p.group, "draining and stopping old machine %s", o.ID)
			r.addStopped(o.ID)
			if _, err := r.d.Sup.Stop(ctx, r.app, o.ID, "", 0); err != nil {
				errs[i] = fmt.Errorf("stop old machine %s: %w", o.ID, err)
			}
		}(i, o)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func batchSize(n int, maxUnavail float64) int {
	if maxUnavail >= 1 {
		return int(maxUnavail)
	}
	b := int(math.Ceil(maxUnavail * float64(n)))
	if b < 1 {
		b = 1
	}
	return b
}

// rolling replaces old machines batch by batch: new ones first, then the
// old ones of that batch go. The first batch is a single spearhead (the
// canary, with canary) that must survive the smoke window.
func (r *run) rolling(ctx context.Context, p *plan, waitTimeout time.Duration, maxUnavail float64, canary bool) error {
	if len(p.cfg.Mounts) > 0 {
		return r.rollingWithVolumes(ctx, p, waitTimeout)
	}
	olds := p.old
	remaining := p.want
	if canary && remaining > 0 {
		r.emit("canary", "", p.group, "starting a canary machine of the new release")
	}
	first := true
	for remaining > 0 || len(olds) > 0 {
		n := batchSize(p.want, maxUnavail)
		if first {
			n = 1
		}
		if n > remaining {
			n = remaining
		}
		if n > 0 {
			if _, err := r.launch(ctx, p, n, waitTimeout, false, first); err != nil {
				return err
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
		if err := r.retire(ctx, p, olds[:k]); err != nil {
			return err
		}
		olds = olds[k:]
		first = false
		if n == 0 && k == 0 {
			break
		}
	}
	return nil
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
			if _, err := r.launch(ctx, p, 1, waitTimeout, false, i == 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// blueGreen starts every new machine cordoned, waits until all are healthy,
// then switches traffic: the new ones are uncordoned, the old ones drained.
func (r *run) blueGreen(ctx context.Context, p *plan, waitTimeout time.Duration) error {
	ids, err := r.launch(ctx, p, p.want, waitTimeout, true, true)
	if err != nil {
		return err
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
	var wg sync.WaitGroup
	errs := make([]error, p.want)
	for i := 0; i < p.want; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m, err := r.d.Sup.Create(ctx, r.app, cloneConfig(p.cfg), supervisor.CreateOptions{})
			if m != nil {
				r.addCreated(m.ID)
				r.emit("machine", m.ID, p.group, "machine %s started", m.ID)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rollback starts the old machines this deploy stopped again, waits until
// they are healthy, then removes the new machines.
func (r *run) rollback(emit func(step, machine, group, format string, args ...any)) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r.mu.Lock()
	stopped, created := append([]string(nil), r.stoppedOld...), append([]string(nil), r.created...)
	r.mu.Unlock()
	// New machines holding volumes go first: the old machines need their
	// volumes back before they can start.
	var rest []string
	for _, id := range created {
		if m, err := r.d.Sup.Get(ctx, r.app, id); err == nil && m.Config != nil && len(m.Config.Mounts) > 0 {
			emit("rollback", id, "", "removing new machine %s to free its volume", id)
			if err := r.d.Sup.Destroy(ctx, r.app, id, true); err != nil {
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
			if _, err := r.d.Sup.Start(ctx, r.app, id); err != nil {
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
		if err := r.d.Sup.Destroy(ctx, r.app, id, true); err != nil {
			r.d.Log.Warn("rollback: destroy new machine", "machine", id, "err", err)
		}
	}
}

// finish destroys the old machines of a completed release and the machines
// of process groups the new config no longer has.
func (r *run) finish(ctx context.Context, existing []*supervisor.Record, configs map[string]*types.MachineConfig) {
	r.mu.Lock()
	stopped := map[string]bool{}
	for _, id := range r.stoppedOld {
		stopped[id] = true
	}
	created := map[string]bool{}
	for _, id := range r.created {
		created[id] = true
	}
	r.mu.Unlock()
	for _, o := range existing {
		g := groupOf(o)
		_, kept := configs[g]
		if created[o.ID] || (kept && !stopped[o.ID] && o.State != types.StateStopped && o.State != types.StateFailed && o.State != types.StateCreated) {
			continue
		}
		if g == appconfig.ReleaseCommandGroup {
			continue
		}
		if !kept {
			r.emit("retire", o.ID, g, "removing machine %s: process group %s is gone from fly.toml", o.ID, g)
		}
		if err := r.d.Sup.Destroy(ctx, r.app, o.ID, true); err != nil {
			r.d.Log.Warn("destroy old machine", "machine", o.ID, "err", err)
		}
	}
}

// releaseCommand runs the release command in an ephemeral machine and
// streams its output; a non-zero exit fails the deploy before any machine
// changed.
func (d *Deployer) releaseCommand(ctx context.Context, app string, cfg *types.MachineConfig, timeout time.Duration, emit func(step, machine, group, format string, args ...any)) error {
	emit("release_command", "", appconfig.ReleaseCommandGroup, "running release command: %s", strings.Join(cfg.Init.Cmd, " "))
	m, err := d.Sup.Create(ctx, app, cfg, supervisor.CreateOptions{})
	if m == nil {
		return fmt.Errorf("release command: %w", err)
	}
	defer func() {
		if err := d.Sup.Destroy(context.Background(), app, m.ID, true); err != nil {
			d.Log.Warn("remove release command machine", "machine", m.ID, "err", err)
		}
	}()
	if err != nil {
		return fmt.Errorf("release command: %w", err)
	}
	tail := newTailer(d.Sup.LogPath(app, m.ID))
	defer tail.close()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range tail.lines() {
			emit("release_command", m.ID, appconfig.ReleaseCommandGroup, "%s", line)
		}
		cur, err := d.Sup.Get(ctx, app, m.ID)
		if err != nil {
			return fmt.Errorf("release command: %w", err)
		}
		if cur.State == types.StateStopped || cur.State == types.StateFailed {
			for _, line := range tail.lines() {
				emit("release_command", m.ID, appconfig.ReleaseCommandGroup, "%s", line)
			}
			code := exitCode(cur)
			if cur.State == types.StateFailed || code != 0 {
				return fmt.Errorf("release command failed with exit code %d; nothing was changed (its output is above and in `hangar logs --machine %s`)", code, m.ID)
			}
			emit("release_command", m.ID, appconfig.ReleaseCommandGroup, "release command finished")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("release command did not finish within %v (release_command_timeout); nothing was changed", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func exitCode(r *supervisor.Record) int {
	for _, e := range r.Events {
		if e.Type != "exit" {
			continue
		}
		if ev, ok := e.Request["exit_event"].(map[string]interface{}); ok {
			switch c := ev["exit_code"].(type) {
			case float64:
				return int(c)
			case int:
				return c
			}
		}
	}
	if r.State == types.StateFailed {
		return -1
	}
	return 0
}
