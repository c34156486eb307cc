package api

// Logs: GET /v1/apps/{app}/logs streams an app's machine logs as NDJSON;
// the logs package reads them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hangar-dev/hangar/internal/logs"
	"github.com/hangar-dev/hangar/internal/types"
)

// maxLogLines bounds ?lines=, so one request cannot hold a host's whole
// logs in memory.
const maxLogLines = 100000

// logs streams an app's machine logs as NDJSON: the last `lines` lines
// (default 100) across its machines (destroyed ones too, until their logs
// expire), in time order, then, with follow=true, new lines as they are
// written.
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
	onlyMachine := q.Get("machine")
	sources := func() ([]logs.Source, error) {
		ids, err := s.sup.LogMachines(app)
		var out []logs.Source
		for _, id := range ids {
			if onlyMachine == "" || id == onlyMachine {
				out = append(out, logs.Source{App: app, MachineID: id, Region: s.region, Path: s.sup.LogPath(app, id)})
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
		_ = logs.Follow(ctx, logs.FollowOptions{Sources: sources, Lines: n, Log: s.log}, write)
		cancel()
		wg.Wait()
		return nil
	}
	srcs, err := sources()
	if err != nil {
		s.log.Warn("list machine logs", "app", app, "err", err)
	}
	lines, err := logs.Tail(srcs, n)
	if err != nil {
		s.log.Warn("read machine logs", "app", app, "err", err)
	}
	if len(others) > 0 {
		lines = s.mergeRemoteLogs(r, others, lines, n)
	}
	_ = write(lines)
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

// mergeRemoteLogs adds the last n lines of each other host to this host's
// and keeps the last n of them all, in time order (timestamps have a
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
	if len(lines) > n {
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
