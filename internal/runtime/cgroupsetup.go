package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// On a hybrid cgroup host (v1 controllers at /sys/fs/cgroup/<name>, cgroup2
// at /sys/fs/cgroup/unified) crun refuses to run while any controller is
// attached to the v2 hierarchy ("cgroups in hybrid mode not supported, drop
// all controllers from cgroupv2"). A controller is there only because no v1
// hierarchy claimed it (typically hugetlb, which systemd mounts nowhere).
// When nothing uses it on v2, binding it to a v1 hierarchy of its own, as
// every other controller of such a host already is, lets crun run.

// cgroupHost is the cgroup tree the setup works on; tests use a fake one.
type cgroupHost struct {
	root  string                                // "/sys/fs/cgroup"
	euid  func() int                            // who we are
	mount func(controller, target string) error // binds controller to a new v1 hierarchy at target
}

var hostCgroups = cgroupHost{
	root: "/sys/fs/cgroup",
	euid: os.Geteuid,
	mount: func(controller, target string) error {
		return unix.Mount("cgroup", target, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RELATIME, controller)
	},
}

// SetupCrunCgroups makes a hybrid cgroup host acceptable to crun: each
// controller found on the v2 hierarchy (and unused there) is bound to its
// own v1 hierarchy at /sys/fs/cgroup/<name>. It returns the controllers it
// bound: none when the host is not hybrid or was already set up. Safe to call
// from several processes at once. An error says why crun cannot run here.
func SetupCrunCgroups() ([]string, error) {
	if !isHybridCgroup() {
		return nil, nil
	}
	return hostCgroups.bindV2OnlyControllers()
}

// bindV2OnlyControllers is SetupCrunCgroups on a hybrid host.
func (h cgroupHost) bindV2OnlyControllers() ([]string, error) {
	v2 := filepath.Join(h.root, "unified")
	v2Ctrls, err := readControllers(filepath.Join(v2, "cgroup.controllers"))
	if err != nil || len(v2Ctrls) == 0 {
		return nil, err
	}
	if h.euid() != 0 {
		return nil, fmt.Errorf("cgroup controllers %s are on cgroup v2 (%s); binding them to cgroup v1 needs root",
			strings.Join(v2Ctrls, ","), filepath.Join(v2, "cgroup.controllers"))
	}
	// One setup at a time on this host (daemons starting together); the
	// lock goes with the process, so a crash cannot leave it held.
	lock, err := os.Open(h.root)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", h.root, err)
	}
	defer lock.Close()
	if err := flock(lock); err != nil {
		return nil, fmt.Errorf("lock %s: %w", h.root, err)
	}
	// Another process may have done it while we waited.
	if v2Ctrls, err = readControllers(filepath.Join(v2, "cgroup.controllers")); err != nil || len(v2Ctrls) == 0 {
		return nil, err
	}
	enabled, err := readControllers(filepath.Join(v2, "cgroup.subtree_control"))
	if err != nil {
		return nil, err
	}
	var inUse []string
	for _, c := range v2Ctrls {
		if slices.Contains(enabled, c) {
			inUse = append(inUse, c)
		}
	}
	if len(inUse) > 0 {
		return nil, fmt.Errorf("cgroup controllers %s are in use on cgroup v2 (enabled in %s); not moving them to v1",
			strings.Join(inUse, ","), filepath.Join(v2, "cgroup.subtree_control"))
	}
	var bound []string
	for _, c := range v2Ctrls {
		if err := h.bind(c); err != nil {
			return bound, err
		}
		bound = append(bound, c)
	}
	left, err := readControllers(filepath.Join(v2, "cgroup.controllers"))
	if err != nil {
		return bound, err
	}
	if len(left) > 0 {
		return bound, fmt.Errorf("cgroup controllers %s are still on cgroup v2 after binding them to v1", strings.Join(left, ","))
	}
	return bound, nil
}

// bind mounts a new v1 hierarchy of controller c at <root>/<c>.
func (h cgroupHost) bind(c string) error {
	if c == "" || strings.Trim(c, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		return fmt.Errorf("unexpected cgroup controller name %q", c)
	}
	target := filepath.Join(h.root, c)
	if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("bind cgroup controller %s to v1: %w", c, err)
	}
	if mountPoint(target) {
		// Something else is mounted there, yet c is still on v2: mounting
		// over it would hide it.
		return fmt.Errorf("bind cgroup controller %s to v1: %s is already a mount point (of something else)", c, target)
	}
	err := h.mount(c, target)
	if errors.Is(err, unix.EBUSY) && !onV2(h.root, c) {
		// Bound meanwhile by a process we could not serialise with (another
		// mount namespace): this mount now joins that hierarchy.
		err = h.mount(c, target)
	}
	if err != nil {
		return fmt.Errorf("bind cgroup controller %s to v1: mount -t cgroup -o %s cgroup %s: %w", c, c, target, err)
	}
	return nil
}

// cgroupMounts lists where bindV2OnlyControllers mounted controllers.
func cgroupMounts(controllers []string) string {
	var ps []string
	for _, c := range controllers {
		ps = append(ps, filepath.Join(hostCgroups.root, c))
	}
	return strings.Join(ps, " ")
}

// mountPoint tells whether dir is on another file system than its parent.
func mountPoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

func onV2(root, c string) bool {
	cs, _ := readControllers(filepath.Join(root, "unified", "cgroup.controllers"))
	return slices.Contains(cs, c)
}

func readControllers(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cgroup controllers: %w", err)
	}
	return strings.Fields(string(b)), nil
}

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
