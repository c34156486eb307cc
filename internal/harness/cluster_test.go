package harness

import (
	"bufio"
	"fmt"
	"net"
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

// TestFabric checks the network of a cluster without daemons: hosts reach
// each other and the root namespace reaches them; LinkDown cuts a host
// off both ways and LinkUp puts it back; a relay adds the RTT between the
// hosts' regions; Close leaves nothing.
func TestFabric(t *testing.T) {
	RequireRoot(t)
	const rtt = 20 * time.Millisecond
	c := StartCluster(t, "/nonexistent/hangar", ClusterOptions{
		Hosts: []HostSpec{{Name: "x", Region: "fra", NoStart: true}, {Name: "y", Region: "iad", NoStart: true}},
		RTT:   map[string]time.Duration{"iad/fra": rtt},
	})
	x, y := c.Host("x"), c.Host("y")
	if got := c.RegionRTT("fra", "iad"); got != rtt {
		t.Fatalf("RegionRTT(fra, iad) = %v, want %v (either order)", got, rtt)
	}
	l, err := x.Listen("tcp", x.Addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("x"))
			conn.Close()
		}
	}()
	reach := func(from string, dial func() (net.Conn, error)) error {
		conn, err := dial()
		if err != nil {
			return fmt.Errorf("from %s: %w", from, err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1)
		if _, err := conn.Read(b); err != nil || b[0] != 'x' {
			return fmt.Errorf("from %s: read %q %v", from, b, err)
		}
		return nil
	}
	fromRoot := func() (net.Conn, error) { return net.DialTimeout("tcp", l.Addr().String(), 2*time.Second) }
	fromY := func() (net.Conn, error) { return y.DialTimeout("tcp", l.Addr().String(), 2*time.Second) }
	for name, dial := range map[string]func() (net.Conn, error){"root": fromRoot, "y": fromY} {
		if err := reach(name, dial); err != nil {
			t.Fatalf("before LinkDown: %v", err)
		}
	}
	// y has no route but the fabric.
	if out, err := y.Command("ip", "-4", "route", "show").CombinedOutput(); err != nil || strings.Contains(string(out), "default") {
		t.Errorf("routes on y: %s %v; want the fabric's only", out, err)
	}

	c.LinkDown("x")
	for name, dial := range map[string]func() (net.Conn, error){"root": fromRoot, "y": fromY} {
		if err := reach(name, dial); err == nil {
			t.Errorf("%s reaches x after LinkDown", name)
		}
	}
	c.LinkUp("x")
	for name, dial := range map[string]func() (net.Conn, error){"root": fromRoot, "y": fromY} {
		Poll(t, name+" reaches x after LinkUp", 10*time.Second, func() (bool, string) {
			err := reach(name, dial)
			return err == nil, fmt.Sprint(err)
		})
	}

	// Through a relay, y's path to x has the RTT of iad/fra.
	_, port, _ := net.SplitHostPort(l.Addr().String())
	var p int
	fmt.Sscan(port, &p)
	relay := c.Relay("y", "x", "tcp", p)
	// From before the dial: the relay connects to x, and x's greeting
	// starts its way back, while y's dial completes.
	start := time.Now()
	conn, err := y.Dial("tcp", relay)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// x writes at once on accept: the byte takes half the RTT back, and
	// the relay's connection to x is made when y connects.
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < rtt/2 {
		t.Errorf("x's greeting through the relay took %v, less than half the RTT %v", took, rtt)
	}

	if err := c.FabricCommand("ip", "link", "show", "br0").Run(); err != nil {
		t.Errorf("no bridge in the fabric: %v", err)
	}
	c.Close()
	if left := c.Leftovers(); len(left) > 0 {
		t.Errorf("left after Close: %v", left)
	}
}

// TestMeshDelay: with MeshDelay, a UDP exchange between two hosts' MeshPort
// sockets, addressed to each other's own address, takes at least their
// regions' RTT (relayed), and the answer reads as from the other host's
// address and port; hosts of a pair without an RTT go direct.
func TestMeshDelay(t *testing.T) {
	RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (apt-get install nftables)")
	}
	const rtt = 40 * time.Millisecond
	c := StartCluster(t, "/nonexistent/hangar", ClusterOptions{
		Hosts:     []HostSpec{{Name: "x", Region: "fra", NoStart: true}, {Name: "y", Region: "iad", NoStart: true}, {Name: "z", Region: "iad", NoStart: true}},
		RTT:       map[string]time.Duration{"fra/iad": rtt},
		MeshDelay: true,
	})
	x, y, z := c.Host("x"), c.Host("y"), c.Host("z")
	listen := func(h *Host) net.PacketConn {
		pc, err := h.ListenPacket("udp", net.JoinHostPort(h.Addr, fmt.Sprint(MeshPort)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	px, py, pz := listen(x), listen(y), listen(z)
	echo := func(pc net.PacketConn) {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}
	go echo(py)
	go echo(pz)
	roundTrip := func(to *Host) (time.Duration, net.Addr) {
		t.Helper()
		dst, _ := net.ResolveUDPAddr("udp", net.JoinHostPort(to.Addr, fmt.Sprint(MeshPort)))
		start := time.Now()
		if _, err := px.WriteTo([]byte("ping"), dst); err != nil {
			t.Fatal(err)
		}
		_ = px.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, from, err := px.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "ping" {
			t.Fatalf("x → %s: %q %v", to.Name, buf[:n], err)
		}
		return time.Since(start), from
	}
	for _, to := range []*Host{y, z} {
		took, from := roundTrip(to)
		if took < rtt {
			t.Errorf("x → %s took %v through the mesh relay, less than the RTT %v", to.Name, took, rtt)
		}
		if want := net.JoinHostPort(to.Addr, fmt.Sprint(MeshPort)); from.String() != want {
			t.Errorf("the answer from %s reads as from %s, want %s", to.Name, from, want)
		}
	}
	// y and z (one region, no IntraRegionRTT): no rule between them.
	if out, err := y.Command("nft", "list", "table", "ip", "hangar_meshdelay").CombinedOutput(); err != nil || strings.Contains(string(out), z.Addr) || !strings.Contains(string(out), x.Addr) {
		t.Errorf("y's delay rules: %v\n%s", err, out)
	}
}
