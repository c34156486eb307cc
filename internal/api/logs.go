package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

func parseLogLine(app, machine, region, line string) (types.LogLine, bool) {
	ts, rest, ok := strings.Cut(line, " ")
	if !ok {
		return types.LogLine{}, false
	}
	stream, msg, _ := strings.Cut(rest, " ")
	return types.LogLine{Timestamp: ts, App: app, MachineID: machine, Region: region, Stream: stream, Message: msg}, true
}

// timedLine is a LogLine with its parsed time, for merging machines' logs.
type timedLine struct {
	at time.Time
	types.LogLine
}

// sortLines orders lines by time; lines of equal time (or unparsable)
// keep the order they were read in.
func sortLines(ls []timedLine) {
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].at.Before(ls[j].at) })
}

// maxLogLines bounds ?lines=, so one request cannot hold a host's whole
// logs in memory.
const maxLogLines = 100000

// logs streams an app's machine logs as NDJSON: the last `lines` lines
// (default 100) across its machines, in time order, then, with
// follow=true, new lines as they are written. Each machine's log is read
// backwards from its end (and from the rotated file when the current one
// has too few lines), never whole.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "true"
	onlyMachine := q.Get("machine")
	n := 100
	if v := q.Get("lines"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 0 || n > maxLogLines {
			return badRequest("lines %q: a number from 0 to %d", v, maxLogLines)
		}
	}
	dir := filepath.Dir(s.sup.LogPath(app, "x"))
	followers := map[string]*logFollower{} // by machine id
	defer func() {
		for _, fl := range followers {
			fl.close()
		}
	}()
	// discover adds a follower for each machine log not yet followed.
	discover := func() []*logFollower {
		var added []*logFollower
		cur, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		old, _ := filepath.Glob(filepath.Join(dir, "*.log.1"))
		for _, f := range append(cur, old...) {
			id := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".1"), ".log")
			if followers[id] != nil || (onlyMachine != "" && id != onlyMachine) {
				continue
			}
			fl := &logFollower{path: filepath.Join(dir, id+".log")}
			followers[id] = fl
			added = append(added, fl)
		}
		return added
	}
	collect := func(out []timedLine, id string, lines []string) []timedLine {
		for _, line := range lines {
			if l, ok := parseLogLine(app, id, s.region, line); ok {
				at, _ := time.Parse(time.RFC3339Nano, l.Timestamp)
				out = append(out, timedLine{at, l})
			}
		}
		return out
	}
	idOf := func(fl *logFollower) string { return strings.TrimSuffix(filepath.Base(fl.path), ".log") }

	var out []timedLine
	for _, fl := range discover() {
		lines, err := fl.tail(n)
		if err != nil {
			s.log.Warn("read machine log", "path", fl.path, "err", err)
			continue
		}
		out = collect(out, idOf(fl), lines)
	}
	sortLines(out)
	if len(out) > n {
		out = out[len(out)-n:]
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for _, l := range out {
		_ = enc.Encode(l.LogLine)
	}
	if flusher != nil {
		flusher.Flush()
	}
	if !follow {
		return nil
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-t.C:
		}
		discover() // machines started since: their logs from the start
		var out []timedLine
		for id, fl := range followers {
			lines, err := fl.next()
			if err != nil && !os.IsNotExist(err) {
				s.log.Warn("follow machine log", "path", fl.path, "err", err)
			}
			out = collect(out, id, lines)
		}
		sortLines(out)
		for _, l := range out {
			if err := enc.Encode(l.LogLine); err != nil {
				return nil
			}
		}
		if len(out) > 0 && flusher != nil {
			flusher.Flush()
		}
	}
}
