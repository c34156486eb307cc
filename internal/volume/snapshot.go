package volume

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// Snapshot types.
const (
	SnapshotOnDemand  = "on-demand"
	SnapshotScheduled = "scheduled"
)

// FIFREEZE and FITHAW freeze and thaw a filesystem (linux/fs.h).
const (
	fiFreeze = 0xC0045877
	fiThaw   = 0xC0045878
)

// frozen runs fn with the volume's filesystem frozen: writes block (they
// do not fail) and the image on disk is consistent. It returns how long the
// filesystem was frozen.
func (m *Manager) frozen(id string, fn func() error) (time.Duration, error) {
	mnt := m.mountPath(id)
	if !mounted(mnt) {
		t0 := time.Now()
		return time.Since(t0), fn()
	}
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", mnt, err)
	}
	defer unix.Close(fd)
	t0 := time.Now()
	if _, err := unix.IoctlGetInt(fd, fiFreeze); err != nil {
		// IoctlGetInt passes a pointer; FIFREEZE ignores its argument.
		return 0, fmt.Errorf("freeze %s: %w", mnt, err)
	}
	ferr := fn()
	_, terr := unix.IoctlGetInt(fd, fiThaw)
	d := time.Since(t0)
	if terr != nil {
		return d, fmt.Errorf("thaw %s: %w", mnt, terr)
	}
	return d, ferr
}

// thaw unfreezes a filesystem left frozen (by a daemon killed mid-snapshot).
func thaw(mnt string) {
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_, _ = unix.IoctlGetInt(fd, fiThaw) // EINVAL when not frozen
}

// CreateSnapshot cuts a consistent snapshot of a volume: the filesystem is
// frozen only while its image is copied (sparse, in the kernel), then the
// copy is compressed into the snapshot store.
func (m *Manager) CreateSnapshot(ctx context.Context, app, id, typ string) (*types.VolumeSnapshot, error) {
	unlock := m.lock(id)
	defer unlock()
	v, err := m.Get(ctx, app, id)
	if err != nil {
		return nil, err
	}
	snap := &types.VolumeSnapshot{ID: newID("vs_"), VolumeID: id, App: app, Status: "created", Type: typ, HostID: m.HostID,
		RetentionDay: v.SnapshotRetention, VolumeSizeMB: v.SizeMB}
	snap.FillVolumeSize()
	tmp := m.snapPath(snap.ID) + ".img"
	defer os.Remove(tmp)
	frozenFor, err := m.frozen(id, func() error { return sparseCopy(m.imagePath(id), tmp) })
	if err != nil {
		return nil, fmt.Errorf("snapshot of volume %s: %w", id, err)
	}
	snap.FrozenMS = frozenFor.Milliseconds()
	f, err := os.CreateTemp(m.dir+"/snapshots", ".tmp-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	size, err := writeSnapshot(tmp, io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot of volume %s: %w", id, err)
	}
	fi, _ := os.Stat(f.Name())
	if err := os.Rename(f.Name(), m.snapPath(snap.ID)); err != nil {
		return nil, err
	}
	now := m.now().UTC()
	snap.Size, snap.StoredSize, snap.Digest = size, fi.Size(), "sha256:"+hex.EncodeToString(h.Sum(nil))
	snap.CreatedAt = now.Format(time.RFC3339)
	snap.ExpiresAt = now.Add(time.Duration(v.SnapshotRetention) * 24 * time.Hour).Format(time.RFC3339)
	if _, err := store.PutJSON(ctx, m.st, snapKey(app, snap.ID), snap, 0); err != nil {
		os.Remove(m.snapPath(snap.ID))
		return nil, fmt.Errorf("snapshot of volume %s: %w", id, err)
	}
	m.log.Info("volume snapshot created", "app", app, "volume", id, "snapshot", snap.ID, "type", typ,
		"frozen_ms", snap.FrozenMS, "size", size, "stored", snap.StoredSize)
	return snap, nil
}

// Snapshots lists an app's snapshots of one volume ("" = all), oldest first.
func (m *Manager) Snapshots(ctx context.Context, app, volumeID string) ([]*types.VolumeSnapshot, error) {
	kvs, err := m.st.List(ctx, "volsnaps/"+app+"/")
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := []*types.VolumeSnapshot{}
	for _, kv := range kvs {
		var s types.VolumeSnapshot
		if err := json.Unmarshal(kv.Value, &s); err != nil {
			return nil, fmt.Errorf("snapshot record %s: %w", kv.Key, err)
		}
		s.FillVolumeSize()
		if volumeID == "" || s.VolumeID == volumeID {
			out = append(out, &s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt < out[j].CreatedAt || (out[i].CreatedAt == out[j].CreatedAt && out[i].ID < out[j].ID)
	})
	return out, nil
}

// GetSnapshot returns one snapshot of the app.
func (m *Manager) GetSnapshot(ctx context.Context, app, id string) (*types.VolumeSnapshot, error) {
	var s types.VolumeSnapshot
	if _, err := store.GetJSON(ctx, m.st, snapKey(app, id), &s); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("snapshot %s of app %s (list them with `hangar volumes snapshots list VOLUME`): %w", id, app, ErrNotFound)
		}
		return nil, err
	}
	s.FillVolumeSize()
	return &s, nil
}

func (m *Manager) deleteSnapshot(ctx context.Context, s *types.VolumeSnapshot) error {
	if err := os.Remove(m.snapPath(s.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_, err := m.st.Delete(ctx, snapKey(s.App, s.ID), store.AnyRevision)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// restoreInto writes a snapshot's image to path (a new sparse file).
func (m *Manager) restoreInto(s *types.VolumeSnapshot, path string) error {
	f, err := os.Open(m.snapPath(s.ID))
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", s.ID, err)
	}
	defer f.Close()
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = readSnapshot(f, out, int64(MaxSizeGB)<<30)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("restore snapshot %s: %w", s.ID, err)
	}
	return nil
}

// Tick does one round of the background work at time now: a scheduled
// snapshot of every volume that wants one and has none from the last 24
// hours, removal of expired snapshots, auto-extension of volumes over their
// threshold, and release of volumes whose machine is gone.
func (m *Manager) Tick(ctx context.Context, now time.Time) error {
	vols, err := m.list(ctx, "", false)
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		if !m.mine(v) {
			continue // another host keeps it
		}
		if h, err := m.holder(ctx, v); err == nil && h == nil && v.AttachedMachineID != nil && m.Machines != nil {
			_, _ = m.update(ctx, v.App, v.ID, func(v *types.Volume) error {
				v.AttachedMachineID, v.AttachedAllocID, v.AttachedMountPoint = nil, nil, ""
				return nil
			})
		}
		if v.AutoBackupEnabled {
			since := v.LastScheduledSnap
			if since == "" {
				since = v.CreatedAt // the first one a day after creation
			}
			last, _ := time.Parse(time.RFC3339, since)
			if now.Sub(last) >= 24*time.Hour {
				if _, err := m.CreateSnapshot(ctx, v.App, v.ID, SnapshotScheduled); err != nil {
					errs = append(errs, err)
				} else {
					_, _ = m.update(ctx, v.App, v.ID, func(v *types.Volume) error {
						v.LastScheduledSnap = now.UTC().Format(time.RFC3339)
						return nil
					})
				}
			}
		}
		if err := m.autoExtend(ctx, v); err != nil {
			errs = append(errs, err)
		}
	}
	// Expired snapshots go, also those of destroyed volumes.
	kvs, _ := m.st.List(ctx, "volsnaps/")
	for _, kv := range kvs {
		var s types.VolumeSnapshot
		if json.Unmarshal(kv.Value, &s) != nil {
			continue
		}
		if s.HostID != "" && s.HostID != m.HostID {
			continue // its file is on another host, which expires it
		}
		exp, err := time.Parse(time.RFC3339, s.ExpiresAt)
		if err == nil && now.After(exp) {
			if err := m.deleteSnapshot(ctx, &s); err != nil {
				errs = append(errs, err)
			} else {
				m.log.Info("snapshot expired", "app", s.App, "snapshot", s.ID, "volume", s.VolumeID)
			}
		}
	}
	return errors.Join(errs...)
}

// autoExtend grows a volume over its auto_extend_size_threshold by its
// increment, up to its limit. It grows a volume again only once the last
// extension has reached the filesystem: where the filesystem cannot grow
// online, the used share stays over the threshold until the machine
// restarts, and extending on every tick would run the image away.
func (m *Manager) autoExtend(ctx context.Context, v *types.Volume) error {
	a := v.AutoExtend
	if a == nil || a.ThresholdPercent <= 0 || a.AddGB <= 0 || v.Blocks == 0 {
		return nil
	}
	if v.ResizePending {
		return nil // Extend said once that the filesystem grows at the next start
	}
	used := 100 * (v.Blocks - v.BlocksAvail) / v.Blocks
	if used < a.ThresholdPercent {
		return nil
	}
	want := v.SizeMB + a.AddGB*1024
	if a.LimitGB > 0 && want > a.LimitGB*1024 {
		want = a.LimitGB * 1024
	}
	if want <= v.SizeMB {
		return nil
	}
	m.log.Info("volume over its auto-extend threshold; extending", "volume", v.ID, "used_percent", used, "to_mb", want)
	_, _, err := m.Extend(ctx, v.App, v.ID, 0, want)
	return err
}

// Run calls Tick every interval until ctx ends.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := m.Tick(ctx, now); err != nil {
				m.log.Warn("volume background work", "err", err)
			}
		}
	}
}
