package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// wrkResult is one wrk run.
type wrkResult struct {
	name     string
	rps      float64
	p50, p99 time.Duration
	errors   string
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: .*`)
)

// runWrk runs wrk (keep-alive HTTP/1.1) against url with Host host.
func runWrk(b *testing.B, name, url, host string, d time.Duration, conns int) wrkResult {
	return runWrkArgs(b, name, url, host, d, conns)
}

// runWrkArgs is runWrk with more wrk arguments (a script, headers).
func runWrkArgs(b *testing.B, name, url, host string, d time.Duration, conns int, extra ...string) wrkResult {
	b.Helper()
	args := []string{"-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency", "--timeout", "5s"}
	if host != "" {
		args = append(args, "-H", "Host: "+host)
	}
	args = append(args, extra...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", name, err, out)
	}
	r := wrkResult{name: name}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		b.Fatalf("wrk %s: no Requests/sec in\n%s", name, out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, pm := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(pm[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(pm[3])]
		dur := time.Duration(v * float64(unit))
		if string(pm[1]) == "50" {
			r.p50 = dur
		} else {
			r.p99 = dur
		}
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		r.errors += "non-2xx " + string(m[1]) + " "
	}
	if m := wrkSockErr.Find(out); m != nil {
		r.errors += string(m)
	}
	return r
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProc starts a foreground process that is killed when the benchmark
// ends, and waits until url answers; it returns the process (the leader
// of its own process group).
func startProc(b *testing.B, url, host string, name string, args ...string) *os.Process {
	b.Helper()
	cmd := exec.Command(name, args...)
	logf, _ := os.Create(filepath.Join(b.TempDir(), filepath.Base(name)+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "HOME="+b.TempDir())
	// Its own process group: nginx's workers outlive a killed master, so
	// the whole group is stopped (TERM, then KILL) and waited for.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	b.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		// Workers may exit just after the master: wait for the group to empty.
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		logf.Close()
	})
	if err := waitFor(http.DefaultClient, url, host, "hits=", 10*time.Second); err != nil {
		out, _ := os.ReadFile(logf.Name())
		b.Fatalf("%s: %v\n%s", name, err, out)
	}
	return cmd.Process
}

// medianResult takes the median of each figure over rounds.
func medianResult(rs []wrkResult) wrkResult {
	out := wrkResult{name: rs[0].name}
	rps := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	for i, r := range rs {
		rps[i], p50[i], p99[i] = r.rps, r.p50, r.p99
		out.errors += r.errors
	}
	sort.Float64s(rps)
	sort.Slice(p50, func(i, j int) bool { return p50[i] < p50[j] })
	sort.Slice(p99, func(i, j int) bool { return p99[i] < p99[j] })
	out.rps, out.p50, out.p99 = rps[len(rs)/2], p50[len(rs)/2], p99[len(rs)/2]
	return out
}
