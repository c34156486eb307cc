package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

const volumesConfig = `app = "vol"
primary_region = "tst"

[env]
  PORT = "8080"
  APP_VERSION = "%s"

[[mounts]]
  source = "data"
  destination = "/data"

[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

// cleanupVolumes removes, when the test ends (also on failure, before the
// harness removes apps), every machine and volume of app, then unmounts
// and detaches what the daemon left of them under its data dir (of every
// volume when the daemon no longer answers, so another app's volumes in
// the same test are checked by their own cleanup).
func cleanupVolumes(t *testing.T, d *harness.Daemon, app string) {
	t.Cleanup(func() {
		var ids []string // this app's volumes; nil: every volume
		if d.API != "" {
			var ms []types.Machine
			if d.Get("/v1/apps/"+app+"/machines", &ms) == nil {
				for _, m := range ms {
					d.Call("DELETE", "/v1/apps/"+app+"/machines/"+m.ID+"?force=true", nil)
				}
			}
			var vs []types.Volume
			if d.Get("/v1/apps/"+app+"/volumes", &vs) == nil {
				ids = []string{}
				for _, v := range vs {
					ids = append(ids, v.ID)
					if code, body := d.Call("DELETE", "/v1/apps/"+app+"/volumes/"+v.ID, nil); code != 200 {
						t.Errorf("cleanup: destroy volume %s: %d %s", v.ID, code, body)
					}
				}
			}
		}
		mine := func(path string) bool {
			if !strings.HasPrefix(path, filepath.Join(d.DataDir, "volumes")) {
				return false
			}
			if ids == nil {
				return true
			}
			for _, id := range ids {
				if strings.Contains(path, id) {
					return true
				}
			}
			return false
		}
		// Whatever is left (a daemon that died mid-test): unmount, detach.
		b, _ := os.ReadFile("/proc/self/mountinfo")
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && mine(f[4]) {
				t.Errorf("cleanup: volume mount %s left behind", f[4])
				_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
		out, _ := exec.Command("losetup", "-n", "-O", "NAME,BACK-FILE", "-l").Output()
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && mine(f[1]) {
				t.Errorf("cleanup: loop device %s for %s left behind", f[0], f[1])
				_ = exec.Command("losetup", "-d", f[0]).Run()
			}
		}
	})
}

func getVolume(t *testing.T, d *harness.Daemon, app, id string) types.Volume {
	t.Helper()
	var v types.Volume
	if err := d.Get("/v1/apps/"+app+"/volumes/"+id, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func startedMachine(t *testing.T, d *harness.Daemon, app string) types.Machine {
	t.Helper()
	var m types.Machine
	harness.Poll(t, "one started machine", 20*time.Second, func() (bool, string) {
		var started []types.Machine
		for _, x := range d.Machines(app) {
			if x.State == types.StateStarted {
				started = append(started, x)
			}
		}
		if len(started) == 1 {
			m = started[0]
		}
		return len(started) == 1, fmt.Sprint(d.Machines(app))
	})
	return m
}

// writeFile writes through the proxy, waiting until the machine takes
// traffic (an immediate deploy returns before its checks pass).
func writeFile(t *testing.T, d *harness.Daemon, app, machine, path, content string) {
	t.Helper()
	harness.Poll(t, "write "+path, 20*time.Second, func() (bool, string) {
		code, body := proxyDo(t, d, app, "POST", "/file?path="+path, content, machine)
		return code == 200, fmt.Sprint(code, body)
	})
}

func readFile(t *testing.T, d *harness.Daemon, app, machine, path string) string {
	t.Helper()
	var body string
	harness.Poll(t, "read "+path, 20*time.Second, func() (bool, string) {
		var code int
		code, body = proxyDo(t, d, app, "GET", "/file?path="+path, "", machine)
		return code == 200, fmt.Sprint(code, body)
	})
	return body
}

// TestVolumes runs a machine with a real ext4 volume on a loop device:
// data survives a redeploy (a new machine), a daemon kill -9 and a machine
// restart; a full volume is ENOSPC inside the machine while the host's
// disk is untouched; a snapshot restores into a new volume with the old
// content; extend grows the filesystem; a volume attaches to one machine.
func TestVolumes(t *testing.T) {
	harness.RequireRoot(t)
	for _, b := range []string{"mkfs.ext4", "resize2fs", "e2fsck", "losetup"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed: apt-get install -y e2fsprogs util-linux", b)
		}
	}
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	cleanupVolumes(t, d, "vol")
	ref := d.ImportTestApp()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fly.toml")
	deployVersion := func(v string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(volumesConfig, v)), 0o644); err != nil {
			t.Fatal(err)
		}
		// The default rolling strategy: with a volume, the old machine
		// stops (and gives up the volume) before the new one starts.
		hangarOK(t, d, "deploy", "-c", cfg, "--image", ref)
	}

	hangarOK(t, d, "apps", "create", "vol")
	var vol types.Volume
	if err := json.Unmarshal([]byte(hangarOK(t, d, "volumes", "create", "data", "--size-mb", "64", "-a", "vol", "--json")), &vol); err != nil {
		t.Fatal(err)
	}
	deployVersion("1")
	m1 := startedMachine(t, d, "vol")
	if v := getVolume(t, d, "vol", vol.ID); v.AttachedMachineID == nil || *v.AttachedMachineID != m1.ID {
		t.Fatalf("volume not attached to %s: %+v", m1.ID, v)
	}
	writeFile(t, d, "vol", m1.ID, "/data/hello", "persist-me")

	t.Run("redeploy keeps the data", func(t *testing.T) {
		deployVersion("2")
		m2 := startedMachine(t, d, "vol")
		if m2.ID == m1.ID || m2.Config.Env["APP_VERSION"] != "2" {
			t.Fatalf("no new machine: %+v", m2)
		}
		if got := readFile(t, d, "vol", m2.ID, "/data/hello"); got != "persist-me" {
			t.Fatalf("after redeploy: %q", got)
		}
		if v := getVolume(t, d, "vol", vol.ID); v.AttachedMachineID == nil || *v.AttachedMachineID != m2.ID {
			t.Fatalf("volume not moved to %s: %+v", m2.ID, v)
		}
	})

	t.Run("daemon kill -9 and machine restart keep the data", func(t *testing.T) {
		m := startedMachine(t, d, "vol")
		d.Stop(syscall.SIGKILL)
		d.Start()
		if got := readFile(t, d, "vol", m.ID, "/data/hello"); got != "persist-me" {
			t.Fatalf("after kill -9: %q", got)
		}
		if code, body := d.Call("POST", "/v1/apps/vol/machines/"+m.ID+"/stop", nil); code != 200 {
			t.Fatalf("stop: %d %s", code, body)
		}
		if code, body := d.Call("POST", "/v1/apps/vol/machines/"+m.ID+"/start", nil); code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
		if got := readFile(t, d, "vol", m.ID, "/data/hello"); got != "persist-me" {
			t.Fatalf("after machine restart: %q", got)
		}
	})

	t.Run("PUT updates a volume, as fly-go sends it", func(t *testing.T) {
		// flaps.UpdateVolume: PUT with {"snapshot_retention", "auto_backup_enabled"}.
		code, body := d.Call("PUT", "/v1/apps/vol/volumes/"+vol.ID, map[string]any{"snapshot_retention": 7, "auto_backup_enabled": nil})
		var v types.Volume
		if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.SnapshotRetention != 7 {
			t.Fatalf("PUT volume: %d %s", code, body)
		}
		if got := getVolume(t, d, "vol", vol.ID); got.SnapshotRetention != 7 {
			t.Fatalf("after PUT: %+v", got)
		}
	})

	t.Run("a volume attaches to one machine", func(t *testing.T) {
		m := startedMachine(t, d, "vol")
		c := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}, Mounts: []types.MachineMount{{Volume: vol.ID, Path: "/data"}}}
		code, body := d.Call("POST", "/v1/apps/vol/machines", types.CreateMachineRequest{Config: &c})
		if code != http.StatusConflict || !strings.Contains(body, "attached to machine "+m.ID) {
			t.Fatalf("second attach: %d %s", code, body)
		}
		code, body = d.Call("DELETE", "/v1/apps/vol/volumes/"+vol.ID, nil)
		if code != http.StatusConflict {
			t.Fatalf("destroy of an attached volume: %d %s", code, body)
		}
		// The failed machine is removed again.
		for _, x := range d.Machines("vol") {
			if x.ID != m.ID {
				d.Call("DELETE", "/v1/apps/vol/machines/"+x.ID+"?force=true", nil)
			}
		}
	})

	t.Run("full volume is ENOSPC, the host is untouched", func(t *testing.T) {
		m := startedMachine(t, d, "vol")
		var before syscall.Statfs_t
		_ = syscall.Statfs(d.DataDir, &before)
		readFile(t, d, "vol", m.ID, "/data/hello") // serving
		code, body := proxyDo(t, d, "vol", "POST", "/fill?path=/data/big", "", m.ID)
		if code != 200 || !strings.Contains(body, "ENOSPC") {
			t.Fatalf("fill: %d %s", code, body)
		}
		var n int64
		fmt.Sscanf(body, "wrote %d bytes", &n)
		if n < 40<<20 || n > 64<<20 {
			t.Fatalf("wrote %d bytes into a 64 MB volume", n)
		}
		var after syscall.Statfs_t
		_ = syscall.Statfs(d.DataDir, &after)
		usedMB := (int64(before.Bavail) - int64(after.Bavail)) * before.Bsize >> 20
		t.Logf("filled the volume with %d MB; host free space dropped by %d MB", n>>20, usedMB)
		if usedMB > 80 {
			t.Fatalf("host free space dropped by %d MB filling a 64 MB volume", usedMB)
		}
		// The machine still serves; emptying the file frees the space.
		writeFile(t, d, "vol", m.ID, "/data/big", "")
		if got := readFile(t, d, "vol", m.ID, "/data/hello"); got != "persist-me" {
			t.Fatalf("after filling: %q", got)
		}
	})

	t.Run("snapshot, write more, restore into a new volume", func(t *testing.T) {
		m := startedMachine(t, d, "vol")
		writeFile(t, d, "vol", m.ID, "/data/snap.txt", "before")
		var snap types.VolumeSnapshot
		if err := json.Unmarshal([]byte(hangarOK(t, d, "volumes", "snapshots", "create", vol.ID, "-a", "vol", "--json")), &snap); err != nil {
			t.Fatal(err)
		}
		t.Logf("snapshot %s: frozen %d ms, %d bytes stored for a %d byte image", snap.ID, snap.FrozenMS, snap.StoredSize, snap.Size)
		if snap.StoredSize <= 0 || snap.StoredSize >= snap.Size {
			t.Fatalf("snapshot not compressed: %+v", snap)
		}
		if snap.VolumeSize != 64<<20 { // fly-go reads volume_size, in bytes
			t.Fatalf("snapshot volume_size %d, want %d: %+v", snap.VolumeSize, 64<<20, snap)
		}
		writeFile(t, d, "vol", m.ID, "/data/snap.txt", "after")
		if out := hangarOK(t, d, "volumes", "snapshots", "list", vol.ID, "-a", "vol"); !strings.Contains(out, snap.ID) {
			t.Fatalf("snapshots list: %s", out)
		}
		var restored types.Volume
		if err := json.Unmarshal([]byte(hangarOK(t, d, "volumes", "create", "restored", "--snapshot-id", snap.ID, "-a", "vol", "--json")), &restored); err != nil {
			t.Fatal(err)
		}
		if restored.SizeMB != 64 || restored.ID == vol.ID {
			t.Fatalf("restored volume: %+v", restored)
		}
		c := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
			Mounts:   []types.MachineMount{{Volume: restored.ID, Path: "/data"}},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}}}
		code, body := d.Call("POST", "/v1/apps/vol/machines", types.CreateMachineRequest{Config: &c})
		if code != 200 {
			t.Fatalf("machine on the restored volume: %d %s", code, body)
		}
		var rm types.Machine
		_ = json.Unmarshal([]byte(body), &rm)
		if got := readFile(t, d, "vol", rm.ID, "/data/snap.txt"); got != "before" {
			t.Fatalf("restored volume has %q, want the content at snapshot time", got)
		}
		if got := readFile(t, d, "vol", rm.ID, "/data/hello"); got != "persist-me" {
			t.Fatalf("restored volume: hello = %q", got)
		}
		if got := readFile(t, d, "vol", m.ID, "/data/snap.txt"); got != "after" {
			t.Fatalf("original volume: %q", got)
		}
		if code, body := d.Call("DELETE", "/v1/apps/vol/machines/"+rm.ID+"?force=true", nil); code != 200 {
			t.Fatalf("destroy: %d %s", code, body)
		}
	})

	t.Run("extend", func(t *testing.T) {
		m := startedMachine(t, d, "vol")
		var res types.ExtendVolumeResponse
		if err := json.Unmarshal([]byte(hangarOK(t, d, "volumes", "extend", vol.ID, "--size-mb", "128", "-a", "vol", "--json")), &res); err != nil {
			t.Fatal(err)
		}
		if res.Volume.SizeMB != 128 {
			t.Fatalf("extend: %+v", res.Volume)
		}
		if res.NeedsRestart {
			// No CAP_SYS_RESOURCE for an online resize here: the
			// filesystem grows when the machine starts again.
			t.Log("online resize unavailable; restarting the machine")
			d.Call("POST", "/v1/apps/vol/machines/"+m.ID+"/stop", nil)
			if code, body := d.Call("POST", "/v1/apps/vol/machines/"+m.ID+"/start", nil); code != 200 {
				t.Fatalf("start: %d %s", code, body)
			}
		}
		var size int64
		harness.Poll(t, "the machine sees the bigger filesystem", 20*time.Second, func() (bool, string) {
			_, body := proxyDo(t, d, "vol", "GET", "/statfs?path=/data", "", m.ID)
			fmt.Sscanf(body, "size=%d", &size)
			return size > 100<<20, body
		})
		if got := readFile(t, d, "vol", m.ID, "/data/hello"); got != "persist-me" {
			t.Fatalf("after extend: %q", got)
		}
		if _, err := d.Hangar("volumes", "extend", vol.ID, "--size-mb", "100", "-a", "vol"); err == nil {
			t.Fatal("a volume shrank")
		}
	})

	t.Run("deleting the app removes its volumes", func(t *testing.T) {
		hangarOK(t, d, "apps", "create", "gone")
		var v types.Volume
		if err := json.Unmarshal([]byte(hangarOK(t, d, "volumes", "create", "x", "--size-mb", "16", "-a", "gone", "--json")), &v); err != nil {
			t.Fatal(err)
		}
		if code, body := d.Call("DELETE", "/v1/apps/gone", nil); code != http.StatusAccepted {
			t.Fatalf("delete app: %d %s", code, body)
		}
		harness.Poll(t, "the volume's image is gone", 10*time.Second, func() (bool, string) {
			_, err := os.Stat(filepath.Join(d.DataDir, "volumes", v.ID))
			return os.IsNotExist(err), fmt.Sprint(err)
		})
	})
}
