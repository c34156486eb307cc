package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	mrand "math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A cluster's network, as the kernel sees it:
//
//	root ns:   hgr<id> 10.R.0.1/24 (the test process, relays, an etcd)
//	             │ veth
//	fabric ns: hgf-<id>: bridge br0 ── gw ── hgv<id><i> (one port per host)
//	             │ veth                         │
//	host ns:   hgh-<id>-<name>: fab0 10.R.0.(10+i)/24, lo
//
// The bridge is in a namespace of its own so that the root namespace's
// firewall (bridge-nf-call-iptables, a FORWARD policy of DROP) never sees
// the traffic between hosts. Host namespaces have no default route: they
// reach the fabric and nothing else.
//
// Every name carries the run's id, and $TMPDIR/hangar-cluster-<id>-*/run.json
// records the run (the test process's pid and start time, every name, the
// data dirs) before anything is made, so that a later run finds what a
// crashed one left (forceCleanupLeftovers) without touching a run that is
// still going.

// runDirPrefix starts the directory of each cluster run: its run.json and
// its hosts' data dirs.
const runDirPrefix = "hangar-cluster-"

// Name prefixes of a run's network namespaces and links.
const (
	hostNSPrefix   = "hgh-" // hgh-<id>-<host>
	fabricNSPrefix = "hgf-" // hgf-<id>
	rootLinkPrefix = "hgr"  // hgr<id>, the root's end of the link to the fabric
	portPrefix     = "hgv"  // hgv<id><i>, a host's port on the fabric bridge
)

// runState is what run.json records about one cluster run.
type runState struct {
	ID        string   `json:"id"`
	PID       int      `json:"pid"`
	PIDStart  string   `json:"pid_start"` // field 22 of /proc/<pid>/stat
	FabricNS  string   `json:"fabric_ns"`
	RootLink  string   `json:"root_link"`
	Subnet    string   `json:"subnet"` // 10.R.0
	HostNS    []string `json:"host_ns"`
	DataDirs  []string `json:"data_dirs"`
	RunDir    string   `json:"run_dir"`
	Bridges   []string `json:"bridges"` // the hosts' machine bridges (in their namespaces)
	CreatedAt string   `json:"created_at"`
}

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// run runs a command and returns an error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// inNS runs a command in network namespace ns.
func inNS(ns, name string, args ...string) error {
	return run("nsenter", append([]string{"--net=" + netnsPath(ns), "--", name}, args...)...)
}

// procStart returns the start time of pid (field 22 of /proc/<pid>/stat),
// which tells a live owner from a later process that got the same pid.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// alive reports whether the run's test process still runs.
func (s *runState) alive() bool {
	return s.PID > 0 && procStart(s.PID) != "" && procStart(s.PID) == s.PIDStart
}

func (s *runState) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.RunDir, "run.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("record cluster run: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.RunDir, "run.json")); err != nil {
		return fmt.Errorf("record cluster run: %w", err)
	}
	return nil
}

// tenNet matches the second byte of a 10.x.y.z address or prefix.
var tenNet = regexp.MustCompile(`\b10\.(\d{1,3})\.`)

// pickSubnet returns a 10.R.0 prefix (R from 200 to 249) that no address
// or route of the root namespace uses, nor another run's record.
func pickSubnet() (string, error) {
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	addrs, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	taken := map[string]bool{}
	for _, m := range tenNet.FindAllStringSubmatch(string(routes)+"\n"+string(addrs), -1) {
		taken[m[1]] = true
	}
	for _, r := range listRuns() {
		if m := tenNet.FindStringSubmatch(r.Subnet + "."); m != nil {
			taken[m[1]] = true
		}
	}
	for _, i := range mrand.Perm(50) {
		if r := strconv.Itoa(200 + i); !taken[r] {
			return "10." + r + ".0", nil
		}
	}
	return "", fmt.Errorf("no free 10.2xx.0.0/24 for the fabric: all of 10.200-249 are in use")
}

// makeFabric creates the fabric namespace, its bridge and the root's link
// to it (gateway .1).
func makeFabric(s *runState) error {
	if err := run("ip", "netns", "add", s.FabricNS); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "link", "set", "br0", "up"},
	}
	for _, st := range steps {
		if err := inNS(s.FabricNS, st[0], st[1:]...); err != nil {
			return fmt.Errorf("fabric: %w", err)
		}
	}
	// The root's end keeps its name; the other end goes into the fabric.
	if err := run("ip", "link", "add", s.RootLink, "type", "veth", "peer", "name", s.RootLink+"p"); err != nil {
		return fmt.Errorf("fabric: %w", err)
	}
	if err := run("ip", "link", "set", s.RootLink+"p", "netns", s.FabricNS); err != nil {
		return fmt.Errorf("fabric: %w", err)
	}
	for _, st := range [][]string{
		{"ip", "link", "set", s.RootLink + "p", "name", "gw"},
		{"ip", "link", "set", "gw", "master", "br0"},
		{"ip", "link", "set", "gw", "up"},
	} {
		if err := inNS(s.FabricNS, st[0], st[1:]...); err != nil {
			return fmt.Errorf("fabric: %w", err)
		}
	}
	for _, st := range [][]string{
		{"ip", "addr", "add", s.Subnet + ".1/24", "dev", s.RootLink},
		{"ip", "link", "set", s.RootLink, "up"},
	} {
		if err := run(st[0], st[1:]...); err != nil {
			return fmt.Errorf("fabric: %w", err)
		}
	}
	return nil
}

// addHostNS creates a host's namespace with its link to the fabric
// (fab0, addr/24) and the fabric's port for it.
func addHostNS(s *runState, ns, port, addr string) error {
	if err := run("ip", "netns", "add", ns); err != nil {
		return err
	}
	if err := inNS(s.FabricNS, "ip", "link", "add", port, "type", "veth", "peer", "name", port+"h"); err != nil {
		return fmt.Errorf("host %s: %w", ns, err)
	}
	if err := inNS(s.FabricNS, "ip", "link", "set", port+"h", "netns", ns); err != nil {
		return fmt.Errorf("host %s: %w", ns, err)
	}
	for _, st := range [][]string{
		{"ip", "link", "set", port, "master", "br0"},
		{"ip", "link", "set", port, "up"},
	} {
		if err := inNS(s.FabricNS, st[0], st[1:]...); err != nil {
			return fmt.Errorf("host %s: %w", ns, err)
		}
	}
	for _, st := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", port + "h", "name", "fab0"},
		{"ip", "addr", "add", addr + "/24", "dev", "fab0"},
		{"ip", "link", "set", "fab0", "up"},
	} {
		if err := inNS(ns, st[0], st[1:]...); err != nil {
			return fmt.Errorf("host %s: %w", ns, err)
		}
	}
	return nil
}

// setPort sets a host's port on the fabric bridge up or down: down, the
// host's fab0 loses its carrier and the host is cut off from every other
// host and from the root namespace.
func setPort(s *runState, port string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return inNS(s.FabricNS, "ip", "link", "set", port, state)
}

// NetnsPIDs returns the processes whose network namespace is ns (a name
// under /run/netns): a host's with Host.PIDs, a machine's as
// "hangar-<machine id>".
func NetnsPIDs(ns string) []int { return nsPIDs(ns) }

// nsPIDs returns the processes whose network namespace is ns.
func nsPIDs(ns string) []int {
	var st syscall.Stat_t
	if err := syscall.Stat(netnsPath(ns), &st); err != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && l == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// runPIDs returns the live processes (not zombies) whose command line or
// environment names the run's dir: its daemons (--data-dir), their shims
// (their config), CLIs. The dir's name is random, so no other run's
// process matches.
func runPIDs(s *runState) []int {
	if s.RunDir == "" {
		return nil
	}
	dir := []byte(s.RunDir + "/")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if (bytes.Contains(cmdline, dir) || bytes.Contains(environ, dir)) && !waitGone(pid, 0) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killNS kills every process in network namespace ns with SIGKILL and
// waits (bounded) until they are gone.
func killNS(ns string) {
	for range 50 {
		pids := nsPIDs(ns)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range pids {
			waitGone(pid, 2*time.Second)
		}
	}
}

// killTasks kills the processes of every container in a data dir's
// runtime state, as a power loss would; their state and mounts stay.
func killTasks(dataDir string) {
	tasks := filepath.Join(dataDir, "tasks")
	entries, _ := os.ReadDir(tasks)
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		for _, rt := range []string{"crun", "runc"} {
			_ = exec.Command(rt, "--root", filepath.Join(tasks, ".oci-state"), "kill", "--all", e.Name(), "KILL").Run()
		}
	}
}

// teardown removes everything a run made: processes in its namespaces,
// containers, mounts and machine namespaces of its data dirs, its
// namespaces and links, and its run dir. It is safe to call twice and on a
// run that was made only in part.
func teardown(s *runState) []error {
	var errs []error
	for _, ns := range s.HostNS {
		killNS(ns)
	}
	// Also by what they run on: a process whose namespace's name is
	// gone is still found.
	for range 50 {
		pids := runPIDs(s)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 2*time.Second)
		}
	}
	// The shims died with their host's namespace's processes above.
	for _, dir := range s.DataDirs {
		removeMachines(dir, false)
	}
	for _, ns := range append(append([]string(nil), s.HostNS...), s.FabricNS) {
		if _, err := os.Stat(netnsPath(ns)); err != nil {
			continue
		}
		killNS(ns)
		if err := run("ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if linkExists("", s.RootLink) {
		// The kernel removes it by itself once the fabric's namespace
		// (its peer's) is gone, maybe between the check and the delete.
		if err := run("ip", "link", "delete", s.RootLink); err != nil && linkExists("", s.RootLink) {
			errs = append(errs, err)
		}
	}
	// Mounts left under the run dir (a machine's rootfs the runtime did
	// not unmount) would make RemoveAll fail.
	for _, m := range mountsUnder(s.RunDir) {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if s.RunDir != "" && strings.Contains(filepath.Base(s.RunDir), runDirPrefix) {
		if err := os.RemoveAll(s.RunDir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.RunDir, err))
		}
	}
	return errs
}

func linkExists(ns, name string) bool {
	args := []string{"link", "show", name}
	if ns == "" {
		return exec.Command("ip", args...).Run() == nil
	}
	return inNS(ns, "ip", args...) == nil
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	if dir == "" {
		return nil
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			ms = append(ms, f[4])
		}
	}
	for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 {
		ms[i], ms[j] = ms[j], ms[i]
	}
	return ms
}

// listRuns returns the records of every cluster run on this machine.
func listRuns() []*runState {
	paths, _ := filepath.Glob(filepath.Join(os.TempDir(), runDirPrefix+"*", "run.json"))
	var runs []*runState
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var s runState
		if json.Unmarshal(b, &s) == nil && s.ID != "" {
			runs = append(runs, &s)
		}
	}
	return runs
}

// forceCleanupLeftovers removes what earlier cluster runs left behind
// when their test process died (a panic in another goroutine, a timeout, a
// kill): every run whose owner is gone, and namespaces and links with the
// cluster prefixes that belong to no live run. It returns what it removed.
func forceCleanupLeftovers() []string {
	var removed []string
	live := map[string]bool{}
	for _, s := range listRuns() {
		if s.alive() {
			live[s.ID] = true
			continue
		}
		removed = append(removed, "run "+s.ID)
		teardown(s)
	}
	// Names of runs that died before their record was complete, or
	// whose run dir is gone.
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := f[0]
		var id string
		switch {
		case strings.HasPrefix(name, hostNSPrefix):
			id, _, _ = strings.Cut(strings.TrimPrefix(name, hostNSPrefix), "-")
		case strings.HasPrefix(name, fabricNSPrefix):
			id = strings.TrimPrefix(name, fabricNSPrefix)
		default:
			continue
		}
		if live[id] {
			continue
		}
		killNS(name)
		if run("ip", "netns", "delete", name) == nil {
			removed = append(removed, "netns "+name)
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if !strings.HasPrefix(name, rootLinkPrefix) || len(name) != len(rootLinkPrefix)+6 || live[strings.TrimPrefix(name, rootLinkPrefix)] {
			continue
		}
		if run("ip", "link", "delete", name) == nil {
			removed = append(removed, "link "+name)
		}
	}
	return removed
}

// leftovers lists what of run s is still there: namespaces, links,
// processes in its namespaces, mounts under its run dir, the run dir.
func leftovers(s *runState) []string {
	var l []string
	for _, ns := range append(append([]string(nil), s.HostNS...), s.FabricNS) {
		if _, err := os.Stat(netnsPath(ns)); err == nil {
			l = append(l, "network namespace "+ns)
		}
	}
	if linkExists("", s.RootLink) {
		l = append(l, "link "+s.RootLink)
	}
	for _, pid := range runPIDs(s) {
		l = append(l, fmt.Sprintf("process %d", pid))
	}
	for _, m := range mountsUnder(s.RunDir) {
		l = append(l, "mount "+m)
	}
	if _, err := os.Stat(s.RunDir); err == nil {
		l = append(l, "run dir "+s.RunDir)
	}
	return l
}
