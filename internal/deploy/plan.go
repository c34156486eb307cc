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

// regionPart is the share of one region in a group's rollout: its old
// machines and how many new ones it gets.
type regionPart struct {
	region string // "": the deploying host's
	old    []*supervisor.Record
	want   int
}

// regionParts splits p by the regions its old machines run in, the
// primary region (PRIMARY_REGION of the config) first, then by name: each
// region gets as many new machines as it has old ones. Machines added
// (want above the old count) go to the first region; machines removed
// come off the last regions first. A group without machines is one part
// on the deploying host's region.
func regionParts(p *plan) []regionPart {
	primary := ""
	if p.cfg != nil {
		primary = p.cfg.Env["PRIMARY_REGION"]
	}
	idx := map[string]int{}
	var parts []regionPart
	for _, o := range p.old {
		i, ok := idx[o.Region]
		if !ok {
			i = len(parts)
			idx[o.Region] = i
			parts = append(parts, regionPart{region: o.Region})
		}
		parts[i].old = append(parts[i].old, o)
	}
	if len(parts) == 0 {
		return []regionPart{{want: p.want}}
	}
	sort.SliceStable(parts, func(i, j int) bool {
		pi, pj := parts[i].region == primary, parts[j].region == primary
		if pi != pj {
			return pi
		}
		return parts[i].region < parts[j].region
	})
	for i := range parts {
		parts[i].want = len(parts[i].old)
	}
	switch extra := p.want - len(p.old); {
	case extra > 0:
		parts[0].want += extra
	case extra < 0:
		for i := len(parts) - 1; i >= 0 && extra < 0; i-- {
			take := min(parts[i].want, -extra)
			parts[i].want -= take
			extra += take
		}
	}
	return parts
}

// regionOfOld is the region of p's i-th old machine ("" past them).
func regionOfOld(p *plan, i int) string {
	if i < len(p.old) {
		return p.old[i].Region
	}
	return ""
}

// hostsOf is the hosts of machines, in order.
func hostsOf(ms []*supervisor.Record) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.HostID
	}
	return out
}
