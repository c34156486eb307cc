package api

// Logs: GET /v1/apps/{app}/logs streams an app's machine logs as NDJSON;
// the logs package reads them. GET and PUT .../logs/retention read and set
// the app's own log limits; /v1/log-sinks are the HTTP sinks the daemon
// ships logs to.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/logs"
	"github.com/hangar-dev/hangar/internal/types"
)

// maxLogLines bounds ?lines=, so one request cannot hold a host's whole
// logs in memory.
const maxLogLines = 100000

// maxGrep bounds ?grep=.
const maxGrep = 1024

// logs streams an app's machine logs as NDJSON: the last `lines` lines
// (default 100) across its machines (destroyed ones too, until their logs
// expire), in time order, or with since= every line from then (to until=),
// then, with follow=true, new lines as they are written.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	follow, err := boolParam(q, "follow")
	if err != nil {
		return err
	}
	n := 100
	if v := q.Get("lines"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 || n > maxLogLines {
			return badRequest("query parameter lines %q: a number from 0 to %d", v, maxLogLines)
		}
	}
	var query logs.Query
	now := time.Now()
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &query.Since}, {"until", &query.Until}} {
		if v := q.Get(p.name); v != "" {
			if *p.to, err = logs.ParseTime(v, now); err != nil {
				return badRequest("query parameter %s: %v", p.name, err)
			}
		}
	}
	if follow && !query.Until.IsZero() {
		return badRequest("query parameters follow and until: follow reads new lines, which come after any until; use one or the other")
	}
	if v := q.Get("grep"); v != "" {
		if len(v) > maxGrep {
			return badRequest("query parameter grep: longer than %d bytes", maxGrep)
		}
		if query.Grep, err = regexp.Compile(v); err != nil {
			return badRequest("query parameter grep: not a regular expression (Go's RE2 syntax): %v", err)
		}
	}
	query.Lines = n
	if !query.Since.IsZero() && q.Get("lines") == "" {
		query.Lines = 0 // the whole window
	}
	onlyMachine, onlyRegion, onlyGroup := q.Get("machine"), q.Get("region"), q.Get("process_group")
	sources := func() ([]logs.Source, error) {
		all, err := s.sup.LogSources(r.Context(), app)
		var out []logs.Source
		for _, src := range all {
			if (onlyMachine == "" || src.MachineID == onlyMachine) && (onlyRegion == "" || src.Region == onlyRegion) &&
				(onlyGroup == "" || src.ProcessGroup == onlyGroup) {
				out = append(out, src)
			}
		}
		return out, err
	}

	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex // one writer at a time: this host's lines and others'
	write := func(lines []types.LogLine) error {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	others := s.otherHosts(r)
	if follow {
		// Other hosts' lines as they come, beside this host's; ends when
		// the client goes: nothing left to answer. Every writer is done
		// before the handler returns.
		ctx, cancel := context.WithCancel(r.Context())
		var wg sync.WaitGroup
		for _, h := range others {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.remoteLogs(ctx, r, h, func(l types.LogLine) error { return write([]types.LogLine{l}) }); err != nil && ctx.Err() == nil {
					s.log.Warn("follow another host's logs", "host", h.ID, "err", err)
				}
			}()
		}
		_ = logs.Follow(ctx, logs.FollowOptions{Sources: sources, Lines: n, Since: query.Since, Grep: query.Grep, Log: s.log}, write)
		cancel()
		wg.Wait()
		return nil
	}
	srcs, err := sources()
	if err != nil {
		s.log.Warn("list machine logs", "app", app, "err", err)
	}
	if len(others) == 0 {
		if err := logs.Read(r.Context(), srcs, query, write); err != nil {
			s.log.Warn("read machine logs", "app", app, "err", err)
		}
		return nil
	}
	// Several hosts: this host's lines and theirs (each host applies the
	// same query), merged by time, the last query.Lines of them all.
	var lines []types.LogLine
	if err := logs.Read(r.Context(), srcs, query, func(ls []types.LogLine) error { lines = append(lines, ls...); return nil }); err != nil {
		s.log.Warn("read machine logs", "app", app, "err", err)
	}
	_ = write(s.mergeRemoteLogs(r, others, lines, query.Lines))
	return nil
}

// otherHosts are the ready hosts besides this one whose logs an app's
// logs request merges (none for a request another host forwarded).
func (s *Server) otherHosts(r *http.Request) []types.Host {
	if !s.clustered() || forwarded(r) {
		return nil
	}
	hs, err := s.hosts.States(r.Context())
	if err != nil {
		s.log.Warn("read the hosts for logs", "err", err)
		return nil
	}
	var out []types.Host
	for _, h := range hs {
		if h.ID != s.sup.HostID() && h.State != types.HostUnreachable {
			out = append(out, h)
		}
	}
	return out
}

// mergeRemoteLogs adds each other host's lines to this host's and keeps
// the last n of them all (0: all), in time order (timestamps have a
// fixed width, so they sort as text). A host that fails is left out and
// logged.
func (s *Server) mergeRemoteLogs(r *http.Request, others []types.Host, lines []types.LogLine, n int) []types.LogLine {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []types.LogLine
			err := s.remoteLogs(r.Context(), r, h, func(l types.LogLine) error { got = append(got, l); return nil })
			if err != nil {
				s.log.Warn("read another host's logs", "host", h.ID, "err", err)
			}
			mu.Lock()
			lines = append(lines, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Timestamp < lines[j].Timestamp })
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// remoteLogs reads the request's logs (same query) from host h, line by
// line, as this request's caller, until ctx ends or h's answer does.
func (s *Server) remoteLogs(ctx context.Context, r *http.Request, h types.Host, emit func(types.LogLine) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(h.APIURL, "/")+r.URL.Path+"?"+r.URL.RawQuery, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set(ForwardedHeader, s.sup.HostID())
	resp, err := s.forward.Do(req)
	if err != nil {
		return unreachable(&h, "", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("host %s answered %s: %w", h.ID, resp.Status, categoryOf(resp.StatusCode))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var l types.LogLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("host %s: logs: %w", h.ID, err)
		}
		if err := emit(l); err != nil {
			return err
		}
	}
}

// logRetention answers an app's own log limits (zero: the daemon's).
func (s *Server) logRetention(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	ret, err := s.sup.LogRetention(r.Context(), app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ret)
	return nil
}

// setLogRetention sets an app's own log limits; zero fields go back to
// the daemon's.
func (s *Server) setLogRetention(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var ret types.LogRetention
	if err := decode(w, r, &ret); err != nil {
		return err
	}
	if err := s.sup.SetLogRetention(r.Context(), app, ret); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ret)
	return nil
}

// LogSinks are the HTTP sinks the daemon ships logs to (logs.Shipper).
type LogSinks interface {
	// Add records a sink and starts shipping to it; the URL and app
	// are checked (an app that does not exist: types.ErrNotFound).
	Add(ctx context.Context, req types.CreateLogSinkRequest) (types.LogSink, error)
	List(ctx context.Context) ([]types.LogSink, error)
	// Remove stops shipping to a sink and forgets it (types.ErrNotFound
	// when there is none).
	Remove(ctx context.Context, id string) error
}

func (s *Server) listLogSinks(w http.ResponseWriter, r *http.Request) error {
	if s.logSinks == nil {
		return errNoLogSinks
	}
	sinks, err := s.logSinks.List(r.Context())
	if err != nil {
		return err
	}
	if sinks == nil {
		sinks = []types.LogSink{}
	}
	writeJSON(w, http.StatusOK, sinks)
	return nil
}

func (s *Server) createLogSink(w http.ResponseWriter, r *http.Request) error {
	if s.logSinks == nil {
		return errNoLogSinks
	}
	var req types.CreateLogSinkRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.App != "" {
		if ok, err := s.apps.Exists(r.Context(), req.App); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("app %s: %w", req.App, types.ErrNotFound)
		}
	}
	sink, err := s.logSinks.Add(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sink)
	return nil
}

func (s *Server) deleteLogSink(w http.ResponseWriter, r *http.Request) error {
	if s.logSinks == nil {
		return errNoLogSinks
	}
	if err := s.logSinks.Remove(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

var errNoLogSinks = types.NewError(types.ErrUnavailable, "this daemon ships no logs (no log shipper configured)")
