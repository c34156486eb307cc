package runtime

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A parked task is created, not running: its process is the runtime's
// init waiting to exec the app, it takes no CPU, and no file holds its
// environment. Start with the same spec starts that very process; a Start
// with another spec, a new driver on the same state (daemon restart), a
// Destroy and a lost shim (host reboot) all do the right thing.
func TestPark(t *testing.T) { forEachRuntime(t, testPark) }

func testPark(t *testing.T, d *OCI, rootfs string) {
	ctx := context.Background()
	logs := &lockedBuffer{}
	d.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	id := "tpark" + randSuffix()
	cleanupTask(t, d, id)
	secret := "s3cret" + randSuffix()
	spec := Spec{ID: id, RootFS: rootfs, Args: []string{"/app"}, Env: []string{"PORT=8080", "SECRET=" + secret}, MemoryMB: 128, CPUs: 1}

	// Parked → Start (the same process), stop.
	parked := park(t, d, spec)
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", parked)); strings.Contains(string(b), "/app") {
		t.Fatalf("parked task's process already runs the app: %q", b)
	}
	before := cpuTicks(t, parked)
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, parked); after != before {
		t.Errorf("parked task used CPU: %s → %s ticks", before, after)
	}
	if b, _ := os.ReadFile(d.LogPath(id)); strings.Contains(string(b), "listening on") {
		t.Fatalf("the app ran while parked: %q", b)
	}
	noSecretOnDisk(t, d, secret)
	st, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.Pid != parked {
		t.Fatalf("start of a parked task = %+v, want running as the parked pid %d", st, parked)
	}
	waitLog(t, d.LogPath(id), "listening on", 20*time.Second)
	waitEnv(t, st.Pid, "SECRET="+secret)
	if out, err := d.runtimeCmd(ctx, id, "state", id).CombinedOutput(); err != nil || !strings.Contains(string(out), `"running"`) {
		t.Fatalf("%s state after the start of a parked task: %s %v", d.name, out, err)
	}
	if !strings.Contains(logs.String(), `msg="parked task started"`) || !strings.Contains(logs.String(), `how="exec fifo"`) {
		t.Fatalf("the parked task was not started through its exec fifo:\n%s", logs.String())
	}
	if in, err := d.Inspect(ctx, id); err != nil || !in.Running || in.Parked {
		t.Fatalf("inspect after start = %+v, %v", in, err)
	}
	// Stop signals the task's init itself (no runtime CLI), and it
	// arrives: the app exits on SIGTERM, not killed at the timeout.
	if err := d.Stop(ctx, id, "SIGTERM", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if ex, err := d.Wait(ctx, id); err != nil || ex.Signal == 9 {
		t.Fatalf("exit after SIGTERM = %+v, %v", ex, err)
	}
	if strings.Contains(logs.String(), "could not signal the task directly") {
		t.Fatalf("the stop did not signal the task directly:\n%s", logs.String())
	}

	// A start with another spec makes the task afresh.
	parked = park(t, d, spec)
	changed := spec
	changed.Env = []string{"PORT=8080", "SECRET=other"}
	st, err = d.Start(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid == parked || !gone(parked) {
		t.Fatalf("start with another spec ran pid %d; the parked %d must be discarded", st.Pid, parked)
	}
	waitEnv(t, st.Pid, "SECRET=other")
	stopWait(t, d, id)

	// A new driver on the same state (a daemon restart) starts it.
	parked = park(t, d, spec)
	d2, err := NewOCI(d.root, d.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if in, err := d2.Recover(ctx, id); err != nil || in.Running || !in.Parked {
		t.Fatalf("a new driver sees %+v, %v; want parked, not running", in, err)
	}
	if st, err = d2.Start(ctx, spec); err != nil || st.Pid != parked {
		t.Fatalf("start after a driver restart = %+v, %v; want the parked pid %d", st, err, parked)
	}
	waitLog(t, d.LogPath(id), "listening on", 20*time.Second)
	stopWait(t, d2, id)

	// Nothing kept survives a host reboot: the shim and the container
	// gone, the start goes the slow way.
	parked = park(t, d, spec)
	shim := shimPid(t, d, id)
	_ = syscall.Kill(shim, syscall.SIGKILL)
	_ = d.runtimeCmd(ctx, id, "delete", "--force", id).Run()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := waitPid(wctx, shim); err != nil { // reaps it: the test is its parent
		t.Fatal(err)
	}
	if st, err = d.Start(ctx, spec); err != nil || !st.Running || st.Pid == parked {
		t.Fatalf("start after the parked task was lost = %+v, %v", st, err)
	}
	waitLog(t, d.LogPath(id), "listening on", 20*time.Second)
	stopWait(t, d, id)

	// Destroy of a parked task leaves no process, container or mount.
	parked = park(t, d, spec)
	shim = shimPid(t, d, id)
	if err := d.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !gone(parked) || !gone(shim) {
		t.Fatalf("after destroy: task %d gone %v, shim %d gone %v", parked, gone(parked), shim, gone(shim))
	}
	if _, err := os.Stat(d.dir(id)); !os.IsNotExist(err) {
		t.Fatalf("task dir left after destroy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.stateDir(), id)); !os.IsNotExist(err) {
		t.Fatalf("container record left after destroy: %v", err)
	}
	if out, _ := exec.Command(d.binary, "--root", d.stateDir(), "list").CombinedOutput(); strings.Contains(string(out), id) {
		t.Fatalf("%s still lists %s: %s", d.name, id, out)
	}
	if mountedUnder(t, d.dir(id)) {
		t.Fatalf("a mount under %s is left", d.dir(id))
	}
}

// park parks spec and returns the parked task's pid.
func park(t *testing.T, d *OCI, spec Spec) int {
	t.Helper()
	if err := d.Park(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	in, err := d.Inspect(context.Background(), spec.ID)
	if err != nil || in.Running || !in.Parked || in.Pid <= 0 {
		t.Fatalf("inspect of a parked task = %+v, %v; want parked, not running, with a pid", in, err)
	}
	return in.Pid
}

func stopWait(t *testing.T, d *OCI, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Stop(ctx, id, "SIGKILL", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func shimPid(t *testing.T, d *OCI, id string) int {
	t.Helper()
	pid, alive := shimAlive(d.dir(id), id)
	if !alive {
		t.Fatalf("task %s has no live shim", id)
	}
	return pid
}

// cpuTicks is a process's user+system time in clock ticks.
func cpuTicks(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f[11] + "+" + f[12]
}

func waitEnv(t *testing.T, pid int, kv string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && strings.Contains(string(env), kv+"\x00") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %d lacks %s in its environment (%v)", pid, kv, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func noSecretOnDisk(t *testing.T, d *OCI, secret string) {
	t.Helper()
	_ = filepath.WalkDir(d.root, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() || strings.Contains(p, "/bundle/rootfs/") {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds the task's environment", p)
		}
		return nil
	})
}

// mountedUnder reports whether anything is mounted at or below dir.
func mountedUnder(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && (fs[4] == dir || strings.HasPrefix(fs[4], dir+"/")) {
			return true
		}
	}
	return false
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes (a log).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
