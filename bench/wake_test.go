package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// firstByte opens a new connection to the proxy, sends one request for app
// and returns the time from the request to the first byte of the answer,
// and the answer's status line.
func firstByte(b *testing.B, proxyURL, app string) (time.Duration, string) {
	b.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + app + ".test.internal\r\nConnection: close\r\n\r\n"
	start := time.Now()
	if _, err := io.WriteString(c, req); err != nil {
		b.Fatal(err)
	}
	var one [1]byte
	if _, err := io.ReadFull(c, one[:]); err != nil {
		b.Fatalf("%s: no answer: %v", app, err)
	}
	d := time.Since(start)
	rest, _ := io.ReadAll(c)
	line, _, _ := strings.Cut(string(one[:])+string(rest), "\r\n")
	return d, line
}

// BenchmarkWake measures the first byte of the first request through the
// proxy to an app whose machine autostop suspended or stopped, against a
// request to a running machine on a new connection; 20 runs each, taken
// in turn so that load drift on the shared host hits all three alike.
func BenchmarkWake(b *testing.B) {
	harness.RequireRoot(b)
	os.Setenv("HANGAR_AUTOSTOP_INTERVAL", "50ms")
	defer os.Unsetenv("HANGAR_AUTOSTOP_INTERVAL")
	bin := harness.BuildBinary(b)
	d := harness.StartDaemon(b, bin)
	ref := d.ImportTestApp()
	mk := func(app string, mode types.Autostop) string {
		if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != 201 {
			b.Fatalf("create app: %d %s", code, body)
		}
		zero := 0
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: &mode, MinMachinesRunning: &zero}}}
		code, body := d.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Config: &cfg})
		if code != 200 {
			b.Fatalf("create machine: %d %s", code, body)
		}
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		return m.ID
	}
	apps := map[string]string{"warm": mk("warm", types.AutostopOff), "suspended": mk("susp", types.AutostopSuspend), "stopped": mk("stop", types.AutostopStop)}
	names := map[string]string{"warm": "warm", "suspended": "susp", "stopped": "stop"}
	waitState := func(kind, state string) {
		harness.Poll(b, kind+" machine "+state, 30*time.Second, func() (bool, string) {
			var m types.Machine
			if err := d.Get("/v1/apps/"+names[kind]+"/machines/"+apps[kind], &m); err != nil {
				return false, err.Error()
			}
			return m.State == state, m.State
		})
	}
	// The first start of each machine (image, network) is not measured.
	for _, kind := range []string{"warm", "suspended", "stopped"} {
		harness.Poll(b, kind+" serving", 30*time.Second, func() (bool, string) {
			_, line := firstByte(b, d.HTTP, names[kind])
			return strings.Contains(line, " 200 "), line
		})
	}
	res := map[string][]time.Duration{}
	for i := 0; i < runs; i++ {
		dur, line := firstByte(b, d.HTTP, "warm")
		if !strings.Contains(line, " 200 ") {
			b.Fatalf("warm: %s", line)
		}
		res["warm"] = append(res["warm"], dur)
		for _, kind := range []string{"suspended", "stopped"} {
			waitState(kind, map[string]string{"suspended": types.StateSuspended, "stopped": types.StateStopped}[kind])
			if kind == "stopped" {
				waitParked(b, d.DataDir, apps[kind])
			}
			dur, line := firstByte(b, d.HTTP, names[kind])
			if !strings.Contains(line, " 200 ") {
				b.Fatalf("%s: %s", kind, line)
			}
			res[kind] = append(res[kind], dur)
		}
	}
	w, s, st := summarize("running machine (new connection)", res["warm"]), summarize("from suspended (thaw)", res["suspended"]), summarize("from stopped (start)", res["stopped"])
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nWake latency: first byte of the first request through the proxy, %d runs each\n", runs)
	fmt.Fprintf(&sb, "%-36s %10s %10s %10s %12s\n", "", "min", "median", "max", "added (med)")
	for _, x := range []stats{w, s, st} {
		fmt.Fprintf(&sb, "%-36s %10s %10s %10s %12s\n", x.name, x.min.Round(10*time.Microsecond), x.med.Round(10*time.Microsecond), x.max.Round(10*time.Microsecond), (x.med - w.med).Round(10*time.Microsecond))
	}
	fmt.Fprintf(&sb, "targets: suspended < 5ms added at the median; stopped < 20ms\n")
	fmt.Print(sb.String())
	b.ReportMetric(float64((s.med-w.med).Microseconds())/1000, "suspend-added-ms")
	b.ReportMetric(float64((st.med-w.med).Microseconds())/1000, "stop-added-ms")
}

// waitParked waits until a stopped machine's next start is prepared (the
// driver's parked task, see runtime.Parker), as it is long before any
// real wake: the daemon does it in the background right after the stop.
func waitParked(b *testing.B, dataDir, id string) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dataDir, "tasks", id, "parked")); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Logf("machine %s was not parked within 5s of its stop; measuring the slow start", id)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
