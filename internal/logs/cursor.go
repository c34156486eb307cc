package logs

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Reading every machine's log from a cursor, batch after batch: what the
// HTTP sinks (Shipper) and the NATS stream (Publisher) read. A cursor
// names, per machine, the last line taken by its timestamp and its rank
// among the lines of that timestamp, so it stays true across the shim's
// renames (current → .1 → archive) and a daemon restart; reading from it
// seeks by time, like --since.

// Pos is a place in one machine's log: just after the N-th line (from 1)
// whose timestamp is TS. A machine's lines are in time order (the shim
// takes the time under its lock), so this names one line.
type Pos struct {
	TS string `json:"ts"`
	N  int    `json:"n"`
}

// after reports whether the line (ts, n) comes after p.
func (p Pos) after(ts string, n int) bool {
	return ts > p.TS || (ts == p.TS && n > p.N)
}

// Cursor is a Pos per machine ("<app>/<machine id>"); a machine not in it
// is read from Since.
type Cursor struct {
	Since time.Time      `json:"since"`
	Pos   map[string]Pos `json:"pos,omitempty"`
}

func sourceKey(s Source) string { return s.App + "/" + s.MachineID }

// Batch is lines read from a cursor and the cursor just after them.
type Batch struct {
	Lines []types.LogLine
	// End is the position, per machine read, after the batch's last
	// line of that machine.
	End map[string]Pos
	// More says the read stopped at a limit with lines left.
	More bool
}

// Limits bound a batch.
type Limits struct {
	Lines int // default 1000
	Bytes int // of messages; default 1 MiB
}

// readBatch reads the lines after c across sources, merged by time, up
// to the limits, or up to end (per machine, inclusive) when end is not
// nil: then it reads again exactly the batch that ended there, for a
// resend. Sources are read in the order of their keys, so equal times
// merge the same way each time.
func readBatch(ctx context.Context, sources []Source, c Cursor, lim Limits, end map[string]Pos) (Batch, error) {
	if lim.Lines <= 0 {
		lim.Lines = 1000
	}
	if lim.Bytes <= 0 {
		lim.Bytes = 1 << 20
	}
	sources = append([]Source(nil), sources...)
	sort.SliceStable(sources, func(i, j int) bool { return sourceKey(sources[i]) < sourceKey(sources[j]) })
	if end != nil {
		// Only the machines the batch had.
		kept := sources[:0]
		for _, s := range sources {
			if _, ok := end[sourceKey(s)]; ok {
				kept = append(kept, s)
			}
		}
		sources = kept
	}
	type state struct {
		pos  Pos
		stop Pos
		has  bool // stop applies
	}
	var ms []*machineReader
	var states []*state
	var errs []error
	dc := dirCache{}
	for _, src := range sources {
		key := sourceKey(src)
		p, known := c.Pos[key]
		since := c.Since
		if known {
			if t, err := time.Parse(TimeFormat, p.TS); err == nil {
				since = t
			}
		}
		if end == nil && idleSince(src.Path, since) {
			continue // nothing written after the cursor: one stat, no reading
		}
		opened, err := openWindow([]Source{src}, since, dc)
		if err != nil {
			errs = append(errs, err)
		}
		if len(opened) == 0 {
			continue
		}
		m := opened[0]
		st := &state{pos: Pos{}}
		if known {
			st.pos = p
			// Skip the lines of p.TS already taken.
			skipped := 0
			for skipped < p.N {
				line, ok := m.head()
				if !ok || lineTS(line) != p.TS {
					break
				}
				m.buf = m.buf[1:]
				skipped++
			}
		}
		if end != nil {
			st.stop, st.has = end[key], true
		}
		ms = append(ms, m)
		states = append(states, st)
	}
	defer func() {
		for _, m := range ms {
			m.close()
		}
	}()
	b := Batch{End: map[string]Pos{}}
	bytes := 0
	for ctx.Err() == nil {
		best := -1
		var bestTS string
		for i, m := range ms {
			line, ok := m.head()
			if !ok {
				continue
			}
			ts := lineTS(line)
			st := states[i]
			if st.has && st.stop.after(ts, nextN(st.pos, ts)) {
				continue // past the batch being rebuilt
			}
			if best < 0 || ts < bestTS {
				best, bestTS = i, ts
			}
		}
		if best < 0 {
			break
		}
		if end == nil && (len(b.Lines) >= lim.Lines || bytes >= lim.Bytes) {
			b.More = true
			break
		}
		m, st := ms[best], states[best]
		line := m.buf[0]
		m.buf = m.buf[1:]
		st.pos = Pos{bestTS, nextN(st.pos, bestTS)}
		b.End[sourceKey(m.Source)] = st.pos
		l, ok := parseLine(m.App, m.MachineID, m.Region, line)
		if !ok {
			continue
		}
		l.ProcessGroup = m.ProcessGroup
		b.Lines = append(b.Lines, l)
		bytes += len(l.Message)
	}
	if err := readersErr(ms); err != nil {
		errs = append(errs, err)
	}
	return b, errors.Join(errs...)
}

// idleMargin covers the file system's coarse clock: a line stamped at t
// sets its file's modification time to t less at most a few milliseconds.
const idleMargin = time.Second

// idleSince reports whether a machine's current log was last written
// well before t, so it has no line at or after t (a rotation since
// would have written a new current file). A missing file is not idle:
// its lines may be in the rotated ones.
func idleSince(path string, t time.Time) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.ModTime().Before(t.Add(-idleMargin))
}

// nextN is the rank the next line of timestamp ts gets after p.
func nextN(p Pos, ts string) int {
	if ts == p.TS {
		return p.N + 1
	}
	return 1
}

func lineTS(line string) string {
	ts, _, _ := strings.Cut(line, " ")
	return ts
}

// prune drops the positions of machines not among sources (their logs
// are gone): call it only with a complete list.
func (c Cursor) prune(sources []Source) Cursor {
	keep := make(map[string]bool, len(sources))
	for _, s := range sources {
		keep[sourceKey(s)] = true
	}
	for k := range c.Pos {
		if !keep[k] {
			delete(c.Pos, k)
		}
	}
	return c
}

// advance returns c moved past b.
func (c Cursor) advance(end map[string]Pos) Cursor {
	out := Cursor{Since: c.Since, Pos: make(map[string]Pos, len(c.Pos)+len(end))}
	for k, p := range c.Pos {
		out.Pos[k] = p
	}
	for k, p := range end {
		out.Pos[k] = p
	}
	return out
}
