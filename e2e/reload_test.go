package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// copyFile copies src to dst (mode 0755) through a temp file and a rename,
// as a package upgrade replaces a binary.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// TestReloadDropsNothing upgrades the daemon in place (a new binary at the
// same path, then SIGHUP) twice under load: no proxied request fails, a
// request in flight across the handover completes, the machines are the
// same and were never restarted, and the new daemon is the new binary.
func TestReloadDropsNothing(t *testing.T) {
	harness.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "hangar")
	copyFile(t, harness.BuildBinary(t), bin)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	dir := t.TempDir()
	if out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "v1", "0", "30s", ""), "--image", ref); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	if out, err := d.Hangar("scale", "count", "2", "-a", "zd"); err != nil {
		t.Fatalf("scale: %v\n%s", err, out)
	}
	before := map[string]bool{}
	for _, m := range d.Machines("zd") {
		before[m.ID] = true
	}

	for round := 1; round <= 2; round++ {
		copyFile(t, harness.BuildBinary(t), bin) // the "upgrade"
		l := d.StartLoad("zd", 16)
		long := make(chan string, 1)
		go func() {
			code, body, err := d.ViaProxy("zd", "/sleep?d=1500ms")
			long <- fmt.Sprint(code, " ", strings.TrimSpace(body), " ", err)
		}()
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		pid := d.Reload()
		took := time.Since(start)
		time.Sleep(500 * time.Millisecond) // the load runs on through the new daemon
		finishLoad(t, l, fmt.Sprintf("reload %d", round))
		if got := <-long; !strings.HasPrefix(got, "200 slept 1.5s") {
			t.Errorf("reload %d: request in flight across the handover: %s", round, got)
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != bin {
			t.Errorf("reload %d: the new daemon runs %q (%v), want the binary now at %s", round, exe, err, bin)
		}
		t.Logf("reload %d: new daemon %d serving %v after SIGHUP", round, pid, took.Round(time.Millisecond))
	}

	ms := d.Machines("zd")
	if len(ms) != len(before) {
		t.Fatalf("after the reloads: %d machines, want %d", len(ms), len(before))
	}
	for _, m := range ms {
		if !before[m.ID] || m.State != types.StateStarted {
			t.Errorf("after the reloads: machine %s is %s (known before: %v)", m.ID, m.State, before[m.ID])
		}
		if n := harness.CountEvents(m, "start"); n != 1 || harness.CountEvents(m, "exit") != 0 {
			t.Errorf("machine %s was restarted across the reloads: events %+v", m.ID, m.Events)
		}
	}
	// The new daemon is fully in charge: a deploy works.
	if out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "v2", "0", "30s", ""), "--image", ref); err != nil {
		t.Fatalf("deploy after the reloads: %v\n%s", err, out)
	}
	if v := versions(t, d, "zd"); v["v2"] != 2 || len(v) != 1 {
		t.Fatalf("after the deploy: %v, want 2 machines of v2", v)
	}
}
