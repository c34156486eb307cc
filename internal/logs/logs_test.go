package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// stamped is a log line as the shim writes it, at second s.
func stamped(s int, msg string) string {
	return fmt.Sprintf("2026-12-07T09:00:%02d.000000000Z stdout %s\n", s, msg)
}

func summary(lines []types.LogLine) string {
	var b []string
	for _, l := range lines {
		b = append(b, l.MachineID+":"+l.Message)
	}
	return strings.Join(b, " ")
}

// TestTailMergesByTime: the last n lines of several machines come in time
// order, each with its machine and region; a missing log is no error, an
// unreadable one is named and the others still come.
func TestTailMergesByTime(t *testing.T) {
	dir := t.TempDir()
	src := func(id string) Source {
		return Source{App: "app", MachineID: id, Region: "tst", Path: filepath.Join(dir, id+".log")}
	}
	writeFile(t, src("a").Path, stamped(1, "a1")+stamped(3, "a3")+stamped(5, "a5"))
	writeFile(t, src("b").Path+".1", stamped(2, "b2"))
	writeFile(t, src("b").Path, stamped(4, "b4")+stamped(6, "b6"))
	all := []Source{src("a"), src("b"), src("missing")}

	got, err := Tail(all, 4)
	if err != nil || summary(got) != "a:a3 b:b4 a:a5 b:b6" {
		t.Fatalf("Tail 4: %q, %v", summary(got), err)
	}
	if got[0].App != "app" || got[0].Region != "tst" || got[0].Stream != "stdout" || got[0].Timestamp != "2026-12-07T09:00:03.000000000Z" {
		t.Fatalf("line: %+v", got[0])
	}
	if got, err := Tail(all, 100); err != nil || summary(got) != "a:a1 b:b2 a:a3 b:b4 a:a5 b:b6" {
		t.Fatalf("Tail 100: %q, %v", summary(got), err)
	}

	bad := src("bad")
	if err := os.Mkdir(bad.Path, 0o755); err != nil { // a directory: it opens, but does not read
		t.Fatal(err)
	}
	got, err = Tail(append(all, bad), 2)
	if err == nil || !strings.Contains(err.Error(), "machine bad") || summary(got) != "a:a5 b:b6" {
		t.Fatalf("Tail with an unreadable log: %q, %v; want the others and an error naming machine bad", summary(got), err)
	}
}

// TestFollowFindsNewMachines: Follow gives the past lines, then new lines
// of known machines and the whole log of a machine that appears.
func TestFollowFindsNewMachines(t *testing.T) {
	dir := t.TempDir()
	src := func(id string) Source {
		return Source{App: "app", MachineID: id, Path: filepath.Join(dir, id+".log")}
	}
	writeFile(t, src("a").Path, stamped(1, "a1")+stamped(2, "a2"))
	var mu sync.Mutex // guards sources, got
	sources := []Source{src("a")}
	var got []types.LogLine
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, FollowOptions{
			Sources: func() ([]Source, error) {
				mu.Lock()
				defer mu.Unlock()
				return append([]Source(nil), sources...), nil
			},
			Lines: 1, Poll: 5 * time.Millisecond,
		}, func(lines []types.LogLine) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, lines...)
			return nil
		})
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			s := summary(got)
			mu.Unlock()
			if s == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("followed %q, want %q", s, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("a:a2")
	appendFile(t, src("a").Path, stamped(3, "a3"))
	waitFor("a:a2 a:a3")
	writeFile(t, src("b").Path, stamped(4, "b4")+stamped(5, "b5"))
	mu.Lock()
	sources = append(sources, src("b"))
	mu.Unlock()
	waitFor("a:a2 a:a3 b:b4 b:b5")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow after its context ended: %v", err)
	}
}

// TestFollowStopsWhenEmitFails: the reader gone, Follow returns its error.
func TestFollowStopsWhenEmitFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	writeFile(t, path, stamped(1, "a1"))
	gone := fmt.Errorf("client gone")
	err := Follow(context.Background(), FollowOptions{
		Sources: func() ([]Source, error) { return []Source{{MachineID: "a", Path: path}}, nil },
		Lines:   1, Poll: time.Millisecond,
	}, func([]types.LogLine) error { return gone })
	if err != gone {
		t.Fatalf("Follow: %v, want %v", err, gone)
	}
}
