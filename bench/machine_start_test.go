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
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/network"
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

func ociRuntime() string {
	if p, err := exec.LookPath("crun"); err == nil {
		// crun refuses hybrid cgroup hosts, as Hangar's driver knows.
		if _, err := os.Stat("/sys/fs/cgroup/unified"); err != nil {
			return p
		}
	}
	p, _ := exec.LookPath("runc")
	return p
}

// BenchmarkMachineStart measures API create → first 200 through the proxy,
// with the image already unpacked, against a bare OCI runtime start of the
// same rootfs (in a ready network namespace) and a plain fork/exec of the
// same binary, each until it answers HTTP.
func BenchmarkMachineStart(b *testing.B) {
	harness.RequireRoot(b)
	bin := harness.BuildBinary(b)
	d := harness.StartDaemon(b, bin)
	ref := d.ImportTestApp()
	var imgs []image.Image
	if err := d.Get("/v1/images", &imgs); err != nil {
		b.Fatal(err)
	}
	var rootfs string
	for _, i := range imgs {
		if i.Ref == ref {
			rootfs = i.RootFS
		}
	}
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "bench"}); code != 201 {
		b.Fatalf("create app: %d %s", code, body)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	noKeep := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	// Hangar: API create → 200 through the proxy.
	var hangar []time.Duration
	runHangar := func(i int) {
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}}}
		start := time.Now()
		code, body := d.Call("POST", "/v1/apps/bench/machines", types.CreateMachineRequest{Config: &cfg})
		if code != 200 {
			b.Fatalf("create: %d %s", code, body)
		}
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		if err := waitFor(client, d.HTTP+"/", "bench.test.internal", m.ID, 20*time.Second); err != nil {
			b.Fatal(err)
		}
		hangar = append(hangar, time.Since(start))
		if code, body := d.Call("DELETE", "/v1/apps/bench/machines/"+m.ID+"?force=true", nil); code != 200 {
			b.Fatalf("destroy: %d %s", code, body)
		}
	}

	// Bare OCI runtime in a prepared namespace.
	rt := ociRuntime()
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
	bundle := b.TempDir()
	if err := writeBareSpec(rt, bundle, rootfs, nsPath); err != nil {
		b.Fatal(err)
	}
	stateDir := b.TempDir()
	var bare []time.Duration
	runBare := func(i int) {
		id := fmt.Sprintf("benchbare%d", i)
		start := time.Now()
		// The detached container inherits the runtime's stdio, so give it
		// /dev/null (a pipe would never reach EOF) and read errors from --log.
		logPath := filepath.Join(stateDir, id+".log")
		cmd := exec.Command(rt, "--root", stateDir, "--log", logPath, "run", "-d", "--bundle", bundle, id)
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(logPath)
			b.Fatalf("%s run: %v: %s", rt, err, out)
		}
		b.Cleanup(func() { _ = exec.Command(rt, "--root", stateDir, "delete", "-f", id).Run() })
		if err := waitFor(noKeep, "http://"+net.JoinHostPort(ip4.String(), "8080")+"/", "", "hits=", 20*time.Second); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, time.Since(start))
		_ = exec.Command(rt, "--root", stateDir, "delete", "-f", id).Run()
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
	// three alike.
	for i := 0; i < runs; i++ {
		runHangar(i)
		runBare(i)
		runFork(i)
	}

	h, c, f := summarize("hangar (API create → 200 via proxy)", hangar), summarize(filepath.Base(rt)+" run -d → 200", bare), summarize("fork/exec → 200", fork)
	fmt.Printf("\nMachine start, %d runs each (image unpacked):\n", runs)
	fmt.Printf("%-40s %10s %10s %10s\n", "", "min", "median", "max")
	for _, s := range []stats{h, c, f} {
		fmt.Printf("%-40s %10s %10s %10s\n", s.name, s.min.Round(10*time.Microsecond), s.med.Round(10*time.Microsecond), s.max.Round(10*time.Microsecond))
	}
	fmt.Printf("ratio of medians: hangar/%s = %.2fx (target ≤ 1.5x), hangar/fork-exec = %.1fx\n\n",
		filepath.Base(rt), float64(h.med)/float64(c.med), float64(h.med)/float64(f.med))
	b.ReportMetric(float64(h.med.Microseconds())/1000, "hangar-ms")
	b.ReportMetric(float64(c.med.Microseconds())/1000, "bare-ms")
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
