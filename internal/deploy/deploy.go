// Package deploy turns a fly.toml and an image into a release: it records
// the release, creates the new machines of every process group, waits until
// they are started and healthy, and only then drains and removes the old
// ones. If any new machine fails, the new machines are removed, the old
// ones keep serving, and the release is marked failed with the reason.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
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
var ErrInvalid = errors.New("invalid deploy")

// Release statuses.
const (
	StatusRunning  = "running"
	StatusComplete = "complete"
	StatusFailed   = "failed"
)

// Release is the immutable record of one deploy.
type Release struct {
	Version     int                             `json:"version"`
	App         string                          `json:"app"`
	Image       string                          `json:"image"`
	ImageDigest string                          `json:"image_digest"`
	Strategy    string                          `json:"strategy"`
	Config      string                          `json:"config"` // fly.toml as deployed
	ConfigFile  string                          `json:"config_file"`
	Machines    map[string]*types.MachineConfig `json:"machine_configs"` // per process group
	Status      string                          `json:"status"`
	Reason      string                          `json:"reason,omitempty"`
	User        string                          `json:"user"`
	CreatedAt   time.Time                       `json:"created_at"`
	FinishedAt  *time.Time                      `json:"finished_at,omitempty"`
}

// Event is one progress step, streamed to the deploying user.
type Event struct {
	Time      time.Time `json:"time"`
	Step      string    `json:"step"`
	MachineID string    `json:"machine_id,omitempty"`
	Group     string    `json:"group,omitempty"`
	Message   string    `json:"message"`
	Error     bool      `json:"error,omitempty"`
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
	Log       *slog.Logger

	mu     sync.Mutex // guards active
	active map[string]bool
}

// Request asks for a deploy.
type Request struct {
	App         string
	Config      []byte
	ConfigFile  string
	Image       string
	Strategy    string
	WaitTimeout time.Duration
	User        string
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
		if err := unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("release %s: %w", kv.Key, err)
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
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
		strategy = "immediate"
	}
	img, err := d.Images.Get(ctx, req.Image)
	if err != nil {
		return nil, fmt.Errorf("%w: image %s: %v", ErrInvalid, req.Image, err)
	}
	digest := img.Digest
	groups := cfg.ProcessGroups()
	configs := map[string]*types.MachineConfig{}
	for _, g := range groups {
		mc, err := cfg.ToMachineConfig(g, req.Image)
		if err != nil {
			return nil, fmt.Errorf("%w: process group %s: %v", ErrInvalid, g, err)
		}
		configs[g] = mc
	}

	d.mu.Lock()
	if d.active == nil {
		d.active = map[string]bool{}
	}
	if d.active[app] {
		d.mu.Unlock()
		return nil, fmt.Errorf("app %s: another deploy is in progress; wait for it to finish: %w", app, supervisor.ErrConflict)
	}
	d.active[app] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.active, app)
		d.mu.Unlock()
	}()

	if err := d.EnsureApp(ctx, app); err != nil {
		return nil, err
	}
	rel, err := d.newRelease(ctx, app, req, strategy, digest, configs)
	if err != nil {
		return nil, err
	}
	emit("release", "", "", "release v%d created (image %s, strategy %s)", rel.Version, req.Image, strategy)
	for _, mc := range configs {
		if mc.Metadata == nil {
			mc.Metadata = map[string]string{}
		}
		mc.Metadata[types.MetaRelease] = fmt.Sprint(rel.Version)
	}
	waitTimeout := req.WaitTimeout
	if waitTimeout == 0 && cfg.Deploy != nil && cfg.Deploy.WaitTimeout != nil {
		waitTimeout = cfg.Deploy.WaitTimeout.Duration
	}
	if waitTimeout == 0 {
		waitTimeout = 2 * time.Minute
	}
	runErr := d.replace(ctx, app, configs, waitTimeout, emit)
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
		emit("failed", "", "", "release v%d failed: %v; the previous machines keep serving", rel.Version, runErr)
		return rel, runErr
	}
	emit("complete", "", "", "release v%d complete", rel.Version)
	return rel, nil
}

func (d *Deployer) newRelease(ctx context.Context, app string, req Request, strategy, digest string, configs map[string]*types.MachineConfig) (*Release, error) {
	for attempt := 0; attempt < 20; attempt++ {
		prev, err := Releases(ctx, d.Store, app)
		if err != nil {
			return nil, err
		}
		v := 1
		if len(prev) > 0 {
			v = prev[0].Version + 1
		}
		rel := &Release{
			Version: v, App: app, Image: req.Image, ImageDigest: digest, Strategy: strategy,
			Config: string(req.Config), ConfigFile: req.ConfigFile, Machines: configs,
			Status: StatusRunning, User: req.User, CreatedAt: time.Now().UTC(),
		}
		_, err = store.PutJSON(ctx, d.Store, releaseKey(app, v), rel, 0)
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

func groupOf(r *supervisor.Record) string {
	if r.Config != nil {
		if g := r.Config.Metadata[types.MetaProcessGroup]; g != "" {
			return g
		}
	}
	return types.DefaultProcessGroup
}

// replace brings up new machines for every group, waits until all are
// healthy, then retires the old ones. On failure the new ones are removed.
func (d *Deployer) replace(ctx context.Context, app string, configs map[string]*types.MachineConfig, waitTimeout time.Duration, emit func(step, machine, group, format string, args ...any)) error {
	existing, err := d.Sup.List(ctx, app)
	if err != nil {
		return err
	}
	old := map[string][]*supervisor.Record{}
	for _, r := range existing {
		old[groupOf(r)] = append(old[groupOf(r)], r)
	}
	groups := make([]string, 0, len(configs))
	for g := range configs {
		groups = append(groups, g)
	}
	sort.Strings(groups)

	type newMachine struct{ id, group string }
	var (
		mu      sync.Mutex
		created []newMachine
		errs    []error
		wg      sync.WaitGroup
	)
	for _, g := range groups {
		n := 0
		for _, r := range old[g] {
			if r.State != types.StateDestroyed {
				n++
			}
		}
		if n == 0 {
			n = 1
		}
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(g string) {
				defer wg.Done()
				cfg := cloneConfig(configs[g])
				r, err := d.Sup.Create(ctx, app, cfg, supervisor.CreateOptions{})
				if r != nil {
					mu.Lock()
					created = append(created, newMachine{r.ID, g})
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("group %s: %w", g, err))
					mu.Unlock()
					return
				}
				emit("machine", r.ID, g, "machine %s created and started; waiting for its checks", r.ID)
				if err := d.Sup.WaitHealthy(ctx, app, r.ID, waitTimeout); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("group %s: %w", g, err))
					mu.Unlock()
					return
				}
				emit("machine", r.ID, g, "machine %s is healthy and taking traffic", r.ID)
			}(g)
		}
	}
	wg.Wait()
	// Machines created by Create but not returned on error are found by
	// listing: anything of this release that is not healthy is removed.
	if len(errs) > 0 {
		for _, m := range created {
			emit("rollback", m.id, m.group, "removing new machine %s", m.id)
			if err := d.Sup.Destroy(context.Background(), app, m.id, true); err != nil {
				d.Log.Warn("rollback: destroy new machine", "machine", m.id, "err", err)
			}
		}
		return errors.Join(errs...)
	}
	for _, r := range existing {
		emit("retire", r.ID, groupOf(r), "draining and stopping old machine %s", r.ID)
		if _, err := d.Sup.Stop(ctx, app, r.ID, "", 0); err != nil {
			d.Log.Warn("stop old machine", "machine", r.ID, "err", err)
		}
		if err := d.Sup.Destroy(ctx, app, r.ID, true); err != nil {
			return fmt.Errorf("remove old machine %s: %w", r.ID, err)
		}
	}
	return nil
}

func cloneConfig(c *types.MachineConfig) *types.MachineConfig {
	var out types.MachineConfig
	b, _ := marshal(c)
	_ = unmarshal(b, &out)
	return &out
}

// Summary is a one-line description of a release for listings.
func (r *Release) Summary() string {
	s := fmt.Sprintf("v%d %s %s", r.Version, r.Status, r.Image)
	if r.Reason != "" {
		s += " (" + strings.SplitN(r.Reason, "\n", 2)[0] + ")"
	}
	return s
}

func marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
