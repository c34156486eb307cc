package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/types"
)

// ExecProcess is a command to run in a running task (StartExec).
//
// The command gets the task's environment (the image's env, the config's
// env, the FLY_* variables and the secrets the task booted with), then Env
// on top; its working directory, capabilities and, unless User is set, user
// are the task's.
type ExecProcess struct {
	Args []string
	Env  []string // KEY=VALUE added to (or replacing in) the task's environment
	// User, when set, is the uid and gid to run as instead of the task's.
	User *ExecUser
	// TTY runs the command on a new pseudo-terminal of the task, of size
	// Cols×Rows (when set); Stdin and Stdout are its master side and Stderr
	// is unused. Without it, Stdin, Stdout and Stderr are the command's own.
	TTY        bool
	Cols, Rows uint16
	Stdin      io.Reader // nil: the command reads EOF
	Stdout     io.Writer // nil: discarded
	Stderr     io.Writer // nil: discarded
}

// ExecUser is a uid and gid in the task.
type ExecUser struct{ UID, GID uint32 }

// ExecSession is a command started by StartExec.
type ExecSession interface {
	// Resize sets the size of the command's terminal (TTY only).
	Resize(cols, rows uint16) error
	// Wait waits for the command to exit and its output to be copied, and
	// returns its exit code (128+signal when a signal killed it).
	Wait() (int, error)
	// Kill kills the command and its process group inside the task (a
	// command outlives its runtime's exec client when that is killed).
	Kill()
}

// ExecStarter is implemented by drivers that run commands in a task with
// streamed input and output, optionally on a terminal.
type ExecStarter interface {
	StartExec(ctx context.Context, id string, p ExecProcess) (ExecSession, error)
}

// ErrNotRunning is returned (wrapped) by StartExec for a task that has no
// running process.
var ErrNotRunning = types.NewError(types.ErrConflict, "task is not running")

// taskEnv is the environment the task booted with: its init's. The bundle
// keeps no environment (scrubEnv: it holds the secrets), so this is the
// one place that still has it, in memory. The init is tini (which never
// rewrites its environment) or, on a host without tini, the app.
func (d *OCI) taskEnv(id string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(d.dir(id), "task.pid"))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotRunning)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("task %s: bad pid file: %w", id, ErrNotRunning)
	}
	// Until the runtime's init has exec'd the task's process, its
	// environment is not the task's: crun's init has the shim's
	// (HANGAR_SHIM_ID, the host's PATH), runc's `runc init` its own
	// _LIBCONTAINER_* variables and nothing else. Wait for the execve
	// (crun and runc may return before it).
	var raw []byte
	for deadline := time.Now().Add(5 * time.Second); ; {
		raw, err = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			return nil, fmt.Errorf("task %s: read the environment of its init: %w", id, ErrNotRunning)
		}
		if !bytes.Contains(raw, []byte(shimEnv+"=")) && !bytes.Contains(raw, []byte("_LIBCONTAINER_")) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("task %s: its process has not started after 5s; try again: %w", id, ErrNotRunning)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var env []string
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if len(kv) > 0 && bytes.IndexByte(kv, '=') > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// execSpec is the process spec of a command run in task id: the task's own
// process (user, cwd, capabilities, from the bundle) with the command's
// args, the task's environment and the terminal settings.
func (d *OCI) execSpec(id string, p ExecProcess) (*specs.Process, error) {
	b, err := os.ReadFile(filepath.Join(d.dir(id), "bundle", "config.json"))
	if err != nil {
		return nil, fmt.Errorf("task %s: read its bundle: %w", id, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("task %s: bad bundle config: %v", id, err)
	}
	env, err := d.taskEnv(id)
	if err != nil {
		return nil, err
	}
	proc := *spec.Process
	proc.Args = p.Args
	proc.Env = mergeEnvList(env, p.Env)
	proc.Terminal = p.TTY
	proc.ConsoleSize = nil
	if p.TTY && p.Cols > 0 && p.Rows > 0 {
		proc.ConsoleSize = &specs.Box{Width: uint(p.Cols), Height: uint(p.Rows)}
	}
	if p.User != nil {
		proc.User = specs.User{UID: p.User.UID, GID: p.User.GID}
	}
	return &proc, nil
}

// mergeEnvList returns env with extra's entries replacing those of the
// same name.
func mergeEnvList(env, extra []string) []string {
	if len(extra) == 0 {
		return env
	}
	set := map[string]bool{}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	out := make([]string, 0, len(env)+len(extra))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// ErrNoExecutable is returned (wrapped) by StartExec when the command is
// not in the task's filesystem.
var ErrNoExecutable = types.NewError(types.ErrInvalid, "executable not found")

// ociExec is a command running in a task through `<runtime> exec`.
type ociExec struct {
	cmd     *exec.Cmd
	pidFile string
	tmp     string        // the session's files (pid file, console socket)
	pty     *os.File      // the terminal's master side (TTY)
	exited  chan struct{} // closed when cmd is waited for
	copying sync.WaitGroup
	errb    bytes.Buffer // the runtime's own stderr (TTY, or no Stderr given)
}

// StartExec implements ExecStarter. The process spec reaches the runtime
// through a pipe (--process /dev/fd/3), never a file: it holds the
// machine's secrets. With a terminal, the runtime hands the master side of
// the pty it made in the task over a console socket.
func (d *OCI) StartExec(ctx context.Context, id string, p ExecProcess) (ExecSession, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if len(p.Args) == 0 {
		return nil, errors.New("exec: a command is required")
	}
	proc, err := d.execSpec(id, p)
	if err != nil {
		return nil, err
	}
	if !execPathExists(filepath.Join(d.dir(id), "bundle", "rootfs"), proc.Cwd, proc.Env, p.Args[0]) {
		return nil, fmt.Errorf("task %s: %q: %w in the machine's filesystem (PATH %s)", id, p.Args[0], ErrNoExecutable, envValue(proc.Env, "PATH"))
	}
	procJSON, err := json.Marshal(proc)
	if err != nil {
		return nil, fmt.Errorf("task %s: exec: %w", id, err)
	}
	tmp, err := os.MkdirTemp("", "hangar-exec-")
	if err != nil {
		return nil, fmt.Errorf("task %s: exec: %w", id, err)
	}
	s := &ociExec{pidFile: filepath.Join(tmp, "pid"), tmp: tmp, exited: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("task %s: exec: %w", id, err)
	}
	args := []string{"exec", "--process", "/dev/fd/3", "--pid-file", s.pidFile}
	// crun hands the pty it made over a console socket; runc takes one
	// only when it detaches (and then cannot report the exit code), so it
	// gets a pty of ours as its terminal and relays it to the task's
	// (resizes included: it follows its terminal's SIGWINCH).
	relay := p.TTY && filepath.Base(d.taskRuntime(id)) == "runc"
	var console *net.UnixListener
	var slave *os.File
	if relay {
		s.pty, slave, err = pty.Open()
		if err != nil {
			pr.Close()
			pw.Close()
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("task %s: exec: open a terminal: %w", id, err)
		}
		defer slave.Close()
		if p.Cols > 0 && p.Rows > 0 {
			_ = s.Resize(p.Cols, p.Rows)
		}
		args = append(args, "--tty")
	} else if p.TTY {
		sock := filepath.Join(tmp, "console.sock")
		console, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			pr.Close()
			pw.Close()
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("task %s: exec: console socket: %w", id, err)
		}
		defer console.Close()
		args = append(args, "--tty", "--console-socket", sock)
	}
	args = append(args, id)
	// Not bound to ctx: the session ends by Kill, or when the command does.
	s.cmd = d.runtimeCmd(context.WithoutCancel(ctx), id, args...)
	s.cmd.ExtraFiles = []*os.File{pr}
	switch {
	case relay:
		s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = slave, slave, slave
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	case p.TTY:
		s.cmd.Stderr = &s.errb
	default:
		s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = p.Stdin, p.Stdout, p.Stderr
		if p.Stderr == nil {
			s.cmd.Stderr = &s.errb
		}
		// Something the command left running may hold the output pipes:
		// Wait must not wait for it.
		s.cmd.WaitDelay = 500 * time.Millisecond
	}
	if err := s.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		if s.pty != nil {
			s.pty.Close()
		}
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("task %s: exec: %w", id, err)
	}
	pr.Close()
	go func() {
		_, _ = pw.Write(procJSON)
		pw.Close()
	}()
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	switch {
	case !p.TTY:
		return s, nil
	case relay:
		slave.Close()
		s.copyTerminal(p)
		return s, nil
	}
	// The runtime connects to the console socket once it made the pty; if
	// it fails first, it exits without connecting.
	type result struct {
		f   *os.File
		err error
	}
	got := make(chan result, 1)
	go func() {
		f, err := recvConsole(console)
		got <- result{f, err}
	}()
	var r result
	select {
	case r = <-got:
	case <-s.exited:
		console.Close()
		if r = <-got; r.err == nil {
			r.f.Close()
		}
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("task %s: exec: %s", id, runtimeFailure(s.errb.String(), s.cmd.ProcessState))
	case <-ctx.Done():
		s.Kill()
		<-s.exited
		os.RemoveAll(tmp)
		return nil, ctx.Err()
	}
	if r.err != nil {
		s.Kill()
		<-s.exited
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("task %s: exec: receive the terminal: %w", id, r.err)
	}
	s.pty = r.f
	s.copyTerminal(p)
	return s, nil
}

// copyTerminal copies p's input to the terminal and its output to p's.
func (s *ociExec) copyTerminal(p ExecProcess) {
	if p.Stdin != nil {
		go func() { _, _ = io.Copy(s.pty, p.Stdin) }()
	}
	out := p.Stdout
	if out == nil {
		out = io.Discard
	}
	s.copying.Add(1)
	go func() {
		defer s.copying.Done()
		// The read fails (EIO) once the last process holding the
		// terminal exits: the end of the output.
		_, _ = io.Copy(out, s.pty)
	}()
}

// recvConsole accepts the runtime's connection on the console socket and
// receives the terminal's master side.
func recvConsole(l *net.UnixListener) (*os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err == nil && len(fds) > 0 {
			for _, fd := range fds[1:] {
				unix.Close(fd)
			}
			return os.NewFile(uintptr(fds[0]), "pty-master"), nil
		}
	}
	return nil, errors.New("no file descriptor in the console message")
}

// runtimeFailure says why the runtime's exec client failed.
func runtimeFailure(stderr string, st *os.ProcessState) string {
	msg := strings.TrimSpace(stderr)
	if msg == "" && st != nil {
		msg = st.String()
	}
	return msg
}

// Resize implements ExecSession.
func (s *ociExec) Resize(cols, rows uint16) error {
	if s.pty == nil {
		return errors.New("exec: no terminal to resize")
	}
	return unix.IoctlSetWinsize(int(s.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
}

// Wait implements ExecSession.
func (s *ociExec) Wait() (int, error) {
	<-s.exited
	if s.pty != nil {
		// Everything the command wrote is in the terminal by now; a
		// background process still holding it must not keep us.
		done := make(chan struct{})
		go func() { s.copying.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(500 * time.Millisecond):
		}
		s.pty.Close()
	}
	defer os.RemoveAll(s.tmp)
	st := s.cmd.ProcessState
	if st == nil {
		return -1, errors.New("exec: the runtime did not run")
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return st.ExitCode(), nil
}

// Kill implements ExecSession: the command's process group (a shell on a
// terminal leads its own) and the command, by the pid the runtime wrote.
func (s *ociExec) Kill() {
	if b, err := os.ReadFile(s.pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
				_ = unix.Kill(-pid, unix.SIGKILL)
			}
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
}

// execPathExists tells whether cmd resolves to a file in rootfs, as the
// runtime resolves it: a path with a slash from cwd, a name along PATH.
// Symlinks are not followed on the host: they may point anywhere inside
// the image.
func execPathExists(rootfs, cwd string, env []string, cmd string) bool {
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(rootfs, p))
		return err == nil
	}
	if strings.Contains(cmd, "/") {
		if !filepath.IsAbs(cmd) {
			cmd = filepath.Join(cwd, cmd)
		}
		return exists(cmd)
	}
	path := envValue(env, "PATH")
	if path == "" {
		path = defaultPath
	}
	for _, dir := range filepath.SplitList(path) {
		if exists(filepath.Join(dir, cmd)) {
			return true
		}
	}
	return false
}

// defaultPath is the PATH of a task whose environment sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if rest, ok := strings.CutPrefix(kv, key+"="); ok {
			v = rest
		}
	}
	return v
}
