// Package harness runs the real hangar binary for end-to-end tests and
// benchmarks: a daemon on a temp data dir, free ports and a bridge of its
// own, plus helpers to call its API, its proxy and its CLI; and a cluster
// of such daemons, each in a network namespace of its own, joined by a
// fabric the test can cut and delay (StartCluster, see cluster.go).
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/testapp"
	"github.com/hangar-dev/hangar/internal/types"
)

func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Daemon is one running `hangar server` with its own data dir, free ports,
// bridge and subnets.
type Daemon struct {
	t       testing.TB
	bin     string
	DataDir string
	args    []string
	cmd     *exec.Cmd
	pid     int // the daemon after a Reload (not a child of the test)
	API     string
	HTTP    string
	HTTPS   string // host:port of the HTTPS listener, if --https-listen was given
	Metrics string // base URL of /metrics (--metrics-listen; "" if turned off)
	Token   string
	logf    *os.File

	// netns, if set, is the network namespace (a name under /run/netns)
	// the daemon and its CLI run in: only the network namespace is
	// entered (nsenter --net), since `ip netns exec` remounts /sys and
	// hides the cgroup tree from the runtime.
	netns string
	// startTimeout bounds Start (default 20s).
	startTimeout time.Duration
}

// command is the hangar binary with args, in the daemon's network
// namespace if it has one.
func (d *Daemon) command(args ...string) *exec.Cmd {
	if d.netns == "" {
		return exec.Command(d.bin, args...)
	}
	return exec.Command("nsenter", append([]string{"--net=" + netnsPath(d.netns), "--", d.bin}, args...)...)
}

// BuildBinary builds cmd/hangar into a temp dir.
func BuildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hangar")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hangar")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hangar: %v\n%s", err, out)
	}
	return bin
}

// RequireRoot skips unless the host can run machines.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests need root (containers, network namespaces)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err := exec.LookPath("crun"); err != nil {
			t.Skip("end-to-end tests need crun or runc: apt-get install -y crun runc")
		}
	}
}

// StartDaemon starts `hangar server` and removes everything it made when
// the test ends.
func StartDaemon(t testing.TB, bin string) *Daemon {
	t.Helper()
	return StartDaemonWith(t, bin)
}

// StartDaemonWith is StartDaemon with extra `hangar server` flags (for
// instance "--https-listen", "127.0.0.1:0", "--acme-directory", "off").
func StartDaemonWith(t testing.TB, bin string, extraArgs ...string) *Daemon {
	t.Helper()
	return StartDaemonIn(t, bin, t.TempDir(), extraArgs...)
}

// StartDaemonIn is StartDaemonWith on a data dir of the caller's (a small
// tmpfs, say). The daemon's own output goes to a file outside it.
func StartDaemonIn(t testing.TB, bin, dataDir string, extraArgs ...string) *Daemon {
	t.Helper()
	n := rand.Intn(200) + 20
	d := &Daemon{t: t, bin: bin, DataDir: dataDir}
	bridge := fmt.Sprintf("hge%04x", rand.Intn(0xffff))
	d.args = []string{"server", "--data-dir", d.DataDir, "--api-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--domain", "test.internal", "--region", "tst", "--bridge", bridge,
		"--subnet", fmt.Sprintf("10.%d.%d.0/24", 100+rand.Intn(50), n), "--subnet6", fmt.Sprintf("fdaa:0:%x::/64", 0x1000+rand.Intn(0xe000))}
	d.args = append(d.args, extraArgs...)
	var err error
	d.logf, err = os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() {
		// Destroy every app (and so every machine), then the daemon and
		// its bridge, even when the test failed.
		d.deleteApps(t)
		d.Stop(syscall.SIGTERM)
		d.forceCleanup(t, true)
		_ = exec.Command("ip", "link", "del", bridge).Run()
		for _, family := range []string{"ip", "ip6"} {
			_ = exec.Command("nft", "delete", "table", family, "hangar_"+bridge).Run()
		}
		if t.Failed() {
			b, _ := os.ReadFile(d.logf.Name())
			t.Logf("daemon log:\n%s", b)
		}
		d.logf.Close()
		d.checkMachineNetns(t)
	})
	return d
}

// LogPath is the file the daemon's own output (its log) goes to.
func (d *Daemon) LogPath() string { return d.logf.Name() }

// running reports whether the daemon process is up (as far as the
// harness started or reloaded it).
func (d *Daemon) running() bool { return d.cmd != nil || d.pid != 0 }

// deleteApps deletes every app through the API, and so every machine. A
// daemon that is not running is left alone; one that does not answer is an
// error (its machines are then removed by force).
func (d *Daemon) deleteApps(t testing.TB) {
	if !d.running() {
		return
	}
	var res struct {
		Apps []types.App `json:"apps"`
	}
	code, body, err := d.call("GET", "/v1/apps", nil)
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &res) != nil {
		t.Errorf("cleanup: the daemon does not answer (%d %v); its machines are removed by force", code, err)
		return
	}
	for _, a := range res.Apps {
		// Another daemon on the same state may have deleted it already.
		if code, body, err := d.call("DELETE", "/v1/apps/"+a.Name, nil); code != http.StatusAccepted && code != http.StatusNotFound {
			t.Errorf("cleanup: delete app %s: %d %s %v", a.Name, code, body, err)
		}
	}
}

// checkMachineNetns reports network namespaces of this daemon's machines
// that are still there.
func (d *Daemon) checkMachineNetns(t testing.TB) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "hangar-") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "hangar-")
			if _, err := os.Stat(filepath.Join(d.DataDir, "machines", id)); err == nil {
				t.Errorf("network namespace of machine %s left behind", id)
			}
		}
	}
}

// Start (re)starts the daemon process and waits until it serves.
func (d *Daemon) Start() {
	t := d.t
	_ = os.Remove(filepath.Join(d.DataDir, "api-addr"))
	_ = os.Remove(filepath.Join(d.DataDir, "http-addr"))
	_ = os.Remove(filepath.Join(d.DataDir, "https-addr"))
	_ = os.Remove(filepath.Join(d.DataDir, "metrics-addr"))
	d.cmd = d.command(d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d.logf, d.logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	timeout := d.startTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		a, err1 := os.ReadFile(filepath.Join(d.DataDir, "api-addr"))
		h, err2 := os.ReadFile(filepath.Join(d.DataDir, "http-addr"))
		s, err3 := os.ReadFile(filepath.Join(d.DataDir, "https-addr"))
		m, err4 := os.ReadFile(filepath.Join(d.DataDir, "metrics-addr"))
		if err1 == nil && err2 == nil && (err3 == nil || !slices.Contains(d.args, "--https-listen")) && (err4 == nil || d.flag("--metrics-listen") == "") {
			d.API, d.HTTP = "http://"+strings.TrimSpace(string(a)), "http://"+strings.TrimSpace(string(h))
			d.HTTPS = strings.TrimSpace(string(s))
			d.Metrics = ""
			if err4 == nil {
				d.Metrics = "http://" + strings.TrimSpace(string(m))
			}
			break
		}
		// With fixed ports the daemon is found without its address files
		// (which it may be unable to write, on a full disk). Its API
		// answering, not only its port accepting (bound long before it
		// serves), says it is up, and that it has written the files
		// the CLI reads, if it could.
		if api, httpAddr := d.flag("--api-listen"), d.flag("--http-listen"); fixedPort(api) && fixedPort(httpAddr) && d.answersAt(api) {
			d.API, d.HTTP = "http://"+api, "http://"+httpAddr
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(d.logf.Name())
			t.Fatalf("daemon did not start within %v:\n%s", timeout, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(d.DataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	d.Token = strings.TrimSpace(string(tok))
	if fi, _ := os.Stat(filepath.Join(d.DataDir, "admin-token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("admin-token mode = %v, want 0600", fi.Mode().Perm())
	}
}

// answersAt reports whether an HTTP server answers at addr (any status).
func (d *Daemon) answersAt(addr string) bool {
	c := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/v1/apps")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// flag returns the last value given for a `hangar server` flag.
func (d *Daemon) flag(name string) string {
	v := ""
	for i := 0; i+1 < len(d.args); i++ {
		if d.args[i] == name {
			v = d.args[i+1]
		}
	}
	return v
}

func fixedPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != "" && port != "0"
}

// Stop signals the daemon and waits for it to exit.
func (d *Daemon) Stop(sig syscall.Signal) {
	if d.pid != 0 {
		_ = syscall.Kill(d.pid, sig)
		if !waitGone(d.pid, 20*time.Second) {
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
			waitGone(d.pid, 5*time.Second)
		}
		d.pid = 0
		return
	}
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	exited := make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		// A daemon that does not stop must not hang the test's cleanup.
		// SIGQUIT first: Go prints every goroutine's stack to the daemon
		// log (shown when the test fails), which says where it hung.
		d.t.Errorf("daemon %d did not exit within 60s of %v: killed (its goroutines are at the end of its log)", d.cmd.Process.Pid, sig)
		_ = d.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			<-exited
		}
	}
	d.cmd = nil
}

// Reload sends the daemon SIGHUP, waits for the old process to exit and
// for the new one (named in the data dir's hangar.pid) to serve the API,
// and returns the new pid. The daemon is then no child of the test; Stop
// still stops it.
func (d *Daemon) Reload() int {
	t := d.t
	t.Helper()
	old := d.pid
	if d.cmd != nil {
		old = d.cmd.Process.Pid
	}
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		t.Fatalf("reload: signal daemon %d: %v", old, err)
	}
	if d.cmd != nil {
		_ = d.cmd.Wait()
		d.cmd = nil
	} else if !waitGone(old, 90*time.Second) {
		t.Fatalf("reload: the old daemon %d did not exit", old)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(d.DataDir, "hangar.pid"))
		var pid int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &pid); err == nil && pid != old && pid > 0 {
			if code, _ := d.Call("GET", "/v1/apps", nil); code == http.StatusOK {
				d.pid = pid
				return pid
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(d.logf.Name())
			t.Fatalf("reload: no new daemon serving after 60s:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until pid is gone (or a zombie nobody reaps: the reloaded
// daemon's parent is init); with max 0 it looks once.
func waitGone(pid int, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Hangar runs the CLI against this daemon.
func (d *Daemon) Hangar(args ...string) (string, error) {
	cmd := d.command(args...)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "HANGAR_DATA_DIR="+d.DataDir, "HANGAR_API_URL=", "HANGAR_API_TOKEN=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Call sends an authenticated API request and returns status and body.
func (d *Daemon) Call(method, path string, body any) (int, string) {
	code, b, err := d.call(method, path, body)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

// call is Call that returns a transport error instead of failing the test
// (cleanup must go on when the daemon is gone).
func (d *Daemon) call(method, path string, body any) (int, string, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, d.API+path, rd)
	req.Header.Set("Authorization", "Bearer "+d.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Get decodes a GET of the API into out.
func (d *Daemon) Get(path string, out any) error {
	code, body := d.Call("GET", path, nil)
	if code != 200 {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return json.Unmarshal([]byte(body), out)
}

// ViaProxy sends a request for app through the proxy.
func (d *Daemon) ViaProxy(app, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", d.HTTP+path, nil)
	req.Host = app + ".test.internal"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Machines lists an app's machines.
func (d *Daemon) Machines(app string) []types.Machine {
	var ms []types.Machine
	if err := d.Get("/v1/apps/"+app+"/machines", &ms); err != nil {
		d.t.Fatal(err)
	}
	return ms
}

// CountEvents counts a machine's events of one type.
func CountEvents(m types.Machine, typ string) int {
	n := 0
	for _, e := range m.Events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// Poll calls f until it reports true or timeout passes.
func Poll(t testing.TB, what string, timeout time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := f()
		if ok {
			return
		}
		last = s
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %v (last: %s)", what, timeout, last)
}

// ImportTestApp builds the test app (internal/testapp) into an image,
// imports it with the CLI and returns its reference.
func (d *Daemon) ImportTestApp() string {
	t := d.t
	t.Helper()
	img, err := image.BuildGo(context.Background(), testapp.Source(), image.GoBuildOptions{Name: "testapp"})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "testapp.tar")
	if err := image.WriteOCIArchive(img, "testapp:e2e", archive); err != nil {
		t.Fatal(err)
	}
	out, err := d.Hangar("image", "import", archive, "--ref", "testapp:e2e")
	if err != nil {
		t.Fatalf("image import: %v\n%s", err, out)
	}
	var imgs []types.Image
	if err := d.Get("/v1/images", &imgs); err != nil {
		t.Fatal(err)
	}
	for _, i := range imgs {
		if strings.Contains(i.Ref, "testapp") {
			return i.Ref
		}
	}
	t.Fatalf("imported image not listed: %+v", imgs)
	return ""
}

// forceCleanup removes whatever machines the API could not: containers in
// the daemon's runtime state, their shims, overlay mounts and namespaces,
// and the tmpfs of their [[files]]. With report it reports each machine it
// had to remove, since a passing test should leave nothing for it.
func (d *Daemon) forceCleanup(t testing.TB, report bool) {
	for _, id := range removeMachines(d.DataDir, true) {
		if report && !t.Failed() {
			t.Errorf("machine %s was left behind by the test (removed by force)", id)
		}
	}
}

// removeMachines removes the machines of a data dir by force and returns
// their ids. killShims kills the pids in their shim.pid files: only for a
// data dir whose daemon ran in this test process, since the pid of a shim
// that died long ago may be another process's by now.
func removeMachines(dataDir string, killShims bool) []string {
	// [[files]] contents live on a tmpfs outside the data dir.
	defer os.RemoveAll(filepath.Dir(secrets.RunDirFor(dataDir)))
	tasks := filepath.Join(dataDir, "tasks")
	entries, _ := os.ReadDir(tasks)
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		id := e.Name()
		if b, err := os.ReadFile(filepath.Join(tasks, id, "shim.pid")); err == nil && killShims {
			var pid int
			if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &pid); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		for _, rt := range []string{"runc", "crun"} {
			_ = exec.Command(rt, "--root", filepath.Join(tasks, ".oci-state"), "delete", "-f", id).Run()
		}
		_ = syscall.Unmount(filepath.Join(tasks, id, "bundle", "rootfs"), syscall.MNT_DETACH)
		_ = exec.Command("ip", "netns", "delete", "hangar-"+id).Run()
		ids = append(ids, id)
	}
	return ids
}
