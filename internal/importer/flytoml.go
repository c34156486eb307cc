package importer

import (
	"bytes"
	"fmt"

	toml "github.com/pelletier/go-toml/v2"
)

// The structs below are the subset of fly.toml that an import can produce.
// Keys are spelled as in Fly's fly.toml reference; field order is the order
// in which sections are written.

// FlyConfig is one generated fly.toml.
type FlyConfig struct {
	App           string               `toml:"app" json:"app"`
	PrimaryRegion string               `toml:"primary_region,omitempty" json:"primary_region,omitempty"`
	KillSignal    string               `toml:"kill_signal,omitempty" json:"kill_signal,omitempty"`
	KillTimeout   string               `toml:"kill_timeout,omitempty" json:"kill_timeout,omitempty"`
	Build         *FlyBuild            `toml:"build,omitempty" json:"build,omitempty"`
	Deploy        *FlyDeploy           `toml:"deploy,omitempty" json:"deploy,omitempty"`
	Experimental  *FlyExperimental     `toml:"experimental,omitempty" json:"experimental,omitempty"`
	Env           map[string]string    `toml:"env,omitempty" json:"env,omitempty"`
	Processes     map[string]string    `toml:"processes,omitempty" json:"processes,omitempty"`
	HTTPService   *FlyHTTPService      `toml:"http_service,omitempty" json:"http_service,omitempty"`
	Services      []*FlyService        `toml:"services,omitempty" json:"services,omitempty"`
	Checks        map[string]*FlyCheck `toml:"checks,omitempty" json:"checks,omitempty"`
	Mounts        []*FlyMount          `toml:"mounts,omitempty" json:"mounts,omitempty"`
	Files         []*FlyFile           `toml:"files,omitempty" json:"files,omitempty"`
	Restart       []*FlyRestart        `toml:"restart,omitempty" json:"restart,omitempty"`
	VM            []*FlyVM             `toml:"vm,omitempty" json:"vm,omitempty"`
}

// FlyBuild is [build].
type FlyBuild struct {
	Image      string            `toml:"image,omitempty" json:"image,omitempty"`
	Dockerfile string            `toml:"dockerfile,omitempty" json:"dockerfile,omitempty"`
	Target     string            `toml:"build-target,omitempty" json:"build-target,omitempty"`
	Builder    string            `toml:"builder,omitempty" json:"builder,omitempty"`
	Builtin    string            `toml:"builtin,omitempty" json:"builtin,omitempty"`
	Buildpacks []string          `toml:"buildpacks,omitempty" json:"buildpacks,omitempty"`
	Args       map[string]string `toml:"args,omitempty" json:"args,omitempty"`
}

// FlyDeploy is [deploy].
type FlyDeploy struct {
	Strategy       string `toml:"strategy,omitempty" json:"strategy,omitempty"`
	ReleaseCommand string `toml:"release_command,omitempty" json:"release_command,omitempty"`
}

// FlyExperimental is [experimental]; only the entrypoint override is used.
type FlyExperimental struct {
	Entrypoint []string `toml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
}

// FlyHTTPService is [http_service].
type FlyHTTPService struct {
	InternalPort       int             `toml:"internal_port" json:"internal_port"`
	ForceHTTPS         bool            `toml:"force_https" json:"force_https"`
	AutoStopMachines   string          `toml:"auto_stop_machines,omitempty" json:"auto_stop_machines,omitempty"`
	AutoStartMachines  *bool           `toml:"auto_start_machines,omitempty" json:"auto_start_machines,omitempty"`
	MinMachinesRunning *int            `toml:"min_machines_running,omitempty" json:"min_machines_running,omitempty"`
	Processes          []string        `toml:"processes,omitempty" json:"processes,omitempty"`
	Checks             []*FlyHTTPCheck `toml:"checks,omitempty" json:"checks,omitempty"`
}

// FlyHTTPCheck is an [[http_service.checks]] or [[services.http_checks]] entry.
type FlyHTTPCheck struct {
	GracePeriod string `toml:"grace_period,omitempty" json:"grace_period,omitempty"`
	Interval    string `toml:"interval,omitempty" json:"interval,omitempty"`
	Timeout     string `toml:"timeout,omitempty" json:"timeout,omitempty"`
	Method      string `toml:"method,omitempty" json:"method,omitempty"`
	Path        string `toml:"path,omitempty" json:"path,omitempty"`
	Protocol    string `toml:"protocol,omitempty" json:"protocol,omitempty"`
}

// FlyTCPCheck is a [[services.tcp_checks]] entry.
type FlyTCPCheck struct {
	GracePeriod string `toml:"grace_period,omitempty" json:"grace_period,omitempty"`
	Interval    string `toml:"interval,omitempty" json:"interval,omitempty"`
	Timeout     string `toml:"timeout,omitempty" json:"timeout,omitempty"`
}

// FlyService is a [[services]] entry.
type FlyService struct {
	Protocol           string          `toml:"protocol" json:"protocol"`
	InternalPort       int             `toml:"internal_port" json:"internal_port"`
	AutoStopMachines   string          `toml:"auto_stop_machines,omitempty" json:"auto_stop_machines,omitempty"`
	AutoStartMachines  *bool           `toml:"auto_start_machines,omitempty" json:"auto_start_machines,omitempty"`
	MinMachinesRunning *int            `toml:"min_machines_running,omitempty" json:"min_machines_running,omitempty"`
	Processes          []string        `toml:"processes,omitempty" json:"processes,omitempty"`
	Ports              []*FlyPort      `toml:"ports,omitempty" json:"ports,omitempty"`
	TCPChecks          []*FlyTCPCheck  `toml:"tcp_checks,omitempty" json:"tcp_checks,omitempty"`
	HTTPChecks         []*FlyHTTPCheck `toml:"http_checks,omitempty" json:"http_checks,omitempty"`
}

// FlyPort is a [[services.ports]] entry.
type FlyPort struct {
	Port       int      `toml:"port" json:"port"`
	Handlers   []string `toml:"handlers,omitempty" json:"handlers,omitempty"`
	ForceHTTPS bool     `toml:"force_https,omitempty" json:"force_https,omitempty"`
}

// FlyCheck is a [checks.NAME] entry.
type FlyCheck struct {
	Type        string   `toml:"type" json:"type"`
	Port        int      `toml:"port" json:"port"`
	GracePeriod string   `toml:"grace_period,omitempty" json:"grace_period,omitempty"`
	Interval    string   `toml:"interval,omitempty" json:"interval,omitempty"`
	Timeout     string   `toml:"timeout,omitempty" json:"timeout,omitempty"`
	Method      string   `toml:"method,omitempty" json:"method,omitempty"`
	Path        string   `toml:"path,omitempty" json:"path,omitempty"`
	Processes   []string `toml:"processes,omitempty" json:"processes,omitempty"`
}

// FlyMount is a [[mounts]] entry.
type FlyMount struct {
	Source      string   `toml:"source" json:"source"`
	Destination string   `toml:"destination" json:"destination"`
	InitialSize string   `toml:"initial_size,omitempty" json:"initial_size,omitempty"`
	Processes   []string `toml:"processes,omitempty" json:"processes,omitempty"`
}

// FlyFile is a [[files]] entry: a file written into the machine at boot.
type FlyFile struct {
	GuestPath  string   `toml:"guest_path" json:"guest_path"`
	LocalPath  string   `toml:"local_path,omitempty" json:"local_path,omitempty"`
	SecretName string   `toml:"secret_name,omitempty" json:"secret_name,omitempty"`
	RawValue   string   `toml:"raw_value,omitempty" json:"raw_value,omitempty"`
	Processes  []string `toml:"processes,omitempty" json:"processes,omitempty"`
}

// FlyRestart is a [[restart]] entry.
type FlyRestart struct {
	Policy    string   `toml:"policy" json:"policy"`
	Retries   int      `toml:"retries,omitempty" json:"retries,omitempty"`
	Processes []string `toml:"processes,omitempty" json:"processes,omitempty"`
}

// FlyVM is a [[vm]] entry.
type FlyVM struct {
	Size      string   `toml:"size,omitempty" json:"size,omitempty"`
	Memory    string   `toml:"memory,omitempty" json:"memory,omitempty"`
	CPUs      int      `toml:"cpus,omitempty" json:"cpus,omitempty"`
	Processes []string `toml:"processes,omitempty" json:"processes,omitempty"`
}

// MarshalTOML renders the config as fly.toml text with a header comment
// naming where it came from.
func (c *FlyConfig) MarshalTOML(header string) ([]byte, error) {
	var buf bytes.Buffer
	if header != "" {
		for _, line := range splitLines(header) {
			buf.WriteString("# " + line + "\n")
		}
		buf.WriteString("\n")
	}
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode fly.toml for app %s: %w", c.App, err)
	}
	return buf.Bytes(), nil
}
