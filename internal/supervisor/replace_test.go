package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// fakeDriver records stops and lets a test look at the machine while its
// task is being stopped.
type fakeDriver struct {
	mu      sync.Mutex
	running map[string]bool
	stops   []string
	onStop  func(id string)
}

func (d *fakeDriver) Name() string { return "fake" }
func (d *fakeDriver) Start(ctx context.Context, spec runtime.Spec) (runtime.Status, error) {
	panic("not used")
}
func (d *fakeDriver) Recover(ctx context.Context, id string) (runtime.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running[id] {
		return runtime.Status{}, runtime.ErrNotFound
	}
	return runtime.Status{ID: id, Running: true, Pid: 1}, nil
}
func (d *fakeDriver) Wait(ctx context.Context, id string) (runtime.ExitResult, error) {
	<-ctx.Done()
	return runtime.ExitResult{}, ctx.Err()
}
func (d *fakeDriver) Stop(ctx context.Context, id, signal string, timeout time.Duration) error {
	if d.onStop != nil {
		d.onStop(id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stops = append(d.stops, id+" "+signal)
	d.running[id] = false
	return nil
}
func (d *fakeDriver) Destroy(ctx context.Context, id string) error { return nil }
func (d *fakeDriver) Inspect(ctx context.Context, id string) (runtime.Status, error) {
	return d.Recover(ctx, id)
}

// fakeRouter records what the supervisor tells the proxy.
type fakeRouter struct {
	mu   sync.Mutex
	log  []string
	down []string // the last backend's DownServices
}

func (r *fakeRouter) note(s string) { r.mu.Lock(); r.log = append(r.log, s); r.mu.Unlock() }
func (r *fakeRouter) SetBackend(b types.Backend, routable bool) {
	r.mu.Lock()
	r.down = b.DownServices
	r.mu.Unlock()
	if routable {
		r.note("routable " + b.MachineID)
	} else {
		r.note("unroutable " + b.MachineID)
	}
}
func (r *fakeRouter) Drain(ctx context.Context, app, id string) error {
	r.note("drain " + id)
	return nil
}
func (r *fakeRouter) Remove(app, id string) { r.note("remove " + id) }
func (r *fakeRouter) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, ", ")
}

type fakeImages struct{}

func (fakeImages) Get(ctx context.Context, ref string) (*image.Image, error) {
	return &image.Image{Ref: ref, Digest: "sha256:" + strings.Repeat("ab", 32)}, nil
}

// withTask is a supervisor whose machines' tasks are fakes; its data dir
// is a temp dir, so [[files]] live under /dev/shm or there.
func withTask(t *testing.T) (*Supervisor, store.Store, *fakeDriver, *fakeRouter) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &fakeDriver{running: map[string]bool{}}
	rt := &fakeRouter{}
	dataDir := t.TempDir()
	s := New(Options{Store: st, Driver: d, Router: rt, Images: fakeImages{}, DataDir: dataDir})
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(FilesDirFor(dataDir))) })
	return s, st, d, rt
}

// putRunning records a machine with a service in state and gives it a
// task and a [[files]] directory, as a boot would have.
func putRunning(t *testing.T, s *Supervisor, st store.Store, d *fakeDriver, id, state string) string {
	t.Helper()
	r := &Record{Machine: types.Machine{ID: id, State: state, InstanceID: "01AAA", UpdatedAt: now(),
		Config: &types.MachineConfig{Image: "img:1", Services: []types.MachineService{{InternalPort: 8080}}}}, App: "a"}
	if _, err := store.PutJSON(context.Background(), st, machineKey("a", id), r, 0); err != nil {
		t.Fatal(err)
	}
	d.running[id] = hasTask(state) || state == types.StateReplacing
	files := filepath.Join(s.filesDir, id)
	if err := os.MkdirAll(files, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "0"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return files
}

func gone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s is still there (%v)", path, err)
	}
}

func TestUpdateIsReplacingWhileTheOldTaskStops(t *testing.T) {
	s, st, d, rt := withTask(t)
	ctx := context.Background()
	files := putRunning(t, s, st, d, "m1", types.StateStarted)
	var during string
	d.onStop = func(id string) {
		r, _ := s.Get(ctx, "a", id)
		during = r.State + " " + rt.String()
	}
	cfg := &types.MachineConfig{Image: "img:2", Services: []types.MachineService{{InternalPort: 8080}}}
	r, err := s.UpdateWith(ctx, "a", "m1", cfg, LaunchNever)
	if err != nil {
		t.Fatal(err)
	}
	// Out of rotation before it was replacing, drained before the stop.
	if during != "replacing unroutable m1, drain m1" {
		t.Fatalf("while the old task stopped: %q", during)
	}
	if r.State != types.StateStopped || r.InstanceID == "01AAA" || r.Config.Image != "img:2" || len(r.Versions) != 1 || r.Versions[0].InstanceID != "01AAA" {
		t.Fatalf("after the update: %+v", r)
	}
	var evs []string
	for _, e := range r.Events {
		evs = append(evs, e.Type+"/"+e.Status+"/"+e.Source)
	}
	if strings.Join(evs, ",") != "update/replacing/user" {
		t.Fatalf("events = %v, want only the update (the old task's stop is part of it)", evs)
	}
	if len(d.stops) != 1 || d.stops[0] != "m1 SIGINT" {
		t.Fatalf("stops = %v", d.stops)
	}
	gone(t, files)
	if r.Relaunch {
		t.Fatal("relaunch left set")
	}

	// A created machine updated with skip_launch stays created.
	putRunning(t, s, st, d, "m2", types.StateCreated)
	r, err = s.UpdateWith(ctx, "a", "m2", cfg, LaunchNever)
	if err != nil || r.State != types.StateCreated || len(d.stops) != 1 {
		t.Fatalf("created machine: %+v %v (stops %v)", r, err, d.stops)
	}
}

func TestStopRemovesFiles(t *testing.T) {
	s, st, d, _ := withTask(t)
	ctx := context.Background()
	files := putRunning(t, s, st, d, "m1", types.StateStarted)
	if _, err := s.Stop(ctx, "a", "m1", "", 0); err != nil {
		t.Fatal(err)
	}
	gone(t, files)
	// Never anything but one machine's own directory.
	for _, bad := range []string{"", ".", "..", "../x", "a/b"} {
		s.removeFiles(bad)
	}
	if _, err := os.Stat(s.filesDir); err != nil {
		t.Fatalf("files dir: %v", err)
	}
}

func TestRecoverFinishesAnInterruptedUpdate(t *testing.T) {
	s, st, d, _ := withTask(t)
	ctx := context.Background()
	files := putRunning(t, s, st, d, "m1", types.StateReplacing)
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(ctx, "a", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != types.StateStopped || len(d.stops) != 1 {
		t.Fatalf("after recovery: %s, stops %v", r.State, d.stops)
	}
	gone(t, files)
}

// TestInformationalChecksDoNotGateTraffic: a top-level check of kind
// informational is reported but never takes the machine out of routing;
// a readiness check (the default) does.
func TestInformationalChecksDoNotGateTraffic(t *testing.T) {
	s, _, _, rt := withTask(t)
	cfg := &types.MachineConfig{Image: "img:1", Services: []types.MachineService{{InternalPort: 8080}},
		Checks: map[string]types.MachineCheck{"info": {Kind: "informational"}, "ready": {Kind: "readiness"}}}
	r := &Record{Machine: types.Machine{ID: "m1", State: types.StateStarted, Config: cfg}, App: "a"}
	l := s.liveFor("a", "m1")
	route := func(info, ready string) string {
		l.stateMu.Lock()
		l.checks = map[string]types.CheckStatus{"info": {Name: "info", Status: info}, "ready": {Name: "ready", Status: ready}}
		l.stateMu.Unlock()
		rt.mu.Lock()
		rt.log = nil
		rt.mu.Unlock()
		s.routeUpdate(l, r)
		return rt.String()
	}
	if got := route(types.CheckCritical, types.CheckPassing); got != "routable m1" {
		t.Errorf("failing informational check: %s, want routable", got)
	}
	if got := route(types.CheckPassing, types.CheckCritical); got != "unroutable m1" {
		t.Errorf("failing readiness check: %s, want unroutable", got)
	}
}

// TestServiceChecksGateTheirService: a raw TCP service's failing checks
// take the machine out of that service only (DownServices), so a Postgres
// member is routable on the replicas' port and not the primary's; checks
// of an HTTP service still take the whole machine out.
func TestServiceChecksGateTheirService(t *testing.T) {
	s, _, _, rt := withTask(t)
	p1, p2 := 5432, 5433
	svc := func(port int, path string) types.MachineService {
		return types.MachineService{Protocol: "tcp", InternalPort: 5432, Ports: []types.MachinePort{{Port: &port}},
			Checks: []types.MachineCheck{{Type: "http", Path: path}}}
	}
	cfg := &types.MachineConfig{Image: "img:1", Services: []types.MachineService{svc(p1, "/primary"), svc(p2, "/replica")}}
	r := &Record{Machine: types.Machine{ID: "m1", State: types.StateStarted, Config: cfg}, App: "a"}
	l := s.liveFor("a", "m1")
	route := func(statuses ...string) (string, []string) {
		l.stateMu.Lock()
		l.checks = map[string]types.CheckStatus{}
		for i, c := range machineChecks(cfg) {
			l.checks[c.name] = types.CheckStatus{Name: c.name, Status: statuses[i]}
		}
		l.stateMu.Unlock()
		rt.mu.Lock()
		rt.log = nil
		rt.mu.Unlock()
		s.routeUpdate(l, r)
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return strings.Join(rt.log, ", "), rt.down
	}
	got, down := route(types.CheckCritical, types.CheckPassing)
	if got != "routable m1" || len(down) != 1 || down[0] != cfg.Services[0].RouteKey() {
		t.Errorf("a replica: %s, down %v; want routable with only the primary's service down", got, down)
	}
	got, down = route(types.CheckPassing, types.CheckCritical)
	if got != "routable m1" || len(down) != 1 || down[0] != cfg.Services[1].RouteKey() {
		t.Errorf("the primary: %s, down %v; want routable with only the replicas' service down", got, down)
	}
	if _, down = route(types.CheckPassing, types.CheckPassing); len(down) != 0 {
		t.Errorf("all passing: down %v", down)
	}

	port := 80
	cfg.Services = append([]types.MachineService{{Protocol: "tcp", InternalPort: 8080, Ports: []types.MachinePort{{Port: &port, Handlers: []string{"http"}}},
		Checks: []types.MachineCheck{{Type: "http", Path: "/health"}}}}, cfg.Services...)
	if got, _ := route(types.CheckCritical, types.CheckPassing, types.CheckPassing); got != "unroutable m1" {
		t.Errorf("failing HTTP service check: %s, want unroutable", got)
	}
	if got, down := route(types.CheckPassing, types.CheckCritical, types.CheckPassing); got != "routable m1" || len(down) != 1 {
		t.Errorf("HTTP passing, a raw service failing: %s, down %v", got, down)
	}

	// A service without public ports (a Machines API config) is reached
	// only through the HTTP proxy: its checks gate the whole machine.
	cfg.Services = []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Checks: []types.MachineCheck{{Type: "http", Path: "/healthz"}}}}
	if got, _ := route(types.CheckCritical); got != "unroutable m1" {
		t.Errorf("failing check of a service without ports: %s, want unroutable", got)
	}
	if got, _ := route(types.CheckPassing); got != "routable m1" {
		t.Errorf("passing check of a service without ports: %s, want routable", got)
	}
}
