// Package hosts owns the registry of the hosts of an installation and the
// placement of machines on them. Every daemon registers its host under
// hosts/<id> (durable: region, API URL, capacity) and marks itself alive
// under hosts-alive/<id>, a key kept on a store lease (store.Leaser): a
// host whose lease expired reads unreachable. Place picks a host for a new
// machine. Hosts on the mesh measure their round trips to each other
// (Prober) and publish them under hosts-rtt/<from>/<to>; RTTs follows the
// hosts and those measurements for whoever routes to the nearest (DNS,
// the edge). See docs/cluster.md and docs/mesh.md.
package hosts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Store keys.
const (
	hostsPrefix = "hosts/"
	alivePrefix = "hosts-alive/"
)

// DefaultTTL is how long a host stays ready after its daemon stops
// renewing its lease (killed, or cut off from the store).
const DefaultTTL = 10 * time.Second

// ErrNotFound: no host has that id.
var ErrNotFound = types.NewError(types.ErrNotFound, "host not found")

// IDFile, in the data dir, keeps the host's id across restarts.
const IDFile = "host-id"

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// LoadOrCreateID returns the host id of the data dir: the one given (which
// must match the one kept, if any), else the kept one, else fallback (a
// cluster member's name) when it is a valid id, else a new random one; it
// is kept in <data-dir>/host-id. A data dir's machines belong to its host
// id, so it never changes silently.
func LoadOrCreateID(dataDir, given, fallback string) (string, error) {
	path := filepath.Join(dataDir, IDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		kept := strings.TrimSpace(string(b))
		if given != "" && given != kept {
			return "", fmt.Errorf("--host-id %s: the data dir %s belongs to host %s (says %s), whose machines it holds: drop --host-id, pass %s, or use another --data-dir: %w",
				given, dataDir, kept, path, kept, types.ErrInvalid)
		}
		return kept, nil
	case !os.IsNotExist(err):
		return "", fmt.Errorf("host id: %w", err)
	}
	id := given
	if id == "" && idRE.MatchString(fallback) {
		id = fallback
	}
	if id == "" {
		var r [6]byte
		_, _ = rand.Read(r[:])
		id = "h" + hex.EncodeToString(r[:])
	}
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("--host-id %q: use lowercase letters, digits and dashes, at most 63, starting with a letter or digit: %w", id, types.ErrInvalid)
	}
	if err := fsutil.WriteFileAtomic(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the host id in %s: %w", path, err)
	}
	return id, nil
}

// record is what hosts/<id> keeps: the host without its state and usage,
// which are computed when read.
type record struct {
	types.Host
	Draining bool `json:"draining,omitempty"`
}

// Registry registers this host and reads every host. Its fields are set
// before Register and never change.
type Registry struct {
	Store store.Store
	// Self is this host: ID, Region, APIURL, Capacity, Version.
	Self types.Host
	// TTL of the alive mark (0: DefaultTTL).
	TTL time.Duration
	Log *slog.Logger
	// OnRenewed, if set, is called when the alive mark is written again
	// after its lease was lost (the host is back: it fences what was
	// replaced meanwhile). It must not block.
	OnRenewed func()

	handOver atomic.Bool   // see HandOver
	stopped  chan struct{} // closed when Register's keep-alive has ended
}

// HandOver makes the end of Register's ctx leave the alive mark in place
// (a reload: the next daemon of this host writes it again, on a lease of
// its own, and the old lease expires without taking the key with it), so
// that the host never reads unreachable across a reload.
func (r *Registry) HandOver() { r.handOver.Store(true) }

func (r *Registry) ttl() time.Duration {
	if r.TTL > 0 {
		return r.TTL
	}
	return DefaultTTL
}

// SelfID is this host's id.
func (r *Registry) SelfID() string { return r.Self.ID }

// Register writes this host's record and its alive mark, and keeps the mark
// alive until ctx ends (then releases it, so the host reads unreachable at
// once). When the lease is lost (the store was unreachable for longer than
// the TTL) it writes the mark again as soon as it can.
func (r *Registry) Register(ctx context.Context) error {
	rec := record{Host: r.Self}
	rec.State, rec.Used, rec.RTTMicros = "", types.HostUsage{}, 0
	rec.StartedAt = time.Now().UTC().Format(time.RFC3339)
	if _, _, err := store.UpdateJSON(ctx, r.Store, hostsPrefix+r.Self.ID, func(cur *record) (*record, error) {
		if cur != nil {
			rec.Draining = cur.Draining // a drain outlives a restart
		}
		return &rec, nil
	}); err != nil {
		return fmt.Errorf("register host %s: %w", r.Self.ID, err)
	}
	lk, err := r.markAlive(ctx)
	if err != nil {
		return err
	}
	r.stopped = make(chan struct{})
	go func() {
		defer close(r.stopped)
		r.keepAlive(ctx, lk)
	}()
	return nil
}

func (r *Registry) markAlive(ctx context.Context) (store.LeasedKey, error) {
	leaser, ok := r.Store.(store.Leaser)
	if !ok {
		return nil, fmt.Errorf("register host %s: the state store cannot keep leased keys: %w", r.Self.ID, types.ErrUnsupported)
	}
	lk, err := leaser.PutLeased(ctx, alivePrefix+r.Self.ID, []byte(time.Now().UTC().Format(time.RFC3339)), r.ttl())
	if err != nil {
		return nil, fmt.Errorf("mark host %s alive: %w", r.Self.ID, err)
	}
	return lk, nil
}

// logger is r.Log, or the default logger.
func (r *Registry) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func (r *Registry) keepAlive(ctx context.Context, lk store.LeasedKey) {
	log := r.logger()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			if r.handOver.Load() {
				return
			}
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = lk.Release(rctx)
			cancel()
			return
		case <-lk.Done():
		}
		log.Warn("this host's lease in the store was lost; other hosts read it unreachable until it is renewed", "host", r.Self.ID)
		for {
			var err error
			if lk, err = r.markAlive(ctx); err == nil {
				log.Info("this host's lease is renewed", "host", r.Self.ID)
				if r.OnRenewed != nil {
					r.OnRenewed()
				}
				backoff = 100 * time.Millisecond
				break
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("renew this host's lease", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// machineRec is what the registry reads of a stored machine record.
type machineRec struct {
	types.Machine
	App string `json:"app"`
}

// List returns every host, by id, with its state and the usage of its
// machines.
func (r *Registry) List(ctx context.Context) ([]types.Host, error) {
	hs, _, err := r.listWithMachines(ctx)
	return hs, err
}

// Snapshot returns every host and where the machines are, for Place.
func (r *Registry) Snapshot(ctx context.Context) ([]types.Host, []Placed, error) {
	return r.listWithMachines(ctx)
}

func (r *Registry) listWithMachines(ctx context.Context) ([]types.Host, []Placed, error) {
	states, err := r.States(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make([]types.Host, 0, len(states))
	for _, h := range states {
		out = append(out, h)
	}
	byID := map[string]*types.Host{}
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	ms, err := r.Store.List(ctx, "machines/")
	if err != nil {
		return nil, nil, fmt.Errorf("list hosts' machines: %w", err)
	}
	var placed []Placed
	for _, kv := range ms {
		var m machineRec
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, nil, fmt.Errorf("machine record %s: %w", kv.Key, err)
		}
		if m.State == types.StateDestroyed || m.State == types.StateDestroying {
			continue
		}
		hostID := m.HostID
		if hostID == "" {
			hostID = r.Self.ID // written by a single host before host ids
		}
		placed = append(placed, Placed{App: m.App, HostID: hostID})
		if h := byID[hostID]; h != nil {
			h.Used.Machines++
			h.Used.MemoryMB += GuestMemoryMB(m.Config)
		}
	}
	if rtts := (&RTTs{Store: r.Store}); r.Self.ID != "" && rtts.Refresh(ctx) == nil {
		for i := range out {
			if d, ok := rtts.Between(r.Self.ID, out[i].ID); ok && out[i].ID != r.Self.ID {
				out[i].RTTMicros = max(d.Microseconds(), 1)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, placed, nil
}

// Get returns one host with its state and usage.
func (r *Registry) Get(ctx context.Context, id string) (types.Host, error) {
	hs, err := r.List(ctx)
	if err != nil {
		return types.Host{}, err
	}
	for _, h := range hs {
		if h.ID == id {
			return h, nil
		}
	}
	return types.Host{}, fmt.Errorf("host %s is not registered (see `hangar hosts list`): %w", id, ErrNotFound)
}

// States returns each host's state by id, cheaply (no machine usage): for
// marking the machines of unreachable hosts on every list.
func (r *Registry) States(ctx context.Context) (map[string]types.Host, error) {
	kvs, err := r.Store.List(ctx, hostsPrefix)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	alive, err := r.Store.List(ctx, alivePrefix)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	isAlive := map[string]bool{}
	for _, kv := range alive {
		isAlive[strings.TrimPrefix(kv.Key, alivePrefix)] = true
	}
	out := map[string]types.Host{}
	for _, kv := range kvs {
		var rec record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("host record %s: %w", kv.Key, err)
		}
		h := rec.Host
		switch {
		case !isAlive[h.ID]:
			h.State = types.HostUnreachable
		case rec.Draining:
			h.State = types.HostDraining
		default:
			h.State = types.HostReady
		}
		out[h.ID] = h
	}
	return out, nil
}
