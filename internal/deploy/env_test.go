package deploy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/runtime/runtimetest"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// The strategy tests run the real supervisor on the in-memory driver of
// runtime/runtimetest rather than a fake Machines: state changes, leases,
// restarts, cordoning and the health checks (real HTTP requests to the
// task, which serves on a loopback address) are the supervisor's own, so
// a test sees what a deploy does to machines, not what a fake assumes.
// Only the network namespaces (runtimetest.Network) and the proxy (the
// router below, which records what may take traffic) are stand-ins; the
// e2e tests run the same deploys on crun with real traffic.

// testApp is the app every test deploys.
const testApp = "web"

// env is one host: a store, a supervisor on the fake driver, a deployer.
type env struct {
	t       *testing.T
	st      store.Store
	net     *runtimetest.Network
	drv     *runtimetest.Driver
	rt      *router
	ks      *killableStore // the store as the current daemon sees it
	sup     *supervisor.Supervisor
	d       *Deployer
	dataDir string
	port    int

	mu     sync.Mutex     // guards health
	health map[string]int // VERSION → HTTP status its tasks answer (default 200)
	// crashAfter makes tasks of a VERSION exit on their own after a while.
	crashAfter map[string]time.Duration
	// failNth makes the nth (1-based) task started of a VERSION answer 500.
	failNth map[string]int
	started map[string]int
	// releaseCommands counts the release commands run.
	releaseCommands int
	// groups, if set, gives the app the process groups web (with the
	// http_service) and worker.
	groups bool
	// mounts, if set, gives every machine a [[mounts]] of volume "data";
	// vols stands in for the host's volumes (attach and provision).
	mounts bool
	vols   *fakeVolumes
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, net: runtimetest.NewNetwork(), dataDir: t.TempDir(), port: freePort(t),
		health: map[string]int{}, crashAfter: map[string]time.Duration{}, failNth: map[string]int{}, started: map[string]int{}}
	e.drv = runtimetest.New(e.net)
	e.drv.Behave = e.behave
	e.vols = newFakeVolumes()
	t.Cleanup(func() {
		for _, id := range e.drv.Running() {
			_ = e.drv.Destroy(context.Background(), id)
		}
	})
	e.boot()
	return e
}

// boot starts a "daemon": a new supervisor and deployer on the store and
// the driver (whose tasks, like real machines, outlive the last one).
func (e *env) boot() {
	e.rt = newRouter()
	e.ks = &killableStore{Store: e.st, dead: make(chan struct{})}
	e.sup = supervisor.New(supervisor.Options{Store: e.ks, Driver: e.drv, Network: e.net, Images: images{dir: e.dataDir},
		Router: e.rt, Region: "tst", DataDir: e.dataDir, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SpecHooks: []supervisor.SpecHook{e.vols.attach}})
	e.vols.mu.Lock()
	e.vols.sup = e.sup
	e.vols.mu.Unlock()
	if err := e.sup.Recover(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.d = &Deployer{Store: e.ks, Sup: e.sup, Images: images{dir: e.dataDir}, EnsureApp: func(context.Context, string) error { return nil },
		Volumes: e.vols, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), SmokeWindow: 50 * time.Millisecond}
}

// killableStore is the store as one daemon process sees it: once killed
// (kill, or the first write killAfter picks) every later call of that
// daemon blocks for ever, as if the process were gone (kill -9), while
// the store itself and the machines' tasks live on for the next daemon.
type killableStore struct {
	store.Store
	dead      chan struct{}
	once      sync.Once
	killAfter func(key string, value []byte) bool // value nil: a delete
	// picking serializes the calls of killAfter: writes come from
	// several goroutines (a scale starts machines side by side), and the
	// tests' killAfter count them without a lock of their own.
	picking sync.Mutex
}

func (s *killableStore) kill() { s.once.Do(func() { close(s.dead) }) }

func (s *killableStore) alive() {
	select {
	case <-s.dead:
		select {} // a dead process does nothing more
	default:
	}
}

func (s *killableStore) after(key string, value []byte) {
	s.picking.Lock()
	kill := s.killAfter != nil && s.killAfter(key, value)
	s.picking.Unlock()
	if kill {
		s.kill()
	}
	s.alive()
}

func (s *killableStore) Get(ctx context.Context, key string) (store.KV, error) {
	s.alive()
	return s.Store.Get(ctx, key)
}

func (s *killableStore) List(ctx context.Context, prefix string) ([]store.KV, error) {
	s.alive()
	return s.Store.List(ctx, prefix)
}

func (s *killableStore) Put(ctx context.Context, key string, value []byte, expect int64) (int64, error) {
	s.alive()
	rev, err := s.Store.Put(ctx, key, value, expect)
	if err == nil {
		s.after(key, value)
	}
	return rev, err
}

func (s *killableStore) Delete(ctx context.Context, key string, expect int64) (int64, error) {
	s.alive()
	rev, err := s.Store.Delete(ctx, key, expect)
	if err == nil {
		s.after(key, nil)
	}
	return rev, err
}

func (s *killableStore) Txn(ctx context.Context, ops []store.Op) (int64, error) {
	s.alive()
	rev, err := s.Store.Txn(ctx, ops)
	if err == nil {
		for _, op := range ops {
			if op.Delete {
				s.after(op.Key, nil)
			} else {
				s.after(op.Key, op.Value)
			}
		}
	}
	return rev, err
}

// restart kills the daemon (if a kill point has not) and starts another
// on the same store and machines, which settles the interrupted deploy.
func (e *env) restart() {
	e.t.Helper()
	e.ks.kill()
	e.sup.Shutdown()
	e.boot()
	if err := e.d.Resume(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.d.WaitResumed()
}

// behave is how a task of the test app behaves: it serves PORT, answering
// with its VERSION; a release command (RELEASE_COMMAND=1) prints two lines
// and exits with the code its args name ("migrate exit 3").
func (e *env) behave(spec runtime.Spec) runtimetest.Behavior {
	if runtimetest.Env(spec, "RELEASE_COMMAND") == "1" {
		e.mu.Lock()
		e.releaseCommands++
		e.mu.Unlock()
		b := runtimetest.Behavior{ExitAfter: 20 * time.Millisecond, Output: []string{"migrating " + runtimetest.Env(spec, "VERSION"), "migrated"}}
		if len(spec.Args) == 3 && spec.Args[1] == "exit" {
			b.ExitCode, _ = strconv.Atoi(spec.Args[2])
		}
		return b
	}
	v := runtimetest.Env(spec, "VERSION")
	port, _ := strconv.Atoi(runtimetest.Env(spec, "PORT"))
	e.mu.Lock()
	defer e.mu.Unlock()
	e.started[v]++
	b := runtimetest.Behavior{Ports: []int{port}, Body: v, Status: e.health[v], ExitAfter: e.crashAfter[v], ExitCode: 1}
	if n := e.failNth[v]; n > 0 && e.started[v] == n {
		b.Status = http.StatusInternalServerError
	}
	return b
}

func (e *env) setHealth(version string, status int) {
	e.mu.Lock()
	e.health[version] = status
	e.mu.Unlock()
}

// flyToml is the test app's config at version, with extra [deploy] lines.
func (e *env) flyToml(version string, deployLines ...string) []byte {
	if !strings.Contains(strings.Join(deployLines, "\n"), "wait_timeout") {
		deployLines = append(deployLines, `  wait_timeout = "3s"`)
	}
	processes, serviceGroups, mounts := "", "", ""
	if e.mounts {
		mounts = "[[mounts]]\n  source = \"data\"\n  destination = \"/data\"\n  initial_size = \"2gb\"\n  snapshot_retention = 14\n"
	}
	if e.groups {
		processes = "[processes]\n  web = \"serve web\"\n  worker = \"serve worker\"\n"
		serviceGroups = `  processes = ["web"]`
	}
	return []byte(fmt.Sprintf(`app = %q
primary_region = "tst"
%s
[env]
  VERSION = %q
  PORT = "%d"

[http_service]
  internal_port = %d
%s
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/"

[deploy]
%s

%s`, testApp, processes, version, e.port, e.port, serviceGroups, strings.Join(deployLines, "\n"), mounts))
}

// deploy deploys version with req's other fields; it returns the release,
// the progress messages and the error.
func (e *env) deploy(version string, req Request, deployLines ...string) (*Release, []string, error) {
	e.t.Helper()
	req.Config = e.flyToml(version, deployLines...)
	req.ConfigFile = "fly.toml"
	if req.Image == "" {
		req.Image = "web:" + version
	}
	var mu sync.Mutex
	var msgs []string
	rel, err := e.d.Deploy(context.Background(), req, func(ev Event) {
		mu.Lock()
		msgs = append(msgs, ev.Step+": "+ev.Message)
		mu.Unlock()
	})
	return rel, msgs, err
}

// mustDeploy deploys version and fails the test unless it completes.
func (e *env) mustDeploy(version string, req Request, deployLines ...string) *Release {
	e.t.Helper()
	rel, msgs, err := e.deploy(version, req, deployLines...)
	if err != nil {
		e.t.Fatalf("deploy %s: %v\n%s", version, err, strings.Join(msgs, "\n"))
	}
	if rel.Status != StatusComplete {
		e.t.Fatalf("deploy %s: release %+v", version, rel)
	}
	return rel
}

// machines lists the app's machines (not the release command's).
func (e *env) machines() []*supervisor.Record {
	e.t.Helper()
	ms, err := e.sup.List(context.Background(), testApp)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*supervisor.Record
	for _, m := range ms {
		if groupOf(m) != appconfig.ReleaseCommandGroup {
			out = append(out, m)
		}
	}
	return out
}

// requireServing checks that the app has exactly n machines, all started,
// routed, at release version, answering with VERSION want over HTTP.
func (e *env) requireServing(n, release int, want string) []string {
	e.t.Helper()
	ms := e.machines()
	var ids []string
	var bad []string
	for _, m := range ms {
		ids = append(ids, m.ID)
		if m.State != types.StateStarted || m.Config.Metadata[types.MetaRelease] != strconv.Itoa(release) || m.Config.Env["VERSION"] != want {
			bad = append(bad, fmt.Sprintf("%s %s release %s version %s", m.ID, m.State, m.Config.Metadata[types.MetaRelease], m.Config.Env["VERSION"]))
			continue
		}
		if body := e.get(m); !strings.Contains(body, m.ID+" "+want) {
			bad = append(bad, fmt.Sprintf("%s answers %q", m.ID, body))
		}
	}
	if len(ms) != n || len(bad) > 0 {
		e.t.Fatalf("want %d machines of release v%d (%s) serving, have %d: %v", n, release, want, len(ms), bad)
	}
	// The proxy routes to exactly these (checks run, so allow a moment).
	deadline := time.Now().Add(3 * time.Second)
	for {
		routed := e.rt.routed()
		if equalSets(routed, ids) {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("routed machines %v, want %v", routed, ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if running := e.drv.Running(); !equalSets(running, ids) {
		e.t.Fatalf("tasks running %v, want those of the machines %v", running, ids)
	}
	return ids
}

func (e *env) get(m *supervisor.Record) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(m.IPv4, strconv.Itoa(e.port)) + "/")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (e *env) release(v int) *Release {
	e.t.Helper()
	r, err := GetRelease(context.Background(), e.st, testApp, v)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x] == 0 {
			return false
		}
		seen[x]--
	}
	return true
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// images serves any reference as an image whose digest follows the tag.
type images struct{ dir string }

func (i images) Get(ctx context.Context, ref string) (*image.Image, error) {
	return &image.Image{Ref: ref, Digest: fmt.Sprintf("sha256:%064x", len(ref)), RootFS: i.dir, Config: image.Config{Cmd: []string{"serve"}}}, nil
}

// router records what the supervisor tells the proxy: which machines may
// take traffic, and the fewest and most that could at once after the
// first machine was routed.
type router struct {
	mu       sync.Mutex // guards the fields below
	routable map[string]bool
	low      int
	high     int
	watching bool
}

func newRouter() *router { return &router{routable: map[string]bool{}} }

func (r *router) SetBackend(b proxy.Backend, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		r.routable[b.MachineID] = true
	} else {
		delete(r.routable, b.MachineID)
	}
	r.noteLocked()
}

func (r *router) Drain(ctx context.Context, app, id string) error { return nil }

func (r *router) Remove(app, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routable, id)
	r.noteLocked()
}

func (r *router) noteLocked() {
	if !r.watching {
		return
	}
	r.low = min(r.low, len(r.routable))
	r.high = max(r.high, len(r.routable))
}

// watch starts recording the fewest and most routable machines.
func (r *router) watch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watching = true
	r.low, r.high = len(r.routable), len(r.routable)
}

// bounds returns the fewest and most routable machines since watch.
func (r *router) bounds() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.low, r.high
}

func (r *router) routed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id := range r.routable {
		out = append(out, id)
	}
	return out
}
