package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestStoppedMachineKeepsItsStart: a stop prepares the machine's next
// start (its container created, not started: the app does not run and
// takes no CPU); start runs that very process, with the config it was
// stopped with; stop → update → start runs the new config; stop → daemon
// kill -9 and restart → start still uses what was kept; stop → destroy
// leaves no network namespace, mount, container or process.
func TestStoppedMachineKeepsItsStart(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "park"}); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	cfg := func(version string) *types.MachineConfig {
		return &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080", "APP_VERSION": version},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}}}
	}
	code, body := d.Call("POST", "/v1/apps/park/machines", types.CreateMachineRequest{Config: cfg("1")})
	if code != 200 {
		t.Fatalf("create machine: %d %s", code, body)
	}
	var m types.Machine
	_ = json.Unmarshal([]byte(body), &m)
	base := "/v1/apps/park/machines/" + m.ID
	taskDir := filepath.Join(d.DataDir, "tasks", m.ID)
	serves := func(version string) {
		t.Helper()
		harness.Poll(t, "machine serves version "+version, 20*time.Second, func() (bool, string) {
			code, body, err := d.ViaProxy("park", "/")
			return err == nil && code == 200 && strings.Contains(body, "version="+version) && strings.Contains(body, "hits=1 "), fmt.Sprint(code, body, err)
		})
	}
	call := func(method, path string, body any) {
		t.Helper()
		if code, out := d.Call(method, path, body); code != 200 {
			t.Fatalf("%s %s: %d %s", method, path, code, out)
		}
	}
	// stop stops the machine and returns the pid of its parked task.
	stop := func(prev string) int {
		t.Helper()
		call("POST", base+"/stop", nil)
		var pid int
		harness.Poll(t, "the stopped machine's start prepared", 20*time.Second, func() (bool, string) {
			digest, err := os.ReadFile(filepath.Join(taskDir, "parked"))
			if err != nil || string(digest) == prev {
				return false, fmt.Sprint(err)
			}
			b, err := os.ReadFile(filepath.Join(taskDir, "task.pid"))
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil && pid > 0, fmt.Sprint(err)
		})
		return pid
	}
	digest := func() string { b, _ := os.ReadFile(filepath.Join(taskDir, "parked")); return string(b) }
	startedFrom := func(parked int) {
		t.Helper()
		call("POST", base+"/start", nil)
		b, _ := os.ReadFile(filepath.Join(taskDir, "task.pid"))
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid != parked {
			t.Fatalf("started task pid %d, want the parked %d", pid, parked)
		}
		if _, err := os.Stat(filepath.Join(taskDir, "parked")); err == nil {
			t.Fatal("still marked parked after the start")
		}
	}
	serves("1")

	// Stopped: the parked process is the runtime's init, not the app, and
	// it takes no CPU.
	parked := stop("")
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", parked)); strings.Contains(string(b), "/app") {
		t.Fatalf("the stopped machine's app runs: %q", b)
	}
	before := procCPU(t, parked)
	time.Sleep(300 * time.Millisecond)
	if after := procCPU(t, parked); after != before {
		t.Errorf("the stopped machine used CPU: %s → %s", before, after)
	}
	var got types.Machine
	if err := d.Get(base, &got); err != nil || got.State != types.StateStopped {
		t.Fatalf("machine: %s %v, want stopped", got.State, err)
	}
	startedFrom(parked)
	serves("1")

	// stop → update → start: the new config.
	stop("")
	old := digest()
	call("POST", base, types.CreateMachineRequest{Config: cfg("2")})
	if err := d.Get(base, &got); err != nil || got.State != types.StateStopped {
		t.Fatalf("after the update: %s %v, want stopped", got.State, err)
	}
	parked = stop(old) // already stopped: waits for the new version's park
	startedFrom(parked)
	serves("2")

	// stop → daemon kill -9 and restart → start.
	parked = stop("")
	d.Stop(syscall.SIGKILL)
	d.Start()
	startedFrom(parked)
	serves("2")

	// stop → destroy: nothing left.
	parked = stop("")
	shim, _ := os.ReadFile(filepath.Join(taskDir, "shim.pid"))
	call("DELETE", base, nil)
	if _, err := os.Stat(taskDir); !os.IsNotExist(err) {
		t.Errorf("task dir left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.DataDir, "tasks", ".oci-state", m.ID)); !os.IsNotExist(err) {
		t.Errorf("container record left: %v", err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), "hangar-"+m.ID) {
		t.Errorf("network namespace left: %s", out)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), taskDir) {
		t.Errorf("a mount under %s is left", taskDir)
	}
	shimPid, _ := strconv.Atoi(strings.TrimSpace(string(shim)))
	for _, pid := range []int{parked, shimPid} {
		if err := syscall.Kill(pid, 0); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z ") {
				t.Errorf("process %d left after destroy: %s", pid, st)
			}
		}
	}
}

// procCPU is a process's user+system clock ticks.
func procCPU(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[11] + "+" + f[12]
}
