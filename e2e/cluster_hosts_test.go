package e2e

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestClusterHosts runs three real daemons (hosts a and b in region fra, c
// in iad) on one etcd, each with its own data dir, bridge and ports, in the
// root network namespace. Machines created through host a land on a host
// of the region asked, spread over fra's hosts; a's API starts, stops,
// execs in and reads the logs of a machine on c (forwarded); no daemon
// ever runs another host's machine; killing c's daemon makes its lease
// expire, its machines read unknown and operations on them a 503 naming
// c; c back re-adopts them.
func TestClusterHosts(t *testing.T) {
	harness.RequireRoot(t)
	eps := etcdtest.Start(t)
	bin := harness.BuildBinary(t)
	hostFlags := func(id, region string) []string {
		return []string{"--etcd-endpoints", strings.Join(eps, ","), "--etcd-prefix", "/hangar/cluster-e2e/",
			"--host-id", id, "--region", region}
	}
	a := harness.StartDaemonWith(t, bin, hostFlags("a", "fra")...)
	b := harness.StartDaemonWith(t, bin, hostFlags("b", "fra")...)
	c := harness.StartDaemonWith(t, bin, append(hostFlags("c", "iad"), "--host-memory-mb", "512")...)
	daemons := map[string]*harness.Daemon{"a": a, "b": b, "c": c}
	var ref string
	for _, d := range []*harness.Daemon{a, b, c} {
		ref = d.ImportTestApp() // images are each host's own
	}

	// Every host registered, ready, with its region and API URL.
	out, err := a.Hangar("hosts", "list", "--json")
	if err != nil {
		t.Fatalf("hosts list: %v\n%s", err, out)
	}
	var hs []types.Host
	if err := json.Unmarshal([]byte(out), &hs); err != nil {
		t.Fatalf("hosts list --json: %v\n%s", err, out)
	}
	want := map[string]string{"a": "fra", "b": "fra", "c": "iad"}
	if len(hs) != 3 {
		t.Fatalf("hosts: %+v, want a, b and c", hs)
	}
	for _, h := range hs {
		if want[h.ID] != h.Region || h.State != types.HostReady || h.APIURL != daemons[h.ID].API || h.Capacity.MemoryMB <= 0 {
			t.Errorf("host %+v: want region %s, ready, API %s, a capacity", h, want[h.ID], daemons[h.ID].API)
		}
	}

	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "multi", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	cfg := &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Guest: &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 128}}
	create := func(d *harness.Daemon, region string) types.Machine {
		t.Helper()
		code, body := d.Call("POST", "/v1/apps/multi/machines", types.CreateMachineRequest{Region: region, Config: cfg})
		if code != http.StatusOK {
			t.Fatalf("create in %s through %s: %d %s", region, d.API, code, body)
		}
		var m types.Machine
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// Placement: iad goes to c; fra's two machines spread over a and b.
	onC := create(a, "iad")
	if onC.HostID != "c" || onC.Region != "iad" || onC.State != types.StateStarted {
		t.Fatalf("machine for iad: host %s, region %s, %s; want started on c", onC.HostID, onC.Region, onC.State)
	}
	fra1, fra2 := create(a, "fra"), create(c, "fra")
	if fra1.HostID == fra2.HostID || (fra1.HostID != "a" && fra1.HostID != "b") || (fra2.HostID != "a" && fra2.HostID != "b") {
		t.Fatalf("two fra machines on hosts %s and %s: want one on a and one on b", fra1.HostID, fra2.HostID)
	}
	code, body := b.Call("POST", "/v1/apps/multi/machines", types.CreateMachineRequest{Region: "syd", Config: cfg})
	if code != http.StatusBadRequest || !strings.Contains(body, `no ready host in region \"syd\"`) || !strings.Contains(body, "hangar hosts list") {
		t.Fatalf("create in a region with no host: %d %s; want a 400 that says so", code, body)
	}
	// A volume made for iad is kept by c and pins its machine there.
	code, body = a.Call("POST", "/v1/apps/multi/volumes", types.CreateVolumeRequest{Name: "data", Region: "iad", SizeMB: 16})
	var vol types.Volume
	if code != http.StatusOK || json.Unmarshal([]byte(body), &vol) != nil || vol.HostID != "c" || vol.Region != "iad" {
		t.Fatalf("volume for iad through a: %d %s; want it on host c", code, body)
	}
	volCfg := *cfg
	volCfg.Mounts = []types.MachineMount{{Volume: vol.ID, Path: "/data"}}
	code, body = a.Call("POST", "/v1/apps/multi/machines", types.CreateMachineRequest{Region: "fra", Config: &volCfg})
	if code != http.StatusBadRequest || !strings.Contains(body, "region iad, not fra") {
		t.Fatalf("a machine in fra with a volume in iad: %d %s; want a 400 that says so", code, body)
	}
	code, body = b.Call("POST", "/v1/apps/multi/machines", types.CreateMachineRequest{Region: "iad", Config: &volCfg})
	var withVol types.Machine
	if code != http.StatusOK || json.Unmarshal([]byte(body), &withVol) != nil || withVol.HostID != "c" {
		t.Fatalf("a machine with c's volume through b: %d %s; want it on c", code, body)
	}
	// c offers 512 MB; its two machines take 256.
	big := *cfg
	big.Guest = &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 512}
	code, body = a.Call("POST", "/v1/apps/multi/machines", types.CreateMachineRequest{Region: "iad", Config: &big})
	if code != http.StatusConflict || !strings.Contains(body, "c: 256 MB free") {
		t.Fatalf("a 512 MB machine in iad (256 MB free on c): %d %s; want a 409 that says so", code, body)
	}
	out, err = a.Hangar("regions", "list", "-a", "multi")
	if err != nil || !strings.Contains(out, "fra") || !strings.Contains(out, "iad") {
		t.Fatalf("regions list: %v\n%s", err, out)
	}

	// Each machine runs on its host only: its task exists in that host's
	// data dir and no other.
	runsOnlyOn := func(m types.Machine) {
		t.Helper()
		for id, d := range daemons {
			_, err := os.Stat(filepath.Join(d.DataDir, "tasks", m.ID))
			if has := err == nil; has != (id == m.HostID) {
				t.Errorf("machine %s of host %s: task in host %s's data dir = %v", m.ID, m.HostID, id, has)
			}
		}
	}
	for _, m := range []types.Machine{onC, fra1, fra2, withVol} {
		runsOnlyOn(m)
	}

	// One API, any host: a drives c's machine.
	base := "/v1/apps/multi/machines/" + onC.ID
	mustOK := func(d *harness.Daemon, method, path string, body any) string {
		t.Helper()
		code, out := d.Call(method, path, body)
		if code != http.StatusOK {
			t.Fatalf("%s %s through %s: %d %s", method, path, d.API, code, out)
		}
		return out
	}
	mustOK(a, "POST", base+"/stop", nil)
	mustOK(a, "GET", base+"/wait?state=stopped&timeout=30", nil)
	var got types.Machine
	if err := c.Get(base, &got); err != nil || got.State != types.StateStopped {
		t.Fatalf("c's view after a stopped it: %s, %v", got.State, err)
	}
	mustOK(a, "POST", base+"/start", nil)
	mustOK(a, "GET", base+"/wait?state=started&timeout=30", nil)
	var ex struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := json.Unmarshal([]byte(mustOK(a, "POST", base+"/exec", map[string]any{"command": []string{"/app", "cat"}, "stdin": "hello from a", "timeout": 10})), &ex); err != nil || ex.ExitCode != 0 || ex.Stdout != "hello from a" {
		t.Fatalf("exec on c through a: %+v, %v", ex, err)
	}
	// The console's WebSocket goes through a too (hangar machine exec).
	out, err = a.Hangar("machine", "exec", "-a", "multi", onC.ID, "/app", "cat", "through", "a")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(out, "through a") {
		t.Fatalf("machine exec on c through a: %v\n%s; want exit code 2 and the output", err, out)
	}
	if err := a.Get(base+"/events", new([]types.MachineEvent)); err != nil {
		t.Fatal(err)
	}
	// a's logs of the app merge every host's: c's machine started twice.
	harness.Poll(t, "c's logs through a", 20*time.Second, func() (bool, string) {
		code, out := a.Call("GET", "/v1/apps/multi/logs?lines=100", nil)
		n := 0
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var l types.LogLine
			if json.Unmarshal([]byte(line), &l) == nil {
				seen[l.MachineID] = true
				if l.MachineID == onC.ID && strings.Contains(l.Message, "listening on") {
					n++
				}
			}
		}
		return code == 200 && n == 2 && seen[fra1.ID] && seen[fra2.ID], fmt.Sprintf("%d %d lines of c's machine, machines %v", code, n, seen)
	})
	// Following through a streams c's lines too.
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", a.API+"/v1/apps/multi/logs?follow=true&lines=5", nil)
		req.Header.Set("Authorization", "Bearer "+a.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("follow logs through a: %v", err)
		}
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var l types.LogLine
			if err := dec.Decode(&l); err != nil {
				t.Fatalf("following logs through a: no line of c's machine %s before %v", onC.ID, err)
			}
			if l.MachineID == onC.ID {
				return
			}
		}
	}()
	out, err = a.Hangar("logs", "-a", "multi")
	if err != nil || !strings.Contains(out, onC.ID) {
		t.Errorf("hangar logs through a does not show c's machine: %v\n%s", err, out)
	}
	runsOnlyOn(onC)

	// Drains: c's volume keeps a machine there (refused, naming it); b's
	// machine moves to a, the other host of fra.
	code, body = a.Call("POST", "/v1/hosts/c/drain", nil)
	if code != http.StatusConflict || !strings.Contains(body, "multi/"+withVol.ID) {
		t.Fatalf("drain of c, whose volume keeps a machine: %d %s; want a 409 naming it", code, body)
	}
	onB := fra1
	if fra2.HostID == "b" {
		onB = fra2
	}
	out, err = a.Hangar("hosts", "drain", "b", "--json")
	var drained types.DrainResult
	if err != nil || json.Unmarshal([]byte(out), &drained) != nil || len(drained.Moved) != 1 || drained.Moved[0].From != onB.ID || drained.Moved[0].ToHost != "a" {
		t.Fatalf("hosts drain b: %v\n%s; want %s moved to a", err, out, onB.ID)
	}
	var moved types.Machine
	if err := b.Get("/v1/apps/multi/machines/"+drained.Moved[0].To, &moved); err != nil || moved.State != types.StateStarted || moved.HostID != "a" || moved.Region != "fra" {
		t.Fatalf("the moved machine: %+v, %v; want started on a in fra", moved, err)
	}
	runsOnlyOn(moved)
	var old types.Machine
	if err := a.Get("/v1/apps/multi/machines/"+onB.ID, &old); err != nil || old.State != types.StateDestroyed {
		t.Fatalf("the machine moved off b: %s, %v; want destroyed", old.State, err)
	}
	if err := a.Get("/v1/hosts", &hs); err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.ID == "b" && (h.State != types.HostDraining || h.Used.Machines != 0) {
			t.Fatalf("host b after its drain: %+v; want draining with no machine", h)
		}
	}
	if out, err := a.Hangar("hosts", "undrain", "b"); err != nil || !strings.Contains(out, "ready") {
		t.Fatalf("hosts undrain b: %v\n%s", err, out)
	}

	// c's daemon dies (its machines keep running): its lease expires.
	c.Stop(syscall.SIGKILL)
	harness.Poll(t, "host c unreachable", 60*time.Second, func() (bool, string) {
		var hs []types.Host
		if err := a.Get("/v1/hosts", &hs); err != nil {
			return false, err.Error()
		}
		for _, h := range hs {
			if h.ID == "c" {
				return h.State == types.HostUnreachable, h.State
			}
		}
		return false, "no host c"
	})
	for _, d := range []*harness.Daemon{a, b} {
		var m types.Machine
		if err := d.Get(base, &m); err != nil || m.State != types.StateUnknown || m.HostID != "c" || m.HostStatus != "unreachable" {
			t.Errorf("c's machine read through %s: state %s, host %s, host_status %s, %v; want unknown on c, unreachable", d.API, m.State, m.HostID, m.HostStatus, err)
		}
		for _, m := range d.Machines("multi") {
			want := types.StateStarted
			if m.HostID == "c" {
				want = types.StateUnknown
			}
			if m.State != want {
				t.Errorf("list through %s: machine %s of host %s is %s, want %s", d.API, m.ID, m.HostID, m.State, want)
			}
		}
	}
	if out, err := b.Hangar("status", "-a", "multi"); err != nil || !strings.Contains(out, "unknown (host c unreachable)") {
		t.Errorf("hangar status through b while c is down: %v\n%s; want c's machines unknown, naming c", err, out)
	}
	code, body = a.Call("POST", base+"/stop", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "host c") || !strings.Contains(body, "unreachable") {
		t.Errorf("stop of an unreachable host's machine: %d %s; want a 503 naming host c", code, body)
	}
	// Neither a nor b took c's machine over.
	runsOnlyOn(onC)

	// c comes back: it re-adopts its machine, which reads started again.
	c.Start()
	harness.Poll(t, "c's machine started again", 30*time.Second, func() (bool, string) {
		var m types.Machine
		err := a.Get(base, &m)
		return err == nil && m.State == types.StateStarted, fmt.Sprint(m.State, err)
	})
	if err := c.Get(base, &got); err != nil || harness.CountEvents(got, "start") != 2 {
		t.Errorf("c's machine after c's restart: %d starts, %v; want 2 (re-adopted, not restarted)", harness.CountEvents(got, "start"), err)
	}
	runsOnlyOn(onC)

	// c's volume and its machine go through a, before the app's deletion
	// (at cleanup) would leave the volume to c's background cleaner.
	mustOK(a, "DELETE", "/v1/apps/multi/machines/"+withVol.ID+"?force=true", nil)
	mustOK(a, "DELETE", "/v1/apps/multi/volumes/"+vol.ID, nil)
	if _, err := os.Stat(filepath.Join(c.DataDir, "volumes", vol.ID)); !os.IsNotExist(err) {
		t.Errorf("c's volume destroyed through a: its files are still on c (%v)", err)
	}

	// scale count --region fra,iad: a deploy through a runs one machine in
	// fra; scaling through b adds one in iad, on c; 0 in iad removes it.
	flyToml := filepath.Join(t.TempDir(), "fly.toml")
	if err := os.WriteFile(flyToml, []byte("app = \"rg\"\nprimary_region = \"fra\"\n[env]\n  PORT = \"8080\"\n[http_service]\n  internal_port = 8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := a.Hangar("deploy", "-c", flyToml, "--image", ref); err != nil {
		t.Fatalf("deploy rg through a: %v\n%s", err, out)
	}
	if out, err := b.Hangar("scale", "count", "1", "--region", "fra,iad", "-a", "rg"); err != nil {
		t.Fatalf("scale count 1 --region fra,iad through b: %v\n%s", err, out)
	}
	byRegion := map[string][]types.Machine{}
	for _, m := range c.Machines("rg") {
		byRegion[m.Region] = append(byRegion[m.Region], m)
	}
	if len(byRegion["fra"]) != 1 || len(byRegion["iad"]) != 1 || byRegion["iad"][0].HostID != "c" || byRegion["iad"][0].State != types.StateStarted {
		t.Fatalf("rg after scale count 1 --region fra,iad: %+v; want one machine in fra and one started on c in iad", byRegion)
	}
	runsOnlyOn(byRegion["iad"][0])
	if out, err := a.Hangar("scale", "count", "0", "--region", "iad", "-a", "rg"); err != nil {
		t.Fatalf("scale count 0 --region iad: %v\n%s", err, out)
	}
	if ms := a.Machines("rg"); len(ms) != 1 || ms[0].Region != "fra" {
		t.Fatalf("rg after scale count 0 --region iad: %+v; want only the fra machine", ms)
	}
}
