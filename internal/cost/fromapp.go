package cost

import (
	"fmt"

	"github.com/hangar-dev/hangar/internal/export"
)

// FromApp turns an app read from fly.toml into the estimate's input. Each
// group runs export.DesiredCount machines (the --count override, else
// min_machines_running, at least 1). volumesGB maps a group to the sizes of
// its machines' volumes; a size of 0 (no initial_size) is Fly's default.
func (p *Prices) FromApp(app *export.App, volumesGB map[string][]int, egressGB float64, dedicatedIPv4 int) (Input, error) {
	if app == nil {
		return Input{}, fmt.Errorf("cost: no app")
	}
	in := Input{App: app.Name, Region: app.PrimaryRegion, EgressGB: egressGB, DedicatedIPv4: dedicatedIPv4}
	for _, g := range app.Groups {
		gi := GroupInput{
			Name:   g.Name,
			Guest:  export.GuestOf(g.Config),
			Count:  export.DesiredCount(g),
			Public: export.HasHTTP(g.Config),
		}
		for _, v := range volumesGB[g.Name] {
			if v <= 0 {
				v = int(p.Fly.DefaultVolumeSizeGB.Value)
			}
			gi.VolumesGB = append(gi.VolumesGB, v)
		}
		in.Groups = append(in.Groups, gi)
	}
	return in, nil
}
