package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "HANGAR_HARNESS_CRASH_CHILD"

// TestClusterCrashChild is run by TestLeftoversOfACrashedRun in a child
// process, which it kills while the cluster is up.
func TestClusterCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("a helper of TestLeftoversOfACrashedRun")
	}
	c := StartCluster(t, "/nonexistent/hangar", ClusterOptions{Hosts: []HostSpec{
		{Name: "x", Region: "fra", NoStart: true},
		{Name: "y", Region: "iad", NoStart: true},
	}})
	// A process on host x, and a mount where a machine's rootfs would be.
	sleep := c.Host("x").Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(c.Host("x").DataDir, "tasks", "fakemachine", "bundle", "rootfs")
	if err := os.MkdirAll(rootfs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", rootfs, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("cluster-ready %s %d\n", c.ID(), sleep.Process.Pid)
	select {} // until the parent kills this process
}

// TestLeftoversOfACrashedRun kills a test process while its cluster is up
// (no cleanup runs) and checks that the next cluster run's sweep removes
// all of it: the processes in its namespaces, its mounts, namespaces,
// links and run dir.
func TestLeftoversOfACrashedRun(t *testing.T) {
	RequireRoot(t)
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	child := exec.Command(os.Args[0], "-test.run=^TestClusterCrashChild$", "-test.v")
	child.Env = append(os.Environ(), crashChildEnv+"=1")
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	var sleepPID int
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if _, err := fmt.Sscanf(sc.Text(), "cluster-ready %s %d", &id, &sleepPID); err == nil {
			break
		}
	}
	if id == "" {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("the child made no cluster:\n%s", strings.Join(lines, "\n"))
	}
	_ = child.Process.Kill()
	_ = child.Wait()

	var s *runState
	for _, r := range listRuns() {
		if r.ID == id {
			s = r
		}
	}
	if s == nil {
		t.Fatalf("no record of the crashed run %s", id)
	}
	if s.alive() {
		t.Fatal("the crashed run's owner still counts as alive")
	}
	before := leftovers(s)
	t.Logf("left by the crashed run: %v", before)
	for _, want := range []string{"network namespace " + s.FabricNS, "network namespace " + s.HostNS[0], "link " + s.RootLink, "run dir " + s.RunDir} {
		if !slices.Contains(before, want) {
			t.Fatalf("the crash did not leave %q (so the sweep is not tested): %v", want, before)
		}
	}
	if len(mountsUnder(s.RunDir)) == 0 {
		t.Fatal("the crash left no mount")
	}
	if err := syscall.Kill(sleepPID, 0); err != nil {
		t.Fatalf("the process on host x is gone before the sweep: %v", err)
	}

	removed := forceCleanupLeftovers()
	t.Logf("removed: %v", removed)
	if !slices.Contains(removed, "run "+id) {
		t.Errorf("the sweep did not report run %s: %v", id, removed)
	}
	if l := leftovers(s); len(l) > 0 {
		t.Errorf("left after the sweep: %v", l)
	}
	if !waitGone(sleepPID, 5*time.Second) {
		t.Errorf("process %d on host x still runs after the sweep", sleepPID)
	}
}
