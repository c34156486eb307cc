package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// ReasonInterrupted begins the reason of a release whose deploy a daemon
// crash or restart cut short.
const ReasonInterrupted = "interrupted"

// Resume settles the deploys an earlier daemon left unfinished (it was
// killed or crashed mid-deploy); call it once at start, after the
// supervisor has re-adopted the machines. A run that had rolled out
// completely is finished (old machines destroyed, release complete); any
// other is rolled back as a failed deploy is (old machines started again,
// new ones destroyed, release failed with reason "interrupted: …"). A
// release left running without a run record (the crash came before the
// run began) changed nothing and is marked failed.
//
// Resume takes each such app's deploy lock before it returns, so a deploy
// asked for meanwhile is refused rather than counting the leftovers; the
// work itself goes on in the background (WaitResumed waits for it).
func (d *Deployer) Resume(ctx context.Context) error {
	kvs, err := d.Store.List(ctx, "deploy-runs/")
	if err != nil {
		return fmt.Errorf("settle interrupted deploys: %w; the next start of the daemon tries again", err)
	}
	runs := map[string]*runRecord{}
	for _, kv := range kvs {
		var rec runRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil || rec.App == "" {
			d.Log.Warn("unreadable record of an interrupted deploy; removing it", "key", kv.Key, "err", err)
			_, _ = d.Store.Delete(ctx, kv.Key, store.AnyRevision)
			continue
		}
		runs[rec.App] = &rec
	}
	rels, err := d.Store.List(ctx, "releases/")
	if err != nil {
		return fmt.Errorf("settle interrupted deploys: %w; the next start of the daemon tries again", err)
	}
	for _, kv := range rels {
		var rel Release
		if err := json.Unmarshal(kv.Value, &rel); err != nil || rel.Status != StatusRunning {
			continue
		}
		if rec := runs[rel.App]; rec != nil && rec.Version == rel.Version {
			continue
		}
		// Recorded, then the daemon died before the run began: nothing
		// changed but, perhaps, leases on its machines.
		d.releaseDeployLeases(ctx, rel.App, rel.Version)
		d.markInterrupted(ctx, &rel, "before any machine changed; deploy again", nil)
	}
	for app, rec := range runs {
		if !d.lock(app) {
			continue
		}
		d.resuming.Add(1)
		go func(rec *runRecord) {
			defer d.resuming.Done()
			defer d.unlock(rec.App)
			d.resume(context.WithoutCancel(ctx), rec)
		}(rec)
	}
	return nil
}

// WaitResumed waits until the work Resume started is done.
func (d *Deployer) WaitResumed() { d.resuming.Wait() }

// resume finishes or rolls back one interrupted run.
func (d *Deployer) resume(ctx context.Context, rec *runRecord) {
	log := d.Log.With("app", rec.App, "release", rec.Version)
	emit := func(step, machine, group, format string, args ...any) {
		log.Info("resume: "+fmt.Sprintf(format, args...), "step", step, "machine", machine)
	}
	r := &run{d: d, app: rec.App, emit: emit, rec: *rec}
	rel, err := GetRelease(ctx, d.Store, rec.App, rec.Version)
	if err != nil {
		if errors.Is(err, supervisor.ErrNotFound) {
			r.forget() // the app is gone
			return
		}
		log.Warn("resume an interrupted deploy: read its release; the next start tries again", "err", err)
		return
	}
	d.releaseDeployLeases(ctx, rec.App, rec.Version)
	if rel.Status != StatusRunning {
		r.forget() // the outcome was recorded; only the record was left
		return
	}
	ms, err := d.Sup.List(ctx, rec.App)
	if err != nil {
		log.Warn("resume an interrupted deploy: list machines; the next start tries again", "err", err)
		return
	}
	// Machines the run made but had not recorded yet (it died between the
	// two) carry its mark and were not there when it began.
	known := map[string]bool{}
	for _, id := range append(append([]string(nil), rec.Existing...), rec.Created...) {
		known[id] = true
	}
	var existing []*supervisor.Record
	for _, m := range ms {
		// A machine left destroying (the crash came mid-destroy) stays
		// in: finish and rollback destroy it again.
		if m.State == types.StateDestroyed {
			continue
		}
		if mark, ok := rec.Marks[groupOf(m)]; ok && !known[m.ID] && m.Config != nil && m.Config.Metadata[types.MetaRelease] == mark {
			r.rec.Created = append(r.rec.Created, m.ID)
		}
		if slices.Contains(rec.Existing, m.ID) {
			existing = append(existing, m)
		}
	}
	if rec.Phase == phaseFinish {
		log.Info("finishing a deploy interrupted after its rollout")
		if rec.Scale {
			r.finishScale(ctx)
		} else {
			r.finish(ctx, existing, rel.Machines)
		}
		fin := time.Now().UTC()
		rel.Status, rel.FinishedAt = StatusComplete, &fin
		d.putRelease(ctx, rel, r)
		return
	}
	log.Info("rolling back a deploy interrupted during its " + rec.Phase)
	r.rollback(emit)
	d.markInterrupted(ctx, rel, fmt.Sprintf("during its %s; rolled back, the previous release serves", rec.Phase), r)
}

// markInterrupted records rel as failed, interrupted at the moment said
// (then r's record goes, if r is set).
func (d *Deployer) markInterrupted(ctx context.Context, rel *Release, when string, r *run) {
	fin := time.Now().UTC()
	rel.Status, rel.FinishedAt = StatusFailed, &fin
	rel.Reason = ReasonInterrupted + ": the daemon stopped " + when
	d.putRelease(ctx, rel, r)
}

// putRelease records rel; then the run's record, if any, goes.
func (d *Deployer) putRelease(ctx context.Context, rel *Release, r *run) {
	if _, err := store.PutJSON(ctx, d.Store, releaseKey(rel.App, rel.Version), rel, store.AnyRevision); err != nil {
		d.Log.Warn("record the outcome of an interrupted deploy; the next start tries again", "app", rel.App, "release", rel.Version, "err", err)
		return
	}
	d.Log.Info("settled an interrupted deploy", "app", rel.App, "release", rel.Version, "status", rel.Status, "reason", rel.Reason)
	if r != nil {
		r.forget()
	}
}

// releaseDeployLeases ends the leases a dead daemon's deploy of version
// holds, rather than wait for them to expire: this daemon runs the
// machines, so it can read their nonces.
func (d *Deployer) releaseDeployLeases(ctx context.Context, app string, version int) {
	ms, err := d.Sup.List(ctx, app)
	if err != nil {
		return
	}
	desc := leaseDescription(version)
	for _, m := range ms {
		if m.LeaseOwner == deployLeaseOwner && m.LeaseDesc == desc && m.LeaseNonce != "" {
			if err := d.Sup.ReleaseLease(ctx, app, m.ID, m.LeaseNonce); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
				d.Log.Warn("release the lease of an interrupted deploy", "machine", m.ID, "err", err)
			}
		}
	}
}
