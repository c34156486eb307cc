package types

// Host states (GET /v1/hosts).
const (
	// HostReady: the host's daemon keeps its registration alive.
	HostReady = "ready"
	// HostUnreachable: the host's lease expired (its daemon is down or cut
	// off from the store); its machines read StateUnknown.
	HostUnreachable = "unreachable"
	// HostDraining: the host takes no new machines.
	HostDraining = "draining"
)

// StateUnknown is the state a machine reads while its host is
// unreachable: the last recorded state may be stale, so it is not shown.
const StateUnknown = "unknown"

// Host is one Hangar host of an installation (GET /v1/hosts): a daemon
// that runs machines and is the authority for them.
type Host struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	// APIURL is where other hosts reach this host's API (--advertise-addr).
	APIURL   string       `json:"api_url"`
	Capacity HostCapacity `json:"capacity"`
	Used     HostUsage    `json:"used"`
	Version  string       `json:"version,omitempty"`
	State    string       `json:"state"`
	// StartedAt is when the host's daemon registered (RFC 3339).
	StartedAt string `json:"started_at,omitempty"`
	// RTTMicros is the round trip from the answering host to this one,
	// measured over the mesh, in microseconds (0: this host, or not
	// measured). Not stored: filled in when listed.
	RTTMicros int64 `json:"rtt_us,omitempty"`
	// WireGuard is the mesh's implementation on this host: "kernel" or
	// "userspace" (wireguard-go); empty off the mesh.
	WireGuard string `json:"wireguard,omitempty"`
}

// HostCapacity is what a host offers to machines.
type HostCapacity struct {
	CPUs     int   `json:"cpus"`
	MemoryMB int64 `json:"memory_mb"`
	DiskMB   int64 `json:"disk_mb"`
}

// HostUsage is what a host's machines take: the memory their guests
// reserve (every machine that is not destroyed) and how many there are.
type HostUsage struct {
	MemoryMB int64 `json:"memory_mb"`
	Machines int   `json:"machines"`
}

// FreeMemoryMB is the memory still free for new machines.
func (h Host) FreeMemoryMB() int64 { return h.Capacity.MemoryMB - h.Used.MemoryMB }

// DrainResult is the answer of a host drain (POST /v1/hosts/{id}/drain).
type DrainResult struct {
	Host  string      `json:"host"`
	Moved []DrainMove `json:"moved"`
	// Left are the machines ("app/id") left on the host: volumes keep them
	// there (a drain with force).
	Left []string `json:"left"`
}

// HostRemoval is the answer of DELETE /v1/hosts/{id}: what Hangar forgot
// with the host.
type HostRemoval struct {
	Host string `json:"host"`
	// Machines ("app/id") whose records went with the host: copies
	// failover had replaced elsewhere, and (force) machines that lived
	// only there.
	Machines []string `json:"machines"`
	// Volumes ("app/id") forgotten (force): their data was on the host.
	Volumes []string `json:"volumes"`
	// ClusterMember: the host was a member of the cluster (its etcd
	// member removed too, when it had one).
	ClusterMember bool `json:"cluster_member"`
}

// DrainMove is one machine a drain moved: From, destroyed, replaced by To
// on ToHost.
type DrainMove struct {
	App    string `json:"app"`
	From   string `json:"from"`
	To     string `json:"to"`
	ToHost string `json:"to_host"`
}
