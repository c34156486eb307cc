package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fillDisk writes a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := 0; i < 4096; i++ { // bounded: the tmpfs is far smaller
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("fill the disk: %v", err)
		}
	}
	// Whatever is left below a block goes too.
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return p
}

// TestFullDiskRestart: a daemon restarted on a full disk serves its apps
// (it does not need to write its convenience files to start), says the
// disk is full, and works again once space is freed.
func TestFullDiskRestart(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	dataDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", dataDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for a small disk: %v %s", err, out)
	}
	// Registered first, so it runs after the daemon's own cleanup.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dataDir, err, out)
		}
	})
	d := harness.StartDaemonIn(t, bin, dataDir, "--api-listen", freeAddr(t), "--http-listen", freeAddr(t))
	ref := d.ImportTestApp()
	cfg := writeZD(t, t.TempDir(), "v1", "0", "30s", "")
	if out, err := d.Hangar("deploy", "-c", cfg, "--image", ref); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	if code, body, err := d.ViaProxy("zd", "/"); err != nil || code != 200 {
		t.Fatalf("before: %d %s %v", code, body, err)
	}

	d.Stop(syscall.SIGKILL)
	filler := fillDisk(t, dataDir)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err != nil || st.Bavail > 16 {
		t.Fatalf("the disk is not full: %d blocks free (%v)", st.Bavail, err)
	}
	d.Start()
	harness.Poll(t, "the proxy serves on a full disk", 20*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("zd", "/")
		return err == nil && code == 200, fmt.Sprint(code, " ", body, " ", err)
	})
	// State writes go on: the reserve was given back for them.
	ms := d.Machines("zd")
	if len(ms) != 1 {
		t.Fatalf("machines on a full disk: %+v", ms)
	}
	if code, body := d.Call("POST", "/v1/apps/zd/machines/"+ms[0].ID+"/stop", nil); code != 200 {
		t.Fatalf("stop on a full disk: %d %s", code, body)
	}
	harness.Poll(t, "the stopped machine is woken by a request on a full disk", 20*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("zd", "/")
		return err == nil && code == 200, fmt.Sprint(code, " ", body, " ", err)
	})
	status, err := d.Hangar("status", "-a", "zd")
	if err != nil || !strings.Contains(status, "disk") || !strings.Contains(status, "full") {
		t.Errorf("status on a full disk should say so: %v\n%s", err, status)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	cfg = writeZD(t, t.TempDir(), "v2", "0", "30s", "")
	if out, err := d.Hangar("deploy", "-c", cfg, "--image", ref); err != nil {
		t.Fatalf("deploy after space was freed: %v\n%s", err, out)
	}
	harness.Poll(t, "the new release serves", 10*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("zd", "/")
		return err == nil && code == 200 && strings.Contains(body, "v2"), fmt.Sprint(code, " ", body, " ", err)
	})
}
