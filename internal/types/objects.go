package types

import "fmt"

// App is an application (Fly's App object).
type App struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Status       string       `json:"status"`
	Organization Organization `json:"organization"`
	Network      string       `json:"network,omitempty"`
	CreatedAt    string       `json:"created_at,omitempty"`
	MachineCount int          `json:"machine_count"`
}

// Organization owns apps and their private network.
type Organization struct {
	Name string `json:"name"`
	Slug string `json:"slug"`
}

// LocalRegistry is the image_ref.registry of images imported, uploaded or
// built on the daemon (they were pulled from no registry).
const LocalRegistry = "hangar.local"

// ImageRef is the image a machine runs, split as Fly splits it.
type ImageRef struct {
	Registry   string            `json:"registry"`
	Repository string            `json:"repository"`
	Tag        string            `json:"tag"`
	Digest     string            `json:"digest"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Machine is the Machines API machine object.
type Machine struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	State      string         `json:"state"`
	Region     string         `json:"region"`
	InstanceID string         `json:"instance_id"`
	PrivateIP  string         `json:"private_ip"`
	Config     *MachineConfig `json:"config"`
	ImageRef   ImageRef       `json:"image_ref"`
	CreatedAt  string         `json:"created_at"`
	UpdatedAt  string         `json:"updated_at"`
	Events     []MachineEvent `json:"events,omitempty"`
	Checks     []CheckStatus  `json:"checks,omitempty"`
	Nonce      string         `json:"nonce,omitempty"`
	HostStatus string         `json:"host_status,omitempty"`
	// HostID (Hangar) is the host that runs the machine and is the
	// authority for it; an empty one is read as the single host's.
	HostID string `json:"host_id,omitempty"`
	// Cordoned machines run but get no proxy traffic (cordon, and new
	// machines of a blue-green deploy until the switch).
	Cordoned bool `json:"cordoned"`
	// LastRunAt and NextRunAt (Hangar) are a scheduled machine's
	// (config.schedule) last run started by the scheduler and its next
	// (RFC 3339, UTC). LastRunAt is kept in the record, so that a run is
	// never started twice in one interval, also across daemon restarts.
	LastRunAt string `json:"last_run_at,omitempty"`
	NextRunAt string `json:"next_run_at,omitempty"`
	// ReplacedBy (Hangar), on a machine lost with its host, is the
	// machine started on another host in its place (docs/cluster.md,
	// "Host failure"); the lost one is destroyed when its host returns.
	ReplacedBy string `json:"replaced_by,omitempty"`
	// HostNote (Hangar) says what a host's failure did to the machine:
	// "replaced machine X lost with host C" on a replacement, why a lost
	// machine waits for its host (a volume), or what replaced it.
	HostNote string `json:"host_note,omitempty"`
}

// MachineEvent is one entry of a machine's history.
type MachineEvent struct {
	ID        string                 `json:"id"`
	Type      string                 `json:"type"`   // launch, start, stop, exit, restart, update, destroy
	Status    string                 `json:"status"` // the state the machine reached
	Source    string                 `json:"source"` // "user" or "flyd"
	Timestamp int64                  `json:"timestamp"`
	Request   map[string]interface{} `json:"request,omitempty"`
}

// CheckStatus is the latest result of one health check of a machine.
type CheckStatus struct {
	Name      string `json:"name"`
	Status    string `json:"status"` // passing, warning, critical
	Output    string `json:"output"`
	UpdatedAt string `json:"updated_at"`
}

// Check statuses.
const (
	CheckPassing  = "passing"
	CheckWarning  = "warning"
	CheckCritical = "critical"
)

// ErrorResponse is the body of every API error.
type ErrorResponse struct {
	Error   string `json:"error"`
	Status  string `json:"status,omitempty"`
	Details string `json:"details,omitempty"`
}

// CreateAppRequest is the body of POST /v1/apps. The app's name is
// AppName (Fly's API reference) or Name (what fly-go's flaps sends); when
// both are given they must agree.
type CreateAppRequest struct {
	AppName string `json:"app_name,omitempty"`
	Name    string `json:"name,omitempty"`
	OrgSlug string `json:"org_slug"`
	Network string `json:"network,omitempty"`
	// AppRoleID is accepted with no effect: Hangar has no app roles.
	AppRoleID string `json:"app_role_id,omitempty"`
}

// AppNameOf is the app name the request asks for: AppName or Name.
func (r CreateAppRequest) AppNameOf() (string, error) {
	if r.AppName != "" && r.Name != "" && r.AppName != r.Name {
		return "", fmt.Errorf("app_name %q and name %q differ: send one of them: %w", r.AppName, r.Name, ErrInvalid)
	}
	if r.AppName != "" {
		return r.AppName, nil
	}
	return r.Name, nil
}

// CreateMachineRequest is the body of POST /v1/apps/{app}/machines.
type CreateMachineRequest struct {
	Name                    string         `json:"name,omitempty"`
	Region                  string         `json:"region,omitempty"`
	Config                  *MachineConfig `json:"config"`
	SkipLaunch              bool           `json:"skip_launch,omitempty"`
	SkipServiceRegistration bool           `json:"skip_service_registration,omitempty"`
	LeaseTTL                int            `json:"lease_ttl,omitempty"`
}

// MachineLease is a machine's lease, the "data" of the answer of GET and
// POST /v1/apps/{app}/machines/{id}/lease.
type MachineLease struct {
	Nonce       string `json:"nonce"`
	ExpiresAt   int64  `json:"expires_at"` // unix seconds
	Owner       string `json:"owner"`
	Description string `json:"description"`
	Version     string `json:"version"`
}

// LeaseNonceHeader is the request header that carries a lease's nonce
// (Fly's).
const LeaseNonceHeader = "fly-machine-lease-nonce"

// StopRequest is the body of POST .../stop.
type StopRequest struct {
	Signal  string    `json:"signal,omitempty"`
	Timeout *Duration `json:"timeout,omitempty"`
}
