package deploy

import (
	"bytes"
	"io"
	"os"
	"strings"
)

// tailer returns the complete lines added to a machine log since the last
// call, without the timestamp and stream columns. It keeps the file open,
// so that when the shim rotates the log (renames it to <id>.log.1 and
// starts a new one) it reads the old file to its end before it moves on
// to the new one from its start: no line is lost or shown twice.
type tailer struct {
	path string
	f    *os.File
	rest []byte
}

func newTailer(path string) *tailer { return &tailer{path: path} }

// close releases the open file.
func (t *tailer) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// read returns what was appended to the open file (at most 1 MiB a call).
func (t *tailer) read() []byte {
	b, _ := io.ReadAll(io.LimitReader(t.f, 1<<20))
	return b
}

// rotated reports whether the path now names another file than the open one.
func (t *tailer) rotated() bool {
	cur, err1 := os.Stat(t.path)
	open, err2 := t.f.Stat()
	return err1 == nil && err2 == nil && !os.SameFile(cur, open)
}

func (t *tailer) lines() []string {
	if t.f == nil {
		f, err := os.Open(t.path)
		if err != nil {
			return nil
		}
		t.f = f
	}
	b := t.read()
	if len(b) < 1<<20 && t.rotated() {
		// The rest of the old file first, then the new one.
		b = append(b, t.read()...)
		t.close()
		if f, err := os.Open(t.path); err == nil {
			t.f = f
			b = append(b, t.read()...)
		}
	}
	if len(b) == 0 {
		return nil
	}
	b = append(t.rest, b...)
	var out []string
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		line := string(b[:i])
		b = b[i+1:]
		// "<timestamp> <stream> <message>"
		if f := strings.SplitN(line, " ", 3); len(f) == 3 {
			line = f[2]
		}
		out = append(out, line)
	}
	t.rest = append([]byte(nil), b...)
	return out
}
