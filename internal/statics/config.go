package statics

import "github.com/hangar-dev/hangar/internal/types"

// FromMachineConfig converts a machine config's statics. Entries served
// from a Tigris bucket are left out: Hangar serves statics from the image
// only.
func FromMachineConfig(in []types.Static) []Static {
	var out []Static
	for _, s := range in {
		if s.TigrisBucket != "" {
			continue
		}
		out = append(out, Static{GuestPath: s.GuestPath, URLPrefix: s.URLPrefix, IndexDocument: s.IndexDocument})
	}
	return out
}
