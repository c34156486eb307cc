// Package volume owns volumes: each one its own size-limited ext4
// filesystem in a sparse image file on a loop device, mounted on the host
// under the data dir and bind-mounted into the one machine it is attached
// to. A full volume returns ENOSPC inside the machine and cannot fill the
// host. Volumes grow online (truncate, loop capacity, resize2fs), never
// shrink, and have snapshots: cut with the filesystem frozen (FIFREEZE),
// stored zstd-compressed with holes skipped, restorable into a new volume;
// scheduled daily with a retention in days.
//
// Lifecycle of a volume:
//
//	create ─▶ created (mounted on the host) ─attach─▶ attached to machine M
//	                 ▲                                  │ M destroyed
//	                 └──────────── released ◀───────────┘
//	created ─destroy─▶ (gone; its snapshots stay until they expire)
//
// On the host: <data>/volumes/<id>/image, <data>/volumes/<id>/mnt;
// snapshots in <data>/snapshots/<id>.snap. State: volumes/<app>/<id> and
// volsnaps/<app>/<snapshot id>.
package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
	"golang.org/x/sys/unix"
)

// Error categories (the API maps them to status codes).
var (
	ErrNotFound = types.NewError(types.ErrNotFound, "volume not found")
	ErrInvalid  = types.NewError(types.ErrInvalid, "invalid volume request")
	ErrConflict = types.NewError(types.ErrConflict, "volume conflict")
)

// Limits, as on Fly.io (the default retention is types.DefaultSnapshotRetention).
const (
	MaxSnapshotRetention = 60
	MaxSizeGB            = 500
	FSType               = "ext4"
)

// Bridges for packages that still name the wire types here; new code uses
// the types package.
type (
	// Deprecated: use types.Volume.
	Volume = types.Volume
	// Deprecated: use types.VolumeSnapshot.
	Snapshot = types.VolumeSnapshot
	// Deprecated: use types.CreateVolumeRequest.
	CreateRequest = types.CreateVolumeRequest
)

// Machines is what the manager needs of the supervisor: whether a machine
// still exists.
type Machines interface {
	Get(ctx context.Context, app, id string) (*supervisor.Record, error)
}

// Manager creates, attaches, grows, snapshots and destroys the volumes of
// this host.
type Manager struct {
	st     store.Store
	dir    string
	region string
	log    *slog.Logger
	now    func() time.Time
	// Machines tells whether an attached machine still exists; set it before
	// machines start (the daemon sets it to the supervisor).
	Machines Machines
	// HostID is this host's id: volumes it creates record it, and it
	// mounts only its own (set before Recover).
	HostID string

	mu    sync.Mutex // guards locks
	locks map[string]*sync.Mutex
}

// New returns a volume manager keeping images under dataDir/volumes.
func New(st store.Store, dataDir, region string, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	for _, d := range []string{"volumes", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("volumes: %w", err)
		}
	}
	return &Manager{st: st, dir: dataDir, region: region, log: log.With("component", "volume"), now: time.Now, locks: map[string]*sync.Mutex{}}, nil
}

// lock serialises operations on one volume.
func (m *Manager) lock(id string) func() {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[id] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func volKey(app, id string) string  { return "volumes/" + app + "/" + id }
func snapKey(app, id string) string { return "volsnaps/" + app + "/" + id }

func (m *Manager) volDir(id string) string    { return filepath.Join(m.dir, "volumes", id) }
func (m *Manager) imagePath(id string) string { return filepath.Join(m.volDir(id), "image") }
func (m *Manager) mountPath(id string) string { return filepath.Join(m.volDir(id), "mnt") }
func (m *Manager) snapPath(id string) string  { return filepath.Join(m.dir, "snapshots", id+".snap") }
func (m *Manager) MountPath(id string) string { return m.mountPath(id) }

const idChars = "0123456789abcdefghijklmnopqrstuvwxyz"

func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idChars[int(b[i])%len(idChars)]
	}
	return prefix + string(b)
}

var nameRE = regexp.MustCompile(`^[a-z0-9_]{1,30}$`)

// Create makes a new volume: empty, restored from a snapshot, or forked
// from another volume of the app.
func (m *Manager) Create(ctx context.Context, app string, req types.CreateVolumeRequest) (*types.Volume, error) {
	if !nameRE.MatchString(req.Name) {
		return nil, fmt.Errorf("volume name %q: use up to 30 lowercase letters, digits and underscores: %w", req.Name, ErrInvalid)
	}
	if req.Region != "" && req.Region != m.region {
		return nil, fmt.Errorf("region %q: this host is region %q: %w", req.Region, m.region, ErrInvalid)
	}
	if req.FSType != "" && req.FSType != FSType {
		return nil, fmt.Errorf("fstype %q: Hangar volumes are ext4: %w", req.FSType, ErrInvalid)
	}
	if req.SnapshotID != "" && req.SourceVolumeID != "" {
		return nil, fmt.Errorf("give snapshot_id or source_volume_id, not both: %w", ErrInvalid)
	}
	sizeMB := req.SizeGB * 1024
	if req.SizeMB > 0 {
		sizeMB = req.SizeMB
	}
	if req.SizeGB < 0 || req.SizeMB < 0 || sizeMB > MaxSizeGB*1024 || (sizeMB != 0 && sizeMB < 16) {
		return nil, fmt.Errorf("size: 1 to %d GB (size_mb at least 16): %w", MaxSizeGB, ErrInvalid)
	}
	retention := types.DefaultSnapshotRetention
	if req.SnapshotRetention != nil {
		retention = *req.SnapshotRetention
	}
	if retention < 1 || retention > MaxSnapshotRetention {
		return nil, fmt.Errorf("snapshot_retention %d: 1 to %d days: %w", retention, MaxSnapshotRetention, ErrInvalid)
	}
	var source func(image string) error
	var srcSizeMB int
	switch {
	case req.SnapshotID != "":
		snap, err := m.GetSnapshot(ctx, app, req.SnapshotID)
		if err != nil {
			return nil, err
		}
		srcSizeMB = snap.VolumeSizeMB
		source = func(image string) error { return m.restoreInto(snap, image) }
	case req.SourceVolumeID != "":
		src, err := m.Get(ctx, app, req.SourceVolumeID)
		if err != nil {
			return nil, err
		}
		srcSizeMB = src.SizeMB
		source = func(image string) error {
			unlock := m.lock(src.ID)
			defer unlock()
			_, err := m.frozen(src.ID, func() error { return sparseCopy(m.imagePath(src.ID), image) })
			return err
		}
	}
	if sizeMB == 0 {
		sizeMB = srcSizeMB
	}
	if sizeMB == 0 {
		sizeMB = 1024
	}
	if sizeMB < srcSizeMB {
		return nil, fmt.Errorf("size %d MB is smaller than the source's %d MB; volumes never shrink: %w", sizeMB, srcSizeMB, ErrInvalid)
	}
	v := &types.Volume{
		ID: newID("vol_"), Name: req.Name, App: app, State: "created", SizeMB: sizeMB, SizeGB: gb(sizeMB),
		Region: m.region, Zone: "local", FSType: FSType, CreatedAt: m.now().UTC().Format(time.RFC3339),
		SnapshotRetention: retention, AutoBackupEnabled: req.AutoBackupEnabled == nil || *req.AutoBackupEnabled,
		SourceSnapshotID: req.SnapshotID, SourceVolumeID: req.SourceVolumeID, HostStatus: "ok",
		HostID: m.HostID,
	}
	unlock := m.lock(v.ID)
	defer unlock()
	if err := m.makeImage(ctx, v, source, srcSizeMB); err != nil {
		m.teardown(v.ID)
		return nil, fmt.Errorf("create volume %s: %w", req.Name, err)
	}
	if _, err := store.PutJSON(ctx, m.st, volKey(app, v.ID), v, 0); err != nil {
		m.teardown(v.ID)
		return nil, fmt.Errorf("create volume %s: %w", req.Name, err)
	}
	m.log.Info("volume created", "app", app, "volume", v.ID, "name", v.Name, "size_mb", sizeMB, "snapshot", req.SnapshotID, "source", req.SourceVolumeID)
	m.fillStats(v)
	return v, nil
}

func gb(mb int) int {
	if mb < 1024 {
		return 0
	}
	return mb / 1024
}

// makeImage creates the image (empty ext4, or from source), attaches it to
// a loop device and mounts it.
func (m *Manager) makeImage(ctx context.Context, v *types.Volume, source func(string) error, srcSizeMB int) error {
	if err := os.MkdirAll(m.mountPath(v.ID), 0o700); err != nil {
		return err
	}
	img := m.imagePath(v.ID)
	if source == nil {
		f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(v.SizeMB) << 20)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := run(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-L", label(v.Name), "-E", "lazy_itable_init=0,lazy_journal_init=0", img); err != nil {
			return err
		}
	} else {
		if err := source(img); err != nil {
			return err
		}
		if err := os.Truncate(img, int64(v.SizeMB)<<20); err != nil {
			return err
		}
		// A restored filesystem is checked before use; a grown one resized.
		if err := fsck(ctx, img); err != nil {
			return err
		}
		if v.SizeMB > srcSizeMB {
			if err := run(ctx, "resize2fs", img); err != nil {
				return err
			}
		}
	}
	return m.mount(ctx, v.ID)
}

func label(name string) string {
	if len(name) > 16 {
		return name[:16]
	}
	return name
}

// loopOf returns the loop device backing the volume's image, or "".
func (m *Manager) loopOf(ctx context.Context, id string) (string, error) {
	out, err := output(ctx, "losetup", "-n", "-O", "NAME", "-j", m.imagePath(id))
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", nil
	}
	return f[0], nil
}

// mounted reports whether path is a mount point.
func mounted(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// mount attaches the image to a loop device (unless it is) and mounts it
// (unless it is). Idempotent: used at create and at daemon start.
func (m *Manager) mount(ctx context.Context, id string) error {
	mnt := m.mountPath(id)
	if mounted(mnt) {
		return nil
	}
	dev, err := m.loopOf(ctx, id)
	if err != nil {
		return err
	}
	if dev == "" {
		if dev, err = output(ctx, "losetup", "--find", "--show", m.imagePath(id)); err != nil {
			return err
		}
		dev = strings.TrimSpace(dev)
	}
	if err := unix.Mount(dev, mnt, FSType, unix.MS_NOSUID|unix.MS_NODEV, "discard"); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, mnt, err)
	}
	return nil
}

// teardown unmounts, detaches and removes a volume's files.
func (m *Manager) teardown(id string) error {
	ctx := context.Background()
	mnt := m.mountPath(id)
	if mounted(mnt) {
		if err := unix.Unmount(mnt, 0); err != nil {
			return fmt.Errorf("unmount %s: %w (is something on the host using it?)", mnt, err)
		}
	}
	if dev, err := m.loopOf(ctx, id); err == nil && dev != "" {
		if err := run(ctx, "losetup", "-d", dev); err != nil {
			return err
		}
	}
	return os.RemoveAll(m.volDir(id))
}

// Get returns one volume with its current usage.
func (m *Manager) Get(ctx context.Context, app, id string) (*types.Volume, error) {
	var v types.Volume
	if _, err := store.GetJSON(ctx, m.st, volKey(app, id), &v); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("volume %s of app %s: %w", id, app, ErrNotFound)
		}
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	m.fillStats(&v)
	m.showHolder(ctx, &v)
	return &v, nil
}

// List returns an app's volumes (all apps for ""), oldest first.
func (m *Manager) List(ctx context.Context, app string) ([]*types.Volume, error) {
	return m.list(ctx, app, true)
}

// list is List; records are shown as stored unless decorate.
func (m *Manager) list(ctx context.Context, app string, decorate bool) ([]*types.Volume, error) {
	prefix := "volumes/"
	if app != "" {
		prefix += app + "/"
	}
	kvs, err := m.st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := make([]*types.Volume, 0, len(kvs))
	for _, kv := range kvs {
		var v types.Volume
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("volume record %s: %w", kv.Key, err)
		}
		m.fillStats(&v)
		if decorate {
			m.showHolder(ctx, &v)
		}
		out = append(out, &v)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt < out[j].CreatedAt || (out[i].CreatedAt == out[j].CreatedAt && out[i].ID < out[j].ID)
	})
	return out, nil
}

func (m *Manager) fillStats(v *types.Volume) {
	if !m.mine(v) {
		return // mounted on its own host; its usage is read there
	}
	var st unix.Statfs_t
	if !mounted(m.mountPath(v.ID)) || unix.Statfs(m.mountPath(v.ID), &st) != nil {
		v.HostStatus = "unreachable"
		return
	}
	v.BlockSize, v.Blocks, v.BlocksFree, v.BlocksAvail = int(st.Bsize), int(st.Blocks), int(st.Bfree), int(st.Bavail)
}

func (m *Manager) update(ctx context.Context, app, id string, fn func(v *types.Volume) error) (*types.Volume, error) {
	v, _, err := store.UpdateJSON(ctx, m.st, volKey(app, id), func(cur *types.Volume) (*types.Volume, error) {
		if cur == nil {
			return nil, fmt.Errorf("volume %s of app %s: %w", id, app, ErrNotFound)
		}
		if err := fn(cur); err != nil {
			return nil, err
		}
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	m.fillStats(v)
	return v, nil
}

// SetRetention changes a volume's snapshot retention (Fly's volume update).
func (m *Manager) SetRetention(ctx context.Context, app, id string, days *int, autoBackup *bool) (*types.Volume, error) {
	if days != nil && (*days < 1 || *days > MaxSnapshotRetention) {
		return nil, fmt.Errorf("snapshot_retention %d: 1 to %d days: %w", *days, MaxSnapshotRetention, ErrInvalid)
	}
	return m.update(ctx, app, id, func(v *types.Volume) error {
		if days != nil {
			v.SnapshotRetention = *days
		}
		if autoBackup != nil {
			v.AutoBackupEnabled = *autoBackup
		}
		return nil
	})
}

// showHolder clears the attachment of a volume whose machine is gone
// (the record is released by the next Tick or attach).
func (m *Manager) showHolder(ctx context.Context, v *types.Volume) {
	if v.AttachedMachineID == nil || m.Machines == nil {
		return
	}
	if h, err := m.holder(ctx, v); err == nil && h == nil {
		v.AttachedMachineID, v.AttachedAllocID, v.AttachedMountPoint = nil, nil, ""
	}
}

// DeleteApp destroys every volume and snapshot of an app, once its
// machines are gone (for deleting the app).
func (m *Manager) DeleteApp(ctx context.Context, app string) error {
	vols, err := m.List(ctx, app)
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		if !m.mine(v) {
			continue // its host's cleaner destroys it
		}
		if _, err := m.Destroy(ctx, app, v.ID); err != nil {
			errs = append(errs, err)
		}
	}
	snaps, err := m.Snapshots(ctx, app, "")
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.HostID != "" && s.HostID != m.HostID {
			continue
		}
		if err := m.deleteSnapshot(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// holder returns the machine a volume is attached to, if it still exists.
func (m *Manager) holder(ctx context.Context, v *types.Volume) (*supervisor.Record, error) {
	if v.AttachedMachineID == nil || *v.AttachedMachineID == "" || m.Machines == nil {
		return nil, nil
	}
	r, err := m.Machines.Get(ctx, v.App, *v.AttachedMachineID)
	if errors.Is(err, supervisor.ErrNotFound) {
		return nil, nil
	}
	return r, err
}

// Destroy removes a volume that no existing machine holds. Its snapshots
// stay until their retention ends.
func (m *Manager) Destroy(ctx context.Context, app, id string) (*types.Volume, error) {
	unlock := m.lock(id)
	defer unlock()
	v, err := m.Get(ctx, app, id)
	if err != nil {
		return nil, err
	}
	h, err := m.holder(ctx, v)
	if err != nil {
		return nil, err
	}
	if h != nil {
		return nil, fmt.Errorf("volume %s is attached to machine %s (%s); destroy the machine first (`hangar machine destroy %s --force`): %w", id, h.ID, h.State, h.ID, ErrConflict)
	}
	if err := m.teardown(id); err != nil {
		return nil, fmt.Errorf("destroy volume %s: %w", id, err)
	}
	if _, err := m.st.Delete(ctx, volKey(app, id), store.AnyRevision); err != nil {
		return nil, fmt.Errorf("destroy volume %s: %w", id, err)
	}
	v.State = "destroyed"
	m.log.Info("volume destroyed", "app", app, "volume", id)
	return v, nil
}

// Extend grows a volume to sizeGB (or sizeMB when > 0) online: the image
// file, the loop device's capacity and the mounted filesystem grow while
// the machine runs. It returns whether a restart is needed (never, here).
func (m *Manager) Extend(ctx context.Context, app, id string, sizeGB, sizeMB int) (*types.Volume, bool, error) {
	unlock := m.lock(id)
	defer unlock()
	v, err := m.Get(ctx, app, id)
	if err != nil {
		return nil, false, err
	}
	want := sizeGB * 1024
	if sizeMB > 0 {
		want = sizeMB
	}
	if want <= v.SizeMB {
		return nil, false, fmt.Errorf("volume %s is %d MB; the new size must be larger (volumes never shrink): %w", id, v.SizeMB, ErrInvalid)
	}
	if want > MaxSizeGB*1024 {
		return nil, false, fmt.Errorf("size over %d GB: %w", MaxSizeGB, ErrInvalid)
	}
	if err := os.Truncate(m.imagePath(id), int64(want)<<20); err != nil {
		return nil, false, fmt.Errorf("extend volume %s: %w", id, err)
	}
	dev, err := m.loopOf(ctx, id)
	if err != nil || dev == "" {
		return nil, false, fmt.Errorf("extend volume %s: no loop device (%v)", id, err)
	}
	if err := run(ctx, "losetup", "-c", dev); err != nil {
		return nil, false, fmt.Errorf("extend volume %s: %w", id, err)
	}
	needsRestart := false
	if oerr := run(ctx, "resize2fs", dev); oerr != nil {
		// Online growth needs CAP_SYS_RESOURCE; without it the filesystem
		// is grown offline: now if no running machine holds the volume,
		// else when its machine next starts.
		h, err := m.holder(ctx, v)
		if err != nil {
			return nil, false, err
		}
		if h != nil && h.State != types.StateStopped && h.State != types.StateCreated && h.State != types.StateFailed {
			needsRestart = true
			m.log.Warn("online resize failed; the filesystem grows when the machine restarts", "volume", id, "machine", h.ID, "err", oerr)
		} else if err := m.offlineResize(ctx, id); err != nil {
			return nil, false, fmt.Errorf("extend volume %s: online: %v; offline: %w", id, oerr, err)
		}
	}
	v, err = m.update(ctx, app, id, func(v *types.Volume) error {
		v.SizeMB, v.SizeGB = want, gb(want)
		v.ResizePending = needsRestart
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	m.log.Info("volume extended", "app", app, "volume", id, "size_mb", want, "needs_restart", needsRestart)
	return v, needsRestart, nil
}

// Recover runs at daemon start: every volume's image is attached to a loop
// device and mounted again if the host rebooted, a filesystem frozen by a
// daemon that died mid-snapshot is thawed, and leftovers of volumes whose
// creation never finished are removed.
func (m *Manager) Recover(ctx context.Context) error {
	vols, err := m.List(ctx, "")
	if err != nil {
		return err
	}
	known := map[string]bool{}
	var errs []error
	for _, v := range vols {
		known[v.ID] = true // never torn down below, whoever keeps it
		if !m.mine(v) {
			continue // another host's
		}
		if err := m.mount(ctx, v.ID); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", v.ID, err))
			continue
		}
		thaw(m.mountPath(v.ID))
	}
	ents, _ := os.ReadDir(filepath.Join(m.dir, "volumes"))
	for _, e := range ents {
		if e.IsDir() && !known[e.Name()] {
			m.log.Warn("removing a volume whose creation did not finish", "volume", e.Name())
			if err := m.teardown(e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("%s is not installed: apt-get install -y e2fsprogs util-linux", name)
		}
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// fsck checks a restored image. A snapshot is cut from a mounted (frozen)
// filesystem, so e2fsck finds the journal's "needs recovery" flag and
// clears it: exit status 1, "errors corrected", is success here.
func fsck(ctx context.Context, img string) error {
	cmd := exec.CommandContext(ctx, "e2fsck", "-f", "-p", img)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("e2fsck %s: %v: %s", img, err, bytes.TrimSpace(out))
	}
	return nil
}

// offlineResize grows a volume's filesystem to its image size while no
// machine uses it: unmount, check, resize, mount. e2fsck opens the device
// exclusively, so it refuses if a machine still has the filesystem.
func (m *Manager) offlineResize(ctx context.Context, id string) error {
	mnt := m.mountPath(id)
	if mounted(mnt) {
		if err := unix.Unmount(mnt, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
	}
	dev, err := m.loopOf(ctx, id)
	if err == nil && dev == "" {
		err = fmt.Errorf("no loop device")
	}
	if err == nil {
		err = fsck(ctx, dev)
	}
	if err == nil {
		err = run(ctx, "resize2fs", dev)
	}
	if merr := m.mount(ctx, id); err == nil {
		err = merr
	}
	return err
}

// mine reports whether this host keeps v (volumes made before volumes had
// hosts are the single host's).
func (m *Manager) mine(v *types.Volume) bool { return v.HostID == "" || v.HostID == m.HostID }
