package api

// Machines: Fly's Machines API create, get, list, update, start, stop,
// wait, events and destroy (the other machine operations are in
// machineops.go).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// NonceHeader carries a machine lease's nonce on mutations.
const NonceHeader = "fly-machine-lease-nonce"

// machineObject is the wire form of a machine: the nonce only while it is
// leased.
func machineObject(rec *supervisor.Record) types.Machine {
	m := rec.Machine
	m.Nonce = ""
	if supervisor.LeaseActive(rec, time.Now()) {
		m.Nonce = rec.LeaseNonce
	}
	if m.HostStatus == "" {
		m.HostStatus = "ok"
	}
	return m
}

// guarded runs a mutation of the request's machine unless the machine is
// leased and the request does not carry the lease's nonce (409).
func (s *Server) guarded(r *http.Request, fn func() error) error {
	return s.sup.Guarded(r.Context(), r.PathValue("app"), r.PathValue("id"), r.Header.Get(NonceHeader), fn)
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %s %q: use true or false", name, v)
	}
	return b, nil
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	withDeleted, err := boolParam(q, "include_deleted")
	if err != nil {
		return err
	}
	ms, err := s.sup.List(r.Context(), app)
	if err != nil {
		return err
	}
	s.markUnknown(r.Context(), ms)
	if withDeleted {
		ds, err := s.sup.ListDestroyed(r.Context(), app)
		if err != nil {
			return err
		}
		ms = append(ms, ds...)
	}
	out := []types.Machine{}
	for _, m := range ms {
		if region := q.Get("region"); region != "" && m.Region != region {
			continue
		}
		match := true
		for k, v := range q {
			if key, ok := strings.CutPrefix(k, "metadata."); ok {
				if m.Config == nil || m.Config.Metadata[key] != v[0] {
					match = false
				}
			}
		}
		if match {
			out = append(out, machineObject(m))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

var regionRE = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// machineRequest is the body of machine create and update.
type machineRequest struct {
	types.CreateMachineRequest
	CurrentVersion string `json:"current_version,omitempty"`
}

func (s *Server) validateMachineRequest(r *http.Request, req *machineRequest) error {
	if req.Config == nil {
		return badRequest("config is required: send {\"config\": {\"image\": \"...\"}}")
	}
	if err := s.mayUseImage(r, r.PathValue("app"), req.Config.Image); err != nil {
		return err
	}
	if req.Region != "" && !regionRE.MatchString(req.Region) {
		return badRequest("region %q: use a region code like %q", req.Region, s.region)
	}
	if len(req.Name) > 63 || strings.ContainsAny(req.Name, " /\t\n") {
		return badRequest("name %q: at most 63 characters, no spaces or slashes", req.Name)
	}
	if req.LeaseTTL < 0 || time.Duration(req.LeaseTTL)*time.Second > supervisor.MaxLeaseTTL {
		return badRequest("lease_ttl %d: seconds from 1 to %d", req.LeaseTTL, int(supervisor.MaxLeaseTTL.Seconds()))
	}
	return nil
}

func (s *Server) createMachine(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var req machineRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.validateMachineRequest(r, &req); err != nil {
		return err
	}
	if !forwarded(r) {
		h, here, err := s.place(r.Context(), app, req.Region, req.Config)
		if err != nil {
			return err
		}
		if !here {
			// Created by the host it is placed on, the authority for it.
			if req.Region == "" {
				req.Region = h.Region
			}
			body, err := json.Marshal(req)
			if err != nil {
				return err
			}
			s.proxyTo(w, r, &h, body)
			return nil
		}
	}
	m, err := s.sup.Create(r.Context(), app, req.Config, supervisor.CreateOptions{
		Name: req.Name, Region: req.Region, SkipLaunch: req.SkipLaunch, Cordoned: req.SkipServiceRegistration,
		UniqueName: true, LeaseTTL: time.Duration(req.LeaseTTL) * time.Second, LeaseOwner: tokenOwner(r),
	})
	if err != nil {
		return err
	}
	if m, err = s.sup.Get(r.Context(), app, m.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, machineObject(m))
	return nil
}

func (s *Server) getMachine(w http.ResponseWriter, r *http.Request) error {
	// As on Fly, a destroyed machine can still be read (state
	// "destroyed") while its record is kept.
	m, err := s.sup.GetOrDestroyed(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.markUnknown(r.Context(), []*supervisor.Record{m})
	writeJSON(w, http.StatusOK, machineObject(m))
	return nil
}

func (s *Server) updateMachine(w http.ResponseWriter, r *http.Request) error {
	var req machineRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.validateMachineRequest(r, &req); err != nil {
		return err
	}
	app, id := r.PathValue("app"), r.PathValue("id")
	var m *supervisor.Record
	err := s.guarded(r, func() error {
		if req.CurrentVersion != "" {
			cur, err := s.sup.Get(r.Context(), app, id)
			if err != nil {
				return err
			}
			if cur.InstanceID != req.CurrentVersion {
				return fmt.Errorf("current_version %s: machine %s is at version %s: %w", req.CurrentVersion, id, cur.InstanceID, errConflict)
			}
		}
		if req.SkipServiceRegistration {
			if _, err := s.sup.SetCordoned(r.Context(), app, id, true); err != nil {
				return err
			}
		}
		// The new version boots if the machine was running and the
		// request does not say skip_launch; a machine that was not running
		// is left stopped, as Fly's hosts do (flyctl then waits for
		// "stopped"; see docs/api.md). It is "replacing" meanwhile.
		launch := supervisor.LaunchIfRunning
		if req.SkipLaunch {
			launch = supervisor.LaunchNever
		}
		var err error
		m, err = s.sup.UpdateWith(r.Context(), app, id, req.Config, launch)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, machineObject(m))
	return nil
}

func (s *Server) destroyMachine(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	force, err := boolParam(q, "force")
	if err != nil {
		return err
	}
	kill, err := boolParam(q, "kill") // fly-go's name for force
	if err != nil {
		return err
	}
	if err := s.guarded(r, func() error {
		return s.sup.Destroy(r.Context(), r.PathValue("app"), r.PathValue("id"), force || kill)
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (s *Server) startMachine(w http.ResponseWriter, r *http.Request) error {
	var prev string
	if err := s.guarded(r, func() error {
		m, err := s.sup.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
		if err != nil {
			return err
		}
		prev = m.State
		_, err = s.sup.Start(r.Context(), r.PathValue("app"), r.PathValue("id"))
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"previous_state": prev, "migrated": false, "new_host": ""})
	return nil
}

// signalName validates a signal given by name or number and returns its
// name ("" stays "": the machine's stop_config decides).
func signalName(field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	sig, err := supervisor.ParseSignal(v)
	if err != nil {
		return "", badRequest("%s: %v", field, err)
	}
	return unix.SignalName(sig), nil
}

// durationParam reads a Go duration ("10s") or a number of seconds.
func durationParam(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, badRequest("%s %q: a duration like \"10s\" or a number of seconds", field, v)
	}
	return d, nil
}

func (s *Server) stopMachine(w http.ResponseWriter, r *http.Request) error {
	var req types.StopRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil && !strings.Contains(err.Error(), "empty body") {
			return err
		}
	}
	var timeout time.Duration
	if req.Timeout != nil {
		timeout = req.Timeout.Duration
		if timeout < 0 {
			return badRequest("timeout must not be negative")
		}
	}
	sig, err := signalName("signal", req.Signal)
	if err != nil {
		return err
	}
	if err := s.guarded(r, func() error {
		_, err := s.sup.Stop(r.Context(), r.PathValue("app"), r.PathValue("id"), sig, timeout)
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

var waitStates = map[string]bool{
	types.StateCreated: true, types.StateStarted: true, types.StateStopped: true, types.StateSuspended: true,
	types.StateDestroyed: true, types.StateReplaced: true, types.StateFailed: true, types.StateSettled: true,
}

// waitMachine blocks until the machine is in one of the states asked for
// (default started), of instance_id (or fly-go's version) if given; 408
// after timeout seconds (1-60, default 60).
func (s *Server) waitMachine(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	states := q["state"]
	if len(states) == 0 {
		states = []string{types.StateStarted}
	}
	for _, st := range states {
		if st == types.StateReplacing {
			// Fly's wait does not take it either: it is a passing state a
			// wait could miss. An update answers once it is over.
			return badRequest("state %q: an update is replacing only while it runs; wait for started or stopped with the new instance_id", st)
		}
		if !waitStates[st] {
			return badRequest("state %q: wait supports created, started, stopped, suspended, failed, destroyed, replaced and settled (any of those but settled itself)", st)
		}
	}
	timeout := 60 * time.Second
	if t := q.Get("timeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > 60 {
			return badRequest("timeout %q: must be whole seconds from 1 to 60", t)
		}
		timeout = time.Duration(n) * time.Second
	}
	instance := q.Get("instance_id")
	if instance == "" {
		instance = q.Get("version")
	}
	reached, err := s.sup.WaitState(r.Context(), r.PathValue("app"), r.PathValue("id"), states, instance, timeout)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "state": reached})
	return nil
}

func (s *Server) machineEvents(w http.ResponseWriter, r *http.Request) error {
	m, err := s.sup.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	ev := m.Events
	if ev == nil {
		ev = []types.MachineEvent{}
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}
