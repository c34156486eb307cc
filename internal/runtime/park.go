package runtime

// Parking: a stopped task's next start prepared ahead (Parker). The task's
// directory then holds everything a started task has, its container
// created (its init waiting on the runtime's exec fifo), its shim waiting
// for the init as for a running task, and parkedFile: the keyed digest of
// the spec it was made for. Start with a spec of the same digest only lets
// the created init go on (openExecFifo, else `<runtime> start`); anything
// else goes the slow way, whose cleanup discards the parked task.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/fsutil"
)

// parkedFile, in a task's directory, marks it parked: the digest of its spec.
const parkedFile = "parked"

// loadParkKey reads the driver's key for spec digests, making it the first
// time.
func loadParkKey(root string) ([]byte, error) {
	p := filepath.Join(root, ".park-key")
	if b, err := os.ReadFile(p); err == nil && len(b) == 32 {
		return b, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("runtime: make the key of parked tasks: %w", err)
	}
	if err := fsutil.WriteFileAtomic(p, key, 0o600); err != nil {
		return nil, fmt.Errorf("runtime: write the key of parked tasks: %w", err)
	}
	return key, nil
}

// parkDigest is the keyed digest of what a task is made from: the OCI
// config (environment included), the image's rootfs, the log settings and
// the runtime. Two specs with one digest make the same task.
func (d *OCI) parkDigest(spec Spec, ociJSON []byte) string {
	m := hmac.New(sha256.New, d.parkKey)
	m.Write(ociJSON)
	for _, s := range []string{spec.RootFS, spec.logPath(d.dir(spec.ID)), strconv.FormatInt(spec.LogMaxBytes, 10), d.binary} {
		m.Write([]byte{0})
		m.Write([]byte(s))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// isParked reports whether task dir holds a parked task that has not
// exited (its shim alive is the caller's check).
func isParked(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, parkedFile)); err != nil {
		return false
	}
	_, err := readExit(dir)
	return err != nil
}

// startParked starts the task parked for spec, if there is one made from
// the same spec; false (and nothing changed) otherwise.
func (d *OCI) startParked(ctx context.Context, spec Spec) (Status, bool) {
	if d.parkKey == nil {
		return Status{}, false
	}
	t0 := time.Now()
	dir := d.dir(spec.ID)
	have, err := os.ReadFile(filepath.Join(dir, parkedFile))
	if err != nil {
		return Status{}, false
	}
	b, err := json.Marshal(d.ociSpec(spec))
	if err != nil {
		return Status{}, false
	}
	if !hmac.Equal(have, []byte(d.parkDigest(spec, b))) {
		d.log.Debug("the parked task was made from another spec; starting afresh", "task", spec.ID)
		return Status{}, false
	}
	if !isParked(dir) {
		return Status{}, false
	}
	if _, alive := shimAlive(dir, spec.ID); !alive {
		return Status{}, false
	}
	if spec.NetNSReady != nil {
		if err := spec.NetNSReady(); err != nil {
			return Status{}, false
		}
	}
	tCheck := time.Now()
	how := "exec fifo"
	if err := d.openExecFifo(spec.ID); err != nil {
		d.log.Debug("could not start the parked task through its exec fifo; running the runtime's start", "task", spec.ID, "err", err)
		how = "runtime start"
		if out, err := d.runtimeCmd(ctx, spec.ID, "start", spec.ID).CombinedOutput(); err != nil {
			d.log.Warn("start of the parked task failed; starting afresh", "task", spec.ID, "err", err, "output", strings.TrimSpace(string(out)))
			return Status{}, false
		}
	}
	now := time.Now()
	_ = os.Remove(filepath.Join(dir, parkedFile))
	// Inspect's start time is the shim pid file's.
	_ = os.Chtimes(filepath.Join(dir, "shim.pid"), now, now)
	pid := 0
	if pb, err := os.ReadFile(filepath.Join(dir, "task.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(pb)))
	}
	d.mu.Lock()
	d.started[spec.ID] = now
	d.mu.Unlock()
	d.log.Debug("parked task started", "task", spec.ID, "how", how, "check", tCheck.Sub(t0), "start", now.Sub(tCheck))
	return Status{ID: spec.ID, Running: true, Pid: pid, Started: now}, true
}

// discardParked removes a parked task's container; its shim sees the init
// go, cleans up (rootfs, writable layer) and exits. Nothing parked: nil.
func (d *OCI) discardParked(ctx context.Context, id string) error {
	dir := d.dir(id)
	if !isParked(dir) {
		return nil
	}
	pid, alive := shimAlive(dir, id)
	_ = d.runtimeCmd(ctx, id, "delete", "--force", id).Run()
	if alive {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := waitPid(wctx, pid)
		cancel()
		if err != nil {
			return fmt.Errorf("task %s: the parked task's shim did not exit: %w", id, err)
		}
	}
	if err := os.Remove(filepath.Join(dir, parkedFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("task %s: %w", id, err)
	}
	return nil
}

// openExecFifo lets a created container's init go on to exec the task's
// process, as `<runtime> start` does but without starting the runtime's
// CLI (milliseconds of fork, exec and loading, more under load). Both
// runtimes hold the created init on exec.fifo in the container's state
// directory: crun's init reads a byte from it, runc's writes one; and
// both tell a created container from a started one by the fifo's
// existence, so it is removed once passed. An error leaves the fifo (and
// the container) as they were, for the runtime's own start; tasks that
// run only with the CLI (hooks) do not reach here: ociSpec sets none.
func (d *OCI) openExecFifo(id string) error {
	fifo := filepath.Join(d.stateDir(), id, "exec.fifo")
	switch filepath.Base(d.taskRuntime(id)) {
	case "crun":
		// A reader waits: open does not block, and fails (ENXIO) if none.
		fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", fifo, err)
		}
		_, err = unix.Write(fd, []byte{0})
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("write %s: %w", fifo, err)
		}
	case "runc":
		fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", fifo, err)
		}
		defer unix.Close(fd)
		// The init, blocked opening its end, now writes.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 1000)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("poll %s: %w", fifo, err)
			}
			if n == 0 {
				return fmt.Errorf("%s: the init did not write within 1s", fifo)
			}
			break
		}
		var b [8]byte
		if n, err := unix.Read(fd, b[:]); err != nil || n == 0 {
			return fmt.Errorf("read %s: %d bytes, %v", fifo, n, err)
		}
	default:
		return fmt.Errorf("no direct start for runtime %s", d.taskRuntime(id))
	}
	if err := os.Remove(fifo); err != nil {
		return fmt.Errorf("remove %s: %w", fifo, err)
	}
	return nil
}
