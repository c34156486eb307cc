// Package bench holds Hangar's side-by-side benchmarks. Each prints its
// figures and the ratios between the contenders measured in the same run;
// the machines are shared and noisy, so only ratios are comparable.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/network"
	hruntime "github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/types"
)

const runs = 20

type stats struct {
	name          string
	min, med, max time.Duration
}

func summarize(name string, ds []time.Duration) stats {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return stats{name, ds[0], ds[len(ds)/2], ds[len(ds)-1]}
}

// waitFor polls url until it answers 200 with a body containing want.
func waitFor(c *http.Client, url, host, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), want) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v (last error %v)", url, timeout, err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// bareRuntimes lists the OCI runtimes to start the app with directly: crun
// (once the host is set up for it as Hangar's driver does; on a hybrid
// cgroup host that binds the controllers left on v2 to v1) and runc, each
// if installed and usable.
func bareRuntimes(b *testing.B) []string {
	var rts []string
	if p, err := exec.LookPath("crun"); err == nil {
		if _, err := hruntime.SetupCrunCgroups(); err != nil {
			fmt.Printf("bare crun left out: %v\n", err)
		} else {
			rts = append(rts, p)
		}
	}
	if p, err := exec.LookPath("runc"); err == nil {
		rts = append(rts, p)
	}
	if len(rts) == 0 {
		b.Skip("neither crun nor runc is usable here")
	}
	return rts
}

// daemonRuntime is the runtime the daemon says it picked in its log.
func daemonRuntime(d *harness.Daemon) string {
	log, _ := os.ReadFile(d.LogPath())
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "OCI runtime selected") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "runtime="); ok {
					return v
				}
			}
		}
	}
	return "?"
}

// copyDaemonLog appends the daemon's log to the file dst
// (HANGAR_BENCH_LOG: with it the daemon runs with --debug, which logs the
// phases of every start).
func copyDaemonLog(b *testing.B, d *harness.Daemon, dst string) {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if raw, err := os.ReadFile(d.LogPath()); err == nil {
		_, _ = f.Write(raw)
	}
}

// BenchmarkMachineStart measures API create → first 200 through the proxy,
// with the image already unpacked, against bare starts of the same rootfs
// (in a ready network namespace) by crun and by runc, and a plain
// fork/exec of the same binary, each until it answers HTTP. The target is
// Hangar within 1.15x of bare crun (the runtime the daemon picks).
func BenchmarkMachineStart(b *testing.B) {
	harness.RequireRoot(b)
	bin := harness.BuildBinary(b)
	var args []string
	if os.Getenv("HANGAR_BENCH_LOG") != "" {
		args = append(args, "--debug")
	}
	// Hangar: API create → 200 through the proxy; with
	// HANGAR_BENCH_BEFORE_HANGAR (a `hangar` binary built from an older tree) a
	// second daemon of it beside, to measure a change before and after in
	// one run.
	type daemon struct {
		name  string
		d     *harness.Daemon
		ref   string
		times []time.Duration
		api   []time.Duration // of times: until the API answered
	}
	daemons := []*daemon{{name: "hangar", d: harness.StartDaemonWith(b, bin, args...)}}
	if before := os.Getenv("HANGAR_BENCH_BEFORE_HANGAR"); before != "" {
		daemons = append(daemons, &daemon{name: "before", d: harness.StartDaemonWith(b, before, args...)})
	}
	var rootfs string
	for _, hd := range daemons {
		hd.ref = hd.d.ImportTestApp()
		var imgs []types.Image
		if err := hd.d.Get("/v1/images", &imgs); err != nil {
			b.Fatal(err)
		}
		for _, i := range imgs {
			if i.Ref == hd.ref && rootfs == "" {
				rootfs = i.RootFS
			}
		}
		if code, body := hd.d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "bench"}); code != 201 {
			b.Fatalf("create app: %d %s", code, body)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	noKeep := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	runHangar := func(hd *daemon) {
		cfg := types.MachineConfig{Image: hd.ref, Env: map[string]string{"PORT": "8080"},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}}}
		start := time.Now()
		code, body := hd.d.Call("POST", "/v1/apps/bench/machines", types.CreateMachineRequest{Config: &cfg})
		if code != 200 {
			b.Fatalf("create: %d %s", code, body)
		}
		answered := time.Since(start)
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		if err := waitFor(client, hd.d.HTTP+"/", "bench.test.internal", m.ID, 20*time.Second); err != nil {
			b.Fatal(err)
		}
		hd.times = append(hd.times, time.Since(start))
		hd.api = append(hd.api, answered)
		if code, body := hd.d.Call("DELETE", "/v1/apps/bench/machines/"+m.ID+"?force=true", nil); code != 200 {
			b.Fatalf("destroy: %d %s", code, body)
		}
	}

	// Bare OCI runtimes in a prepared namespace (one at a time, so they
	// share it).
	rts := bareRuntimes(b)
	netm, err := network.New(network.Config{
		Bridge:  fmt.Sprintf("hgb%04x", rand.Intn(0xffff)),
		Subnet4: fmt.Sprintf("10.%d.%d.0/24", 200+rand.Intn(50), rand.Intn(250)),
		Subnet6: fmt.Sprintf("fdaa:0:%x::/64", 0xf000+rand.Intn(0xfff)),
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = netm.RemoveBridge() })
	nsID := fmt.Sprintf("bare%010x", rand.Int63n(1<<40))
	ip4, ip6, _ := netm.AddressFor(2)
	nsPath, err := netm.Setup(nsID, ip4, ip6)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = netm.Teardown(nsID) })
	bareDir := b.TempDir()
	bare := map[string][]time.Duration{}
	bareRun := map[string][]time.Duration{} // of bare: until `run -d` returned
	runBare := func(rt string, i int) {
		name := filepath.Base(rt)
		bundle := filepath.Join(bareDir, name, "bundle")
		stateDir := filepath.Join(bareDir, name, "state")
		id := fmt.Sprintf("benchbare%s%d", name, i)
		start := time.Now()
		// The detached container inherits the runtime's stdio, so give it
		// /dev/null (a pipe would never reach EOF) and read errors from --log.
		logPath := filepath.Join(stateDir, id+".log")
		cmd := exec.Command(rt, "--root", stateDir, "--log", logPath, "run", "-d", "--bundle", bundle, id)
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(logPath)
			b.Fatalf("%s run: %v: %s", name, err, out)
		}
		bareRun[name] = append(bareRun[name], time.Since(start))
		b.Cleanup(func() { _ = exec.Command(rt, "--root", stateDir, "delete", "-f", id).Run() })
		if err := waitFor(noKeep, "http://"+net.JoinHostPort(ip4.String(), "8080")+"/", "", "hits=", 20*time.Second); err != nil {
			b.Fatal(err)
		}
		bare[name] = append(bare[name], time.Since(start))
		_ = exec.Command(rt, "--root", stateDir, "delete", "-f", id).Run()
	}
	for _, rt := range rts {
		bundle := filepath.Join(bareDir, filepath.Base(rt), "bundle")
		for _, dir := range []string{bundle, filepath.Join(bareDir, filepath.Base(rt), "state")} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				b.Fatal(err)
			}
		}
		if err := writeBareSpec(rt, bundle, rootfs, nsPath); err != nil {
			b.Fatal(err)
		}
	}

	// Plain fork/exec of the same binary on the host.
	var fork []time.Duration
	runFork := func(int) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		start := time.Now()
		cmd := exec.Command(filepath.Join(rootfs, "app"))
		cmd.Env = []string{fmt.Sprintf("PORT=%d", port)}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if err := waitFor(noKeep, fmt.Sprintf("http://127.0.0.1:%d/", port), "", "hits=", 20*time.Second); err != nil {
			b.Fatal(err)
		}
		fork = append(fork, time.Since(start))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}

	// Interleaved, so that load drifting on a shared machine hits all
	// contenders alike.
	for i := 0; i < runs; i++ {
		for j := range daemons {
			// The daemons take turns going first.
			runHangar(daemons[(i+j)%len(daemons)])
		}
		for _, rt := range rts {
			runBare(rt, i)
		}
		runFork(i)
	}

	if dst := os.Getenv("HANGAR_BENCH_LOG"); dst != "" {
		// The daemons' debug logs (phases of each start), for a profile.
		for _, hd := range daemons {
			copyDaemonLog(b, hd.d, dst+"."+hd.name)
		}
	}
	// subStats[i] is a part of all[i]'s time, printed below it.
	var all, subStats []stats
	for _, hd := range daemons {
		all = append(all, summarize(hd.name+"/"+daemonRuntime(hd.d)+" (API create → 200 via proxy)", hd.times))
		subStats = append(subStats, summarize("  of which until the API answered", hd.api))
	}
	h := all[0]
	bareStats := map[string]stats{}
	for _, rt := range rts {
		name := filepath.Base(rt)
		bareStats[name] = summarize(name+" run -d → 200", bare[name])
		all = append(all, bareStats[name])
		subStats = append(subStats, summarize("  of which until `run -d` returned", bareRun[name]))
	}
	f := summarize("fork/exec → 200", fork)
	all = append(all, f)
	fmt.Printf("\nMachine start, %d runs each (image unpacked):\n", runs)
	fmt.Printf("%-48s %10s %10s %10s\n", "", "min", "median", "max")
	for i, s := range all {
		fmt.Printf("%-48s %10s %10s %10s\n", s.name, s.min.Round(10*time.Microsecond), s.med.Round(10*time.Microsecond), s.max.Round(10*time.Microsecond))
		if i < len(subStats) {
			a := subStats[i]
			fmt.Printf("%-48s %10s %10s %10s\n", a.name, a.min.Round(10*time.Microsecond), a.med.Round(10*time.Microsecond), a.max.Round(10*time.Microsecond))
		}
	}
	fmt.Printf("ratio of medians:")
	for _, name := range []string{"crun", "runc"} {
		if c, ok := bareStats[name]; ok {
			target := ""
			if name == "crun" {
				target = " (target ≤ 1.15x)"
			}
			fmt.Printf(" hangar/%s = %.2fx%s,", name, float64(h.med)/float64(c.med), target)
		}
	}
	if len(daemons) > 1 {
		fmt.Printf(" before/crun = %.2fx, hangar/before = %.2fx,", float64(all[1].med)/float64(bareStats["crun"].med), float64(h.med)/float64(all[1].med))
	}
	fmt.Printf(" hangar/fork-exec = %.1fx\n\n", float64(h.med)/float64(f.med))
	b.ReportMetric(float64(h.med.Microseconds())/1000, "hangar-ms")
	for name, c := range bareStats {
		b.ReportMetric(float64(c.med.Microseconds())/1000, name+"-ms")
	}
	b.ReportMetric(float64(f.med.Microseconds())/1000, "forkexec-ms")
}

// writeBareSpec writes an OCI config for the test app that joins nsPath.
func writeBareSpec(rt, bundle, rootfs, nsPath string) error {
	cmd := exec.Command(rt, "spec", "--bundle", bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s spec: %v: %s", rt, err, out)
	}
	p := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return err
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/app"}
	proc["env"] = []string{"PORT=8080", "PATH=/usr/bin:/bin"}
	delete(proc, "rlimits")
	spec["root"] = map[string]any{"path": rootfs, "readonly": true}
	linux := spec["linux"].(map[string]any)
	nss := linux["namespaces"].([]any)
	for i, n := range nss {
		if n.(map[string]any)["type"] == "network" {
			nss[i] = map[string]any{"type": "network", "path": nsPath}
		}
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}
