// Package types holds the wire and value types shared by every Hangar
// package: the Machines API objects (machine config, machine, app, events)
// with the JSON field names of Fly.io's Machines API v1. It imports nothing
// internal, so any package may depend on it without forming a cycle.
package types

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"time"
)

// Machine states, exactly as Fly.io names them.
const (
	StateCreated    = "created"
	StateStarting   = "starting"
	StateStarted    = "started"
	StateStopping   = "stopping"
	StateStopped    = "stopped"
	StateSuspending = "suspending"
	StateSuspended  = "suspended"
	StateReplacing  = "replacing"
	StateReplaced   = "replaced"
	StateDestroying = "destroying"
	StateDestroyed  = "destroyed"
	StateFailed     = "failed"
)

// StateSettled is not a state but a wait target (Fly's, what flyctl's
// `machine wait` and `machine update` wait for): the machine is in a
// state no operation is moving it out of. See Settled.
const StateSettled = "settled"

// Settled reports whether a machine in state is settled: not in the middle
// of a start, stop, suspend, update or destroy. Fly names started,
// stopped, suspended, failed and destroyed; created (never started, also
// after an update of a machine that never ran) and replaced (an update's
// old version) are as final on Hangar, so they count too.
func Settled(state string) bool {
	switch state {
	case StateCreated, StateStarted, StateStopped, StateSuspended, StateFailed, StateDestroyed, StateReplaced:
		return true
	}
	return false
}

// Metadata keys flyctl writes on machines it creates.
const (
	MetaProcessGroup = "fly_process_group"
	MetaRelease      = "fly_release_version"
	MetaPlatform     = "fly_platform_version"
	MetaFlyctl       = "fly_flyctl_version"
)

// ConsoleGroup is the process group of `hangar console`'s ephemeral
// machines (Fly's `fly console`): deploys and scaling leave them alone,
// and the daemon destroys one whose console lease has lapsed.
const ConsoleGroup = "fly_app_console"

// DefaultProcessGroup is the group of machines when fly.toml has no [processes].
const DefaultProcessGroup = "app"

// MachineConfig is the configuration of one machine (Fly's api.MachineConfig).
type MachineConfig struct {
	Image                   string                   `json:"image"`
	Env                     map[string]string        `json:"env,omitempty"`
	Init                    MachineInit              `json:"init,omitempty"`
	Guest                   *MachineGuest            `json:"guest,omitempty"`
	Metadata                map[string]string        `json:"metadata,omitempty"`
	Mounts                  []MachineMount           `json:"mounts,omitempty"`
	Services                []MachineService         `json:"services,omitempty"`
	Checks                  map[string]MachineCheck  `json:"checks,omitempty"`
	Restart                 *MachineRestart          `json:"restart,omitempty"`
	AutoDestroy             bool                     `json:"auto_destroy,omitempty"`
	DNS                     *DNSConfig               `json:"dns,omitempty"`
	Processes               []MachineProcess         `json:"processes,omitempty"`
	Files                   []File                   `json:"files,omitempty"`
	Statics                 []Static                 `json:"statics,omitempty"`
	StopConfig              *StopConfig              `json:"stop_config,omitempty"`
	Metrics                 *MachineMetrics          `json:"metrics,omitempty"`
	Schedule                string                   `json:"schedule,omitempty"`
	Size                    string                   `json:"size,omitempty"`
	Standbys                []string                 `json:"standbys,omitempty"`
	DisableMachineAutostart *bool                    `json:"disable_machine_autostart,omitempty"`
	Containers              []map[string]interface{} `json:"containers,omitempty"`
	// Volumes are the containers' volumes (Fly's): kept as sent, like
	// Containers.
	Volumes []map[string]interface{} `json:"volumes,omitempty"`
	// Rootfs: Hangar's root filesystem is the image under a writable
	// layer discarded when the task stops, i.e. persist "never"; see
	// MachineRootfs.
	Rootfs *MachineRootfs `json:"rootfs,omitempty"`
	// CacheDrive is accepted and returned, with no effect (Hangar has no
	// cache drives; the writable layer is on the host's disk).
	CacheDrive *MachineCacheDrive `json:"cache_drive,omitempty"`
	// Spot is accepted and returned, with no effect (no spot capacity).
	Spot *MachineSpot `json:"spot,omitempty"`
}

// Root filesystem persistence (Fly's rootfs.persist).
const (
	RootfsPersistNever   = "never"
	RootfsPersistRestart = "restart"
	RootfsPersistAlways  = "always"
)

// MachineRootfs is Fly's root filesystem setting. Persist "" or "never"
// is what Hangar does; "restart" and "always" are refused (not yet).
// SizeGB is accepted and returned, with no effect: the writable layer is
// bounded by the host's disk.
type MachineRootfs struct {
	Persist string `json:"persist,omitempty"`
	SizeGB  uint64 `json:"size_gb,omitempty"`
}

// MachineCacheDrive is Fly's cache drive (accepted, no effect).
type MachineCacheDrive struct {
	SizeMB uint64 `json:"size_mb,omitempty"`
}

// MachineSpot is Fly's spot placement (accepted, no effect).
type MachineSpot struct {
	MaxPriceFraction float64 `json:"max_price_fraction,omitempty"`
}

// MachineInit overrides the image's entrypoint and command.
type MachineInit struct {
	Exec       []string `json:"exec,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Tty        bool     `json:"tty,omitempty"`
	SwapSizeMB *int     `json:"swap_size_mb,omitempty"`
	KernelArgs []string `json:"kernel_args,omitempty"`
}

// MachineGuest is the machine's size.
type MachineGuest struct {
	CPUKind          string   `json:"cpu_kind,omitempty"`
	CPUs             int      `json:"cpus,omitempty"`
	MemoryMB         int      `json:"memory_mb,omitempty"`
	GPUKind          string   `json:"gpu_kind,omitempty"`
	GPUs             int      `json:"gpus,omitempty"`
	HostDedicationID string   `json:"host_dedication_id,omitempty"`
	KernelArgs       []string `json:"kernel_args,omitempty"`
	// MaxMemoryMB is accepted and returned, with no effect: the memory
	// limit is MemoryMB.
	MaxMemoryMB int `json:"max_memory_mb,omitempty"`
	// PersistRootfs is the older place of rootfs.persist (same values,
	// same rules).
	PersistRootfs string `json:"persist_rootfs,omitempty"`
}

// MachineMount attaches a volume.
type MachineMount struct {
	Volume                 string `json:"volume,omitempty"`
	Path                   string `json:"path"`
	Name                   string `json:"name,omitempty"`
	Encrypted              bool   `json:"encrypted,omitempty"`
	SizeGB                 int    `json:"size_gb,omitempty"`
	ExtendThresholdPercent int    `json:"extend_threshold_percent,omitempty"`
	AddSizeGB              int    `json:"add_size_gb,omitempty"`
	SizeGBLimit            int    `json:"size_gb_limit,omitempty"`
	// SnapshotRetention (Hangar) is the snapshot retention in days of a
	// volume this mount creates ([[mounts]] snapshot_retention).
	SnapshotRetention int `json:"snapshot_retention,omitempty"`
}

// MachineService is one service the proxy exposes for the machine.
type MachineService struct {
	Protocol                 string                     `json:"protocol"`
	InternalPort             int                        `json:"internal_port"`
	Autostop                 *Autostop                  `json:"autostop,omitempty"`
	Autostart                *bool                      `json:"autostart,omitempty"`
	MinMachinesRunning       *int                       `json:"min_machines_running,omitempty"`
	Ports                    []MachinePort              `json:"ports,omitempty"`
	Checks                   []MachineCheck             `json:"checks,omitempty"`
	Concurrency              *MachineServiceConcurrency `json:"concurrency,omitempty"`
	ForceInstanceKey         *string                    `json:"force_instance_key,omitempty"`
	ForceInstanceDescription *string                    `json:"force_instance_description,omitempty"`
}

// Autostop is Fly's autostop setting: "off", "stop" or "suspend". On the
// wire it is also accepted as a boolean (true = "stop", false = "off").
type Autostop string

// Autostop values.
const (
	AutostopOff     Autostop = "off"
	AutostopStop    Autostop = "stop"
	AutostopSuspend Autostop = "suspend"
)

// UnmarshalJSON accepts a boolean or one of the three strings.
func (a *Autostop) UnmarshalJSON(b []byte) error {
	var v interface{}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		if x {
			*a = AutostopStop
		} else {
			*a = AutostopOff
		}
	case string:
		switch Autostop(x) {
		case AutostopOff, AutostopStop, AutostopSuspend:
			*a = Autostop(x)
		default:
			return fmt.Errorf("autostop %q: must be \"off\", \"stop\", \"suspend\" or a boolean", x)
		}
	case nil:
		*a = ""
	default:
		return fmt.Errorf("autostop: must be \"off\", \"stop\", \"suspend\" or a boolean")
	}
	return nil
}

// Enabled reports whether the proxy may stop or suspend idle machines.
func (a *Autostop) Enabled() bool {
	return a != nil && (*a == AutostopStop || *a == AutostopSuspend)
}

// MachinePort is a public port of a service.
type MachinePort struct {
	Port              *int               `json:"port,omitempty"`
	StartPort         *int               `json:"start_port,omitempty"`
	EndPort           *int               `json:"end_port,omitempty"`
	Handlers          []string           `json:"handlers,omitempty"`
	ForceHTTPS        bool               `json:"force_https,omitempty"`
	TLSOptions        *TLSOptions        `json:"tls_options,omitempty"`
	HTTPOptions       *HTTPOptions       `json:"http_options,omitempty"`
	ProxyProtoOptions *ProxyProtoOptions `json:"proxy_proto_options,omitempty"`
}

// TLSOptions configures TLS termination on a port.
type TLSOptions struct {
	ALPN              []string `json:"alpn,omitempty"`
	Versions          []string `json:"versions,omitempty"`
	DefaultSelfSigned *bool    `json:"default_self_signed,omitempty"`
}

// HTTPOptions configures the HTTP handler on a port.
type HTTPOptions struct {
	Compress    *bool                `json:"compress,omitempty"`
	Response    *HTTPResponseOptions `json:"response,omitempty"`
	H2Backend   *bool                `json:"h2_backend,omitempty"`
	IdleTimeout *int                 `json:"idle_timeout,omitempty"`
}

// HTTPResponseOptions sets headers on responses to the client.
type HTTPResponseOptions struct {
	Headers  map[string]interface{} `json:"headers,omitempty"`
	Pristine *bool                  `json:"pristine,omitempty"`
}

// ProxyProtoOptions selects the PROXY protocol version.
type ProxyProtoOptions struct {
	Version string `json:"version,omitempty"`
}

// MachineServiceConcurrency sets the proxy's per-machine limits.
type MachineServiceConcurrency struct {
	Type      string `json:"type,omitempty"`
	HardLimit int    `json:"hard_limit,omitempty"`
	SoftLimit int    `json:"soft_limit,omitempty"`
}

// MachineCheck is a health check (service checks and top-level checks).
// Interval, Timeout and GracePeriod are Go durations ("15s").
type MachineCheck struct {
	Type string `json:"type,omitempty"` // "tcp" or "http"
	// Kind is "readiness" (the default: the machine gets traffic only
	// while it passes) or "informational" (reported, never gates traffic).
	Kind          string              `json:"kind,omitempty"`
	Port          *int                `json:"port,omitempty"`
	Interval      *Duration           `json:"interval,omitempty"`
	Timeout       *Duration           `json:"timeout,omitempty"`
	GracePeriod   *Duration           `json:"grace_period,omitempty"`
	Method        string              `json:"method,omitempty"`
	Path          string              `json:"path,omitempty"`
	Protocol      string              `json:"protocol,omitempty"`
	TLSSkipVerify *bool               `json:"tls_skip_verify,omitempty"`
	TLSServerName string              `json:"tls_server_name,omitempty"`
	Headers       []MachineHTTPHeader `json:"headers,omitempty"`
}

// MachineHTTPHeader is a header sent by an http check.
type MachineHTTPHeader struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// MachineRestart is the restart policy.
type MachineRestart struct {
	Policy     string `json:"policy,omitempty"` // "no", "always", "on-failure"
	MaxRetries int    `json:"max_retries,omitempty"`
}

// Restart policies.
const (
	RestartNo        = "no"
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
)

// DNSConfig is the machine's DNS: registration in .internal DNS, and its
// /etc/resolv.conf and hostname.
type DNSConfig struct {
	SkipRegistration bool `json:"skip_registration,omitempty"`
	// Nameservers replace the daemon's DNS server in the machine's
	// resolv.conf (the machine then does not resolve .internal names
	// unless one of them does).
	Nameservers []string `json:"nameservers,omitempty"`
	// Searches are resolv.conf's search domains.
	Searches []string `json:"searches,omitempty"`
	// Options are resolv.conf's options (name, or name:value).
	Options []DNSOption `json:"options,omitempty"`
	// DNSForwardRules are accepted and returned, with no effect.
	DNSForwardRules []DNSForwardRule `json:"dns_forward_rules,omitempty"`
	// Hostname is the machine's hostname (default: its id).
	Hostname string `json:"hostname,omitempty"`
	// HostnameFqdn is also given the machine's addresses in /etc/hosts.
	HostnameFqdn string `json:"hostname_fqdn,omitempty"`
}

// DNSOption is one resolv.conf option.
type DNSOption struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// DNSForwardRule is Fly's DNS forwarding rule (accepted, no effect).
type DNSForwardRule struct {
	Basename string `json:"basename,omitempty"`
	Addr     string `json:"addr,omitempty"`
}

// MachineProcess is an extra process definition.
type MachineProcess struct {
	ExecOverride       []string          `json:"exec,omitempty"`
	EntrypointOverride []string          `json:"entrypoint,omitempty"`
	CmdOverride        []string          `json:"cmd,omitempty"`
	UserOverride       string            `json:"user,omitempty"`
	ExtraEnv           map[string]string `json:"env,omitempty"`
	// Secrets set env vars from the app's secrets (Name, or EnvVar
	// itself when Name is empty).
	Secrets []MachineSecret `json:"secrets,omitempty"`
	// IgnoreAppSecrets: the app's secrets are not put in the environment,
	// only those Secrets names.
	IgnoreAppSecrets bool `json:"ignore_app_secrets,omitempty"`
	// EnvFrom sets env vars from fields of the machine.
	EnvFrom []EnvFrom `json:"env_from,omitempty"`
}

// MachineSecret sets EnvVar from the app's secret Name ("" = EnvVar).
type MachineSecret struct {
	EnvVar string `json:"env_var"`
	Name   string `json:"name,omitempty"`
}

// EnvFrom sets EnvVar from a field of the machine: id, version,
// app_name, private_ip, region or image (Fly's field refs).
type EnvFrom struct {
	EnvVar   string `json:"env_var"`
	FieldRef string `json:"field_ref"`
}

// EnvFromFields are the field refs EnvFrom takes.
var EnvFromFields = []string{"id", "version", "app_name", "private_ip", "region", "image"}

// File is written into the machine before it starts.
type File struct {
	GuestPath  string  `json:"guest_path"`
	RawValue   *string `json:"raw_value,omitempty"`
	SecretName *string `json:"secret_name,omitempty"`
	// ImageConfig is accepted and returned, with no effect.
	ImageConfig *string `json:"image_config,omitempty"`
	// Mode is the file's permission bits (default 0644; secrets' 0600?
	// see the secrets hook).
	Mode uint32 `json:"mode,omitempty"`
}

// Static is a directory of the image served by the proxy.
type Static struct {
	GuestPath     string `json:"guest_path"`
	URLPrefix     string `json:"url_prefix"`
	TigrisBucket  string `json:"tigris_bucket,omitempty"`
	IndexDocument string `json:"index_document,omitempty"`
}

// StopConfig is how a machine is stopped: signal, then kill after Timeout.
type StopConfig struct {
	Timeout *Duration `json:"timeout,omitempty"`
	Signal  *string   `json:"signal,omitempty"`
}

// MachineMetrics is where the machine exposes Prometheus metrics.
type MachineMetrics struct {
	Port int    `json:"port"`
	Path string `json:"path"`
}

// Duration is a time.Duration that marshals as a Go duration string ("5s")
// and also accepts a number of nanoseconds, like Fly's API.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "5s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v interface{}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		d.Duration = time.Duration(x)
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("duration %q: use a number with a unit, like \"10s\" or \"1m30s\"", x)
		}
		d.Duration = p
	default:
		return fmt.Errorf("duration: want a string like \"10s\"")
	}
	return nil
}

// DurationPtr returns a *Duration of d.
func DurationPtr(d time.Duration) *Duration { return &Duration{d} }

// Ptr returns a pointer to v.
func Ptr[T any](v T) *T { return &v }

// DroppedFields compares a JSON document a client sent (sent) with the
// one it got back (got) and returns the paths of the values sent that are
// missing or different in got ("config.dns.nameservers"); nil if every
// value came back as sent. Values got has beyond sent (defaults) are not
// reported.
func DroppedFields(sent, got []byte) []string {
	var a, b any
	if err := json.Unmarshal(sent, &a); err != nil {
		return []string{"(sent is not JSON: " + err.Error() + ")"}
	}
	if err := json.Unmarshal(got, &b); err != nil {
		return []string{"(answer is not JSON: " + err.Error() + ")"}
	}
	var out []string
	var cmp func(path string, x, y any)
	cmp = func(path string, x, y any) {
		switch xv := x.(type) {
		case map[string]any:
			yv, ok := y.(map[string]any)
			if !ok {
				out = append(out, path)
				return
			}
			for k, e := range xv {
				p := k
				if path != "" {
					p = path + "." + k
				}
				ye, ok := yv[k]
				if !ok {
					out = append(out, p)
					continue
				}
				cmp(p, e, ye)
			}
		case []any:
			yv, ok := y.([]any)
			if !ok || len(yv) != len(xv) {
				out = append(out, path)
				return
			}
			for i := range xv {
				cmp(fmt.Sprintf("%s[%d]", path, i), xv[i], yv[i])
			}
		default:
			if !reflect.DeepEqual(x, y) {
				out = append(out, fmt.Sprintf("%s (sent %v, got %v)", path, x, y))
			}
		}
	}
	cmp("", a, b)
	sort.Strings(out)
	return out
}
