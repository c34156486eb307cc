package metrics

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
// this host, read from their cgroups and network namespaces when scraped,
// and keeps their load averages (Sample, every 5 s from Run).
type InstanceCollector struct {
	list Instances
	fs   CgroupFS
	now  func() time.Time

	mu   sync.Mutex // guards load
	load map[string]*loadAvg

	up, exitCode, exitOOM, cpu, loadAvg, pids, fdAlloc, fdMax *prometheus.Desc
	mem                                                       map[string]*prometheus.Desc
	net                                                       map[string]*prometheus.Desc
	disk                                                      map[string]*prometheus.Desc
}

// memNames are the fly_instance_memory_* series Hangar reports.
var memNames = []string{"mem_total", "mem_free", "mem_available", "buffers", "cached", "active", "inactive",
	"swap_total", "swap_free", "dirty", "writeback", "slab", "shmem"}

// netFields are /proc/net/dev's columns, as Fly names the series.
var netFields = []string{"recv_bytes", "recv_packets", "recv_errs", "recv_drop", "recv_fifo", "recv_frame", "recv_compressed", "recv_multicast",
	"sent_bytes", "sent_packets", "sent_errs", "sent_drop", "sent_fifo", "sent_colls", "sent_carrier", "sent_compressed"}

// diskNames are the fly_instance_disk_* series Hangar reports (from the
// cgroup's I/O accounting).
var diskNames = []string{"reads_completed", "writes_completed", "sectors_read", "sectors_written"}

// NewInstanceCollector makes the collector of the machines' series.
func NewInstanceCollector(list Instances, fs CgroupFS) *InstanceCollector {
	inst := []string{LabelApp, LabelInstance}
	c := &InstanceCollector{list: list, fs: fs, now: time.Now, load: map[string]*loadAvg{},
		up:       prometheus.NewDesc("fly_instance_up", "1 while the instance runs and reports; 0 when it is down after an exit it did not ask for.", inst, nil),
		exitCode: prometheus.NewDesc("fly_instance_exit_code", "Exit code of the instance's last exit.", inst, nil),
		exitOOM:  prometheus.NewDesc("fly_instance_exit_oom", "1 if the instance's last exit was an out-of-memory kill.", inst, nil),
		cpu:      prometheus.NewDesc("fly_instance_cpu", "CPU time of the instance in centiseconds, by mode (user, system, idle; cpu_id \"all\": the cgroup does not split by CPU).", []string{LabelApp, LabelInstance, "cpu_id", "mode"}, nil),
		loadAvg:  prometheus.NewDesc("fly_instance_load_average", "The instance's CPU demand (cores busy) averaged over 1, 5 and 15 minutes, as the kernel's load average.", []string{LabelApp, LabelInstance, "minutes"}, nil),
		pids:     prometheus.NewDesc("hangar_instance_pids", "Processes and threads in the instance.", inst, nil),
		fdAlloc:  prometheus.NewDesc("fly_instance_filefd_allocated", "Open file descriptors of the instance's processes.", inst, nil),
		fdMax:    prometheus.NewDesc("fly_instance_filefd_maximum", "The open file limit of the instance's init.", inst, nil),
		mem:      map[string]*prometheus.Desc{},
		net:      map[string]*prometheus.Desc{},
		disk:     map[string]*prometheus.Desc{},
	}
	for _, n := range memNames {
		c.mem[n] = prometheus.NewDesc("fly_instance_memory_"+n, "Memory of the instance in bytes ("+n+"), from its memory cgroup.", inst, nil)
	}
	for _, n := range netFields {
		c.net[n] = prometheus.NewDesc("fly_instance_net_"+n, "Network counter "+n+" of the instance's interfaces.", []string{LabelApp, LabelInstance, "device"}, nil)
	}
	for _, n := range diskNames {
		c.disk[n] = prometheus.NewDesc("fly_instance_disk_"+n, "Block I/O counter "+n+" of the instance, by device (major:minor).", []string{LabelApp, LabelInstance, "device"}, nil)
	}
	return c
}

func (c *InstanceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.exitCode, c.exitOOM, c.cpu, c.loadAvg, c.pids, c.fdAlloc, c.fdMax} {
		ch <- d
	}
	for _, m := range []map[string]*prometheus.Desc{c.mem, c.net, c.disk} {
		for _, d := range m {
			ch <- d
		}
	}
}

func (c *InstanceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	insts, err := c.list(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.up, err)
		return
	}
	for i := range insts {
		c.collectOne(ch, &insts[i])
	}
}

func (c *InstanceCollector) collectOne(ch chan<- prometheus.Metric, in *Instance) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{in.App, in.ID}, l...)...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{in.App, in.ID}, l...)...)
	}
	if in.LastExit != nil {
		gauge(c.exitCode, float64(in.LastExit.Code))
		gauge(c.exitOOM, b2f(in.LastExit.OOM))
	}
	if !in.Running {
		if in.Down {
			gauge(c.up, 0)
		}
		return
	}
	s, ok := c.read(in)
	if !ok {
		gauge(c.up, 0) // started, but its cgroup is gone: not reporting
		return
	}
	gauge(c.up, 1)
	for _, n := range memNames {
		gauge(c.mem[n], s.mem[n])
	}
	counter(c.cpu, s.userCS, "all", "user")
	counter(c.cpu, s.systemCS, "all", "system")
	counter(c.cpu, s.idleCS, "all", "idle")
	l := c.loadOf(in.ID)
	gauge(c.loadAvg, l[0], "1")
	gauge(c.loadAvg, l[1], "5")
	gauge(c.loadAvg, l[2], "15")
	gauge(c.pids, s.pids)
	gauge(c.fdAlloc, s.fds)
	if s.fdMax > 0 {
		gauge(c.fdMax, s.fdMax)
	}
	for dev, vals := range s.net {
		for i, n := range netFields {
			counter(c.net[n], vals[i], dev)
		}
	}
	for dev, vals := range s.disk {
		for i, n := range diskNames {
			counter(c.disk[n], vals[i], dev)
		}
	}
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
	}
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

// Sample updates every running machine's load averages with its CPU use
// since the last sample, and forgets machines that no longer run.
func (c *InstanceCollector) Sample(ctx context.Context) {
	insts, err := c.list(ctx)
	if err != nil {
		return
	}
	now := c.now()
	seen := map[string]bool{}
	for i := range insts {
		in := &insts[i]
		if !in.Running {
			continue
		}
		var cs float64
		if c.fs.V2 {
			kv := readKV(filepath.Join(c.fs.dir("cpu", in.ID), "cpu.stat"))
			cs = kv["usage_usec"] / 1e4
		} else {
			kv := readKV(filepath.Join(c.fs.dir("cpuacct", in.ID), "cpuacct.stat"))
			cs = kv["user"] + kv["system"]
		}
		seen[in.ID] = true
		c.mu.Lock()
		l := c.load[in.ID]
		if l == nil {
			l = &loadAvg{lastCS: cs, lastTime: now}
			c.load[in.ID] = l
		} else if dt := now.Sub(l.lastTime).Seconds(); dt > 0 {
			busy := math.Max(0, (cs-l.lastCS)/100/dt) // cores busy
			for k, p := range loadPeriods {
				e := math.Exp(-dt / p)
				l.avg[k] = l.avg[k]*e + busy*(1-e)
			}
			l.lastCS, l.lastTime = cs, now
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	for id := range c.load {
		if !seen[id] {
			delete(c.load, id)
		}
	}
	c.mu.Unlock()
}

func (c *InstanceCollector) loadOf(id string) [3]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.load[id]; l != nil {
		return l.avg
	}
	return [3]float64{}
}
