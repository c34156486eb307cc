package export

import (
	"fmt"
	"sort"

	"github.com/hangar-dev/hangar/internal/appconfig"
)

// FromConfig builds the exporter's App from a parsed fly.toml: one Group per
// process group with the machine config flyctl would create (image is the
// image the machines run), the app name, primary region and release
// command. count, when above zero, is the number of machines of every
// group; secrets are the names of the app's secrets (fly.toml does not list
// them; [[files]] that name a secret add to them).
func FromConfig(cfg *appconfig.Config, image string, count int, secrets []string) (*App, error) {
	if cfg == nil {
		return nil, fmt.Errorf("export: no config")
	}
	if count < 0 {
		return nil, fmt.Errorf("export: count %d is negative", count)
	}
	app := &App{Name: cfg.AppName, PrimaryRegion: cfg.PrimaryRegion}
	if cfg.Deploy != nil {
		app.ReleaseCommand = cfg.Deploy.ReleaseCommand
	}
	names := map[string]bool{}
	for _, s := range secrets {
		names[s] = true
	}
	for _, g := range cfg.ProcessGroups() {
		mc, err := cfg.ToMachineConfig(g, image)
		if err != nil {
			return nil, fmt.Errorf("process group %s: %w", g, err)
		}
		for _, f := range mc.Files {
			if f.SecretName != nil && *f.SecretName != "" {
				names[*f.SecretName] = true
			}
		}
		app.Groups = append(app.Groups, Group{Name: g, Config: mc, Count: count})
	}
	for n := range names {
		app.Secrets = append(app.Secrets, n)
	}
	sort.Strings(app.Secrets)
	return app, nil
}

// VolumeSizesGB returns, for each mount of the group's machine config, the
// initial_size from fly.toml in GB (0 when the mount names none).
func VolumeSizesGB(cfg *appconfig.Config, g Group) ([]int, error) {
	var out []int
	for _, mm := range g.Config.Mounts {
		size := mm.SizeGB
		for _, m := range cfg.Mounts {
			if m.Destination == mm.Path && m.InitialSize != "" && size == 0 {
				s, err := appconfig.ParseSizeGB(m.InitialSize)
				if err != nil {
					return nil, fmt.Errorf("mounts %s initial_size %q: %w", m.Destination, m.InitialSize, err)
				}
				size = s
			}
		}
		out = append(out, size)
	}
	return out, nil
}
