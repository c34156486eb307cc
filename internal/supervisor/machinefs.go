package supervisor

import (
	"context"
	"fmt"

	"github.com/hangar-dev/hangar/internal/machinefs"
	"github.com/hangar-dev/hangar/internal/types"
)

// MachineFS opens the root filesystem of a started (or suspended) machine
// as its processes see it, for file transfer (`hangar ssh sftp`): the
// caller closes it. See package machinefs for how paths are resolved.
func (s *Supervisor) MachineFS(ctx context.Context, app, id string) (*machinefs.Root, error) {
	r, err := s.Get(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if r.State != types.StateStarted && r.State != types.StateSuspended {
		return nil, fmt.Errorf("machine %s is %s; file transfer needs a started machine: start it with `hangar machine start -a %s %s`: %w", id, r.State, app, id, ErrConflict)
	}
	st, err := s.opt.Driver.Inspect(ctx, id)
	if err != nil || !st.Running || st.Pid <= 0 {
		return nil, fmt.Errorf("machine %s: its process is not running (%v): %w", id, err, ErrConflict)
	}
	root, err := machinefs.Open(st.Pid)
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	return root, nil
}
