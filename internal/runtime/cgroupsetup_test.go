package runtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeCgroups is a hybrid cgroup tree in a temp dir whose mount behaves as
// the kernel's: it takes the controller off the v2 root's list.
type fakeCgroups struct {
	cgroupHost
	mu     sync.Mutex
	mounts []string
	fail   error
}

func newFakeCgroups(t *testing.T, controllers, enabled string) *fakeCgroups {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "unified"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fakeCgroups{}
	f.write(t, root, "cgroup.controllers", controllers)
	f.write(t, root, "cgroup.subtree_control", enabled)
	f.cgroupHost = cgroupHost{root: root, euid: func() int { return 0 }, mount: func(c, target string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.fail != nil {
			return f.fail
		}
		if !onV2(root, c) {
			return errors.New("fake: " + c + " is not on v2")
		}
		f.mounts = append(f.mounts, c+" "+target)
		cs, _ := readControllers(filepath.Join(root, "unified", "cgroup.controllers"))
		cs = slices.DeleteFunc(cs, func(s string) bool { return s == c })
		return os.WriteFile(filepath.Join(root, "unified", "cgroup.controllers"), []byte(strings.Join(cs, " ")+"\n"), 0o644)
	}}
	return f
}

func (f *fakeCgroups) write(t *testing.T, root, name, content string) {
	if err := os.WriteFile(filepath.Join(root, "unified", name), []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBindV2OnlyControllers(t *testing.T) {
	t.Run("binds unused controllers, once", func(t *testing.T) {
		f := newFakeCgroups(t, "hugetlb misc", "")
		bound, err := f.bindV2OnlyControllers()
		if err != nil || !slices.Equal(bound, []string{"hugetlb", "misc"}) {
			t.Fatalf("bound %v, %v; want hugetlb and misc", bound, err)
		}
		want := []string{"hugetlb " + filepath.Join(f.root, "hugetlb"), "misc " + filepath.Join(f.root, "misc")}
		if !slices.Equal(f.mounts, want) {
			t.Fatalf("mounts %v, want %v", f.mounts, want)
		}
		bound, err = f.bindV2OnlyControllers()
		if err != nil || len(bound) != 0 || len(f.mounts) != 2 {
			t.Fatalf("second setup bound %v, %v (mounts %v); want nothing to do", bound, err, f.mounts)
		}
	})
	t.Run("nothing on v2", func(t *testing.T) {
		f := newFakeCgroups(t, "", "")
		if bound, err := f.bindV2OnlyControllers(); err != nil || len(bound) != 0 || len(f.mounts) != 0 {
			t.Fatalf("bound %v, %v, mounts %v; want nothing", bound, err, f.mounts)
		}
	})
	t.Run("concurrent setups mount once", func(t *testing.T) {
		f := newFakeCgroups(t, "hugetlb", "")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.bindV2OnlyControllers()
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if len(f.mounts) != 1 {
			t.Fatalf("mounts %v, want one", f.mounts)
		}
	})
	for _, tc := range []struct {
		name, onV2, enabled string
		setup               func(f *fakeCgroups)
		want                string
	}{
		{name: "in use on v2", onV2: "hugetlb", enabled: "hugetlb", want: "in use on cgroup v2"},
		{name: "not root", onV2: "hugetlb", setup: func(f *fakeCgroups) { f.euid = func() int { return 1000 } }, want: "needs root"},
		{name: "mount fails", onV2: "hugetlb", setup: func(f *fakeCgroups) { f.fail = unix.EPERM }, want: "mount -t cgroup -o hugetlb cgroup"},
		{name: "still on v2", onV2: "hugetlb", setup: func(f *fakeCgroups) {
			f.mount = func(string, string) error { return nil }
		}, want: "still on cgroup v2"},
		{name: "odd controller name", onV2: "../x", want: "unexpected cgroup controller name"},
		{name: "no v2 root", onV2: "hugetlb", setup: func(f *fakeCgroups) { _ = os.RemoveAll(filepath.Join(f.root, "unified")) }, want: "cgroup.controllers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCgroups(t, tc.onV2, tc.enabled)
			if tc.setup != nil {
				tc.setup(f)
			}
			_, err := f.bindV2OnlyControllers()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if len(f.mounts) != 0 {
				t.Fatalf("mounted %v", f.mounts)
			}
		})
	}
}

// With --runtime runc the driver never touches cgroup mounts.
func TestPreferRuncMountsNothing(t *testing.T) {
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed: apt-get install -y runc")
	}
	saved := hostCgroups
	t.Cleanup(func() { hostCgroups = saved })
	hostCgroups.mount = func(c, target string) error {
		t.Errorf("mounted %s at %s with --runtime runc", c, target)
		return errors.New("no")
	}
	hostCgroups.euid = func() int { t.Error("cgroup setup ran with --runtime runc"); return 0 }
	d, err := NewOCI(t.TempDir(), "runc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "runc" {
		t.Fatalf("runtime %s, want runc", d.Name())
	}
}

// On this host, after the setup (run several times, concurrently), crun runs
// a real task, and the driver picks crun by itself.
func TestCrunAfterCgroupSetup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the cgroup setup and running containers need root")
	}
	if _, err := exec.LookPath("crun"); err != nil {
		t.Skip("crun not installed (apt-get install -y crun); nothing to set up for")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := SetupCrunCgroups()
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("cgroup setup: %v", err)
		}
	}
	if bound, err := SetupCrunCgroups(); err != nil || len(bound) != 0 {
		t.Fatalf("setup again bound %v, %v; want nothing to do", bound, err)
	}
	if isHybridCgroup() {
		if cs, err := readControllers("/sys/fs/cgroup/unified/cgroup.controllers"); err != nil || len(cs) != 0 {
			t.Fatalf("controllers left on cgroup v2: %v %v", cs, err)
		}
		// One mount per bound controller, not one per setup.
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], "/sys/fs/cgroup/") {
				seen[f[4]]++
			}
		}
		for p, n := range seen {
			if n > 1 {
				t.Errorf("%s is mounted %d times", p, n)
			}
		}
	}

	d, rootfs := newTestDriver(t, "")
	if d.Name() != "crun" {
		t.Fatalf("the driver picked %s; want crun once the host is set up", d.Name())
	}
	ctx := context.Background()
	id := "tcrun" + randSuffix()
	cleanupTask(t, d, id)
	st, err := d.Start(ctx, Spec{ID: id, RootFS: rootfs, Args: []string{"/app"}, Env: []string{"PORT=8080"}, MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	checkCgroupLayout(t, d, id, st.Pid)
	waitLog(t, d.LogPath(id), "listening on", 20*time.Second)
	if err := d.Stop(ctx, id, "SIGTERM", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ex, err := d.Wait(ctx, id)
	if err != nil || ex.Signal == 9 || (ex.Signal != 15 && ex.Code != 143) {
		t.Fatalf("exit = %+v, %v; want the SIGTERM to end it", ex, err)
	}
}
