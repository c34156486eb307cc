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
//
// Each run's progress is kept in the store (run.go), so that a daemon
// killed mid-deploy finishes or rolls back the run when it starts again
// (Resume). Machines are reached through the Machines interface, which
// the supervisor implements; the unit tests run the real supervisor on
// the in-memory driver of runtime/runtimetest.
//
// Files: deploy.go (the request and the run of one deploy), plan.go
// (counts and per-group plans), strategies.go (rolling, canary,
// bluegreen, immediate, rollback, finish), release_command.go, scale.go,
// rollback.go (rollback and restart of a release), releases.go (release
// records), run.go and resume.go (progress and crash recovery), lease.go,
// delete.go (deleting an app: its machines, records and releases).
package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/apps"
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
	Store store.Store
	// Sup runs the machines: the daemon's *supervisor.Supervisor (the
	// field keeps its name from when it was that type).
	Sup    Machines
	Images Images
	// Volumes, if set, gives the new machines of a scale count their
	// volumes (the daemon's *volume.Manager); nil: none are created, and
	// a group with [[mounts]] can only grow onto free volumes.
	Volumes   Volumes
	EnsureApp func(ctx context.Context, name string) error
	// AppExists tells whether an app exists (for Request.NoCreateApp).
	AppExists func(ctx context.Context, name string) (bool, error)
	// Apps holds the app records, which DeleteApp removes (the daemon's
	// *apps.Service; nil: the records in Store).
	Apps *apps.Service
	// Secrets are the apps' secrets versions (the daemon's
	// *secrets.Store; nil: version 0, and roll-outs are not recorded).
	Secrets Secrets
	Log     *slog.Logger
	// SmokeWindow is how long a machine must stay up without restarting
	// after its checks pass, before old machines go (the spearhead only).
	SmokeWindow time.Duration
	// Finished, if set, is told of every deploy or scale that ran to its
	// end (status complete or failed), for metrics.
	Finished func(app, strategy, status string, d time.Duration)

	mu       sync.Mutex // guards active
	active   map[string]bool
	resuming sync.WaitGroup // Resume's background work
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
	// not named keep the count of the last complete release (a new group
	// gets one machine).
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
	// Groups, if set, are the only process groups rolled out; the others
	// keep their machines (scale vm --process-group).
	Groups []string
	// NoReleaseCommand skips release_command (a scale changes no code).
	NoReleaseCommand bool
	// NoCreateApp: the app must exist (the caller may not create apps: an
	// app-scoped token); checked under the app's deploy lock.
	NoCreateApp bool
}

// Check parses and validates a deploy request's config (with the
// [[files]] the client sent) and returns it, the app it deploys (the
// request's, else the config's) and the warnings. The API calls it before
// it answers, so that a config that cannot deploy gets a 400, not an
// error at the end of a stream.
func Check(req Request) (*appconfig.Config, string, []appconfig.Diagnostic, error) {
	cfg, err := appconfig.Parse(req.Config, req.ConfigFile)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for path, b := range req.LocalFiles {
		cfg.SetLocalFile(path, b)
	}
	if missing := cfg.UnresolvedFiles(); len(missing) > 0 {
		return nil, "", nil, fmt.Errorf("%w: [[files]] local_path %v: the client did not send these files; deploy with `hangar deploy` from the directory of fly.toml", ErrInvalid, missing)
	}
	warnings, err := cfg.Validate(false)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	app := req.App
	if app == "" {
		app = cfg.AppName
	}
	if app == "" {
		return nil, "", nil, fmt.Errorf("%w: no app name: set `app` in fly.toml or pass --app", ErrInvalid)
	}
	return cfg, app, warnings, nil
}

// Deploy runs one deploy to the end and returns the release.
func (d *Deployer) Deploy(ctx context.Context, req Request, progress func(Event)) (*Release, error) {
	begun := time.Now()
	emit := func(step, machine, group, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if d.Log != nil {
			d.Log.Debug("deploy step", "step", step, "machine", machine, "group", group, "at", time.Since(begun), "msg", msg)
		}
		if progress != nil {
			progress(Event{Time: time.Now().UTC(), Step: step, MachineID: machine, Group: group, Message: msg})
		}
	}
	cfg, app, warnings, err := Check(req)
	if err != nil {
		return nil, err
	}
	if req.NoCreateApp {
		// Checked again here, since the app may have gone since the
		// caller's own check.
		if d.AppExists == nil {
			return nil, fmt.Errorf("app %s: cannot tell whether it exists (no AppExists): %w", app, ErrInvalid)
		}
		ok, err := d.AppExists(ctx, app)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("app %s does not exist and this caller may not create apps; create it with an org token (`hangar apps create %s`): %w", app, app, types.ErrForbidden)
		}
	}
	for _, w := range warnings {
		emit("validate", "", "", "warning: %s", w.String())
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
	if !req.NoCreateApp {
		if err := d.EnsureApp(ctx, app); err != nil {
			return nil, err
		}
	}
	secretsVersion := req.SecretsVersion
	if secretsVersion == 0 && d.Secrets != nil {
		if secretsVersion, err = d.Secrets.Version(ctx, app); err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", app, err)
		}
	}
	existing, err := d.Sup.List(ctx, app)
	if err != nil {
		return nil, err
	}
	counts, err := d.wantedCounts(ctx, app, req.Counts)
	if err != nil {
		return nil, err
	}
	plans := plansFor(configs, existing, counts)
	counts = map[string]int{}
	for _, p := range plans {
		counts[p.group] = p.want
	}
	rolled := plans
	if len(req.Groups) > 0 {
		rolled = nil
		for _, p := range plans {
			if slices.Contains(req.Groups, p.group) {
				rolled = append(rolled, p)
			}
		}
	}
	if req.ScaleOnly {
		strategy = StrategyScale
	}
	description := req.Description
	if req.ScaleOnly && description == "" {
		description = scaleDescription(plans)
	}
	rel, err := d.newRelease(ctx, &Release{
		App: app, Image: req.Image, ImageDigest: img.Digest, Strategy: strategy,
		Config: string(req.Config), ConfigFile: req.ConfigFile, LocalFiles: req.LocalFiles, Machines: configs, Counts: counts,
		SecretsVersion: secretsVersion, RollbackOf: req.RollbackOf, Description: description,
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
	r := newRun(d, rel, existing, rolled, req.ScaleOnly, emit)
	runErr := func() error {
		if err := r.save(ctx); err != nil {
			return err
		}
		release, err := d.leaseMachines(ctx, app, rel.Version, existing)
		if err != nil {
			return err
		}
		defer release()
		if !req.ScaleOnly && !req.NoReleaseCommand && cfg.Deploy != nil && strings.TrimSpace(cfg.Deploy.ReleaseCommand) != "" {
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
		err = r.rollout(ctx, rolled, strategy, waitTimeout, maxUnavail)
		if err == nil {
			// Past this point a restarted daemon finishes the release
			// rather than undo it; if that cannot be recorded, undo it now.
			err = r.setPhase(phaseFinish)
		}
		if err != nil {
			if perr := r.setPhase(phaseRollback); perr != nil {
				d.Log.Warn("record a deploy's rollback", "app", app, "release", rel.Version, "err", perr)
			}
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
		// The run's record stays: the next start of the daemon settles it.
		return rel, fmt.Errorf("record release v%d: %w", rel.Version, err)
	}
	r.forget()
	if d.Finished != nil {
		d.Finished(app, rel.Strategy, rel.Status, time.Since(start))
	}
	if runErr != nil {
		emit("failed", "", "", "release v%d failed: %v; the previous release keeps serving", rel.Version, runErr)
		return rel, runErr
	}
	emit("complete", "", "", "release v%d complete in %s", rel.Version, time.Since(start).Round(time.Millisecond))
	return rel, nil
}
