package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// deployLeaseTTL bounds how long a crashed deploy keeps its machines
// (unless the next start of the daemon releases them first, see Resume).
const deployLeaseTTL = 30 * time.Second

// deployLeaseOwner owns the leases deploys take.
const deployLeaseOwner = "hangar-deploy"

// leaseDescription describes the leases of the deploy of a release.
func leaseDescription(version int) string { return fmt.Sprintf("deploy of release v%d", version) }

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
		l, err := d.Sup.AcquireLease(ctx, app, m.ID, deployLeaseOwner, leaseDescription(version), deployLeaseTTL)
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
