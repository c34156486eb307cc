package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hangar-dev/hangar/internal/logs"
)

// logRecord is one parsed line of a task log.
type logRecord struct {
	ts      time.Time
	stream  string
	message string
}

// readLog parses every line of a log file, failing on a malformed or
// unterminated one.
func readLog(t *testing.T, path string) []logRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: a line was split", path)
	}
	var out []logRecord
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" && len(b) == 0 {
			break
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			t.Fatalf("%s: malformed line %q", path, line)
		}
		ts, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil || len(f[0]) != len(logTimeFormat)-len("Z07:00")+1 {
			t.Fatalf("%s: timestamp %q is not fixed-width RFC 3339: %v", path, f[0], err)
		}
		out = append(out, logRecord{ts, f[1], f[2]})
	}
	return out
}

// feed writes lines into a lineWriter through real pipes, one per stream,
// concurrently, and waits until the writer has copied them all.
func feed(t *testing.T, w *lineWriter, streams map[string][]string) {
	t.Helper()
	var wg sync.WaitGroup
	for stream, lines := range streams {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); w.copyLines(r, stream) }()
		go func() {
			defer wg.Done()
			defer pw.Close()
			bw := bufio.NewWriter(pw)
			for _, l := range lines {
				bw.WriteString(l)
			}
			bw.Flush()
		}()
	}
	wg.Wait()
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %06d %s\n", prefix, i, strings.Repeat("x", i%40))
	}
	return out
}

// checkSuffix checks that the records of stream hold lines first..n-1 of
// numbered(stream, n), each once, in order.
func checkSuffix(t *testing.T, recs []logRecord, stream string, n int, wantAll bool) {
	t.Helper()
	next := -1
	for _, r := range recs {
		if r.stream != stream {
			continue
		}
		var seq int
		if _, err := fmt.Sscanf(r.message, stream+" %d", &seq); err != nil {
			t.Fatalf("unexpected line %q", r.message)
		}
		want := fmt.Sprintf("%s %06d %s", stream, seq, strings.Repeat("x", seq%40))
		if r.message != want {
			t.Fatalf("line %q, want %q", r.message, want)
		}
		if next >= 0 && seq != next {
			t.Fatalf("%s: line %d follows line %d: lines lost or reordered", stream, seq, next-1)
		}
		if next < 0 && wantAll && seq != 0 {
			t.Fatalf("%s: first line kept is %d, want 0", stream, seq)
		}
		next = seq + 1
	}
	if next != n {
		t.Fatalf("%s: last line is %d, want %d", stream, next-1, n-1)
	}
}

// TestLineWriterRotatesOnce writes a little more than one file's worth:
// the writer rotates once, both files stay under the cap, and together
// they hold every line of both streams, whole and in order.
func TestLineWriterRotatesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	const max = 64 << 10
	w, err := openLineWriter(path, max)
	if err != nil {
		t.Fatal(err)
	}
	// ~2 x 700 lines of ~90 bytes with the header: ~125 KiB, so about
	// one full file plus part of a second. Too much for one file...
	feed(t, w, map[string][]string{"stdout": numbered("stdout", 700), "stderr": numbered("stderr", 700)})
	w.Close()
	old, cur := readLog(t, path+".1"), readLog(t, path)
	fi1, _ := os.Stat(path + ".1")
	fi, _ := os.Stat(path)
	if fi1.Size() > max || fi.Size() > max {
		t.Fatalf("file sizes %d and %d, cap %d", fi1.Size(), fi.Size(), max)
	}
	// ...and rotated only when the next line did not fit.
	first, _ := os.ReadFile(path)
	if n := int64(bytes.IndexByte(first, '\n') + 1); fi1.Size()+n <= max {
		t.Fatalf("rotated at %d bytes although the next %d-byte line fitted under %d", fi1.Size(), n, max)
	}
	all := append(old, cur...)
	checkSuffix(t, all, "stdout", 700, true)
	checkSuffix(t, all, "stderr", 700, true)
	for i := 1; i < len(all); i++ {
		if all[i].ts.Before(all[i-1].ts) {
			t.Fatalf("line %d is older than the line before it", i)
		}
	}
}

// TestLineWriterRotatesMany writes many files' worth: every rotated file
// is kept (the older ones as archives named by their first line's time,
// for the daemon's retention to remove), none over the cap, and together
// in name order they hold every line, whole and in order.
func TestLineWriterRotatesMany(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	const max = 8 << 10
	w, err := openLineWriter(path, max)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, w, map[string][]string{"stdout": numbered("stdout", 3000)})
	feed(t, w, map[string][]string{"stderr": numbered("stderr", 20)})
	w.Close()
	entries, _ := os.ReadDir(filepath.Dir(path))
	var archives []string
	for _, e := range entries {
		f, ok := logs.ParseLogFileName(e.Name())
		if e.Name() == "m.lost" {
			continue // the count of lost lines
		}
		if !ok {
			t.Fatalf("file %s is not a machine log", e.Name())
		}
		if f.Kind == "archive" {
			archives = append(archives, filepath.Join(filepath.Dir(path), e.Name()))
			if first := readLog(t, archives[len(archives)-1])[0].ts; !first.Equal(f.Start) {
				t.Fatalf("archive %s starts at %v", e.Name(), first)
			}
		}
	}
	if len(archives) < 20 {
		t.Fatalf("%d archives after ~300 KiB at an 8 KiB cap: rotated files were lost", len(archives))
	}
	var all []logRecord
	for _, p := range append(archives, path+".1", path) { // ReadDir sorts by name
		if fi, err := os.Stat(p); err != nil || fi.Size() > max || fi.Size() == 0 {
			t.Fatalf("%s: %v, size over the cap %d or empty", p, err, max)
		}
		all = append(all, readLog(t, p)...)
	}
	checkSuffix(t, all, "stdout", 3000, true)
	checkSuffix(t, all, "stderr", 20, true)
}

// TestLineWriterCountsLostLines: writes that fail (a full disk, here
// /dev/full) lose their lines without blocking the writer, and the first
// write that succeeds afterwards is preceded by a line of the "hangar"
// stream with the exact count.
func TestLineWriterCountsLostLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	w, err := openLineWriter(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	good := w.f
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	feed(t, w, map[string][]string{"stdout": numbered("stdout", 10)})
	w.mu.Lock()
	w.f = full
	w.mu.Unlock()
	feed(t, w, map[string][]string{"stdout": numbered("lost", 37)})
	w.mu.Lock()
	w.f = good
	w.mu.Unlock()
	full.Close()
	feed(t, w, map[string][]string{"stderr": numbered("stderr", 5)})
	w.Close()
	recs := readLog(t, path)
	if len(recs) != 16 {
		t.Fatalf("%d lines, want 10 + the count + 5: %v", len(recs), recs)
	}
	n, ok := logs.ParseLostLines(recs[10].message)
	if recs[10].stream != logs.LostStream || !ok || n != 37 {
		t.Fatalf("line after the failed writes: %s %q, want %s saying 37 lines lost", recs[10].stream, recs[10].message, logs.LostStream)
	}
	if !strings.Contains(recs[10].message, "no space left") {
		t.Errorf("the count does not say why: %q", recs[10].message)
	}
	checkSuffix(t, recs[:10], "stdout", 10, true)
	checkSuffix(t, recs[11:], "stderr", 5, true)
	// The machine's running count, for the daemon's metric.
	if got := logs.LostLines(filepath.Dir(filepath.Dir(path))); got[filepath.Base(filepath.Dir(path))] != 37 {
		t.Fatalf("count of lost lines: %v, want 37", got)
	}
}

// TestLineWriterLongLines: a line over maxLine is cut with the marker
// (at a character boundary) and the rest dropped; a line of exactly maxLine
// stays whole; a last line without a newline is kept; an existing file's
// size counts toward the cap.
func TestLineWriterLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	// An existing file just under the cap: the first line rotates it.
	if err := os.WriteFile(path, bytes.Repeat([]byte("2024-01-01T00:00:00.000000000Z stdout old\n"), 10000), 0o640); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	w, err := openLineWriter(path, fi.Size()+10)
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("y", 5*maxLine) // 320 KiB in one line
	exact := strings.Repeat("z", maxLine)
	// "é" is two bytes: after one "a", maxLine falls inside a character.
	accents := "a" + strings.Repeat("é", maxLine)
	in := huge + "\nshort\n" + exact + "\r\n" + accents + "\nlast without newline"
	r, pw, _ := os.Pipe()
	go func() {
		_, _ = io.WriteString(pw, in)
		pw.Close()
	}()
	w.copyLines(r, "stdout")
	w.Close()
	if old := readLog(t, path+".1"); len(old) != 10000 {
		t.Fatalf("the existing file was not rotated whole: %d lines in .1", len(old))
	}
	recs := readLog(t, path)
	if len(recs) != 5 {
		t.Fatalf("%d lines, want 5", len(recs))
	}
	if want := huge[:maxLine] + lineCutMarker; recs[0].message != want {
		t.Errorf("long line: %d bytes ending %q, want %d bytes cut with the marker", len(recs[0].message), recs[0].message[len(recs[0].message)-40:], len(want))
	}
	if recs[1].message != "short" {
		t.Errorf("line after the cut one: %q, want %q", recs[1].message, "short")
	}
	if recs[2].message != exact {
		t.Errorf("a line of exactly %d bytes was changed (%d bytes)", maxLine, len(recs[2].message))
	}
	msg := strings.TrimSuffix(recs[3].message, lineCutMarker)
	if msg == recs[3].message || !utf8.ValidString(msg) || len(msg) != maxLine-1 || !strings.HasPrefix(accents, msg) {
		t.Errorf("line cut inside a character: %d bytes, valid UTF-8 %v", len(msg), utf8.ValidString(msg))
	}
	if recs[4].message != "last without newline" {
		t.Errorf("last line: %q", recs[4].message)
	}
}

// TestLineWriterNoCap: with max 0 the file only grows.
func TestLineWriterNoCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	w, err := openLineWriter(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, w, map[string][]string{"stdout": numbered("stdout", 2000)})
	w.Close()
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatalf("rotated without a cap: %v", err)
	}
	checkSuffix(t, readLog(t, path), "stdout", 2000, true)
}

// BenchmarkLineWriter measures the shim's writer alone: 100-byte lines
// through a real pipe into a file (bytes/s as MB/s).
func BenchmarkLineWriter(b *testing.B) {
	path := filepath.Join(b.TempDir(), "m.log")
	w, err := openLineWriter(path, 32<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	line := []byte(strings.Repeat("x", 99) + "\n")
	chunk := bytes.Repeat(line, 640) // 64 KB
	b.SetBytes(int64(len(chunk)))
	r, pw, _ := os.Pipe()
	done := make(chan struct{})
	go func() { w.copyLines(r, "stdout"); close(done) }()
	b.ResetTimer()
	for range b.N {
		if _, err := pw.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	pw.Close()
	<-done
}
