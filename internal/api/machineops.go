package api

// Machine operations beyond create/start/stop/update/destroy: leases,
// suspend, restart, signal, cordon, metadata, versions, exec and ps, with
// Fly.io's paths and JSON shapes.

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/shlex"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// tokenOwner names the caller as a lease owner.
func tokenOwner(r *http.Request) string {
	if t := TokenFrom(r); t != nil {
		if t.Name != "" {
			return t.Name
		}
		return t.ID
	}
	return "unknown"
}

// LeaseRequest is the optional body of POST .../lease (ttl may also be a
// query parameter, as fly-go sends it).
type LeaseRequest struct {
	TTL         int    `json:"ttl,omitempty"`
	Description string `json:"description,omitempty"`
}

// LeaseResponse is what Fly's API answers on the lease endpoints: the
// lease under "data" with a status (what fly-go reads), and the same
// fields at the top level (the shape of the OpenAPI description's Lease).
type LeaseResponse struct {
	Status string            `json:"status"`
	Data   *supervisor.Lease `json:"data"`
	supervisor.Lease
}

func leaseResponse(l *supervisor.Lease) LeaseResponse {
	return LeaseResponse{Status: "success", Data: l, Lease: *l}
}

// acquireLease acquires a lease, or refreshes it when the request carries
// the nonce of the current one.
func (s *Server) acquireLease(w http.ResponseWriter, r *http.Request) error {
	var req LeaseRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil && !strings.Contains(err.Error(), "empty body") {
			return err
		}
	}
	if v := r.URL.Query().Get("ttl"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return badRequest("ttl %q: a number of seconds", v)
		}
		req.TTL = n
	}
	if req.TTL < 0 {
		return badRequest("ttl %d: a positive number of seconds", req.TTL)
	}
	if len(req.Description) > 1024 {
		return badRequest("description: at most 1024 bytes")
	}
	app, id := r.PathValue("app"), r.PathValue("id")
	ttl := time.Duration(req.TTL) * time.Second
	var l *supervisor.Lease
	var err error
	if nonce := r.Header.Get(NonceHeader); nonce != "" {
		l, err = s.sup.RefreshLease(r.Context(), app, id, nonce, ttl)
	} else {
		l, err = s.sup.AcquireLease(r.Context(), app, id, tokenOwner(r), req.Description, ttl)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, leaseResponse(l))
	return nil
}

func (s *Server) getLease(w http.ResponseWriter, r *http.Request) error {
	l, err := s.sup.GetLease(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, leaseResponse(l))
	return nil
}

func (s *Server) releaseLease(w http.ResponseWriter, r *http.Request) error {
	if err := s.sup.ReleaseLease(r.Context(), r.PathValue("app"), r.PathValue("id"), r.Header.Get(NonceHeader)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (s *Server) suspendMachine(w http.ResponseWriter, r *http.Request) error {
	if err := s.guarded(r, func() error {
		_, err := s.sup.Suspend(r.Context(), r.PathValue("app"), r.PathValue("id"))
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// restartMachine takes timeout (duration or seconds), signal and
// force_stop (= SIGKILL) as query parameters, like Fly.
func (s *Server) restartMachine(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	timeout, err := durationParam("timeout", q.Get("timeout"))
	if err != nil {
		return err
	}
	sig, err := signalName("signal", q.Get("signal"))
	if err != nil {
		return err
	}
	force, err := boolParam(q, "force_stop")
	if err != nil {
		return err
	}
	if force {
		sig = "SIGKILL"
	}
	if err := s.guarded(r, func() error {
		_, err := s.sup.Restart(r.Context(), r.PathValue("app"), r.PathValue("id"), sig, timeout)
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// SignalRequest is the body of POST .../signal: a name ("SIGTERM") or, as
// fly-go's Kill sends it, a number.
type SignalRequest struct {
	Signal any `json:"signal"`
}

func (s *Server) signalMachine(w http.ResponseWriter, r *http.Request) error {
	var req SignalRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var v string
	switch x := req.Signal.(type) {
	case string:
		v = x
	case float64:
		v = strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return badRequest("signal is required, e.g. {\"signal\": \"SIGTERM\"}")
	default:
		return badRequest("signal: a name like \"SIGTERM\" or a number")
	}
	sig, err := supervisor.ParseSignal(v)
	if err != nil {
		return badRequest("signal: %v", err)
	}
	if err := s.guarded(r, func() error {
		return s.sup.Signal(r.Context(), r.PathValue("app"), r.PathValue("id"), sig)
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (s *Server) cordon(on bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.guarded(r, func() error {
			_, err := s.sup.SetCordoned(r.Context(), r.PathValue("app"), r.PathValue("id"), on)
			return err
		}); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
		return nil
	}
}

func (s *Server) getMetadata(w http.ResponseWriter, r *http.Request) error {
	m, err := s.sup.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	md := map[string]string{}
	if m.Config != nil {
		for k, v := range m.Config.Metadata {
			md[k] = v
		}
	}
	writeJSON(w, http.StatusOK, md)
	return nil
}

// MetadataRequest is the body of POST .../metadata/{key}.
type MetadataRequest struct {
	Value *string `json:"value"`
}

func (s *Server) setMetadata(w http.ResponseWriter, r *http.Request) error {
	var req MetadataRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Value == nil {
		return badRequest("value is required: send {\"value\": \"...\"}")
	}
	if err := s.sup.SetMetadata(r.Context(), r.PathValue("app"), r.PathValue("id"), r.PathValue("key"), *req.Value); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteMetadata(w http.ResponseWriter, r *http.Request) error {
	if err := s.sup.DeleteMetadata(r.Context(), r.PathValue("app"), r.PathValue("id"), r.PathValue("key")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// MachineVersion is one version of a machine: the current one first.
type MachineVersion struct {
	Version    string               `json:"version"`
	UserConfig *types.MachineConfig `json:"user_config"`
}

func (s *Server) machineVersions(w http.ResponseWriter, r *http.Request) error {
	m, err := s.sup.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := []MachineVersion{{Version: m.InstanceID, UserConfig: m.Config}}
	for _, v := range m.Versions {
		out = append(out, MachineVersion{Version: v.InstanceID, UserConfig: v.Config})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ExecRequest is the body of POST .../exec: command (argv), or the older
// cmd (one string, split like a shell would), stdin and a timeout in
// seconds (default 30, at most 600).
type ExecRequest struct {
	Command []string `json:"command,omitempty"`
	Cmd     string   `json:"cmd,omitempty"`
	Stdin   string   `json:"stdin,omitempty"`
	Timeout int      `json:"timeout,omitempty"`
	// Container names one of Fly's multi-container machine's containers:
	// Hangar runs one, so a name is a 400 rather than ignored.
	Container string `json:"container,omitempty"`
	// Machine runs the command in the machine's own namespace (fly-go);
	// on Hangar the machine is its one container, so it changes nothing.
	Machine bool `json:"machine,omitempty"`
}

// ExecResponse is the outcome of an exec.
type ExecResponse struct {
	ExitCode   int    `json:"exit_code"`
	ExitSignal int    `json:"exit_signal"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
}

func (s *Server) execMachine(w http.ResponseWriter, r *http.Request) error {
	var req ExecRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	cmd := req.Command
	if len(cmd) == 0 && req.Cmd != "" {
		var err error
		if cmd, err = shlex.Split(req.Cmd); err != nil {
			return badRequest("cmd %q: %v", req.Cmd, err)
		}
	}
	if len(cmd) == 0 {
		return badRequest("command is required: send {\"command\": [\"ls\", \"-l\"]}")
	}
	if req.Container != "" {
		return badRequest("container %q: a Hangar machine runs one container, its image (multi-container machines are not yet: see docs/api.md); leave container out", req.Container)
	}
	if req.Timeout < 0 || req.Timeout > 600 {
		return badRequest("timeout %d: seconds from 1 to 600", req.Timeout)
	}
	timeout := 30 * time.Second
	if req.Timeout > 0 {
		timeout = time.Duration(req.Timeout) * time.Second
	}
	res, err := s.sup.Exec(r.Context(), r.PathValue("app"), r.PathValue("id"), cmd, []byte(req.Stdin), timeout)
	if err != nil {
		return err
	}
	out := ExecResponse{ExitCode: res.ExitCode, Stdout: string(res.Stdout), Stderr: string(res.Stderr)}
	if res.ExitCode > 128 {
		out.ExitSignal = res.ExitCode - 128
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// machinePs lists the machine's processes; sort_by (pid, cpu, rss, rtime,
// stime, command) and order (asc, desc) as in Fly's API.
func (s *Server) machinePs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	by, order := q.Get("sort_by"), q.Get("order")
	less := map[string]func(a, b supervisor.ProcessStat) bool{
		"":        func(a, b supervisor.ProcessStat) bool { return a.Pid < b.Pid },
		"pid":     func(a, b supervisor.ProcessStat) bool { return a.Pid < b.Pid },
		"cpu":     func(a, b supervisor.ProcessStat) bool { return a.CPU < b.CPU },
		"rss":     func(a, b supervisor.ProcessStat) bool { return a.RSS < b.RSS },
		"rtime":   func(a, b supervisor.ProcessStat) bool { return a.Rtime < b.Rtime },
		"stime":   func(a, b supervisor.ProcessStat) bool { return a.Stime < b.Stime },
		"command": func(a, b supervisor.ProcessStat) bool { return a.Command < b.Command },
	}[by]
	if less == nil {
		return badRequest("sort_by %q: use pid, cpu, rss, rtime, stime or command", by)
	}
	if order != "" && order != "asc" && order != "desc" {
		return badRequest("order %q: use asc or desc", order)
	}
	ps, err := s.sup.Processes(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if order == "desc" {
			return less(ps[j], ps[i])
		}
		return less(ps[i], ps[j])
	})
	writeJSON(w, http.StatusOK, ps)
	return nil
}
