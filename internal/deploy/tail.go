package deploy

import (
	"bytes"
	"io"
	"os"
	"strings"
)

// tailer returns the complete lines added to a machine log since the last
// call, without the timestamp and stream columns.
type tailer struct {
	path string
	off  int64
	rest []byte
}

func newTailer(path string) *tailer { return &tailer{path: path} }

func (t *tailer) lines() []string {
	f, err := os.Open(t.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil || len(b) == 0 {
		return nil
	}
	t.off += int64(len(b))
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
