package hosts

import (
	"errors"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

func host(id, region string, memFree int64, state string) types.Host {
	return types.Host{ID: id, Region: region, State: state,
		Capacity: types.HostCapacity{MemoryMB: 4096}, Used: types.HostUsage{MemoryMB: 4096 - memFree}}
}

func TestPlaceRegionFirst(t *testing.T) {
	all := []types.Host{host("a", "fra", 4096, types.HostReady), host("c", "iad", 4096, types.HostReady)}
	for _, region := range []string{"fra", "iad"} {
		h, err := Place(PlaceRequest{App: "web", Region: region, MemoryMB: 256}, all, nil)
		if err != nil || h.Region != region {
			t.Fatalf("region %s: placed on %+v, %v", region, h, err)
		}
	}
}

// Machines of one app spread over the region's hosts: each new one goes
// to the host with the fewest of the app, whatever other apps run there.
func TestPlaceSpreadsAnApp(t *testing.T) {
	all := []types.Host{host("a", "fra", 3000, types.HostReady), host("b", "fra", 4000, types.HostReady), host("c", "iad", 4096, types.HostReady)}
	var placed []Placed
	// Another app crowds host b: it must not push web off it.
	for i := 0; i < 3; i++ {
		placed = append(placed, Placed{App: "other", HostID: "b"})
	}
	count := map[string]int{}
	for i := 0; i < 6; i++ {
		h, err := Place(PlaceRequest{App: "web", Region: "fra", MemoryMB: 256}, all, placed)
		if err != nil {
			t.Fatal(err)
		}
		placed = append(placed, Placed{App: "web", HostID: h.ID})
		count[h.ID]++
	}
	if count["a"] != 3 || count["b"] != 3 || count["c"] != 0 {
		t.Fatalf("6 machines in fra placed %v, want 3 on a and 3 on b", count)
	}
	// With equal counts the host with more memory free goes first.
	h, _ := Place(PlaceRequest{App: "new", Region: "fra", MemoryMB: 256}, all, placed)
	if h.ID != "b" {
		t.Fatalf("first machine of a new app on %s, want b (more memory free)", h.ID)
	}
}

func TestPlaceRespectsCapacity(t *testing.T) {
	all := []types.Host{host("a", "fra", 200, types.HostReady), host("b", "fra", 1024, types.HostReady)}
	h, err := Place(PlaceRequest{App: "web", Region: "fra", MemoryMB: 512}, all, []Placed{{App: "web", HostID: "b"}})
	if err != nil || h.ID != "b" {
		t.Fatalf("placed on %s, %v; want b, the only host with 512 MB free, even with more of the app", h.ID, err)
	}
	_, err = Place(PlaceRequest{App: "web", Region: "fra", MemoryMB: 2048}, all, nil)
	if !errors.Is(err, ErrNoCapacity) || !errors.Is(err, types.ErrConflict) {
		t.Fatalf("no host with 2048 MB: %v, want ErrNoCapacity", err)
	}
	for _, want := range []string{"a: 200 MB free", "b: 1024 MB free", "hangar server --join"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestPlaceNoHostInRegion(t *testing.T) {
	all := []types.Host{host("a", "fra", 4096, types.HostReady), host("c", "iad", 4096, types.HostUnreachable)}
	_, err := Place(PlaceRequest{App: "web", Region: "iad", MemoryMB: 256}, all, nil)
	if !errors.Is(err, ErrNoHost) || !errors.Is(err, types.ErrInvalid) {
		t.Fatalf("only host of iad unreachable: %v, want ErrNoHost", err)
	}
	for _, want := range []string{`region "iad"`, "fra", "hangar hosts list", "--region iad"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Draining hosts take no new machines.
	all = []types.Host{host("a", "fra", 4096, types.HostDraining)}
	if _, err := Place(PlaceRequest{App: "web", Region: "fra", MemoryMB: 256}, all, nil); !errors.Is(err, ErrNoHost) {
		t.Fatalf("only host draining: %v, want ErrNoHost", err)
	}
}

func TestPlaceVolumePins(t *testing.T) {
	all := []types.Host{host("a", "fra", 4096, types.HostReady), host("b", "fra", 300, types.HostReady), host("c", "iad", 4096, types.HostUnreachable)}
	h, err := Place(PlaceRequest{App: "db", Region: "fra", MemoryMB: 256, VolumeHost: "b"}, all, nil)
	if err != nil || h.ID != "b" {
		t.Fatalf("volume on b: placed on %s, %v", h.ID, err)
	}
	cases := []struct {
		req  PlaceRequest
		want error
		says string
	}{
		{PlaceRequest{App: "db", Region: "fra", MemoryMB: 512, VolumeHost: "b"}, ErrNoCapacity, "300 MB of memory free"},
		{PlaceRequest{App: "db", Region: "iad", MemoryMB: 256, VolumeHost: "b"}, ErrNoHost, "region fra, not iad"},
		{PlaceRequest{App: "db", Region: "iad", MemoryMB: 256, VolumeHost: "c"}, ErrNoHost, "unreachable"},
		{PlaceRequest{App: "db", Region: "fra", MemoryMB: 256, VolumeHost: "zz"}, ErrNoHost, "not registered"},
	}
	for _, c := range cases {
		_, err := Place(c.req, all, nil)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %v saying %q", c.req, err, c.want, c.says)
		}
	}
}

func TestGuestMemoryMB(t *testing.T) {
	if got := GuestMemoryMB(&types.MachineConfig{}); got != int64(types.DefaultGuest.MemoryMB) {
		t.Fatalf("no guest: %d", got)
	}
	if got := GuestMemoryMB(&types.MachineConfig{Guest: &types.MachineGuest{MemoryMB: 1024}}); got != 1024 {
		t.Fatalf("1024: %d", got)
	}
}
