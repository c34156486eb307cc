package deploy

import (
	"context"
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

// wantedCounts is how many machines each group is to have: as asked,
// else as the newest complete release has it. Never what happens to
// exist: machines left by a deploy a crash interrupted must not count.
func (d *Deployer) wantedCounts(ctx context.Context, app string, asked map[string]int) (map[string]int, error) {
	out := map[string]int{}
	rels, err := Releases(ctx, d.Store, app)
	if err != nil {
		return nil, err
	}
	for _, r := range rels {
		if r.Status == StatusComplete {
			for g, n := range r.Counts {
				out[g] = n
			}
			break
		}
	}
	for g, n := range asked {
		out[g] = n
	}
	return out, nil
}

// plansFor plans each group: its config, its machines, and how many it is
// to have (counts, else as many as it has, else one for a new group).
func plansFor(configs map[string]*types.MachineConfig, existing []*supervisor.Record, counts map[string]int) []*plan {
	old := map[string][]*supervisor.Record{}
	for _, r := range existing {
		g := groupOf(r)
		if g == appconfig.ReleaseCommandGroup || g == types.ConsoleGroup || r.State == types.StateDestroyed || r.State == types.StateDestroying {
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
