package api

// One API, any host: a machine operation for a machine another host runs
// is forwarded to that host's daemon, the authority for it (see
// docs/cluster.md). The caller's Authorization header goes along; the
// forwarded request carries ForwardedHeader so that it is served where it
// lands, never forwarded again.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/hosts"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// ForwardedHeader marks a request one host forwarded to another: its value
// is the forwarding host's id.
const ForwardedHeader = "Hangar-Forwarded-By"

// ForwardConnectTimeout bounds connecting to another host's API.
const ForwardConnectTimeout = 3 * time.Second

// DefaultForwardClient is the client for forwarded requests when Options
// give none: plain HTTP to the hosts' advertised URLs, a short connect
// timeout, no overall timeout (wait, logs and console stream).
func DefaultForwardClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: ForwardConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   ForwardConnectTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

var errHostUnreachable = types.NewError(types.ErrUnavailable, "host unreachable")

func forwarded(r *http.Request) bool { return r.Header.Get(ForwardedHeader) != "" }

// isMachineRoute reports a route of one machine (path under
// /v1/apps/{app}/machines/{id}).
func isMachineRoute(pattern string) bool {
	return strings.Contains(pattern, "/machines/{id}")
}

// clustered reports whether requests may need forwarding: this daemon
// knows its host and the registry.
func (s *Server) clustered() bool { return s.hosts != nil && s.sup != nil && s.sup.HostID() != "" }

// hostOf returns the host that runs the request's machine when it is not
// this one (nil: serve here). A machine that does not exist is served here
// (the handler answers 404).
func (s *Server) hostOf(r *http.Request) (*types.Host, error) {
	if !s.clustered() || forwarded(r) {
		return nil, nil
	}
	rec, err := s.sup.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil || s.sup.Mine(rec) || rec.HostID == "" {
		return nil, nil
	}
	hs, err := s.hosts.States(r.Context())
	if err != nil {
		return nil, err
	}
	h, ok := hs[rec.HostID]
	if !ok {
		return nil, fmt.Errorf("machine %s runs on host %s, which is not registered (see `hangar hosts list`): %w", rec.ID, rec.HostID, errHostUnreachable)
	}
	return &h, nil
}

// isVolumeRoute reports a route that acts on one volume: only the host
// that keeps it may (reads are answered from the store anywhere).
func isVolumeRoute(pattern string) bool {
	return strings.Contains(pattern, "/volumes/{volume_id}") && !strings.HasPrefix(pattern, "GET ")
}

// forwardVolume forwards a volume operation to the host that keeps the
// volume when it is another; handled as forwardMachine's.
func (s *Server) forwardVolume(w http.ResponseWriter, r *http.Request) (handled bool, err error) {
	if !s.clustered() || forwarded(r) || s.volumes == nil {
		return false, nil
	}
	v, err := s.volumes.Get(r.Context(), r.PathValue("app"), r.PathValue("volume_id"))
	if err != nil || v.HostID == "" || v.HostID == s.sup.HostID() {
		return false, nil // the handler answers (404 for a missing volume)
	}
	hs, err := s.hosts.States(r.Context())
	if err != nil {
		return true, err
	}
	h, ok := hs[v.HostID]
	if !ok || h.State == types.HostUnreachable {
		if !ok {
			h = types.Host{ID: v.HostID}
		}
		return true, fmt.Errorf("volume %s is kept by host %s, which is unreachable; it waits for its host (`hangar hosts list`): %w", v.ID, h.ID, errHostUnreachable)
	}
	s.proxyTo(w, r, &h, nil)
	return true, nil
}

// readsRecord: the routes that read only the stored record, which any host
// can answer while the machine's host is unreachable (the state reads
// unknown).
func readsRecord(pattern string) bool {
	switch pattern {
	case "GET /v1/apps/{app}/machines/{id}", "GET /v1/apps/{app}/machines/{id}/events",
		"GET /v1/apps/{app}/machines/{id}/metadata", "GET /v1/apps/{app}/machines/{id}/versions",
		"GET /v1/apps/{app}/machines/{id}/lease":
		return true
	}
	return false
}

// forwardMachine forwards the request to the machine's host when another
// host runs it; handled reports that the answer was written (forwarded, or
// a 503 for an unreachable host).
func (s *Server) forwardMachine(w http.ResponseWriter, r *http.Request, pattern string) (handled bool, err error) {
	h, err := s.hostOf(r)
	if err != nil || h == nil {
		return false, err
	}
	if h.State == types.HostUnreachable {
		if readsRecord(pattern) {
			return false, nil // served from the store, state unknown
		}
		return true, unreachable(h, r.PathValue("id"), nil)
	}
	s.proxyTo(w, r, h, nil)
	return true, nil
}

func unreachable(h *types.Host, machine string, cause error) error {
	what := "its lease in the state store expired"
	if cause != nil {
		what = cause.Error()
	}
	return fmt.Errorf("machine %s runs on host %s (region %s, %s), which is unreachable: %s; the machine's state is unknown until the host is back (`hangar hosts list` shows it): %w",
		machine, h.ID, h.Region, h.APIURL, what, errHostUnreachable)
}

// proxyTo sends the request (with body, if given, instead of r's) to host
// h's API and copies the answer back, streaming (wait, logs, console).
func (s *Server) proxyTo(w http.ResponseWriter, r *http.Request, h *types.Host, body []byte) {
	target, err := url.Parse(h.APIURL)
	if err != nil || target.Host == "" {
		s.writeError(w, r, unreachable(h, r.PathValue("id"), fmt.Errorf("its API URL %q is not a URL", h.APIURL)))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(ForwardedHeader, s.sup.HostID())
			if body != nil {
				pr.Out.Body = io.NopCloser(bytes.NewReader(body))
				pr.Out.ContentLength = int64(len(body))
				pr.Out.GetBody = nil
			}
		},
		Transport:     s.forward.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the caller went away
			}
			s.writeError(w, r, unreachable(h, r.PathValue("id"), err))
		},
	}
	if rp.Transport == nil {
		rp.Transport = http.DefaultTransport
	}
	rp.ServeHTTP(w, r)
}

// call sends one request to another host's API as the caller (its
// Authorization header), marked forwarded, and decodes a JSON answer into
// out (nil: none).
func (s *Server) call(ctx context.Context, r *http.Request, h types.Host, method, path string, out any) error {
	return s.callWith(ctx, r, h, method, path, nil, out, true)
}

// callWith is call with a JSON body (nil: none); unmarked, the request is
// placed and forwarded by the host it reaches like any caller's.
func (s *Server) callWith(ctx context.Context, r *http.Request, h types.Host, method, path string, body, out any, mark bool) error {
	return s.callHost(ctx, http.Header{"Authorization": {r.Header.Get("Authorization")}}, h, method, path, body, out, mark)
}

// callHost is callWith with the request's headers given (Authorization,
// a lease nonce).
func (s *Server) callHost(ctx context.Context, hdr http.Header, h types.Host, method, path string, body, out any, mark bool) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(h.APIURL, "/")+path, rd)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if mark {
		req.Header.Set(ForwardedHeader, s.sup.HostID())
	}
	resp, err := s.forward.Do(req)
	if err != nil {
		return unreachable(&h, "", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e types.ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("host %s: %s %s: %d %s: %w", h.ID, method, path, resp.StatusCode, e.Error, categoryOf(resp.StatusCode))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// categoryOf is the error category of a status another host answered.
func categoryOf(code int) error {
	switch code {
	case http.StatusBadRequest:
		return types.ErrInvalid
	case http.StatusNotFound:
		return types.ErrNotFound
	case http.StatusConflict:
		return types.ErrConflict
	case http.StatusRequestTimeout:
		return types.ErrTimeout
	case http.StatusUnauthorized:
		return types.ErrUnauthorized
	case http.StatusForbidden:
		return types.ErrForbidden
	case http.StatusServiceUnavailable:
		return types.ErrUnavailable
	}
	return types.ErrUnavailable
}

// markUnknown shows the machines of unreachable hosts in state unknown:
// their recorded state may be stale.
func (s *Server) markUnknown(ctx context.Context, recs []*supervisor.Record) {
	if !s.clustered() {
		return
	}
	var states map[string]types.Host
	for _, rec := range recs {
		if rec.HostID == "" || s.sup.Mine(rec) || rec.State == types.StateDestroyed {
			continue
		}
		if states == nil {
			var err error
			if states, err = s.hosts.States(ctx); err != nil {
				s.log.Warn("read the hosts' states", "err", err)
				return
			}
		}
		if h, ok := states[rec.HostID]; !ok || h.State == types.HostUnreachable {
			rec.HostStatus = "unreachable"
			rec.Checks = nil
			if rec.ReplacedBy != "" || rec.FailoverClaim != "" {
				continue // being replaced: it reads destroying, with its note
			}
			rec.State = types.StateUnknown
			if hosts.MountsVolume(rec.Config) {
				rec.HostNote = fmt.Sprintf("host %s is unreachable; this machine mounts a volume kept on that host, so it is not replaced elsewhere: it waits for its host", rec.HostID)
			} else {
				rec.HostNote = fmt.Sprintf("host %s is unreachable; unless it returns within the host failure grace (--host-failure-grace), this machine is replaced on another host", rec.HostID)
			}
		}
	}
}

// destroyElsewhere destroys, through their hosts, the machines of the
// request's app that other hosts run, before the app is deleted here: only
// a machine's host may stop its task. An unreachable host's machines
// refuse the deletion (503 naming the host).
func (s *Server) destroyElsewhere(r *http.Request) error {
	if !s.clustered() || forwarded(r) {
		return nil
	}
	app := r.PathValue("app")
	ms, err := s.sup.List(r.Context(), app)
	if err != nil {
		return err
	}
	var states map[string]types.Host
	for _, m := range ms {
		if s.sup.Mine(m) || m.HostID == "" {
			continue
		}
		if states == nil {
			if states, err = s.hosts.States(r.Context()); err != nil {
				return err
			}
		}
		h, ok := states[m.HostID]
		if !ok || h.State == types.HostUnreachable {
			if !ok {
				h = types.Host{ID: m.HostID}
			}
			return fmt.Errorf("delete app %s: %w", app, unreachable(&h, m.ID, nil))
		}
		if err := s.call(r.Context(), r, h, http.MethodDelete, "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(m.ID)+"?force=true", nil); err != nil {
			return fmt.Errorf("delete app %s: destroy machine %s on host %s: %w", app, m.ID, h.ID, err)
		}
	}
	return nil
}
