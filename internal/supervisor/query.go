package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// GetOrDestroyed returns a machine, or, as on Fly, its record in state
// destroyed while the app remembers it (ListDestroyed); else ErrNotFound.
func (s *Supervisor) GetOrDestroyed(ctx context.Context, app, id string) (*Record, error) {
	r, err := s.Get(ctx, app, id)
	if !errors.Is(err, ErrNotFound) {
		return r, err
	}
	if gone, lerr := s.ListDestroyed(ctx, app); lerr == nil {
		for _, d := range gone {
			if d.ID == id {
				return d, nil
			}
		}
	}
	return nil, err
}

// WaitState blocks until the machine is in one of states, and, when
// instance is given, at that version, and returns the state reached.
// StateDestroyed and StateReplaced may be waited for: replaced is reached
// when the machine has moved on from instance. StateSettled is reached by
// any state types.Settled accepts (the state reached is returned).
// Reaching neither what was asked nor a state that can still lead to it
// is an error: a machine destroyed meanwhile (ErrNotFound), an instance
// replaced when replaced was not asked for (ErrConflict); timeout passing
// is ErrTimeout.
func (s *Supervisor) WaitState(ctx context.Context, app, id string, states []string, instance string, timeout time.Duration) (string, error) {
	want := map[string]bool{}
	for _, st := range states {
		want[st] = true
	}
	reach := func(state string) bool { return want[state] || (want[types.StateSettled] && types.Settled(state)) }
	var reached string
	_, err := s.WaitFor(ctx, app, id, timeout, func(m *Record) (bool, error) {
		if m == nil {
			reached = types.StateDestroyed
			if reach(types.StateDestroyed) {
				return true, nil
			}
			return false, fmt.Errorf("machine not found: %s was destroyed: %w", id, ErrNotFound)
		}
		if instance != "" && m.InstanceID != instance {
			for _, v := range m.Versions {
				if v.InstanceID == instance {
					if reach(types.StateReplaced) {
						reached = types.StateReplaced
						return true, nil
					}
					return false, fmt.Errorf("machine %s: instance %s was replaced by %s: %w", id, instance, m.InstanceID, ErrConflict)
				}
			}
			return false, nil
		}
		reached = m.State
		return reach(m.State), nil
	})
	return reached, err
}
