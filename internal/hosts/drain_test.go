package hosts

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// steps records what a drain asked, in order; each new machine lands on
// host "a".
type steps struct {
	log     []string
	n       int
	failAt  string
	created []types.CreateMachineRequest
}

func (s *steps) Create(_ context.Context, app string, req types.CreateMachineRequest) (types.Machine, error) {
	s.n++
	id := fmt.Sprintf("new%d", s.n)
	s.log = append(s.log, "create "+app+" "+req.Region)
	s.created = append(s.created, req)
	return types.Machine{ID: id, HostID: "a"}, nil
}

func (s *steps) WaitStarted(_ context.Context, app, id string) error {
	s.log = append(s.log, "wait "+id)
	if s.failAt == "wait" {
		return errors.New("did not start")
	}
	return nil
}

func (s *steps) Destroy(_ context.Context, app, id string) error {
	s.log = append(s.log, "destroy "+id)
	return nil
}

func TestDrain(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	r := &Registry{Store: st, Self: types.Host{ID: "a", Region: "fra"}}
	if err := r.Register(ctx); err != nil {
		t.Fatal(err)
	}
	rb := &Registry{Store: st, Self: types.Host{ID: "b", Region: "fra"}}
	if err := rb.Register(ctx); err != nil {
		t.Fatal(err)
	}
	for key, rec := range map[string]string{
		"machines/web/m1": `{"id":"m1","app":"web","state":"started","host_id":"b","region":"fra","config":{"image":"x"}}`,
		"machines/web/m2": `{"id":"m2","app":"web","state":"stopped","host_id":"b","region":"fra","config":{"image":"x"}}`,
		"machines/db/m3":  `{"id":"m3","app":"db","state":"started","host_id":"b","region":"fra","config":{"image":"pg","mounts":[{"volume":"vol_1","path":"/data"}]}}`,
		"machines/web/m4": `{"id":"m4","app":"web","state":"started","host_id":"a","region":"fra","config":{"image":"x"}}`,
	} {
		if _, err := st.Put(ctx, key, []byte(rec), 0); err != nil {
			t.Fatal(err)
		}
	}
	// A volume pins m3: refused, naming it, nothing moved, still ready.
	s := &steps{}
	_, err = r.Drain(ctx, "b", false, s)
	if !errors.Is(err, ErrPinned) || !strings.Contains(err.Error(), "db/m3") || len(s.log) != 0 {
		t.Fatalf("drain with a pinned machine: %v, steps %v; want ErrPinned naming db/m3 and nothing done", err, s.log)
	}
	if h, _ := r.Get(ctx, "b"); h.State != types.HostReady {
		t.Fatalf("host b after a refused drain: %s", h.State)
	}
	// With force: the others move (a started one waits for its copy), m3
	// stays; the host is draining.
	res, err := r.Drain(ctx, "b", true, s)
	if err != nil {
		t.Fatal(err)
	}
	want := "create web fra,wait new1,destroy m1,create web fra,destroy m2"
	if got := strings.Join(s.log, ","); got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if !s.created[1].SkipLaunch || s.created[0].SkipLaunch {
		t.Errorf("a stopped machine's copy must not start, a started one's must: %+v", s.created)
	}
	if len(res.Moved) != 2 || res.Moved[0].From != "m1" || res.Moved[0].To != "new1" || res.Moved[0].ToHost != "a" || len(res.Left) != 1 || res.Left[0] != "db/m3" {
		t.Fatalf("result %+v", res)
	}
	if h, _ := r.Get(ctx, "b"); h.State != types.HostDraining {
		t.Fatalf("host b after the drain: %s, want draining", h.State)
	}
	// A copy that does not start keeps the old machine.
	s = &steps{failAt: "wait"}
	if _, err := r.Drain(ctx, "a", false, s); err == nil || strings.Contains(strings.Join(s.log, ","), "destroy") {
		t.Fatalf("a copy that did not start: %v, steps %v; want an error and no destroy", err, s.log)
	}
	if err := r.SetDraining(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	if h, _ := r.Get(ctx, "b"); h.State != types.HostReady {
		t.Fatalf("host b undrained: %s", h.State)
	}
	if _, err := r.Drain(ctx, "zz", false, s); !errors.Is(err, ErrNotFound) {
		t.Fatalf("drain of an unknown host: %v", err)
	}
}
