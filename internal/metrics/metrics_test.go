package metrics

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// fakeCgroups writes a machine's cgroup (v2) and /proc files as the
// kernel shows them, under a temp dir.
func fakeCgroups(t testing.TB, dir string, ids ...string) CgroupFS {
	fs := CgroupFS{Root: filepath.Join(dir, "cgroup"), Proc: filepath.Join(dir, "proc"), V2: true}
	for i, id := range ids {
		pid := strconv.Itoa(1000 + i)
		cg := filepath.Join(fs.Root, "hangar", id)
		files := map[string]string{
			filepath.Join(cg, "memory.current"):      "52428800\n",
			filepath.Join(cg, "memory.max"):          "268435456\n",
			filepath.Join(cg, "memory.stat"):         "anon 30000000\nfile 20000000\nshmem 4096\nfile_dirty 8192\nfile_writeback 0\nactive_anon 10000000\ninactive_anon 20000000\nactive_file 5000000\ninactive_file 15000000\nslab 1000000\n",
			filepath.Join(cg, "memory.swap.current"): "0\n",
			filepath.Join(cg, "memory.swap.max"):     "max\n",
			filepath.Join(cg, "cpu.stat"):            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
			filepath.Join(cg, "pids.current"):        "7\n",
			filepath.Join(cg, "cgroup.procs"):        pid + "\n",
			filepath.Join(cg, "io.stat"):             "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
			filepath.Join(fs.Proc, pid, "limits"):    "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n",
			filepath.Join(fs.Proc, pid, "net", "dev"): "Inter-|   Receive                                                |  Transmit\n" +
				" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
				"    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n" +
				"  eth0:    5000      40    0    0    0     0          0         0     7000      50    0    0    0     0       0          0\n",
			filepath.Join(fs.Proc, pid, "root", "data", ".keep"): "",
			filepath.Join(fs.Proc, "meminfo"):                    "MemTotal:       24000000 kB\nVmallocTotal:   34359738367 kB\nVmallocUsed:       50000 kB\nVmallocChunk:          0 kB\n",
			filepath.Join(fs.Proc, pid, "fd", "0"):               "",
			filepath.Join(fs.Proc, pid, "fd", "1"):               "",
		}
		for p, c := range files {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return fs
}

// appMetricsServer is an app's [metrics] endpoint on a real listener;
// it returns the instance that points at it.
func appMetricsServer(t testing.TB, app, id string, h http.HandlerFunc) Instance {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	p, _ := strconv.Atoi(port)
	return Instance{App: app, ID: id, Region: "tst", Running: true, Addr: host, Metrics: &types.MachineMetrics{Port: p, Path: "/metrics"}}
}

func proxyStats() []proxy.AppStats {
	h := proxy.Histogram{Bounds: proxy.LatencyBounds, Counts: make([]uint64, len(proxy.LatencyBounds)+1), Count: 3, Sum: 3 * time.Millisecond}
	h.Counts[1] = 3
	return []proxy.AppStats{{App: "web", Requests: map[int]uint64{200: 3}, Latency: h, LatencyByStatus: map[int]proxy.Histogram{200: h},
		DataIn: 100, DataOut: 200, TCPConnects: 1, WakeTime: h,
		Machines: []proxy.MachineStats{{ID: "m1", Inflight: 1, Requests: map[int]uint64{200: 3}, LatencyByStatus: map[int]proxy.Histogram{200: h}, ConnectTime: h, TCPConnects: 1}}}}
}

// newTestRegistry registers every collector the daemon registers, over
// fake sources (proxy snapshot, cgroup files, an app endpoint).
func newTestRegistry(t *testing.T) (*Registry, *AppScraper) {
	reg := NewRegistry("tst", "abcd")
	r := reg.Registerer()
	fs := fakeCgroups(t, t.TempDir(), "m1")
	app := appMetricsServer(t, "web", "m2", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# HELP testapp_hits_total Hits.\n# TYPE testapp_hits_total counter\ntestapp_hits_total{path=\"/\",instance=\"spoofed\"} 7\n")
	})
	insts := []Instance{
		{App: "web", ID: "m1", Region: "tst", Running: true, CPUs: 1, MemoryMB: 256, Mounts: []string{"/data"}},
		{App: "web", ID: "m3", Region: "tst", Down: true, LastExit: &Exit{Code: 137, OOM: true}},
		app,
	}
	list := func(context.Context) ([]Instance, error) { return insts, nil }
	reg.AddText(NewProxyCollector(proxyStats))
	ic := NewInstanceCollector(list, fs)
	ic.Sample(context.Background())
	reg.AddText(ic)
	r.MustRegister(NewVolumeCollector(func(context.Context) ([]Volume, error) {
		return []Volume{{ID: "vol_1", App: "web", SizeBytes: 1 << 30, Blocks: 100, BlocksFree: 10, BlocksAvail: 5}}, nil
	}))
	h := NewHangar(r)
	h.MachineStarted("web", "stopped", "fly-proxy", 40*time.Millisecond)
	h.Autostopped("web", "stop")
	h.DeployFinished("web", "rolling", "complete", 2*time.Second)
	h.APIRequest("GET /v1/apps/{app}/machines", 200, time.Millisecond)
	h.storeWrite.WithLabelValues("put").Observe(0.001)
	tl := NewTLS(r, func(string) string { return "web" })
	tl.time.WithLabelValues("web", "TLS 1.3").Observe(0.002)
	tl.errors.WithLabelValues("web", "web.example.test").Inc()
	sc := &AppScraper{List: list, Region: "tst", Host: "abcd"}
	r.MustRegister(sc.Collectors()...)
	reg.AddText(sc)
	sc.ScrapeAll(context.Background())
	return reg, sc
}

// describe lists each family as "name type label,label…" (the labels of
// all its series), sorted.
func describe(mfs []*dto.MetricFamily) []string {
	var out []string
	for _, mf := range mfs {
		labels := map[string]bool{}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				labels[l.GetName()] = true
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		out = append(out, fmt.Sprintf("%s %s %s", mf.GetName(), strings.ToLower(mf.GetType().String()), strings.Join(ls, ",")))
	}
	sort.Strings(out)
	return out
}

// TestGolden: the names, types and label sets of every series the daemon
// serves are testdata/metrics.golden (Fly's names for Fly's series; go
// test -run TestGolden -update rewrites it after a deliberate change).
func TestGolden(t *testing.T) {
	reg, _ := newTestRegistry(t)
	mfs := gatherText(t, reg, "")
	var lines []string
	for _, l := range describe(mfs) {
		if !strings.HasPrefix(l, "hangar_process_") { // the daemon's own process: varies by platform
			lines = append(lines, l)
		}
	}
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("series differ from %s (rerun with -update if intended):\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}

// The series Fly documents, by name and type, each with the standard
// labels; checked against what the daemon serves.
func TestFlyNames(t *testing.T) {
	reg, _ := newTestRegistry(t)
	mfs := gatherText(t, reg, "")
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	want := map[string]dto.MetricType{
		"fly_edge_http_responses_count": dto.MetricType_COUNTER, "fly_edge_http_response_time_seconds": dto.MetricType_HISTOGRAM,
		"fly_edge_tcp_connects_count": dto.MetricType_COUNTER, "fly_edge_tcp_disconnects_count": dto.MetricType_COUNTER,
		"fly_edge_data_in": dto.MetricType_COUNTER, "fly_edge_data_out": dto.MetricType_COUNTER,
		"fly_app_concurrency": dto.MetricType_GAUGE, "fly_app_http_responses_count": dto.MetricType_COUNTER,
		"fly_app_http_response_time_seconds": dto.MetricType_HISTOGRAM, "fly_app_connect_time_seconds": dto.MetricType_HISTOGRAM,
		"fly_app_tcp_connects_count": dto.MetricType_COUNTER, "fly_app_tcp_disconnects_count": dto.MetricType_COUNTER,
		"fly_instance_up": dto.MetricType_GAUGE, "fly_instance_memory_mem_total": dto.MetricType_GAUGE,
		"fly_instance_memory_mem_free": dto.MetricType_GAUGE, "fly_instance_memory_mem_available": dto.MetricType_GAUGE,
		"fly_instance_memory_cached": dto.MetricType_GAUGE, "fly_instance_memory_swap_total": dto.MetricType_GAUGE,
		"fly_instance_memory_swap_cached": dto.MetricType_GAUGE, "fly_instance_memory_vmalloc_total": dto.MetricType_GAUGE,
		"fly_instance_memory_vmalloc_used": dto.MetricType_GAUGE, "fly_instance_memory_vmalloc_chunk": dto.MetricType_GAUGE,
		"fly_instance_filesystem_blocks": dto.MetricType_GAUGE, "fly_instance_filesystem_block_size": dto.MetricType_GAUGE,
		"fly_instance_filesystem_blocks_free": dto.MetricType_GAUGE, "fly_instance_filesystem_blocks_avail": dto.MetricType_GAUGE,
		"fly_instance_cpu": dto.MetricType_COUNTER, "fly_instance_load_average": dto.MetricType_GAUGE,
		"fly_instance_net_recv_bytes": dto.MetricType_COUNTER, "fly_instance_net_sent_bytes": dto.MetricType_COUNTER,
		"fly_instance_disk_reads_completed": dto.MetricType_COUNTER, "fly_instance_filefd_allocated": dto.MetricType_GAUGE,
		"fly_instance_exit_code": dto.MetricType_GAUGE, "fly_instance_exit_oom": dto.MetricType_GAUGE,
		"fly_volume_size_bytes": dto.MetricType_GAUGE, "fly_volume_used_pct": dto.MetricType_GAUGE,
		"fly_edge_tls_handshake_time_seconds": dto.MetricType_HISTOGRAM, "fly_edge_tls_handshake_errors": dto.MetricType_COUNTER,
	}
	for name, typ := range want {
		mf := byName[name]
		if mf == nil {
			t.Errorf("%s: not served", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s: type %s, want %s", name, mf.GetType(), typ)
		}
		for _, m := range mf.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			if got["app"] != "web" || got["region"] != "tst" || got["host"] != "abcd" {
				t.Errorf("%s: labels %v lack app, region or host", name, got)
			}
			_, hasInstance := got["instance"]
			if fly := !strings.HasPrefix(name, "fly_edge_") && !strings.HasPrefix(name, "fly_volume_"); fly != hasInstance {
				t.Errorf("%s: instance label present=%v; Fly sets it on all but fly_edge_ and fly_volume_", name, hasInstance)
			}
		}
	}
}

// gatherText parses what the registry serves (as Prometheus would).
func gatherText(t testing.TB, reg *Registry, only string) []*dto.MetricFamily {
	t.Helper()
	var b strings.Builder
	if err := reg.WriteText(&b, only); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("served text does not parse: %v\n%s", err, b.String())
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, mf := range fams {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// TestTimedStoreKeepsLeaser: the timed wrapper of the state keeps the
// store's optional lease capability (the host registry needs it: without
// it every daemon failed to start, "cannot keep leased keys"), and has
// none when the store has none.
func TestTimedStoreKeepsLeaser(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := NewHangar(prometheus.NewRegistry())
	if _, ok := any(st).(store.Leaser); !ok {
		t.Skip("the bbolt store no longer keeps leased keys")
	}
	wrapped := h.Store(st)
	l, ok := wrapped.(store.Leaser)
	if !ok {
		t.Fatal("the timed store hides store.Leaser")
	}
	lk, err := l.PutLeased(context.Background(), "k", []byte("v"), time.Minute)
	if err != nil || lk == nil {
		t.Fatalf("PutLeased through the wrapper: %v", err)
	}
	if kv, err := wrapped.Get(context.Background(), "k"); err != nil || string(kv.Value) != "v" {
		t.Fatalf("leased key: %+v %v", kv, err)
	}
	if _, ok := h.Store(plainStore{st}).(store.Leaser); ok {
		t.Fatal("a store without leases got one through the wrapper")
	}
}

// plainStore hides every optional capability of a store.
type plainStore struct{ store.Store }

// The filesystem series are the statfs of the machine's root and of each
// volume's mount, resolved inside the machine (/proc/<pid>/root), by
// mount; vmalloc's address space is the host's meminfo.
func TestInstanceFilesystemsAndVmalloc(t *testing.T) {
	dir := t.TempDir()
	fs := fakeCgroups(t, dir, "m1")
	data := filepath.Join(fs.Proc, "1000", "root", "data")
	// A filesystem of a known size at the volume's mount (root only).
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): needs root", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(data, syscall.MNT_DETACH) })
	list := func(context.Context) ([]Instance, error) {
		return []Instance{{App: "web", ID: "m1", Region: "tst", Running: true, Mounts: []string{"/data", "/missing"}}}, nil
	}
	ic := NewInstanceCollector(list, fs)
	ic.Sample(context.Background())
	reg := NewRegistry("tst", "abcd")
	reg.AddText(ic)
	vals := map[string]float64{}
	for _, mf := range gatherText(t, reg, "") {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				if l.GetName() == "mount" {
					key += "{" + l.GetValue() + "}"
				}
			}
			vals[key] = m.GetGauge().GetValue()
		}
	}
	if got := vals["fly_instance_filesystem_blocks{/data}"] * vals["fly_instance_filesystem_block_size{/data}"]; got != 8<<20 {
		t.Fatalf("/data: %v bytes, want the tmpfs's 8 MiB (series %v)", got, vals)
	}
	if vals["fly_instance_filesystem_blocks_avail{/data}"] != vals["fly_instance_filesystem_blocks{/data}"] {
		t.Fatalf("/data: an empty tmpfs has every block available: %v", vals)
	}
	var root syscall.Statfs_t
	if err := syscall.Statfs(dir, &root); err != nil {
		t.Fatal(err)
	}
	if vals["fly_instance_filesystem_blocks{/}"] != float64(root.Blocks) {
		t.Fatalf("/: %v blocks, the directory's filesystem has %d", vals["fly_instance_filesystem_blocks{/}"], root.Blocks)
	}
	if _, ok := vals["fly_instance_filesystem_blocks{/missing}"]; ok {
		t.Fatal("a mount path that does not exist in the machine has series")
	}
	if vals["fly_instance_memory_vmalloc_total"] != 34359738367*1024 {
		t.Fatalf("vmalloc_total %v, want meminfo's VmallocTotal in bytes", vals["fly_instance_memory_vmalloc_total"])
	}
}
