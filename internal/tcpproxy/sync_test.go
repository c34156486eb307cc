package tcpproxy

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// services is a Services whose apps a test changes.
type services struct {
	mu      sync.Mutex // guards apps, changed
	apps    map[string][]types.MachineService
	changed chan struct{}
}

func (s *services) AppServices() map[string][]types.MachineService {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]types.MachineService{}
	for k, v := range s.apps {
		out[k] = v
	}
	return out
}

func (s *services) ServicesChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *services) set(app string, svcs []types.MachineService) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svcs == nil {
		delete(s.apps, app)
	} else {
		s.apps[app] = svcs
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func port(n int) types.MachinePort { return types.MachinePort{Port: &n} }

// TestSync: an app's raw TCP ports (not 80 or 443) are bound when its
// services name them and closed when the app has none left.
func TestSync(t *testing.T) {
	p := freeRange(t, 1)
	src := &services{apps: map[string][]types.MachineService{}, changed: make(chan struct{})}
	m := &Manager{ListenHost: "127.0.0.1"}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Sync(ctx, src)

	waitPorts := func(want []int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !reflect.DeepEqual(m.Ports("db"), want) {
			if time.Now().After(deadline) {
				t.Fatalf("ports of db: %v, want %v", m.Ports("db"), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	src.set("db", []types.MachineService{
		{InternalPort: 8080, Ports: []types.MachinePort{port(80), port(443)}}, // HTTP: the public listeners'
		{InternalPort: 5432, Ports: []types.MachinePort{port(p)}},
	})
	waitPorts([]int{p})
	src.set("db", nil)
	waitPorts(nil)
}

func TestPublicServices(t *testing.T) {
	got := PublicServices([]types.MachineService{
		{InternalPort: 8080, Ports: []types.MachinePort{port(80), port(443)}},
		{InternalPort: 9000, Ports: []types.MachinePort{port(443), port(9000)}},
	})
	if len(got) != 1 || got[0].InternalPort != 9000 || len(got[0].Ports) != 1 || got[0].Ports[0].Port != 9000 {
		t.Fatalf("PublicServices: %+v, want only port 9000 of service 9000", got)
	}
}
