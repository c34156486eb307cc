package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

const crashChildEnv = "HANGAR_STORE_CRASH_CHILD"

// crashHistory is small so that the children also exercise compaction.
const crashHistory = 64

// TestCrashChild is the child half of TestCrashSafety; it does nothing when
// run normally. As a child it writes in a loop and prints one line per
// committed write, after the call returned:
//
//	put <rev> <key> <value>     (value has no spaces)
//	del <rev> <key>
//	txn <rev> <key>=<value> <key>=<value> ...
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("only runs as a child of TestCrashSafety")
	}
	s, err := store.OpenOptions(path, store.Options{HistoryLimit: crashHistory, LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	ctx := context.Background()
	rev, _ := s.Revision(ctx)
	fmt.Printf("ready %d\n", rev)
	pid := os.Getpid()
	value := func(i int) string {
		// Varying sizes, some larger than a page, to exercise splits and
		// overflow pages.
		n := rand.IntN(6000)
		return fmt.Sprintf("%d.%d.%s", pid, i, strings.Repeat("x", n))
	}
	for i := 0; ; i++ {
		key := fmt.Sprintf("crash/k%02d", rand.IntN(40))
		switch i % 4 {
		case 0, 1:
			v := value(i)
			r, err := s.Put(ctx, key, []byte(v), store.AnyRevision)
			if err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(2)
			}
			fmt.Printf("put %d %s %s\n", r, key, v)
		case 2:
			kv, err := s.Get(ctx, key)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			r, err := s.Delete(ctx, key, kv.ModRevision)
			if err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(2)
			}
			fmt.Printf("del %d %s\n", r, key)
		case 3:
			var ops []store.Op
			var line []string
			for j := 0; j < 1+rand.IntN(5); j++ {
				k := fmt.Sprintf("crash/t%d", j)
				v := value(i)
				ops = append(ops, store.Op{Key: k, Value: []byte(v), Expect: store.AnyRevision})
				line = append(line, k+"="+v)
			}
			r, err := s.Txn(ctx, ops)
			if err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(2)
			}
			fmt.Printf("txn %d %s\n", r, strings.Join(line, " "))
		}
	}
}

type crashModel struct {
	rev  int64
	keys map[string]store.KV // expected state
}

func (m *crashModel) apply(t *testing.T, line string) {
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("bad child line %.200q", line)
	}
	rev, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("bad child line %.200q", line)
	}
	if rev != m.rev+1 {
		t.Fatalf("child reported revision %d after %d", rev, m.rev)
	}
	m.rev = rev
	switch f[0] {
	case "put":
		m.setPut(f[2], f[3], rev)
	case "del":
		delete(m.keys, f[2])
	case "txn":
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			m.setPut(k, v, rev)
		}
	default:
		t.Fatalf("bad child line %.200q", line)
	}
}

func (m *crashModel) setPut(k, v string, rev int64) {
	create := rev
	if old, ok := m.keys[k]; ok {
		create = old.CreateRevision
	}
	m.keys[k] = store.KV{Key: k, Value: []byte(v), CreateRevision: create, ModRevision: rev}
}

// applyEvents applies the events of a revision the child committed but was
// killed before reporting.
func (m *crashModel) applyEvents(evs []store.Event) {
	for _, ev := range evs {
		m.rev = ev.Revision
		if ev.Type == store.EventDelete {
			delete(m.keys, ev.KV.Key)
		} else {
			m.keys[ev.KV.Key] = ev.KV
		}
	}
}

// TestCrashSafety re-runs the test binary as a child that writes in a loop,
// SIGKILLs it at a random moment, and reopens the file: it must always open,
// pass Check, and hold exactly every write the child reported as committed
// (plus at most the one write that committed before the child could report
// it, which must then be complete and visible in the watch history).
func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child")
	}
	kills := 20
	if testing.Short() {
		kills = 5
	}
	path := filepath.Join(t.TempDir(), "state.db")
	m := &crashModel{keys: map[string]store.KV{}}
	totalWrites := 0
	for round := 0; round < kills; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			// Only complete lines count: a line the kill cut short has no
			// newline (a line longer than PIPE_BUF is not written atomically).
			r := bufio.NewReaderSize(out, 1<<16)
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					break
				}
				lines <- strings.TrimSuffix(l, "\n")
			}
			close(lines)
		}()
		// Wait for the child to have opened the store.
		ready := false
		timeout := time.After(30 * time.Second)
		for !ready {
			select {
			case l, ok := <-lines:
				if !ok || strings.HasPrefix(l, "error ") {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("round %d: child did not start: %q", round, l)
				}
				if !strings.HasPrefix(l, "ready ") {
					continue // e.g. test framework output
				}
				ready = true
				if r, _ := strconv.ParseInt(strings.TrimPrefix(l, "ready "), 10, 64); r != m.rev {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("round %d: child opened at revision %d, want %d", round, r, m.rev)
				}
			case <-timeout:
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: child did not start", round)
			}
		}
		time.Sleep(time.Duration(1+rand.IntN(25)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		werr := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not by SIGKILL", round, werr)
		}
		n := 0
		for l := range lines {
			switch strings.SplitN(l, " ", 2)[0] {
			case "put", "del", "txn":
				m.apply(t, l)
				n++
			case "error":
				t.Fatalf("round %d: child: %.200s", round, l)
			}
		}
		totalWrites += n

		s, err := store.OpenOptions(path, store.Options{HistoryLimit: crashHistory, LockTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		verifyCrashState(t, round, s, m)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills, %d reported writes, final revision %d", kills, totalWrites, m.rev)
}

func verifyCrashState(t *testing.T, round int, s *store.Local, m *crashModel) {
	t.Helper()
	ctx := ctxT(t)
	if err := s.Check(); err != nil {
		t.Fatalf("round %d: integrity check: %v", round, err)
	}
	rev, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case rev == m.rev:
	case rev == m.rev+1:
		// One write committed but not reported: take it from history.
		ch, err := s.Watch(ctx, "", m.rev)
		if err != nil {
			t.Fatalf("round %d: watch unreported revision: %v", round, err)
		}
		var evs []store.Event
	collect:
		for {
			select {
			case ev := <-ch:
				if ev.Revision != rev {
					t.Fatalf("round %d: event of revision %d (%s %s), store revision %d", round, ev.Revision, ev.Type, ev.KV.Key, rev)
				}
				evs = append(evs, ev)
			case <-time.After(100 * time.Millisecond):
				break collect
			}
		}
		if len(evs) == 0 {
			t.Fatalf("round %d: no history for revision %d", round, rev)
		}
		m.applyEvents(evs)
	default:
		t.Fatalf("round %d: store revision %d, child reported %d: committed writes lost or phantom writes", round, rev, m.rev)
	}
	kvs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != len(m.keys) {
		t.Fatalf("round %d: %d keys, want %d", round, len(kvs), len(m.keys))
	}
	for _, kv := range kvs {
		want, ok := m.keys[kv.Key]
		if !ok {
			t.Fatalf("round %d: unexpected key %q", round, kv.Key)
		}
		if string(kv.Value) != string(want.Value) || kv.ModRevision != want.ModRevision || kv.CreateRevision != want.CreateRevision {
			t.Fatalf("round %d: key %q = (create %d, mod %d, %d bytes), want (create %d, mod %d, %d bytes)",
				round, kv.Key, kv.CreateRevision, kv.ModRevision, len(kv.Value), want.CreateRevision, want.ModRevision, len(want.Value))
		}
	}
}
