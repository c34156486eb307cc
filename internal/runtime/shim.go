package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/logs/logfile"
)

// The shim is this same binary started with shimEnv set: one small process
// per task, in its own session, that creates and starts the container, is
// its subreaper (so it can collect the exit status), writes the task's
// output to the log with timestamps, and records the exit in exit.json. It
// does not depend on the daemon, so tasks keep running, logging and
// reporting their exit while the daemon is stopped or restarting.
const (
	shimEnv       = "HANGAR_SHIM_ID"
	shimConfigEnv = "HANGAR_SHIM_CONFIG"
	// shimConfigOnPipe in shimConfigEnv says that the config comes as one
	// JSON line on fd 4 (see shimProc).
	shimConfigOnPipe = "fd4"
)

type shimConfig struct {
	ID       string   `json:"id"`
	Runtime  string   `json:"runtime"`
	StateDir string   `json:"state_dir"`
	Bundle   string   `json:"bundle"`
	Dir      string   `json:"dir"`
	LogPath  string   `json:"log_path"`
	Cgroup   string   `json:"cgroup"`
	Cgroup2  bool     `json:"cgroup2"`
	RootFS   string   `json:"rootfs"`
	Upper    []string `json:"upper"`
	Token    string   `json:"token,omitempty"` // the shim's identity (shimProc)
	// Park: create the container only; the daemon starts it later
	// (through the exec fifo, see Parker) and the shim reaps it as usual.
	Park bool `json:"park,omitempty"`

	// LogMaxBytes rotates the log to LogPath+".1" at this size; 0: never.
	LogMaxBytes int64 `json:"log_max_bytes,omitempty"`
}

// init is the shim's entry point; it stays an init on purpose. The driver
// re-executes whatever binary it runs in (os.Executable): the hangar binary,
// and also the test binary of every package whose tests start tasks
// (runtime, supervisor, deploy, daemon…), which have no main or TestMain to
// call into. An init in the package that launches shims is the one hook they
// all share, and it runs before any program's flags, logging or test setup,
// so a shim never starts a daemon or a test run by mistake. It does nothing
// unless both shim variables are set, which only launchShim does.
func init() {
	if id := os.Getenv(shimEnv); id != "" && os.Getenv(shimConfigEnv) != "" {
		os.Exit(shimMain())
	}
}

// shimProc is a shim started ahead of its task: Go's start-up of this big
// binary costs milliseconds, so the driver keeps one spare shim running
// and hands it the next task, and starts a shim for a task while it
// prepares the bundle and the network. Until it gets its config (one JSON
// line on its go pipe) the shim does nothing; when the pipe closes without
// one (the driver let it go, or the daemon died) it exits.
//
// A shim's identity is its token (HANGAR_SHIM_ID in its environment, which
// shimAlive checks): the task id for a shim started for the task, a token
// of its own for a spare, which then records it in the task's shim.id.
type shimProc struct {
	token string
	pid   int
	proc  *os.Process
	ready *os.File // the shim's answer: "ok <task pid>" or "error: <reason>"
	goW   *os.File // the config; closing it without one lets the shim go
}

// launchShim starts a shim with identity token; it waits for its config.
func launchShim(token string) (*shimProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for the shim: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("shim pipe: %w", err)
	}
	defer readyW.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		return nil, fmt.Errorf("shim pipe: %w", err)
	}
	defer goR.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		readyR.Close()
		goW.Close()
		return nil, err
	}
	defer devnull.Close()
	env := []string{
		shimEnv + "=" + token, shimConfigEnv + "=" + shimConfigOnPipe,
		"PATH=" + os.Getenv("PATH"),
	}
	proc, err := os.StartProcess(self, []string{"hangar-shim", token}, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{devnull, devnull, devnull, readyW, goR},
		Sys:   &unix.SysProcAttr{Setsid: true},
	})
	if err != nil {
		readyR.Close()
		goW.Close()
		return nil, fmt.Errorf("start shim: %w", err)
	}
	return &shimProc{token: token, pid: proc.Pid, proc: proc, ready: readyR, goW: goW}, nil
}

// start hands the shim its task and returns the task's pid once it runs
// (or the reason it failed to start).
func (s *shimProc) start(ctx context.Context, cfg shimConfig) (int, error) {
	defer s.ready.Close()
	cfg.Token = s.token
	b, err := json.Marshal(cfg)
	if err == nil {
		_, err = s.goW.Write(append(b, '\n'))
	}
	s.goW.Close()
	if err != nil {
		// The shim is gone already; its answer, if any, says why.
		err = fmt.Errorf("hand the shim its task: %w", err)
	}
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(s.ready).ReadString('\n')
		done <- result{line, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		_ = s.proc.Kill()
		_, _ = s.proc.Wait()
		return 0, ctx.Err()
	}
	line := strings.TrimSpace(res.line)
	if strings.HasPrefix(line, "ok") {
		pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ok")))
		// The shim stays our child until it exits; waitPid reaps it.
		_ = s.proc.Release()
		return pid, nil
	}
	_, _ = s.proc.Wait()
	if line == "" {
		if err == nil {
			err = res.err
		}
		return 0, fmt.Errorf("shim exited without starting the task (%v)", err)
	}
	return 0, errors.New(strings.TrimPrefix(line, "error: "))
}

// alive reports whether a shim that has no task yet is still waiting for
// one (it has not exited).
func (s *shimProc) alive() bool {
	var ws unix.WaitStatus
	pid, err := unix.Wait4(s.pid, &ws, unix.WNOHANG, nil)
	return err == nil && pid == 0
}

// abort lets a shim that has no task yet go, and waits for it to exit.
func (s *shimProc) abort() {
	s.goW.Close()
	s.ready.Close()
	_, _ = s.proc.Wait()
}

// shimMain is the shim's whole life. Its stdio is /dev/null; fd 3 is the
// readiness pipe to the daemon, fd 4 brings its config (see shimProc).
func shimMain() int {
	ready := os.NewFile(3, "ready")
	var cfg shimConfig
	raw := []byte(os.Getenv(shimConfigEnv))
	if string(raw) == shimConfigOnPipe {
		goR := os.NewFile(4, "config")
		line, err := bufio.NewReader(goR).ReadBytes('\n')
		goR.Close()
		if err != nil {
			// Let go without a task (a spare no longer needed, a start
			// called off, or the daemon died): nothing to undo.
			return 0
		}
		raw = line
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		fmt.Fprintf(ready, "error: shim config: %v\n", err)
		return 2
	}
	fail := func(format string, args ...any) int {
		msg := fmt.Sprintf(format, args...)
		fmt.Fprintf(ready, "error: %s\n", strings.ReplaceAll(msg, "\n", " "))
		ready.Close()
		cleanupAfterExit(cfg)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("become subreaper: %v", err)
	}
	lw, err := openLineWriter(cfg.LogPath, cfg.LogMaxBytes)
	if err != nil {
		return fail("open log: %v", err)
	}
	defer lw.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail("pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail("pipe: %v", err)
	}
	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); lw.copyLines(outR, "stdout") }()
	go func() { defer copying.Done(); lw.copyLines(errR, "stderr") }()

	rtLog := filepath.Join(cfg.Dir, "runtime.log")
	_ = os.Remove(rtLog)
	pidFile := filepath.Join(cfg.Dir, "task.pid")
	// One `run -d` (create + start in one runtime process): the container's
	// init is then reparented to this shim, its subreaper.
	verb := []string{"run", "-d"}
	if cfg.Park {
		// Created, the container's init waits on its exec fifo.
		verb = []string{"create"}
	}
	args := append([]string{"--root", cfg.StateDir, "--log", rtLog}, verb...)
	run := exec.Command(cfg.Runtime, append(args, "--bundle", cfg.Bundle, "--pid-file", pidFile, cfg.ID)...)
	run.Stdin = nil
	run.Stdout, run.Stderr = outW, errW
	err = run.Start()
	var idErr error
	if err == nil {
		// While the runtime creates the container, the files by which the
		// daemon finds this shim; they exist before it learns the task runs.
		idErr = writeShimID(cfg)
		err = run.Wait()
	}
	if err != nil || idErr != nil {
		outW.Close()
		errW.Close()
		_ = exec.Command(cfg.Runtime, "--root", cfg.StateDir, "delete", "--force", cfg.ID).Run()
		copying.Wait()
		if err == nil {
			return fail("%v", idErr)
		}
		return fail("start container: %v: %s", err, runtimeError(rtLog))
	}
	outW.Close()
	errW.Close()
	scrubEnv(filepath.Join(cfg.Bundle, "config.json"))
	// crun also keeps a copy of the bundle's config.json in its container
	// record (runc's record holds no environment). crun exec reads it, as
	// runc exec reads the bundle: scrubbed, commands run through exec get
	// the same environment under both.
	scrubEnv(filepath.Join(cfg.StateDir, cfg.ID, "config.json"))
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fail("read task pid: %v", err)
	}
	taskPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	fmt.Fprintf(ready, "ok %d\n", taskPid)
	ready.Close()

	// Reap children until the task's init exits.
	ex := ExitResult{}
reap:
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			ex.Code, ex.Err = -1, fmt.Sprintf("wait for task: %v", err)
			break reap
		}
		if pid != taskPid {
			continue
		}
		switch {
		case ws.Exited():
			ex.Code = ws.ExitStatus()
		case ws.Signaled():
			ex.Signal = int(ws.Signal())
			ex.Code = 128 + ex.Signal
		}
		break reap
	}
	ex.ExitedAt = time.Now().UTC()
	ex.OOMKilled = oomKilled(cfg)
	// With the pid namespace's init gone, every process of the task is
	// gone too, so the output pipes reach EOF.
	done := make(chan struct{})
	go func() { copying.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	cleanupAfterExit(cfg)
	if err := writeExit(cfg.Dir, ex); err != nil {
		return 1
	}
	return 0
}

// writeShimID writes the shim's pid file and, for a spare shim, the
// identity that shimAlive looks for in its environment (first, so that the
// pid file never names a shim that cannot be recognised).
func writeShimID(cfg shimConfig) error {
	if cfg.Token != "" && cfg.Token != cfg.ID {
		if err := replaceFile(filepath.Join(cfg.Dir, "shim.id"), []byte(cfg.Token), 0o644); err != nil {
			return fmt.Errorf("write shim id: %w", err)
		}
	}
	if err := replaceFile(filepath.Join(cfg.Dir, "shim.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write shim pid: %w", err)
	}
	return nil
}

// scrubEnv removes the environment (which holds the machine's secrets) from
// an OCI config.json once the runtime has read it at create, so that values
// do not stay on disk while the machine runs. A missing file is left alone.
func scrubEnv(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var spec map[string]json.RawMessage
	if json.Unmarshal(b, &spec) != nil {
		return
	}
	var proc map[string]json.RawMessage
	if json.Unmarshal(spec["process"], &proc) != nil {
		return
	}
	delete(proc, "env")
	spec["process"], _ = json.Marshal(proc)
	if out, err := json.Marshal(spec); err == nil {
		_ = replaceFile(path, out, 0o600)
	}
}

// replaceFile replaces path with data atomically (temp file and rename:
// a reader sees the old or the new content, never a part) but without
// fsync, which would cost milliseconds on every start. The files it writes
// need no durability: the shim's pid file and the task's configs mean
// nothing after a host crash (the task is gone; its next start rewrites
// them).
func replaceFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// cleanupAfterExit removes the container record and discards the task's
// writable layer, as Fly does when a machine stops.
func cleanupAfterExit(cfg shimConfig) {
	_ = exec.Command(cfg.Runtime, "--root", cfg.StateDir, "delete", "--force", cfg.ID).Run()
	_ = unix.Unmount(cfg.RootFS, unix.MNT_DETACH)
	for _, d := range cfg.Upper {
		_ = os.RemoveAll(d)
	}
}

// oomKilled reads the kernel's OOM-kill counter of the task's memory cgroup.
func oomKilled(cfg shimConfig) bool {
	var path, key string
	if cfg.Cgroup2 {
		path, key = filepath.Join("/sys/fs/cgroup", cfg.Cgroup, "memory.events"), "oom_kill"
	} else {
		path, key = filepath.Join("/sys/fs/cgroup/memory", cfg.Cgroup, "memory.oom_control"), "oom_kill"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n > 0
		}
	}
	return false
}

// runtimeError extracts the runtime's own error message from its log.
func runtimeError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	msg := lines[len(lines)-1]
	if i := strings.Index(msg, "msg="); i >= 0 {
		msg = msg[i+4:]
	}
	return strings.Trim(msg, "\"")
}

// lineWriter writes timestamped lines from several streams into one log
// file ("<timestamp> <stream> <message>\n", the timestamp in UTC with a
// fixed nine-digit fraction so that lines sort as text) and rotates it: a
// line that would take the file past max renames it to <path>.1, after
// moving the older <path>.1 aside to the archive <path>.<first
// timestamp> (ArchiveName), and goes to a fresh <path>. Archives are kept
// until the daemon's retention removes them (by age and by the app's
// size), so rotation loses nothing. Each line is written whole, never
// split across files; lines read together are written with one write (a
// machine logging fast costs one write per 64 KiB, not per line). A line
// longer than maxLine is cut, with lineCutMarker in place of the rest.
//
// A write that fails (the disk full) loses its lines: they are counted,
// and the next write that succeeds is preceded by a line of the stream
// "hangar" saying how many were lost and why (LostLinesLine), which the
// daemon counts. The machine is never blocked or stopped for it.
type lineWriter struct {
	path string
	max  int64 // 0: never rotate

	mu      sync.Mutex // guards the fields below
	f       *os.File
	size    int64
	buf     []byte
	lost    int64 // lines not written since the last write that succeeded
	lostErr error
	partial bool // a failed write left part of a line at the end of f
	// lostFile keeps lostTotal, the lines ever lost by this machine's
	// log, for the daemon's metric (logfile.LostPath); nil if it could not
	// be made.
	lostFile  *os.File
	lostTotal int64
}

const (
	// maxLine bounds one line's message, so a runaway line cannot
	// exhaust memory or a log file.
	maxLine = 64 << 10
	// lineCutMarker ends a line cut at maxLine.
	lineCutMarker = " [hangar: line cut at 64 KiB]"
	// logTimeFormat is RFC 3339 with a fixed-width fraction.
	logTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"
	// maxBatch bounds the bytes of lines written with one write.
	maxBatch = 256 << 10
)

// openLineWriter opens (appending) or creates the log at path.
func openLineWriter(path string, max int64) (*lineWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &lineWriter{path: path, max: max, f: f, size: fi.Size()}
	w.openLostCount()
	return w, nil
}

// openLostCount opens the count of lost lines, made now with its full
// size so that updating it in place needs no disk space.
func (w *lineWriter) openLostCount() {
	lf, err := os.OpenFile(logfile.LostPath(w.path), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return
	}
	b := make([]byte, 64)
	n, _ := lf.ReadAt(b, 0)
	w.lostTotal, _ = strconv.ParseInt(strings.TrimSpace(string(b[:n])), 10, 64)
	if _, err := lf.WriteAt(lostCount(w.lostTotal), 0); err != nil {
		lf.Close()
		return
	}
	w.lostFile = lf
}

// lostCount is the fixed-width content of the count of lost lines.
func lostCount(n int64) []byte { return fmt.Appendf(nil, "%20d\n", n) }

// Close closes the current log file, after a last try to say how many
// lines were lost.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost > 0 {
		w.writeLocked(nil)
	}
	if w.lostFile != nil {
		w.lostFile.Close()
	}
	return w.f.Close()
}

// logMsg is one line read from a stream, before it is timestamped.
type logMsg struct {
	msg []byte
	cut bool
}

// copyLines writes each line read from r as a line of stream, until r
// ends; a last line without a newline is written too. Lines already read
// are written together once no whole line is left buffered.
func (w *lineWriter) copyLines(r io.ReadCloser, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	long := make([]byte, 0, maxLine)
	var batch []logMsg
	var arena []byte // the batch's bytes: ReadSlice's are overwritten
	add := func(msg []byte, cut bool) {
		off := len(arena)
		arena = append(arena, msg...)
		batch = append(batch, logMsg{arena[off:len(arena):len(arena)], cut})
		if len(arena) >= maxBatch || !wholeLineBuffered(br) {
			w.write(stream, batch)
			batch, arena = batch[:0], arena[:0]
		}
	}
	defer func() {
		if len(batch) > 0 {
			w.write(stream, batch)
		}
	}()
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			add(bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'}), false)
		case errors.Is(err, bufio.ErrBufferFull):
			// Peek may overwrite line's bytes: keep a copy.
			long = append(long[:0], line...)
			// A line of exactly maxLine bytes is written whole.
			if b, _ := br.Peek(2); len(b) > 0 && b[0] == '\n' {
				_, _ = br.Discard(1)
				add(bytes.TrimSuffix(long, []byte{'\r'}), false)
				continue
			} else if len(b) == 2 && b[0] == '\r' && b[1] == '\n' {
				_, _ = br.Discard(2)
				add(long, false)
				continue
			}
			add(trimPartialRune(long), true)
			for errors.Is(err, bufio.ErrBufferFull) { // drop the rest of the line
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return
			}
		default: // the end of r, after a last unterminated line if any
			if len(line) > 0 {
				add(line, false)
			}
			return
		}
	}
}

// wholeLineBuffered reports whether br holds a whole line that reading
// would return without blocking.
func wholeLineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// write appends lines of one stream, rotating before a line that would
// take the file past max.
func (w *lineWriter) write(stream string, lines []logMsg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := w.buf[:0]
	for _, l := range lines {
		start := len(buf)
		// The time is taken under the lock, so a file's lines are in order.
		buf = time.Now().UTC().AppendFormat(buf, logTimeFormat)
		buf = append(buf, ' ')
		buf = append(buf, stream...)
		buf = append(buf, ' ')
		buf = append(buf, l.msg...)
		if l.cut {
			buf = append(buf, lineCutMarker...)
		}
		buf = append(buf, '\n')
		if before := w.size + int64(start); w.max > 0 && before > 0 && before+int64(len(buf)-start) > w.max {
			w.writeLocked(buf[:start]) // the lines before this one fit
			w.rotateLocked()
			buf = buf[:copy(buf, buf[start:])]
		}
	}
	w.writeLocked(buf)
	w.buf = buf[:0]
}

// writeLocked writes whole lines, first the count of lines lost before
// them if any; lines it cannot write are counted as lost.
func (w *lineWriter) writeLocked(b []byte) {
	if w.lost > 0 {
		var marker []byte
		if w.partial {
			marker = append(marker, '\n') // end the piece a failed write left
		}
		marker = time.Now().UTC().AppendFormat(marker, logTimeFormat)
		marker = append(marker, " "+logfile.LostStream+" "...)
		marker = append(marker, logfile.LostLinesMessage(w.lost, w.lostErr)...)
		marker = append(marker, '\n')
		if !w.writeBytesLocked(marker, false) {
			k := int64(bytes.Count(b, []byte{'\n'}))
			w.lost += k
			w.addLostLocked(k)
			return
		}
		w.lost, w.lostErr = 0, nil
	}
	if len(b) > 0 {
		w.writeBytesLocked(b, true)
	}
}

// writeBytesLocked writes b, counting the lines it could not write when
// they are the machine's.
func (w *lineWriter) writeBytesLocked(b []byte, machine bool) bool {
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err == nil {
		return true
	}
	if n > 0 {
		w.partial = b[n-1] != '\n'
	}
	w.lostErr = err
	if machine {
		k := int64(bytes.Count(b[n:], []byte{'\n'}))
		w.lost += k
		w.addLostLocked(k)
	}
	return false
}

// addLostLocked adds to the machine's count of lost lines.
func (w *lineWriter) addLostLocked(k int64) {
	w.lostTotal += k
	if w.lostFile != nil {
		_, _ = w.lostFile.WriteAt(lostCount(w.lostTotal), 0)
	}
}

// rotateLocked moves the older rotated file to its archive, the current
// file to <path>.1, and opens a fresh one. If a step fails the line goes
// to the current file (over the cap) rather than nowhere, and the next
// line tries again.
func (w *lineWriter) rotateLocked() {
	if err := archiveRotated(w.path); err != nil {
		return
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return // the open file, now <path>.1, takes the line
	}
	w.f.Close()
	w.f, w.size, w.partial = f, 0, false
}

// archiveRotated renames <path>.1, if any, to its archive name: the
// path followed by the time of its first line (the time now if that
// cannot be read).
func archiveRotated(path string) error {
	f, err := os.Open(path + ".1")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	head := make([]byte, len(logTimeFormat))
	n, _ := io.ReadFull(f, head)
	f.Close()
	ts, _, _ := strings.Cut(string(head[:n]), " ")
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || len(ts) != len(logfile.TimeFormat) {
		ts = time.Now().UTC().Format(logTimeFormat)
	}
	return os.Rename(path+".1", logfile.ArchivePath(path, ts))
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b (a
// line cut in the middle of a character).
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}
