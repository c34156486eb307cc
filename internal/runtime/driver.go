// Package runtime runs machines as OCI containers. It owns the Driver
// interface (shaped like Nomad's task driver) and its OCI implementation,
// which drives crun or runc through their CLI behind a small per-machine
// shim process, so that machines outlive the daemon and their exit status and
// logs are never lost.
//
// Lifecycle of one task, as the driver sees it:
//
//	Start ──▶ running ──(exit / Stop)──▶ exited ──Destroy──▶ (gone)
//	              ▲ Recover after a daemon restart re-attaches here
//
// Restart policy, states visible to users and events are the supervisor's;
// the driver only runs processes and reports how they ended.
package runtime

import (
	"context"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// ErrNotFound is returned (wrapped with the task id) when a driver knows
// nothing of a task.
var ErrNotFound = types.NewError(types.ErrNotFound, "task not found")

// Spec describes one task: a machine's process in its own rootfs, network
// namespace and cgroup.
type Spec struct {
	ID       string // unique and stable; also the container id
	RootFS   string // the image's unpacked rootfs; shared and never written
	Args     []string
	Env      []string
	Cwd      string
	UID, GID uint32
	Hostname string

	MemoryMB  int // hard memory limit; 0 = none
	CPUs      int // CPU quota in whole cpus; 0 = none
	CPUShares int // relative weight for shared cpus; 0 = default
	PidsLimit int // 0 = default (1024)

	NetNSPath string // network namespace to join; "" = a new empty one
	// NetNSReady, if set, blocks until the namespace at NetNSPath exists
	// (or failed to, with the reason). The driver calls it once it has
	// prepared everything else, just before the task's process starts, so
	// that the caller can make the namespace while the driver prepares.
	NetNSReady func() error
	LogPath    string  // where output goes (appended); "" = output.log in the task dir
	Mounts     []Mount // extra bind mounts (/etc/hosts, volumes, files)

	// LogMaxBytes caps the log file: at this size it is renamed to
	// LogPath+".1" (replacing the older one) and a fresh one is begun;
	// 0 = never rotate.
	LogMaxBytes int64
}

// Mount is a bind mount into the task.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
}

// Status is what the driver knows of a task.
type Status struct {
	ID      string
	Running bool
	Pid     int // the task's init process, when running
	Started time.Time
	Exit    *ExitResult // set once the task has exited
	// Parked: the task is created but its process has not started (see
	// Parker); Running is false and no process of the app exists.
	Parked bool
}

// ExitResult is how a task ended.
type ExitResult struct {
	Code      int       `json:"exit_code"`
	Signal    int       `json:"signal,omitempty"`
	OOMKilled bool      `json:"oom_killed"`
	ExitedAt  time.Time `json:"exited_at"`
	Err       string    `json:"error,omitempty"` // the shim could not observe the exit normally
}

// Driver runs tasks. Every method is safe for concurrent use on different
// ids; callers serialise calls for one id.
type Driver interface {
	// Name is "crun" or "runc" (whichever the driver drives).
	Name() string
	// Start creates and starts a task and returns once its process runs.
	// A leftover task with the same id is removed first.
	Start(ctx context.Context, spec Spec) (Status, error)
	// Recover re-attaches to a task started by an earlier daemon. It
	// returns the task's status; ErrNotFound if nothing is left of it.
	Recover(ctx context.Context, id string) (Status, error)
	// Wait blocks until the task exits (or ctx ends) and returns how.
	Wait(ctx context.Context, id string) (ExitResult, error)
	// Stop sends signal, waits up to timeout for the task to exit, then
	// kills it. Stopping an exited task is not an error.
	Stop(ctx context.Context, id string, signal string, timeout time.Duration) error
	// Destroy kills the task if needed and removes everything the driver
	// made for it (rootfs layer, logs stay). Idempotent.
	Destroy(ctx context.Context, id string) error
	// Inspect reports the task's status; ErrNotFound if unknown.
	Inspect(ctx context.Context, id string) (Status, error)
}

// Pauser is implemented by drivers that can freeze a task in memory.
type Pauser interface {
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
}

// Parker is implemented by drivers that can prepare a stopped task's next
// start ahead of it. Park does everything Start does but run the task's
// process: the rootfs mounted with a fresh writable layer, the bundle, the
// shim, the container created (crun/runc create); the process waits, using
// no CPU, until a Start with the same spec, which then only starts it. A
// Start with a different spec (a new config, new secrets, another log
// size) discards what was parked and starts afresh, as does anything that
// cannot use it (a host reboot leaves nothing). Destroy removes it.
type Parker interface {
	Park(ctx context.Context, spec Spec) error
}

// Execer is implemented by drivers that can run a command in a task.
type Execer interface {
	Exec(ctx context.Context, id string, args []string, stdin []byte, timeout time.Duration) (stdout, stderr []byte, code int, err error)
}
