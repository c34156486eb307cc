package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/harness/netdelay"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
)

// Ports every host's daemon listens on, at its fabric address (each host
// has its own network namespace, so they are the same on all).
const (
	HostAPIPort  = 4280
	HostHTTPPort = 8080
	// MeshPort is the daemons' WireGuard port (mesh.DefaultPort), which
	// ClusterOptions.MeshDelay relays.
	MeshPort = 51820
)

// ClusterOptions describe a cluster of hosts for StartCluster.
type ClusterOptions struct {
	// Hosts are started in this order (at most 16).
	Hosts []HostSpec
	// RTT is the round-trip time between two regions, keyed "fra/iad"
	// (either order), for the relays of Relay. Regions not named have
	// none; hosts of one region have IntraRegionRTT.
	RTT map[string]time.Duration
	// IntraRegionRTT is the round-trip time between two hosts of one
	// region through a relay (default none).
	IntraRegionRTT time.Duration
	// MeshDelay puts a Relay on the path between every two hosts'
	// WireGuard ports (MeshPort/udp) with the RTT of their regions (RTT,
	// IntraRegionRTT; pairs with none go direct): an nftables DNAT in
	// each host's namespace sends its packets for another host's port to
	// the relay, so the mesh (and what is measured over it) sees the
	// latency while every host still publishes its own address.
	MeshDelay bool
	// Etcd starts a single-member etcd on the fabric's gateway (in the
	// test process) and gives every host `--etcd-endpoints` for it: the
	// shared state that exists before the cluster's own embedded etcd.
	Etcd bool
	// Args, if set, returns more `hangar server` flags for a host. It is
	// called at the host's first start, once every host has its address,
	// so flags can name other hosts (a join URL, an advertise address);
	// hosts start in order, so it may also ask an earlier, running host
	// (for a join token, say).
	Args func(c *Cluster, h *Host) []string
}

// HostSpec is one host of a cluster.
type HostSpec struct {
	Name   string // short, [a-z0-9]: a, b, fra1…
	Region string // its --region
	// ExtraArgs are more `hangar server` flags for this host.
	ExtraArgs []string
	// NoStart makes the host (namespace, link, data dir) without starting
	// its daemon: StartHost starts it later (a host that joins).
	NoStart bool
}

// Cluster is a set of hosts, each a `hangar server` in a network
// namespace of its own, joined by a fabric (a bridge in a namespace of its
// own) that the test process in the root namespace also reaches: the
// test calls every host's API and proxy at its fabric address, as a
// client outside the cluster would. See fabric.go for the layout.
type Cluster struct {
	t   testing.TB
	bin string
	s   *runState
	// Gateway is the root namespace's address on the fabric: hosts reach
	// the test process (its relays, its etcd) there.
	Gateway string
	// EtcdEndpoints are the client URLs of the etcd of ClusterOptions.Etcd.
	EtcdEndpoints []string
	opts          ClusterOptions
	hosts         []*Host

	mu     sync.Mutex // guards relays and closed
	relays []*netdelay.Relay
	closed bool
}

// Host is one host of a cluster: a Daemon (API, proxy, CLI helpers of a
// single daemon) in its own network namespace, at its own fabric address.
type Host struct {
	*Daemon
	Name   string
	Region string
	// Addr is the host's IPv4 address on the fabric.
	Addr string
	// Netns is the host's network namespace (under /run/netns).
	Netns string
	c     *Cluster
	spec  HostSpec
	port  string // its port on the fabric bridge
	// crashed is set by KillHost: what the host leaves behind is then
	// expected, not a test's fault.
	crashed bool
}

// StartCluster makes the fabric and one namespace per host, starts each
// host's daemon (but those with NoStart), and removes all of it when the
// test ends, even if it fails or panics. It first removes what earlier
// runs whose test process died left behind.
func StartCluster(t testing.TB, bin string, opts ClusterOptions) *Cluster {
	t.Helper()
	RequireRoot(t)
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("a cluster needs %s: apt-get install -y iproute2 util-linux", tool)
		}
	}
	if len(opts.Hosts) == 0 || len(opts.Hosts) > 16 {
		t.Fatalf("cluster: %d hosts (want 1 to 16)", len(opts.Hosts))
	}
	if removed := forceCleanupLeftovers(); len(removed) > 0 {
		t.Logf("cluster: removed what earlier runs left: %s", strings.Join(removed, ", "))
	}
	idb := make([]byte, 3)
	if _, err := rand.Read(idb); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(idb)
	dir, err := os.MkdirTemp("", runDirPrefix+id+"-")
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	subnet, err := pickSubnet()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("cluster: %v", err)
	}
	s := &runState{
		ID: id, PID: os.Getpid(), PIDStart: procStart(os.Getpid()),
		FabricNS: fabricNSPrefix + id, RootLink: rootLinkPrefix + id, Subnet: subnet, RunDir: dir,
		CreatedAt: time.Now().UTC().Format(time.RFC3339),
	}
	c := &Cluster{t: t, bin: bin, s: s, Gateway: subnet + ".1", opts: opts}
	seen := map[string]bool{}
	for i, spec := range opts.Hosts {
		if spec.Name == "" || seen[spec.Name] || strings.ContainsAny(spec.Name, "/- ") {
			t.Fatalf("cluster: bad or repeated host name %q", spec.Name)
		}
		seen[spec.Name] = true
		h := &Host{
			Name: spec.Name, Region: spec.Region, spec: spec, c: c,
			Addr:  fmt.Sprintf("%s.%d", subnet, 10+i),
			Netns: hostNSPrefix + id + "-" + spec.Name,
			port:  fmt.Sprintf("%s%s%x", portPrefix, id, i),
		}
		c.hosts = append(c.hosts, h)
		s.HostNS = append(s.HostNS, h.Netns)
	}
	// Recorded before anything is made: a run that dies from here on is
	// found and removed by the next one.
	if err := s.save(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("cluster: %v", err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if err := makeFabric(s); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	for _, h := range c.hosts {
		if err := addHostNS(s, h.Netns, h.port, h.Addr); err != nil {
			t.Fatalf("cluster: %v", err)
		}
		if err := c.newDaemon(h); err != nil {
			t.Fatalf("cluster: %v", err)
		}
	}
	if err := s.save(); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	if opts.MeshDelay {
		c.delayMesh()
	}
	if opts.Etcd {
		// Its t.Cleanup runs after the cluster's (registered below), so
		// the daemons can still delete their apps then.
		c.EtcdEndpoints = etcdtest.StartOn(t, c.Gateway)
	}
	t.Cleanup(c.Close)
	ok = true
	for _, h := range c.hosts {
		if !h.spec.NoStart {
			c.StartHost(h.Name)
		}
	}
	return c
}

// newDaemon prepares a host's daemon: its data dir in the run dir, a
// random machine bridge and subnets, its listeners on its fabric address.
func (c *Cluster) newDaemon(h *Host) error {
	dataDir := filepath.Join(c.s.RunDir, h.Name)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	logf, err := os.Create(filepath.Join(c.s.RunDir, h.Name+".log"))
	if err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	bridge := fmt.Sprintf("hge%04x", mrand.Intn(0xffff))
	c.s.DataDirs = append(c.s.DataDirs, dataDir)
	c.s.Bridges = append(c.s.Bridges, bridge)
	h.Daemon = &Daemon{t: c.t, bin: c.bin, DataDir: dataDir, logf: logf, netns: h.Netns, startTimeout: 60 * time.Second}
	return nil
}

// hostArgs are the `hangar server` flags of a host.
func (c *Cluster) hostArgs(h *Host) []string {
	i := 0
	for j, o := range c.hosts {
		if o == h {
			i = j
		}
	}
	region := h.Region
	if region == "" {
		region = "tst"
	}
	args := []string{"server", "--data-dir", h.DataDir,
		"--api-listen", net.JoinHostPort(h.Addr, fmt.Sprint(HostAPIPort)),
		"--http-listen", net.JoinHostPort(h.Addr, fmt.Sprint(HostHTTPPort)),
		"--metrics-listen", "127.0.0.1:0", // never the default port, whatever namespace the host is in
		"--domain", "test.internal", "--region", region, "--bridge", c.s.Bridges[i],
		// Each host's machines get their own subnets, as they will need
		// to be routable between hosts.
		"--subnet", fmt.Sprintf("10.%d.%d.0/24", 100+mrand.Intn(50), 20+i),
		"--subnet6", fmt.Sprintf("fdaa:0:%x::/64", 0x1000+mrand.Intn(0xe000))}
	if c.opts.Etcd {
		args = append(args, "--etcd-endpoints", strings.Join(c.EtcdEndpoints, ","))
	}
	args = append(args, h.spec.ExtraArgs...)
	if c.opts.Args != nil {
		args = append(args, c.opts.Args(c, h)...)
	}
	return args
}

// Hosts returns the cluster's hosts in the order given.
func (c *Cluster) Hosts() []*Host { return c.hosts }

// Host returns the host named name, failing the test if there is none.
func (c *Cluster) Host(name string) *Host {
	for _, h := range c.hosts {
		if h.Name == name {
			return h
		}
	}
	c.t.Fatalf("cluster: no host %q", name)
	return nil
}

// ID is the run's id, part of every name the cluster gives (namespaces,
// links, its run dir).
func (c *Cluster) ID() string { return c.s.ID }

// StartHost starts a host's daemon (one made with NoStart, or one that
// was stopped or killed) and waits until it serves its API.
func (c *Cluster) StartHost(name string) {
	c.t.Helper()
	h := c.stoppedHost(name)
	h.crashed = false
	h.Start()
}

// stoppedHost returns host name, which must not run, with its flags.
func (c *Cluster) stoppedHost(name string) *Host {
	c.t.Helper()
	h := c.Host(name)
	if h.running() {
		c.t.Fatalf("cluster: host %s is running", name)
	}
	if h.args == nil {
		// The flags are fixed at the first start: the data dir knows
		// its bridge and subnets from then on.
		h.args = c.hostArgs(h)
	}
	return h
}

// StartHostFails starts a host's daemon expecting it to refuse to run:
// it returns the daemon's output once the process exits, and fails the
// test (killing it) if it still runs after timeout.
func (c *Cluster) StartHostFails(name string, timeout time.Duration) string {
	c.t.Helper()
	h := c.stoppedHost(name)
	cmd := h.command(h.args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start host %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			c.t.Fatalf("host %s's daemon exited 0; want a refusal:\n%s", name, out.String())
		}
		return out.String()
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		c.t.Fatalf("host %s's daemon still ran after %v; want a refusal:\n%s", name, timeout, out.String())
		return ""
	}
}

// StopHost stops a host's daemon with SIGTERM, as an operator would: its
// machines keep running.
func (c *Cluster) StopHost(name string) {
	c.t.Helper()
	c.Host(name).Stop(syscall.SIGTERM)
}

// RestartHost stops a host's daemon (SIGTERM) if it runs, and starts it.
func (c *Cluster) RestartHost(name string) {
	c.t.Helper()
	c.StopHost(name)
	c.StartHost(name)
}

// KillHost crashes a host: every process in its network namespace (the
// daemon, the machines' shims) and every container of its machines gets
// SIGKILL. What the machines leave on disk and in the kernel (runtime
// state, mounts, their namespaces) stays, as after a power loss, for a
// restarted daemon to find; the cluster's cleanup removes it.
func (c *Cluster) KillHost(name string) {
	c.t.Helper()
	h := c.Host(name)
	h.crashed = true
	killNS(h.Netns)
	killTasks(h.DataDir)
	if h.cmd != nil {
		_ = h.cmd.Wait()
		h.cmd = nil
	}
	h.pid = 0
}

// LinkDown cuts a host off the fabric: its port on the bridge goes down,
// so it reaches no other host and the root namespace reaches it no more.
// Its daemon and machines keep running.
func (c *Cluster) LinkDown(name string) {
	c.t.Helper()
	if err := setPort(c.s, c.Host(name).port, false); err != nil {
		c.t.Fatalf("cluster: link down %s: %v", name, err)
	}
}

// LinkUp puts a host back on the fabric.
func (c *Cluster) LinkUp(name string) {
	c.t.Helper()
	if err := setPort(c.s, c.Host(name).port, true); err != nil {
		c.t.Fatalf("cluster: link up %s: %v", name, err)
	}
}

// RegionRTT returns the configured round-trip time between two regions.
func (c *Cluster) RegionRTT(a, b string) time.Duration {
	if a == b {
		return c.opts.IntraRegionRTT
	}
	if d, ok := c.opts.RTT[a+"/"+b]; ok {
		return d
	}
	return c.opts.RTT[b+"/"+a]
}

// Relay starts a relay in the test process, on the fabric's gateway, that
// forwards proto ("udp" or "tcp") traffic to port on host to with the RTT
// between from's and to's regions, and returns the address host from
// should send to instead of to's. (Issue 15's WireGuard endpoints point
// there.) It is closed with the cluster.
func (c *Cluster) Relay(from, to, proto string, port int) string {
	c.t.Helper()
	rtt := c.RegionRTT(c.Host(from).Region, c.Host(to).Region)
	target := net.JoinHostPort(c.Host(to).Addr, fmt.Sprint(port))
	listen := net.JoinHostPort(c.Gateway, "0")
	var r *netdelay.Relay
	var err error
	switch proto {
	case "udp":
		r, err = netdelay.ListenUDP(listen, target, rtt)
	case "tcp":
		r, err = netdelay.ListenTCP(listen, target, rtt)
	default:
		err = fmt.Errorf("protocol %q (want udp or tcp)", proto)
	}
	if err != nil {
		c.t.Fatalf("cluster: relay %s→%s: %v", from, to, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		r.Close()
		c.t.Fatal("cluster: relay on a closed cluster")
	}
	c.relays = append(c.relays, r)
	return r.Addr.String()
}

// delayMesh starts a UDP relay for every ordered pair of hosts whose
// regions have an RTT and sends the first host's WireGuard packets for the
// second there (nftables DNAT in the output hook of its namespace; the
// table goes with the namespace). Replies come back through the relay
// and conntrack makes them read as from the other host, so WireGuard's
// endpoints stay the hosts' own addresses.
func (c *Cluster) delayMesh() {
	c.t.Helper()
	for _, from := range c.hosts {
		var rules strings.Builder
		for _, to := range c.hosts {
			if to == from || c.RegionRTT(from.Region, to.Region) <= 0 {
				continue
			}
			relay := c.Relay(from.Name, to.Name, "udp", MeshPort)
			fmt.Fprintf(&rules, "\t\tip daddr %s udp dport %d dnat to %s\n", to.Addr, MeshPort, relay)
		}
		if rules.Len() == 0 {
			continue
		}
		ruleset := "table ip hangar_meshdelay {\n\tchain out {\n\t\ttype nat hook output priority -100; policy accept;\n" + rules.String() + "\t}\n}\n"
		cmd := from.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(ruleset)
		if out, err := cmd.CombinedOutput(); err != nil {
			c.t.Fatalf("cluster: mesh delay on %s: nft: %v\n%s\n%s", from.Name, err, out, ruleset)
		}
	}
}

// ExtraArgs returns the host's HostSpec.ExtraArgs.
func (h *Host) ExtraArgs() []string { return h.spec.ExtraArgs }

// Command returns a command that runs in host h's network namespace only
// (its mounts, cgroups and pids are the test machine's).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + netnsPath(h.Netns), "--", name}, args...)...)
}

// FabricCommand returns a command that runs in the fabric's namespace,
// where the bridge br0 carries all traffic between hosts (to capture it,
// say: tcpdump -i br0).
func (c *Cluster) FabricCommand(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + netnsPath(c.s.FabricNS), "--", name}, args...)...)
}

// CLI runs `hangar args…` in the host's network namespace against its own
// daemon (HANGAR_DATA_DIR: its API address and admin token).
func (h *Host) CLI(args ...string) (string, error) { return h.Hangar(args...) }

// APIURL is the host's API, e.g. http://10.201.0.10:4280, reachable from
// the root namespace and every host on the fabric.
func (h *Host) APIURL() string {
	return "http://" + net.JoinHostPort(h.Addr, fmt.Sprint(HostAPIPort))
}

// HTTPURL is the host's HTTP proxy.
func (h *Host) HTTPURL() string {
	return "http://" + net.JoinHostPort(h.Addr, fmt.Sprint(HostHTTPPort))
}

// AdminToken reads the host's admin API token from its data dir.
func (h *Host) AdminToken() string {
	b, err := os.ReadFile(filepath.Join(h.DataDir, "admin-token"))
	if err != nil {
		h.c.t.Fatalf("host %s: admin token: %v", h.Name, err)
	}
	return strings.TrimSpace(string(b))
}

// Answers reports whether the host's API answers an authenticated GET
// /v1/apps with 200 within timeout (an error says why not).
func (h *Host) Answers(timeout time.Duration) error {
	req, err := http.NewRequest("GET", h.APIURL()+"/v1/apps", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.Token)
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("host %s: GET /v1/apps: %s", h.Name, resp.Status)
	}
	return nil
}

// Close tears the cluster down: it deletes every app through each
// running host's API, stops the daemons, removes what is left of their
// machines by force (reporting it for hosts that were not crashed), closes
// the relays and removes every namespace, link, mount and directory the
// run made. StartCluster registers it with t.Cleanup; a test may call it
// earlier, to check that nothing is left (Leftovers).
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	relays := c.relays
	c.relays = nil
	c.mu.Unlock()
	t := c.t
	// Hosts a test cut off are put back, so their daemons can delete
	// their apps.
	for _, h := range c.hosts {
		if !linkExists(c.s.FabricNS, h.port) {
			continue // the run was made only in part
		}
		if err := setPort(c.s, h.port, true); err != nil {
			t.Errorf("cleanup: link up %s: %v", h.Name, err)
		}
	}
	// The cleanup must go on whatever a host does: API calls are
	// bounded, and a daemon that does not stop in time is killed.
	for _, h := range c.hosts {
		if h.Daemon != nil && h.running() {
			if err := h.Answers(10 * time.Second); err != nil {
				t.Errorf("cleanup: %v; its machines are removed by force", err)
				continue
			}
			h.deleteApps(t)
		}
	}
	// All at once, as a cluster that goes down: stopped one by one, the
	// last voters lose their quorum first, and a daemon without quorum
	// takes long to stop (its lock's and leases' releases wait on etcd).
	var wg sync.WaitGroup
	for _, h := range c.hosts {
		if h.Daemon != nil && h.running() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.Stop(syscall.SIGTERM)
			}()
		}
	}
	wg.Wait()
	for _, h := range c.hosts {
		if h.Daemon != nil {
			h.forceCleanup(t, !h.crashed)
		}
	}
	for _, r := range relays {
		r.Close()
	}
	if t.Failed() {
		for _, h := range c.hosts {
			if h.Daemon == nil {
				continue
			}
			b, _ := os.ReadFile(h.logf.Name())
			t.Logf("host %s (%s, %s) daemon log:\n%s", h.Name, h.Region, h.Addr, b)
		}
	}
	for _, h := range c.hosts {
		if h.Daemon != nil {
			h.logf.Close()
			h.checkMachineNetns(t)
		}
	}
	for _, err := range teardown(c.s) {
		t.Errorf("cleanup: %v", err)
	}
}

// Leftovers lists what of the cluster is still on the machine: its
// namespaces, its root link, processes in its namespaces, mounts and
// directories. After Close it must be empty.
func (c *Cluster) Leftovers() []string { return leftovers(c.s) }

// PIDs returns the processes in the host's network namespace: its
// daemon, its machines' shims, commands run with Command.
func (h *Host) PIDs() []int { return nsPIDs(h.Netns) }

// Dial connects from inside the host's network namespace, as a process on
// the host would (the socket is made on a thread that entered it).
func (h *Host) Dial(network, address string) (net.Conn, error) {
	return h.DialTimeout(network, address, 10*time.Second)
}

// DialTimeout is Dial with a timeout of the caller's.
func (h *Host) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := h.inNetns(func() error {
		var err error
		conn, err = net.DialTimeout(network, address, timeout)
		return err
	})
	return conn, err
}

// Listen opens a stream listener (e.g. "tcp", "10.201.0.10:0") inside the
// host's network namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.inNetns(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket (e.g. "udp", "10.201.0.10:0") inside
// the host's network namespace.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.inNetns(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// inNetns runs f on an OS thread that entered the host's network
// namespace. Sockets made by f stay in that namespace after it returns.
func (h *Host) inNetns(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with this goroutine
		// instead of going back to the pool in another namespace.
		runtime.LockOSThread()
		ns, err := os.Open(netnsPath(h.Netns))
		if err != nil {
			errc <- fmt.Errorf("host %s: %w", h.Name, err)
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("host %s: enter network namespace: %w", h.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
