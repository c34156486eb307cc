package appconfig

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/shlex"
	"github.com/hangar-dev/hangar/internal/types"
)

// PlatformVersion is the fly_platform_version metadata of machines made
// from a fly.toml.
const PlatformVersion = "v2"

// ProcessGroups lists the process groups, sorted; ["app"] without
// [processes].
func (c *Config) ProcessGroups() []string {
	if len(c.Processes) == 0 {
		return []string{types.DefaultProcessGroup}
	}
	names := make([]string, 0, len(c.Processes))
	for n := range c.Processes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultProcessGroup is the group that sections without a processes
// filter apply to: "app" if it is a group, else the first group by name.
func (c *Config) DefaultProcessGroup() string {
	groups := c.ProcessGroups()
	if slices.Contains(groups, types.DefaultProcessGroup) {
		return types.DefaultProcessGroup
	}
	return groups[0]
}

// appliesTo reports whether a section with the given processes filter
// belongs to group. As in flyctl, a section with no filter belongs to the
// default group only.
func (c *Config) appliesTo(group string, processes []string) bool {
	if len(processes) == 0 {
		return group == c.DefaultProcessGroup()
	}
	return slices.Contains(processes, group)
}

// Command returns the group's command split like a shell would (nil when
// the group has none, so the image's CMD runs).
func (c *Config) Command(group string) ([]string, error) {
	cmd := c.Processes[group]
	if strings.TrimSpace(cmd) == "" {
		return nil, nil
	}
	args, err := shlex.Split(cmd)
	if err != nil {
		return nil, fmt.Errorf("process group %s: cannot split command %q: %w", group, cmd, err)
	}
	return args, nil
}

// AllServices returns [http_service] (as the service it stands for)
// followed by [[services]].
func (c *Config) AllServices() []Service {
	var out []Service
	if c.HTTPService != nil {
		out = append(out, c.HTTPService.ToService())
	}
	return append(out, c.Services...)
}

// ToService expands [http_service] the way flyctl does: port 80 with the
// http handler and port 443 with tls and http, both to InternalPort.
func (h *HTTPService) ToService() Service {
	return Service{
		Protocol:     "tcp",
		InternalPort: h.InternalPort,
		Concurrency:  h.Concurrency,
		Processes:    h.Processes,
		HTTPChecks:   h.HTTPChecks,
		Ports: []types.MachinePort{{
			Port:              types.Ptr(80),
			Handlers:          []string{"http"},
			ForceHTTPS:        h.ForceHTTPS,
			HTTPOptions:       h.HTTPOptions,
			ProxyProtoOptions: h.ProxyProtoOptions,
		}, {
			Port:              types.Ptr(443),
			Handlers:          []string{"http", "tls"},
			HTTPOptions:       h.HTTPOptions,
			TLSOptions:        h.TLSOptions,
			ProxyProtoOptions: h.ProxyProtoOptions,
		}},
		AutoStopMachines:   h.AutoStopMachines,
		AutoStartMachines:  h.AutoStartMachines,
		MinMachinesRunning: h.MinMachinesRunning,
		MachineChecks:      h.MachineChecks,
	}
}

func (s *Service) toMachineService() types.MachineService {
	protocol := s.Protocol
	if protocol == "" {
		protocol = "tcp" // flyctl leaves it empty; the proxy needs one
	}
	ms := types.MachineService{
		Protocol:           protocol,
		InternalPort:       s.InternalPort,
		Ports:              slices.Clone(s.Ports),
		Concurrency:        s.Concurrency,
		Autostop:           s.AutoStopMachines,
		Autostart:          s.AutoStartMachines,
		MinMachinesRunning: s.MinMachinesRunning,
	}
	for _, tc := range s.TCPChecks {
		if tc == nil {
			continue
		}
		ms.Checks = append(ms.Checks, types.MachineCheck{
			Type: "tcp", Interval: tc.Interval, Timeout: tc.Timeout, GracePeriod: tc.GracePeriod,
		})
	}
	for _, hc := range s.HTTPChecks {
		if hc == nil {
			continue
		}
		ms.Checks = append(ms.Checks, hc.toMachineCheck())
	}
	return ms
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func headerList(h map[string]string) []types.MachineHTTPHeader {
	if len(h) == 0 {
		return nil
	}
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]types.MachineHTTPHeader, 0, len(names))
	for _, n := range names {
		out = append(out, types.MachineHTTPHeader{Name: n, Values: []string{h[n]}})
	}
	return out
}

func (hc *HTTPCheck) toMachineCheck() types.MachineCheck {
	return types.MachineCheck{
		Type:          "http",
		Interval:      hc.Interval,
		Timeout:       hc.Timeout,
		GracePeriod:   hc.GracePeriod,
		Method:        deref(hc.Method),
		Path:          deref(hc.Path),
		Protocol:      deref(hc.Protocol),
		TLSSkipVerify: hc.TLSSkipVerify,
		TLSServerName: deref(hc.TLSServerName),
		Headers:       headerList(hc.Headers),
	}
}

func (tc *ToplevelCheck) toMachineCheck() (types.MachineCheck, error) {
	typ := deref(tc.Type)
	if typ != "http" && typ != "tcp" {
		return types.MachineCheck{}, fmt.Errorf("missing or invalid check type %q: must be \"http\" or \"tcp\"", typ)
	}
	return types.MachineCheck{
		Type:          typ,
		Port:          tc.Port,
		Interval:      tc.Interval,
		Timeout:       tc.Timeout,
		GracePeriod:   tc.GracePeriod,
		Method:        strings.ToUpper(deref(tc.Method)),
		Path:          deref(tc.Path),
		Protocol:      deref(tc.Protocol),
		TLSSkipVerify: tc.TLSSkipVerify,
		TLSServerName: deref(tc.TLSServerName),
		Headers:       headerList(tc.Headers),
	}, nil
}

// VMFor returns the [[vm]] entry that applies to group: one that names the
// group wins over one without a processes filter (flyctl's most specific
// compute), or nil.
func (c *Config) VMFor(group string) *VM {
	var best *VM
	for i := range c.VMs {
		vm := &c.VMs[i]
		if len(vm.Processes) != 0 && !c.appliesTo(group, vm.Processes) {
			continue
		}
		if best == nil || slices.Contains(vm.Processes, group) {
			best = vm
		}
	}
	return best
}

// extraPresets are Fly sizes that the shared presets table lacks.
var extraPresets = map[string]types.MachineGuest{
	"dedicated-cpu-2x": {CPUKind: "performance", CPUs: 2, MemoryMB: 4096},
	"dedicated-cpu-4x": {CPUKind: "performance", CPUs: 4, MemoryMB: 8192},
	"dedicated-cpu-8x": {CPUKind: "performance", CPUs: 8, MemoryMB: 16384},
	"performance-64x":  {CPUKind: "performance", CPUs: 64, MemoryMB: 131072},
}

// DefaultGPUSize is the preset of a [[vm]] that sets gpu_kind but no size.
const DefaultGPUSize = "a100-40gb"

func guestPreset(size string) (types.MachineGuest, error) {
	if g, ok := extraPresets[size]; ok {
		return g, nil
	}
	return types.GuestForSize(size)
}

// Guest builds the machine size from a [[vm]] entry: the preset, then
// memory, then each explicit override. hostDedicationID is the top-level
// host_dedication_id.
func (vm *VM) Guest(hostDedicationID string) (*types.MachineGuest, error) {
	size := "shared-cpu-1x"
	switch {
	case vm.Size != "":
		size = vm.Size
	case vm.GPUKind != "":
		size = DefaultGPUSize
	}
	g, err := guestPreset(size)
	if err != nil {
		return nil, err
	}
	g.HostDedicationID = hostDedicationID
	if vm.Memory != "" {
		mb, err := ParseMemoryMB(vm.Memory)
		if err != nil {
			return nil, err
		}
		if mb == 0 {
			return nil, fmt.Errorf("memory cannot be zero")
		}
		g.MemoryMB = mb
	}
	if vm.CPUKind != "" {
		g.CPUKind = vm.CPUKind
	}
	if vm.CPUs != 0 {
		g.CPUs = vm.CPUs
	}
	if vm.MemoryMB != 0 {
		g.MemoryMB = vm.MemoryMB
	}
	if vm.GPUKind != "" {
		g.GPUKind = vm.GPUKind
	}
	if vm.GPUs != 0 {
		g.GPUs = vm.GPUs
	}
	if vm.HostDedicationID != "" {
		g.HostDedicationID = vm.HostDedicationID
	}
	if len(vm.KernelArgs) > 0 {
		g.KernelArgs = slices.Clone(vm.KernelArgs)
	}
	return &g, nil
}

// ToMachineConfig builds the machine config of one process group the way
// flyctl does for a deploy: init.cmd from the group's command, only the
// services, checks, mounts, files, metrics and restart policy that apply to
// the group, the guest from the most specific [[vm]] (shared-cpu-1x when
// there is none), stop_config from kill_signal and kill_timeout, env plus
// FLY_PROCESS_GROUP and PRIMARY_REGION, and the process group metadata.
func (c *Config) ToMachineConfig(group, image string) (*types.MachineConfig, error) {
	if group == "" {
		group = c.DefaultProcessGroup()
	}
	if !slices.Contains(c.ProcessGroups(), group) {
		return nil, fmt.Errorf("process group %q is not defined: the groups are %s", group, strings.Join(c.ProcessGroups(), ", "))
	}
	mc := &types.MachineConfig{}
	// An inline machine_config (JSON) is the base the rest is laid over,
	// as flyctl does; a path to a JSON file is the caller's to read.
	for _, base := range []string{c.MachineConfig, c.experimentalMachineConfig()} {
		if strings.HasPrefix(strings.TrimSpace(base), "{") {
			if err := json.Unmarshal([]byte(base), mc); err != nil {
				return nil, fmt.Errorf("machine_config: %w", err)
			}
		}
	}
	mc.Image = image

	// Init
	cmd, err := c.Command(group)
	if err != nil {
		return nil, err
	}
	if c.Experimental != nil {
		if cmd == nil {
			cmd = slices.Clone(c.Experimental.Cmd)
		}
		mc.Init.Entrypoint = slices.Clone(c.Experimental.Entrypoint)
		mc.Init.Exec = slices.Clone(c.Experimental.Exec)
	}
	mc.Init.Cmd = cmd
	mc.Init.SwapSizeMB = c.SwapSizeMB

	// Metadata
	mc.Metadata = map[string]string{
		types.MetaProcessGroup: group,
		types.MetaPlatform:     PlatformVersion,
	}

	// Services
	var httpService *HTTPService
	if c.HTTPService != nil && c.appliesTo(group, c.HTTPService.Processes) {
		httpService = c.HTTPService
	}
	for _, s := range c.AllServices() {
		if c.appliesTo(group, s.Processes) {
			mc.Services = append(mc.Services, s.toMachineService())
		}
	}

	// Checks
	names := make([]string, 0, len(c.Checks))
	for name := range c.Checks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		chk := c.Checks[name]
		if chk == nil || !c.appliesTo(group, chk.Processes) {
			continue
		}
		m, err := chk.toMachineCheck()
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", name, err)
		}
		if m.Port == nil {
			if httpService == nil {
				return nil, fmt.Errorf("check %s for process group %s has no port and the group has no [http_service] to take it from", name, group)
			}
			m.Port = types.Ptr(httpService.InternalPort)
		}
		if mc.Checks == nil {
			mc.Checks = map[string]types.MachineCheck{}
		}
		mc.Checks[name] = m
	}

	// Env
	mc.Env = make(map[string]string, len(c.Env)+2)
	for k, v := range c.Env {
		mc.Env[k] = v
	}
	mc.Env["FLY_PROCESS_GROUP"] = group
	if c.PrimaryRegion != "" {
		mc.Env["PRIMARY_REGION"] = c.PrimaryRegion
	}

	// Statics apply to every group, as in flyctl.
	for _, s := range c.Statics {
		mc.Statics = append(mc.Statics, types.Static{
			GuestPath: s.GuestPath, URLPrefix: s.URLPrefix,
			TigrisBucket: s.TigrisBucket, IndexDocument: s.IndexDocument,
		})
	}

	// Mounts
	for _, m := range c.Mounts {
		if !c.appliesTo(group, m.Processes) {
			continue
		}
		mm := types.MachineMount{
			Path: m.Destination, Name: m.Source,
			ExtendThresholdPercent: m.AutoExtendSizeThreshold,
		}
		if m.InitialSize != "" {
			// The size a volume gets when the machine's first start creates it.
			mm.SizeGB, _ = ParseSizeGB(m.InitialSize)
		}
		if m.AutoExtendSizeIncrement != "" {
			mm.AddSizeGB, _ = ParseSizeGB(m.AutoExtendSizeIncrement)
		}
		if m.AutoExtendSizeLimit != "" {
			mm.SizeGBLimit, _ = ParseSizeGB(m.AutoExtendSizeLimit)
		}
		if m.SnapshotRetention != nil {
			mm.SnapshotRetention = *m.SnapshotRetention
		}
		mc.Mounts = append(mc.Mounts, mm)
	}

	// Metrics: the first entry that applies.
	for _, m := range c.Metrics {
		if c.appliesTo(group, m.Processes) {
			mc.Metrics = &types.MachineMetrics{Port: m.Port, Path: m.Path}
			break
		}
	}

	// StopConfig
	if c.KillSignal != nil || c.KillTimeout != nil {
		mc.StopConfig = &types.StopConfig{Signal: c.KillSignal, Timeout: c.KillTimeout}
	}

	// Files
	for _, f := range c.Files {
		if !c.appliesTo(group, f.Processes) {
			continue
		}
		mf := types.File{GuestPath: f.GuestPath}
		switch {
		case f.LocalPath != "":
			content, ok := c.localFiles[f.LocalPath]
			if !ok {
				continue // resolved by the caller; see UnresolvedFiles
			}
			mf.RawValue = types.Ptr(base64.StdEncoding.EncodeToString(content))
		case f.SecretName != "":
			mf.SecretName = types.Ptr(f.SecretName)
		default:
			mf.RawValue = types.Ptr(base64.StdEncoding.EncodeToString([]byte(f.RawValue)))
		}
		mc.Files = append(mc.Files, mf)
	}

	// Guest
	hostDedication := c.HostDedicationID
	if vm := c.VMFor(group); vm != nil {
		g, err := vm.Guest(hostDedication)
		if err != nil {
			return nil, fmt.Errorf("[[vm]] for process group %s: %w", group, err)
		}
		mc.Guest = g
	} else {
		g := types.DefaultGuest
		g.HostDedicationID = hostDedication
		mc.Guest = &g
	}

	// Restart: the last [[restart]] that applies.
	for _, r := range c.Restart {
		if !c.appliesTo(group, r.Processes) {
			continue
		}
		policy, err := restartPolicy(r.Policy)
		if err != nil {
			return nil, err
		}
		mc.Restart = &types.MachineRestart{Policy: policy, MaxRetries: r.MaxRetries}
	}
	return deepCopy(mc)
}

// deepCopy returns a machine config that shares no pointers, slices or
// maps with the Config, so callers may change it freely.
func deepCopy(mc *types.MachineConfig) (*types.MachineConfig, error) {
	b, err := json.Marshal(mc)
	if err != nil {
		return nil, err
	}
	out := &types.MachineConfig{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Config) experimentalMachineConfig() string {
	if c.Experimental == nil {
		return ""
	}
	return c.Experimental.MachineConfig
}

func restartPolicy(p string) (string, error) {
	switch p {
	case RestartPolicyAlways:
		return types.RestartAlways, nil
	case RestartPolicyOnFailure:
		return types.RestartOnFailure, nil
	case RestartPolicyNever, "no":
		return types.RestartNo, nil
	default:
		return "", fmt.Errorf("invalid restart policy %q: use always, never or on-failure", p)
	}
}

// ToMachineConfigs converts every process group.
func (c *Config) ToMachineConfigs(image string) (map[string]*types.MachineConfig, error) {
	out := map[string]*types.MachineConfig{}
	for _, g := range c.ProcessGroups() {
		mc, err := c.ToMachineConfig(g, image)
		if err != nil {
			return nil, err
		}
		out[g] = mc
	}
	return out, nil
}

// ToReleaseMachineConfig is the config of the ephemeral machine that runs
// [deploy] release_command, as flyctl builds it.
func (c *Config) ToReleaseMachineConfig(image string) (*types.MachineConfig, error) {
	if c.Deploy == nil || strings.TrimSpace(c.Deploy.ReleaseCommand) == "" {
		return nil, fmt.Errorf("no release_command in [deploy]")
	}
	cmd, err := shlex.Split(c.Deploy.ReleaseCommand)
	if err != nil {
		return nil, fmt.Errorf("release_command %q: %w", c.Deploy.ReleaseCommand, err)
	}
	mc := &types.MachineConfig{
		Image:       image,
		Init:        types.MachineInit{Cmd: cmd, SwapSizeMB: c.SwapSizeMB},
		Restart:     &types.MachineRestart{Policy: types.RestartNo},
		AutoDestroy: true,
		DNS:         &types.DNSConfig{SkipRegistration: true},
		Metadata: map[string]string{
			types.MetaProcessGroup: ReleaseCommandGroup,
			types.MetaPlatform:     PlatformVersion,
		},
		Env: map[string]string{},
	}
	for k, v := range c.Env {
		mc.Env[k] = v
	}
	if c.Experimental != nil {
		mc.Init.Entrypoint = slices.Clone(c.Experimental.Entrypoint)
	}
	mc.Env["RELEASE_COMMAND"] = "1"
	mc.Env["FLY_PROCESS_GROUP"] = ReleaseCommandGroup
	if c.PrimaryRegion != "" {
		mc.Env["PRIMARY_REGION"] = c.PrimaryRegion
	}
	if c.KillSignal != nil || c.KillTimeout != nil {
		mc.StopConfig = &types.StopConfig{Signal: c.KillSignal, Timeout: c.KillTimeout}
	}
	if vm := c.Deploy.ReleaseCommandVM; vm != nil {
		g, err := vm.Guest(c.HostDedicationID)
		if err != nil {
			return nil, fmt.Errorf("release_command_vm: %w", err)
		}
		mc.Guest = g
	}
	return mc, nil
}

// ReleaseCommandGroup is the process group of release command machines.
const ReleaseCommandGroup = "fly_app_release_command"

// ParseMemoryMB reads a [[vm]] memory value: a plain number is megabytes;
// "512mb", "1gb", "2GB" use binary units as flyctl does.
func ParseMemoryMB(s string) (int, error) {
	b, plain, err := parseSize(s, true)
	if err != nil {
		return 0, fmt.Errorf("memory %q: %w", s, err)
	}
	if plain {
		return int(b), nil
	}
	return int(b / (1 << 20)), nil
}

// ParseSizeGB reads a volume size: a plain number is gigabytes; "10gb",
// "500GB" use decimal units as flyctl does.
func ParseSizeGB(s string) (int, error) {
	b, plain, err := parseSize(s, false)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if plain {
		return int(b), nil
	}
	return int(b / 1e9), nil
}

// parseSize parses "10", "10gb", "1.5 GiB" into bytes (or the plain number
// when there is no unit).
func parseSize(s string, binary bool) (n float64, plain bool, err error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, false, fmt.Errorf("empty size")
	}
	if v, err := strconv.Atoi(t); err == nil {
		if v < 0 {
			return 0, false, fmt.Errorf("negative size")
		}
		return float64(v), true, nil
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, err := strconv.ParseFloat(t[:i], 64)
	if err != nil || num < 0 {
		return 0, false, fmt.Errorf("not a size; use a number with a unit like \"1gb\" or \"512mb\"")
	}
	unit := strings.TrimSpace(t[i:])
	unit = strings.TrimSuffix(unit, "b")
	unit = strings.TrimSuffix(unit, "i")
	base := 1000.0
	if binary || strings.Contains(strings.ToLower(strings.TrimSpace(t[i:])), "i") {
		base = 1024
	}
	mult := 1.0
	switch unit {
	case "":
		mult = 1
	case "k":
		mult = base
	case "m":
		mult = base * base
	case "g":
		mult = base * base * base
	case "t":
		mult = base * base * base * base
	case "p":
		mult = base * base * base * base * base
	default:
		return 0, false, fmt.Errorf("unknown unit %q; use mb or gb", t[i:])
	}
	return num * mult, false, nil
}
