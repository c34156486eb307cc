package types

// Wire types of Hangar's own app endpoints (info, IP addresses), shared by
// the API and the CLI.

import "time"

// Info describes a daemon (GET /v1/info): where it serves apps.
type Info struct {
	Org      string `json:"org"`
	Region   string `json:"region"`
	Domain   string `json:"domain"`
	HTTPPort string `json:"http_port"`
	// Disk is the state of the disk that holds the daemon's data dir.
	Disk *DiskState `json:"disk,omitempty"`
}

// DiskState is how full the daemon's data dir's disk is. Full: the space
// kept back for state writes is in use; images, logs and volumes cannot
// grow until space is freed.
type DiskState struct {
	Path       string `json:"path"`
	TotalBytes int64  `json:"total_bytes"`
	FreeBytes  int64  `json:"free_bytes"`
	Full       bool   `json:"full"`
}

// Regions is the answer of GET /v1/platform/regions: this installation's
// regions, with the field names fly-go's flaps.RegionData reads.
type Regions struct {
	Regions []Region `json:"Regions"`
	// Nearest is the region of the daemon that answered.
	Nearest string `json:"Nearest"`
}

// Region is one region of this installation (Fly's Region fields; the
// coordinates, plan and geography are not known to Hangar and left zero).
type Region struct {
	Code             string  `json:"code"`
	Name             string  `json:"name"`
	Latitude         float32 `json:"latitude"`
	Longitude        float32 `json:"longitude"`
	GatewayAvailable bool    `json:"gateway_available"`
	RequiresPaidPlan bool    `json:"requires_paid_plan"`
	Deprecated       bool    `json:"deprecated"`
	Capacity         int64   `json:"capacity"`
	GeoRegion        string  `json:"geo_region"`
	// Hosts are the hosts that run machines in the region (Hangar's).
	Hosts []string `json:"hosts"`
}

// IP address types (Fly's names).
const (
	IPTypePrivateV6 = "private_v6"
)

// IPAddress is an app's IP address, with the fields of Fly's IPAddress.
type IPAddress struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Type      string `json:"type"`
	Region    string `json:"region"`
	Network   string `json:"network"`
	App       string `json:"app"`
	CreatedAt string `json:"created_at"`
}

// AllocateIPRequest asks for an address (`hangar ips allocate-v6 --private`).
type AllocateIPRequest struct {
	// Type is "private_v6" (a Flycast address).
	Type string `json:"type"`
	// Network and OrgSlug may name only the app's own network and this
	// daemon's org: every machine of a daemon shares one 6PN.
	Network string `json:"network,omitempty"`
	OrgSlug string `json:"org_slug,omitempty"`
}

// IPAssignment is one of an app's addresses as Fly's ip_assignments
// endpoint shows it (fly-go's flaps.IPAssignment).
type IPAssignment struct {
	IP          string `json:"ip"`
	Region      string `json:"region"`
	ServiceName string `json:"service_name"`
	Shared      bool   `json:"shared"`
	CreatedAt   string `json:"created_at"`
}

// IPAssignmentsList is the answer of GET /v1/apps/{app}/ip_assignments.
type IPAssignmentsList struct {
	IPs []IPAssignment `json:"ips"`
}

// AssignIPRequest is the body of POST /v1/apps/{app}/ip_assignments
// (fly-go's flaps.AssignIPRequest). Only type private_v6 is allocated;
// Region may be empty, "global" or the daemon's region; ServiceName must
// be empty (Hangar has no named IP services).
type AssignIPRequest struct {
	Type        string `json:"type"`
	Region      string `json:"region,omitempty"`
	OrgSlug     string `json:"org_slug,omitempty"`
	Network     string `json:"network,omitempty"`
	ServiceName string `json:"service_name,omitempty"`
}

// Assignment is the address in the shape of Fly's ip_assignments
// (a Flycast address is never shared between apps).
func (a IPAddress) Assignment() IPAssignment {
	return IPAssignment{IP: a.Address, Region: a.Region, CreatedAt: a.CreatedAt}
}

// AddCertRequest is the body of POST /v1/apps/{app}/certificates.
type AddCertRequest struct {
	Hostname string `json:"hostname"`
}

// LogRetention is an app's own limits on its logs
// (GET/PUT /v1/apps/{app}/logs/retention); a zero field means the
// daemon's default (--log-retention, --log-max-app-size).
type LogRetention struct {
	// MaxAgeSeconds: a log file goes once its last line is this old.
	MaxAgeSeconds int64 `json:"max_age_seconds,omitempty"`
	// MaxBytes: the most the app's logs take; the oldest files go first.
	MaxBytes int64 `json:"max_bytes,omitempty"`
}

// CreateLogSinkRequest asks the daemon to ship logs to an HTTP sink
// (POST /v1/log-sinks, `hangar logs ship --to`).
type CreateLogSinkRequest struct {
	// URL receives POSTs of NDJSON batches (http or https).
	URL string `json:"url"`
	// App limits the sink to one app's logs ("" for every app).
	App string `json:"app,omitempty"`
}

// LogSink is an HTTP sink the daemon ships logs to.
type LogSink struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	App       string    `json:"app,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Batches and Lines count what the sink acknowledged (a 2xx).
	Batches int64 `json:"batches"`
	Lines   int64 `json:"lines"`
	// LastError is the last failed delivery's error, "" once one
	// succeeds after it.
	LastError string `json:"last_error,omitempty"`
	// Behind is set when the last read found more lines than one batch.
	Behind bool `json:"behind,omitempty"`
}

// LogLine is one line of an app's logs (GET /v1/apps/{app}/logs, NDJSON).
type LogLine struct {
	Timestamp string `json:"timestamp"`
	App       string `json:"app"`
	MachineID string `json:"machine_id"`
	Region    string `json:"region"`
	// Instance is the machine id again, under Fly's name for it.
	Instance string `json:"instance"`
	// ProcessGroup is the machine's process group ("" for a machine
	// destroyed since, or created outside a deploy).
	ProcessGroup string `json:"process_group"`
	// Stream is stdout or stderr, or "hangar" for Hangar's own lines
	// (log lines lost).
	Stream  string `json:"stream"`
	Message string `json:"message"`
}
