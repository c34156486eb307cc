package supervisor

import "github.com/hangar-dev/hangar/internal/types"

// Healthy reports whether a machine, as read with its live checks (from
// this host, or from its own host's API), is started with every check
// that gates traffic passing: what WaitHealthy waits for.
func Healthy(m *types.Machine) bool {
	if m.State != types.StateStarted {
		return false
	}
	for _, c := range m.Checks {
		if c.Status != types.CheckPassing && gates(m.Config, c.Name) {
			return false
		}
	}
	return true
}
