package logs

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func tailOf(t *testing.T, path string, n int, keepPartial bool) ([]string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	lines, end, err := lastLines(f, fi.Size(), n, keepPartial)
	if err != nil {
		t.Fatal(err)
	}
	return lines, end
}

// TestLastLinesAcrossChunks compares the backwards reader with a plain
// split on a ~1 MiB file whose lines (some longer than a chunk) straddle
// the chunk boundaries at every kind of offset.
func TestLastLinesAcrossChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	rng := rand.New(rand.NewSource(1))
	var all []string
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		n := rng.Intn(300)
		if i%997 == 5 {
			n = tailChunk + 7000 // longer than a chunk
		}
		line := fmt.Sprintf("%06d %s", i, strings.Repeat("abcdefghij", n/10+1)[:n])
		if i%50 == 0 {
			line = "" // empty lines are lines too
		}
		all = append(all, line)
		b.WriteString(line + "\n")
	}
	writeFile(t, path, b.String())
	for _, n := range []int{0, 1, 2, 3, 100, 1000, 2047, len(all) - 1, len(all), len(all) + 10} {
		got, end := tailOf(t, path, n, false)
		want := all[max(0, len(all)-n):]
		if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Fatalf("last %d of %d lines: got %d lines (first %.30q), want %d (first %.30q)", n, len(all), len(got), first(got), len(want), first(want))
		}
		if end != int64(b.Len()) {
			t.Fatalf("end %d, want the file size %d", end, b.Len())
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestLastLinesEdges(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content string
		n             int
		keepPartial   bool
		want          []string
		end           int64
	}{
		{"empty file", "", 10, false, nil, 0},
		{"empty file keeping a partial line", "", 10, true, nil, 0},
		{"one newline", "\n", 10, false, []string{""}, 1},
		{"no final newline", "a\nb\npartial", 10, false, []string{"a", "b"}, 4},
		{"no final newline, fewer wanted", "a\nb\npartial", 1, false, []string{"b"}, 4},
		{"no final newline, kept", "a\nb\npartial", 2, true, []string{"b", "partial"}, 4},
		{"only a partial line", "abc", 5, false, nil, 0},
		{"only a partial line, kept", "abc", 5, true, []string{"abc"}, 0},
		{"zero lines still finds the end", "a\nbc", 0, false, nil, 2},
		{"partial line longer than a chunk", "a\n" + strings.Repeat("x", tailChunk+10), 5, false, []string{"a"}, 2},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint(i))
			writeFile(t, path, c.content)
			got, end := tailOf(t, path, c.n, c.keepPartial)
			if !reflect.DeepEqual(got, c.want) || end != c.end {
				t.Fatalf("got %q end %d, want %q end %d", got, end, c.want, c.end)
			}
		})
	}
}

func numberedLines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func linesFrom(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

// TestTailRotatedPair: the rotated file supplies what the current one
// lacks, including its unterminated last line.
func TestTailRotatedPair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	writeFile(t, path+".1", numberedLines(0, 10)+"line 10")
	writeFile(t, path, numberedLines(11, 14))
	for _, c := range []struct {
		n    int
		want []string
	}{
		{2, linesFrom(12, 14)},
		{3, linesFrom(11, 14)},
		{5, linesFrom(9, 14)},
		{100, linesFrom(0, 14)},
	} {
		fl := &follower{path: path}
		got, err := fl.tail(c.n)
		fl.close()
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Fatalf("tail %d: %q, %v; want %q", c.n, got, err, c.want)
		}
	}
	// Only the rotated file (the shim between rename and create).
	os.Remove(path)
	fl := &follower{path: path}
	defer fl.close()
	if got, err := fl.tail(3); err != nil || !reflect.DeepEqual(got, []string{"line 8", "line 9", "line 10"}) {
		t.Fatalf("tail of the rotated file alone: %q, %v", got, err)
	}
	writeFile(t, path, numberedLines(11, 13))
	if got, err := fl.next(); err != nil || !reflect.DeepEqual(got, linesFrom(11, 13)) {
		t.Fatalf("follow after the new file appeared: %q, %v", got, err)
	}
}

// TestFollowAcrossRotation follows a log the way the shim writes it:
// appends, a partial line, a rotation, two rotations between polls, and a
// truncation; every line comes once, in order.
func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	rotate := func() {
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, path, numberedLines(0, 5))
	fl := &follower{path: path}
	defer fl.close()
	if got, err := fl.tail(2); err != nil || !reflect.DeepEqual(got, linesFrom(3, 5)) {
		t.Fatalf("tail: %q %v", got, err)
	}
	step := func(what string, want []string) {
		t.Helper()
		got, err := fl.next()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %q, %v; want %q", what, got, err, want)
		}
	}
	step("nothing new", nil)
	appendFile(t, path, numberedLines(5, 7)+"line 7 in two wr")
	step("appended, the last line incomplete", linesFrom(5, 7))
	appendFile(t, path, "ites\n")
	step("the line completed", []string{"line 7 in two writes"})

	appendFile(t, path, numberedLines(8, 10))
	rotate()
	writeFile(t, path, numberedLines(10, 12))
	step("rotation: the old file's rest, then the new file", linesFrom(8, 12))

	appendFile(t, path, numberedLines(12, 13))
	rotate()
	writeFile(t, path, numberedLines(13, 15))
	rotate()
	writeFile(t, path, numberedLines(15, 16))
	step("two rotations between polls", linesFrom(12, 16))

	rotate() // renamed, the new file not created yet
	step("between rename and create", nil)
	writeFile(t, path, numberedLines(16, 17))
	step("created", linesFrom(16, 17))

	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "x\n")
	step("truncated in place", []string{"x"})
}

// A line appended between next's stat of the path and its read is read
// once: the stat's size (older) is no sign of a truncation. (Under load
// this window opened wide enough for Follow to repeat whole files.) A
// real truncation still starts over.
func TestFollowAppendDuringPoll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	writeFile(t, path, numberedLines(0, 3))
	fl := &follower{path: path}
	defer fl.close()
	if got, err := fl.tail(1); err != nil || !reflect.DeepEqual(got, linesFrom(2, 3)) {
		t.Fatalf("tail: %q %v", got, err)
	}
	fl.afterStat = func() { appendFile(t, path, numberedLines(3, 4)) }
	if got, err := fl.next(); err != nil || !reflect.DeepEqual(got, linesFrom(3, 4)) {
		t.Fatalf("a line appended during the poll: %q, %v; want line 3 only", got, err)
	}
	fl.afterStat = nil
	if got, err := fl.next(); err != nil || got != nil {
		t.Fatalf("the next poll: %q, %v; want nothing", got, err)
	}
	writeFile(t, path, numberedLines(10, 11)) // truncated in place, shorter
	if got, err := fl.next(); err != nil || !reflect.DeepEqual(got, linesFrom(10, 11)) {
		t.Fatalf("after a truncation: %q, %v; want the file from its start", got, err)
	}
}
