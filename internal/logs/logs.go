// Package logs reads Hangar's machine log files: the last lines of a set
// of machines' logs merged by time (Tail), the lines written since, as
// they come (Follow), and one machine's log from its first line on
// (Follower: a release_command's output as the deploy shows it).
//
// A machine's log is one file that its shim writes, one line per line of
// output, "<timestamp> <stream> <message>", rotated to Path+".1" at a size
// cap (see internal/runtime's lineWriter). Reading never takes a whole
// file: the last lines are read backwards from the end in chunks, from
// the rotated file only when the current one has too few, and a follower
// keeps the file open and reads what is appended, moving to the new file
// when the shim rotates, so no line is lost or repeated.
//
// The supervisor owns where the files are (LogPath), their rotation and
// their removal (LogJanitor); this package only reads them. Files:
// logs.go (sources, Tail, Follow, merging), file.go (one file: the
// backwards reader and the follower).
package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Source is one machine's log.
type Source struct {
	App       string
	MachineID string
	Region    string
	// ProcessGroup is the machine's process group, if known.
	ProcessGroup string
	// Path is the machine's current log file; the shim rotates it to
	// Path+".1".
	Path string
}

// DefaultPoll is how often Follow reads the logs for new lines.
const DefaultPoll = 200 * time.Millisecond

// Tail returns the last n lines of the sources' logs, merged in time
// order, oldest first (lines of equal time keep the order of sources).
// A log that cannot be read is left out: the error names each such log,
// and the lines of the others are still returned.
func Tail(sources []Source, n int) ([]types.LogLine, error) {
	s := newSet()
	defer s.close()
	s.add(sources)
	return s.tail(n)
}

// FollowOptions say what Follow reads.
type FollowOptions struct {
	// Sources lists the logs to read. Follow calls it at the start and
	// at every poll: a log that appears meanwhile (a machine started
	// since) is read from its first line.
	Sources func() ([]Source, error)
	// Lines is how many past lines come first, as Tail's n.
	Lines int
	// Since, when not zero, replaces Lines: the past lines are all
	// those from Since on (as Read), then the new ones.
	Since time.Time
	// Grep keeps only the lines whose message matches.
	Grep *regexp.Regexp
	// Poll is the time between reads (DefaultPoll when zero).
	Poll time.Duration
	// Log receives what cannot be read (slog.Default when nil); Follow
	// goes on without it and tries again at the next poll.
	Log *slog.Logger
}

// Follow is `tail -n Lines -f` over the sources' logs: it calls emit with
// the last Lines lines (as Tail; the batch may be empty), then, every
// Poll, with the lines written since, merged by time, each line once even
// across a rotation of its file. It returns nil when ctx ends, or emit's
// error (the reader is gone).
func Follow(ctx context.Context, o FollowOptions, emit func([]types.LogLine) error) error {
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := newSet()
	defer s.close()
	discover := func() {
		sources, err := o.Sources()
		if err != nil {
			o.Log.Warn("list machine logs", "err", err)
		}
		s.add(sources)
	}
	if grep := o.Grep; grep != nil {
		all := emit
		emit = func(lines []types.LogLine) error {
			kept := lines[:0:0]
			for _, l := range lines {
				if grep.MatchString(l.Message) {
					kept = append(kept, l)
				}
			}
			if len(kept) == 0 && len(lines) > 0 {
				return nil
			}
			return all(kept)
		}
	}
	if !o.Since.IsZero() {
		if err := s.readSince(ctx, o, emit); err != nil {
			return err
		}
	} else {
		discover()
		past, err := s.tail(o.Lines)
		if err != nil {
			o.Log.Warn("read machine logs", "err", err)
		}
		if err := emit(past); err != nil {
			return err
		}
	}
	t := time.NewTicker(o.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		discover() // machines started since: their logs from the start
		lines, err := s.next()
		if err != nil {
			o.Log.Warn("follow machine logs", "err", err)
		}
		if len(lines) == 0 {
			continue
		}
		if err := emit(lines); err != nil {
			return err
		}
	}
}

// set reads the logs of several machines, each through its follower.
type set struct {
	order     []*sourceFollower // in the order the sources were added
	followers map[string]*sourceFollower
}

type sourceFollower struct {
	Source
	*follower
}

func newSet() *set { return &set{followers: map[string]*sourceFollower{}} }

// readSince emits the lines from o.Since on, then leaves a follower for
// each source where its reading stopped, so that next goes on from there.
func (s *set) readSince(ctx context.Context, o FollowOptions, emit func([]types.LogLine) error) error {
	sources, err := o.Sources()
	if err != nil {
		o.Log.Warn("list machine logs", "err", err)
	}
	ms, err := openWindow(sources, o.Since, dirCache{})
	if err != nil {
		o.Log.Warn("read machine logs", "err", err)
	}
	defer func() {
		for _, m := range ms {
			m.close()
		}
	}()
	if _, err := readMerged(ctx, ms, Query{}, emit); err != nil {
		return err
	}
	if err := readersErr(ms); err != nil {
		o.Log.Warn("read machine logs", "err", err)
	}
	for _, m := range ms {
		if fl := m.handOver(); fl != nil && s.followers[m.Path] == nil {
			sf := &sourceFollower{Source: m.Source, follower: fl}
			s.followers[m.Path] = sf
			s.order = append(s.order, sf)
		}
	}
	s.add(sources) // the others: from the start of the file to come
	return nil
}

// add starts following the sources not followed yet (by path).
func (s *set) add(sources []Source) {
	for _, src := range sources {
		if s.followers[src.Path] != nil {
			continue
		}
		sf := &sourceFollower{Source: src, follower: &follower{path: src.Path}}
		s.followers[src.Path] = sf
		s.order = append(s.order, sf)
	}
}

func (s *set) close() {
	for _, sf := range s.order {
		sf.close()
	}
}

// tail returns the last n lines of every log, merged by time, and leaves
// each follower at the end of its file.
func (s *set) tail(n int) ([]types.LogLine, error) {
	var out []timedLine
	var errs []error
	for _, sf := range s.order {
		lines, err := sf.tail(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("read the log of machine %s: %w", sf.MachineID, err))
			continue
		}
		out = sf.collect(out, lines)
	}
	sortLines(out)
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return plain(out), errors.Join(errs...)
}

// next returns the lines written to every log since the last call (or
// tail), merged by time. A log that is not there (yet, or any more) is
// not an error.
func (s *set) next() ([]types.LogLine, error) {
	var out []timedLine
	var errs []error
	for _, sf := range s.order {
		lines, err := sf.next()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("follow the log of machine %s: %w", sf.MachineID, err))
		}
		out = sf.collect(out, lines)
	}
	sortLines(out)
	return plain(out), errors.Join(errs...)
}

// collect appends the source's raw lines to out, parsed.
func (sf *sourceFollower) collect(out []timedLine, lines []string) []timedLine {
	for _, line := range lines {
		if l, ok := parseLine(sf.App, sf.MachineID, sf.Region, line); ok {
			l.ProcessGroup = sf.ProcessGroup
			at, _ := time.Parse(time.RFC3339Nano, l.Timestamp)
			out = append(out, timedLine{at, l})
		}
	}
	return out
}

// parseLine reads "<timestamp> <stream> <message>".
func parseLine(app, machine, region, line string) (types.LogLine, bool) {
	ts, rest, ok := strings.Cut(line, " ")
	if !ok {
		return types.LogLine{}, false
	}
	stream, msg, _ := strings.Cut(rest, " ")
	return types.LogLine{Timestamp: ts, App: app, MachineID: machine, Instance: machine, Region: region, Stream: stream, Message: msg}, true
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

func plain(ls []timedLine) []types.LogLine {
	if len(ls) == 0 {
		return nil
	}
	out := make([]types.LogLine, len(ls))
	for i := range ls {
		out[i] = ls[i].LogLine
	}
	return out
}

// Follower reads one machine's log from its first line on, across
// rotations of its file: each call of Next returns the lines written
// since the last one. It keeps the file open; Close releases it.
type Follower struct {
	sf sourceFollower
}

// NewFollower returns a Follower of src's log, which need not exist yet.
func NewFollower(src Source) *Follower {
	return &Follower{sf: sourceFollower{Source: src, follower: &follower{path: src.Path}}}
}

// Next returns the complete lines written since the last call, oldest
// first. A log that does not exist yet has none.
func (f *Follower) Next() ([]types.LogLine, error) {
	lines, err := f.sf.next()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return plain(f.sf.collect(nil, lines)), fmt.Errorf("follow the log of machine %s: %w", f.sf.MachineID, err)
	}
	return plain(f.sf.collect(nil, lines)), nil
}

// Close releases the open file.
func (f *Follower) Close() { f.sf.close() }
