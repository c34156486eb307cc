package daemon

// Reload hands a running daemon's listening sockets to a new process of
// the binary now installed at the same path (so replacing the binary and
// sending SIGHUP upgrades it), without closing them: connections that
// arrive while the new process starts wait in the kernel's accept queue
// instead of being refused, and requests in flight on the old process
// finish there. The old process releases the state (the store, DNS,
// supervisor) first, so that the new one can open it, then drains its
// proxied requests and exits. Machines are not touched: the new daemon
// re-adopts them as after any restart.

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/fsutil"
)

const (
	// listenFDsEnv names the inherited listeners: "api:3,http:4".
	listenFDsEnv = "HANGAR_LISTEN_FDS"
	// readyFDEnv is the pipe on which the new process says it took the
	// listeners, before it waits for the state.
	readyFDEnv = "HANGAR_HANDOVER_FD"
	// PIDFile, in the data dir, holds the serving daemon's pid (send it
	// SIGHUP to reload).
	PIDFile = "hangar.pid"
	// handoverWait bounds how long the old process waits for the new one
	// to take the listeners before it gives up and keeps serving.
	handoverWait = 30 * time.Second
)

// inheritedListeners returns the listeners a previous daemon handed over,
// by name, and tells it that they were taken. It returns nil when this
// process was started normally.
func inheritedListeners() (map[string]net.Listener, error) {
	spec := os.Getenv(listenFDsEnv)
	if spec == "" {
		return nil, nil
	}
	_ = os.Unsetenv(listenFDsEnv)
	out := map[string]net.Listener{}
	fail := func(err error) (map[string]net.Listener, error) {
		for _, ln := range out {
			ln.Close()
		}
		return nil, err
	}
	// Check the whole spec before touching any descriptor.
	type inherited struct {
		name string
		fd   int
	}
	var fds []inherited
	for _, part := range strings.Split(spec, ",") {
		name, fdText, ok := strings.Cut(part, ":")
		fd, err := strconv.Atoi(fdText)
		if !ok || err != nil || fd < 3 || name == "" {
			return nil, fmt.Errorf("%s=%q: want name:fd pairs such as api:3,http:4 (set by a reloading daemon, not by hand)", listenFDsEnv, spec)
		}
		fds = append(fds, inherited{name, fd})
	}
	for _, in := range fds {
		f := os.NewFile(uintptr(in.fd), in.name)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("inherited %s listener (fd %d): %w", in.name, in.fd, err))
		}
		out[in.name] = ln
	}
	if v := os.Getenv(readyFDEnv); v != "" {
		_ = os.Unsetenv(readyFDEnv)
		if fd, err := strconv.Atoi(v); err == nil && fd >= 3 {
			f := os.NewFile(uintptr(fd), "handover")
			_, _ = f.Write([]byte("ready\n"))
			f.Close()
		}
	}
	return out, nil
}

// handOver starts the new daemon with dups of lns and waits until it has
// taken them. On error nothing changed: this process keeps serving.
func handOver(lns map[string]net.Listener) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find this daemon's binary: %w", err)
	}
	names := make([]string, 0, len(lns))
	for name, ln := range lns {
		if ln != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var spec []string
	for _, name := range names {
		tl, ok := lns[name].(*net.TCPListener)
		if !ok {
			return 0, fmt.Errorf("%s listener is a %T, not TCP; it cannot be handed over", name, lns[name])
		}
		f, err := tl.File()
		if err != nil {
			return 0, fmt.Errorf("dup the %s listener: %w", name, err)
		}
		files = append(files, f)
		spec = append(spec, fmt.Sprintf("%s:%d", name, 3+len(files)-1))
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("handover pipe: %w", err)
	}
	defer rd.Close()
	files = append(files, wr)
	readyFD := 3 + len(files) - 1

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, listenFDsEnv+"=") && !strings.HasPrefix(kv, readyFDEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, listenFDsEnv+"="+strings.Join(spec, ","), fmt.Sprintf("%s=%d", readyFDEnv, readyFD))
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", exe, err)
	}
	// Only the child holds the write end now: EOF means it died.
	wr.Close()
	files = files[:len(files)-1]
	got := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(rd).ReadString('\n')
		if err == nil && line == "ready\n" {
			got <- nil
			return
		}
		got <- fmt.Errorf("the new daemon exited before taking the listeners (its log is above)")
	}()
	// Reap it if it dies while we still run; after we exit, init does.
	go func() { _ = cmd.Wait() }()
	select {
	case err := <-got:
		if err != nil {
			return 0, err
		}
	case <-time.After(handoverWait):
		_ = cmd.Process.Kill()
		return 0, fmt.Errorf("the new daemon did not take the listeners within %s; killed it", handoverWait)
	}
	return cmd.Process.Pid, nil
}

// writeConvenienceFile writes one of the data dir's small files (the
// listen addresses, the pid) atomically. When it cannot (a full disk) the
// daemon serves all the same: it removes a stale copy, which would name an
// old daemon, and says what the CLI should use instead.
func writeConvenienceFile(log *slog.Logger, dataDir, name, content string) {
	p := filepath.Join(dataDir, name)
	if err := fsutil.WriteFileAtomic(p, []byte(content+"\n"), 0o644); err != nil {
		_ = os.Remove(p)
		log.Error("cannot write "+name+"; serving without it (set HANGAR_API_URL for the CLI; reload with kill -HUP on the daemon's pid)",
			"path", p, "err", err)
	}
}

// removePIDFile removes the pid file if it still names this process (after
// a reload it names the new one).
func removePIDFile(dataDir string) {
	p := filepath.Join(dataDir, PIDFile)
	b, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(p)
	}
}
