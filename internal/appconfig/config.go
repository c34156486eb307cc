// Package appconfig owns fly.toml: it parses the file (TOML, JSON or YAML),
// normalizes the old and variant forms that flyctl still accepts, validates
// and lints the result with file:line:col diagnostics, and converts it into
// one machine config per process group exactly as flyctl does.
//
// The package is pure: bytes in, config out. Load is the only function that
// touches the file system, and only to read the named file.
package appconfig

import (
	"github.com/hangar-dev/hangar/internal/types"
)

// DefaultConfigFileName is the file the CLI reads when given none.
const DefaultConfigFileName = "fly.toml"

// Config is a parsed and normalized fly.toml. Field names follow flyctl's
// appconfig.Config; JSON names are the fly.toml keys.
type Config struct {
	AppName          string          `json:"app,omitempty"`
	PrimaryRegion    string          `json:"primary_region,omitempty"`
	KillSignal       *string         `json:"kill_signal,omitempty"`
	KillTimeout      *types.Duration `json:"kill_timeout,omitempty" unit:"s"`
	SwapSizeMB       *int            `json:"swap_size_mb,omitempty"`
	ConsoleCommand   string          `json:"console_command,omitempty"`
	HostDedicationID string          `json:"host_dedication_id,omitempty"`

	Experimental *Experimental     `json:"experimental,omitempty"`
	Build        *Build            `json:"build,omitempty"`
	Deploy       *Deploy           `json:"deploy,omitempty"`
	Env          map[string]string `json:"env,omitempty"`

	// Fields that may be filtered by process group come after Processes.
	Processes     map[string]string         `json:"processes,omitempty"`
	Mounts        []Mount                   `json:"mounts,omitempty"`
	HTTPService   *HTTPService              `json:"http_service,omitempty"`
	Services      []Service                 `json:"services,omitempty"`
	Checks        map[string]*ToplevelCheck `json:"checks,omitempty"`
	Files         []File                    `json:"files,omitempty"`
	MachineChecks []*MachineCheck           `json:"machine_checks,omitempty"`
	Restart       []Restart                 `json:"restart,omitempty"`
	VMs           []VM                      `json:"vm,omitempty"`
	Statics       []Static                  `json:"statics,omitempty"`
	Metrics       []Metrics                 `json:"metrics,omitempty"`

	// Pilot containers: a machine config (inline JSON or a path) and the
	// name of the container whose image a deploy replaces.
	MachineConfig string `json:"machine_config,omitempty"`
	Container     string `json:"container,omitempty"`

	// file is the name diagnostics carry; index maps key paths to positions.
	file  string
	index *posIndex
	// parseDiags are the warnings (and strict-only errors) found while
	// parsing and normalizing: unknown keys, old forms, coerced values.
	parseDiags []Diagnostic
	parseLint  []Diagnostic
	// localFiles holds the contents of [[files]] local_path entries, read
	// by Load (relative to the config file) or set with SetLocalFile.
	localFiles map[string][]byte
}

// Experimental is the [experimental] section.
type Experimental struct {
	Cmd            []string  `json:"cmd,omitempty"`
	Entrypoint     []string  `json:"entrypoint,omitempty"`
	Exec           []string  `json:"exec,omitempty"`
	AutoRollback   *bool     `json:"auto_rollback,omitempty"`
	EnableConsul   bool      `json:"enable_consul,omitempty"`
	EnableEtcd     bool      `json:"enable_etcd,omitempty"`
	LazyLoadImages bool      `json:"lazy_load_images,omitempty"`
	Attached       *Attached `json:"attached,omitempty"`
	MachineConfig  string    `json:"machine_config,omitempty"`
	UseZstd        bool      `json:"use_zstd,omitempty"`
}

// Attached is [experimental.attached].
type Attached struct {
	Secrets *AttachedSecrets `json:"secrets,omitempty"`
}

// AttachedSecrets is [experimental.attached.secrets].
type AttachedSecrets struct {
	Export map[string]string `json:"export,omitempty"`
}

// Build is the [build] section: where the image comes from.
type Build struct {
	Builder           string            `json:"builder,omitempty"`
	Args              map[string]string `json:"args,omitempty"`
	Buildpacks        []string          `json:"buildpacks,omitempty"`
	Image             string            `json:"image,omitempty"`
	Settings          map[string]any    `json:"settings,omitempty"`
	Builtin           string            `json:"builtin,omitempty"`
	Dockerfile        string            `json:"dockerfile,omitempty"`
	Ignorefile        string            `json:"ignorefile,omitempty"`
	DockerBuildTarget string            `json:"build-target,omitempty"`
	Compression       string            `json:"compression,omitempty"`
	CompressionLevel  *int              `json:"compression_level,omitempty"`
}

// Deploy is the [deploy] section.
type Deploy struct {
	Strategy              string          `json:"strategy,omitempty"`
	MaxUnavailable        *float64        `json:"max_unavailable,omitempty"`
	WaitTimeout           *types.Duration `json:"wait_timeout,omitempty" unit:"s"`
	ReleaseCommand        string          `json:"release_command,omitempty"`
	ReleaseCommandTimeout *types.Duration `json:"release_command_timeout,omitempty" unit:"s"`
	ReleaseCommandVM      *VM             `json:"release_command_vm,omitempty"`
	SeedCommand           string          `json:"seed_command,omitempty"`
}

// Deploy strategies.
const (
	StrategyRolling   = "rolling"
	StrategyBlueGreen = "bluegreen"
	StrategyCanary    = "canary"
	StrategyImmediate = "immediate"
)

// Mount is one [[mounts]] entry: a volume attached at Destination.
type Mount struct {
	Source                  string   `json:"source,omitempty"`
	Destination             string   `json:"destination,omitempty"`
	InitialSize             string   `json:"initial_size,omitempty"`
	SnapshotRetention       *int     `json:"snapshot_retention,omitempty"`
	ScheduledSnapshots      *bool    `json:"scheduled_snapshots,omitempty"`
	AutoExtendSizeThreshold int      `json:"auto_extend_size_threshold,omitempty"`
	AutoExtendSizeIncrement string   `json:"auto_extend_size_increment,omitempty"`
	AutoExtendSizeLimit     string   `json:"auto_extend_size_limit,omitempty"`
	Processes               []string `json:"processes,omitempty"`
}

// HTTPService is the [http_service] section: ports 80 and 443 with the
// http (and tls) handlers in front of InternalPort.
type HTTPService struct {
	InternalPort       int                              `json:"internal_port,omitempty"`
	ForceHTTPS         bool                             `json:"force_https,omitempty"`
	AutoStopMachines   *types.Autostop                  `json:"auto_stop_machines,omitempty"`
	AutoStartMachines  *bool                            `json:"auto_start_machines,omitempty"`
	MinMachinesRunning *int                             `json:"min_machines_running,omitempty"`
	Processes          []string                         `json:"processes,omitempty"`
	Concurrency        *types.MachineServiceConcurrency `json:"concurrency,omitempty"`
	TLSOptions         *types.TLSOptions                `json:"tls_options,omitempty"`
	HTTPOptions        *types.HTTPOptions               `json:"http_options,omitempty"`
	ProxyProtoOptions  *types.ProxyProtoOptions         `json:"proxy_proto_options,omitempty"`
	HTTPChecks         []*HTTPCheck                     `json:"checks,omitempty"`
	MachineChecks      []*MachineCheck                  `json:"machine_checks,omitempty"`
}

// Service is one [[services]] entry.
type Service struct {
	Protocol           string                           `json:"protocol,omitempty"`
	InternalPort       int                              `json:"internal_port,omitempty"`
	AutoStopMachines   *types.Autostop                  `json:"auto_stop_machines,omitempty"`
	AutoStartMachines  *bool                            `json:"auto_start_machines,omitempty"`
	MinMachinesRunning *int                             `json:"min_machines_running,omitempty"`
	Ports              []types.MachinePort              `json:"ports,omitempty"`
	Concurrency        *types.MachineServiceConcurrency `json:"concurrency,omitempty"`
	TCPChecks          []*TCPCheck                      `json:"tcp_checks,omitempty"`
	HTTPChecks         []*HTTPCheck                     `json:"http_checks,omitempty"`
	MachineChecks      []*MachineCheck                  `json:"machine_checks,omitempty"`
	Processes          []string                         `json:"processes,omitempty"`
}

// TCPCheck is a [[services.tcp_checks]] entry. Bare numbers are milliseconds.
type TCPCheck struct {
	Interval     *types.Duration `json:"interval,omitempty" unit:"ms"`
	Timeout      *types.Duration `json:"timeout,omitempty" unit:"ms"`
	GracePeriod  *types.Duration `json:"grace_period,omitempty" unit:"ms"`
	RestartLimit int             `json:"restart_limit,omitempty"`
}

// HTTPCheck is a [[services.http_checks]] or [[http_service.checks]] entry.
type HTTPCheck struct {
	Interval      *types.Duration   `json:"interval,omitempty" unit:"ms"`
	Timeout       *types.Duration   `json:"timeout,omitempty" unit:"ms"`
	GracePeriod   *types.Duration   `json:"grace_period,omitempty" unit:"ms"`
	RestartLimit  int               `json:"restart_limit,omitempty"`
	Method        *string           `json:"method,omitempty"`
	Path          *string           `json:"path,omitempty"`
	Protocol      *string           `json:"protocol,omitempty"`
	TLSSkipVerify *bool             `json:"tls_skip_verify,omitempty"`
	TLSServerName *string           `json:"tls_server_name,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
}

// MachineCheck is a [[machine_checks]] entry: a command run in a throwaway
// machine before a deploy continues.
type MachineCheck struct {
	Command     []string        `json:"command,omitempty"`
	Image       string          `json:"image,omitempty"`
	Entrypoint  []string        `json:"entrypoint,omitempty"`
	KillSignal  *string         `json:"kill_signal,omitempty"`
	KillTimeout *types.Duration `json:"kill_timeout,omitempty" unit:"s"`
}

// ToplevelCheck is a [checks.<name>] entry. Bare numbers are milliseconds.
type ToplevelCheck struct {
	Port          *int              `json:"port,omitempty"`
	Type          *string           `json:"type,omitempty"`
	Interval      *types.Duration   `json:"interval,omitempty" unit:"ms"`
	Timeout       *types.Duration   `json:"timeout,omitempty" unit:"ms"`
	GracePeriod   *types.Duration   `json:"grace_period,omitempty" unit:"ms"`
	Method        *string           `json:"method,omitempty"`
	Path          *string           `json:"path,omitempty"`
	Protocol      *string           `json:"protocol,omitempty"`
	TLSSkipVerify *bool             `json:"tls_skip_verify,omitempty"`
	TLSServerName *string           `json:"tls_server_name,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Processes     []string          `json:"processes,omitempty"`
}

// File is a [[files]] entry: a file written into the machine before boot.
type File struct {
	GuestPath  string   `json:"guest_path,omitempty"`
	LocalPath  string   `json:"local_path,omitempty"`
	SecretName string   `json:"secret_name,omitempty"`
	RawValue   string   `json:"raw_value,omitempty"`
	Processes  []string `json:"processes,omitempty"`
}

// Static is a [[statics]] entry.
type Static struct {
	GuestPath     string `json:"guest_path,omitempty"`
	URLPrefix     string `json:"url_prefix,omitempty"`
	TigrisBucket  string `json:"tigris_bucket,omitempty"`
	IndexDocument string `json:"index_document,omitempty"`
}

// Metrics is a [[metrics]] entry.
type Metrics struct {
	Port      int      `json:"port,omitempty"`
	Path      string   `json:"path,omitempty"`
	Https     bool     `json:"https,omitempty"`
	Processes []string `json:"processes,omitempty"`
}

// Restart is a [[restart]] entry.
type Restart struct {
	Policy     string   `json:"policy,omitempty"` // always, never, on-failure
	MaxRetries int      `json:"retries,omitempty"`
	Processes  []string `json:"processes,omitempty"`
}

// Restart policies as written in fly.toml.
const (
	RestartPolicyAlways    = "always"
	RestartPolicyNever     = "never"
	RestartPolicyOnFailure = "on-failure"
)

// VM is a [[vm]] entry: a size preset and overrides for some groups.
type VM struct {
	Size             string   `json:"size,omitempty"`
	Memory           string   `json:"memory,omitempty"`
	CPUKind          string   `json:"cpu_kind,omitempty"`
	CPUs             int      `json:"cpus,omitempty"`
	MemoryMB         int      `json:"memory_mb,omitempty"`
	GPUKind          string   `json:"gpu_kind,omitempty"`
	GPUs             int      `json:"gpus,omitempty"`
	HostDedicationID string   `json:"host_dedication_id,omitempty"`
	KernelArgs       []string `json:"kernel_args,omitempty"`
	PersistRootfs    string   `json:"persist_rootfs,omitempty"`
	Processes        []string `json:"processes,omitempty"`
}

// File returns the name the config was parsed from.
func (c *Config) File() string { return c.file }

// SetLocalFile provides the contents of a [[files]] local_path, for
// callers that parse bytes themselves.
func (c *Config) SetLocalFile(localPath string, content []byte) {
	if c.localFiles == nil {
		c.localFiles = map[string][]byte{}
	}
	c.localFiles[localPath] = content
}

// UnresolvedFiles lists [[files]] local_path entries whose contents were
// not provided; ToMachineConfig leaves them out.
func (c *Config) UnresolvedFiles() []string {
	var out []string
	for _, f := range c.Files {
		if f.LocalPath != "" {
			if _, ok := c.localFiles[f.LocalPath]; !ok {
				out = append(out, f.LocalPath)
			}
		}
	}
	return out
}
