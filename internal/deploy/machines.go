package deploy

import (
	"context"
	"time"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// Machines is what a deploy needs of the host's machines: the subset of
// *supervisor.Supervisor that strategies, release_command, scaling and
// recovery call. It is owned here so that deploy can be built (and
// tested) on anything that runs machines; add a method when a deploy
// step needs one.
//
// Errors wrap supervisor's sentinels (supervisor.ErrNotFound for a
// machine that does not exist, supervisor.ErrConflict for a lease held
// by someone else or a machine being destroyed).
type Machines interface {
	// List returns the machines of an app, oldest first.
	List(ctx context.Context, app string) ([]*supervisor.Record, error)
	// Get returns one machine with its live check status.
	Get(ctx context.Context, app, id string) (*supervisor.Record, error)
	// Create records a new machine and starts it (unless opt.SkipLaunch);
	// a failed start leaves the machine failed and returns the error
	// (the supervisor returns no record then: a deploy finds the machine
	// by the release mark in its metadata, run.addMarked).
	Create(ctx context.Context, app string, cfg *types.MachineConfig, opt supervisor.CreateOptions) (*supervisor.Record, error)
	// Start starts a created or stopped machine; a started one is a no-op.
	Start(ctx context.Context, app, id string) (*supervisor.Record, error)
	// Stop drains the machine (in-flight requests finish) and stops it.
	Stop(ctx context.Context, app, id, signal string, timeout time.Duration) (*supervisor.Record, error)
	// Update replaces a machine's config (a new version of it); the
	// secrets rollout (a restart of the app's machines) uses it.
	Update(ctx context.Context, app, id string, cfg *types.MachineConfig, skipLaunch bool) (*supervisor.Record, error)
	// Destroy removes a machine; force stops a running one first.
	Destroy(ctx context.Context, app, id string, force bool) error
	// SetCordoned takes a running machine out of (or back into) traffic.
	SetCordoned(ctx context.Context, app, id string, cordoned bool) (*supervisor.Record, error)
	// WaitHealthy waits until the machine is started and all checks pass.
	WaitHealthy(ctx context.Context, app, id string, timeout time.Duration) error
	// ForgetDestroyed drops the records of an app's destroyed machines
	// (when the app is deleted).
	ForgetDestroyed(ctx context.Context, app string) error
	// LogPath is the file a machine's output goes to.
	LogPath(app, id string) string

	AcquireLease(ctx context.Context, app, id, owner, desc string, ttl time.Duration) (*supervisor.Lease, error)
	RefreshLease(ctx context.Context, app, id, nonce string, ttl time.Duration) (*supervisor.Lease, error)
	ReleaseLease(ctx context.Context, app, id, nonce string) error
}

// The supervisor is the Machines of a daemon.
var _ Machines = (*supervisor.Supervisor)(nil)
