package supervisor

// Machine operations of the Machines API beyond the lifecycle in
// supervisor.go: leases, restart, signals, metadata, exec, processes,
// waiting on arbitrary conditions, and records of destroyed machines.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Lease is an exclusive claim on changing a machine, held by whoever
// knows its nonce until it expires.
type Lease struct {
	Nonce       string `json:"nonce"`
	ExpiresAt   int64  `json:"expires_at"` // unix seconds
	Owner       string `json:"owner"`
	Description string `json:"description"`
	Version     string `json:"version"` // the machine's instance_id when acquired
}

// Lease TTL bounds.
const (
	DefaultLeaseTTL = 30 * time.Second
	MaxLeaseTTL     = 24 * time.Hour
)

// LeaseActive reports whether r is leased right now.
func LeaseActive(r *Record, now time.Time) bool {
	return r.LeaseNonce != "" && now.Unix() < r.LeaseExpires
}

func leaseOf(r *Record) *Lease {
	return &Lease{Nonce: r.LeaseNonce, ExpiresAt: r.LeaseExpires, Owner: r.LeaseOwner, Description: r.LeaseDesc, Version: r.InstanceID}
}

func nonceMatches(have, given string) bool {
	return given != "" && subtle.ConstantTimeCompare([]byte(have), []byte(given)) == 1
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// expiresAt is now+ttl in unix seconds, rounded up: a lease never ends
// before its ttl.
func expiresAt(now time.Time, ttl time.Duration) int64 {
	t := now.Add(ttl)
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

func checkTTL(ttl time.Duration) (time.Duration, error) {
	if ttl == 0 {
		return DefaultLeaseTTL, nil
	}
	if ttl < time.Second || ttl > MaxLeaseTTL {
		return 0, fmt.Errorf("ttl %v: must be from 1s to %v: %w", ttl, MaxLeaseTTL, ErrInvalid)
	}
	return ttl, nil
}

// AcquireLease leases a machine to owner for ttl (0 = DefaultLeaseTTL).
// ErrConflict if someone else holds an unexpired lease.
func (s *Supervisor) AcquireLease(ctx context.Context, app, id, owner, desc string, ttl time.Duration) (*Lease, error) {
	ttl, err := checkTTL(ttl)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockLease(ctx, app, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := time.Now()
	r, err := s.update(ctx, app, id, func(r *Record) error {
		if r.State == types.StateDestroying || r.State == types.StateDestroyed {
			return fmt.Errorf("machine %s is %s: %w", id, r.State, ErrConflict)
		}
		if LeaseActive(r, now) {
			return fmt.Errorf("machine %s: lease currently held by %s until %s (%s): %w", id, r.LeaseOwner,
				time.Unix(r.LeaseExpires, 0).UTC().Format(time.RFC3339), r.LeaseDesc, ErrConflict)
		}
		r.LeaseNonce, r.LeaseExpires, r.LeaseOwner, r.LeaseDesc = newNonce(), expiresAt(now, ttl), owner, desc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return leaseOf(r), nil
}

// RefreshLease extends the lease whose nonce is given.
func (s *Supervisor) RefreshLease(ctx context.Context, app, id, nonce string, ttl time.Duration) (*Lease, error) {
	ttl, err := checkTTL(ttl)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockLease(ctx, app, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := time.Now()
	r, err := s.update(ctx, app, id, func(r *Record) error {
		if !LeaseActive(r, now) || !nonceMatches(r.LeaseNonce, nonce) {
			return fmt.Errorf("machine %s: no lease with this nonce to refresh (it may have expired): %w", id, ErrConflict)
		}
		r.LeaseExpires = expiresAt(now, ttl)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return leaseOf(r), nil
}

// ReleaseLease ends the lease whose nonce is given. Releasing a machine
// that has no active lease succeeds; a wrong nonce is ErrConflict.
func (s *Supervisor) ReleaseLease(ctx context.Context, app, id, nonce string) error {
	unlock, err := s.lockLease(ctx, app, id)
	if err != nil {
		return err
	}
	defer unlock()
	now := time.Now()
	_, err = s.update(ctx, app, id, func(r *Record) error {
		if LeaseActive(r, now) && !nonceMatches(r.LeaseNonce, nonce) {
			return fmt.Errorf("machine %s: lease currently held by %s; only the holder of its nonce may release it: %w", id, r.LeaseOwner, ErrConflict)
		}
		r.LeaseNonce, r.LeaseExpires, r.LeaseOwner, r.LeaseDesc = "", 0, "", ""
		return nil
	})
	return err
}

// GetLease returns the machine's active lease; ErrNotFound if none.
func (s *Supervisor) GetLease(ctx context.Context, app, id string) (*Lease, error) {
	r, err := s.Get(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if !LeaseActive(r, time.Now()) {
		return nil, fmt.Errorf("machine %s: lease not found (it has none, or it expired): %w", id, ErrNotFound)
	}
	return leaseOf(r), nil
}

// lockLease takes the machine's lease gate; ErrNotFound for a machine that
// does not exist (so no state is kept for made-up ids).
func (s *Supervisor) lockLease(ctx context.Context, app, id string) (func(), error) {
	if _, err := s.Get(ctx, app, id); err != nil {
		return nil, err
	}
	l := s.liveFor(app, id)
	l.leaseMu.Lock()
	return l.leaseMu.Unlock, nil
}

// Guarded runs fn, a change to the machine, if the caller may make it (the
// machine is not leased, or nonce is its lease's): no lease can be taken
// between the check and the change.
func (s *Supervisor) Guarded(ctx context.Context, app, id, nonce string, fn func() error) error {
	unlock, err := s.lockLease(ctx, app, id)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.CheckLease(ctx, app, id, nonce); err != nil {
		return err
	}
	return fn()
}

// CheckLease returns nil when the machine may be changed by a caller that
// presents nonce: it is not leased, or the nonce is the lease's.
func (s *Supervisor) CheckLease(ctx context.Context, app, id, nonce string) error {
	r, err := s.Get(ctx, app, id)
	if err != nil {
		return err
	}
	if !LeaseActive(r, time.Now()) || nonceMatches(r.LeaseNonce, nonce) {
		return nil
	}
	if nonce == "" {
		return fmt.Errorf("machine %s: lease currently held by %s (%s); send its nonce in the fly-machine-lease-nonce header: %w", id, r.LeaseOwner, r.LeaseDesc, ErrConflict)
	}
	return fmt.Errorf("machine %s: lease currently held by %s (%s), with a different nonce: %w", id, r.LeaseOwner, r.LeaseDesc, ErrConflict)
}

// Restart stops a running machine (signal and timeout as in Stop) and
// starts it again; a machine that is not running is just started.
func (s *Supervisor) Restart(ctx context.Context, app, id, signal string, timeout time.Duration) (*Record, error) {
	l := s.liveFor(app, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := s.getOwn(ctx, app, id)
	if err != nil {
		return nil, err
	}
	switch r.State {
	case types.StateDestroying, types.StateDestroyed:
		return nil, fmt.Errorf("machine %s is %s: %w", id, r.State, ErrConflict)
	case types.StateStarted, types.StateStarting, types.StateSuspended:
		if _, err := s.stopLocked(ctx, l, signal, timeout, "user"); err != nil {
			return nil, err
		}
	}
	if _, err := s.startLocked(ctx, l, "user"); err != nil {
		return nil, err
	}
	return s.update(ctx, app, id, func(r *Record) error {
		addEvent(r, "restart", r.State, "user", nil)
		return nil
	})
}

// signals are types.Signals (flyctl's) by number.
var signals = map[string]syscall.Signal{
	"SIGABRT": syscall.SIGABRT, "SIGALRM": syscall.SIGALRM, "SIGFPE": syscall.SIGFPE, "SIGHUP": syscall.SIGHUP,
	"SIGILL": syscall.SIGILL, "SIGINT": syscall.SIGINT, "SIGKILL": syscall.SIGKILL, "SIGPIPE": syscall.SIGPIPE,
	"SIGQUIT": syscall.SIGQUIT, "SIGSEGV": syscall.SIGSEGV, "SIGTERM": syscall.SIGTERM, "SIGTRAP": syscall.SIGTRAP,
	"SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2, "SIGWINCH": syscall.SIGWINCH,
}

// ParseSignal accepts a signal name ("SIGTERM", "TERM") or number ("15").
func ParseSignal(v string) (syscall.Signal, error) {
	v = strings.ToUpper(strings.TrimSpace(v))
	if n, err := strconv.Atoi(v); err == nil {
		for _, sig := range signals {
			if int(sig) == n {
				return sig, nil
			}
		}
		return 0, fmt.Errorf("signal %d: not a signal a machine may be sent: %w", n, ErrInvalid)
	}
	if !strings.HasPrefix(v, "SIG") {
		v = "SIG" + v
	}
	if sig, ok := signals[v]; ok {
		return sig, nil
	}
	names := make([]string, 0, len(signals))
	for n := range signals {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("signal %q: use one of %s: %w", v, strings.Join(names, ", "), ErrInvalid)
}

// Signal sends sig to the machine's main process. The machine's state
// changes only if the process exits (then the restart policy applies).
func (s *Supervisor) Signal(ctx context.Context, app, id string, sig syscall.Signal) error {
	r, err := s.getOwn(ctx, app, id)
	if err != nil {
		return err
	}
	if r.State != types.StateStarted {
		return fmt.Errorf("machine %s is %s; only a started machine can be signalled: %w", id, r.State, ErrConflict)
	}
	st, err := s.opt.Driver.Inspect(ctx, id)
	if err != nil || !st.Running || st.Pid <= 0 {
		return fmt.Errorf("machine %s: its process is not running (%v): %w", id, err, ErrConflict)
	}
	if err := syscall.Kill(st.Pid, sig); err != nil {
		return fmt.Errorf("signal machine %s: %w", id, err)
	}
	return nil
}

var metadataKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,128}$`)

// Metadata limits.
const MaxMetadataValue = 4096

// SetMetadata sets one metadata key of the machine's config. It does not
// create a new version: the machine keeps running.
func (s *Supervisor) SetMetadata(ctx context.Context, app, id, key, value string) error {
	if !metadataKeyRE.MatchString(key) {
		return fmt.Errorf("metadata key %q: use 1-128 letters, digits, '_', '-' or '.': %w", key, ErrInvalid)
	}
	if len(value) > MaxMetadataValue {
		return fmt.Errorf("metadata value of %s: over %d bytes: %w", key, MaxMetadataValue, ErrInvalid)
	}
	_, err := s.update(ctx, app, id, func(r *Record) error {
		if r.Config == nil {
			r.Config = &types.MachineConfig{}
		}
		m := make(map[string]string, len(r.Config.Metadata)+1)
		for k, v := range r.Config.Metadata {
			m[k] = v
		}
		m[key] = value
		r.Config.Metadata = m
		return nil
	})
	return err
}

// DeleteMetadata removes one metadata key; a missing key is ErrNotFound.
func (s *Supervisor) DeleteMetadata(ctx context.Context, app, id, key string) error {
	_, err := s.update(ctx, app, id, func(r *Record) error {
		if r.Config == nil {
			return fmt.Errorf("machine %s has no metadata key %q: %w", id, key, ErrNotFound)
		}
		if _, ok := r.Config.Metadata[key]; !ok {
			return fmt.Errorf("machine %s has no metadata key %q: %w", id, key, ErrNotFound)
		}
		m := make(map[string]string, len(r.Config.Metadata))
		for k, v := range r.Config.Metadata {
			if k != key {
				m[k] = v
			}
		}
		r.Config.Metadata = m
		return nil
	})
	return err
}

// ExecResult is the outcome of a command run in a machine.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// MaxExecOutput bounds each of stdout and stderr returned by Exec.
const MaxExecOutput = 1 << 20

// Exec runs cmd inside a started machine, with stdin, for at most timeout.
func (s *Supervisor) Exec(ctx context.Context, app, id string, cmd []string, stdin []byte, timeout time.Duration) (*ExecResult, error) {
	if len(cmd) == 0 {
		return nil, fmt.Errorf("command is required: %w", ErrInvalid)
	}
	ex, ok := s.opt.Driver.(runtime.Execer)
	if !ok {
		return nil, fmt.Errorf("exec in machine %s: %w", id, ErrUnsupported)
	}
	r, err := s.getOwn(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if r.State != types.StateStarted {
		return nil, fmt.Errorf("machine %s is %s; exec needs a started machine: %w", id, r.State, ErrConflict)
	}
	start := time.Now()
	out, errb, code, err := ex.Exec(ctx, id, cmd, stdin, timeout)
	// The driver kills a command that outlives its timeout; that shows as
	// a kill (code -1) or a deadline error.
	if ctx.Err() == nil && time.Since(start) >= timeout && (err != nil || code < 0) {
		s.killExeced(ctx, id, cmd, start)
		return nil, fmt.Errorf("exec in machine %s: command did not finish within %v: %w", id, timeout, ErrTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("exec in machine %s: %w", id, err)
	}
	return &ExecResult{Stdout: truncate(out), Stderr: truncate(errb), ExitCode: code}, nil
}

// killExeced kills what a timed-out exec left running in the machine:
// killing the runtime's exec client does not kill the command inside. It
// matches processes of the machine's PID namespace by command line and
// start time, sweeping for a moment: a runtime killed mid-setup may still
// start the command just after.
func (s *Supervisor) killExeced(ctx context.Context, id string, cmd []string, since time.Time) {
	st, err := s.opt.Driver.Inspect(ctx, id)
	if err != nil || st.Pid <= 0 {
		return
	}
	want := strings.Join(cmd, " ")
	deadline := time.Now().Add(1500 * time.Millisecond)
	for {
		ps, err := hostProcessesInNamespaceOf("/proc", st.Pid)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.stat.Command == want && int64(p.stat.Stime) >= since.Unix()-1 {
				_ = syscall.Kill(p.hostPid, syscall.SIGKILL)
				s.log.Info("killed a timed-out exec", "machine", id, "pid", p.hostPid, "command", want)
			}
		}
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > MaxExecOutput {
		return b[:MaxExecOutput]
	}
	return b
}

// ProcessStat is one process of a machine (Fly's ps entry). Times are
// milliseconds; stime is the start as unix seconds; rss is bytes.
type ProcessStat struct {
	Pid           int32          `json:"pid"`
	Stime         uint64         `json:"stime"`
	Rtime         uint64         `json:"rtime"`
	Command       string         `json:"command"`
	Directory     string         `json:"directory"`
	CPU           uint64         `json:"cpu"`
	RSS           uint64         `json:"rss"`
	ListenSockets []ListenSocket `json:"listen_sockets"`
}

// ListenSocket is a socket a process listens on.
type ListenSocket struct {
	Proto   string `json:"proto"`
	Address string `json:"address"`
}

// Processes lists the processes of a started machine: every process in
// its PID namespace, with pids as the machine sees them.
func (s *Supervisor) Processes(ctx context.Context, app, id string) ([]ProcessStat, error) {
	r, err := s.getOwn(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if r.State != types.StateStarted && r.State != types.StateSuspended {
		return nil, fmt.Errorf("machine %s is %s; ps needs a running machine: %w", id, r.State, ErrConflict)
	}
	st, err := s.opt.Driver.Inspect(ctx, id)
	if err != nil || !st.Running || st.Pid <= 0 {
		return nil, fmt.Errorf("machine %s: its process is not running (%v): %w", id, err, ErrConflict)
	}
	return processesInNamespaceOf("/proc", st.Pid)
}

// processesInNamespaceOf reads procfs for every process sharing pid's PID
// namespace.
func processesInNamespaceOf(proc string, pid int) ([]ProcessStat, error) {
	hs, err := hostProcessesInNamespaceOf(proc, pid)
	if err != nil {
		return nil, err
	}
	out := make([]ProcessStat, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.stat)
	}
	return out, nil
}

type hostProcess struct {
	hostPid int
	stat    ProcessStat
}

func hostProcessesInNamespaceOf(proc string, pid int) ([]hostProcess, error) {
	target, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "ns", "pid"))
	if err != nil {
		return nil, fmt.Errorf("pid namespace of %d: %w", pid, err)
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	bootTime := bootTimeOf(proc)
	out := []hostProcess{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		if ns, err := os.Readlink(filepath.Join(dir, "ns", "pid")); err != nil || ns != target {
			continue
		}
		ps, ok := readProcess(dir, p, bootTime)
		if ok {
			out = append(out, hostProcess{hostPid: p, stat: ps})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].stat.Pid < out[j].stat.Pid })
	return out, nil
}

const clockTicks = 100 // USER_HZ on Linux

func bootTimeOf(proc string) int64 {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// readProcess reads one /proc/<pid> directory; false if the process went
// away meanwhile.
func readProcess(dir string, hostPid int, bootTime int64) (ProcessStat, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ProcessStat{}, false
	}
	f, ok := parseStat(string(b))
	if !ok {
		return ProcessStat{}, false
	}
	ps := ProcessStat{Pid: int32(hostPid), ListenSockets: []ListenSocket{}}
	ps.CPU = (f.utime + f.stime) * 1000 / clockTicks
	start := bootTime + int64(f.starttime/clockTicks)
	ps.Stime = uint64(start)
	if now := time.Now().Unix(); now > start {
		ps.Rtime = uint64(now-start) * 1000
	}
	ps.RSS = f.rssPages * uint64(os.Getpagesize())
	if st, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				fs := strings.Fields(v)
				if n, err := strconv.Atoi(fs[len(fs)-1]); err == nil && len(fs) > 0 {
					ps.Pid = int32(n)
				}
			}
		}
	}
	if cl, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(cl) > 0 {
		ps.Command = strings.TrimSpace(strings.ReplaceAll(strings.TrimRight(string(cl), "\x00"), "\x00", " "))
	} else {
		ps.Command = "[" + f.comm + "]"
	}
	if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil {
		root, _ := os.Readlink(filepath.Join(dir, "root"))
		if root != "" && root != "/" {
			cwd = strings.TrimPrefix(cwd, root)
			if cwd == "" {
				cwd = "/"
			}
		}
		ps.Directory = cwd
	}
	ps.ListenSockets = listenSockets(dir)
	return ps, true
}

type statFields struct {
	comm                   string
	utime, stime, rssPages uint64
	starttime              uint64
}

// parseStat parses /proc/<pid>/stat; the command may hold spaces and
// parentheses, so fields are counted after the last ')'.
func parseStat(s string) (statFields, bool) {
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return statFields{}, false
	}
	f := strings.Fields(s[close+1:])
	if len(f) < 22 {
		return statFields{}, false
	}
	num := func(i int) uint64 { n, _ := strconv.ParseUint(f[i], 10, 64); return n }
	return statFields{comm: s[open+1 : close], utime: num(11), stime: num(12), starttime: num(19), rssPages: num(21)}, true
}

// listenSockets matches the process's socket inodes with the listening
// sockets of its network namespace.
func listenSockets(dir string) []ListenSocket {
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return []ListenSocket{}
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	out := []ListenSocket{}
	if len(inodes) == 0 {
		return out
	}
	for _, t := range []struct{ file, proto, state string }{
		{"tcp", "tcp", "0A"}, {"tcp6", "tcp", "0A"}, {"udp", "udp", "07"}, {"udp6", "udp", "07"},
	} {
		f, err := os.Open(filepath.Join(dir, "net", t.file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != t.state || !inodes[fs[9]] {
				continue
			}
			if addr, ok := parseProcNetAddr(fs[1]); ok {
				out = append(out, ListenSocket{Proto: t.proto, Address: addr})
			}
		}
		f.Close()
	}
	return out
}

// parseProcNetAddr decodes "0100007F:1F90" (IPv4) or the 32-hex-digit IPv6
// form of /proc/net/tcp into "127.0.0.1:8080".
func parseProcNetAddr(s string) (string, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return "", false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", false
	}
	// The kernel prints each 32-bit word in host (little-endian) order.
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10)), true
}

// WaitFor blocks until done reports true for the machine (r is nil once
// the machine is destroyed), done fails, or timeout passes (ErrTimeout).
func (s *Supervisor) WaitFor(ctx context.Context, app, id string, timeout time.Duration, done func(r *Record) (bool, error)) (*Record, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := s.changedCh()
		r, err := s.Get(ctx, app, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		ok, err := done(r)
		if err != nil || ok {
			return r, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			state := types.StateDestroyed
			if r != nil {
				state = r.State
			}
			return r, fmt.Errorf("machine %s: condition not reached within %v (it is %s): %w", id, timeout, state, ErrTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func destroyedKey(app, id string) string { return "machines-destroyed/" + app + "/" + id }

// MaxDestroyedKept bounds how many destroyed machines an app remembers.
const MaxDestroyedKept = 100

// keepDestroyed records a destroyed machine for list?include_deleted.
// Failures are logged: the machine is gone either way.
func (s *Supervisor) keepDestroyed(ctx context.Context, r *Record) {
	r.State = types.StateDestroyed
	r.UpdatedAt = now()
	r.LeaseNonce, r.LeaseExpires, r.LeaseOwner, r.LeaseDesc = "", 0, "", ""
	addEvent(r, "destroy", types.StateDestroyed, "user", nil)
	if _, err := store.PutJSON(ctx, s.opt.Store, destroyedKey(r.App, r.ID), r, store.AnyRevision); err != nil {
		s.log.Warn("record destroyed machine", "machine", r.ID, "err", err)
		return
	}
	old, err := s.ListDestroyed(ctx, r.App)
	if err != nil || len(old) <= MaxDestroyedKept {
		return
	}
	for _, o := range old[:len(old)-MaxDestroyedKept] {
		_, _ = s.opt.Store.Delete(ctx, destroyedKey(o.App, o.ID), store.AnyRevision)
	}
}

// ListDestroyed returns the destroyed machines an app remembers, oldest
// destroyed first.
func (s *Supervisor) ListDestroyed(ctx context.Context, app string) ([]*Record, error) {
	kvs, err := s.opt.Store.List(ctx, "machines-destroyed/"+app+"/")
	if err != nil {
		return nil, fmt.Errorf("list destroyed machines of %s: %w", app, err)
	}
	out := make([]*Record, 0, len(kvs))
	for _, kv := range kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("destroyed machine record %s: %w", kv.Key, err)
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt < out[j].UpdatedAt })
	return out, nil
}

// ForgetDestroyed drops an app's records of destroyed machines (when the
// app is deleted).
func (s *Supervisor) ForgetDestroyed(ctx context.Context, app string) error {
	kvs, err := s.opt.Store.List(ctx, "machines-destroyed/"+app+"/")
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if _, err := s.opt.Store.Delete(ctx, kv.Key, store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("forget destroyed machine %s: %w", kv.Key, err)
		}
	}
	return nil
}
