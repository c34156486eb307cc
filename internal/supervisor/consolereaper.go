package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// ConsoleReaper destroys the ephemeral machines of `hangar console`
// (process group types.ConsoleGroup) that their CLI no longer keeps:
// the CLI holds a lease on its console machine and refreshes it while the
// session lasts, and destroys the machine when the session ends; a CLI
// killed (kill -9, a lost laptop) stops refreshing, so the lease lapses
// and the next Tick destroys the machine. A console machine that never
// got a lease (the CLI died between the create and the lease) is
// destroyed once it is older than Grace. Run calls Tick every Interval;
// tests call Tick with their own time.
type ConsoleReaper struct {
	Sup      *Supervisor
	Interval time.Duration
	// Grace is how long a console machine without a lease may live
	// (default 30s).
	Grace time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	Log *slog.Logger
}

// Run reaps every Interval until ctx ends.
func (cr *ConsoleReaper) Run(ctx context.Context) {
	every(ctx, cr.Interval, func() {
		now := time.Now
		if cr.Now != nil {
			now = cr.Now
		}
		if _, err := cr.Tick(ctx, now()); err != nil && ctx.Err() == nil {
			cr.log().Warn("console machines", "err", err)
		}
	})
}

// Tick destroys the console machines whose lease lapsed before now (or
// that have had none for Grace) and returns their ids.
func (cr *ConsoleReaper) Tick(ctx context.Context, now time.Time) ([]string, error) {
	ms, err := cr.Sup.List(ctx, "")
	if err != nil {
		return nil, err
	}
	grace := cr.Grace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	var gone []string
	var errs []error
	for _, r := range ms {
		if r.Config == nil || r.Config.Metadata[types.MetaProcessGroup] != types.ConsoleGroup ||
			r.State == types.StateDestroyed || r.State == types.StateDestroying {
			continue
		}
		if r.LeaseNonce != "" {
			if now.Unix() < r.LeaseExpires {
				continue // its CLI keeps it
			}
		} else if created, err := time.Parse(time.RFC3339, r.CreatedAt); err != nil || now.Sub(created) < grace {
			continue
		}
		if err := cr.Sup.Destroy(ctx, r.App, r.ID, true); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		cr.log().Info("destroyed a console machine its CLI no longer keeps", "app", r.App, "machine", r.ID)
		gone = append(gone, r.ID)
	}
	return gone, errors.Join(errs...)
}

func (cr *ConsoleReaper) log() *slog.Logger {
	if cr.Log == nil {
		return slog.Default()
	}
	return cr.Log
}
