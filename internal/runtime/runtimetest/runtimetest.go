// Package runtimetest is an in-memory runtime.Driver, and a loopback
// machine network to go with it, for tests of the packages above the
// runtime (supervisor, deploy) that must run without root, crun or network
// namespaces, and for failure paths the real driver cannot reach on demand
// (a start that fails, a task that exits after N ms, checks that fail).
//
// A task is not a process: it is a goroutine that, as its Behavior says,
// writes log lines, serves HTTP on its machine's address (a loopback
// address from Network, so the supervisor's real health checks and any
// client reach it), and exits on its own or when stopped. Tasks outlive
// the supervisor that started them, as real machines outlive the daemon:
// a new supervisor on the same Driver re-adopts them with Recover.
//
// It is a test double, never the only test of a behaviour: the shared
// runtime suite and the e2e tests run the real OCI driver.
package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
)

// Behavior is how one task behaves; Driver.Behave picks it per spec.
type Behavior struct {
	// FailStart makes Start fail with this error (nothing is left).
	FailStart error
	// ExitAfter, if > 0, makes the task exit on its own after this long
	// with ExitCode (a release_command, a crash).
	ExitAfter time.Duration
	ExitCode  int
	// Ports are served over HTTP on the machine's address while the task
	// runs: every request gets Status (200 if 0) and the body
	// "<machine id> <Body>".
	Ports  []int
	Status int
	Body   string
	// Output is written to the task's log, one line each, at start.
	Output []string
}

// Driver is an in-memory runtime.Driver. Set Behave before the first Start.
type Driver struct {
	// Behave returns the behaviour of a task about to start; nil: every
	// task runs until stopped and serves nothing.
	Behave func(spec runtime.Spec) Behavior
	// Net, if set, gives the address a task's Ports are served on (the one
	// its machine's namespace was set up with).
	Net *Network

	mu       sync.Mutex // guards tasks, starts, parked and fromPark
	tasks    map[string]*task
	starts   map[string]int
	parked   map[string]runtime.Spec // see Parking
	fromPark map[string]int
}

// task is one running or exited task.
type task struct {
	id      string
	spec    runtime.Spec
	started time.Time
	done    chan struct{} // closed on exit

	mu      sync.Mutex // guards exit, servers and timer
	exit    *runtime.ExitResult
	servers []*http.Server
	timer   *time.Timer
}

// New returns an empty driver whose tasks serve on net's addresses.
func New(net *Network) *Driver {
	return &Driver{Net: net, tasks: map[string]*task{}, starts: map[string]int{},
		parked: map[string]runtime.Spec{}, fromPark: map[string]int{}}
}

// Name implements runtime.Driver.
func (d *Driver) Name() string { return "runtimetest" }

// Start implements runtime.Driver: it waits for the network namespace as
// the real driver does, then runs the task as Behave says.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (runtime.Status, error) {
	var b Behavior
	if d.Behave != nil {
		b = d.Behave(spec)
	}
	if spec.NetNSReady != nil {
		if err := spec.NetNSReady(); err != nil {
			return runtime.Status{}, fmt.Errorf("task %s: network namespace: %w", spec.ID, err)
		}
	}
	d.mu.Lock()
	if old := d.tasks[spec.ID]; old != nil {
		d.mu.Unlock()
		old.finish(runtime.ExitResult{Code: 137, Signal: 9, ExitedAt: time.Now()})
		d.mu.Lock()
	}
	d.starts[spec.ID]++
	if p, ok := d.parked[spec.ID]; ok {
		delete(d.parked, spec.ID)
		if sameSpec(p, spec) {
			d.fromPark[spec.ID]++
		}
	}
	d.mu.Unlock()
	if b.FailStart != nil {
		return runtime.Status{}, fmt.Errorf("task %s: %w", spec.ID, b.FailStart)
	}
	t := &task{id: spec.ID, spec: spec, started: time.Now(), done: make(chan struct{})}
	if err := t.writeLog(b.Output); err != nil {
		return runtime.Status{}, err
	}
	if len(b.Ports) > 0 {
		ip := d.addrOf(spec.ID)
		if ip == "" {
			return runtime.Status{}, fmt.Errorf("task %s serves ports but the driver has no address for it: give New a Network and the supervisor the same one", spec.ID)
		}
		for _, port := range b.Ports {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				t.closeServers()
				return runtime.Status{}, fmt.Errorf("task %s: %w", spec.ID, err)
			}
			srv := server(spec.ID, b)
			t.servers = append(t.servers, srv)
			go func() { _ = srv.Serve(ln) }()
		}
	}
	if b.ExitAfter > 0 {
		t.mu.Lock()
		t.timer = time.AfterFunc(b.ExitAfter, func() {
			t.finish(runtime.ExitResult{Code: b.ExitCode, ExitedAt: time.Now()})
		})
		t.mu.Unlock()
	}
	d.mu.Lock()
	d.tasks[spec.ID] = t
	d.mu.Unlock()
	return runtime.Status{ID: spec.ID, Running: true, Pid: 1, Started: t.started}, nil
}

// server answers every request as b says.
func server(id string, b Behavior) *http.Server {
	status := b.Status
	if status == 0 {
		status = http.StatusOK
	}
	return &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %s\n", id, b.Body)
	}), ReadHeaderTimeout: 5 * time.Second}
}

func (d *Driver) addrOf(id string) string {
	if d.Net == nil {
		return ""
	}
	return d.Net.addrOf(id)
}

// writeLog appends lines to the task's log in the shim's format
// ("<timestamp> <stream> <message>").
func (t *task) writeLog(lines []string) error {
	if t.spec.LogPath == "" || len(lines) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(t.spec.LogPath), 0o755); err != nil {
		return fmt.Errorf("task %s: log: %w", t.id, err)
	}
	f, err := os.OpenFile(t.spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("task %s: log: %w", t.id, err)
	}
	defer f.Close()
	var sb strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&sb, "%s stdout %s\n", time.Now().UTC().Format(time.RFC3339Nano), l)
	}
	_, err = f.WriteString(sb.String())
	return err
}

// closeServers stops serving: listeners and open connections close, as
// when a process exits.
func (t *task) closeServers() {
	for _, srv := range t.servers {
		srv.Close()
	}
}

// finish records the task's exit (the first one wins) and stops serving.
func (t *task) finish(ex runtime.ExitResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exit != nil {
		return
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	t.closeServers()
	t.exit = &ex
	close(t.done)
}

func (t *task) status() runtime.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := runtime.Status{ID: t.id, Running: t.exit == nil, Started: t.started}
	if t.exit != nil {
		ex := *t.exit
		st.Exit = &ex
	} else {
		st.Pid = 1
	}
	return st
}

func (d *Driver) get(id string) (*task, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	if t == nil {
		return nil, fmt.Errorf("task %s: %w", id, runtime.ErrNotFound)
	}
	return t, nil
}

// Recover implements runtime.Driver.
func (d *Driver) Recover(ctx context.Context, id string) (runtime.Status, error) {
	return d.Inspect(ctx, id)
}

// Wait implements runtime.Driver.
func (d *Driver) Wait(ctx context.Context, id string) (runtime.ExitResult, error) {
	t, err := d.get(id)
	if err != nil {
		return runtime.ExitResult{}, err
	}
	select {
	case <-t.done:
		return *t.status().Exit, nil
	case <-ctx.Done():
		return runtime.ExitResult{}, ctx.Err()
	}
}

// Stop implements runtime.Driver: the task exits at once (code 0 for
// SIGINT and SIGTERM, as an app that handles them; 137 for SIGKILL).
func (d *Driver) Stop(ctx context.Context, id string, signal string, timeout time.Duration) error {
	t, err := d.get(id)
	if err != nil {
		return nil // nothing runs: stopped
	}
	ex := runtime.ExitResult{ExitedAt: time.Now()}
	if strings.TrimPrefix(strings.ToUpper(signal), "SIG") == "KILL" {
		ex.Code, ex.Signal = 137, 9
	}
	t.finish(ex)
	return nil
}

// Destroy implements runtime.Driver.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	d.mu.Lock()
	t := d.tasks[id]
	delete(d.tasks, id)
	delete(d.parked, id)
	d.mu.Unlock()
	if t != nil {
		t.finish(runtime.ExitResult{Code: 137, Signal: 9, ExitedAt: time.Now()})
	}
	return nil
}

// Inspect implements runtime.Driver.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Status, error) {
	t, err := d.get(id)
	if err != nil {
		return runtime.Status{}, err
	}
	return t.status(), nil
}

// Crash makes a running task exit on its own with code, as a crashing app.
func (d *Driver) Crash(id string, code int) error {
	t, err := d.get(id)
	if err != nil {
		return err
	}
	t.finish(runtime.ExitResult{Code: code, ExitedAt: time.Now()})
	return nil
}

// Running lists the ids of the tasks that run now.
func (d *Driver) Running() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for id, t := range d.tasks {
		if t.status().Running {
			out = append(out, id)
		}
	}
	return out
}

// Starts counts the Start calls for a task id (restarts included).
func (d *Driver) Starts(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starts[id]
}

// Spec returns the spec a task was last started with.
func (d *Driver) Spec(id string) (runtime.Spec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	if t == nil {
		return runtime.Spec{}, false
	}
	return t.spec, true
}

// Env returns the value of key in a spec's environment ("" if unset).
func Env(spec runtime.Spec, key string) string {
	for _, kv := range spec.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Network is a machine network without namespaces: machine n gets the
// loopback address 127.B.C.n (B.C differ between Networks, so tests in
// one process do not share addresses), where a task of Driver serves its
// ports. It has the methods of supervisor.Network.
type Network struct {
	prefix [2]byte

	mu    sync.Mutex // guards addrs
	addrs map[string]string
}

var networks atomic.Uint32

// NewNetwork returns a loopback network with addresses of its own.
func NewNetwork() *Network {
	// Spread over 127.0.0.0/8 by pid too: test binaries of several
	// packages run at once.
	k := (uint32(os.Getpid())*131 + networks.Add(1)) % (1 << 16)
	if k == 0 {
		k = 1
	}
	return &Network{prefix: [2]byte{byte(k >> 8), byte(k)}, addrs: map[string]string{}}
}

// AddressFor returns machine address number n (2-254).
func (n *Network) AddressFor(i int) (net.IP, net.IP, error) {
	if i < 2 || i > 254 {
		return nil, nil, fmt.Errorf("runtimetest network: no address number %d (2-254)", i)
	}
	ip4 := net.IPv4(127, n.prefix[0], n.prefix[1], byte(i)).To4()
	ip6 := net.ParseIP(fmt.Sprintf("fdaa:0:%x::%x", uint16(n.prefix[0])<<8|uint16(n.prefix[1]), i))
	return ip4, ip6, nil
}

// NSPath implements supervisor.Network; the path is never opened.
func (n *Network) NSPath(id string) string { return "/nonexistent/runtimetest/netns/" + id }

// Exists implements supervisor.Network.
func (n *Network) Exists(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.addrs[id]
	return ok
}

// Setup implements supervisor.Network: it records the machine's address.
func (n *Network) Setup(id string, ip4, ip6 net.IP) (string, error) {
	if ip4 == nil || !ip4.IsLoopback() {
		return "", fmt.Errorf("runtimetest network: machine %s: %v is not one of its loopback addresses", id, ip4)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addrs[id] = ip4.String()
	return n.NSPath(id), nil
}

// Teardown implements supervisor.Network.
func (n *Network) Teardown(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.addrs, id)
	return nil
}

func (n *Network) addrOf(id string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs[id]
}

// ErrInjected is a failure a test asked for (Behavior.FailStart).
var ErrInjected = errors.New("runtimetest: injected failure")

// Parking is the Driver with runtime.Parker: Park records the spec, and a
// Start with an equal spec counts as started from it (StartsFromPark); any
// Start or Destroy drops what was parked. Tests that want the supervisor
// to park pass it as the driver.
type Parking struct{ *Driver }

// Park implements runtime.Parker.
func (p Parking) Park(ctx context.Context, spec runtime.Spec) error {
	spec.NetNSReady = nil
	p.mu.Lock()
	p.parked[spec.ID] = spec
	p.mu.Unlock()
	return nil
}

// Parked returns the spec task id is parked with, if it is.
func (d *Driver) Parked(id string) (runtime.Spec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.parked[id]
	return s, ok
}

// StartsFromPark counts the Starts of task id that found it parked with
// the same spec (the real driver's fast path).
func (d *Driver) StartsFromPark(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fromPark[id]
}

// sameSpec compares two specs but for NetNSReady (a func).
func sameSpec(a, b runtime.Spec) bool {
	a.NetNSReady, b.NetNSReady = nil, nil
	return reflect.DeepEqual(a, b)
}
