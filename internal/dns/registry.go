package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Machine is what DNS knows of one machine.
type Machine struct {
	App, ID, Region, State string
	// HostID is the host that runs the machine ("" in records written
	// before hosts).
	HostID       string
	ProcessGroup string
	IPv6, IPv4   netip.Addr
	Metadata     map[string]string
	// SkipRegistration is the machine config's dns.skip_registration.
	SkipRegistration bool
}

// registered reports whether the machine has .internal names: started,
// not opted out, with an address.
func (m Machine) registered() bool {
	return m.State == types.StateStarted && !m.SkipRegistration && (m.IPv6.IsValid() || m.IPv4.IsValid())
}

// Registry is the live set of machines and apps the server answers from.
// It is safe for concurrent use; Follow keeps it in step with the store.
type Registry struct {
	mu       sync.RWMutex // guards machines, apps and flycast
	machines map[string]Machine
	apps     map[string]bool
	flycast  map[string]netip.Addr // app → its Flycast address
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{machines: map[string]Machine{}, apps: map[string]bool{}, flycast: map[string]netip.Addr{}}
}

// Machines returns every machine, in any state, sorted by app and ID.
func (r *Registry) Machines() []Machine {
	r.mu.RLock()
	out := make([]Machine, 0, len(r.machines))
	for _, m := range r.machines {
		out = append(out, m)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Apps returns the names of all apps, sorted.
func (r *Registry) Apps() []string {
	r.mu.RLock()
	out := make([]string, 0, len(r.apps))
	for a := range r.apps {
		out = append(out, a)
	}
	r.mu.RUnlock()
	sort.Strings(out)
	return out
}

// PutMachine adds or replaces a machine.
func (r *Registry) PutMachine(m Machine) {
	r.mu.Lock()
	r.machines[m.App+"/"+m.ID] = m
	r.mu.Unlock()
}

// DeleteMachine removes a machine; removing an unknown one is a no-op.
func (r *Registry) DeleteMachine(app, id string) {
	r.mu.Lock()
	delete(r.machines, app+"/"+id)
	r.mu.Unlock()
}

// PutApp adds an app name; DeleteApp removes it.
func (r *Registry) PutApp(name string) {
	r.mu.Lock()
	r.apps[name] = true
	r.mu.Unlock()
}

// DeleteApp removes an app name.
func (r *Registry) DeleteApp(name string) {
	r.mu.Lock()
	delete(r.apps, name)
	r.mu.Unlock()
}

// Store keys Follow reads: the supervisor's machine records, and the apps
// package's app records (apps.Prefix) and Flycast addresses
// (apps.FlycastKeyPrefix).
const (
	machinesPrefix = "machines/"
	appsPrefix     = apps.Prefix
	flycastPrefix  = apps.FlycastKeyPrefix
)

// machineRecord is the part of a supervisor.Record DNS needs (decoded here
// so that DNS does not depend on the supervisor).
type machineRecord struct {
	types.Machine
	App  string `json:"app"`
	IPv4 string `json:"ipv4"`
}

// DecodeMachine turns a stored machine record (JSON of supervisor.Record)
// into a Machine.
func DecodeMachine(b []byte) (Machine, error) {
	var rec machineRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Machine{}, fmt.Errorf("decode machine record: %w", err)
	}
	m := Machine{App: rec.App, ID: rec.ID, Region: rec.Region, State: rec.State, HostID: rec.HostID, ProcessGroup: types.DefaultProcessGroup}
	if rec.App == "" || rec.ID == "" {
		return Machine{}, fmt.Errorf("decode machine record: no app or id")
	}
	if a, err := netip.ParseAddr(rec.PrivateIP); err == nil {
		m.IPv6 = a
	}
	if a, err := netip.ParseAddr(rec.IPv4); err == nil {
		m.IPv4 = a.Unmap()
	}
	if c := rec.Config; c != nil {
		m.Metadata = c.Metadata
		if g := c.Metadata[types.MetaProcessGroup]; g != "" {
			m.ProcessGroup = g
		}
		m.SkipRegistration = c.DNS != nil && c.DNS.SkipRegistration
	}
	return m, nil
}

// Follow keeps reg equal to the machines and apps in st until ctx ends: it
// loads them, then applies the store's watch events; when a watch ends
// (lagged, compacted) it loads everything again.
func Follow(ctx context.Context, st store.Store, reg *Registry, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	for ctx.Err() == nil {
		if err := followOnce(ctx, st, reg); err != nil && ctx.Err() == nil {
			log.Warn("dns: following machines in the state store; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// followOnce loads the state and applies watch events until a watch ends.
func followOnce(ctx context.Context, st store.Store, reg *Registry) error {
	rev, err := st.Revision(ctx)
	if err != nil {
		return fmt.Errorf("store revision: %w", err)
	}
	mch, err := st.Watch(ctx, machinesPrefix, rev)
	if err != nil {
		return fmt.Errorf("watch %s: %w", machinesPrefix, err)
	}
	ach, err := st.Watch(ctx, appsPrefix, rev)
	if err != nil {
		return fmt.Errorf("watch %s: %w", appsPrefix, err)
	}
	fch, err := st.Watch(ctx, flycastPrefix, rev)
	if err != nil {
		return fmt.Errorf("watch %s: %w", flycastPrefix, err)
	}
	// Listing after the watches start loses nothing: events replayed from
	// rev on are applied in order on top of the list, and end in the same
	// state.
	if err := load(ctx, st, reg); err != nil {
		return err
	}
	for {
		select {
		case ev, ok := <-mch:
			if !ok {
				return watchEnded(mch, machinesPrefix)
			}
			applyMachine(reg, ev)
		case ev, ok := <-ach:
			if !ok {
				return watchEnded(ach, appsPrefix)
			}
			applyApp(reg, ev)
		case ev, ok := <-fch:
			if !ok {
				return watchEnded(fch, flycastPrefix)
			}
			applyFlycast(reg, ev)
		}
	}
}

func watchEnded(ch <-chan store.Event, prefix string) error {
	if err := store.WatchErr(ch); err != nil {
		return fmt.Errorf("watch %s: %w", prefix, err)
	}
	return nil
}

// load replaces reg's contents with the store's.
func load(ctx context.Context, st store.Store, reg *Registry) error {
	mkvs, err := st.List(ctx, machinesPrefix)
	if err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	akvs, err := st.List(ctx, appsPrefix)
	if err != nil {
		return fmt.Errorf("list apps: %w", err)
	}
	machines := map[string]Machine{}
	for _, kv := range mkvs {
		if m, err := DecodeMachine(kv.Value); err == nil {
			machines[m.App+"/"+m.ID] = m
		}
	}
	apps := map[string]bool{}
	for _, kv := range akvs {
		if name := appName(kv.Key); name != "" {
			apps[name] = true
		}
	}
	fkvs, err := st.List(ctx, flycastPrefix)
	if err != nil {
		return fmt.Errorf("list Flycast addresses: %w", err)
	}
	flycast := map[string]netip.Addr{}
	for _, kv := range fkvs {
		if app, addr, ok := decodeFlycast(kv); ok {
			flycast[app] = addr
		}
	}
	reg.mu.Lock()
	reg.machines, reg.apps, reg.flycast = machines, apps, flycast
	reg.mu.Unlock()
	return nil
}

func applyMachine(reg *Registry, ev store.Event) {
	rest := strings.TrimPrefix(ev.KV.Key, machinesPrefix)
	app, id, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(id, "/") {
		return
	}
	if ev.Type == store.EventDelete {
		reg.DeleteMachine(app, id)
		return
	}
	if m, err := DecodeMachine(ev.KV.Value); err == nil {
		reg.PutMachine(m)
	}
}

func applyApp(reg *Registry, ev store.Event) {
	name := appName(ev.KV.Key)
	if name == "" {
		return
	}
	if ev.Type == store.EventDelete {
		reg.DeleteApp(name)
	} else {
		reg.PutApp(name)
	}
}

// appName is the app of an app record's key ("" for deeper keys).
func appName(key string) string { return apps.NameOf(key) }

// Flycast returns every app's Flycast address (a copy).
func (r *Registry) Flycast() map[string]netip.Addr {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]netip.Addr, len(r.flycast))
	for app, a := range r.flycast {
		out[app] = a
	}
	return out
}

// PutFlycast sets an app's Flycast address; DeleteFlycast removes it.
func (r *Registry) PutFlycast(app string, addr netip.Addr) {
	r.mu.Lock()
	r.flycast[app] = addr
	r.mu.Unlock()
}

// DeleteFlycast removes an app's Flycast address.
func (r *Registry) DeleteFlycast(app string) {
	r.mu.Lock()
	delete(r.flycast, app)
	r.mu.Unlock()
}

// decodeFlycast reads a flycast/<app> record (the API's, JSON with an
// "address").
func decodeFlycast(kv store.KV) (string, netip.Addr, bool) {
	app := strings.TrimPrefix(kv.Key, flycastPrefix)
	if app == "" || strings.Contains(app, "/") {
		return "", netip.Addr{}, false
	}
	var rec struct {
		Address string `json:"address"`
	}
	if json.Unmarshal(kv.Value, &rec) != nil {
		return "", netip.Addr{}, false
	}
	a, err := netip.ParseAddr(rec.Address)
	if err != nil {
		return "", netip.Addr{}, false
	}
	return app, a, true
}

func applyFlycast(reg *Registry, ev store.Event) {
	app := strings.TrimPrefix(ev.KV.Key, flycastPrefix)
	if app == "" || strings.Contains(app, "/") {
		return
	}
	if ev.Type == store.EventDelete {
		reg.DeleteFlycast(app)
		return
	}
	if app, addr, ok := decodeFlycast(ev.KV); ok {
		reg.PutFlycast(app, addr)
	}
}
