package runtime

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitSpare waits until the driver holds a spare shim and returns it.
func waitSpare(t *testing.T, d *OCI) *shimProc {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.spareMu.Lock()
		s := d.spare
		d.spareMu.Unlock()
		if s != nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("the driver started no spare shim")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gone reports whether no process has pid any more.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// mounted reports whether path is a mount point in this mount namespace.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}

// A task started after another gets the spare shim, whose identity (not
// the task id) is in its environment: the driver, and a new driver after a
// daemon restart, still recognise it, stop it and learn how it ended.
// Close lets the next spare go.
func TestSpareShim(t *testing.T) { forEachRuntime(t, testSpareShim) }

func testSpareShim(t *testing.T, d *OCI, rootfs string) {
	ctx := context.Background()
	first := "tspa" + randSuffix()
	cleanupTask(t, d, first)
	if _, err := d.Start(ctx, Spec{ID: first, RootFS: rootfs, Args: []string{"/app"}}); err != nil {
		t.Fatal(err)
	}
	spare := waitSpare(t, d)
	id := "tspb" + randSuffix()
	cleanupTask(t, d, id)
	st, err := d.Start(ctx, Spec{ID: id, RootFS: rootfs, Args: []string{"/app"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(d.dir(id), "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid != spare.pid {
		t.Fatalf("task %s runs under shim %d, want the spare %d", id, pid, spare.pid)
	}
	if tok, _ := os.ReadFile(filepath.Join(d.dir(id), "shim.id")); string(tok) != spare.token {
		t.Fatalf("shim.id = %q, want the spare's token %q", tok, spare.token)
	}
	d2, err := NewOCI(d.root, d.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	rst, err := d2.Recover(ctx, id)
	if err != nil || !rst.Running || rst.Pid != st.Pid {
		t.Fatalf("recovered %+v, %v; want running with pid %d", rst, err, st.Pid)
	}
	if err := d2.Stop(ctx, id, "SIGKILL", time.Second); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if ex, err := d2.Wait(wctx, id); err != nil || ex.Signal != 9 {
		t.Fatalf("exit = %+v, %v; want signal 9", ex, err)
	}
	next := waitSpare(t, d)
	d.Close()
	if !gone(next.pid) {
		t.Fatalf("spare shim %d still runs after Close", next.pid)
	}
}

// When the network namespace fails (NetNSReady), the start fails with its
// reason, and neither the shim it had taken nor the rootfs mount is left.
func TestStartCalledOff(t *testing.T) { forEachRuntime(t, testStartCalledOff) }

func testStartCalledOff(t *testing.T, d *OCI, rootfs string) {
	ctx := context.Background()
	first := "tcoa" + randSuffix()
	cleanupTask(t, d, first)
	if _, err := d.Start(ctx, Spec{ID: first, RootFS: rootfs, Args: []string{"/app", "exit", "0"}}); err != nil {
		t.Fatal(err)
	}
	spare := waitSpare(t, d)
	id := "tcob" + randSuffix()
	cleanupTask(t, d, id)
	netErr := errors.New("network: no namespace for you")
	_, err := d.Start(ctx, Spec{ID: id, RootFS: rootfs, Args: []string{"/app"}, NetNSReady: func() error { return netErr }})
	if !errors.Is(err, netErr) {
		t.Fatalf("start = %v, want the namespace's error", err)
	}
	if !gone(spare.pid) {
		t.Fatalf("the shim %d the start had taken still runs", spare.pid)
	}
	if merged := filepath.Join(d.dir(id), "bundle/rootfs"); mounted(t, merged) {
		t.Fatalf("rootfs %s left mounted", merged)
	}
	if _, err := d.Inspect(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect after a called-off start = %v, want ErrNotFound", err)
	}
}

// A spare shim that died while it waited (killed, crashed) is not used: the
// task gets a shim of its own and starts.
func TestDeadSpareShim(t *testing.T) { forEachRuntime(t, testDeadSpareShim) }

func testDeadSpareShim(t *testing.T, d *OCI, rootfs string) {
	ctx := context.Background()
	first := "tdsa" + randSuffix()
	cleanupTask(t, d, first)
	if _, err := d.Start(ctx, Spec{ID: first, RootFS: rootfs, Args: []string{"/app"}}); err != nil {
		t.Fatal(err)
	}
	spare := waitSpare(t, d)
	if err := syscall.Kill(spare.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait until it has exited: a zombie (until the driver reaps it) whose
	// other threads are gone too (the thread group leader shows Z first).
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(spare.pid) + "/stat")
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(spare.pid) + "/task")
		if err != nil || (strings.Contains(string(b), ") Z ") && len(tasks) <= 1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed spare shim %d did not exit", spare.pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	id := "tdsb" + randSuffix()
	cleanupTask(t, d, id)
	st, err := d.Start(ctx, Spec{ID: id, RootFS: rootfs, Args: []string{"/app"}})
	if err != nil {
		t.Fatalf("start with a dead spare shim: %v", err)
	}
	if !st.Running {
		t.Fatalf("task not running: %+v", st)
	}
}
