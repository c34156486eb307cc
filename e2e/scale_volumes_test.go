package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

const scaleVolumesConfig = `app = "svol"
primary_region = "tst"

[env]
  PORT = "8080"
  APP_VERSION = "1"

[[mounts]]
  source = "data"
  destination = "/data"
  snapshot_retention = 14

[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

// TestScaleCountWithVolumes scales a group with [[mounts]] on real
// volumes, as on Fly: scale count 3 gives each new machine a volume of
// its own, the size of the group's volume (not the mount's default) and
// with the mount's snapshot_retention; a second scale count 3 changes
// nothing; scale count 1 keeps the volumes of the removed machines,
// detached, and a later scale up uses them again.
func TestScaleCountWithVolumes(t *testing.T) {
	harness.RequireRoot(t)
	for _, b := range []string{"mkfs.ext4", "resize2fs", "e2fsck", "losetup"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed: apt-get install -y e2fsprogs util-linux", b)
		}
	}
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	cleanupVolumes(t, d, "svol")
	ref := d.ImportTestApp()
	cfg := filepath.Join(t.TempDir(), "fly.toml")
	if err := os.WriteFile(cfg, []byte(scaleVolumesConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	hangarOK(t, d, "apps", "create", "svol")
	var first types.Volume
	if err := json.Unmarshal([]byte(hangarOK(t, d, "volumes", "create", "data", "--size-mb", "64", "-a", "svol", "--json")), &first); err != nil {
		t.Fatal(err)
	}
	hangarOK(t, d, "deploy", "-c", cfg, "--image", ref)
	m1 := startedMachine(t, d, "svol")
	writeFile(t, d, "svol", m1.ID, "/data/who", m1.ID)

	// state returns the machines (all must be started) and, for each, the
	// volume it holds; and the free volumes.
	state := func(what string) (machines []string, held map[string]types.Volume, free []types.Volume) {
		t.Helper()
		held = map[string]types.Volume{}
		for _, m := range d.Machines("svol") {
			if m.State != types.StateStarted {
				t.Fatalf("%s: machine %s is %s, want started", what, m.ID, m.State)
			}
			machines = append(machines, m.ID)
		}
		sort.Strings(machines)
		var vs []types.Volume
		if err := d.Get("/v1/apps/svol/volumes", &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.Name != "data" || v.SizeMB != 64 {
				t.Fatalf("%s: volume %s is %q of %d MB, want data of 64 MB like the group's", what, v.ID, v.Name, v.SizeMB)
			}
			if v.ID != first.ID && v.SnapshotRetention != 14 {
				t.Errorf("%s: volume %s keeps snapshots %d days, want the mount's 14", what, v.ID, v.SnapshotRetention)
			}
			if v.AttachedMachineID == nil || *v.AttachedMachineID == "" {
				free = append(free, v)
				continue
			}
			if prev, ok := held[*v.AttachedMachineID]; ok {
				t.Fatalf("%s: machine %s holds volumes %s and %s", what, *v.AttachedMachineID, prev.ID, v.ID)
			}
			held[*v.AttachedMachineID] = v
		}
		for _, id := range machines {
			if _, ok := held[id]; !ok {
				t.Fatalf("%s: machine %s holds no volume; volumes %+v", what, id, vs)
			}
		}
		if len(held) != len(machines) {
			t.Fatalf("%s: %d volumes attached for %d machines: %+v", what, len(held), len(machines), vs)
		}
		return machines, held, free
	}

	l := d.StartLoad("svol", 8)
	out, err := d.Hangar("scale", "count", "3", "-a", "svol")
	finishLoad(t, l, "scale up")
	if err != nil {
		t.Fatalf("scale count 3: %v\n%s", err, out)
	}
	three, held, free := state("after scale count 3")
	if len(three) != 3 || len(free) != 0 {
		t.Fatalf("after scale count 3: %d machines, %d free volumes; want 3 and 0\n%s", len(three), len(free), out)
	}
	if v := held[m1.ID]; v.ID != first.ID {
		t.Fatalf("the first machine %s moved from its volume %s to %s", m1.ID, first.ID, v.ID)
	}
	if got := readFile(t, d, "svol", m1.ID, "/data/who"); got != m1.ID {
		t.Fatalf("the first machine's data after the scale: %q", got)
	}
	for _, id := range three {
		if id != m1.ID {
			if code, body := proxyDo(t, d, "svol", "GET", "/file?path=/data/who", "", id); code == 200 {
				t.Fatalf("new machine %s sees the first machine's file: %q", id, body)
			}
		}
	}

	out = hangarOK(t, d, "scale", "count", "3", "-a", "svol")
	again, heldAgain, free := state("after a second scale count 3")
	if fmt.Sprint(again) != fmt.Sprint(three) || len(free) != 0 {
		t.Fatalf("a second scale count 3 changed the machines: %v, then %v (free volumes %d)\n%s", three, again, len(free), out)
	}
	for id, v := range held {
		if heldAgain[id].ID != v.ID {
			t.Fatalf("a second scale count 3 moved machine %s from volume %s to %s", id, v.ID, heldAgain[id].ID)
		}
	}

	// Down to one: the removed machines' volumes stay, detached (as on
	// Fly; destroy them with `hangar volumes destroy`).
	hangarOK(t, d, "scale", "count", "1", "-a", "svol")
	one, _, free := state("after scale count 1")
	if len(one) != 1 || len(free) != 2 {
		t.Fatalf("after scale count 1: %d machines, %d free volumes; want 1 and 2", len(one), len(free))
	}
	// Up again: the kept volumes are used, none is created.
	hangarOK(t, d, "scale", "count", "2", "-a", "svol")
	two, _, free := state("after scale count 2")
	if len(two) != 2 || len(free) != 1 {
		t.Fatalf("after scale count 2: %d machines, %d free volumes; want 2 and 1 (no new volume)", len(two), len(free))
	}
	rels := hangarOK(t, d, "releases", "-a", "svol")
	if strings.Contains(rels, "failed") {
		t.Errorf("a scale failed:\n%s", rels)
	}
}
