package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestClusterRemoveHost: an embedded cluster of a, b (fra) and c (iad)
// on the mesh; c runs a machine without a volume (replaced on a or b by
// failover once c dies) and one with a volume. c crashes for good.
// `hangar hosts remove c` refuses while the volume's machine and volume
// are there, naming them; with --force it forgets them, c's record, its
// replaced machine's record, its etcd member and its subnet: the hosts
// list and the cluster's members no longer have c, the app with the
// volume can be deleted, and c's daemon started again with its old data
// dir refuses to run.
func TestClusterRemoveHost(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	args := meshClusterArgs(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}, {Name: "c", Region: "iad"}},
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			return append(args(c, h), "--host-failure-grace", failoverGrace.String())
		},
	})
	a, b := c.Host("a"), c.Host("b")
	var ref string
	for _, h := range c.Hosts() {
		ref = h.ImportTestApp()
	}
	for _, app := range []string{"rmweb", "rmdb"} {
		if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app, OrgSlug: "personal"}); code != http.StatusCreated {
			t.Fatalf("create app %s: %d %s", app, code, body)
		}
	}
	lost := createIn(t, a, "rmweb", "iad", failoverMachine(ref))
	code, body := a.Call("POST", "/v1/apps/rmdb/volumes", types.CreateVolumeRequest{Name: "data", Region: "iad", SizeMB: 16})
	var vol types.Volume
	if code != http.StatusOK || json.Unmarshal([]byte(body), &vol) != nil || vol.HostID != "c" {
		t.Fatalf("volume in iad: %d %s; want it on c", code, body)
	}
	volCfg := failoverMachine(ref)
	volCfg.Mounts = []types.MachineMount{{Volume: vol.ID, Path: "/data"}}
	pinned := createIn(t, a, "rmdb", "iad", volCfg)
	if lost.HostID != "c" || pinned.HostID != "c" {
		t.Fatalf("machines for iad on %s and %s, want c", lost.HostID, pinned.HostID)
	}

	// Removing a host that runs is refused.
	if out, err := a.CLI("hosts", "remove", "c"); err == nil || !strings.Contains(out, "only a host whose daemon is gone") {
		t.Fatalf("removing a running host: %v\n%s", err, out)
	}

	c.KillHost("c")
	pollMachines(t, b, "rmweb", failoverGrace+30*time.Second, "c's web machine replaced", func(ms []types.Machine) bool {
		return byID(ms)[lost.ID].ReplacedBy != ""
	})
	out, err := a.CLI("hosts", "remove", "c")
	if err == nil || !strings.Contains(out, "rmdb/"+pinned.ID) || !strings.Contains(out, "rmdb/"+vol.ID) || !strings.Contains(out, "--force") {
		t.Fatalf("removing c with a volume on it: %v\n%s", err, out)
	}
	if out, err = a.CLI("hosts", "remove", "c", "--force", "--json"); err != nil {
		t.Fatalf("hosts remove c --force: %v\n%s", err, out)
	}
	var res types.HostRemoval
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Host != "c" || !res.ClusterMember || len(res.Volumes) != 1 || res.Volumes[0] != "rmdb/"+vol.ID ||
		strings.Join(res.Machines, " ") != "rmdb/"+pinned.ID+" rmweb/"+lost.ID {
		t.Errorf("removal: %+v", res)
	}

	// Gone everywhere: hosts, the cluster's members (etcd's too), the
	// app's machines and volumes.
	var hs []types.Host
	if err := b.Get("/v1/hosts", &hs); err != nil || len(hs) != 2 {
		t.Errorf("hosts after the removal: %+v %v", hs, err)
	}
	var ms types.ClusterMembers
	if err := a.Get("/v1/cluster/members", &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms.Members {
		if m.Name == "c" {
			t.Errorf("c is still a member: %+v", ms)
		}
		if m.Health != "healthy" {
			t.Errorf("member %s after the removal: %+v", m.Name, m)
		}
	}
	if len(ms.Members) != 2 {
		t.Errorf("members: %+v", ms.Members)
	}
	web := b.Machines("rmweb")
	if len(web) != 1 || web[0].ID == lost.ID || web[0].HostID == "c" {
		t.Errorf("rmweb's machines: %+v; want only the replacement", web)
	}
	var vols []types.Volume
	if err := a.Get("/v1/apps/rmdb/volumes", &vols); err != nil || len(vols) != 0 {
		t.Errorf("rmdb's volumes: %+v %v", vols, err)
	}
	if code, body := a.Call("DELETE", "/v1/apps/rmdb", nil); code/100 != 2 {
		t.Errorf("delete the app whose machine was on c: %d %s", code, body)
	}
	// The cluster still writes with two voters.
	if code, body := b.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "rmafter", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Errorf("create an app after the removal: %d %s", code, body)
	}

	// c's old data dir: its daemon refuses to run.
	log := c.StartHostFails("c", 90*time.Second)
	if !strings.Contains(log, "this host was removed from the cluster") || !strings.Contains(log, "Empty the data dir") {
		t.Errorf("c's daemon after its removal said:\n%s", log)
	}
}
