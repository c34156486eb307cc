package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Reading a window of time (--since, --until) without reading what is
// before it: a machine's files are in time order (archives by the time in
// their name, then <id>.log.1, then <id>.log), so the file holding a time
// is found from the names and the first line of the last two, and the
// line within it by a binary search over byte offsets (lines are in time
// order in a file, and their timestamps sort as text). From there lines
// are read forwards, file after file, and the machines' lines merged by
// time; the cost before the first line is a few reads per machine,
// whatever the size of its history.

// Query selects lines.
type Query struct {
	// Since, when not zero, reads the lines at or after it, oldest
	// first, from its start: all of them (Lines is then a cap, 0 for
	// none).
	Since time.Time
	// Until, when not zero, stops at lines after it.
	Until time.Time
	// Lines: without Since, the last Lines lines (before Until).
	Lines int
	// Grep keeps only the lines whose message matches.
	Grep *regexp.Regexp
}

// span is one file of a machine's log.
type span struct {
	f     *os.File // opened ahead (openWindow), so a rotation meanwhile does not swap it
	path  string
	start string // the time of its first line as text; "" unknown or empty
	last  bool   // the current file, still written
}

// dirCache holds directory listings for one read of many machines of an
// app (one listing of the app's directory, not one per machine).
type dirCache map[string][]os.DirEntry

func (c dirCache) list(dir string) ([]os.DirEntry, error) {
	if e, ok := c[dir]; ok && c != nil {
		return e, nil
	}
	e, err := os.ReadDir(dir)
	if err == nil && c != nil {
		c[dir] = e
	}
	return e, err
}

// liveFiles are a machine's current and rotated files, opened before
// its directory is listed: the shim renames these two (.1 to an archive,
// the current file to .1), so they are held by descriptor, and the
// listing, taken after, names every archive made before they were
// opened. Archives are never renamed (only removed).
type liveFiles struct {
	cur, one           *os.File
	curStart, oneStart string
}

// openLive opens a machine's current file, then its rotated one: a
// rotation between the two opens makes .1 the file just opened as
// current, which is then dropped (the old .1 is in the listing taken
// after, as an archive).
func openLive(src Source) liveFiles {
	var l liveFiles
	l.cur, _ = os.Open(src.Path)
	l.one, _ = os.Open(src.Path + ".1")
	if l.cur != nil && l.one != nil {
		ci, err1 := l.cur.Stat()
		oi, err2 := l.one.Stat()
		if err1 == nil && err2 == nil && os.SameFile(ci, oi) {
			l.one.Close()
			l.one = nil
		}
	}
	if l.cur != nil {
		l.curStart = firstTimestampOf(l.cur)
	}
	if l.one != nil {
		l.oneStart = firstTimestampOf(l.one)
	}
	return l
}

func (l liveFiles) close() {
	if l.cur != nil {
		l.cur.Close()
	}
	if l.one != nil {
		l.one.Close()
	}
}

// machineFiles lists src's files oldest first: archives, <id>.log.1,
// <id>.log, from its live files (opened first) and a listing of its
// directory taken after (from dc: list after opening). An archive that is
// a live file renamed since it was opened is left out (it is read as the
// live file). The live files' descriptors move into the spans.
func machineFiles(src Source, live liveFiles, dc dirCache) ([]span, error) {
	dir, base := filepath.Dir(src.Path), filepath.Base(src.Path)
	entries, err := dc.list(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		live.close()
		return nil, err
	}
	var out []span
	for _, e := range entries { // sorted by name: archives by time
		f, ok := ParseLogFileName(e.Name())
		if !ok || f.MachineID+".log" != base || f.Kind != "archive" {
			continue
		}
		start := f.Start.UTC().Format(TimeFormat)
		if (live.one != nil && start == live.oneStart) || (live.cur != nil && start == live.curStart) {
			continue // renamed since opened: read through the descriptor
		}
		out = append(out, span{path: filepath.Join(dir, e.Name()), start: start})
	}
	if live.one != nil {
		out = append(out, span{f: live.one, path: src.Path + ".1", start: live.oneStart})
	}
	if live.cur != nil {
		out = append(out, span{f: live.cur, path: src.Path, start: live.curStart, last: true})
	}
	return out, nil
}

// firstTimestampOf returns the timestamp of an open file's first line.
func firstTimestampOf(f *os.File) string {
	b := make([]byte, len(TimeFormat)+1)
	n, _ := f.ReadAt(b, 0)
	ts, _, _ := strings.Cut(string(b[:n]), " ")
	return ts
}

// firstTimestamp returns the timestamp of a file's first line ("" when it
// cannot be read).
func firstTimestamp(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, len(TimeFormat)+1)
	n, _ := io.ReadFull(f, b)
	ts, _, _ := strings.Cut(string(b[:n]), " ")
	return ts
}

// timestampAt returns the timestamp of the first line starting at or
// after off (and before limit) and where it starts; ok is false when
// there is none.
func timestampAt(r io.ReaderAt, off, limit int64) (ts string, start int64, ok bool, err error) {
	buf := make([]byte, 4096)
	start = off
	if off > 0 {
		// Find the end of the line off is in (the byte before off may be
		// that newline).
		pos := off - 1
		for {
			if pos >= limit {
				return "", 0, false, nil
			}
			n, err := r.ReadAt(buf[:min(int64(len(buf)), limit-pos)], pos)
			if n == 0 && err != nil {
				if errors.Is(err, io.EOF) {
					return "", 0, false, nil
				}
				return "", 0, false, err
			}
			if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
				start = pos + int64(i) + 1
				break
			}
			pos += int64(n)
		}
	}
	if start >= limit {
		return "", 0, false, nil
	}
	n, err := r.ReadAt(buf[:len(TimeFormat)+1], start)
	if n == 0 && err != nil && !errors.Is(err, io.EOF) {
		return "", 0, false, err
	}
	ts, _, _ = strings.Cut(string(buf[:n]), " ")
	return ts, start, true, nil
}

// seekInFile returns the offset of the first line of r (size bytes)
// whose timestamp is at or after t, or size when there is none.
func seekInFile(r io.ReaderAt, size int64, t string) (int64, error) {
	// lo: a line start known to be before t (or 0); hi: a line start at
	// or after t (or size).
	lo, hi := int64(0), size
	for hi-lo > tailChunk {
		mid := lo + (hi-lo)/2
		ts, start, ok, err := timestampAt(r, mid, hi)
		if err != nil {
			return 0, err
		}
		switch {
		case !ok:
			hi = mid // no line starts in [mid, hi): scanned below
		case ts < t:
			lo = start
		default:
			hi = start
		}
	}
	// A scan from lo: at most a chunk and a line or two.
	br := bufio.NewReaderSize(io.NewSectionReader(r, lo, size-lo), tailChunk)
	off := lo
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			ts, _, _ := strings.Cut(string(line[:min(len(line), len(TimeFormat)+1)]), " ")
			if ts >= t {
				return off, nil
			}
		}
		for errors.Is(err, bufio.ErrBufferFull) { // a line longer than the buffer
			off += int64(len(line))
			line, err = br.ReadSlice('\n')
		}
		off += int64(len(line))
		if err != nil {
			if errors.Is(err, io.EOF) {
				return size, nil
			}
			return 0, err
		}
	}
}

// position is a place in a machine's files.
type position struct {
	file int
	off  int64
}

// seek returns the position of the first line at or after t.
func seek(files []span, t string) (position, error) {
	k := 0
	for i, f := range files {
		if f.start != "" && f.start <= t {
			k = i
		}
	}
	for ; k < len(files); k++ {
		f := files[k].f
		if f == nil {
			var err error
			if f, err = os.Open(files[k].path); errors.Is(err, os.ErrNotExist) {
				continue // removed by retention meanwhile
			} else if err != nil {
				return position{}, err
			}
			defer f.Close()
		}
		fi, err := f.Stat()
		if err != nil {
			return position{}, err
		}
		off, err := seekInFile(f, fi.Size(), t)
		if err != nil {
			return position{}, fmt.Errorf("%s: %w", files[k].path, err)
		}
		if off < fi.Size() || k == len(files)-1 {
			return position{k, off}, nil
		}
	}
	return position{len(files), 0}, nil
}

// windowRead is what a machineReader reads at a time: enough for a
// batch, little before the first line.
const windowRead = 2 * tailChunk

// machineReader reads one machine's lines forwards from a position.
type machineReader struct {
	Source
	files []span
	k     int       // files[k] is being read
	fl    *follower // reads files[k]
	buf   []string  // lines read, not yet taken
	done  bool
	err   error
}

// head returns the next line without taking it.
func (m *machineReader) head() (string, bool) {
	for len(m.buf) == 0 && !m.done {
		m.fill()
	}
	if len(m.buf) == 0 {
		return "", false
	}
	return m.buf[0], true
}

func (m *machineReader) fill() {
	if m.fl == nil {
		if m.k >= len(m.files) {
			m.done = true
			return
		}
		m.fl = &follower{path: m.files[m.k].path, readMax: windowRead}
		f, err := m.files[m.k].f, error(nil)
		m.files[m.k].f = nil
		if f == nil {
			f, err = os.Open(m.fl.path)
		}
		if errors.Is(err, os.ErrNotExist) { // removed by retention meanwhile
			m.fl, m.k = nil, m.k+1
			return
		}
		if err != nil {
			m.err, m.done = err, true
			return
		}
		m.fl.f = f
		if m.fl.fi, err = f.Stat(); err != nil {
			m.err, m.done = err, true
			return
		}
	}
	lines, atEOF, err := m.fl.readNew()
	m.buf = append(m.buf, lines...)
	if err != nil {
		m.err, m.done = err, true
		return
	}
	if !atEOF {
		return
	}
	if m.files[m.k].last {
		// Now: a line still being written is left for Follow.
		m.done = true
		return
	}
	if len(m.fl.rest) > 0 {
		m.buf = append(m.buf, string(m.fl.rest))
	}
	m.fl.close()
	m.fl, m.k = nil, m.k+1
}

// handOver returns a follower that goes on from where m stopped, so that
// Follow continues without a line lost or repeated; nil when m stopped
// before the current file.
func (m *machineReader) handOver() *follower {
	if m.fl == nil || m.k != len(m.files)-1 || !m.files[m.k].last || len(m.buf) > 0 {
		return nil
	}
	fl := m.fl
	m.fl = nil
	fl.readMax = 0 // a poll's worth from now on
	return fl
}

func (m *machineReader) close() {
	if m.fl != nil {
		m.fl.close()
	}
	for i := range m.files {
		if m.files[i].f != nil {
			m.files[i].f.Close()
			m.files[i].f = nil
		}
	}
}

// openWindow positions a reader per source at q.Since.
func openWindow(sources []Source, since time.Time, dc dirCache) ([]*machineReader, error) {
	t := since.UTC().Format(TimeFormat)
	var out []*machineReader
	var errs []error
	// Every machine's live files first, then the listings (one per app).
	live := make([]liveFiles, len(sources))
	for i, src := range sources {
		live[i] = openLive(src)
	}
	for i, src := range sources {
		files, err := machineFiles(src, live[i], dc)
		if err == nil {
			var p position
			if p, err = seek(files, t); err == nil {
				m := &machineReader{Source: src, files: files, k: p.file}
				for i := range files {
					switch {
					case i < p.file && files[i].f != nil:
						files[i].f.Close() // before the window
						files[i].f = nil
					case i >= p.file && files[i].f == nil:
						files[i].f, _ = os.Open(files[i].path) // a missing one is skipped
					}
				}
				if p.file < len(files) && files[p.file].f != nil {
					m.fl = &follower{path: files[p.file].path, f: files[p.file].f, off: p.off, readMax: windowRead}
					files[p.file].f = nil
					m.fl.fi, err = m.fl.f.Stat()
				} else if p.file < len(files) {
					m.k++
				}
				out = append(out, m)
			} else {
				closeSpans(files)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read the log of machine %s: %w", src.MachineID, err))
		}
	}
	return out, errors.Join(errs...)
}

// closeSpans closes the descriptors spans hold.
func closeSpans(files []span) {
	for i := range files {
		if files[i].f != nil {
			files[i].f.Close()
			files[i].f = nil
		}
	}
}

// batchLines is how many lines Read hands to emit at a time.
const batchLines = 512

// Read calls emit with the lines of the sources that q selects, merged by
// time, in batches: with q.Since, from there on (to q.Until, or to now);
// else the last q.Lines lines (before q.Until). It returns emit's error,
// or the logs that could not be read (the others' lines still given).
func Read(ctx context.Context, sources []Source, q Query, emit func([]types.LogLine) error) error {
	if q.Since.IsZero() {
		lines, err := tailUntil(sources, q)
		if e := emit(lines); e != nil {
			return e
		}
		return err
	}
	ms, err := openWindow(sources, q.Since, dirCache{})
	defer func() {
		for _, m := range ms {
			m.close()
		}
	}()
	_, emitErr := readMerged(ctx, ms, q, emit)
	if emitErr != nil {
		return emitErr
	}
	return errors.Join(err, readersErr(ms))
}

func readersErr(ms []*machineReader) error {
	var errs []error
	for _, m := range ms {
		if m.err != nil {
			errs = append(errs, fmt.Errorf("read the log of machine %s: %w", m.MachineID, m.err))
		}
	}
	return errors.Join(errs...)
}

// readMerged emits the readers' lines merged by time until they end, or
// a line after q.Until, or q.Lines lines; it reports whether the window's
// end (Until or Lines) was reached.
func readMerged(ctx context.Context, ms []*machineReader, q Query, emit func([]types.LogLine) error) (bool, error) {
	until := ""
	if !q.Until.IsZero() {
		until = q.Until.UTC().Format(TimeFormat)
	}
	var batch []types.LogLine
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := emit(batch)
		batch = nil
		return err
	}
	for {
		if ctx.Err() != nil {
			return true, flush()
		}
		var best *machineReader
		var bestTS string
		for _, m := range ms {
			line, ok := m.head()
			if !ok {
				continue
			}
			ts, _, _ := strings.Cut(line, " ")
			if best == nil || ts < bestTS {
				best, bestTS = m, ts
			}
		}
		if best == nil {
			return false, flush()
		}
		if until != "" && bestTS > until {
			return true, flush()
		}
		line := best.buf[0]
		best.buf = best.buf[1:]
		l, ok := parseLine(best.App, best.MachineID, best.Region, line)
		if !ok || (q.Grep != nil && !q.Grep.MatchString(l.Message)) {
			continue
		}
		l.ProcessGroup = best.ProcessGroup
		batch = append(batch, l)
		n++
		if len(batch) >= batchLines {
			if err := flush(); err != nil {
				return true, err
			}
		}
		if q.Lines > 0 && n >= q.Lines {
			return true, flush()
		}
	}
}

// tailUntil returns the last q.Lines lines (matching q.Grep) before
// q.Until (now when zero), merged by time.
func tailUntil(sources []Source, q Query) ([]types.LogLine, error) {
	var all []timedLine
	var errs []error
	for _, src := range sources {
		lines, err := lastBefore(src, q)
		if err != nil {
			errs = append(errs, fmt.Errorf("read the log of machine %s: %w", src.MachineID, err))
		}
		sf := &sourceFollower{Source: src}
		all = sf.collect(all, lines)
	}
	sortLines(all)
	if len(all) > q.Lines {
		all = all[len(all)-q.Lines:]
	}
	return plain(all), errors.Join(errs...)
}

// lastBefore returns the last q.Lines raw lines of src before q.Until
// that match q.Grep, reading backwards from there, file after file.
func lastBefore(src Source, q Query) ([]string, error) {
	if q.Lines <= 0 {
		return nil, nil
	}
	files, err := machineFiles(src, openLive(src), nil)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	defer closeSpans(files)
	end := position{len(files) - 1, -1} // -1: the file's end
	if !q.Until.IsZero() {
		// The first line after Until: a nanosecond on.
		p, err := seek(files, q.Until.Add(time.Nanosecond).UTC().Format(TimeFormat))
		if err != nil {
			return nil, err
		}
		end = p
		if end.file >= len(files) {
			end = position{len(files) - 1, -1}
		}
	}
	var out []string // newest chunks first, reversed at the end
	var chunks [][]string
	need := q.Lines
	for k := end.file; k >= 0 && need > 0; k-- {
		f := files[k].f
		if f == nil {
			var err error
			if f, err = os.Open(files[k].path); errors.Is(err, os.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, err
			}
			files[k].f = f // closed with the others
		}
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		size := fi.Size()
		if k == end.file && end.off >= 0 {
			size = end.off
		}
		keepPartial := !(files[k].last && k == end.file && end.off < 0)
		// Read more than needed when filtering: a grep keeps fewer.
		want := need
		for {
			lines, _, err := lastLines(f, size, want, keepPartial)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", files[k].path, err)
			}
			kept := lines
			if q.Grep != nil {
				kept = nil
				for _, l := range lines {
					if l2, ok := parseLine("", "", "", l); ok && q.Grep.MatchString(l2.Message) {
						kept = append(kept, l)
					}
				}
			}
			if len(kept) >= need || len(lines) < want || want >= 1<<22 {
				if len(kept) > need {
					kept = kept[len(kept)-need:]
				}
				chunks = append(chunks, kept)
				need -= len(kept)
				break
			}
			want *= 4
		}
	}
	for i := len(chunks) - 1; i >= 0; i-- {
		out = append(out, chunks[i]...)
	}
	return out, nil
}
