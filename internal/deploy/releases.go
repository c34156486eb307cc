package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

func releaseKey(app string, v int) string { return fmt.Sprintf("%s%08d", releasesPrefix(app), v) }

// releasesPrefix is the store prefix of an app's releases.
func releasesPrefix(app string) string { return "releases/" + app + "/" }

// Releases lists an app's releases, newest first.
func Releases(ctx context.Context, s store.Store, app string) ([]*Release, error) {
	kvs, err := s.List(ctx, releasesPrefix(app))
	if err != nil {
		return nil, fmt.Errorf("list releases of %s: %w", app, err)
	}
	out := make([]*Release, 0, len(kvs))
	for _, kv := range kvs {
		var r Release
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("release %s: %w", kv.Key, err)
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
}

// GetRelease returns one release.
func GetRelease(ctx context.Context, s store.Store, app string, version int) (*Release, error) {
	var r Release
	if _, err := store.GetJSON(ctx, s, releaseKey(app, version), &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("app %s has no release v%d: %w", app, version, supervisor.ErrNotFound)
		}
		return nil, err
	}
	return &r, nil
}

func (d *Deployer) newRelease(ctx context.Context, rel *Release) (*Release, error) {
	for attempt := 0; attempt < 20; attempt++ {
		prev, err := Releases(ctx, d.Store, rel.App)
		if err != nil {
			return nil, err
		}
		rel.Version = 1
		if len(prev) > 0 {
			rel.Version = prev[0].Version + 1
		}
		_, err = store.PutJSON(ctx, d.Store, releaseKey(rel.App, rel.Version), rel, 0)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("record release: %w", err)
		}
		return rel, nil
	}
	return nil, fmt.Errorf("record release: too much contention: %w", supervisor.ErrConflict)
}

// newestRelease is the highest release number among machines (0: none).
func newestRelease(machines []*supervisor.Record) int {
	best := 0
	for _, m := range machines {
		if m.Config == nil {
			continue
		}
		if v, err := strconv.Atoi(m.Config.Metadata[types.MetaRelease]); err == nil && v > best {
			best = v
		}
	}
	return best
}
