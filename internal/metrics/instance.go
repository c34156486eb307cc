package metrics

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Instance is one machine as the instance series and the app metrics
// scraper need it (the daemon fills it from the supervisor's records).
type Instance struct {
	App, ID, Region, ProcessGroup string
	// Running: a task runs (state started); its cgroup is read.
	Running bool
	// Down: not running after an exit no one asked for (a crash, an
	// OOM kill, a failed start): fly_instance_up is 0. A machine stopped
	// by a user or by autostop has no fly_instance_up series.
	Down bool
	// CPUs and MemoryMB are its guest size.
	CPUs, MemoryMB int
	// Addr is its private address, for the app's [metrics].
	Addr    string
	Metrics *types.MachineMetrics
	// LastExit is its last exit, if it ever exited.
	LastExit *Exit
	// Mounts are the paths its volumes are mounted at inside it
	// (fly_instance_filesystem_* reports them beside its root, "/").
	Mounts []string
}

// Exit is a machine's last exit.
type Exit struct {
	Code int
	OOM  bool
}

// Instances lists the machines of this host.
type Instances func(ctx context.Context) ([]Instance, error)

// CgroupFS says where the machines' cgroups and processes are: the
// runtime puts machine <id> in the cgroup "hangar/<id>".
type CgroupFS struct {
	// Root is the cgroup mount (/sys/fs/cgroup); Proc is /proc.
	Root, Proc string
	// V2: the unified hierarchy (else v1, one directory per controller).
	V2 bool
}

// HostCgroupFS is this host's layout.
func HostCgroupFS() CgroupFS {
	fs := CgroupFS{Root: "/sys/fs/cgroup", Proc: "/proc"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		fs.V2 = true
	}
	return fs
}

func (fs CgroupFS) dir(controller, id string) string {
	if fs.V2 {
		return filepath.Join(fs.Root, "hangar", id)
	}
	return filepath.Join(fs.Root, controller, "hangar", id)
}

// InstanceCollector serves Fly's fly_instance_* series of the machines of
// this host. Sample (every LoadInterval from Run) reads their cgroups and
// network namespaces and updates their load averages; a scrape writes the
// last sample, so that it reads no file.
type InstanceCollector struct {
	list Instances
	fs   CgroupFS
	now  func() time.Time

	mu   sync.Mutex // guards load and last
	load map[string]*loadAvg
	last []instSample
}

// instSample is one machine at the last Sample.
type instSample struct {
	in   Instance
	s    sample
	ok   bool // its cgroup was read
	load [3]float64
}

// memNames are the fly_instance_memory_* series Hangar reports.
var memNames = []string{"mem_total", "mem_free", "mem_available", "buffers", "cached", "swap_cached", "active", "inactive",
	"swap_total", "swap_free", "dirty", "writeback", "slab", "shmem", "vmalloc_total", "vmalloc_used", "vmalloc_chunk"}

// fsNames are the fly_instance_filesystem_* series, by mount.
var fsNames = []string{"blocks", "block_size", "blocks_free", "blocks_avail"}

// netFields are /proc/net/dev's columns, as Fly names the series.
var netFields = []string{"recv_bytes", "recv_packets", "recv_errs", "recv_drop", "recv_fifo", "recv_frame", "recv_compressed", "recv_multicast",
	"sent_bytes", "sent_packets", "sent_errs", "sent_drop", "sent_fifo", "sent_colls", "sent_carrier", "sent_compressed"}

// diskNames are the fly_instance_disk_* series Hangar reports (from the
// cgroup's I/O accounting).
var diskNames = []string{"reads_completed", "writes_completed", "sectors_read", "sectors_written"}

// NewInstanceCollector makes the collector of the machines' series.
func NewInstanceCollector(list Instances, fs CgroupFS) *InstanceCollector {
	return &InstanceCollector{list: list, fs: fs, now: time.Now, load: map[string]*loadAvg{}}
}

// WriteText implements TextCollector.
func (c *InstanceCollector) WriteText(t *TextWriter, only string) {
	c.mu.Lock()
	all := c.last
	c.mu.Unlock()
	var insts []*instSample
	for i := range all {
		if only == "" || all[i].in.App == only {
			insts = append(insts, &all[i])
		}
	}
	if len(insts) == 0 {
		return
	}
	l := func(x *instSample, more ...string) []string {
		return append([]string{LabelApp, x.in.App, LabelInstance, x.in.ID}, more...)
	}
	running := func(x *instSample) bool { return x.in.Running && x.ok }
	t.Family("fly_instance_up", "1 while the instance runs and reports; 0 when it is down after an exit it did not ask for.", "gauge")
	for _, x := range insts {
		switch {
		case running(x):
			t.Sample("fly_instance_up", 1, l(x)...)
		case x.in.Running || x.in.Down: // started but not reporting, or crashed
			t.Sample("fly_instance_up", 0, l(x)...)
		}
	}
	t.Family("fly_instance_exit_code", "Exit code of the instance's last exit.", "gauge")
	for _, x := range insts {
		if x.in.LastExit != nil {
			t.Sample("fly_instance_exit_code", float64(x.in.LastExit.Code), l(x)...)
		}
	}
	t.Family("fly_instance_exit_oom", "1 if the instance's last exit was an out-of-memory kill.", "gauge")
	for _, x := range insts {
		if x.in.LastExit != nil {
			t.Sample("fly_instance_exit_oom", b2f(x.in.LastExit.OOM), l(x)...)
		}
	}
	for _, n := range memNames {
		name := "fly_instance_memory_" + n
		t.Family(name, "Memory of the instance in bytes ("+n+"), from its memory cgroup.", "gauge")
		for _, x := range insts {
			if running(x) {
				t.Sample(name, x.s.mem[n], l(x)...)
			}
		}
	}
	t.Family("fly_instance_cpu", "CPU time of the instance in centiseconds, by mode (user, system, idle; cpu_id \"all\": the cgroup does not split by CPU).", "counter")
	for _, x := range insts {
		if running(x) {
			t.Sample("fly_instance_cpu", x.s.userCS, l(x, "cpu_id", "all", "mode", "user")...)
			t.Sample("fly_instance_cpu", x.s.systemCS, l(x, "cpu_id", "all", "mode", "system")...)
			t.Sample("fly_instance_cpu", x.s.idleCS, l(x, "cpu_id", "all", "mode", "idle")...)
		}
	}
	t.Family("fly_instance_load_average", "The instance's CPU demand (cores busy) averaged over 1, 5 and 15 minutes, as the kernel's load average.", "gauge")
	for _, x := range insts {
		if running(x) {
			for k, m := range []string{"1", "5", "15"} {
				t.Sample("fly_instance_load_average", x.load[k], l(x, "minutes", m)...)
			}
		}
	}
	gauges := []struct {
		name, help string
		v          func(s *sample) float64
	}{
		{"hangar_instance_pids", "Processes and threads in the instance.", func(s *sample) float64 { return s.pids }},
		{"fly_instance_filefd_allocated", "Open file descriptors of the instance's processes.", func(s *sample) float64 { return s.fds }},
		{"fly_instance_filefd_maximum", "The open file limit of the instance's init.", func(s *sample) float64 { return s.fdMax }},
	}
	for _, g := range gauges {
		t.Family(g.name, g.help, "gauge")
		for _, x := range insts {
			if running(x) {
				t.Sample(g.name, g.v(&x.s), l(x)...)
			}
		}
	}
	for i, n := range netFields {
		name := "fly_instance_net_" + n
		t.Family(name, "Network counter "+n+" of the instance's interfaces.", "counter")
		for _, x := range insts {
			if running(x) {
				for _, dev := range sortedKeys(x.s.net) {
					t.Sample(name, x.s.net[dev][i], l(x, "device", dev)...)
				}
			}
		}
	}
	for i, n := range fsNames {
		name := "fly_instance_filesystem_" + n
		t.Family(name, "Filesystem "+n+" of the instance's root (mount \"/\") and of its volumes (mount: where each is mounted in it).", "gauge")
		for _, x := range insts {
			if running(x) {
				for _, mnt := range x.s.fsOrder {
					t.Sample(name, x.s.fsys[mnt][i], l(x, "mount", mnt)...)
				}
			}
		}
	}
	for i, n := range diskNames {
		name := "fly_instance_disk_" + n
		t.Family(name, "Block I/O counter "+n+" of the instance, by device (major:minor).", "counter")
		for _, x := range insts {
			if running(x) {
				for dev, vals := range x.s.disk {
					t.Sample(name, vals[i], l(x, "device", dev)...)
				}
			}
		}
	}
}

func sortedKeys(m map[string][]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sample is what one read of a machine's cgroup and /proc gives.
type sample struct {
	mem                      map[string]float64
	userCS, systemCS, idleCS float64 // centiseconds
	pids, fds, fdMax         float64
	net                      map[string][]float64
	disk                     map[string][4]float64
	fsys                     map[string][4]float64 // by mount: fsNames
	fsOrder                  []string              // the mounts read, "/" first
}

// read reads one running machine's counters; false if its cgroup is gone.
func (c *InstanceCollector) read(in *Instance) (sample, bool) {
	fs := c.fs
	s := sample{mem: map[string]float64{}, net: map[string][]float64{}, disk: map[string][4]float64{}}
	memDir := fs.dir("memory", in.ID)
	total := float64(in.MemoryMB) * (1 << 20)
	var usage float64
	var st map[string]float64
	var err error
	if fs.V2 {
		usage, err = readNumber(filepath.Join(memDir, "memory.current"))
		if err != nil {
			return s, false
		}
		st = readKV(filepath.Join(memDir, "memory.stat"))
		if lim, err := readNumber(filepath.Join(memDir, "memory.max")); err == nil && (total == 0 || lim < total) {
			total = lim
		}
		swap, _ := readNumber(filepath.Join(memDir, "memory.swap.current"))
		swapMax, err := readNumber(filepath.Join(memDir, "memory.swap.max"))
		if err == nil && swapMax < 1<<50 {
			s.mem["swap_total"], s.mem["swap_free"] = swapMax, math.Max(0, swapMax-swap)
		}
		s.mem["cached"], s.mem["dirty"], s.mem["writeback"] = st["file"], st["file_dirty"], st["file_writeback"]
		s.mem["slab"] = st["slab"]
		// Kernels from 6.6 (swapcached) and 5.19 (vmalloc) account these
		// per cgroup; older ones report 0.
		s.mem["swap_cached"], s.mem["vmalloc_used"] = st["swapcached"], st["vmalloc"]
	} else {
		usage, err = readNumber(filepath.Join(memDir, "memory.usage_in_bytes"))
		if err != nil {
			return s, false
		}
		st = readKV(filepath.Join(memDir, "memory.stat"))
		if lim, err := readNumber(filepath.Join(memDir, "memory.limit_in_bytes")); err == nil && (total == 0 || lim < total) {
			total = lim
		}
		s.mem["cached"], s.mem["dirty"], s.mem["writeback"] = st["cache"], st["dirty"], st["writeback"]
		if sw, ok := st["swap"]; ok {
			s.mem["swap_total"] = sw
		}
	}
	if total == 0 {
		total = usage
	}
	s.mem["mem_total"] = total
	s.mem["mem_free"] = math.Max(0, total-usage)
	s.mem["mem_available"] = math.Min(total, math.Max(0, total-usage+st["inactive_file"]))
	s.mem["active"] = st["active_anon"] + st["active_file"]
	s.mem["inactive"] = st["inactive_anon"] + st["inactive_file"]
	s.mem["shmem"] = st["shmem"]

	// CPU, in centiseconds (USER_HZ, as /proc/stat's).
	var created time.Time
	if fs.V2 {
		cs := readKV(filepath.Join(memDir, "cpu.stat"))
		s.userCS, s.systemCS = cs["user_usec"]/1e4, cs["system_usec"]/1e4
	} else {
		cs := readKV(filepath.Join(fs.dir("cpuacct", in.ID), "cpuacct.stat"))
		s.userCS, s.systemCS = cs["user"], cs["system"]
	}
	if fi, err := os.Stat(memDir); err == nil {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			created = time.Unix(sys.Ctim.Sec, sys.Ctim.Nsec)
		}
	}
	if !created.IsZero() {
		cpus := float64(max(in.CPUs, 1))
		s.idleCS = math.Max(0, cpus*c.now().Sub(created).Seconds()*100-s.userCS-s.systemCS)
	}
	// Processes: pids, file descriptors, the network namespace.
	pidsDir := fs.dir("pids", in.ID)
	s.pids, _ = readNumber(filepath.Join(pidsDir, "pids.current"))
	procs, _ := os.ReadFile(filepath.Join(pidsDir, "cgroup.procs"))
	first := ""
	for _, pid := range strings.Fields(string(procs)) {
		if first == "" {
			first = pid
		}
		if ents, err := os.ReadDir(filepath.Join(fs.Proc, pid, "fd")); err == nil {
			s.fds += float64(len(ents))
		}
	}
	if first != "" {
		s.fdMax = readLimit(filepath.Join(fs.Proc, first, "limits"), "Max open files")
		s.net = readNetDev(filepath.Join(fs.Proc, first, "net", "dev"))
		s.fsys = map[string][4]float64{}
		for _, mnt := range append([]string{"/"}, in.Mounts...) {
			// Through /proc/<pid>/root, the path resolves in the
			// machine's own mount namespace.
			var st syscall.Statfs_t
			if _, seen := s.fsys[mnt]; seen || syscall.Statfs(filepath.Join(fs.Proc, first, "root", mnt), &st) != nil {
				continue
			}
			s.fsys[mnt] = [4]float64{float64(st.Blocks), float64(st.Bsize), float64(st.Bfree), float64(st.Bavail)}
			s.fsOrder = append(s.fsOrder, mnt)
		}
	}
	// The address space for vmalloc is the kernel's, the same for every
	// machine of the host (Fly's guests each have their own).
	s.mem["vmalloc_total"], s.mem["vmalloc_chunk"] = c.hostVmalloc()
	// Block I/O.
	if fs.V2 {
		for dev, kv := range readIOStat(filepath.Join(memDir, "io.stat")) {
			s.disk[dev] = [4]float64{kv["rios"], kv["wios"], kv["rbytes"] / 512, kv["wbytes"] / 512}
		}
	} else {
		blk := fs.dir("blkio", in.ID)
		ops := readBlkio(filepath.Join(blk, "blkio.throttle.io_serviced"))
		bytes := readBlkio(filepath.Join(blk, "blkio.throttle.io_service_bytes"))
		for dev, o := range ops {
			b := bytes[dev]
			s.disk[dev] = [4]float64{o[0], o[1], b[0] / 512, b[1] / 512}
		}
	}
	return s, true
}

// hostVmalloc reads VmallocTotal and VmallocChunk (bytes) from the host's
// meminfo.
func (c *InstanceCollector) hostVmalloc() (total, chunk float64) {
	f, err := os.Open(filepath.Join(c.fs.Proc, "meminfo"))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmallocTotal" && k != "VmallocChunk") {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if k == "VmallocTotal" {
			total = kb * 1024
		} else {
			chunk = kb * 1024
		}
	}
	return total, chunk
}

func readNumber(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return math.Inf(1), nil
	}
	return strconv.ParseFloat(v, 64)
}

// readKV reads "key value" lines (memory.stat, cpu.stat, cpuacct.stat).
func readKV(path string) map[string]float64 {
	out := map[string]float64{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			out[string(k)] = f
		}
	}
	return out
}

// readIOStat reads cgroup v2's io.stat: "maj:min rbytes=… wbytes=…".
func readIOStat(path string) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kv := map[string]float64{}
		for _, p := range f[1:] {
			if k, v, ok := strings.Cut(p, "="); ok {
				kv[k], _ = strconv.ParseFloat(v, 64)
			}
		}
		out[f[0]] = kv
	}
	return out
}

// readBlkio reads a cgroup v1 blkio file: "maj:min Read|Write N" lines;
// [0] reads, [1] writes.
func readBlkio(path string) map[string][2]float64 {
	out := map[string][2]float64{}
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		v, _ := strconv.ParseFloat(f[2], 64)
		cur := out[f[0]]
		switch f[1] {
		case "Read":
			cur[0] = v
		case "Write":
			cur[1] = v
		default:
			continue
		}
		out[f[0]] = cur
	}
	return out
}

// readNetDev reads /proc/<pid>/net/dev (the machine's namespace), without
// the loopback interface.
func readNetDev(path string) map[string][]float64 {
	out := map[string][]float64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		fields := strings.Fields(rest)
		if name == "lo" || len(fields) < len(netFields) {
			continue
		}
		vals := make([]float64, len(netFields))
		for i := range netFields {
			vals[i], _ = strconv.ParseFloat(fields[i], 64)
		}
		out[name] = vals
	}
	return out
}

// readLimit reads a soft limit from /proc/<pid>/limits (0 if unlimited or
// unreadable).
func readLimit(path, name string) float64 {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v
			}
		}
	}
	return 0
}

// loadAvg is one machine's CPU demand averaged over 1, 5 and 15 minutes
// (exponentially, as the kernel's load average).
type loadAvg struct {
	avg      [3]float64
	lastCS   float64
	lastTime time.Time
}

var loadPeriods = [3]float64{60, 300, 900}

// LoadInterval is how often Run samples the load averages.
const LoadInterval = 5 * time.Second

// Run samples the load averages every LoadInterval until ctx ends.
func (c *InstanceCollector) Run(ctx context.Context) {
	t := time.NewTicker(LoadInterval)
	defer t.Stop()
	for {
		c.Sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample reads every running machine's cgroup and /proc files, updates
// its load averages with its CPU use since the last sample, and keeps
// the result for the scrapes; machines that no longer run are forgotten.
func (c *InstanceCollector) Sample(ctx context.Context) {
	insts, err := c.list(ctx)
	if err != nil {
		return
	}
	now := c.now()
	out := make([]instSample, len(insts))
	seen := map[string]bool{}
	for i := range insts {
		x := &out[i]
		x.in = insts[i]
		if !x.in.Running {
			continue
		}
		x.s, x.ok = c.read(&x.in)
		if !x.ok {
			continue
		}
		cs := x.s.userCS + x.s.systemCS
		seen[x.in.ID] = true
		c.mu.Lock()
		l := c.load[x.in.ID]
		if l == nil {
			l = &loadAvg{lastCS: cs, lastTime: now}
			c.load[x.in.ID] = l
		} else if dt := now.Sub(l.lastTime).Seconds(); dt > 0 {
			busy := math.Max(0, (cs-l.lastCS)/100/dt) // cores busy
			for k, p := range loadPeriods {
				e := math.Exp(-dt / p)
				l.avg[k] = l.avg[k]*e + busy*(1-e)
			}
			l.lastCS, l.lastTime = cs, now
		}
		x.load = l.avg
		c.mu.Unlock()
	}
	c.mu.Lock()
	for id := range c.load {
		if !seen[id] {
			delete(c.load, id)
		}
	}
	c.last = out
	c.mu.Unlock()
}
