package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reading machine logs without reading them whole. A machine's log is
// <id>.log, and <id>.log.1 once the shim has rotated it (see
// internal/runtime's lineWriter): the last lines are read backwards from
// the end in chunks, and a follower keeps the file open and reads what is
// appended, moving to the new file when the shim rotates.

const (
	// tailChunk is how much is read at a time, backwards or forwards.
	tailChunk = 64 << 10
	// maxLogLine bounds a line the readers hold (the shim cuts lines at
	// 64 KiB); longer runs without a newline are given out in pieces.
	maxLogLine = 1 << 20
	// maxFollowRead bounds what one poll of a follower reads.
	maxFollowRead = 8 << 20
)

// lastLines returns the last n complete lines of the first size bytes of
// r, oldest first, without their newlines, and end, the offset just after
// the last newline. Bytes after the last newline (a line being written)
// are not a line unless keepPartial (a file that will not grow again).
func lastLines(r io.ReaderAt, size int64, n int, keepPartial bool) (lines []string, end int64, err error) {
	end = size
	pos := size
	var carry []byte // bytes from pos on that are not yet a whole line
	last := true     // carry is still the file's last segment
	var rev []string // lines found, newest first
	take := func(seg []byte) {
		if last {
			last = false
			end -= int64(len(seg))
			if len(seg) == 0 || !keepPartial {
				return
			}
		}
		if len(rev) < n {
			rev = append(rev, string(seg))
		}
	}
	buf := make([]byte, tailChunk)
	for len(rev) < n || last {
		if pos == 0 {
			take(carry) // the file's first line
			break
		}
		k := int64(tailChunk)
		if pos < k {
			k = pos
		}
		pos -= k
		if _, err := r.ReadAt(buf[:k], pos); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("read log at %d: %w", pos, err)
		}
		data := append(append([]byte(nil), buf[:k]...), carry...)
		for len(rev) < n || last {
			i := bytes.LastIndexByte(data, '\n')
			if i < 0 {
				break
			}
			take(data[i+1:])
			data = data[:i]
		}
		carry = data
		if len(carry) > maxLogLine {
			// Not a log the shim wrote: give up on older lines.
			take(carry)
			break
		}
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev, end, nil
}

// follower reads one machine's log: its last lines (tail), then the
// lines appended since (next), across rotations, each line once.
type follower struct {
	path string   // <id>.log; the shim rotates it to path+".1"
	f    *os.File // the file being read; nil until it exists
	fi   os.FileInfo
	off  int64  // f is read up to here
	rest []byte // an incomplete line at off
	// readMax bounds one readNew (maxFollowRead when 0).
	readMax int
	// afterStat, if set, runs between next's stat of the path and its
	// read (tests: a writer appending in between).
	afterStat func()
}

func (fl *follower) close() {
	if fl.f != nil {
		fl.f.Close()
		fl.f = nil
	}
}

// tail returns the last n lines of the log, oldest first, taking the
// older ones from the rotated file when the current one has fewer, and
// leaves the follower at the end of the current file.
func (fl *follower) tail(n int) ([]string, error) {
	var lines []string
	f, err := os.Open(fl.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if f != nil {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		var end int64
		if lines, end, err = lastLines(f, fi.Size(), n, false); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", fl.path, err)
		}
		fl.f, fl.fi, fl.off = f, fi, end
	}
	if len(lines) >= n {
		return lines, nil
	}
	old, err := os.Open(fl.path + ".1")
	if errors.Is(err, os.ErrNotExist) {
		return lines, nil
	}
	if err != nil {
		return nil, err
	}
	defer old.Close()
	ofi, err := old.Stat()
	if err != nil {
		return nil, err
	}
	if fl.fi != nil && os.SameFile(ofi, fl.fi) {
		// Rotated since we opened it: what came before is gone.
		return lines, nil
	}
	older, _, err := lastLines(old, ofi.Size(), n-len(lines), true)
	if err != nil {
		return nil, fmt.Errorf("%s.1: %w", fl.path, err)
	}
	return append(older, lines...), nil
}

// next returns the complete lines written since the last call (or tail).
// When the shim has rotated the file, the rest of the old file comes
// first, then (after two rotations between calls) the whole middle one,
// then the new file from its start.
func (fl *follower) next() ([]string, error) {
	if fl.f == nil {
		f, err := os.Open(fl.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if fl.fi, err = f.Stat(); err != nil {
			f.Close()
			return nil, err
		}
		fl.f, fl.off = f, 0
	}
	// Stat the path before reading: once a new file is there, the shim
	// writes nothing more to the old one, so reading that to its end
	// leaves nothing behind.
	cur, statErr := os.Stat(fl.path)
	if fl.afterStat != nil {
		fl.afterStat()
	}
	lines, atEOF, err := fl.readNew()
	if err != nil || !atEOF || statErr != nil {
		return lines, err
	}
	switch {
	case !os.SameFile(cur, fl.fi):
		if len(fl.rest) > 0 {
			lines = append(lines, string(fl.rest))
		}
		if mid, err := os.Open(fl.path + ".1"); err == nil {
			if mfi, err := mid.Stat(); err == nil && !os.SameFile(mfi, fl.fi) && !os.SameFile(mfi, cur) {
				m := &follower{path: fl.path + ".1", f: mid, fi: mfi}
				more, _, _ := m.readNew()
				lines = append(lines, more...)
				if len(m.rest) > 0 {
					lines = append(lines, string(m.rest))
				}
			}
			mid.Close()
		}
		fl.close()
		fl.rest = nil
		more, err := fl.next()
		return append(lines, more...), err
	}
	// Truncated in place (not by the shim): start over. The size is the
	// open file's now, not cur's: cur was taken before the read, and a
	// line appended in between is not a truncation.
	if now, err := fl.f.Stat(); err == nil && now.Size() < fl.off {
		fl.off, fl.rest = 0, nil
		more, _, err := fl.readNew()
		return append(lines, more...), err
	}
	return lines, nil
}

// readNew reads complete lines from off on, up to maxFollowRead bytes
// (readMax); atEOF reports that it reached the end of the file.
func (fl *follower) readNew() (lines []string, atEOF bool, err error) {
	buf := make([]byte, tailChunk)
	limit := maxFollowRead
	if fl.readMax > 0 {
		limit = fl.readMax
	}
	for read := 0; read < limit; {
		k, err := fl.f.ReadAt(buf, fl.off)
		fl.off += int64(k)
		read += k
		data := buf[:k]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				fl.rest = append(fl.rest, data...)
				if len(fl.rest) > maxLogLine {
					lines = append(lines, string(fl.rest))
					fl.rest = nil
				}
				break
			}
			if len(fl.rest) > 0 {
				lines = append(lines, string(append(fl.rest, data[:i]...)))
				fl.rest = nil
			} else {
				lines = append(lines, string(data[:i]))
			}
			data = data[i+1:]
		}
		if errors.Is(err, io.EOF) {
			return lines, true, nil
		}
		if err != nil {
			return lines, false, fmt.Errorf("read %s: %w", fl.path, err)
		}
	}
	return lines, false, nil
}
