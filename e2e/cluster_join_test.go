package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestClusterJoin runs real `hangar server --cluster-init` and `hangar
// server --join … --join-token …` processes on 127.0.0.1 (own data dirs,
// API, proxy, cluster and etcd ports): an app created through host A's API
// is listed by host B's; the token works once; A reloads; B restarts from its data dir
// (its flags still name the used token) and still sees the app.
func TestClusterJoin(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	hostFlags := func(name string) []string { return loopbackHostFlags(t, name) }
	aFlags := hostFlags("a")
	a := harness.StartDaemonWith(t, bin, append([]string{"--cluster-init"}, aFlags...)...)
	joinURL := "https://" + aFlags[5]

	out, err := a.Hangar("cluster", "join-token", "--ttl", "10m")
	if err != nil {
		t.Fatalf("cluster join-token: %v\n%s", err, out)
	}
	token := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "hj1_") {
			token = strings.TrimSpace(line)
		}
	}
	if token == "" || !strings.Contains(out, "--join "+joinURL) {
		t.Fatalf("cluster join-token printed no token, or not the join URL %s:\n%s", joinURL, out)
	}

	b := harness.StartDaemonWith(t, bin, append([]string{"--join", joinURL, "--join-token", token, "--region", "fra"}, hostFlags("b")...)...)
	// Two voters: stopping either takes the other's quorum, so the test
	// deletes its apps while both run, then stops both (the harness's own
	// cleanup then finds them stopped).
	t.Cleanup(func() {
		if code, body := a.Call("DELETE", "/v1/apps/joined", nil); code != http.StatusAccepted && code != http.StatusNotFound {
			t.Errorf("cleanup: delete app: %d %s", code, body)
		}
		var wg sync.WaitGroup
		for _, d := range []*harness.Daemon{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); d.Stop(syscall.SIGTERM) }()
		}
		wg.Wait()
	})
	for _, f := range []string{"ca.pem", "host.pem", "host-key.pem", "member.json"} {
		if _, err := os.Stat(filepath.Join(b.DataDir, "cluster", f)); err != nil {
			t.Fatalf("joined host: %v", err)
		}
	}

	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "joined", OrgSlug: "personal"}); code != http.StatusCreated {
		t.Fatalf("create app through A: %d %s", code, body)
	}
	listed := func(d *harness.Daemon) bool {
		t.Helper()
		code, body := d.Call("GET", "/v1/apps", nil)
		var res struct {
			Apps []types.App `json:"apps"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("list apps: %d %s", code, body)
		}
		for _, app := range res.Apps {
			if app.Name == "joined" {
				return true
			}
		}
		return false
	}
	if !listed(b) {
		t.Fatal("the app created through host A's API is not listed by host B's")
	}

	out, err = b.Hangar("cluster", "members")
	if err != nil {
		t.Fatalf("cluster members: %v\n%s", err, out)
	}
	t.Logf("hangar cluster members on B:\n%s", out)
	for _, want := range []string{"a ", "b ", "voter", "healthy", "fra"} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster members does not show %q:\n%s", want, out)
		}
	}

	// The token was used: a third host is refused with what to do, and
	// makes no cluster dir.
	c := t.TempDir()
	cmd := []string{"server", "--data-dir", c, "--api-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--join", joinURL, "--join-token", token}
	cmd = append(cmd, hostFlags("c")...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, cmd...).CombinedOutput(); err == nil || !strings.Contains(string(out), "already used") || !strings.Contains(string(out), "hangar cluster join-token") {
		t.Fatalf("join with a used token: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(c, "cluster")); !os.IsNotExist(err) {
		t.Fatalf("a refused join left %s/cluster (%v)", c, err)
	}

	// A reloads (SIGHUP): the new process waits for the old one to stop
	// its etcd member, then starts it again from the data dir.
	a.Reload()
	if !listed(a) || !listed(b) {
		t.Fatal("after A reloaded, the app is not listed by both hosts")
	}

	// B restarts from its data dir: its flags still carry the used token,
	// which is not needed again.
	b.Stop(syscall.SIGTERM)
	b.Start()
	if !listed(b) {
		t.Fatal("after a restart, host B does not list the app")
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestClusterInitFromDataDir: a single-host daemon with a machine running
// is stopped (the machine keeps running), `hangar cluster init
// --from-data-dir` moves its state into a new cluster's etcd, and the
// daemon started again (same flags, none of them the cluster's) re-adopts
// the same machine from the cluster's state and serves it, without
// starting it again.
func TestClusterInitFromDataDir(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	if out, err := d.Hangar("deploy", "-c", "examples/hello/fly.toml"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	ms := d.Machines("hello")
	if len(ms) != 1 || ms[0].State != types.StateStarted {
		t.Fatalf("machines after deploy: %+v", ms)
	}
	m := ms[0]
	d.Stop(syscall.SIGTERM)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "cluster", "init", "--from-data-dir", d.DataDir, "--member-name", "first",
		"--advertise-addr", "127.0.0.1", "--cluster-listen", freePort(t), "--etcd-peer-listen", freePort(t), "--etcd-client-listen", freePort(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Copied") {
		t.Fatalf("cluster init --from-data-dir: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if _, err := os.Stat(filepath.Join(d.DataDir, "state.db")); !os.IsNotExist(err) {
		t.Fatalf("state.db still in the data dir (%v)", err)
	}

	d.Start()
	ms = d.Machines("hello")
	if len(ms) != 1 || ms[0].ID != m.ID || ms[0].State != types.StateStarted || harness.CountEvents(ms[0], "start") != 1 {
		t.Fatalf("after the move into the cluster: %+v, want machine %s started once", ms, m.ID)
	}
	harness.Poll(t, "the proxy serves the machine", 20*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("hello", "/")
		return err == nil && code == 200 && strings.Contains(body, m.ID), fmt.Sprint(code, body, err)
	})
	if out, err := d.Hangar("cluster", "members"); err != nil || !strings.Contains(out, "first") {
		t.Fatalf("cluster members: %v\n%s", err, out)
	}
}

// loopbackHostFlags are the cluster flags of a host that shares the test's
// network namespace with the others: its own ports on 127.0.0.1, and no
// mesh (a namespace holds one mesh interface at most; TestMeshBetweenHosts
// tests the mesh, a namespace per host). The cluster listener's address is
// the sixth element.
func loopbackHostFlags(t *testing.T, name string) []string {
	return []string{"--member-name", name, "--advertise-addr", "127.0.0.1",
		"--cluster-listen", freePort(t), "--etcd-peer-listen", freePort(t), "--etcd-client-listen", freePort(t), "--no-mesh"}
}
