package types

// DefaultSnapshotRetention is how many days a volume's snapshots are kept
// unless it says otherwise, as on Fly.io.
const DefaultSnapshotRetention = 5

// Volume is a volume as the API shows it (Fly's Volume object, plus a few
// Hangar fields).
type Volume struct {
	ID                 string        `json:"id"`
	Name               string        `json:"name"`
	App                string        `json:"app"`
	State              string        `json:"state"`
	SizeGB             int           `json:"size_gb"`
	SizeMB             int           `json:"size_mb"` // Hangar: exact size; sizes below 1 GB are for tests
	Region             string        `json:"region"`
	Zone               string        `json:"zone"`
	Encrypted          bool          `json:"encrypted"`
	FSType             string        `json:"fstype"`
	CreatedAt          string        `json:"created_at"`
	SnapshotRetention  int           `json:"snapshot_retention"`
	AutoBackupEnabled  bool          `json:"auto_backup_enabled"`
	AttachedMachineID  *string       `json:"attached_machine_id"`
	AttachedAllocID    *string       `json:"attached_alloc_id"`
	BlockSize          int           `json:"block_size"`
	Blocks             int           `json:"blocks"`
	BlocksFree         int           `json:"blocks_free"`
	BlocksAvail        int           `json:"blocks_avail"`
	HostStatus         string        `json:"host_status"`
	LastScheduledSnap  string        `json:"last_scheduled_snapshot_at,omitempty"`
	SourceSnapshotID   string        `json:"source_snapshot_id,omitempty"`
	SourceVolumeID     string        `json:"source_volume_id,omitempty"`
	AutoExtend         *VolumeExtend `json:"auto_extend,omitempty"`
	AttachedMountPoint string        `json:"attached_path,omitempty"`
	ResizePending      bool          `json:"resize_pending,omitempty"` // the filesystem grows at the next start of its machine
	// HostID (Hangar) is the host that keeps the volume: its machine runs
	// there ("" for volumes made before volumes had hosts).
	HostID string `json:"host_id,omitempty"`
}

// VolumeExtend is a volume's auto-extend setting (from [[mounts]]).
type VolumeExtend struct {
	ThresholdPercent int `json:"threshold_percent"`
	AddGB            int `json:"add_gb"`
	LimitGB          int `json:"limit_gb"`
}

// VolumeSnapshot is a volume snapshot (Fly's VolumeSnapshot plus Hangar
// fields).
type VolumeSnapshot struct {
	ID           string `json:"id"`
	VolumeID     string `json:"volume_id"`
	App          string `json:"app"`
	CreatedAt    string `json:"created_at"`
	Size         int64  `json:"size"` // bytes of the volume's image
	StoredSize   int64  `json:"stored_size"`
	Digest       string `json:"digest"`
	Status       string `json:"status"`
	Type         string `json:"type"` // "on-demand" or "scheduled"
	FrozenMS     int64  `json:"frozen_ms"`
	RetentionDay int    `json:"retention_days"`
	ExpiresAt    string `json:"expires_at"`
	VolumeSizeMB int    `json:"volume_size_mb"`
	// VolumeSize is the volume's size in bytes when cut (fly-go reads it).
	VolumeSize int64 `json:"volume_size"`
	// HostID (Hangar) is the host that keeps the snapshot's file: its
	// volume's.
	HostID string `json:"host_id,omitempty"`
}

// FillVolumeSize sets VolumeSize from VolumeSizeMB (records written
// before VolumeSize existed have only the MB).
func (s *VolumeSnapshot) FillVolumeSize() {
	if s.VolumeSize == 0 {
		s.VolumeSize = int64(s.VolumeSizeMB) << 20
	}
}

// CreateVolumeRequest is the body of POST /v1/apps/{app}/volumes (Fly's
// CreateVolumeRequest plus SizeMB): an empty
// volume, a restore of SnapshotID, or a fork of SourceVolumeID.
type CreateVolumeRequest struct {
	Name              string `json:"name"`
	Region            string `json:"region,omitempty"`
	SizeGB            int    `json:"size_gb,omitempty"`
	SizeMB            int    `json:"size_mb,omitempty"` // Hangar: exact size in MB (at least 16)
	Encrypted         *bool  `json:"encrypted,omitempty"`
	FSType            string `json:"fstype,omitempty"`
	SnapshotID        string `json:"snapshot_id,omitempty"`
	SourceVolumeID    string `json:"source_volume_id,omitempty"`
	SnapshotRetention *int   `json:"snapshot_retention,omitempty"`
	AutoBackupEnabled *bool  `json:"auto_backup_enabled,omitempty"`
	RequireUniqueZone *bool  `json:"require_unique_zone,omitempty"`
}

// ExtendVolumeResponse is Fly's answer to an extend.
type ExtendVolumeResponse struct {
	Volume       *Volume `json:"volume"`
	NeedsRestart bool    `json:"needs_restart"`
}
