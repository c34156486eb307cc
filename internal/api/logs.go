package api

// Logs: GET /v1/apps/{app}/logs streams an app's machine logs as NDJSON;
// the logs package reads them.

import (
	"encoding/json"
	"net/http"
	"strconv"

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
		_ = logs.Follow(r.Context(), logs.FollowOptions{Sources: sources, Lines: n, Log: s.log}, write)
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
	_ = write(lines)
	return nil
}
