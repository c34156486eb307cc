package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("volumes need root (loop devices, mount)")
	}
	for _, b := range []string{"mkfs.ext4", "resize2fs", "e2fsck", "losetup"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed: apt-get install -y e2fsprogs util-linux", b)
		}
	}
}

type fakeMachines map[string]*supervisor.Record

func (f fakeMachines) Get(ctx context.Context, app, id string) (*supervisor.Record, error) {
	if r, ok := f[id]; ok {
		return r, nil
	}
	return nil, supervisor.ErrNotFound
}

func newManager(t *testing.T) *Manager {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(st, dir, "tst", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Unmount and detach everything, even when the test failed.
	t.Cleanup(func() {
		vols, _ := m.List(context.Background(), "")
		for _, v := range vols {
			if err := m.teardown(v.ID); err != nil {
				t.Errorf("cleanup volume %s: %v", v.ID, err)
			}
		}
		st.Close()
	})
	return m
}

func TestCreateWriteSnapshotRestoreForkExtend(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	v, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "data", SizeMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	if v.SizeMB != 64 || v.Blocks == 0 || v.SnapshotRetention != types.DefaultSnapshotRetention || !v.AutoBackupEnabled || v.FSType != "ext4" {
		t.Fatalf("volume: %+v", v)
	}
	// The image is sparse: it does not take 64 MB of the host.
	var st syscall.Stat_t
	_ = syscall.Stat(m.imagePath(v.ID), &st)
	if st.Blocks*512 > 32<<20 {
		t.Fatalf("image uses %d bytes on the host", st.Blocks*512)
	}
	mnt := m.mountPath(v.ID)
	if err := os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := m.CreateSnapshot(ctx, "app", v.ID, SnapshotOnDemand)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot: frozen %d ms, image %d bytes, stored %d bytes", snap.FrozenMS, snap.Size, snap.StoredSize)
	if snap.StoredSize <= 0 || snap.StoredSize > snap.Size/4 || !strings.HasPrefix(snap.Digest, "sha256:") {
		t.Fatalf("snapshot not compressed: %+v", snap)
	}
	if err := os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("after"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "b.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}

	restored, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "data", SnapshotID: snap.ID, SizeMB: 96})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(m.mountPath(restored.ID), "a.txt")); string(b) != "before" {
		t.Fatalf("restored content %q", b)
	}
	if _, err := os.Stat(filepath.Join(m.mountPath(restored.ID), "b.txt")); !os.IsNotExist(err) {
		t.Fatalf("restored volume has a file written after the snapshot: %v", err)
	}
	if restored.Blocks*restored.BlockSize < 80<<20 {
		t.Fatalf("restored into a bigger volume, but the filesystem was not grown: %+v", restored)
	}

	fork, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "copy", SourceVolumeID: v.ID})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(m.mountPath(fork.ID), "b.txt")); string(b) != "new" {
		t.Fatalf("fork content %q", b)
	}

	// Extend online, while mounted; never shrink.
	before := v.Blocks
	v2, restart, err := m.Extend(ctx, "app", v.ID, 0, 128)
	if err != nil || restart {
		t.Fatal(err, restart)
	}
	if v2.Blocks < before*3/2 || v2.SizeMB != 128 {
		t.Fatalf("after extend: %d blocks (before %d)", v2.Blocks, before)
	}
	if b, _ := os.ReadFile(filepath.Join(mnt, "a.txt")); string(b) != "after" {
		t.Fatalf("data after extend %q", b)
	}
	if _, _, err := m.Extend(ctx, "app", v.ID, 0, 100); !errors.Is(err, ErrInvalid) {
		t.Fatalf("shrink: %v", err)
	}

	snaps, _ := m.Snapshots(ctx, "app", v.ID)
	if len(snaps) != 1 || snaps[0].ID != snap.ID {
		t.Fatalf("snapshots: %+v", snaps)
	}
	if _, err := m.Destroy(ctx, "app", fork.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.volDir(fork.ID)); !os.IsNotExist(err) {
		t.Fatalf("destroyed volume's files left: %v", err)
	}
	// Deleting the app removes its volumes and snapshots.
	if err := m.DeleteApp(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if vs, _ := m.List(ctx, "app"); len(vs) != 0 {
		t.Fatalf("volumes after DeleteApp: %d", len(vs))
	}
	if ss, _ := m.Snapshots(ctx, "app", ""); len(ss) != 0 {
		t.Fatalf("snapshots after DeleteApp: %d", len(ss))
	}
	if _, err := os.Stat(m.snapPath(snap.ID)); !os.IsNotExist(err) {
		t.Fatal("snapshot file left after DeleteApp")
	}
}

func TestFullVolumeIsENOSPC(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	v, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "small", SizeMB: 16})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(m.mountPath(v.ID), "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{1}, 1<<20)
	var werr error
	written := 0
	for i := 0; i < 64 && werr == nil; i++ {
		var n int
		n, werr = f.Write(buf)
		written += n
		if werr == nil {
			werr = f.Sync()
		}
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("wrote %d bytes, error %v; want ENOSPC", written, werr)
	}
	if written > 16<<20 {
		t.Fatalf("wrote %d bytes into a 16 MB volume", written)
	}
}

func TestAttachIsExclusive(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	machines := fakeMachines{
		"m1": {App: "app", Machine: types.Machine{ID: "m1", State: types.StateStarted}},
		"m2": {App: "app", Machine: types.Machine{ID: "m2", State: types.StateCreated}},
	}
	m.Machines = machines
	mt := types.MachineMount{Name: "pgdata", Path: "/data", SizeGB: 1, SnapshotRetention: 14}
	v1, err := m.Attach(ctx, machines["m1"], mt)
	if err != nil {
		t.Fatal(err)
	}
	if v1.AttachedMachineID == nil || *v1.AttachedMachineID != "m1" || v1.SizeGB != 1 {
		t.Fatalf("auto-created volume: %+v", v1)
	}
	if v1.SnapshotRetention != 14 {
		t.Fatalf("auto-created volume keeps snapshots %d days, want the mount's 14", v1.SnapshotRetention)
	}
	// m1 again: the same volume (pinned).
	if again, err := m.Attach(ctx, machines["m1"], mt); err != nil || again.ID != v1.ID {
		t.Fatalf("re-attach: %v %v", again, err)
	}
	// m2 cannot take it while m1 exists.
	m2 := machines["m2"]
	_, err = m.Attach(ctx, m2, mt)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "attached to machine m1") {
		t.Fatalf("second attach: %v", err)
	}
	if _, err := m.Destroy(ctx, "app", v1.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("destroy of an attached volume: %v", err)
	}
	if err := m.Detach(ctx, "app", "m1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("detach from a running machine: %v", err)
	}
	// A deploy: m1 (release 1) stopped, m3 of release 2 of the same group
	// takes the volume; m2 (no release) still cannot.
	rel := func(id, state, v string) *supervisor.Record {
		return &supervisor.Record{App: "app", Machine: types.Machine{ID: id, State: state, Config: &types.MachineConfig{
			Metadata: map[string]string{types.MetaRelease: v, types.MetaProcessGroup: "app"}}}}
	}
	machines["m1"] = rel("m1", types.StateStarted, "1")
	m3 := rel("m3", types.StateCreated, "2")
	machines["m3"] = m3
	if _, err := m.Attach(ctx, m3, mt); !errors.Is(err, ErrConflict) {
		t.Fatalf("took the volume of a running machine: %v", err)
	}
	machines["m1"].State = types.StateStopped
	if _, err := m.Attach(ctx, m2, mt); !errors.Is(err, ErrConflict) {
		t.Fatalf("a machine that is not a newer release took a stopped machine's volume: %v", err)
	}
	if v3, err := m.Attach(ctx, m3, mt); err != nil || *v3.AttachedMachineID != "m3" {
		t.Fatalf("deploy takeover: %v %v", v3, err)
	}
	// m3 destroyed: the volume is free for m2.
	delete(machines, "m3")
	v2, err := m.Attach(ctx, m2, mt)
	if err != nil || v2.ID != v1.ID {
		t.Fatalf("attach after the holder is gone: %v %v", v2, err)
	}
	if _, err := m.Attach(ctx, m2, types.MachineMount{Name: "x", Path: "../etc"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad path: %v", err)
	}
}

// TestProvision: a scale's new machines get volumes of the size of the
// existing ones (with the mount's retention), free ones count, a volume
// whose machine is gone is free, and a mount by ID needs nothing.
func TestProvision(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	machines := fakeMachines{"m1": {App: "app", Machine: types.Machine{ID: "m1", State: types.StateStarted}}}
	m.Machines = machines
	first, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "data", SizeMB: 48})
	if err != nil {
		t.Fatal(err)
	}
	mt := types.MachineMount{Name: "data", Path: "/data", SizeGB: 3, SnapshotRetention: 14}
	if _, err := m.Attach(ctx, machines["m1"], mt); err != nil {
		t.Fatal(err)
	}
	created, err := m.Provision(ctx, "app", mt, 2)
	if err != nil || len(created) != 2 {
		t.Fatalf("provision 2: %v %v", created, err)
	}
	for _, id := range created {
		v, err := m.Get(ctx, "app", id)
		if err != nil {
			t.Fatal(err)
		}
		if v.SizeMB != 48 || v.SnapshotRetention != 14 || v.Name != "data" || v.AttachedMachineID != nil {
			t.Fatalf("provisioned volume: %+v; want 48 MB like %s, retention 14, free", v, first.ID)
		}
	}
	// Two are free now: nothing more to make.
	if again, err := m.Provision(ctx, "app", mt, 2); err != nil || len(again) != 0 {
		t.Fatalf("provision 2 with 2 free: %v %v", again, err)
	}
	// m1 gone: its volume is free too.
	delete(machines, "m1")
	if again, err := m.Provision(ctx, "app", mt, 3); err != nil || len(again) != 0 {
		t.Fatalf("provision 3 with 3 free: %v %v", again, err)
	}
	if none, err := m.Provision(ctx, "app", types.MachineMount{Volume: first.ID, Path: "/data"}, 2); err != nil || len(none) != 0 {
		t.Fatalf("provision of a mount by id: %v %v", none, err)
	}
	// A name with no volume yet: the mount's size.
	if got, err := m.Provision(ctx, "other", types.MachineMount{Name: "logs", Path: "/logs", SizeGB: 0}, 1); err != nil || len(got) != 1 {
		t.Fatalf("provision for a new name: %v %v", got, err)
	} else if v, _ := m.Get(ctx, "other", got[0]); v == nil || v.SizeMB != 1024 || v.SnapshotRetention != types.DefaultSnapshotRetention {
		t.Fatalf("new-name volume: %+v; want 1 GB and the default retention", v)
	}
}

func TestRecoverRemountsAfterReboot(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	v, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "data", SizeMB: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.mountPath(v.ID), "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a reboot leaves: no mount, no loop device.
	dev, _ := m.loopOf(ctx, v.ID)
	if err := syscall.Unmount(m.mountPath(v.ID), 0); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, "losetup", "-d", dev); err != nil {
		t.Fatal(err)
	}
	// And a half-created volume directory.
	_ = os.MkdirAll(filepath.Join(m.dir, "volumes", "vol_leftover", "mnt"), 0o700)
	if err := m.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(m.mountPath(v.ID), "f")); string(b) != "kept" {
		t.Fatalf("after recover: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "volumes", "vol_leftover")); !os.IsNotExist(err) {
		t.Fatal("leftover not removed")
	}
	// Recover is idempotent.
	if err := m.Recover(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTickSchedulesAndExpires(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	v, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "data", SizeMB: 16, SnapshotRetention: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC3339, v.CreatedAt)
	if err := m.Tick(ctx, created.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Snapshots(ctx, "app", v.ID); len(s) != 0 {
		t.Fatalf("snapshot before a day passed: %+v", s)
	}
	day := created.Add(25 * time.Hour)
	m.now = func() time.Time { return day }
	if err := m.Tick(ctx, day); err != nil {
		t.Fatal(err)
	}
	s, _ := m.Snapshots(ctx, "app", v.ID)
	if len(s) != 1 || s[0].Type != SnapshotScheduled {
		t.Fatalf("scheduled snapshot: %+v", s)
	}
	// Same day: no second one.
	if err := m.Tick(ctx, day.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Snapshots(ctx, "app", v.ID); len(s) != 1 {
		t.Fatalf("two snapshots in a day: %d", len(s))
	}
	// After the retention (2 days) it expires; a new one is cut that day.
	later := day.Add(49 * time.Hour)
	m.now = func() time.Time { return later }
	if err := m.Tick(ctx, later); err != nil {
		t.Fatal(err)
	}
	s2, _ := m.Snapshots(ctx, "app", v.ID)
	if len(s2) != 1 || s2[0].ID == s[0].ID {
		t.Fatalf("after expiry: %+v", s2)
	}
	if _, err := os.Stat(m.snapPath(s[0].ID)); !os.IsNotExist(err) {
		t.Fatal("expired snapshot file left")
	}
}

func ptr[T any](v T) *T { return &v }

type memImage struct{ b []byte }

func (m *memImage) Truncate(n int64) error {
	if n > 64<<20 {
		return errors.New("too big")
	}
	m.b = make([]byte, n)
	return nil
}

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write outside the image")
	}
	return copy(m.b[off:], p), nil
}

func TestSnapshotFormatRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img")
	f, _ := os.Create(p)
	_ = f.Truncate(8 << 20)
	_, _ = f.WriteAt([]byte("head"), 0)
	_, _ = f.WriteAt(bytes.Repeat([]byte("x"), 5000), 3<<20)
	f.Close()
	var buf bytes.Buffer
	size, err := writeSnapshot(p, &buf)
	if err != nil || size != 8<<20 {
		t.Fatal(size, err)
	}
	var img memImage
	if n, err := readSnapshot(bytes.NewReader(buf.Bytes()), &img, 64<<20); err != nil || n != 8<<20 {
		t.Fatal(n, err)
	}
	want, _ := os.ReadFile(p)
	if !bytes.Equal(img.b, want) {
		t.Fatal("round trip differs")
	}
	if _, err := readSnapshot(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), &img, 64<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated snapshot: %v", err)
	}
}

func FuzzReadSnapshot(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "img")
	fh, _ := os.Create(p)
	_ = fh.Truncate(1 << 20)
	_, _ = fh.WriteAt([]byte("data"), 4096)
	fh.Close()
	var buf bytes.Buffer
	if _, err := writeSnapshot(p, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(snapMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var img memImage
		// A hostile file errors; it never writes outside the image or
		// allocates beyond the limit (memImage enforces both).
		n, err := readSnapshot(bytes.NewReader(b), &img, 16<<20)
		if err == nil && int64(len(img.b)) != n {
			t.Fatalf("size %d but image %d", n, len(img.b))
		}
	})
}

func TestAutoExtend(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	r := &supervisor.Record{App: "app", Machine: types.Machine{ID: "m1", State: types.StateStopped}}
	m.Machines = fakeMachines{"m1": r}
	mt := types.MachineMount{Name: "grow", Path: "/data", ExtendThresholdPercent: 50, AddSizeGB: 1, SizeGBLimit: 1}
	if _, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "grow", SizeMB: 32}); err != nil {
		t.Fatal(err)
	}
	v, err := m.Attach(ctx, r, mt)
	if err != nil {
		t.Fatal(err)
	}
	if v.AutoExtend == nil || v.AutoExtend.ThresholdPercent != 50 {
		t.Fatalf("auto_extend not recorded: %+v", v.AutoExtend)
	}
	now := time.Now()
	if err := m.Tick(ctx, now); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(ctx, "app", v.ID); v.SizeMB != 32 {
		t.Fatalf("extended below the threshold: %d MB", v.SizeMB)
	}
	if err := os.WriteFile(filepath.Join(m.mountPath(v.ID), "big"), bytes.Repeat([]byte{7}, 20<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Tick(ctx, now); err != nil {
		t.Fatal(err)
	}
	// 32 MB + 1 GB is over the 1 GB limit: it grows to the limit.
	v, _ = m.Get(ctx, "app", v.ID)
	if v.SizeMB != 1024 || v.Blocks*v.BlockSize < 900<<20 {
		t.Fatalf("after auto-extend: %d MB, %d blocks of %d", v.SizeMB, v.Blocks, v.BlockSize)
	}
	if b, _ := os.ReadFile(filepath.Join(m.mountPath(v.ID), "big")); len(b) != 20<<20 {
		t.Fatalf("data after auto-extend: %d bytes", len(b))
	}
}

// TestAutoExtendWaitsForTheFilesystem: where the filesystem cannot grow
// online (no CAP_SYS_RESOURCE; this test marks the extension pending, as
// Extend does then), a volume over its threshold is not extended again on
// every tick; it is once the filesystem has caught up, and never past its
// limit.
func TestAutoExtendWaitsForTheFilesystem(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	m := newManager(t)
	r := &supervisor.Record{App: "app", Machine: types.Machine{ID: "m1", State: types.StateStopped}}
	m.Machines = fakeMachines{"m1": r}
	mt := types.MachineMount{Name: "grow", Path: "/data", ExtendThresholdPercent: 50, AddSizeGB: 1, SizeGBLimit: 2}
	if _, err := m.Create(ctx, "app", CreateRequest{Name: "grow", SizeMB: 32}); err != nil {
		t.Fatal(err)
	}
	v, err := m.Attach(ctx, r, mt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.mountPath(v.ID), "big"), bytes.Repeat([]byte{7}, 20<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.update(ctx, "app", v.ID, func(v *Volume) error { v.ResizePending = true; return nil }); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < 3; i++ {
		if err := m.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := m.Get(ctx, "app", v.ID); v.SizeMB != 32 {
		t.Fatalf("extended while the last extension had not reached the filesystem: %d MB", v.SizeMB)
	}

	// The filesystem caught up (the machine restarted): one extension per
	// tick while it stays over the threshold, to the 2 GB limit, no further.
	if _, err := m.update(ctx, "app", v.ID, func(v *Volume) error { v.ResizePending = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := m.Tick(ctx, now); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get(ctx, "app", v.ID); v.SizeMB != 32+1024 {
		t.Fatalf("after one tick over the threshold: %d MB, want %d", v.SizeMB, 32+1024)
	}
	// Over the threshold again (a full disk), a second tick grows it to
	// the limit and a third leaves it there.
	if err := os.WriteFile(filepath.Join(m.mountPath(v.ID), "bigger"), bytes.Repeat([]byte{8}, 600<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := m.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := m.Get(ctx, "app", v.ID); v.SizeMB != 2048 {
		t.Fatalf("after two more ticks: %d MB, want the 2048 MB limit", v.SizeMB)
	}
}

// BenchmarkSnapshot cuts snapshots of a 1 GB volume holding 256 MB of
// data and reports how long the filesystem stays frozen.
func BenchmarkSnapshot(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m, err := New(st, dir, "tst", nil)
	if err != nil {
		b.Fatal(err)
	}
	v, err := m.Create(ctx, "app", types.CreateVolumeRequest{Name: "bench", SizeGB: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.teardown(v.ID)
	chunk := make([]byte, 1<<20)
	_, _ = rand.Read(chunk) // incompressible: the stored size is honest
	f, err := os.Create(filepath.Join(m.mountPath(v.ID), "data"))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 256; i++ {
		_, _ = rand.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	var frozen, stored int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := m.CreateSnapshot(ctx, "app", v.ID, SnapshotOnDemand)
		if err != nil {
			b.Fatal(err)
		}
		frozen += s.FrozenMS
		stored = s.StoredSize
		_ = m.deleteSnapshot(ctx, s)
	}
	b.ReportMetric(float64(frozen)/float64(b.N), "frozen-ms/op")
	b.ReportMetric(float64(stored)/(1<<20), "stored-MB")
}

// TestVolumesOfOtherHosts: a volume records its host; another host's
// manager on the same state never tears it down (not even in Recover's
// sweep of unfinished volumes), never snapshots it and leaves it to its
// host when the app is deleted.
func TestVolumesOfOtherHosts(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	a := newManager(t)
	a.HostID = "a"
	v, err := a.Create(ctx, "app", types.CreateVolumeRequest{Name: "data", SizeMB: 16})
	if err != nil {
		t.Fatal(err)
	}
	if v.HostID != "a" {
		t.Fatalf("volume host %q, want a", v.HostID)
	}
	if _, err := a.CreateSnapshot(ctx, "app", v.ID, SnapshotOnDemand); err != nil {
		t.Fatal(err)
	}
	b, err := New(a.st, a.dir, "tst", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.HostID = "b"
	if err := b.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.imagePath(v.ID)); err != nil {
		t.Fatalf("another host's Recover removed the volume's image: %v", err)
	}
	if err := b.DeleteApp(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "app", v.ID); err != nil {
		t.Fatalf("another host's app cleanup removed the volume: %v", err)
	}
	if snaps, _ := a.Snapshots(ctx, "app", v.ID); len(snaps) != 1 || snaps[0].HostID != "a" {
		t.Fatalf("snapshots after another host's app cleanup: %+v; want a's one", snaps)
	}
	if err := a.DeleteApp(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.imagePath(v.ID)); !os.IsNotExist(err) {
		t.Fatalf("its host's app cleanup left the image: %v", err)
	}
}
