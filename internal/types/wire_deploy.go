package types

import "time"

// Wire types of deploys and scaling, shared by the API and the CLI.

// DeployRequest is the body of POST /v1/deploys.
type DeployRequest struct {
	// App names the app; empty: the fly.toml's app. Either way the token
	// must be allowed to act on the app it resolves to.
	App        string `json:"app"`
	Config     string `json:"config"`      // fly.toml contents
	ConfigFile string `json:"config_file"` // its name, for error messages
	// LocalFiles holds the [[files]] local_path contents (base64 in JSON).
	LocalFiles  map[string][]byte `json:"local_files,omitempty"`
	Image       string            `json:"image"`
	Strategy    string            `json:"strategy,omitempty"`
	WaitTimeout string            `json:"wait_timeout,omitempty"`
}

// ScaleRequest is the body of POST /v1/apps/{app}/scale.
type ScaleRequest struct {
	ProcessGroup string `json:"process_group,omitempty"`
	Count        *int   `json:"count,omitempty"`
	// Region is where count machines run: a comma-separated list of
	// regions (count in each) on an installation of several hosts; the
	// host's own region on a single host.
	Region   string `json:"region,omitempty"`
	VMSize   string `json:"vm_size,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
}

// DeployEvent is one progress step of a deploy, rollback, scale, restart
// or secrets roll-out, streamed to the user as it happens.
type DeployEvent struct {
	Time      time.Time `json:"time"`
	Step      string    `json:"step"`
	MachineID string    `json:"machine_id,omitempty"`
	Group     string    `json:"group,omitempty"`
	Message   string    `json:"message"`
}

// DeployLine is one line of the deploy stream: an event, or at the end the
// release or the error.
type DeployLine struct {
	Event   *DeployEvent `json:"event,omitempty"`
	Release *Release     `json:"release,omitempty"`
	Error   string       `json:"error,omitempty"`
	Status  int          `json:"status,omitempty"`
}
