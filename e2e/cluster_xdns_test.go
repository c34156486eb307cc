package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// meshClusterArgs makes the hosts of a harness cluster one embedded
// cluster (the first host --cluster-init, the others --join with a token
// from it), so they are on the WireGuard mesh. Hosts named in alone make
// clusters of their own (--cluster-init).
func meshClusterArgs(t *testing.T, alone ...string) func(c *harness.Cluster, h *harness.Host) []string {
	return func(c *harness.Cluster, h *harness.Host) []string {
		args := []string{"--member-name", h.Name, "--advertise-addr", h.Addr}
		first := c.Hosts()[0]
		if h == first || slices.Contains(alone, h.Name) {
			return append(args, "--cluster-init")
		}
		// The CLI finds the API by the address file the daemon writes
		// just after it serves: retry for a moment.
		var out string
		harness.Poll(t, "a join token from "+first.Name, 15*time.Second, func() (bool, string) {
			var err error
			out, err = first.CLI("cluster", "join-token")
			return err == nil, fmt.Sprint(err, out)
		})
		token := ""
		for _, f := range strings.Fields(out) {
			if strings.HasPrefix(f, "hj1_") {
				token = f
			}
		}
		return append(args, "--join", "https://"+net.JoinHostPort(first.Addr, "4281"), "--join-token", token)
	}
}

// inHost is an HTTP client whose connections are made in h's network
// namespace (to reach its machines from the test).
func inHost(h *harness.Host) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return h.DialTimeout(network, addr, 10*time.Second)
		}}}
}

// hostGet sends GET path to machine m's test app on h (its host) and
// returns the status and body (0 and the error when it failed).
func hostGet(h *harness.Host, m types.Machine, path string) (int, string) {
	resp, err := inHost(h).Get("http://" + net.JoinHostPort(m.PrivateIP, "8080") + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runMachine creates a started test-app machine of app in region through
// h's API and returns it (with the host it was placed on).
func runMachine(t *testing.T, h *harness.Host, app, region, ref string) types.Machine {
	t.Helper()
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}}
	code, body := h.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Config: &cfg, Region: region})
	if code != http.StatusOK {
		t.Fatalf("create a machine of %s in %s: %d %s", app, region, code, body)
	}
	var m types.Machine
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	if code, body := h.Call("GET", "/v1/apps/"+app+"/machines/"+m.ID+"/wait?state=started&timeout=60", nil); code != http.StatusOK {
		t.Fatalf("machine %s did not start: %d %s", m.ID, code, body)
	}
	return m
}

func createApp(t *testing.T, h *harness.Host, app string) {
	t.Helper()
	if code, body := h.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
		t.Fatalf("create app %s: %d %s", app, code, body)
	}
}

// TestClusterDNSAcrossHosts: three hosts (a, b in fra; c in iad) on the
// mesh, with 10ms between the two fra hosts and 80ms between the regions
// on the WireGuard path (harness relays). A machine on a resolves every
// .internal form of an app whose machines are on b and c, fetches c's
// machine by name over the mesh while a capture on the link between hosts
// sees only WireGuard (UDP to its port, no IPv6, never the request), gets
// b's machine as top1.nearest, and reads the measured RTTs in `hosts
// list`; with c's daemon stopped, c's machine leaves the answers.
func TestClusterDNSAcrossHosts(t *testing.T) {
	harness.RequireRoot(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("needs tcpdump (apt-get install tcpdump)")
	}
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts:          []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}, {Name: "c", Region: "iad"}},
		RTT:            map[string]time.Duration{"fra/iad": 80 * time.Millisecond},
		IntraRegionRTT: 10 * time.Millisecond,
		MeshDelay:      true,
		Args:           meshClusterArgs(t),
	})
	a, hc := c.Host("a"), c.Host("c")
	var ref string
	for _, h := range c.Hosts() {
		ref = h.ImportTestApp() // on each host: no fetch between hosts on first use
	}
	createApp(t, a, "xdq")
	createApp(t, a, "xd")
	// Placement: the asker goes to a (a and b tie, a first by id); xd's
	// fra machine then to b (as many machines of xd, more memory free).
	q := runMachine(t, a, "xdq", "fra", ref)
	mb, mc := runMachine(t, a, "xd", "fra", ref), runMachine(t, a, "xd", "iad", ref)
	if q.HostID != "a" || mb.HostID != "b" || mc.HostID != "c" {
		t.Fatalf("placed on %q, %q, %q; want a, b, c", q.HostID, mb.HostID, mc.HostID)
	}
	xdIPs := []string{mb.PrivateIP, mc.PrivateIP}
	slices.Sort(xdIPs)

	resolve := func(name string) ([]string, string) {
		code, body := hostGet(a, q, "/resolve?name="+url.QueryEscape(name))
		if code != http.StatusOK {
			return nil, fmt.Sprint(code, " ", body)
		}
		var out struct{ Addrs []string }
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			return nil, body
		}
		return out.Addrs, body
	}
	txt := func(name string) string {
		code, body := hostGet(a, q, "/resolve?type=txt&name="+url.QueryEscape(name))
		return fmt.Sprint(code, " ", body)
	}
	// Every name answers the other hosts' machines, with their IPv6 only
	// (a machine's IPv4 is local to its host).
	harness.Poll(t, "xd.internal from a's machine lists b's and c's", 30*time.Second, func() (bool, string) {
		got, raw := resolve("xd.internal")
		return slices.Equal(got, xdIPs), raw
	})
	for name, want := range map[string][]string{
		mc.ID + ".vm.xd.internal":      {mc.PrivateIP},
		"iad.xd.internal":              {mc.PrivateIP},
		"app.process.xd.internal":      xdIPs,
		"top1.nearest.of.xd.internal":  {mb.PrivateIP}, // b: same region, 10ms; c: 80ms
		"global.xd.internal":           xdIPs,
		mb.ID + ".vm.xd.internal":      {mb.PrivateIP},
		"top1.nearest.of.xdq.internal": {q.PrivateIP}, // and its IPv4, below
	} {
		got, raw := resolve(name)
		if name == "top1.nearest.of.xdq.internal" {
			got = slices.DeleteFunc(got, func(a string) bool { return !strings.Contains(a, ":") }) // the asker's own IPv4 too: it is on this host
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s = %s, want %v", name, raw, want)
		}
	}
	for name, want := range map[string]string{
		"_apps.internal":      "xd,xdq",
		"regions.xd.internal": "fra,iad",
		"vms.xd.internal":     mc.ID + " iad",
		"_instances.internal": "instance=" + mc.ID + ",app=xd,ip=" + mc.PrivateIP + ",region=iad",
	} {
		if got := txt(name); !strings.Contains(got, want) {
			t.Errorf("TXT %s = %s, want it to hold %q", name, got, want)
		}
	}
	// .flycast answers for an app allocated on another host.
	if code, body := hc.Call("POST", "/v1/apps/xd/ips", types.AllocateIPRequest{Type: "private_v6"}); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("allocate xd's Flycast address on c: %d %s", code, body)
	}
	var ips []types.IPAddress
	if err := hc.Get("/v1/apps/xd/ips", &ips); err != nil || len(ips) == 0 {
		t.Fatalf("xd's addresses: %v %v", ips, err)
	}
	harness.Poll(t, "xd.flycast from a's machine", 15*time.Second, func() (bool, string) {
		got, raw := resolve("xd.flycast")
		return slices.Equal(got, []string{ips[0].Address}), raw
	})

	// The hosts measure the RTT between them over the mesh.
	harness.Poll(t, "a measured its RTT to b and c", 30*time.Second, func() (bool, string) {
		var hs []types.Host
		if err := a.Get("/v1/hosts", &hs); err != nil {
			return false, err.Error()
		}
		rtt := map[string]time.Duration{}
		for _, h := range hs {
			rtt[h.ID] = time.Duration(h.RTTMicros) * time.Microsecond
		}
		ok := rtt["c"] >= 80*time.Millisecond && rtt["b"] >= 10*time.Millisecond && rtt["b"] < rtt["c"]
		return ok, fmt.Sprint(rtt)
	})
	if out, err := a.CLI("hosts", "list"); err != nil || !strings.Contains(out, "RTT") {
		t.Errorf("hosts list: %v\n%s", err, out)
	}

	// a's machine fetches c's by name over the mesh, under a capture of
	// the link between hosts.
	pcap := filepath.Join(t.TempDir(), "fabric.pcap")
	dump := c.FabricCommand("tcpdump", "-Z", "root", "--immediate-mode", "-i", "br0", "-n", "-U", "-s", "0", "-w", pcap)
	dumpErr := &lockedBuffer{}
	dump.Stderr = dumpErr
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	stopDump := func() {
		if dump.Process != nil {
			_ = dump.Process.Signal(syscall.SIGINT)
			_ = dump.Wait()
			dump.Process = nil
		}
	}
	t.Cleanup(stopDump)
	harness.Poll(t, "tcpdump listening", 10*time.Second, func() (bool, string) {
		return strings.Contains(dumpErr.String(), "listening on"), dumpErr.String()
	})
	mark := make([]byte, 8)
	_, _ = rand.Read(mark)
	marker := "xdns-in-clear-" + hex.EncodeToString(mark)
	target := "http://" + mc.ID + ".vm.xd.internal:8080/?" + marker
	code, body := hostGet(a, q, "/fetch?url="+url.QueryEscape(target))
	if code != http.StatusOK || !strings.Contains(body, "machine="+mc.ID) {
		t.Fatalf("fetch %s from a's machine: %d %s", target, code, body)
	}
	count := func(filter string) int {
		out, _ := exec.Command("tcpdump", "-r", pcap, "-n", filter).Output()
		return strings.Count(string(out), "\n")
	}
	wg := fmt.Sprintf("udp port %d", harness.MeshPort)
	// Written as they come (-U); wait for them before stopping.
	harness.Poll(t, "WireGuard packets in the capture", 10*time.Second, func() (bool, string) {
		return count(wg) >= 4, dumpErr.String()
	})
	stopDump()
	raw, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(marker)) {
		t.Fatalf("the request crossed the link between hosts in clear (%q in the capture)", marker)
	}
	if n := count(wg); n < 4 {
		all, _ := exec.Command("tcpdump", "-r", pcap, "-n").CombinedOutput()
		t.Fatalf("%d WireGuard packets in the capture, want the request's and its answer's; tcpdump: %s\ncapture (%d bytes):\n%.3000s", n, dumpErr.String(), len(raw), all)
	}
	if n := count("ip6"); n != 0 {
		t.Fatalf("%d IPv6 packets on the link between hosts: machines' traffic outside the mesh", n)
	}

	// c's daemon stops (its lease released: unreachable at once; its
	// machine runs on, but its state is not known): c's machine leaves
	// the answers, and comes back with the daemon.
	c.StopHost("c")
	harness.Poll(t, "c's machine leaves xd.internal", 30*time.Second, func() (bool, string) {
		got, raw := resolve("xd.internal")
		return !slices.Contains(got, mc.PrivateIP) && slices.Contains(got, mb.PrivateIP), raw
	})
	if got, raw := resolve(mc.ID + ".vm.xd.internal"); len(got) != 0 {
		t.Fatalf("%s.vm.xd.internal with c unreachable = %s", mc.ID, raw)
	}
	c.StartHost("c")
	harness.Poll(t, "c's machine back in xd.internal", 60*time.Second, func() (bool, string) {
		got, raw := resolve("xd.internal")
		return slices.Contains(got, mc.PrivateIP), raw
	})
}

// bridge6 returns a host's machine bridge address (::1 of its /64).
func bridge6(t *testing.T, h *harness.Host) netip.Prefix {
	t.Helper()
	out, err := h.Command("ip", "-6", "-o", "addr", "show", "scope", "global").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: ip addr: %v\n%s", h.Name, err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Bits() == 64 && strings.HasPrefix(f, "fdaa:") {
			return p
		}
	}
	t.Fatalf("%s has no fdaa: /64 address:\n%s", h.Name, out)
	return netip.Prefix{}
}

// linkLocal returns the IPv6 link-local address of a host's link to the
// other hosts.
func linkLocal(t *testing.T, h *harness.Host) string {
	t.Helper()
	out, err := h.Command("ip", "-6", "-o", "addr", "show", "dev", "fab0", "scope", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: ip addr: %v\n%s", h.Name, err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "fe80:") {
			return strings.Split(f, "/")[0]
		}
	}
	t.Fatalf("%s's fab0 has no IPv6 link-local address:\n%s", h.Name, out)
	return ""
}

// TestMeshOrgIsolation: hosts a and b make one cluster (one org's /48),
// x a cluster of its own (another /48), all on one link. b reaches a's
// machine over the mesh; x has no route to it across the mesh, and even
// with routes added by hand on both sides (x to a's /64 and back over the
// link, as a host outside the cluster could), a's nftables table drops
// x's connection at a's host boundary; with the table deleted the same
// connection goes through, so the table is what isolates.
func TestMeshOrgIsolation(t *testing.T) {
	harness.RequireRoot(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}, {Name: "x", Region: "iad"}},
		Args:  meshClusterArgs(t, "x"),
	})
	a, b, x := c.Host("a"), c.Host("b"), c.Host("x")
	ref := a.ImportTestApp()
	createApp(t, a, "iso1")
	qa := runMachine(t, a, "iso1", "fra", ref)
	if qa.HostID != "a" {
		t.Fatalf("iso1's machine is on %q, want a", qa.HostID)
	}
	pa, px := bridge6(t, a), bridge6(t, x)
	if netip.PrefixFrom(pa.Addr(), 48).Masked() == netip.PrefixFrom(px.Addr(), 48).Masked() {
		t.Fatalf("both clusters have the /48 of %s and %s", pa, px)
	}
	want := "machine=" + qa.ID
	harness.Poll(t, "b reaches a's machine over the mesh", 30*time.Second, func() (bool, string) {
		code, body := hostGet(b, qa, "/")
		return code == http.StatusOK && strings.Contains(body, want), fmt.Sprint(code, body)
	})

	// x is no peer of a's mesh: no route to a's machines across it.
	if out, _ := x.Command("ip", "-6", "route", "show", "dev", "hangar-wg").CombinedOutput(); strings.Contains(string(out), pa.Masked().String()) {
		t.Fatalf("x routes a's /64 over its mesh:\n%s", out)
	}
	// Routes by hand over the link, both ways.
	for _, r := range []struct {
		h   *harness.Host
		to  netip.Prefix
		via string
	}{{x, pa.Masked(), linkLocal(t, a)}, {a, px.Masked(), linkLocal(t, x)}} {
		if out, err := r.h.Command("ip", "-6", "route", "add", r.to.String(), "via", r.via, "dev", "fab0").CombinedOutput(); err != nil {
			t.Fatalf("%s: route %s via %s: %v\n%s", r.h.Name, r.to, r.via, err, out)
		}
	}
	fromX := func() (string, error) {
		out, err := x.Command("curl", "-g", "-s", "-m", "3", "--interface", px.Addr().String(),
			"http://"+net.JoinHostPort(qa.PrivateIP, "8080")+"/").CombinedOutput()
		return string(out), err
	}
	for i := 0; i < 3; i++ {
		if out, err := fromX(); err == nil || strings.Contains(out, want) {
			t.Fatalf("x (another org) reached a's machine: %v %s", err, out)
		}
	}
	// The same connection without a's isolation table goes through.
	if out, err := a.Command("nft", "delete", "table", "inet", "hangar_mesh").CombinedOutput(); err != nil {
		t.Fatalf("a: nft delete table: %v\n%s", err, out)
	}
	harness.Poll(t, "x reaches a's machine without the table (the control)", 15*time.Second, func() (bool, string) {
		out, err := fromX()
		return err == nil && strings.Contains(out, want), fmt.Sprint(err, out)
	})
}

// TestMeshJoinLeave: a (fra) and b (iad, 40ms away on the WireGuard path)
// exchange TCP requests over the mesh without pause while a third host, d,
// joins the cluster (and so the mesh: a new peer on both) and leaves it
// again (its daemon stopped): no request between a and b fails.
func TestMeshJoinLeave(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts:     []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "iad"}, {Name: "d", Region: "fra", NoStart: true}},
		RTT:       map[string]time.Duration{"fra/iad": 40 * time.Millisecond},
		MeshDelay: true,
		Args:      meshClusterArgs(t),
	})
	a, b := c.Host("a"), c.Host("b")
	pb := bridge6(t, b)
	ln, err := b.Listen("tcp", net.JoinHostPort(pb.Addr().String(), "7100"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	addr := net.JoinHostPort(pb.Addr().String(), "7100")
	ping := func(msg string) error {
		conn, err := a.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			return err
		}
		if string(got) != msg {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	}
	harness.Poll(t, "a reaches b over the mesh", 30*time.Second, func() (bool, string) {
		err := ping("hello")
		return err == nil, fmt.Sprint(err)
	})

	var sent, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if err := ping(fmt.Sprintf("w%d-%d", w, i)); err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err.Error())
					errMu.Unlock()
				}
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	joining := sent.Load()
	c.StartHost("d")
	d := c.Host("d")
	pd := bridge6(t, d)
	for _, h := range []*harness.Host{a, b} {
		harness.Poll(t, h.Name+" has d as a peer", 30*time.Second, func() (bool, string) {
			out, _ := h.Command("ip", "-6", "route", "show", "dev", "hangar-wg").CombinedOutput()
			return strings.Contains(string(out), pd.Masked().String()), string(out)
		})
	}
	// d measures its RTT to a and b over the mesh (and they to it): it is
	// a full member; traffic between a and b went on meanwhile.
	harness.Poll(t, "a reads its RTT to d", 30*time.Second, func() (bool, string) {
		var hs []types.Host
		if err := a.Get("/v1/hosts", &hs); err != nil {
			return false, err.Error()
		}
		for _, h := range hs {
			if h.ID == "d" && h.RTTMicros > 0 {
				return true, ""
			}
		}
		return false, fmt.Sprint(hs)
	})
	before := sent.Load()
	if before == joining {
		t.Fatal("no request between a and b while d joined")
	}
	c.StopHost("d")
	harness.Poll(t, "more requests after d left", 30*time.Second, func() (bool, string) {
		return sent.Load() > before+20, fmt.Sprint(sent.Load())
	})
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests between a and b failed while d joined and left: %v", n, sent.Load(), errs)
	}
	t.Logf("%d requests between a and b, none failed", sent.Load())
}
