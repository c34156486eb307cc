package logs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// history writes a machine's log as the shim leaves it: lines at the
// given times, perFile to a file, the older files archived under their
// first line's time, then <id>.log.1 and <id>.log. It returns the raw
// lines in order.
func history(t *testing.T, src Source, times []time.Time, perFile int) []string {
	t.Helper()
	var files [][]string
	var all []string
	for i, at := range times {
		if i%perFile == 0 {
			files = append(files, nil)
		}
		line := fmt.Sprintf("%s stdout %s line %d", at.UTC().Format(TimeFormat), src.MachineID, i)
		files[len(files)-1] = append(files[len(files)-1], line)
		all = append(all, line)
	}
	for i, lines := range files {
		path := src.Path
		switch {
		case i == len(files)-2:
			path += ".1"
		case i < len(files)-2:
			ts, _, _ := strings.Cut(lines[0], " ")
			path = ArchivePath(src.Path, ts)
		}
		writeFile(t, path, strings.Join(lines, "\n")+"\n")
	}
	return all
}

// window returns the lines of all with a time in [since, until], merged
// by time (ties by source order), as a summary.
func bruteWindow(all [][]string, since, until string) []string {
	var out []string
	for _, lines := range all {
		for _, l := range lines {
			ts, _, _ := strings.Cut(l, " ")
			if ts >= since && (until == "" || ts <= until) {
				out = append(out, l)
			}
		}
	}
	// Stable by time: the machines' lines were appended machine by
	// machine, and Read breaks ties by the first machine too.
	sortRaw(out)
	return out
}

func sortRaw(ls []string) {
	key := func(l string) string { ts, _, _ := strings.Cut(l, " "); return ts }
	sort.SliceStable(ls, func(i, j int) bool { return key(ls[i]) < key(ls[j]) })
}

func rawOf(lines []types.LogLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Timestamp+" "+l.Stream+" "+l.Message)
	}
	return out
}

func readAll(t *testing.T, sources []Source, q Query) []types.LogLine {
	t.Helper()
	var got []types.LogLine
	if err := Read(context.Background(), sources, q, func(ls []types.LogLine) error {
		got = append(got, ls...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestReadWindow: --since/--until over two machines whose logs span many
// archived files return exactly the lines of the window, merged by time,
// for random windows (compared with a scan of everything), including
// windows before, after and between the lines; without --since, the last
// n lines before --until.
func TestReadWindow(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var sources []Source
	var all [][]string
	for _, id := range []string{"a", "b"} {
		src := Source{App: "app", MachineID: id, Region: "tst", ProcessGroup: "web", Path: filepath.Join(dir, id+".log")}
		var times []time.Time
		at := t0
		for range 3000 {
			at = at.Add(time.Duration(r.IntN(4)) * time.Second) // equal times too
			times = append(times, at)
		}
		all = append(all, history(t, src, times, 97))
		sources = append(sources, src)
	}
	end := t0.Add(3 * 3000 * time.Second)
	for i := range 100 {
		since := t0.Add(time.Duration(r.Int64N(int64(end.Sub(t0)))) - time.Hour)
		var until time.Time
		if i%3 != 0 {
			until = since.Add(time.Duration(r.Int64N(int64(2 * time.Hour))))
		}
		q := Query{Since: since, Until: until}
		u := ""
		if !until.IsZero() {
			u = until.Format(TimeFormat)
		}
		want := bruteWindow(all, since.Format(TimeFormat), u)
		got := rawOf(readAll(t, sources, q))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("window %v..%v: %d lines, want %d\ngot  %.300q\nwant %.300q", since, until, len(got), len(want), got, want)
		}
		// The last n before until.
		if until.IsZero() {
			continue
		}
		n := 1 + r.IntN(300)
		want = bruteWindow(all, "", u)
		if len(want) > n {
			want = want[len(want)-n:]
		}
		got = rawOf(readAll(t, sources, Query{Until: until, Lines: n}))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("last %d before %v: %d lines, want %d", n, until, len(got), len(want))
		}
	}
	got := readAll(t, sources, Query{Since: t0, Lines: 3})
	if len(got) != 3 || got[0].ProcessGroup != "web" || got[0].Instance != got[0].MachineID || got[0].Region != "tst" {
		t.Fatalf("first 3 lines: %+v", got)
	}
}

// TestReadGrep: --grep keeps matching messages, with and without --since.
func TestReadGrep(t *testing.T) {
	dir := t.TempDir()
	src := Source{App: "app", MachineID: "m", Path: filepath.Join(dir, "m.log")}
	var times []time.Time
	for i := range 1000 {
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	history(t, src, times, 100)
	re := regexp.MustCompile(`line [0-9]*7$`)
	got := readAll(t, []Source{src}, Query{Lines: 5, Grep: re})
	if s := summary(got); s != "m:m line 957 m:m line 967 m:m line 977 m:m line 987 m:m line 997" {
		t.Fatalf("last 5 matching: %s", s)
	}
	got = readAll(t, []Source{src}, Query{Since: t0.Add(100 * time.Second), Until: t0.Add(130 * time.Second), Grep: re})
	if s := summary(got); s != "m:m line 107 m:m line 117 m:m line 127" {
		t.Fatalf("window matching: %s", s)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r  *os.File
	mu sync.Mutex
	n  int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

// TestSeekReadsLittle: finding a time in an 8 MiB file reads a small part
// of it (a binary search, not a scan), and finds the first line at or
// after the time, for times before, inside and after the file.
func TestSeekReadsLittle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	var b bytes.Buffer
	var starts []int64
	var stamps []string
	for i := 0; b.Len() < 8<<20; i++ {
		ts := t0.Add(time.Duration(i/3) * time.Millisecond).Format(TimeFormat) // runs of equal times
		starts = append(starts, int64(b.Len()))
		stamps = append(stamps, ts)
		fmt.Fprintf(&b, "%s stdout %s\n", ts, strings.Repeat("x", i%200))
	}
	writeFile(t, path, b.String())
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(b.Len())
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		k := r.IntN(len(stamps)+2) - 1
		var want int64
		var q string
		switch {
		case k < 0:
			q, want = t0.Add(-time.Hour).Format(TimeFormat), 0
		case k >= len(stamps):
			q, want = t0.Add(1000*time.Hour).Format(TimeFormat), size
		default:
			q = stamps[k]
			j := k
			for j > 0 && stamps[j-1] == q {
				j--
			}
			want = starts[j]
		}
		c := &countingReader{r: f}
		got, err := seekInFile(c, size, q)
		if err != nil || got != want {
			t.Fatalf("seek %s: %d, %v; want %d", q, got, err, want)
		}
		if c.n > 512<<10 {
			t.Fatalf("seek %s read %d bytes of a %d-byte file", q, c.n, size)
		}
	}
}

// TestFollowSince: following from --since gives the window's lines, then
// every line written after, across a rotation, each once.
func TestFollowSince(t *testing.T) {
	dir := t.TempDir()
	src := Source{App: "app", MachineID: "m", Path: filepath.Join(dir, "m.log")}
	var times []time.Time
	for i := range 300 {
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	history(t, src, times, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan types.LogLine, 1000)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, FollowOptions{
			Sources: func() ([]Source, error) { return []Source{src}, nil },
			Since:   t0.Add(250 * time.Second),
			Poll:    5 * time.Millisecond,
		}, func(ls []types.LogLine) error {
			for _, l := range ls {
				got <- l
			}
			return nil
		})
	}()
	next := func() string {
		select {
		case l := <-got:
			return l.Message
		case <-time.After(10 * time.Second):
			t.Fatal("no line within 10 s")
			return ""
		}
	}
	for i := 250; i < 300; i++ {
		if m := next(); m != fmt.Sprintf("m line %d", i) {
			t.Fatalf("line %q, want line %d", m, i)
		}
	}
	appendLine := func(path string, i int) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%s stdout m line %d\n", t0.Add(time.Duration(i)*time.Second).Format(TimeFormat), i)
		f.Close()
	}
	appendLine(src.Path, 300)
	if m := next(); m != "m line 300" {
		t.Fatalf("new line %q", m)
	}
	// Rotate as the shim does: .1 to its archive, the log to .1.
	ts := firstTimestamp(src.Path + ".1")
	if err := os.Rename(src.Path+".1", ArchivePath(src.Path, ts)); err != nil {
		t.Fatal(err)
	}
	appendLine(src.Path, 301)
	if err := os.Rename(src.Path, src.Path+".1"); err != nil {
		t.Fatal(err)
	}
	appendLine(src.Path, 302)
	for i := 301; i <= 302; i++ {
		if m := next(); m != fmt.Sprintf("m line %d", i) {
			t.Fatalf("after the rotation: %q, want line %d", m, i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("a line repeated: %q", (<-got).Message)
	}
}

// TestLostLinesMessage: the shim's count of lost lines reads back.
func TestLostLinesMessage(t *testing.T) {
	msg := LostLinesMessage(1234, fmt.Errorf("write /x: no space left on device"))
	if n, ok := ParseLostLines(msg); !ok || n != 1234 {
		t.Fatalf("%q: %d %v", msg, n, ok)
	}
	if _, ok := ParseLostLines("[hangar: many log lines lost: x]"); ok {
		t.Fatal("parsed a malformed count")
	}
}

// TestParseTime: the forms of --since and --until.
func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1h":                          now.Add(-time.Hour),
		"90s":                         now.Add(-90 * time.Second),
		"2d":                          now.Add(-48 * time.Hour),
		"1w":                          now.Add(-7 * 24 * time.Hour),
		"2026-12-01T10:00:00Z":        time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		"2026-12-01T11:00:00.5+01:00": time.Date(2026, 12, 1, 10, 0, 0, 5e8, time.UTC),
		"2026-12-01":                  time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		" 15m ":                       now.Add(-15 * time.Minute),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "yesterday", "1y", "99999999999d", "2026-13-01", "1.5d"} {
		if _, err := ParseTime(in, now); err == nil {
			t.Errorf("ParseTime(%q) accepted", in)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"1h", "2d", "1w", "2026-12-01T10:00:00Z", "2026-12-01", "-5m", "9223372036854775807ns"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, now)
		if err != nil {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("%q: %v not in UTC", s, got)
		}
		if _, ok := parseAgo(strings.TrimSpace(s)); ok && got.After(now) {
			t.Fatalf("%q: a duration back from now gave %v, after now", s, got)
		}
	})
}

func FuzzParseLogFileName(f *testing.F) {
	for _, s := range []string{"m.log", "m.log.1", "m.log.2026-12-07T09:00:00.000000000Z", "m.log.x", ".log", "a.b.log"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lf, ok := ParseLogFileName(s)
		if !ok {
			return
		}
		if lf.MachineID == "" || strings.ContainsAny(lf.MachineID, "./") {
			t.Fatalf("%q: machine id %q", s, lf.MachineID)
		}
		if lf.Kind == "archive" && ArchivePath(lf.MachineID+".log", lf.Start.Format(TimeFormat)) != lf.Name {
			t.Fatalf("%q: archive name does not round-trip", s)
		}
	})
}

// FuzzSeekInFile: whatever the bytes, seeking returns an offset in the
// file at a line start, and for sorted files the first line at or after
// the time.
func FuzzSeekInFile(f *testing.F) {
	f.Add([]byte("2026-01-01T00:00:00.000000000Z stdout a\n2026-01-01T00:00:01.000000000Z stdout b\n"), "2026-01-01T00:00:01.000000000Z")
	f.Add([]byte("garbage\nno newline"), "2026")
	f.Fuzz(func(t *testing.T, data []byte, q string) {
		off, err := seekInFile(bytes.NewReader(data), int64(len(data)), q)
		if err != nil {
			t.Fatal(err)
		}
		if off < 0 || off > int64(len(data)) || (off > 0 && off < int64(len(data)) && data[off-1] != '\n') {
			t.Fatalf("offset %d is not a line start", off)
		}
	})
}
