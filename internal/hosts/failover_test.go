package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/runtime/runtimetest"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// The replacement goes where Place would put a new machine in the lost
// machine's region; with no ready host there, or none with the memory, to
// the nearest region that has one, saying so.
func TestChooseReplacementHost(t *testing.T) {
	all := []types.Host{
		host("a", "fra", 1024, types.HostReady),
		host("b", "fra", 2048, types.HostReady),
		host("c", "iad", 4096, types.HostUnreachable),
		host("d", "ams", 4096, types.HostReady),
		host("e", "syd", 8192, types.HostReady),
		host("f", "iad", 8192, types.HostDraining),
	}
	cases := []struct {
		name, region string
		mem          int64
		placed       []Placed
		want, note   string
		err          error
	}{
		{name: "same region, most free", region: "fra", mem: 256, want: "b"},
		{name: "same region, spread first", region: "fra", mem: 256, placed: []Placed{{App: "web", HostID: "b"}}, want: "a"},
		{name: "same region, capacity", region: "fra", mem: 1500, want: "b"},
		{name: "region lost, nearest (iad: ams before syd)", region: "iad", mem: 256, want: "d", note: "no ready host in iad; placed in the nearest region, ams"},
		{name: "no capacity in region, nearest", region: "fra", mem: 3000, want: "d", note: "no host in fra has 3000 MB free; placed in the nearest region, ams"},
		{name: "nowhere", region: "fra", mem: 100000, err: ErrNoCapacity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, note, err := ChooseReplacementHost("web", tc.region, tc.mem, all, tc.placed)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), "no host can take its replacement") {
					t.Fatalf("got %s, %v; want %v", h.ID, err, tc.err)
				}
				return
			}
			if err != nil || h.ID != tc.want || !strings.Contains(note, tc.note) || (tc.note == "" && note != "") {
				t.Fatalf("got %s %q %v; want %s %q", h.ID, note, err, tc.want, tc.note)
			}
		})
	}
}

func TestNearestRegions(t *testing.T) {
	got := NearestRegions("fra", []string{"syd", "iad", "zz-lab", "ams", "aa-lab", "waw"})
	want := []string{"ams", "waw", "iad", "syd", "aa-lab", "zz-lab"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from fra: %v, want %v", got, want)
	}
	if got := NearestRegions("lab", []string{"b", "a"}); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("unknown origin: %v, want by name", got)
	}
}

func TestReplaceable(t *testing.T) {
	lost := map[string]bool{"c": true}
	web := &types.MachineConfig{Image: "x", Metadata: map[string]string{types.MetaProcessGroup: "app"}}
	vol := &types.MachineConfig{Image: "x", Mounts: []types.MachineMount{{Volume: "vol_1", Path: "/data"}}}
	rel := &types.MachineConfig{Image: "x", Metadata: map[string]string{types.MetaProcessGroup: "fly_app_release_command"}}
	cases := []struct {
		m     types.Machine
		claim string
		want  bool
	}{
		{types.Machine{HostID: "c", State: types.StateStarted, Config: web}, "", true},
		{types.Machine{HostID: "c", State: types.StateStopped, Config: web}, "", true},
		{types.Machine{HostID: "a", State: types.StateStarted, Config: web}, "", false},
		{types.Machine{HostID: "c", State: types.StateStarted, Config: vol}, "", false},
		{types.Machine{HostID: "c", State: types.StateStarted, Config: rel}, "", false},
		{types.Machine{HostID: "c", State: types.StateDestroying, Config: web}, "", false},
		{types.Machine{HostID: "c", State: types.StateDestroying, Config: web}, "b", true},
		{types.Machine{HostID: "c", State: types.StateDestroying, Config: web, ReplacedBy: "m2"}, "b", false},
	}
	for i, tc := range cases {
		if got := Replaceable(tc.m, tc.claim, lost); got != tc.want {
			t.Errorf("case %d (%+v claim %q): %v, want %v", i, tc.m, tc.claim, got, tc.want)
		}
	}
}

type nopRouter struct{}

func (nopRouter) SetBackend(types.Backend, bool)              {}
func (nopRouter) Drain(context.Context, string, string) error { return nil }
func (nopRouter) Remove(string, string)                       {}

type anyImage struct{ dir string }

func (i anyImage) Get(_ context.Context, ref string) (*image.Image, error) {
	return &image.Image{Ref: ref, Digest: fmt.Sprintf("sha256:%064x", len(ref)), RootFS: i.dir, Config: image.Config{Cmd: []string{"serve"}}}, nil
}

// TestFailoverStep: hosts a, b (fra) and c (iad, lost) on one store; c's
// machines: two without volumes, one with a volume. Before the grace
// nothing moves; after it, a's and b's rounds (run at once) replace each
// machine without a volume exactly once, on the host the choice names;
// the volume's machine waits. A host that reads itself unreachable
// replaces nothing.
func TestFailoverStep(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	capacity := types.HostCapacity{CPUs: 2, MemoryMB: 4096}
	regs := map[string]*Registry{}
	sups := map[string]*supervisor.Supervisor{}
	drvs := map[string]*runtimetest.Driver{}
	stops := map[string]context.CancelFunc{}
	for _, h := range []struct{ id, region string }{{"a", "fra"}, {"b", "fra"}, {"c", "iad"}} {
		r := &Registry{Store: st, Self: types.Host{ID: h.id, Region: h.region, Capacity: capacity}}
		rctx, stop := context.WithCancel(ctx)
		t.Cleanup(stop)
		if err := r.Register(rctx); err != nil {
			t.Fatal(err)
		}
		net := runtimetest.NewNetwork()
		drv := runtimetest.New(net)
		s := supervisor.New(supervisor.Options{Store: st, Driver: drv, Network: net, Router: nopRouter{}, Images: anyImage{dir},
			Region: h.region, DataDir: t.TempDir(), HostID: h.id, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		t.Cleanup(s.Shutdown)
		t.Cleanup(func() {
			for _, id := range drv.Running() {
				_ = drv.Destroy(context.Background(), id)
			}
		})
		regs[h.id], sups[h.id], drvs[h.id], stops[h.id] = r, s, drv, stop
	}
	web := &types.MachineConfig{Image: "app:v1", Metadata: map[string]string{types.MetaProcessGroup: "app"}}
	var lost []string
	for range 2 {
		m, err := sups["c"].Create(ctx, "web", web, supervisor.CreateOptions{Region: "iad"})
		if err != nil {
			t.Fatal(err)
		}
		lost = append(lost, m.ID)
	}
	// The volume's machine: only its record matters here.
	pinned, err := sups["c"].Create(ctx, "db", &types.MachineConfig{Image: "pg:v1"}, supervisor.CreateOptions{Region: "iad", SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.UpdateJSON(ctx, st, "machines/db/"+pinned.ID, func(r *supervisor.Record) (*supervisor.Record, error) {
		r.Config.Mounts = []types.MachineMount{{Volume: "vol_1", Path: "/data"}}
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	stops["c"]() // c is lost: its alive mark goes
	waitState(t, regs["a"], "c", types.HostUnreachable)

	clock := time.Unix(1000, 0)
	fos := map[string]*Failover{}
	for _, id := range []string{"a", "b"} {
		fos[id] = &Failover{Registry: regs[id], Machines: sups[id], Grace: time.Minute, Now: func() time.Time { return clock }}
	}
	step := func() int {
		done := make(chan int, 2)
		for _, id := range []string{"a", "b"} {
			go func() {
				n, err := fos[id].Step(ctx)
				if err != nil {
					t.Errorf("%s's round: %v", id, err)
				}
				done <- n
			}()
		}
		return <-done + <-done
	}
	if n := step(); n != 0 {
		t.Fatalf("%d replaced before the grace", n)
	}
	clock = clock.Add(59 * time.Second)
	if n := step(); n != 0 {
		t.Fatalf("%d replaced before the grace", n)
	}
	clock = clock.Add(time.Second)
	if n := step(); n != 2 {
		t.Fatalf("%d replaced after the grace, want 2", n)
	}
	if n := step(); n != 0 {
		t.Fatalf("%d replaced in a second round, want 0", n)
	}
	ms, err := sups["a"].List(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	onHost := map[string]int{}
	replacedBy := map[string]string{}
	for _, m := range ms {
		if m.State == types.StateDestroying {
			replacedBy[m.ID] = m.ReplacedBy
			continue
		}
		onHost[m.HostID]++
		if m.HostID != "c" && (m.State != types.StateStarted || m.Region != "fra" || !strings.Contains(m.HostNote, "lost with host c") || !strings.Contains(m.HostNote, "nearest region, fra")) {
			t.Errorf("replacement %s on %s: %s in %s, note %q", m.ID, m.HostID, m.State, m.Region, m.HostNote)
		}
	}
	// iad has no other host: both go to fra, spread over a and b.
	if onHost["a"] != 1 || onHost["b"] != 1 || len(replacedBy) != 2 {
		t.Errorf("machines per host %v, replaced %v; want one on a, one on b, both lost ones replaced", onHost, replacedBy)
	}
	for _, id := range lost {
		if replacedBy[id] == "" {
			t.Errorf("lost machine %s has no replacement", id)
		}
	}
	if len(drvs["a"].Running())+len(drvs["b"].Running()) != 2 {
		t.Errorf("a runs %v, b runs %v; want 2 tasks in all", drvs["a"].Running(), drvs["b"].Running())
	}
	if p, _ := sups["a"].Get(ctx, "db", pinned.ID); p.State == types.StateDestroying || p.ReplacedBy != "" {
		t.Errorf("the volume's machine was replaced: %+v", p.Machine)
	}

	// b cut off (its own mark gone): it reads itself unreachable and
	// replaces nothing; a does.
	stops["b"]()
	waitState(t, regs["a"], "b", types.HostUnreachable)
	if _, err := sups["c"].Create(ctx, "web", web, supervisor.CreateOptions{Region: "iad", SkipLaunch: true}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	if n, err := fos["b"].Step(ctx); n != 0 || err != nil {
		t.Errorf("a cut-off host's round: %d, %v; want nothing", n, err)
	}
	if n, err := fos["a"].Step(ctx); n != 1 || err != nil {
		t.Errorf("a's round: %d, %v; want the new lost machine replaced", n, err)
	}
}

// A deploy's new machine goes to the host of the one it replaces when it
// fits there, else where Place would put it.
func TestPlacePrefer(t *testing.T) {
	all := []types.Host{
		host("a", "fra", 4000, types.HostReady),
		host("b", "fra", 100, types.HostReady),
		host("c", "iad", 4000, types.HostReady),
	}
	placed := []Placed{{App: "web", HostID: "b"}}
	for _, tc := range []struct{ prefer, want string }{
		{"", "a"},  // spread, memory
		{"a", "a"}, // preferred and fits
		{"b", "a"}, // preferred but full
		{"c", "a"}, // preferred but in another region
	} {
		h, err := Place(PlaceRequest{App: "web", Region: "fra", MemoryMB: 256, Prefer: tc.prefer}, all, placed)
		if err != nil || h.ID != tc.want {
			t.Errorf("prefer %q: %s, %v; want %s", tc.prefer, h.ID, err, tc.want)
		}
	}
	all[1] = host("b", "fra", 4000, types.HostReady)
	if h, _ := Place(PlaceRequest{App: "web", Region: "fra", MemoryMB: 256, Prefer: "b"}, all, placed); h.ID != "b" {
		t.Errorf("prefer b with room on b: %s, want b (over spreading)", h.ID)
	}
}
