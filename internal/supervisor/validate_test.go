package supervisor

import (
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

func TestSignalsAreFlyctls(t *testing.T) {
	t.Parallel()
	if len(signals) != len(types.Signals) {
		t.Fatalf("%d signals, flyctl knows %d", len(signals), len(types.Signals))
	}
	for _, name := range types.Signals {
		if _, err := ParseSignal(name); err != nil {
			t.Errorf("ParseSignal(%s): %v", name, err)
		}
	}
}
