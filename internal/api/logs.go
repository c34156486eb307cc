package api

// Logs: GET /v1/apps/{app}/logs streams an app's machine logs as NDJSON;
// the logs package reads them. GET and PUT .../logs/retention read and set
// the app's own log limits; /v1/log-sinks are the HTTP sinks the daemon
// ships logs to.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
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
	write := func(lines []types.LogLine) error {
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
	if follow {
		// Ends when the client goes: nothing left to answer.
		_ = logs.Follow(r.Context(), logs.FollowOptions{Sources: sources, Lines: n, Since: query.Since, Grep: query.Grep, Log: s.log}, write)
		return nil
	}
	srcs, err := sources()
	if err != nil {
		s.log.Warn("list machine logs", "app", app, "err", err)
	}
	if err := logs.Read(r.Context(), srcs, query, write); err != nil {
		s.log.Warn("read machine logs", "app", app, "err", err)
	}
	return nil
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
