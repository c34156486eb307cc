package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A Follower reads every line once, in order, from the first, across a
// rotation of the log between two calls (as the shim rotates: rename,
// then a new file). (It was deploy's tailer, for release_command.)
func TestFollowerAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.log")
	write := func(f *os.File, from, to int) {
		for i := from; i < to; i++ {
			fmt.Fprintf(f, "2026-11-22T00:00:00.000000000Z stdout line %d\n", i)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tl := NewFollower(Source{MachineID: "m", Path: path})
	defer tl.Close()
	lines := func() []string {
		t.Helper()
		ls, err := tl.Next()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range ls {
			out = append(out, l.Message)
		}
		return out
	}
	var got []string
	write(f, 0, 3)
	got = append(got, lines()...)
	write(f, 3, 5)
	// Rotate: the old file keeps its last lines unread by the follower.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, err = os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write(f, 5, 8)
	got = append(got, lines()...)
	write(f, 8, 9)
	got = append(got, lines()...)
	var want []string
	for i := 0; i < 9; i++ {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
