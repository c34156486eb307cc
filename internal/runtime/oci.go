package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// OCI is the Driver for OCI runtimes (crun, runc) driven through their CLI.
//
// Each task has a directory <root>/<id> holding its bundle (config.json and
// the overlay mount point rootfs/), its private writable layer (upper/,
// work/, discarded when the task ends), the shim's pid file and, once the
// task has exited, exit.json.
type OCI struct {
	root    string // task directories
	binary  string // path of crun or runc
	name    string
	log     *slog.Logger
	cgroup2 bool // unified hierarchy only
	// initPath is a static init (tini-static) run as each task's pid 1: it
	// forwards signals to the app and reaps zombies, as Fly's init does.
	// Without it the app is pid 1 and the kernel drops every signal it has
	// no handler for (a Node app would ignore SIGTERM and wait out
	// kill_timeout).
	initPath string

	mu      sync.Mutex // guards started
	started map[string]time.Time

	// parkKey keys the digests of parked tasks' specs (parkDigest), so
	// that no file holds an unkeyed hash of a machine's environment; kept
	// in <root>/.park-key so a new daemon can start what an earlier one
	// parked. nil: parking is off.
	parkKey []byte

	spareMu sync.Mutex // guards spare, closed
	spare   *shimProc  // a shim waiting for the next task
	closed  bool
}

// takeShim returns the spare shim for task id, else starts one. The
// caller has a new spare started (refillSpare) spareRefillDelay after its
// task runs: a shim's start-up (the binary loaded, its packages
// initialised: 5-10 ms of CPU) would compete for the CPU with the
// runtime's and then the app's own start-up.
func (d *OCI) takeShim(id string) (*shimProc, error) {
	d.spareMu.Lock()
	s := d.spare
	d.spare = nil
	d.spareMu.Unlock()
	if s != nil && !s.alive() {
		// Killed or crashed while it waited: start this task's own.
		d.log.Warn("the spare shim is gone; starting a shim for the task", "task", id, "spare_pid", s.pid)
		s.abort()
		s = nil
	}
	if s != nil {
		return s, nil
	}
	return launchShim(id)
}

// spareRefillDelay is how long after a task's start the next spare shim
// is started (see takeShim).
const spareRefillDelay = 100 * time.Millisecond

// refillSpare starts a spare shim unless there is one (or the driver is
// closed).
func (d *OCI) refillSpare() {
	d.spareMu.Lock()
	need := d.spare == nil && !d.closed
	d.spareMu.Unlock()
	if !need {
		return
	}
	s, err := launchShim(newShimToken())
	if err != nil {
		d.log.Warn("start a spare shim", "err", err)
		return
	}
	d.spareMu.Lock()
	if d.spare == nil && !d.closed {
		d.spare, s = s, nil
	}
	d.spareMu.Unlock()
	if s != nil {
		s.abort()
	}
}

// Close lets the spare shim go. Tasks keep running. (A daemon that exits
// without Close loses nothing: its spare exits when its pipe closes.)
func (d *OCI) Close() {
	d.spareMu.Lock()
	s := d.spare
	d.spare, d.closed = nil, true
	d.spareMu.Unlock()
	if s != nil {
		s.abort()
	}
}

// newShimToken is the identity of a spare shim: unique on the host.
func newShimToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "spare-" + hex.EncodeToString(b[:])
}

// NewOCI returns a driver keeping its task state under root. It picks crun,
// else runc; prefer forces one of them ("crun" or "runc"). On a hybrid
// cgroup v1/v2 host crun needs the controllers left on v2 bound to v1
// (SetupCrunCgroups): NewOCI does that when it picks crun, and falls back
// to runc, saying why, when it cannot. With prefer "runc" it mounts nothing.
func NewOCI(root, prefer string, log *slog.Logger) (*OCI, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("runtime: create state dir: %w", err)
	}
	d := &OCI{root: root, log: log, started: map[string]time.Time{}}
	var err error
	d.cgroup2 = isUnifiedCgroup()
	hybrid := isHybridCgroup()
	candidates := []string{"crun", "runc"}
	switch prefer {
	case "":
	case "crun", "runc":
		candidates = []string{prefer}
	default:
		return nil, fmt.Errorf("runtime: unknown OCI runtime %q: use crun or runc", prefer)
	}
	for _, c := range candidates {
		p, err := exec.LookPath(c)
		if err != nil {
			log.Info("OCI runtime not installed", "runtime", c)
			continue
		}
		if c == "crun" && hybrid {
			bound, err := hostCgroups.bindV2OnlyControllers()
			if err != nil {
				if prefer == "crun" {
					return nil, fmt.Errorf("runtime: crun cannot run on this host's hybrid cgroup v1/v2 layout: %w (use --runtime runc)", err)
				}
				log.Warn("crun cannot run on this host's hybrid cgroup v1/v2 layout; falling back to runc", "reason", err)
				continue
			}
			if len(bound) > 0 {
				log.Info("bound cgroup controllers that were only on cgroup v2 to cgroup v1 hierarchies of their own, since crun refuses hybrid hosts with controllers on v2 (opt out: --runtime runc)",
					"controllers", strings.Join(bound, ","), "mounts", cgroupMounts(bound))
			}
		}
		d.binary, d.name = p, c
		break
	}
	if d.binary == "" {
		return nil, errors.New("runtime: neither crun nor runc is installed (or usable here); install one: apt-get install -y crun runc")
	}
	if d.parkKey, err = loadParkKey(root); err != nil {
		log.Warn("stopped machines will start the slow way (nothing kept across a stop)", "err", err)
	}
	for _, p := range []string{"/usr/bin/tini-static", "/usr/local/bin/tini-static"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			d.initPath = p
			break
		}
	}
	if d.initPath == "" {
		log.Warn("tini-static not found; apps run as pid 1 and ignore signals they do not handle: apt-get install -y tini")
	}
	log.Info("OCI runtime selected", "runtime", d.name, "path", d.binary, "cgroup2", d.cgroup2, "init", d.initPath)
	return d, nil
}

func isUnifiedCgroup() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

func isHybridCgroup() bool {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup/unified", &st) != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC && !isUnifiedCgroup()
}

// Name implements Driver.
func (d *OCI) Name() string { return d.name }

func (d *OCI) dir(id string) string { return filepath.Join(d.root, id) }

func (d *OCI) cgroupPath(id string) string { return "/hangar/" + id }

// validID guards paths built from ids.
func validID(id string) error {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/\\. \x00") {
		return fmt.Errorf("runtime: invalid task id %q", id)
	}
	return nil
}

// checkSpec refuses a spec that cannot start.
func checkSpec(spec Spec) error {
	if err := validID(spec.ID); err != nil {
		return err
	}
	if spec.RootFS == "" || len(spec.Args) == 0 {
		return fmt.Errorf("task %s: a rootfs and a command are required", spec.ID)
	}
	if err := findExecutable(spec); err != nil {
		return fmt.Errorf("task %s: %w", spec.ID, err)
	}
	return nil
}

// Start implements Driver. A task parked with the same spec (Park) is
// only started; otherwise whatever is left of an earlier run, parked or
// not, is removed and the task is made afresh.
func (d *OCI) Start(ctx context.Context, spec Spec) (Status, error) {
	if err := checkSpec(spec); err != nil {
		return Status{}, err
	}
	if st, ok := d.startParked(ctx, spec); ok {
		return st, nil
	}
	return d.launch(ctx, spec, false)
}

// Park implements Parker: the task is made as Start makes it, up to its
// container created, and waits for a Start with the same spec.
func (d *OCI) Park(ctx context.Context, spec Spec) error {
	if err := checkSpec(spec); err != nil {
		return err
	}
	if d.parkKey == nil {
		return fmt.Errorf("task %s: parking is unavailable: no key in %s", spec.ID, d.root)
	}
	_, err := d.launch(ctx, spec, true)
	return err
}

// launch makes the task: its rootfs, bundle and shim, and has the shim run
// it (park false) or only create it (park true, see Park).
func (d *OCI) launch(ctx context.Context, spec Spec, park bool) (Status, error) {
	t0 := time.Now()
	// A leftover of an earlier run of this id goes first.
	if err := d.cleanup(ctx, spec.ID); err != nil {
		return Status{}, err
	}
	dir := d.dir(spec.ID)
	for _, sub := range []string{"bundle/rootfs", "upper", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return Status{}, fmt.Errorf("task %s: %w", spec.ID, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "runtime"), []byte(d.binary), 0o644); err != nil {
		return Status{}, fmt.Errorf("task %s: %w", spec.ID, err)
	}
	merged := filepath.Join(dir, "bundle/rootfs")
	// The spare shim (else one started now, which boots meanwhile) gets
	// the task once the rootfs, the bundle and (NetNSReady) the network
	// namespace are ready.
	tPrep := time.Now()
	shim, err := d.takeShim(spec.ID)
	defer time.AfterFunc(spareRefillDelay, d.refillSpare)
	if err != nil {
		return Status{}, fmt.Errorf("task %s: %w", spec.ID, err)
	}
	// Every failure after the bundle is written scrubs it, and crun's copy
	// of it: the environment holds the machine's secrets.
	scrub := func() {
		scrubEnv(filepath.Join(dir, "bundle/config.json"))
		scrubEnv(filepath.Join(d.stateDir(), spec.ID, "config.json"))
	}
	fail := func(err error) (Status, error) {
		shim.abort()
		scrub()
		_ = unix.Unmount(merged, unix.MNT_DETACH)
		return Status{}, fmt.Errorf("task %s: %w", spec.ID, err)
	}
	tShim := time.Now()
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", spec.RootFS, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fail(fmt.Errorf("mount overlay rootfs: %w", err))
	}
	tMount := time.Now()
	b, err := json.Marshal(d.ociSpec(spec))
	if err != nil {
		return fail(fmt.Errorf("encode OCI spec: %w", err))
	}
	if err := os.WriteFile(filepath.Join(dir, "bundle/config.json"), b, 0o600); err != nil {
		return fail(fmt.Errorf("write OCI spec: %w", err))
	}
	tBundle := time.Now()
	if spec.NetNSReady != nil {
		if err := spec.NetNSReady(); err != nil {
			return fail(err)
		}
	}
	tNet := time.Now()
	pid, err := shim.start(ctx, shimConfig{
		ID:       spec.ID,
		Runtime:  d.binary,
		Bundle:   filepath.Join(dir, "bundle"),
		Dir:      dir,
		LogPath:  spec.logPath(dir),
		Cgroup:   d.cgroupPath(spec.ID),
		Cgroup2:  d.cgroup2,
		Upper:    []string{filepath.Join(dir, "upper"), filepath.Join(dir, "work")},
		RootFS:   merged,
		StateDir: d.stateDir(),
		Park:     park,

		LogMaxBytes: spec.LogMaxBytes,
	})
	if err != nil {
		scrub()
		_ = unix.Unmount(merged, unix.MNT_DETACH)
		return Status{}, fmt.Errorf("task %s: %w", spec.ID, err)
	}
	now := time.Now()
	if park {
		if err := replaceFile(filepath.Join(dir, parkedFile), []byte(d.parkDigest(spec, b)), 0o600); err != nil {
			_ = d.discardParked(ctx, spec.ID)
			return Status{}, fmt.Errorf("task %s: %w", spec.ID, err)
		}
		d.log.Debug("task parked", "task", spec.ID, "prepare", tPrep.Sub(t0), "shim", tShim.Sub(tPrep),
			"overlay", tMount.Sub(tShim), "bundle", tBundle.Sub(tMount), "netns_wait", tNet.Sub(tBundle), "create", now.Sub(tNet))
		return Status{ID: spec.ID, Parked: true, Pid: pid}, nil
	}
	d.log.Debug("task started", "task", spec.ID, "prepare", tPrep.Sub(t0), "shim", tShim.Sub(tPrep),
		"overlay", tMount.Sub(tShim), "bundle", tBundle.Sub(tMount), "netns_wait", tNet.Sub(tBundle), "run", now.Sub(tNet))
	d.mu.Lock()
	d.started[spec.ID] = now
	d.mu.Unlock()
	return Status{ID: spec.ID, Running: true, Pid: pid, Started: now}, nil
}

// logPath is where a task's output goes.
func (s Spec) logPath(dir string) string {
	if s.LogPath != "" {
		return s.LogPath
	}
	return filepath.Join(dir, "output.log")
}

// LogPath returns the default path of a task's output log.
func (d *OCI) LogPath(id string) string { return filepath.Join(d.dir(id), "output.log") }

func (d *OCI) stateDir() string { return filepath.Join(d.root, ".oci-state") }

// runtimeCmd builds a command, with our state dir, of the OCI runtime that
// runs task id.
func (d *OCI) runtimeCmd(ctx context.Context, id string, args ...string) *exec.Cmd {
	full := append([]string{"--root", d.stateDir()}, args...)
	return exec.CommandContext(ctx, d.taskRuntime(id), full...)
}

// taskRuntime is the runtime that started task id, which may not be d's: a
// daemon that now picks crun adopts the tasks its predecessor ran with runc.
// Only that runtime can act on the task: the other one cannot read its
// container record, and crun's delete --force even removes a runc record
// while leaving the container running.
func (d *OCI) taskRuntime(id string) string {
	if validID(id) != nil {
		return d.binary
	}
	if b, err := os.ReadFile(filepath.Join(d.dir(id), "runtime")); err == nil {
		if p := strings.TrimSpace(string(b)); p != "" {
			return p
		}
	}
	// Tasks started before the runtime was recorded: the container
	// record's layout tells.
	rec := filepath.Join(d.stateDir(), id)
	for name, file := range map[string]string{"runc": "state.json", "crun": "status"} {
		if _, err := os.Stat(filepath.Join(rec, file)); err == nil {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
	}
	return d.binary
}

func (d *OCI) ociSpec(s Spec) *specs.Spec {
	caps := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_SYS_CHROOT", "CAP_SETFCAP",
	}
	cwd := s.Cwd
	if cwd == "" {
		cwd = "/"
	}
	pids := int64(s.PidsLimit)
	if pids == 0 {
		pids = 4096
	}
	res := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pids}}
	if s.MemoryMB > 0 {
		lim := int64(s.MemoryMB) << 20
		res.Memory = &specs.LinuxMemory{Limit: &lim}
	}
	cpu := &specs.LinuxCPU{}
	if s.CPUs > 0 {
		period := uint64(100000)
		quota := int64(s.CPUs) * int64(period)
		cpu.Period, cpu.Quota = &period, &quota
	}
	if s.CPUShares > 0 {
		sh := uint64(s.CPUShares)
		cpu.Shares = &sh
	}
	res.CPU = cpu
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace, Path: s.NetNSPath},
	}
	if d.cgroup2 {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	args := s.Args
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
	if d.initPath != "" {
		mounts = append(mounts, specs.Mount{Destination: initMount, Type: "bind", Source: d.initPath, Options: []string{"bind", "ro", "nosuid"}})
		args = append([]string{initMount, "-s", "--"}, args...)
	}
	for _, m := range s.Mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	return &specs.Spec{
		Version: ociVersion,
		Process: &specs.Process{
			User: specs.User{UID: s.UID, GID: s.GID},
			Args: args, Env: s.Env, Cwd: cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: s.Hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{
			CgroupsPath: d.cgroupPath(s.ID),
			Resources:   res,
			Namespaces:  ns,
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
}

// ociVersion is the runtime-spec version the bundle declares: the oldest
// one with every field ociSpec sets, not the Go module's (specs.Version),
// since runtimes refuse versions newer than they know (crun 1.8 refuses
// 1.2.0 and later: "unknown version specified").
const ociVersion = "1.0.2"

// findExecutable checks that the task's command exists in its image, so
// that a typo fails the start with a clear message instead of an exit 127
// from the init.
func findExecutable(s Spec) error {
	cmd := s.Args[0]
	exists := func(p string) bool {
		// Lstat: a symlink may point anywhere inside the image; do not
		// follow it on the host.
		_, err := os.Lstat(filepath.Join(s.RootFS, p))
		return err == nil
	}
	if strings.Contains(cmd, "/") {
		p := cmd
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.Cwd, p)
		}
		if exists(p) {
			return nil
		}
		return fmt.Errorf("executable %q not found in the image: check the image's entrypoint/cmd or init.cmd", cmd)
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range s.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if exists(filepath.Join(dir, cmd)) {
			return nil
		}
	}
	return fmt.Errorf("executable %q not found in the image's PATH (%s): check the image's entrypoint/cmd or init.cmd", cmd, path)
}

// initMount is where the init is mounted inside each task.
const initMount = "/.hangar/init"

// Recover implements Driver.
func (d *OCI) Recover(ctx context.Context, id string) (Status, error) {
	st, err := d.Inspect(ctx, id)
	if err != nil {
		return st, err
	}
	if st.Running {
		d.mu.Lock()
		if _, ok := d.started[id]; !ok {
			d.started[id] = st.Started
		}
		d.mu.Unlock()
	}
	return st, nil
}

// Inspect implements Driver.
func (d *OCI) Inspect(ctx context.Context, id string) (Status, error) {
	if err := validID(id); err != nil {
		return Status{}, err
	}
	dir := d.dir(id)
	if _, err := os.Stat(dir); err != nil {
		return Status{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	st := Status{ID: id}
	if ex, err := readExit(dir); err == nil {
		st.Exit = &ex
		return st, nil
	}
	pid, alive := shimAlive(dir, id)
	if !alive {
		if pid == 0 {
			return Status{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		// The shim died without recording an exit (it was killed). The
		// container may still run; we cannot watch it, so kill it.
		_ = d.runtimeCmd(ctx, id, "kill", id, "KILL").Run()
		_ = d.runtimeCmd(ctx, id, "delete", "--force", id).Run()
		ex := ExitResult{Code: -1, ExitedAt: time.Now(), Err: "the machine's shim process died; the machine was killed"}
		_ = writeExit(dir, ex)
		st.Exit = &ex
		return st, nil
	}
	st.Running = true
	if isParked(dir) {
		st.Running, st.Parked = false, true
	}
	if b, err := os.ReadFile(filepath.Join(dir, "task.pid")); err == nil {
		st.Pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if fi, err := os.Stat(filepath.Join(dir, "shim.pid")); err == nil {
		st.Started = fi.ModTime()
	}
	return st, nil
}

// Wait implements Driver.
func (d *OCI) Wait(ctx context.Context, id string) (ExitResult, error) {
	if err := validID(id); err != nil {
		return ExitResult{}, err
	}
	dir := d.dir(id)
	for {
		if ex, err := readExit(dir); err == nil {
			return ex, nil
		}
		pid, alive := shimAlive(dir, id)
		if !alive {
			if pid == 0 {
				return ExitResult{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
			}
			st, err := d.Inspect(ctx, id)
			if err != nil {
				return ExitResult{}, err
			}
			if st.Exit != nil {
				return *st.Exit, nil
			}
		}
		if err := waitPid(ctx, pid); err != nil {
			return ExitResult{}, fmt.Errorf("task %s: wait: %w", id, err)
		}
	}
}

// Stop implements Driver.
func (d *OCI) Stop(ctx context.Context, id, signal string, timeout time.Duration) error {
	if err := validID(id); err != nil {
		return err
	}
	dir := d.dir(id)
	if _, err := readExit(dir); err == nil {
		return nil
	}
	if isParked(dir) {
		return nil // its process never ran; Destroy or Start removes it
	}
	pid, alive := shimAlive(dir, id)
	if !alive {
		_, err := d.Inspect(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if signal == "" {
		signal = "SIGINT"
	}
	sig := strings.TrimPrefix(strings.ToUpper(signal), "SIG")
	// Mark the stop as ours so the exit is not mistaken for an OOM kill.
	_ = os.WriteFile(filepath.Join(dir, "stop-requested"), nil, 0o600)
	if err := signalTask(dir, pid, sig); err != nil {
		d.log.Debug("could not signal the task directly; asking the runtime", "task", id, "signal", sig, "err", err)
		if out, err := d.runtimeCmd(ctx, id, "kill", id, sig).CombinedOutput(); err != nil {
			if _, e := readExit(dir); e == nil {
				return nil
			}
			d.log.Debug("signal failed", "task", id, "signal", sig, "err", err, "output", string(out))
		}
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	err := waitPid(wctx, pid)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.log.Info("task did not stop in time; killing", "task", id, "timeout", timeout)
	_ = d.runtimeCmd(ctx, id, "kill", "--all", id, "KILL").Run()
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := waitPid(kctx, pid); err != nil {
		return fmt.Errorf("task %s: still running after SIGKILL: %w", id, err)
	}
	return nil
}

// Destroy implements Driver.
func (d *OCI) Destroy(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if err := d.Stop(ctx, id, "KILL", 5*time.Second); err != nil {
		return err
	}
	if err := d.cleanup(ctx, id); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.started, id)
	d.mu.Unlock()
	dir := d.dir(id)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("task %s: remove state: %w", id, err)
	}
	return nil
}

// cleanup removes what an earlier run of id left: the runtime's container
// record, the overlay mount and the writable layer. The output log stays.
func (d *OCI) cleanup(ctx context.Context, id string) error {
	dir := d.dir(id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := d.discardParked(ctx, id); err != nil {
		return err
	}
	if pid, alive := shimAlive(dir, id); alive {
		// A shim that has recorded the exit is about to exit itself.
		if _, err := readExit(dir); err == nil {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			alive = waitPid(wctx, pid) != nil
			cancel()
		}
		if alive {
			return fmt.Errorf("task %s: still running; stop it first", id)
		}
	}
	_ = d.runtimeCmd(ctx, id, "delete", "--force", id).Run()
	merged := filepath.Join(dir, "bundle/rootfs")
	if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("task %s: unmount rootfs: %w", id, err)
	}
	for _, f := range []string{"upper", "work", "exit.json", "shim.pid", "shim.id", "task.pid", "stop-requested", "runtime", parkedFile} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("task %s: remove %s: %w", id, f, err)
		}
	}
	return nil
}

// Pause freezes the task's processes (cgroup freezer); memory stays. It
// writes the freezer itself (microseconds) rather than running the
// runtime's CLI (milliseconds), and falls back to the CLI if it cannot.
func (d *OCI) Pause(ctx context.Context, id string) error {
	if err := d.setFrozen(ctx, id, true); err == nil {
		return nil
	}
	if out, err := d.runtimeCmd(ctx, id, "pause", id).CombinedOutput(); err != nil {
		return fmt.Errorf("task %s: pause: %v: %s", id, err, bytes.TrimSpace(out))
	}
	return nil
}

// Resume thaws a paused task; the wake path of a suspended machine, so it
// avoids starting a runtime process.
func (d *OCI) Resume(ctx context.Context, id string) error {
	if err := d.setFrozen(ctx, id, false); err == nil {
		return nil
	}
	if out, err := d.runtimeCmd(ctx, id, "resume", id).CombinedOutput(); err != nil {
		return fmt.Errorf("task %s: resume: %v: %s", id, err, bytes.TrimSpace(out))
	}
	return nil
}

// setFrozen freezes or thaws the task's cgroup directly and waits until
// the kernel reports the new state.
func (d *OCI) setFrozen(ctx context.Context, id string, frozen bool) error {
	if err := validID(id); err != nil {
		return err
	}
	var ctl, want, statePath string
	var value string
	if d.cgroup2 {
		dir := filepath.Join("/sys/fs/cgroup", d.cgroupPath(id))
		ctl, statePath = filepath.Join(dir, "cgroup.freeze"), filepath.Join(dir, "cgroup.events")
		value, want = "0", "frozen 0"
		if frozen {
			value, want = "1", "frozen 1"
		}
	} else {
		dir := filepath.Join("/sys/fs/cgroup/freezer", d.cgroupPath(id))
		ctl, statePath = filepath.Join(dir, "freezer.state"), filepath.Join(dir, "freezer.state")
		value, want = "THAWED", "THAWED"
		if frozen {
			value, want = "FROZEN", "FROZEN"
		}
	}
	if err := os.WriteFile(ctl, []byte(value), 0); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(statePath)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), want) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("task %s: cgroup did not reach %q", id, want)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Exec runs a command inside the task and returns its output and exit
// code. It is StartExec with buffers: the command gets the task's
// environment. At the timeout the runtime's exec client is killed and,
// with it, the command (by its pid, since killing the client alone leaves
// the command running under crun).
func (d *OCI) Exec(ctx context.Context, id string, args []string, stdin []byte, timeout time.Duration) ([]byte, []byte, int, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var out, errb bytes.Buffer
	s, err := d.StartExec(ctx, id, ExecProcess{Args: args, Stdin: bytes.NewReader(stdin), Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, nil, 0, err
	}
	done := make(chan struct{})
	var code int
	go func() {
		code, err = s.Wait()
		close(done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.Kill()
		<-done
		return nil, nil, 0, fmt.Errorf("task %s: exec: %w", id, context.DeadlineExceeded)
	case <-ctx.Done():
		s.Kill()
		<-done
		return nil, nil, 0, fmt.Errorf("task %s: exec: %w", id, ctx.Err())
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("task %s: exec: %w", id, err)
	}
	return out.Bytes(), errb.Bytes(), code, nil
}

func readExit(dir string) (ExitResult, error) {
	var ex ExitResult
	b, err := os.ReadFile(filepath.Join(dir, "exit.json"))
	if err != nil {
		return ex, err
	}
	if err := json.Unmarshal(b, &ex); err != nil {
		return ex, fmt.Errorf("exit record: %w", err)
	}
	return ex, nil
}

// writeExit records a task's exit in exit.json, atomically but without
// fsync (two of them were on every stop's path): the record is for a
// daemon that restarts, which finds it in the page cache; after a host
// crash the task is gone anyway, and a record cut short reads as none
// (Inspect then records the shim's death instead).
func writeExit(dir string, ex ExitResult) error {
	b, err := json.Marshal(ex)
	if err != nil {
		return err
	}
	return replaceFile(filepath.Join(dir, "exit.json"), b, 0o644)
}

// shimAlive reads the shim's pid file and checks that the process is still
// our shim for id (pids are reused): its environment holds the shim's
// identity, id or the token in shim.id (a spare's, see shimProc).
func shimAlive(dir, id string) (int, bool) {
	token := id
	if b, err := os.ReadFile(filepath.Join(dir, "shim.id")); err == nil && len(b) > 0 {
		token = string(bytes.TrimSpace(b))
	}
	b, err := os.ReadFile(filepath.Join(dir, "shim.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return pid, false
	}
	if !bytes.Contains(env, []byte(shimEnv+"="+token+"\x00")) {
		return pid, false
	}
	// A zombie is dead.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return pid, false
		}
	}
	return pid, true
}

// waitPid waits for any process (not only a child) to exit, with a pidfd.
func waitPid(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			// Reap it if it is our child, so it does not linger as a zombie.
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			return nil
		}
	}
}

// signalTask sends signal sig (a name without "SIG") to the task's init,
// as `<runtime> kill` does, without starting the runtime's CLI. The init
// is the child of its shim (shimPid) until the shim reaps it, so its pid
// cannot have been reused while that holds: it is checked after the pidfd
// is opened, and the signal goes through the pidfd.
func signalTask(dir string, shimPid int, sig string) error {
	num := unix.SignalNum("SIG" + sig)
	if num == 0 {
		return fmt.Errorf("unknown signal %q", sig)
	}
	b, err := os.ReadFile(filepath.Join(dir, "task.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("task pid %q", b)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	i := bytes.LastIndexByte(st, ')')
	f := strings.Fields(string(st[i+1:]))
	if i < 0 || len(f) < 2 || f[1] != strconv.Itoa(shimPid) {
		return fmt.Errorf("process %d is not the child of shim %d", pid, shimPid)
	}
	return unix.PidfdSendSignal(fd, num, nil, 0)
}
