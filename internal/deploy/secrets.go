package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Secrets is what deploys need of the apps' secrets (the daemon's
// *secrets.Store): the version new machines boot with, and the version
// the machines were last rolled out with when no release records it.
type Secrets interface {
	// Version is the app's latest secrets version (0: none).
	Version(ctx context.Context, app string) (int, error)
	// DeployedVersion is the version last marked deployed (0: never).
	DeployedVersion(ctx context.Context, app string) (int, error)
	// MarkDeployed records that the app's machines now run version v.
	MarkDeployed(ctx context.Context, app string, v int) error
}

// DeploySecrets rolls secrets version v out to app's machines, the one
// secrets roll-out (`secrets set` without --stage, `secrets deploy`): when
// the app has a complete release, through Restart (the same health gating
// as a deploy, and a release recording the secrets version); else machine
// by machine, each updated to version v and, if it was running, waited for
// until healthy before the next. The release is nil in the second case.
// Once it is done, v is marked deployed (Secrets.MarkDeployed) and a last
// "secrets" event says so.
func (d *Deployer) DeploySecrets(ctx context.Context, app string, v int, user string, progress func(Event)) (*Release, error) {
	rel, err := d.rollOutSecrets(ctx, app, v, user, progress)
	if err != nil {
		return rel, err
	}
	if d.Secrets != nil {
		if err := d.Secrets.MarkDeployed(ctx, app, v); err != nil {
			return rel, err
		}
	}
	if progress != nil {
		progress(Event{Time: time.Now().UTC(), Step: "secrets", Message: fmt.Sprintf("secrets version %d deployed", v)})
	}
	return rel, nil
}

func (d *Deployer) rollOutSecrets(ctx context.Context, app string, v int, user string, progress func(Event)) (*Release, error) {
	rels, err := Releases(ctx, d.Store, app)
	if err != nil {
		return nil, err
	}
	for _, rel := range rels {
		if rel.Status == StatusComplete {
			return d.Restart(ctx, app, user, progress)
		}
	}
	return nil, d.restartWithSecrets(ctx, app, v, progress)
}

// DeployedSecretsVersion is the secrets version the app's machines run:
// that of its newest complete release in st when it has one (deploys,
// restarts and rollbacks record it), else the version the last roll-out
// without a release marked in sec.
func DeployedSecretsVersion(ctx context.Context, st store.Store, sec Secrets, app string) (int, error) {
	dv, err := sec.DeployedVersion(ctx, app)
	if err != nil {
		return 0, err
	}
	rels, err := Releases(ctx, st, app)
	if err != nil {
		return 0, err
	}
	for _, rel := range rels {
		if rel.Status == StatusComplete {
			return rel.SecretsVersion, nil
		}
	}
	return dv, nil
}

// restartWithSecrets updates each machine of the app to secrets version v,
// one at a time, waiting until each running one is healthy again.
func (d *Deployer) restartWithSecrets(ctx context.Context, app string, v int, progress func(Event)) error {
	ms, err := d.Sup.List(ctx, app)
	if err != nil {
		return err
	}
	emit := func(id, format string, args ...any) {
		if progress != nil {
			progress(Event{Time: time.Now().UTC(), Step: "secrets", MachineID: id, Message: fmt.Sprintf(format, args...)})
		}
	}
	for _, m := range ms {
		if m.Config == nil || m.State == types.StateDestroyed || m.State == types.StateDestroying {
			continue
		}
		running := m.State == types.StateStarted || m.State == types.StateStarting || m.State == types.StateSuspended
		cfg := *m.Config
		md := make(map[string]string, len(cfg.Metadata)+1)
		for k, val := range cfg.Metadata {
			md[k] = val
		}
		md[MetaSecretsVersion] = fmt.Sprint(v)
		cfg.Metadata = md
		if _, err := d.Sup.Update(ctx, app, m.ID, &cfg, false); err != nil {
			return fmt.Errorf("machine %s: %w", m.ID, err)
		}
		if !running {
			emit(m.ID, "machine %s (%s) will boot with secrets version %d", m.ID, m.State, v)
			continue
		}
		emit(m.ID, "machine %s restarted with secrets version %d; waiting for its checks", m.ID, v)
		if err := d.Sup.WaitHealthy(ctx, app, m.ID, 2*time.Minute); err != nil {
			return fmt.Errorf("machine %s after the secrets change: %w", m.ID, err)
		}
		emit(m.ID, "machine %s is healthy", m.ID)
	}
	return nil
}
