// Package supervisor owns the lifecycle of machines on this host: it turns
// machine records in the state store into running tasks (through a
// runtime.Driver), applies restart policies, runs health checks, re-adopts
// machines after a daemon restart, and tells the proxy which machines may
// take traffic.
//
// Machine states (Fly's names):
//
//	created ─start─▶ starting ─▶ started ─stop─▶ stopping ─▶ stopped
//	   │                 │            │  ▲ exit + restart policy   │
//	   │                 └─fail─▶ failed └──────────────────────────┘ start
//	   └──────────── destroy (from any state) ─▶ destroying ─▶ destroyed
//
// An update (a new config) shows as one state, replacing, as on Fly: from
// any state but destroying, the machine becomes replacing (event "update",
// status "replacing"), its task if any leaves rotation and stops, the config
// is swapped (new instance_id; the old version is "replaced"), and the new
// version boots (replacing ─▶ started, event "start") or is left stopped
// (replacing ─▶ stopped, or created for a machine never started).
package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Errors the API maps to status codes.
var (
	ErrNotFound = types.NewError(types.ErrNotFound, "not found")
	ErrConflict = types.NewError(types.ErrConflict, "conflict")
	ErrInvalid  = types.NewError(types.ErrInvalid, "invalid")
	ErrTimeout  = types.NewError(types.ErrTimeout, "timed out")
)

// Router is what the supervisor needs of the proxy: it is told when a
// machine may take traffic, must drain, or is gone. The supervisor owns
// this interface and speaks types, so it never imports the proxy.
type Router interface {
	// SetBackend adds or updates a machine; routable says whether it may
	// take new requests (started and every check passing). Empty Addr,
	// Region, Service or Config keep what the router knew.
	SetBackend(b types.Backend, routable bool)
	// Drain stops routing new requests to a machine and waits until its
	// in-flight requests finish or ctx ends.
	Drain(ctx context.Context, app, machineID string) error
	// Remove forgets a machine; its in-flight requests still finish.
	Remove(app, machineID string)
}

// Images resolves an image reference to an unpacked image.
type Images interface {
	Get(ctx context.Context, refOrDigest string) (*image.Image, error)
}

// Record is a machine as stored: the API object plus what the host needs.
type Record struct {
	types.Machine
	App          string    `json:"app"`
	AddrIndex    int       `json:"addr_index"`
	IPv4         string    `json:"ipv4"`
	RestartCount int       `json:"restart_count"`
	LeaseNonce   string    `json:"lease_nonce,omitempty"`
	LeaseExpires int64     `json:"lease_expires,omitempty"`
	LeaseOwner   string    `json:"lease_owner,omitempty"`
	LeaseDesc    string    `json:"lease_description,omitempty"`
	Versions     []Version `json:"versions,omitempty"`
	// Relaunch is set while the machine is replacing and the update is to
	// boot the new version, so a daemon restarted mid-update finishes it.
	Relaunch bool `json:"relaunch,omitempty"`
	// StopReason says why a stopped or suspended machine is not running
	// when it was not a user's or an exit's doing: StopReasonAutostop.
	// Cleared when the machine starts or exits.
	StopReason string `json:"stop_reason,omitempty"`
	// FailoverClaim is the host replacing this machine while its own
	// host is lost (fence.go); FailoverFrom is the state it had then.
	FailoverClaim string `json:"failover_claim,omitempty"`
	FailoverFrom  string `json:"failover_from,omitempty"`
}

// StoppedByAutostop reports whether the machine is stopped or suspended
// because the autostop rule found it idle: not a crash, and not a
// failure of a deploy.
func (r *Record) StoppedByAutostop() bool {
	return (r.State == types.StateStopped || r.State == types.StateSuspended) && r.StopReason == StopReasonAutostop
}

// stopReason is the StopReason of a stop or suspend by source.
func stopReason(source string) string {
	if source == sourceAutostop {
		return StopReasonAutostop
	}
	return ""
}

// stopRequest is the request recorded with a stop or suspend event by
// source: req, plus the reason when it is autostop.
func stopRequest(source string, req map[string]interface{}) map[string]interface{} {
	if reason := stopReason(source); reason != "" {
		if req == nil {
			req = map[string]interface{}{}
		}
		req["reason"] = reason
	}
	return req
}

// Version is an earlier instance of a machine.
type Version struct {
	InstanceID string               `json:"version"`
	Config     *types.MachineConfig `json:"user_config"`
}

// Options configure a Supervisor.
type Options struct {
	Store   store.Store
	Driver  runtime.Driver
	Network Network
	Images  Images
	Router  Router
	Region  string
	DataDir string
	Log     *slog.Logger
	// SpecHooks adjust a machine's task spec just before it starts (secrets
	// into env, volume mounts, [[files]]). An error fails the start.
	SpecHooks []SpecHook
	// Validators check a machine config before a create or an update
	// records anything (the [[files]] and mounts the hooks would refuse).
	Validators []Validator
	// Nameservers, if set, are the only resolvers machines get in their
	// /etc/resolv.conf (the daemon's .internal DNS on the bridge gateway);
	// empty: the host's non-loopback resolvers.
	Nameservers []string
	// HostID is this host's id: machines it creates record it, and it
	// runs, recovers and checks only the machines that carry it ("" on a
	// single host before host ids).
	HostID string
	// Observer is told of starts and autostop actions, for metrics
	// (nil: no one).
	Observer Observer
	// NoPark: a stopped machine's next start is not prepared ahead even
	// when the driver can (see park.go).
	NoPark bool
}

// Observer is told what the supervisor did, for metrics. Its methods must
// not block.
type Observer interface {
	// MachineStarted: a machine of app went from state from to started
	// in d; source is the event's ("user", "fly-proxy" for a wake,
	// "flyd" for a restart).
	MachineStarted(app, from, source string, d time.Duration)
	// Autostopped: autostop stopped or suspended (action) a machine.
	Autostopped(app, action string)
}

// SpecHook adjusts the task spec of a machine that is about to start.
type SpecHook func(ctx context.Context, r *Record, spec *runtime.Spec) error

// Supervisor runs the machines of this host.
type Supervisor struct {
	opt Options
	log *slog.Logger

	mu       sync.Mutex // guards machines and changed
	machines map[string]*live
	changed  chan struct{} // closed and replaced on every record change

	filesDir string // machines' [[files]] (FilesDirFor), "" without a data dir

	// ipamMu serialises this host's address allocations, so that its own
	// creates never race for one index (other writers of the store still
	// lose a compare-and-swap and retry).
	ipamMu sync.Mutex

	logMaxBytes logLimit // see SetLogMaxBytes
}

// live is the in-memory side of one machine.
type live struct {
	mu      sync.Mutex // serialises lifecycle operations on the machine
	app, id string
	// leaseMu orders lease changes with the mutations they guard (taken
	// before mu, never after); see Guarded in ops.go.
	leaseMu sync.Mutex

	stateMu       sync.Mutex // guards the fields below
	stopRequested bool
	cancelChecks  context.CancelFunc
	checks        map[string]types.CheckStatus
	generation    int // bumps on each start; stale watchers ignore exits
}

// New returns a supervisor; call Recover before serving.
func New(opt Options) *Supervisor {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	s := &Supervisor{opt: opt, log: opt.Log.With("component", "supervisor"), machines: map[string]*live{}, changed: make(chan struct{})}
	if opt.DataDir != "" {
		s.filesDir = FilesDirFor(opt.DataDir)
	}
	return s
}

func machineKey(app, id string) string { return "machines/" + app + "/" + id }

func (s *Supervisor) liveFor(app, id string) *live {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.machines[id]
	if l == nil {
		l = &live{app: app, id: id, checks: map[string]types.CheckStatus{}}
		s.machines[id] = l
	}
	return l
}

func (s *Supervisor) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Supervisor) changedCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// NewID returns a machine id: 14 hex characters, like Fly's.
func NewID() string {
	var b [7]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewInstanceID returns a ULID: sortable by time, as Fly's instance ids.
func NewInstanceID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:])
	out := make([]byte, 26)
	// 128 bits into 26 base32 digits, most significant first.
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// Get returns a machine with its live check status.
func (s *Supervisor) Get(ctx context.Context, app, id string) (*Record, error) {
	var r Record
	if _, err := store.GetJSON(ctx, s.opt.Store, machineKey(app, id), &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("machine not found: app %s has no machine %s (list them with `hangar machine list -a %s`): %w", app, id, app, ErrNotFound)
		}
		return nil, fmt.Errorf("machine %s: %w", id, err)
	}
	s.decorate(&r)
	return &r, nil
}

// decorate adds what a record read from the store shows but does not
// keep: the live check status, and the local registry of records written
// before image_ref.registry was always set (an empty one was a local image).
func (s *Supervisor) decorate(r *Record) {
	if r.ImageRef.Registry == "" && r.Config != nil {
		r.ImageRef.Registry = types.LocalRegistry
	}
	r.NextRunAt = ""
	if next := nextRun(r); !next.IsZero() {
		r.NextRunAt = next.Format(time.RFC3339)
	}
	s.mu.Lock()
	l := s.machines[r.ID]
	s.mu.Unlock()
	r.Checks = nil
	if l == nil {
		return
	}
	l.stateMu.Lock()
	for _, c := range l.checks {
		r.Checks = append(r.Checks, c)
	}
	l.stateMu.Unlock()
	sort.Slice(r.Checks, func(i, j int) bool { return r.Checks[i].Name < r.Checks[j].Name })
}

// List returns the machines of an app (all apps when app is "").
func (s *Supervisor) List(ctx context.Context, app string) ([]*Record, error) {
	prefix := "machines/"
	if app != "" {
		prefix += app + "/"
	}
	kvs, err := s.opt.Store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	out := make([]*Record, 0, len(kvs))
	for _, kv := range kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("machine record %s: %w", kv.Key, err)
		}
		s.decorate(&r)
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt < out[j].CreatedAt || (out[i].CreatedAt == out[j].CreatedAt && out[i].ID < out[j].ID)
	})
	return out, nil
}

// update applies fn to the stored record and saves it.
func (s *Supervisor) update(ctx context.Context, app, id string, fn func(r *Record) error) (*Record, error) {
	out, _, err := store.UpdateJSON(ctx, s.opt.Store, machineKey(app, id), func(cur *Record) (*Record, error) {
		if cur == nil {
			return nil, fmt.Errorf("machine not found: app %s has no machine %s (list them with `hangar machine list -a %s`): %w", app, id, app, ErrNotFound)
		}
		if err := fn(cur); err != nil {
			return nil, err
		}
		cur.UpdatedAt = now()
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return out, nil
}

func addEvent(r *Record, typ, status, source string, req map[string]interface{}) {
	ev := types.MachineEvent{ID: NewInstanceID(), Type: typ, Status: status, Source: source, Timestamp: time.Now().UnixMilli(), Request: req}
	r.Events = append([]types.MachineEvent{ev}, r.Events...)
	if len(r.Events) > 50 {
		r.Events = r.Events[:50]
	}
}

func (s *Supervisor) setState(ctx context.Context, app, id, state, event, source string, req map[string]interface{}) (*Record, error) {
	return s.update(ctx, app, id, func(r *Record) error {
		r.State = state
		if event != "" {
			addEvent(r, event, state, source, req)
		}
		return nil
	})
}

// CreateOptions are the parts of a create request besides the config.
type CreateOptions struct {
	Name       string
	Region     string
	SkipLaunch bool
	Cordoned   bool // start without proxy traffic
	// UniqueName refuses (ErrConflict) a Name another machine of the app
	// has (the Machines API's create; a deploy's names may repeat).
	UniqueName bool
	// PreferHost is a placement hint for a deploy across hosts (the host
	// of the machine the new one replaces); the supervisor ignores it.
	PreferHost string
	// LeaseTTL, if positive, leases the machine to LeaseOwner before it
	// starts (the Machines API's lease_ttl).
	LeaseTTL   time.Duration
	LeaseOwner string
}

// Create records a new machine and starts it unless SkipLaunch.
func (s *Supervisor) Create(ctx context.Context, app string, cfg *types.MachineConfig, opt CreateOptions) (*Record, error) {
	t0 := time.Now()
	if opt.UniqueName && opt.Name != "" {
		ms, err := s.List(ctx, app)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.Name == opt.Name {
				return nil, fmt.Errorf("app %s already has a machine named %s (%s): %w", app, opt.Name, m.ID, ErrConflict)
			}
		}
	}
	if cfg == nil || cfg.Image == "" {
		return nil, fmt.Errorf("config.image is required: name an image imported with `hangar image import` or pullable by reference: %w", ErrInvalid)
	}
	if err := s.validate(ctx, app, cfg); err != nil {
		return nil, err
	}
	img, err := s.opt.Images.Get(ctx, cfg.Image)
	if err != nil {
		return nil, fmt.Errorf("config.image %q: %v; import it with `hangar image import` or deploy with a [build] section: %w", cfg.Image, err, ErrInvalid)
	}
	id := NewID()
	region := opt.Region
	if region == "" {
		region = s.opt.Region
	}
	name := opt.Name
	if name == "" {
		name = id
	}
	// A machine that launches now is saved starting (and started next,
	// see startFrom); one leased first is saved created, so that a lease
	// that fails leaves nothing to start.
	launch := !opt.SkipLaunch && opt.LeaseTTL <= 0
	state := types.StateCreated
	if launch {
		state = types.StateStarting
	}
	r, err := s.saveNew(ctx, app, id, func(idx int, ip4, ip6 net.IP) *Record {
		ts := now()
		r := &Record{
			Machine: types.Machine{
				ID: id, Name: name, State: state, Region: region,
				InstanceID: NewInstanceID(), PrivateIP: ip6.String(), Config: cfg,
				ImageRef: imageRef(img), CreatedAt: ts, UpdatedAt: ts, Cordoned: opt.Cordoned,
				HostID: s.opt.HostID,
			},
			App: app, AddrIndex: idx, IPv4: ip4.String(),
		}
		addEvent(r, "launch", types.StateCreated, "user", nil)
		return r
	})
	if err != nil {
		return nil, err
	}
	s.log.Debug("machine recorded", "app", app, "machine", id, "took", time.Since(t0))
	s.notify()
	if launch {
		l := s.liveFor(app, id)
		l.mu.Lock()
		defer l.mu.Unlock()
		return s.startFrom(ctx, l, r, types.StateCreated, "user", true)
	}
	if opt.LeaseTTL > 0 {
		if _, err := s.AcquireLease(ctx, app, id, opt.LeaseOwner, "lease_ttl on create", opt.LeaseTTL); err != nil {
			return nil, err
		}
	}
	if opt.SkipLaunch {
		s.decorate(r)
		return r, nil
	}
	return s.Start(ctx, app, id)
}

func imageRef(img *image.Image) types.ImageRef {
	ref := types.ImageRef{Digest: img.Digest, Labels: img.Config.Labels}
	name := img.Ref
	if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		ref.Tag = name[i+1:]
		name = name[:i]
	}
	if i := strings.Index(name, "/"); i >= 0 && strings.ContainsAny(name[:i], ".:") {
		ref.Registry, name = name[:i], name[i+1:]
	}
	ref.Repository = name
	if ref.Registry == "" {
		// Imported, uploaded or built here: never an empty registry, which
		// makes clients build "/name:tag@digest".
		ref.Registry = types.LocalRegistry
	}
	return ref
}

// saveNew takes the lowest free address number for machine id and saves
// the record build makes for it, in one transaction: one commit on the
// create path, and no address taken for a record that was not saved.
func (s *Supervisor) saveNew(ctx context.Context, app, id string, build func(idx int, ip4, ip6 net.IP) *Record) (*Record, error) {
	s.ipamMu.Lock()
	defer s.ipamMu.Unlock()
	for attempt := 0; attempt < 100; attempt++ {
		kvs, err := s.opt.Store.List(ctx, "ipam/")
		if err != nil {
			return nil, fmt.Errorf("allocate address: %w", err)
		}
		used := map[int]bool{}
		for _, kv := range kvs {
			if n, ok := s.ipamIndex(kv.Key); ok {
				used[n] = true
			}
		}
		n := 2
		for used[n] {
			n++
		}
		ip4, ip6, err := s.opt.Network.AddressFor(n)
		if err != nil {
			return nil, err
		}
		r := build(n, ip4, ip6)
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("save machine %s: %w", id, err)
		}
		_, err = s.opt.Store.Txn(ctx, []store.Op{
			{Key: s.ipamKey(n), Value: []byte(id), Expect: 0},
			{Key: machineKey(app, id), Value: b, Expect: 0},
		})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("save machine %s: %w", id, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("allocate address: too much contention: %w", ErrConflict)
}

// Addresses are allocated per host: an index is an offset in the host's
// own IPv4 subnet and 6PN /64, so each host has the whole index space
// (ipam/<host>/<index>). Indexes recorded before hosts had ids
// (ipam/<index>, a single host's, or a single host's state moved into a
// cluster) stay taken on every host, which is safe.

// ipamKey is the key that allocates index n on this host.
func (s *Supervisor) ipamKey(n int) string {
	if s.opt.HostID == "" {
		return fmt.Sprintf("ipam/%08d", n)
	}
	return fmt.Sprintf("ipam/%s/%08d", s.opt.HostID, n)
}

// ipamIndex reports the index an allocation key takes on this host: its
// own, and the ones recorded without a host.
func (s *Supervisor) ipamIndex(key string) (int, bool) {
	rest := strings.TrimPrefix(key, "ipam/")
	if host, idx, ok := strings.Cut(rest, "/"); ok {
		if host != s.opt.HostID {
			return 0, false
		}
		rest = idx
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// releaseAddr frees machine id's index n (under this host's key, or the
// one without a host), only where id holds it.
func (s *Supervisor) releaseAddr(ctx context.Context, id string, n int) error {
	keys := []string{fmt.Sprintf("ipam/%08d", n)}
	if s.opt.HostID != "" {
		keys = append(keys, s.ipamKey(n))
	}
	for _, k := range keys {
		kv, err := s.opt.Store.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if string(kv.Value) != id {
			continue
		}
		if _, err := s.opt.Store.Delete(ctx, k, kv.ModRevision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

// LogPath is where a machine's output is kept; it survives restarts of the
// machine and of the daemon, and the machine itself until the LogJanitor
// removes it. The shim rotates it to LogPath+".1".
func (s *Supervisor) LogPath(app, id string) string {
	return filepath.Join(s.opt.DataDir, "logs", app, id+".log")
}

func (s *Supervisor) machineDir(id string) string {
	return filepath.Join(s.opt.DataDir, "machines", id)
}

// Start starts a created or stopped machine. Starting a started machine is
// a no-op.
func (s *Supervisor) Start(ctx context.Context, app, id string) (*Record, error) {
	l := s.liveFor(app, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	return s.startLocked(ctx, l, "user")
}

func (s *Supervisor) startLocked(ctx context.Context, l *live, source string) (*Record, error) {
	r, err := s.getOwn(ctx, l.app, l.id)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	from := r.State
	switch r.State {
	case types.StateStarted:
		return r, nil
	case types.StateSuspended:
		r, err := s.resumeLocked(ctx, l, r, source)
		if err == nil && s.opt.Observer != nil {
			s.opt.Observer.MachineStarted(l.app, from, source, time.Since(t0))
		}
		return r, err
	case types.StateDestroying, types.StateDestroyed:
		return nil, fmt.Errorf("machine %s is %s: %w", l.id, r.State, ErrConflict)
	}
	return s.startFrom(ctx, l, r, from, source, false)
}

// startFrom boots machine r (in state from) and records it started.
// recorded: r is already recorded starting (a create that launches saves
// its new record so: one store commit less on the way to the first
// request).
func (s *Supervisor) startFrom(ctx context.Context, l *live, r *Record, from, source string, recorded bool) (*Record, error) {
	t0 := time.Now()
	if recorded {
		netReady := s.startNetwork(r)
		r, err := s.bootLocked(ctx, l, r, source, netReady)
		if err == nil && s.opt.Observer != nil {
			s.opt.Observer.MachineStarted(l.app, from, source, time.Since(t0))
		}
		return r, err
	}
	// The network namespace is made, and the task's spec built, while
	// the state is recorded (a store commit); the task starts only once
	// the machine is recorded starting.
	netReady := s.startNetwork(r)
	type built struct {
		spec runtime.Spec
		err  error
	}
	specCh := make(chan built, 1)
	go func() {
		spec, err := s.buildSpec(ctx, r, netReady)
		specCh <- built{spec, err}
	}()
	if _, err := s.setState(ctx, l.app, l.id, types.StateStarting, "", source, nil); err != nil {
		if b := <-specCh; b.err == nil && b.spec.NetNSReady != nil {
			_ = b.spec.NetNSReady()
		}
		s.removeFiles(l.id)
		return nil, err
	}
	b := <-specCh
	r, err := s.bootWith(ctx, l, r, source, b.spec, b.err)
	if err == nil && s.opt.Observer != nil {
		s.opt.Observer.MachineStarted(l.app, from, source, time.Since(t0))
	}
	return r, err
}

// bootLocked starts a task for the machine as r describes it and records
// the machine started (event "start"), or failed. The caller has set the
// state it passes through: starting, or replacing for an update.
//
// netReady, if set, waits for the network namespace the caller started
// making (startNetwork).
func (s *Supervisor) bootLocked(ctx context.Context, l *live, r *Record, source string, netReady func() error) (*Record, error) {
	spec, err := s.buildSpec(ctx, r, netReady)
	return s.bootWith(ctx, l, r, source, spec, err)
}

// bootWith is bootLocked with the spec built (or failed to be, specErr).
func (s *Supervisor) bootWith(ctx context.Context, l *live, r *Record, source string, spec runtime.Spec, specErr error) (*Record, error) {
	t1 := time.Now()
	err := specErr
	if err == nil {
		_, err = s.opt.Driver.Start(ctx, spec)
		if spec.NetNSReady != nil {
			// The driver may have failed before it waited for the
			// namespace: let its setup finish either way.
			if nerr := spec.NetNSReady(); err == nil && nerr != nil {
				err = nerr
			}
		}
	}
	t2 := time.Now()
	if err != nil {
		s.log.Warn("machine failed to start", "app", l.app, "machine", l.id, "err", err)
		s.removeFiles(l.id)
		_, _ = s.update(context.Background(), l.app, l.id, func(r *Record) error {
			r.State = types.StateFailed
			r.Relaunch = false
			addEvent(r, "start", types.StateFailed, source, map[string]interface{}{"error": err.Error()})
			return nil
		})
		return nil, fmt.Errorf("start machine %s: %w", l.id, err)
	}
	l.stateMu.Lock()
	l.stopRequested = false
	l.generation++
	gen := l.generation
	l.stateMu.Unlock()
	// The task runs: its checks start, and the proxy may route to it once
	// they pass, while the start is recorded (a store commit, milliseconds
	// under load), so that requests a wake holds go at once.
	started := *r
	started.State, started.StopReason = types.StateStarted, ""
	s.startChecks(l, &started, false)
	r, err = s.update(ctx, l.app, l.id, func(r *Record) error {
		r.State = types.StateStarted
		r.Relaunch = false
		r.StopReason = ""
		addEvent(r, "start", types.StateStarted, source, nil)
		return nil
	})
	if err != nil {
		// Not recorded started: out of rotation again.
		l.stateMu.Lock()
		if l.cancelChecks != nil {
			l.cancelChecks()
			l.cancelChecks = nil
		}
		l.stateMu.Unlock()
		if started.Config != nil && len(started.Config.Services) > 0 {
			s.opt.Router.SetBackend(types.Backend{App: l.app, MachineID: l.id}, false)
		}
		return nil, err
	}
	s.log.Debug("machine booted", "app", l.app, "machine", l.id, "driver", t2.Sub(t1), "record", time.Since(t2))
	go s.watchExit(l, gen)
	return r, nil
}

// attach starts watching a running machine: its exit and its checks.
func (s *Supervisor) attach(l *live, r *Record, gen int) {
	s.startChecks(l, r, false)
	go s.watchExit(l, gen)
}

// routeUpdate tells the proxy whether the machine may take traffic: it is
// started, its top-level checks pass and, when it serves HTTP, so do the
// HTTP service's. A service whose own checks fail is listed in
// DownServices: raw TCP connections to that service skip the machine while
// its other services still take them.
func (s *Supervisor) routeUpdate(l *live, r *Record) {
	if r.Config == nil || len(r.Config.Services) == 0 {
		return
	}
	svc := r.Config.HTTPService()
	// The service the HTTP listeners serve gates the whole machine: the
	// first with an http handler, else the first service when it has no
	// public ports (reached only through the HTTP proxy). A raw TCP
	// service's own checks gate only itself (DownServices).
	httpIdx := -2
	for i := range r.Config.Services {
		if r.Config.Services[i].ServesHTTP() {
			httpIdx = i
			break
		}
	}
	if httpIdx < 0 && len(r.Config.Services[0].Ports) == 0 {
		httpIdx = 0
	}
	serviceOf := map[string]int{}
	for _, c := range machineChecks(r.Config) {
		serviceOf[c.name] = c.service
	}
	down := map[int]bool{}
	l.stateMu.Lock()
	ok := !l.stopRequested && !r.Cordoned
	for _, c := range l.checks {
		if c.Status == types.CheckPassing || !gates(r.Config, c.Name) {
			continue
		}
		i, known := serviceOf[c.Name]
		if !known || i < 0 || i == httpIdx {
			ok = false
		}
		if known && i >= 0 {
			down[i] = true
		}
	}
	l.stateMu.Unlock()
	var downKeys []string
	for i := range r.Config.Services {
		if down[i] {
			downKeys = append(downKeys, r.Config.Services[i].RouteKey())
		}
	}
	s.opt.Router.SetBackend(types.Backend{
		App: l.app, MachineID: l.id, Region: r.Region,
		Addr: fmt.Sprintf("%s:%d", r.IPv4, svc.InternalPort), Service: svc, Config: r.Config,
		DownServices: downKeys,
	}, ok && r.State == types.StateStarted)
}

func (s *Supervisor) watchExit(l *live, gen int) {
	ex, err := s.opt.Driver.Wait(context.Background(), l.id)
	if err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			return
		}
		s.log.Warn("wait for machine failed", "machine", l.id, "err", err)
		return
	}
	s.handleExit(l, gen, ex)
}

// handleExit records an exit the user did not ask for and applies the
// restart policy; a machine with auto_destroy that will not restart is
// destroyed.
func (s *Supervisor) handleExit(l *live, gen int, ex runtime.ExitResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stateMu.Lock()
	stale := gen != l.generation || l.stopRequested
	if !stale && l.cancelChecks != nil {
		l.cancelChecks()
		l.cancelChecks = nil
	}
	l.stateMu.Unlock()
	if stale {
		return
	}
	ctx := context.Background()
	r, err := s.Get(ctx, l.app, l.id)
	if err != nil {
		return
	}
	s.opt.Router.SetBackend(types.Backend{App: l.app, MachineID: l.id}, false)
	s.removeFiles(l.id) // a restart writes them again
	s.log.Info("machine exited", "app", l.app, "machine", l.id, "exit_code", ex.Code, "oom_killed", ex.OOMKilled)
	policy, max := restartPolicy(r.Config)
	restart := policy == types.RestartAlways || (policy == types.RestartOnFailure && ex.Code != 0 && r.RestartCount < max)
	r, err = s.update(ctx, l.app, l.id, func(r *Record) error {
		r.State = types.StateStopped
		r.StopReason = ""
		req := map[string]interface{}{"exit_event": map[string]interface{}{
			"exit_code": ex.Code, "signal": ex.Signal, "oom_killed": ex.OOMKilled,
			"exited_at": ex.ExitedAt.Format(time.RFC3339Nano), "restarting": restart,
			"guest_exit_code": ex.Code,
		}}
		if ex.Err != "" {
			req["error"] = ex.Err
		}
		addEvent(r, "exit", types.StateStopped, "flyd", req)
		if restart {
			r.RestartCount++
		}
		return nil
	})
	if err == nil && !restart && r.Config != nil && r.Config.AutoDestroy {
		// config.auto_destroy: a machine that exits for good is destroyed
		// (fly machine run --rm). Destroy waits for l.mu, held here.
		go func() {
			if err := s.Destroy(context.Background(), l.app, l.id, true); err != nil {
				s.log.Warn("auto_destroy after exit failed", "machine", l.id, "err", err)
			}
		}()
	}
	if err != nil || !restart {
		return
	}
	backoff := time.Duration(1<<min(r.RestartCount-1, 6)) * 100 * time.Millisecond
	if backoff > 5*time.Second {
		backoff = 5 * time.Second
	}
	go func() {
		time.Sleep(backoff)
		l.mu.Lock()
		defer l.mu.Unlock()
		cur, err := s.Get(ctx, l.app, l.id)
		if err != nil || cur.State != types.StateStopped {
			return // stopped, destroyed or started by someone else meanwhile
		}
		if _, err := s.startLocked(ctx, l, "flyd"); err != nil {
			s.log.Warn("restart failed", "machine", l.id, "err", err)
		}
	}()
}

// restartPolicy is cfg's restart policy and its max retries. The default,
// on-failure, is also a scheduled machine's, as on Fly: a run that fails
// is retried; one that exits 0 stays stopped until the next interval.
func restartPolicy(cfg *types.MachineConfig) (string, int) {
	if cfg == nil || cfg.Restart == nil || cfg.Restart.Policy == "" {
		return types.RestartOnFailure, 10
	}
	max := cfg.Restart.MaxRetries
	if max == 0 {
		max = 10
	}
	return cfg.Restart.Policy, max
}

// SetCordoned cordons (no proxy traffic) or uncordons a machine.
func (s *Supervisor) SetCordoned(ctx context.Context, app, id string, cordoned bool) (*Record, error) {
	l := s.liveFor(app, id)
	r, err := s.update(ctx, app, id, func(r *Record) error {
		r.Cordoned = cordoned
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.State == types.StateStarted {
		s.routeUpdate(l, r)
	}
	return r, nil
}

// Stop drains the machine in the proxy, then stops it with its signal and
// timeout (from the request, else its stop_config, else SIGINT and 5s).
func (s *Supervisor) Stop(ctx context.Context, app, id, signal string, timeout time.Duration) (*Record, error) {
	l := s.liveFor(app, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	return s.stopLocked(ctx, l, signal, timeout, "user")
}

func (s *Supervisor) stopLocked(ctx context.Context, l *live, signal string, timeout time.Duration, source string) (*Record, error) {
	r, err := s.getOwn(ctx, l.app, l.id)
	if err != nil {
		return nil, err
	}
	if !hasTask(r.State) {
		return r, nil // not running
	}
	s.quiesce(l, r)
	if _, err := s.setState(ctx, l.app, l.id, types.StateStopping, "", source, nil); err != nil {
		return nil, err
	}
	signal, err = s.stopTask(ctx, l, r, signal, timeout)
	if err != nil {
		return nil, err
	}
	r, err = s.update(ctx, l.app, l.id, func(r *Record) error {
		r.State = types.StateStopped
		r.StopReason = stopReason(source)
		addEvent(r, "stop", types.StateStopped, source, stopRequest(source, map[string]interface{}{"signal": signal}))
		return nil
	})
	if err == nil {
		s.parkAfterStop(l, r.InstanceID) // park.go
	}
	return r, err
}

// hasTask reports whether a machine in state has a task to stop: running,
// about to, or frozen.
func hasTask(state string) bool {
	return state == types.StateStarted || state == types.StateStarting || state == types.StateSuspended
}

// quiesce is the first step of stopping a machine's task: its exit will
// be expected (no restart policy), its checks stop, and the proxy stops
// picking it at once (draining follows in stopTask).
func (s *Supervisor) quiesce(l *live, r *Record) {
	l.stateMu.Lock()
	l.stopRequested = true
	if l.cancelChecks != nil {
		l.cancelChecks()
		l.cancelChecks = nil
	}
	l.stateMu.Unlock()
	if r.State == types.StateStarted && r.Config != nil && len(r.Config.Services) > 0 {
		s.opt.Router.SetBackend(types.Backend{App: l.app, MachineID: l.id}, false)
	}
}

// stopTask stops a quiesced machine's task as r (its running version)
// says: in-flight requests finish first, bounded by the kill timeout; then
// the signal (the argument, else the config's stop_config, else SIGINT)
// and SIGKILL after the timeout (the argument, else stop_config's, else
// 5s). The machine leaves the proxy and its [[files]] are removed. It
// returns the signal used; the record's state is the caller's business.
func (s *Supervisor) stopTask(ctx context.Context, l *live, r *Record, signal string, timeout time.Duration) (string, error) {
	if r.State == types.StateSuspended {
		// A frozen task cannot act on a signal: thaw it first.
		if p, ok := s.opt.Driver.(runtime.Pauser); ok {
			if err := p.Resume(ctx, l.id); err != nil {
				s.log.Warn("resume before stop failed", "machine", l.id, "err", err)
			}
		}
	}
	if signal == "" && r.Config != nil && r.Config.StopConfig != nil && r.Config.StopConfig.Signal != nil {
		signal = *r.Config.StopConfig.Signal
	}
	if signal == "" {
		signal = "SIGINT"
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
		if r.Config != nil && r.Config.StopConfig != nil && r.Config.StopConfig.Timeout != nil {
			timeout = r.Config.StopConfig.Timeout.Duration
		}
	}
	t0 := time.Now()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	if err := s.opt.Router.Drain(dctx, l.app, l.id); err != nil {
		s.log.Warn("drain did not finish before the stop timeout", "machine", l.id, "err", err)
	}
	cancel()
	t1 := time.Now()
	if err := s.opt.Driver.Stop(ctx, l.id, signal, timeout); err != nil {
		return signal, fmt.Errorf("stop machine %s: %w", l.id, err)
	}
	s.opt.Router.Remove(l.app, l.id)
	s.removeFiles(l.id)
	s.log.Debug("machine task stopped", "app", l.app, "machine", l.id, "drain", t1.Sub(t0), "stop", time.Since(t1))
	return signal, nil
}

// Launch says whether an update boots the new version of a machine.
type Launch int

const (
	// LaunchIfRunning boots the new version if the machine was running
	// (started, starting or suspended): a restart into the new config.
	LaunchIfRunning Launch = iota
	// LaunchAlways boots the new version whatever the machine's state.
	LaunchAlways
	// LaunchNever leaves the new version stopped (skip_launch); a
	// machine that was never started stays created.
	LaunchNever
)

// Update replaces a machine's config and boots the new version if the
// machine was running and not skipLaunch. See UpdateWith.
func (s *Supervisor) Update(ctx context.Context, app, id string, cfg *types.MachineConfig, skipLaunch bool) (*Record, error) {
	launch := LaunchIfRunning
	if skipLaunch {
		launch = LaunchNever
	}
	return s.UpdateWith(ctx, app, id, cfg, launch)
}

// UpdateWith replaces a machine's config. The machine is "replacing" for
// the whole update, as on Fly (event "update", status "replacing"): it
// leaves the proxy's rotation and its task, if any, stops (drained, with
// its stop_config); the config is swapped (a new instance_id; the old
// version is kept as replaced); then, as launch says, the new version
// boots (started, event "start") or is left stopped. Once begun, an update
// runs to the end even if ctx is cancelled: a machine is never left
// replacing.
func (s *Supervisor) UpdateWith(ctx context.Context, app, id string, cfg *types.MachineConfig, launch Launch) (*Record, error) {
	if cfg == nil || cfg.Image == "" {
		return nil, fmt.Errorf("config.image is required: %w", ErrInvalid)
	}
	if err := s.validate(ctx, app, cfg); err != nil {
		return nil, err
	}
	img, err := s.opt.Images.Get(ctx, cfg.Image)
	if err != nil {
		return nil, fmt.Errorf("config.image %q: %v: %w", cfg.Image, err, ErrInvalid)
	}
	l := s.liveFor(app, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	old, err := s.getOwn(ctx, app, id)
	if err != nil {
		return nil, err
	}
	switch old.State {
	case types.StateDestroying, types.StateDestroyed:
		return nil, fmt.Errorf("machine %s is %s: %w", id, old.State, ErrConflict)
	}
	running := hasTask(old.State)
	boot := launch == LaunchAlways || (launch == LaunchIfRunning && running)
	if running {
		s.quiesce(l, old) // out of rotation before anyone can see "replacing"
	}
	_, err = s.update(ctx, app, id, func(r *Record) error {
		r.State = types.StateReplacing
		r.Relaunch = boot
		addEvent(r, "update", types.StateReplacing, "user", nil)
		return nil
	})
	if err != nil {
		if running {
			s.resumeRunning(l, old)
		}
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	if running {
		if _, err := s.stopTask(ctx, l, old, "", 0); err != nil {
			// The old version may still run: it is the machine again
			// (thawed, if it was suspended: stopTask thaws first).
			back := *old
			if back.State == types.StateSuspended {
				back.State = types.StateStarted
			}
			if _, uerr := s.update(ctx, app, id, func(r *Record) error {
				r.State, r.Relaunch = back.State, false
				return nil
			}); uerr == nil {
				s.resumeRunning(l, &back)
			}
			return nil, err
		}
	}
	after := types.StateStopped
	if old.State == types.StateCreated {
		after = types.StateCreated
	}
	r, err := s.update(ctx, app, id, func(r *Record) error {
		r.Versions = append([]Version{{InstanceID: r.InstanceID, Config: r.Config}}, r.Versions...)
		if len(r.Versions) > 10 {
			r.Versions = r.Versions[:10]
		}
		r.Config = cfg
		r.ImageRef = imageRef(img)
		r.InstanceID = NewInstanceID()
		r.RestartCount = 0
		if !boot {
			r.State, r.Relaunch = after, false
		}
		return nil
	})
	if err != nil {
		// The old task is gone; do not leave the machine replacing.
		_, _ = s.update(ctx, app, id, func(r *Record) error {
			r.State, r.Relaunch = types.StateStopped, false
			return nil
		})
		return nil, err
	}
	if !boot {
		if r.State == types.StateStopped {
			s.parkAfterStop(l, r.InstanceID) // the new version's start, ahead
		}
		return r, nil
	}
	return s.bootLocked(ctx, l, r, "flyd", nil)
}

// resumeRunning undoes quiesce for a machine whose task runs on after all:
// its exits count again, and its checks (from their last results) decide
// whether the proxy routes to it.
func (s *Supervisor) resumeRunning(l *live, r *Record) {
	l.stateMu.Lock()
	l.stopRequested = false
	l.stateMu.Unlock()
	if r.State == types.StateStarted {
		s.startChecks(l, r, true)
	}
}

// Destroy removes a machine. A running machine needs force.
func (s *Supervisor) Destroy(ctx context.Context, app, id string, force bool) error {
	l := s.liveFor(app, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := s.getOwn(ctx, app, id)
	if err != nil {
		return err
	}
	if (r.State == types.StateStarted || r.State == types.StateStarting) && !force {
		return fmt.Errorf("machine %s is %s; stop it first or destroy with force=true: %w", id, r.State, ErrConflict)
	}
	if r.State == types.StateStarted || r.State == types.StateStarting {
		if _, err := s.stopLocked(ctx, l, "SIGKILL", 5*time.Second, "user"); err != nil {
			s.log.Warn("stop before destroy failed", "machine", id, "err", err)
		}
	}
	t0 := time.Now()
	if _, err := s.setState(ctx, app, id, types.StateDestroying, "", "user", nil); err != nil {
		return err
	}
	t1 := time.Now()
	if err := s.opt.Driver.Destroy(ctx, id); err != nil {
		return fmt.Errorf("destroy machine %s: %w", id, err)
	}
	t2 := time.Now()
	s.opt.Router.Remove(app, id)
	if err := s.opt.Network.Teardown(id); err != nil {
		s.log.Warn("network teardown", "machine", id, "err", err)
	}
	_ = os.RemoveAll(s.machineDir(id))
	s.removeFiles(id)
	t3 := time.Now()
	if err := s.releaseAddr(ctx, id, r.AddrIndex); err != nil {
		return fmt.Errorf("destroy machine %s: release address: %w", id, err)
	}
	if _, err := s.opt.Store.Delete(ctx, machineKey(app, id), store.AnyRevision); err != nil {
		return fmt.Errorf("destroy machine %s: %w", id, err)
	}
	s.keepDestroyed(ctx, r) // for list?include_deleted=true (ops.go)
	s.log.Debug("machine destroyed", "app", app, "machine", id, "record", t1.Sub(t0), "driver", t2.Sub(t1), "network", t3.Sub(t2), "records", time.Since(t3))
	s.mu.Lock()
	delete(s.machines, id)
	s.mu.Unlock()
	s.notify()
	return nil
}

// Wait blocks until the machine reaches state (and instanceID, if given)
// or timeout passes (ErrTimeout).
func (s *Supervisor) Wait(ctx context.Context, app, id, state, instanceID string, timeout time.Duration) (*Record, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := s.changedCh()
		r, err := s.Get(ctx, app, id)
		if err != nil {
			if errors.Is(err, ErrNotFound) && state == types.StateDestroyed {
				return &Record{Machine: types.Machine{ID: id, State: types.StateDestroyed}}, nil
			}
			return nil, err
		}
		if r.State == state && (instanceID == "" || r.InstanceID == instanceID) {
			return r, nil
		}
		if instanceID != "" && r.InstanceID != instanceID && state != types.StateReplaced {
			for _, v := range r.Versions {
				if v.InstanceID == instanceID {
					return nil, fmt.Errorf("machine %s: instance %s was replaced by %s: %w", id, instanceID, r.InstanceID, ErrConflict)
				}
			}
		}
		select {
		case <-ch:
		case <-deadline.C:
			return r, fmt.Errorf("machine %s did not reach state %q within %v (it is %q): %w", id, state, timeout, r.State, ErrTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// WaitHealthy waits until the machine is started and all its checks pass.
func (s *Supervisor) WaitHealthy(ctx context.Context, app, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		// Checks that change state and records that change both close
		// changed: no poll interval between a pass and the return.
		changed := s.changedCh()
		r, err := s.Get(ctx, app, id)
		if err != nil {
			return err
		}
		if r.State == types.StateStarted {
			ok := true
			for _, c := range r.Checks {
				if c.Status != types.CheckPassing && gates(r.Config, c.Name) {
					ok = false
				}
			}
			if ok {
				return nil
			}
		}
		if r.State == types.StateFailed || r.State == types.StateDestroyed {
			return fmt.Errorf("machine %s is %s", id, r.State)
		}
		if time.Now().After(deadline) {
			var failing []string
			for _, c := range r.Checks {
				if c.Status != types.CheckPassing && gates(r.Config, c.Name) {
					failing = append(failing, fmt.Sprintf("%s (%s: %s)", c.Name, c.Status, c.Output))
				}
			}
			return fmt.Errorf("machine %s not healthy within %v: state %s, failing checks %v: %w", id, timeout, r.State, failing, ErrTimeout)
		}
		wait := time.NewTimer(min(time.Until(deadline)+time.Millisecond, time.Second))
		select {
		case <-changed:
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return ctx.Err()
		}
		wait.Stop()
	}
}

// Recover re-adopts every machine of this host after a daemon (re)start: running ones
// are watched again without a restart; ones that exited meanwhile get their
// exit recorded and their restart policy applied.
func (s *Supervisor) Recover(ctx context.Context) error {
	recs, err := s.List(ctx, "")
	if err != nil {
		return err
	}
	s.claimUnhosted(ctx, recs)
	var adopted []*live
	defer func() { s.awaitFirstChecks(ctx, adopted, recoverCheckWait) }()
	for _, r := range recs {
		if !s.Mine(r) {
			continue // another host's: its daemon recovers it
		}
		if s.fencedOut(ctx, r) {
			continue // replaced on another host while this one was lost (fence.go)
		}
		l := s.liveFor(r.App, r.ID)
		switch r.State {
		case types.StateStarted, types.StateStarting, types.StateStopping:
		case types.StateReplacing:
			s.recoverReplacing(ctx, r)
			continue
		case types.StateSuspended:
			// Still frozen in memory: watch for its exit, leave it suspended.
			if st, err := s.opt.Driver.Recover(ctx, r.ID); err == nil && st.Running {
				l.stateMu.Lock()
				l.generation++
				gen := l.generation
				l.stateMu.Unlock()
				go s.watchExit(l, gen)
				continue
			}
			_, _ = s.setState(ctx, r.App, r.ID, types.StateStopped, "exit", "flyd", nil)
			continue
		default:
			continue
		}
		st, err := s.opt.Driver.Recover(ctx, r.ID)
		switch {
		case err == nil && st.Running && r.State != types.StateStopping:
			l.stateMu.Lock()
			l.generation++
			gen := l.generation
			l.stateMu.Unlock()
			if r.State != types.StateStarted {
				r, _ = s.setState(ctx, r.App, r.ID, types.StateStarted, "", "flyd", nil)
			}
			s.log.Info("re-adopted running machine", "app", r.App, "machine", r.ID, "pid", st.Pid)
			s.attach(l, r, gen)
			adopted = append(adopted, l)
		case err == nil && st.Running:
			// It was being stopped when the daemon died: finish the stop.
			_ = s.opt.Driver.Stop(ctx, r.ID, "SIGINT", 5*time.Second)
			_, _ = s.setState(ctx, r.App, r.ID, types.StateStopped, "stop", "flyd", nil)
		case err == nil && st.Exit != nil:
			l.stateMu.Lock()
			l.generation++
			gen := l.generation
			l.stateMu.Unlock()
			s.log.Info("machine exited while the daemon was down", "app", r.App, "machine", r.ID, "exit_code", st.Exit.Code)
			s.handleExit(l, gen, *st.Exit)
		default:
			// Nothing left of the task (host reboot): start it again.
			s.log.Info("machine's task is gone; starting it again", "app", r.App, "machine", r.ID, "err", err)
			_, _ = s.setState(ctx, r.App, r.ID, types.StateStopped, "", "flyd", nil)
			go func(app, id string) {
				if _, err := s.Start(context.Background(), app, id); err != nil {
					s.log.Warn("restart after recovery failed", "machine", id, "err", err)
				}
			}(r.App, r.ID)
		}
	}
	return nil
}

// recoverReplacing finishes an update the daemon died in the middle of:
// whatever task is left (the old version, or the new one not yet recorded
// started) stops, and the machine boots from its record if the update was
// to boot it (Relaunch), else it is left stopped.
func (s *Supervisor) recoverReplacing(ctx context.Context, r *Record) {
	if st, err := s.opt.Driver.Recover(ctx, r.ID); err == nil && st.Running {
		if err := s.opt.Driver.Stop(ctx, r.ID, "SIGINT", 5*time.Second); err != nil {
			s.log.Warn("stop the task of a machine left replacing", "machine", r.ID, "err", err)
		}
	}
	s.removeFiles(r.ID)
	relaunch := r.Relaunch
	if _, err := s.update(ctx, r.App, r.ID, func(r *Record) error {
		r.State, r.Relaunch = types.StateStopped, false
		return nil
	}); err != nil {
		s.log.Warn("recover a machine left replacing", "machine", r.ID, "err", err)
		return
	}
	s.log.Info("finished an update interrupted by a daemon restart", "app", r.App, "machine", r.ID, "boot", relaunch)
	if relaunch {
		go func(app, id string) {
			if _, err := s.Start(context.Background(), app, id); err != nil {
				s.log.Warn("boot after an interrupted update failed", "machine", id, "err", err)
			}
		}(r.App, r.ID)
	}
}

// Shutdown stops background work; machines keep running.
func (s *Supervisor) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.machines {
		l.stateMu.Lock()
		if l.cancelChecks != nil {
			l.cancelChecks()
		}
		l.generation++ // exits seen after this are the next daemon's business
		l.stateMu.Unlock()
	}
}
