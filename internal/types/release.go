package types

import "time"

// Release statuses.
const (
	ReleaseRunning  = "running"
	ReleaseComplete = "complete"
	ReleaseFailed   = "failed"
)

// Release is an immutable record of one deploy: the image, the config and
// the secrets version every machine of the release runs (GET
// /v1/apps/{app}/releases). Rollback redeploys an earlier one as is.
type Release struct {
	Version        int                       `json:"version"`
	App            string                    `json:"app"`
	Image          string                    `json:"image"`
	ImageDigest    string                    `json:"image_digest"`
	Strategy       string                    `json:"strategy"`
	Config         string                    `json:"config"` // fly.toml as deployed
	ConfigFile     string                    `json:"config_file"`
	LocalFiles     map[string][]byte         `json:"local_files,omitempty"` // [[files]] local_path contents
	Machines       map[string]*MachineConfig `json:"machine_configs"`       // per process group
	Counts         map[string]int            `json:"counts,omitempty"`
	SecretsVersion int                       `json:"secrets_version"`
	RollbackOf     int                       `json:"rollback_of,omitempty"`
	Description    string                    `json:"description,omitempty"`
	Status         string                    `json:"status"` // ReleaseRunning, ReleaseComplete or ReleaseFailed
	Reason         string                    `json:"reason,omitempty"`
	User           string                    `json:"user"`
	CreatedAt      time.Time                 `json:"created_at"`
	FinishedAt     *time.Time                `json:"finished_at,omitempty"`
}
