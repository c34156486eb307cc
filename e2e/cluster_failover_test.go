package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// failoverGrace is --host-failure-grace in the failover tests.
const failoverGrace = 4 * time.Second

// startFailoverCluster starts hosts a, b (fra) and c (iad) in their own
// network namespaces on one etcd, with a short host failure grace, and
// the test app's image on each. It returns the cluster and the image.
func startFailoverCluster(t *testing.T, prefix string) (*harness.Cluster, string) {
	t.Helper()
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Etcd: true,
		Hosts: []harness.HostSpec{
			{Name: "a", Region: "fra"},
			{Name: "b", Region: "fra"},
			{Name: "c", Region: "iad"},
		},
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			return []string{"--etcd-prefix", prefix, "--host-id", h.Name, "--advertise-addr", h.Addr,
				"--host-failure-grace", failoverGrace.String()}
		},
	})
	var ref string
	for _, h := range c.Hosts() {
		ref = h.ImportTestApp() // images are each host's own
	}
	return c, ref
}

// failoverMachine is a machine of the app's group "app" that serves the
// test app on 8080 with a health check.
func failoverMachine(ref string) *types.MachineConfig {
	return &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Guest:    &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 128},
		Metadata: map[string]string{types.MetaProcessGroup: "app"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080,
			Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(500 * time.Millisecond)}}}}}
}

func createIn(t *testing.T, h *harness.Host, app, region string, cfg *types.MachineConfig) types.Machine {
	t.Helper()
	code, body := h.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Region: region, Config: cfg})
	var m types.Machine
	if code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil {
		t.Fatalf("create a machine of %s in %s through %s: %d %s", app, region, h.Name, code, body)
	}
	return m
}

// pollMachines polls h's list of app's machines until ok says so, or
// fails the test after timeout with what it saw last.
func pollMachines(t *testing.T, h *harness.Host, app string, timeout time.Duration, what string, ok func(ms []types.Machine) bool) []types.Machine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ms []types.Machine
		err := h.Get("/v1/apps/"+app+"/machines", &ms)
		if err == nil && ok(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(ms, "", "  ")
			t.Fatalf("%s: not within %v (err %v); machines:\n%s", what, timeout, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func byID(ms []types.Machine) map[string]types.Machine {
	out := map[string]types.Machine{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

// healthyOn reports whether machine id reads started with every check
// passing through h's API (its own host's, forwarded: a list shows the
// live checks of the answering host's machines only).
func healthyOn(h *harness.Host, app, id string) bool {
	var m types.Machine
	if err := h.Get("/v1/apps/"+app+"/machines/"+id, &m); err != nil || m.State != types.StateStarted {
		return false
	}
	return checksPass(m)
}

func checksPass(m types.Machine) bool {
	if len(m.Checks) == 0 {
		return false
	}
	for _, c := range m.Checks {
		if c.Status != types.CheckPassing {
			return false
		}
	}
	return true
}

// TestClusterFailoverReplacesAndFences: host c (iad) runs two machines of
// an app without volumes and one with a volume; a (fra) runs one more.
// c crashes (KillHost): within 15 s its machines read unknown; within the
// grace + 15 s the two without volumes have healthy replacements in the
// nearest region (fra, on a and b), which say what they replace in their
// events and in `hangar status`; the volume's machine is not replaced and
// status says why. When c comes back, its replaced machines are destroyed
// before they run again (no start after the replacement in their
// events, no task left), the volume's machine runs again, and the app
// has its count: 4 machines, none twice.
func TestClusterFailoverReplacesAndFences(t *testing.T) {
	c, ref := startFailoverCluster(t, "/hangar/fo-kill/")
	a, b, hc := c.Host("a"), c.Host("b"), c.Host("c")
	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "fo", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	cfg := failoverMachine(ref)
	onA := createIn(t, a, "fo", "fra", cfg)
	lost1, lost2 := createIn(t, a, "fo", "iad", cfg), createIn(t, b, "fo", "iad", cfg)
	code, body := a.Call("POST", "/v1/apps/fo/volumes", types.CreateVolumeRequest{Name: "data", Region: "iad", SizeMB: 16})
	var vol types.Volume
	if code != http.StatusOK || json.Unmarshal([]byte(body), &vol) != nil || vol.HostID != "c" {
		t.Fatalf("volume in iad: %d %s; want it on c", code, body)
	}
	volCfg := failoverMachine(ref)
	volCfg.Metadata = map[string]string{types.MetaProcessGroup: "db"}
	volCfg.Mounts = []types.MachineMount{{Volume: vol.ID, Path: "/data"}}
	pinned := createIn(t, a, "fo", "iad", volCfg)
	for _, m := range []types.Machine{lost1, lost2, pinned} {
		if m.HostID != "c" {
			t.Fatalf("machine %s for iad is on host %s, want c", m.ID, m.HostID)
		}
	}
	pollMachines(t, a, "fo", 30*time.Second, "every machine healthy", func(ms []types.Machine) bool {
		for _, m := range ms {
			if !healthyOn(a, "fo", m.ID) {
				return false
			}
		}
		return len(ms) == 4
	})

	killed := time.Now()
	c.KillHost("c")
	pollMachines(t, a, "fo", 15*time.Second, "c's machines read unknown", func(ms []types.Machine) bool {
		got := byID(ms)
		for _, id := range []string{lost1.ID, lost2.ID, pinned.ID} {
			if got[id].State != types.StateUnknown && got[id].State != types.StateDestroying {
				return false
			}
		}
		return true
	})
	t.Logf("c's machines unknown %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	ms := pollMachines(t, b, "fo", failoverGrace+15*time.Second, "replacements healthy on a and b", func(ms []types.Machine) bool {
		n := 0
		for _, m := range ms {
			if strings.HasPrefix(m.HostNote, "replaced machine ") && healthyOn(b, "fo", m.ID) {
				n++
			}
		}
		return n == 2
	})
	t.Logf("replacements healthy %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	got := byID(ms)
	replacedOnHost := map[string]int{}
	for _, lost := range []types.Machine{lost1, lost2} {
		old := got[lost.ID]
		nm, ok := got[old.ReplacedBy]
		if old.State != types.StateDestroying || !ok {
			t.Fatalf("lost machine %s: state %s, replaced by %q (%v); want destroying with a replacement", lost.ID, old.State, old.ReplacedBy, ok)
		}
		want := fmt.Sprintf("replaced machine %s lost with host c", lost.ID)
		if !strings.HasPrefix(nm.HostNote, want) || nm.Region != "fra" || nm.Config.Metadata[types.MetaProcessGroup] != "app" {
			t.Errorf("replacement %s: note %q region %s; want %q…, in fra, group app", nm.ID, nm.HostNote, nm.Region, want)
		}
		var full types.Machine
		if err := a.Get("/v1/apps/fo/machines/"+nm.ID, &full); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range full.Events {
			if ev.Type == "replace" && strings.HasPrefix(fmt.Sprint(ev.Request["reason"]), want) {
				found = true
			}
		}
		if !found {
			t.Errorf("replacement %s's events have no replace event with the reason: %+v", nm.ID, full.Events)
		}
		replacedOnHost[nm.HostID]++
	}
	if replacedOnHost["a"]+replacedOnHost["b"] != 2 {
		t.Errorf("replacements on hosts %v, want a and b", replacedOnHost)
	}
	if p := got[pinned.ID]; p.State != types.StateUnknown || p.ReplacedBy != "" || !strings.Contains(p.HostNote, "mounts a volume") {
		t.Errorf("the volume's machine: %s, replaced by %q, note %q; want unknown, waiting for c", p.State, p.ReplacedBy, p.HostNote)
	}
	out, err := a.CLI("status", "-a", "fo")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("hangar status -a fo with c lost:\n%s", out)
	for _, want := range []string{"replaced machine " + lost1.ID + " lost with host c", "replaced machine " + lost2.ID + " lost with host c",
		pinned.ID + ": host c is unreachable; this machine mounts a volume", "unknown (host c unreachable)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q", want)
		}
	}

	// c comes back: its replaced machines are destroyed before they run.
	c.StartHost("c")
	ms = pollMachines(t, a, "fo", 30*time.Second, "the app at its count after c's return", func(ms []types.Machine) bool {
		got := byID(ms)
		if _, ok := got[lost1.ID]; ok {
			return false
		}
		if _, ok := got[lost2.ID]; ok {
			return false
		}
		return len(ms) == 4 && got[pinned.ID].State == types.StateStarted
	})
	perGroup := map[string]int{}
	for _, m := range ms {
		perGroup[m.Config.Metadata[types.MetaProcessGroup]]++
		if m.HostID == "c" && m.ID != pinned.ID {
			t.Errorf("machine %s on c after its return", m.ID)
		}
	}
	if perGroup["app"] != 3 || perGroup["db"] != 1 || byID(ms)[onA.ID].HostID != "a" {
		t.Errorf("machines per group %v; want app 3, db 1", perGroup)
	}
	var destroyed []types.Machine
	if err := a.Get("/v1/apps/fo/machines?include_deleted=true", &destroyed); err != nil {
		t.Fatal(err)
	}
	for _, lost := range []types.Machine{lost1, lost2} {
		if _, err := os.Stat(filepath.Join(hc.DataDir, "tasks", lost.ID)); !os.IsNotExist(err) {
			t.Errorf("c keeps the task of its replaced machine %s (%v)", lost.ID, err)
		}
		d, ok := byID(destroyed)[lost.ID]
		if !ok || d.State != types.StateDestroyed {
			t.Errorf("replaced machine %s after c's return: %+v; want destroyed", lost.ID, d)
			continue
		}
		// Newest first: nothing started it after the replacement.
		for _, ev := range d.Events {
			if ev.Type == "replaced" {
				break
			}
			if ev.Type == "start" || ev.Status == types.StateStarted {
				t.Errorf("replaced machine %s was started on c's return: events %+v", lost.ID, d.Events)
			}
		}
	}
}

// TestClusterFailoverLinkDown: host c is cut off the fabric (LinkDown):
// its daemon and its machine keep running, but nobody reaches it. Its
// machine reads unknown, then is replaced on a or b. When c's link comes
// back, c (its daemon, or a new one if the old one stopped on losing its
// etcd lock) kills and destroys its copy before serving it: the copy's
// events show no start after the replacement, its task is gone, and the
// app runs two machines, as asked.
func TestClusterFailoverLinkDown(t *testing.T) {
	c, ref := startFailoverCluster(t, "/hangar/fo-link/")
	a, hc := c.Host("a"), c.Host("c")
	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "fl", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	cfg := failoverMachine(ref)
	createIn(t, a, "fl", "fra", cfg)
	lost := createIn(t, a, "fl", "iad", cfg)
	if lost.HostID != "c" {
		t.Fatalf("machine for iad on %s, want c", lost.HostID)
	}
	pollMachines(t, a, "fl", 30*time.Second, "both machines healthy", func(ms []types.Machine) bool {
		return len(ms) == 2 && healthyOn(a, "fl", ms[0].ID) && healthyOn(a, "fl", ms[1].ID)
	})

	c.LinkDown("c")
	pollMachines(t, a, "fl", 15*time.Second, "c's machine reads unknown", func(ms []types.Machine) bool {
		m := byID(ms)[lost.ID]
		return m.State == types.StateUnknown || m.State == types.StateDestroying
	})
	ms := pollMachines(t, a, "fl", failoverGrace+15*time.Second, "c's machine replaced", func(ms []types.Machine) bool {
		old := byID(ms)[lost.ID]
		return old.ReplacedBy != "" && healthyOn(a, "fl", old.ReplacedBy)
	})
	replacement := byID(ms)[lost.ID].ReplacedBy
	// c's copy is still running behind the cut link.
	if _, err := os.Stat(filepath.Join(hc.DataDir, "tasks", lost.ID)); err != nil {
		t.Fatalf("c's copy is gone while c is cut off: %v", err)
	}

	c.LinkUp("c")
	if err := hc.Answers(20 * time.Second); err != nil {
		// Its daemon stops on losing its etcd lock (machines keep
		// running): start it as an operator's supervisor would. Its
		// Recover fences the copy before its proxy serves.
		t.Logf("c's daemon does not answer 200 within 20 s of its link coming back (%v); restarting it", err)
		c.RestartHost("c")
	} else {
		t.Log("c's daemon ran on across the cut: its sweep fences the copy")
	}
	pollMachines(t, a, "fl", 30*time.Second, "c's copy destroyed and the app at its count", func(ms []types.Machine) bool {
		got := byID(ms)
		_, stale := got[lost.ID]
		return !stale && len(ms) == 2 && got[replacement].State == types.StateStarted
	})
	if _, err := os.Stat(filepath.Join(hc.DataDir, "tasks", lost.ID)); !os.IsNotExist(err) {
		t.Errorf("c keeps the task of its replaced machine (%v)", err)
	}
	var destroyed []types.Machine
	if err := a.Get("/v1/apps/fl/machines?include_deleted=true", &destroyed); err != nil {
		t.Fatal(err)
	}
	d := byID(destroyed)[lost.ID]
	if d.State != types.StateDestroyed {
		t.Fatalf("c's copy: %s, want destroyed", d.State)
	}
	for _, ev := range d.Events {
		if ev.Type == "replaced" {
			break
		}
		if ev.Type == "start" || ev.Status == types.StateStarted {
			t.Errorf("c's copy was started again after its replacement: %+v", d.Events)
		}
	}
	// c's proxy never answers from the copy.
	for range 20 {
		if _, body, err := hc.ViaProxy("fl", "/"); err == nil && strings.Contains(body, "machine="+lost.ID) {
			t.Fatalf("c's proxy answered from its replaced copy: %s", body)
		}
	}
}
