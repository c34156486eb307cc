package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// busyboxRootFS is a rootfs holding only a static busybox, with a shell
// and the tools the tests run linked to it; it skips without busybox.
func busyboxRootFS(t *testing.T) string {
	t.Helper()
	src := ""
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			src = p
			break
		}
	}
	if src == "" {
		t.Skip("busybox not installed: apt-get install -y busybox-static")
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "proc", "dev", "sys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"sh", "env", "stty", "sleep", "cat", "id", "ps"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", tool)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Exec runs commands with the task's environment, which the bundle no
// longer holds (it is scrubbed of secrets once the task runs).
func TestExecEnvironment(t *testing.T) { forEachRuntime(t, testExecEnvironment) }

func testExecEnvironment(t *testing.T, d *OCI, _ string) {
	rootfs := busyboxRootFS(t)
	ctx := context.Background()
	id := "tenv" + randSuffix()
	cleanupTask(t, d, id)
	env := []string{"PATH=/usr/bin:/bin", "FLY_APP_NAME=envapp", "SECRET_TOKEN=s3cret"}
	if _, err := d.Start(ctx, Spec{ID: id, RootFS: rootfs, Args: []string{"/bin/sleep", "1000"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	out, errb, code, err := d.Exec(ctx, id, []string{"sh", "-c", "env; echo oops >&2; exit 5"}, nil, 10*time.Second)
	if err != nil || code != 5 {
		t.Fatalf("exec = code %d, %v; stderr %q", code, err, errb)
	}
	for _, kv := range env {
		if !strings.Contains(string(out), kv+"\n") {
			t.Errorf("exec env lacks %s:\n%s", kv, out)
		}
	}
	if string(errb) != "oops\n" {
		t.Errorf("stderr = %q, want oops", errb)
	}
	if _, _, _, err := d.Exec(ctx, id, []string{"bash"}, nil, 10*time.Second); !errors.Is(err, ErrNoExecutable) {
		t.Errorf("exec of a missing command: %v, want ErrNoExecutable", err)
	}
}

// A command on a terminal: its size, resize, Ctrl-C, exit code.
func TestExecTTY(t *testing.T) { forEachRuntime(t, testExecTTY) }

func testExecTTY(t *testing.T, d *OCI, _ string) {
	rootfs := busyboxRootFS(t)
	ctx := context.Background()
	id := "ttty" + randSuffix()
	cleanupTask(t, d, id)
	if _, err := d.Start(ctx, Spec{ID: id, RootFS: rootfs, Args: []string{"/bin/sleep", "1000"}, Env: []string{"PATH=/bin"}}); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	out := &syncBuffer{}
	s, err := d.StartExec(ctx, id, ExecProcess{Args: []string{"/bin/sh"}, TTY: true, Cols: 100, Rows: 30, Stdin: inR, Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the terminal's output:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	io.WriteString(inW, "stty size\n")
	waitFor("30 100")
	if err := s.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	io.WriteString(inW, "stty size\n")
	waitFor("40 120")
	// The echo's output, unlike the typed line, has no quotes in it.
	io.WriteString(inW, "sleep 77\n")
	// Ctrl-C once the sleep runs: sent earlier, it reaches the shell
	// between commands instead.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, _, _, err := d.Exec(ctx, id, []string{"/bin/ps"}, nil, 5*time.Second)
		if err == nil && strings.Contains(string(ps), "sleep 77") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sleep did not start: %v\n%s", err, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	io.WriteString(inW, "\x03")
	io.WriteString(inW, "echo after-$?\n")
	waitFor("after-130")
	io.WriteString(inW, "exit 3\n")
	code, err := s.Wait()
	if err != nil || code != 3 {
		t.Fatalf("exit = %d, %v; want 3", code, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
