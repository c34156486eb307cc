package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// Phases of a run, as recorded. A run is recorded from the moment its
// release is; a daemon that dies mid-deploy finds the record when it
// starts again (Resume):
//
//	rollout ──ok──▶ finish ──▶ (release complete, record deleted)
//	   │                          ▲ Resume: finish again
//	   └─error──▶ rollback ──▶ (release failed, record deleted)
//	                 ▲ Resume of rollout or rollback: roll back
const (
	phaseRollout  = "rollout"
	phaseFinish   = "finish"
	phaseRollback = "rollback"
)

// runRecord is the progress of one deploy (or scale) as stored, so that
// it can be finished or undone after a crash: what the app had when it
// began and every machine (and volume) the run created, stopped or is removing. A
// machine is recorded as stopped before it is stopped, and created once
// its create (which starts it) returns: a crash before that, and a start
// that failed (the create returns no record), are covered by Marks.
type runRecord struct {
	App     string `json:"app"`
	Version int    `json:"version"`
	Phase   string `json:"phase"`
	Scale   bool   `json:"scale,omitempty"`
	// Groups are the process groups the run rolls out; the others keep
	// their machines.
	Groups []string `json:"groups"`
	// Marks is the release number (metadata hangar_release) each group's
	// new machines carry: with Existing it finds a machine the run made
	// but had not recorded yet.
	Marks    map[string]string `json:"marks"`
	Existing []string          `json:"existing"` // the app's machines when the run began
	Created  []string          `json:"created,omitempty"`
	Stopped  []string          `json:"stopped,omitempty"` // old machines the run stopped (or is stopping)
	Removed  []string          `json:"removed,omitempty"` // machines scale count takes away
	// Volumes are the volumes the run created for its new machines (scale
	// count); a rollback destroys them.
	Volumes []string `json:"volumes,omitempty"`
}

func runKey(app string) string { return "deploy-runs/" + app }

// run is the state of one deploy, for rollback: rec, kept in the store.
type run struct {
	d    *Deployer
	app  string
	emit func(step, machine, group, format string, args ...any)

	mu  sync.Mutex // guards rec and its writes to the store
	rec runRecord
}

// saveLocked writes the record.
func (r *run) saveLocked(ctx context.Context) error {
	if _, err := store.PutJSON(context.WithoutCancel(ctx), r.d.Store, runKey(r.app), &r.rec, store.AnyRevision); err != nil {
		return fmt.Errorf("record the progress of release v%d of %s: %w; the deploy cannot go on without it: check the data dir's disk and deploy again", r.rec.Version, r.app, err)
	}
	return nil
}

// save writes the record as it is (the run begins).
func (r *run) save(ctx context.Context) error { return r.change(ctx, func(*runRecord) {}) }

// change applies fn to the record and writes it.
func (r *run) change(ctx context.Context, fn func(rec *runRecord)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.rec)
	return r.saveLocked(ctx)
}

// addCreated records machine id as created by the run (once).
func (r *run) addCreated(id string) error {
	return r.change(context.Background(), func(rec *runRecord) {
		if !slices.Contains(rec.Created, id) {
			rec.Created = append(rec.Created, id)
		}
	})
}

// addMarked records as created the machines of group that carry the
// run's mark and that it has not recorded: one whose start failed, for
// which the create returned no record.
func (r *run) addMarked(ctx context.Context, group string) error {
	ms, err := r.d.Sup.List(ctx, r.app)
	if err != nil {
		return fmt.Errorf("find the machines release v%d of %s created: %w", r.rec.Version, r.app, err)
	}
	r.mu.Lock()
	mark, ok := r.rec.Marks[group]
	known := map[string]bool{}
	for _, id := range append(append([]string(nil), r.rec.Existing...), r.rec.Created...) {
		known[id] = true
	}
	r.mu.Unlock()
	if !ok {
		return nil
	}
	for _, m := range ms {
		if known[m.ID] || groupOf(m) != group || m.Config == nil || m.Config.Metadata[types.MetaRelease] != mark {
			continue
		}
		if err := r.addCreated(m.ID); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) addStopped(id string) error {
	return r.change(context.Background(), func(rec *runRecord) { rec.Stopped = append(rec.Stopped, id) })
}

func (r *run) setPhase(phase string) error {
	return r.change(context.Background(), func(rec *runRecord) { rec.Phase = phase })
}

// forget deletes the record once the release's outcome is recorded.
func (r *run) forget() {
	if _, err := r.d.Store.Delete(context.Background(), runKey(r.app), store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.d.Log.Warn("delete the progress record of a finished deploy", "app", r.app, "err", err)
	}
}

// newRun starts the record of a deploy of rel over the app's existing
// machines, rolling out the plans in rolled.
func newRun(d *Deployer, rel *Release, existing []*supervisor.Record, rolled []*plan, scale bool, emit func(step, machine, group, format string, args ...any)) *run {
	rec := runRecord{App: rel.App, Version: rel.Version, Phase: phaseRollout, Scale: scale,
		Marks: map[string]string{appconfig.ReleaseCommandGroup: fmt.Sprint(rel.Version)}}
	for _, m := range existing {
		rec.Existing = append(rec.Existing, m.ID)
	}
	for _, p := range rolled {
		rec.Groups = append(rec.Groups, p.group)
		rec.Marks[p.group] = p.cfg.Metadata[types.MetaRelease]
	}
	return &run{d: d, app: rel.App, emit: emit, rec: rec}
}
