package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestMachineCLIVerbs drives flyctl's machine verbs through the real CLI:
// restart, cordon, uncordon, update, clone, leases view and clear,
// suspend, kill.
func TestMachineCLIVerbs(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	hangar := func(args ...string) string {
		t.Helper()
		out, err := d.Hangar(append(args, "-a", "verbs")...)
		if err != nil {
			t.Fatalf("hangar %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	machine := func(id string) types.Machine {
		t.Helper()
		var m types.Machine
		if err := d.Get("/v1/apps/verbs/machines/"+id, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	waitState := func(id, state string) {
		t.Helper()
		harness.Poll(t, "machine "+id+" "+state, 20*time.Second, func() (bool, string) {
			m := machine(id)
			return m.State == state, m.State
		})
	}
	hangar("machine", "run", ref, "--env", "PORT=8080", "--name", "one")
	ms := d.Machines("verbs")
	if len(ms) != 1 {
		t.Fatalf("machines after run: %d", len(ms))
	}
	id := ms[0].ID
	waitState(id, types.StateStarted)

	first := machine(id).Events[0].ID
	hangar("machine", "restart", id, "--time", "5")
	waitState(id, types.StateStarted)
	if m := machine(id); m.Events[0].ID == first {
		t.Errorf("restart recorded no event: %+v", m.Events)
	}

	hangar("machine", "cordon", id)
	if !machine(id).Cordoned {
		t.Error("cordon: machine not cordoned")
	}
	hangar("machine", "uncordon", id)
	if machine(id).Cordoned {
		t.Error("uncordon: machine still cordoned")
	}

	var up types.Machine
	if err := json.Unmarshal([]byte(hangar("machine", "update", id, "--env", "FOO=bar", "--vm-size", "shared-cpu-2x", "--json")), &up); err != nil {
		t.Fatal(err)
	}
	waitState(id, types.StateStarted)
	if m := machine(id); m.Config.Env["FOO"] != "bar" || m.Config.Env["PORT"] != "8080" || m.Config.Guest == nil || m.Config.Guest.CPUs != 2 {
		t.Errorf("after update: env %v guest %+v", m.Config.Env, m.Config.Guest)
	}

	var cl types.Machine
	if err := json.Unmarshal([]byte(hangar("machine", "clone", id, "--json")), &cl); err != nil {
		t.Fatal(err)
	}
	if cl.ID == id || cl.Config == nil || cl.Config.Env["FOO"] != "bar" {
		t.Errorf("clone: %+v", cl)
	}
	if out, err := d.Hangar("machine", "clone", id, "--region", "fra", "-a", "verbs"); err == nil || !strings.Contains(out, "no host in region fra") {
		t.Errorf("clone --region fra: %v, want an error saying no host is in region fra\n%s", err, out)
	}

	if code, body := d.Call("POST", "/v1/apps/verbs/machines/"+id+"/lease", map[string]any{"ttl": 300, "description": "held by a test"}); code != http.StatusOK {
		t.Fatalf("acquire lease: %d %s", code, body)
	}
	var view map[string]*types.MachineLease
	if err := json.Unmarshal([]byte(hangar("machine", "leases", "view", id, cl.ID, "--json")), &view); err != nil {
		t.Fatal(err)
	}
	if view[id] == nil || view[id].Nonce == "" || view[cl.ID] != nil {
		t.Errorf("leases view: %+v", view)
	}
	hangar("machine", "leases", "clear", id)
	if code, body := d.Call("GET", "/v1/apps/verbs/machines/"+id+"/lease", nil); code != http.StatusNotFound {
		t.Errorf("after leases clear: %d %s, want 404", code, body)
	}

	hangar("machine", "suspend", cl.ID)
	waitState(cl.ID, types.StateSuspended)

	hangar("machine", "kill", id)
	harness.Poll(t, "the kill shows as an exit", 20*time.Second, func() (bool, string) {
		m := machine(id)
		for _, ev := range m.Events {
			if ev.Type == "exit" {
				return true, ""
			}
		}
		return false, fmt.Sprint(m.Events)
	})
}
