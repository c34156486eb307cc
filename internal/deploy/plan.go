package deploy

import (
	"encoding/json"
	"math"
	"sort"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// plan is one process group's rollout.
type plan struct {
	group string
	cfg   *types.MachineConfig
	old   []*supervisor.Record
	want  int
}

func plansFor(configs map[string]*types.MachineConfig, existing []*supervisor.Record, counts map[string]int) []*plan {
	old := map[string][]*supervisor.Record{}
	for _, r := range existing {
		g := groupOf(r)
		if g == appconfig.ReleaseCommandGroup || r.State == types.StateDestroyed || r.State == types.StateDestroying {
			continue
		}
		old[g] = append(old[g], r)
	}
	var plans []*plan
	for g, mc := range configs {
		want := len(old[g])
		if n, ok := counts[g]; ok {
			want = n
		}
		if want == 0 && len(old[g]) == 0 {
			if _, ok := counts[g]; !ok {
				want = 1
			}
		}
		plans = append(plans, &plan{group: g, cfg: mc, old: old[g], want: want})
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].group < plans[j].group })
	return plans
}

func groupOf(r *supervisor.Record) string {
	if r.Config != nil {
		if g := r.Config.Metadata[types.MetaProcessGroup]; g != "" {
			return g
		}
	}
	return types.DefaultProcessGroup
}

func cloneConfig(c *types.MachineConfig) *types.MachineConfig {
	var out types.MachineConfig
	b, _ := json.Marshal(c)
	_ = json.Unmarshal(b, &out)
	return &out
}

func batchSize(n int, maxUnavail float64) int {
	if maxUnavail >= 1 {
		return int(maxUnavail)
	}
	b := int(math.Ceil(maxUnavail * float64(n)))
	if b < 1 {
		b = 1
	}
	return b
}
