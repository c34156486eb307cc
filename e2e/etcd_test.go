package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestDaemonOnEtcd runs `hangar server --etcd-endpoints` against a real
// (embedded) etcd: a deploy serves, the state is in etcd and not in
// state.db, and the machine and its state survive a reload (the new daemon
// waits for the old one's etcd lock) and a kill -9 and restart (it waits
// for the dead one's lease to expire).
func TestDaemonOnEtcd(t *testing.T) {
	harness.RequireRoot(t)
	eps := etcdtest.Start(t)
	const prefix = "/hangar/e2e/"
	bin := filepath.Join(t.TempDir(), "hangar")
	copyFile(t, harness.BuildBinary(t), bin)
	d := harness.StartDaemonWith(t, bin, "--etcd-endpoints", strings.Join(eps, ","), "--etcd-prefix", prefix)
	out, err := d.Hangar("deploy", "-c", "examples/hello/fly.toml")
	if err != nil {
		t.Fatalf("deploy failed: %v\n%s", err, out)
	}
	ms := d.Machines("hello")
	if len(ms) != 1 || ms[0].State != types.StateStarted {
		t.Fatalf("machines after deploy: %+v", ms)
	}
	m := ms[0]
	if code, body, err := d.ViaProxy("hello", "/"); err != nil || code != 200 || !strings.Contains(body, m.ID) {
		t.Fatalf("through the proxy: %d %q %v", code, body, err)
	}
	if _, err := os.Stat(filepath.Join(d.DataDir, "state.db")); !os.IsNotExist(err) {
		t.Fatalf("state.db exists with --etcd-endpoints (%v)", err)
	}
	ctx := context.Background()
	st, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: eps}, etcdstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kvs, err := st.List(ctx, "")
	if err != nil || len(kvs) == 0 {
		t.Fatalf("state in etcd: %d keys, %v", len(kvs), err)
	}
	found := false
	for _, kv := range kvs {
		found = found || strings.Contains(kv.Key, m.ID)
	}
	if !found {
		t.Fatalf("machine %s not in etcd's %d keys", m.ID, len(kvs))
	}

	same := func(when string) {
		t.Helper()
		ms := d.Machines("hello")
		if len(ms) != 1 || ms[0].ID != m.ID || ms[0].State != types.StateStarted || harness.CountEvents(ms[0], "start") != 1 {
			t.Fatalf("%s: %+v, want machine %s started once", when, ms, m.ID)
		}
		harness.Poll(t, "proxy serves "+when, 20*time.Second, func() (bool, string) {
			code, body, err := d.ViaProxy("hello", "/")
			return err == nil && code == 200 && strings.Contains(body, m.ID), fmt.Sprint(code, body, err)
		})
	}
	start := time.Now()
	d.Reload()
	t.Logf("reload: new daemon serving %s after SIGHUP", time.Since(start).Round(time.Millisecond))
	same("after a reload")

	d.Stop(syscall.SIGKILL)
	start = time.Now()
	d.Start()
	t.Logf("restart after kill -9: serving %s after start", time.Since(start).Round(time.Millisecond))
	same("after kill -9 and a restart")
}
