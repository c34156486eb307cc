package appconfig

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/shlex"

	"github.com/hangar-dev/hangar/internal/types"
)

// Strategies lists the deploy strategies, in the order hints show them.
var Strategies = []string{StrategyRolling, StrategyBlueGreen, StrategyCanary, StrategyImmediate}

// knownHandlers are the port handlers Fly's proxy has; servedHandlers are
// those Hangar's proxy serves (a port with any other is not bound).
var (
	knownHandlers  = []string{"http", "tls", "pg_tls", "proxy_proto", "edge_http"}
	servedHandlers = []string{"http", "tls", "proxy_proto", "pg_tls"}
)

// checker accumulates validation diagnostics.
type checker struct {
	c      *Config
	out    []Diagnostic
	strict bool
}

func (k *checker) errorf(rule string, p path, hint, format string, args ...any) {
	k.out = append(k.out, k.c.diag(SeverityError, rule, p, hint, format, args...))
}

func (k *checker) warnf(rule string, p path, hint, format string, args ...any) {
	k.out = append(k.out, k.c.diag(SeverityWarning, rule, p, hint, format, args...))
}

// strictf is a warning that --strict makes an error.
func (k *checker) strictf(rule string, p path, hint, format string, args ...any) {
	if k.strict {
		k.errorf(rule, p, hint, format, args...)
	} else {
		k.warnf(rule, p, hint, format, args...)
	}
}

func (c *Config) validate(strict bool) []Diagnostic {
	k := &checker{c: c, strict: strict}
	k.top()
	k.build()
	k.deploy()
	k.processes()
	k.groupFilters()
	k.services()
	k.topChecks()
	k.mounts()
	k.vms()
	k.restarts()
	k.files()
	k.statics()
	k.conversion()
	return k.out
}

func (k *checker) top() {
	c := k.c
	k.stop(path{}, c.KillSignal)
	for i, mc := range c.MachineChecks {
		if mc != nil {
			k.stop(path{"machine_checks"}.index(i), mc.KillSignal)
		}
	}
	names := make([]string, 0, len(c.Env))
	for name := range c.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if types.ValidEnvName(name) != nil {
			k.errorf("env", path{"env", name}, "use a name without '=' (NAME = \"value\")", "env name %q cannot be an environment variable: it is empty or holds '=' or a NUL byte", name)
		}
	}
	if c.ConsoleCommand != "" {
		if _, err := shlex.Split(c.ConsoleCommand); err != nil {
			k.errorf("command", path{"console_command"}, "check the quotes and backslashes", "console_command cannot be split into arguments: %v", err)
		}
	}
	for _, mcfg := range []struct {
		p path
		v string
	}{{path{"machine_config"}, c.MachineConfig}, {path{"experimental", "machine_config"}, c.experimentalMachineConfig()}} {
		if strings.HasPrefix(strings.TrimSpace(mcfg.v), "{") {
			var probe map[string]any
			if err := json.Unmarshal([]byte(mcfg.v), &probe); err != nil {
				k.errorf("machine-config", mcfg.p, "write a JSON object, or the path of a .json file", "machine_config is not valid JSON: %v", err)
			}
		}
	}
	if c.SwapSizeMB != nil && *c.SwapSizeMB < 0 {
		k.errorf("range", path{"swap_size_mb"}, "use 0 or a positive number of megabytes", "swap_size_mb must not be negative")
	} else if c.SwapSizeMB != nil && *c.SwapSizeMB > 0 {
		k.warnf("ignored", path{"swap_size_mb"}, "remove swap_size_mb, or give the machine the memory it needs ([[vm]] memory)",
			"swap_size_mb %d is not applied: Hangar machines get no swap yet", *c.SwapSizeMB)
	}
	if c.Experimental != nil && c.Experimental.AutoRollback != nil && !*c.Experimental.AutoRollback {
		k.warnf("ignored", path{"experimental", "auto_rollback"}, "remove auto_rollback = false; a failed deploy leaves the previous release serving",
			"auto_rollback = false is not applied: Hangar always rolls a failed deploy back")
	}
}

// stop checks kill_signal under p: a machine is stopped with it, so a
// signal the runtime cannot send would fail only then. (A negative
// kill_timeout is refused when the duration is decoded.)
func (k *checker) stop(p path, signal *string) {
	if signal != nil && types.ValidSignal(*signal) != nil {
		k.errorf("kill-signal", p.child("kill_signal"), "use one of "+strings.Join(types.Signals, ", "), "kill_signal %q is not a signal Fly knows", *signal)
	}
}

func (k *checker) build() {
	b := k.c.Build
	if b == nil {
		return
	}
	var ways []string
	if b.Image != "" {
		ways = append(ways, "image")
		// An image reference that a tool emptied (an unset variable in
		// name:${TAG}) cannot be pulled; say so before the deploy does.
		if strings.HasSuffix(b.Image, ":") || strings.HasSuffix(b.Image, "@") {
			k.errorf("image", path{"build", "image"}, "give the tag or digest (name:1.2.3, name@sha256:...) or drop the separator to use latest",
				"[build] image %q ends in %q: the tag or digest is empty", b.Image, b.Image[len(b.Image)-1:])
		}
	}
	if b.Builder != "" || len(b.Buildpacks) > 0 {
		ways = append(ways, "builder")
	}
	if b.Dockerfile != "" {
		ways = append(ways, "dockerfile")
	}
	if b.Builtin != "" {
		ways = append(ways, "builtin")
	}
	if len(ways) > 1 {
		k.warnf("build", path{"build"}, "keep only one of them; flyctl uses image first", "[build] names more than one way to get the image: %s", strings.Join(ways, ", "))
	}
}

func (k *checker) deploy() {
	c := k.c
	d := c.Deploy
	if d == nil {
		return
	}
	if s := d.Strategy; s != "" {
		if !slices.Contains(Strategies, s) {
			k.errorf("strategy", path{"deploy", "strategy"}, "use one of "+strings.Join(Strategies, ", "), "unsupported deploy strategy %q", s)
		} else if (s == StrategyCanary || s == StrategyBlueGreen) && len(c.Mounts) > 0 {
			k.errorf("strategy-mounts", path{"deploy", "strategy"}, "use strategy = \"rolling\" or \"immediate\" with volumes",
				"the %s strategy cannot be used with [[mounts]]: it starts new machines beside the old ones, and a volume attaches to one machine at a time", s)
		}
		if s == StrategyBlueGreen && !c.HasHealthChecks() {
			k.errorf("bluegreen-checks", path{"deploy", "strategy"}, "add [[http_service.checks]], [[services.tcp_checks]] or a [checks.NAME] section",
				"the bluegreen strategy needs health checks to know when the new machines are ready, and none are defined")
		}
	}
	if d.MaxUnavailable != nil && *d.MaxUnavailable <= 0 {
		k.errorf("range", path{"deploy", "max_unavailable"}, "use a fraction like 0.33 or a number of machines like 2", "max_unavailable must be greater than 0")
	}
	if d.ReleaseCommand != "" {
		if _, err := shlex.Split(d.ReleaseCommand); err != nil {
			k.errorf("command", path{"deploy", "release_command"}, "check the quotes and backslashes", "release_command cannot be split into arguments: %v", err)
		}
	}
	if d.ReleaseCommandVM != nil {
		k.vm(path{"deploy", "release_command_vm"}, d.ReleaseCommandVM)
	}
}

// HasHealthChecks reports whether any service or top-level check exists.
func (c *Config) HasHealthChecks() bool {
	if len(c.Checks) > 0 {
		return true
	}
	for _, s := range c.AllServices() {
		if len(s.TCPChecks) > 0 || len(s.HTTPChecks) > 0 {
			return true
		}
	}
	return false
}

func (k *checker) processes() {
	for _, name := range k.c.ProcessGroups() {
		cmd, ok := k.c.Processes[name]
		if !ok {
			continue
		}
		p := path{"processes", name}
		if name == "" {
			k.errorf("process-name", p, "give the group a name", "a process group has an empty name")
		}
		if _, err := shlex.Split(cmd); err != nil {
			k.errorf("command", p, "check the quotes and backslashes", "the command of process group %q cannot be split into arguments: %v", name, err)
		}
	}
}

// groupFilters checks every processes = [...] filter names a group.
func (k *checker) groupFilters() {
	c := k.c
	groups := c.ProcessGroups()
	// flyctl refuses unknown groups in services and restart policies; in
	// other sections it silently drops them, so those are warnings.
	check := func(p path, filter []string, refuse bool) {
		for i, g := range filter {
			if slices.Contains(groups, g) {
				continue
			}
			hint := "define it in [processes], or use one of: " + strings.Join(groups, ", ")
			if refuse {
				k.errorf("undefined-group", p.child("processes").index(i), hint, "%s refers to process group %q, which is not defined", sectionName(p), g)
			} else {
				k.strictf("undefined-group", p.child("processes").index(i), hint, "%s refers to process group %q, which is not defined; the section is ignored for it", sectionName(p), g)
			}
		}
	}
	if c.HTTPService != nil {
		check(path{"http_service"}, c.HTTPService.Processes, true)
	}
	for i, s := range c.Services {
		check(path{"services"}.index(i), s.Processes, true)
	}
	for i, r := range c.Restart {
		check(path{"restart"}.index(i), r.Processes, true)
	}
	for i, m := range c.Mounts {
		check(path{"mounts"}.index(i), m.Processes, false)
	}
	for _, name := range sortedMapKeys(c.Checks) {
		if chk := c.Checks[name]; chk != nil {
			check(path{"checks", name}, chk.Processes, false)
		}
	}
	for i, v := range c.VMs {
		check(path{"vm"}.index(i), v.Processes, false)
	}
	for i, f := range c.Files {
		check(path{"files"}.index(i), f.Processes, false)
	}
	for i, m := range c.Metrics {
		check(path{"metrics"}.index(i), m.Processes, false)
	}
}

func (k *checker) port(p path, n int, what string) {
	if n < 1 || n > 65535 {
		k.errorf("port", p, "use a port between 1 and 65535", "%s %d is not a valid port", what, n)
	}
}

func (k *checker) services() {
	c := k.c
	if h := c.HTTPService; h != nil {
		p := path{"http_service"}
		if h.InternalPort == 0 {
			k.strictf("internal-port", p, "set internal_port to the port your app listens on, e.g. internal_port = 8080", "[http_service] has no internal_port: the proxy has nowhere to send requests")
		} else {
			k.port(p.child("internal_port"), h.InternalPort, "internal_port")
		}
		k.concurrency(p.child("concurrency"), h.Concurrency)
		for i, chk := range h.HTTPChecks {
			if chk != nil {
				k.serviceCheck(p.child("checks").index(i), chk.Interval, chk.Timeout, chk.GracePeriod)
			}
		}
		k.minRunning(p, h.MinMachinesRunning)
	}
	for i, s := range c.Services {
		p := path{"services"}.index(i)
		switch s.Protocol {
		case "tcp", "udp":
		case "":
			k.strictf("protocol", p, "add protocol = \"tcp\" (or \"udp\")", "[[services]] has no protocol; Hangar uses tcp")
		default:
			k.errorf("protocol", p.child("protocol"), "use \"tcp\" or \"udp\"", "service protocol %q is not tcp or udp", s.Protocol)
		}
		if s.InternalPort == 0 {
			k.strictf("internal-port", p, "set internal_port to the port your app listens on", "[[services]] has no internal_port: the proxy has nowhere to send connections")
		} else {
			k.port(p.child("internal_port"), s.InternalPort, "internal_port")
		}
		if len(s.Ports) == 0 {
			k.strictf("no-ports", p, "add a [[services.ports]] section with port and handlers", "[[services]] for internal_port %d has no ports: the proxy will not route to it", s.InternalPort)
		}
		for j, port := range s.Ports {
			pp := p.child("ports").index(j)
			switch {
			case port.Port != nil:
				k.port(pp.child("port"), *port.Port, "port")
			case port.StartPort != nil || port.EndPort != nil:
				if port.StartPort == nil || port.EndPort == nil {
					k.errorf("port-range", pp, "set both start_port and end_port", "a port range needs both start_port and end_port")
				} else {
					k.port(pp.child("start_port"), *port.StartPort, "start_port")
					k.port(pp.child("end_port"), *port.EndPort, "end_port")
					if *port.StartPort > *port.EndPort {
						k.errorf("port-range", pp.child("start_port"), "swap them", "start_port %d is above end_port %d", *port.StartPort, *port.EndPort)
					}
				}
			default:
				k.strictf("port", pp, "add port = 80 (or start_port and end_port)", "[[services.ports]] has no port; it is ignored")
			}
			for h, name := range port.Handlers {
				switch {
				case !slices.Contains(knownHandlers, name):
					k.errorf("handler", pp.child("handlers").index(h), "use http, tls, pg_tls or proxy_proto (or none for raw TCP)", "unknown handler %q: this port would not be bound", name)
				case !slices.Contains(servedHandlers, name):
					k.strictf("handler", pp.child("handlers").index(h), "use http, tls, pg_tls or proxy_proto",
						"handler %q is not served by Hangar yet: this port would not be bound", name)
				}
			}
			if slices.Contains(port.Handlers, "pg_tls") && (slices.Contains(port.Handlers, "tls") || slices.Contains(port.Handlers, "http")) {
				k.errorf("handler", pp.child("handlers"), `use handlers = ["pg_tls"] alone`, "pg_tls does its own TLS for Postgres clients and cannot be combined with tls or http")
			}
		}
		k.concurrency(p.child("concurrency"), s.Concurrency)
		for j, chk := range s.TCPChecks {
			if chk != nil {
				k.serviceCheck(p.child("tcp_checks").index(j), chk.Interval, chk.Timeout, chk.GracePeriod)
			}
		}
		for j, chk := range s.HTTPChecks {
			if chk != nil {
				k.serviceCheck(p.child("http_checks").index(j), chk.Interval, chk.Timeout, chk.GracePeriod)
			}
		}
		k.minRunning(p, s.MinMachinesRunning)
	}
}

func (k *checker) minRunning(p path, n *int) {
	if n != nil && *n < 0 {
		k.errorf("range", p.child("min_machines_running"), "use 0 or more", "min_machines_running must not be negative")
	}
}

func (k *checker) concurrency(p path, cc *types.MachineServiceConcurrency) {
	if cc == nil {
		return
	}
	if cc.Type != "" && cc.Type != "connections" && cc.Type != "requests" {
		k.strictf("concurrency", p.child("type"), "use \"connections\" or \"requests\"", "concurrency type %q is not connections or requests; Hangar counts connections", cc.Type)
	}
	if cc.HardLimit < 0 || cc.SoftLimit < 0 {
		k.errorf("range", p, "use positive limits", "concurrency limits must not be negative")
	}
	if cc.HardLimit > 0 && cc.SoftLimit > cc.HardLimit {
		k.warnf("concurrency", p.child("soft_limit"), "make soft_limit at most hard_limit", "concurrency soft_limit %d is above hard_limit %d", cc.SoftLimit, cc.HardLimit)
	}
}

// serviceCheck mirrors flyctl: Fly raises service check durations under
// 1s to 1s and lowers those over 1m to 1m, so they are warnings.
func (k *checker) serviceCheck(p path, interval, timeout, grace *types.Duration) {
	one := func(name string, d *types.Duration, zeroOK bool) {
		if d == nil {
			return
		}
		switch {
		case d.Duration < time.Second && !(zeroOK && d.Duration == 0):
			k.warnf("check-bounds", p.child(name), "use at least \"1s\"", "check %s %s is under 1s; Fly raises it to 1s", strings.ReplaceAll(name, "_", " "), d.Duration)
		case d.Duration > time.Minute:
			k.warnf("check-bounds", p.child(name), "use at most \"1m\"", "check %s %s is over 1m; Fly lowers it to 1m", strings.ReplaceAll(name, "_", " "), d.Duration)
		}
	}
	one("interval", interval, false)
	one("timeout", timeout, false)
	one("grace_period", grace, true)
}

func (k *checker) topChecks() {
	c := k.c
	for _, name := range sortedMapKeys(c.Checks) {
		chk := c.Checks[name]
		p := path{"checks", name}
		if chk == nil {
			continue
		}
		switch typ := deref(chk.Type); typ {
		case "http", "tcp":
		case "":
			k.errorf("check-type", p, "add type = \"http\" or type = \"tcp\"", "check %q has no type", name)
		default:
			k.errorf("check-type", p.child("type"), "use \"http\" or \"tcp\"", "check %q has type %q; it must be \"http\" or \"tcp\"", name, typ)
		}
		if chk.Interval != nil && chk.Interval.Duration < 2*time.Second {
			k.errorf("check-bounds", p.child("interval"), "use an interval of at least \"2s\"", "check %q interval %s is too short; the minimum is 2s", name, chk.Interval.Duration)
		}
		if chk.Timeout != nil && chk.Timeout.Duration > time.Minute {
			k.errorf("check-bounds", p.child("timeout"), "use a timeout of at most \"60s\"", "check %q timeout %s is too long; the maximum is 60s", name, chk.Timeout.Duration)
		}
		if chk.Port != nil {
			k.port(p.child("port"), *chk.Port, "check port")
		}
	}
}

func (k *checker) mounts() {
	c := k.c
	perGroup := map[string]int{}
	for i, m := range c.Mounts {
		p := path{"mounts"}.index(i)
		name := m.Source
		if m.Destination == "" {
			k.errorf("mount", p, "add destination = \"/data\" (where the volume appears in the machine)", "mount %q has no destination", name)
		} else if !strings.HasPrefix(m.Destination, "/") {
			k.errorf("mount", p.child("destination"), "use an absolute path like \"/data\"", "mount destination %q is not an absolute path", m.Destination)
		}
		if m.Source == "" {
			k.warnf("mount", p, "add source = \"NAME\", the volume name to attach", "mount at %q has no source volume name", m.Destination)
		}
		if m.InitialSize != "" {
			v, err := ParseSizeGB(m.InitialSize)
			switch {
			case err != nil:
				k.errorf("mount-size", p.child("initial_size"), "use a size like \"10gb\"", "mount %q initial_size %q is not a size", name, m.InitialSize)
			case v < 1:
				k.errorf("mount-size", p.child("initial_size"), "use at least \"1gb\"", "mount %q initial_size %q is smaller than 1GB", name, m.InitialSize)
			}
		}
		if m.SnapshotRetention != nil && (*m.SnapshotRetention < 1 || *m.SnapshotRetention > 60) {
			k.errorf("mount-snapshot", p.child("snapshot_retention"), "use a number of days from 1 to 60", "mount %q snapshot_retention %d is not between 1 and 60 days", name, *m.SnapshotRetention)
		}
		var inc, limit int
		var incOK, limitOK = true, true
		if m.AutoExtendSizeIncrement != "" {
			v, err := ParseSizeGB(m.AutoExtendSizeIncrement)
			if err != nil {
				incOK = false
				k.errorf("mount-size", p.child("auto_extend_size_increment"), "use a size like \"1gb\"", "mount %q auto_extend_size_increment %q is not a size", name, m.AutoExtendSizeIncrement)
			}
			inc = v
		}
		if m.AutoExtendSizeLimit != "" {
			v, err := ParseSizeGB(m.AutoExtendSizeLimit)
			if err != nil {
				limitOK = false
				k.errorf("mount-size", p.child("auto_extend_size_limit"), "use a size like \"100gb\"", "mount %q auto_extend_size_limit %q is not a size", name, m.AutoExtendSizeLimit)
			}
			limit = v
		}
		if (m.AutoExtendSizeThreshold != 0 || inc != 0 || limit != 0) && incOK && limitOK {
			if m.AutoExtendSizeThreshold < 50 || m.AutoExtendSizeThreshold > 99 {
				k.errorf("mount-extend", p.child("auto_extend_size_threshold"), "use a percentage from 50 to 99", "mount %q auto_extend_size_threshold must be between 50 and 99", name)
			}
			if inc < 1 || inc > 100 {
				k.errorf("mount-extend", p.child("auto_extend_size_increment"), "use a size from \"1gb\" to \"100gb\"", "mount %q auto_extend_size_increment must be between 1GB and 100GB", name)
			}
			if limit != 0 && limit > 500 {
				k.errorf("mount-extend", p.child("auto_extend_size_limit"), "use a size up to \"500gb\"", "mount %q auto_extend_size_limit must be between 1GB and 500GB", name)
			}
		}
		for _, g := range c.ProcessGroups() {
			if c.appliesTo(g, m.Processes) {
				perGroup[g]++
				if perGroup[g] == 2 {
					k.errorf("mount-count", p, "a machine can attach one volume; split the groups with processes = [...]", "process group %q has more than one [[mounts]]", g)
				}
			}
		}
	}
}

func (k *checker) vm(p path, vm *VM) {
	if vm.Size != "" {
		if _, err := guestPreset(vm.Size); err != nil {
			k.errorf("vm-size", p.child("size"), "use a preset such as shared-cpu-1x, shared-cpu-2x, performance-1x", "unknown vm size %q", vm.Size)
		}
	}
	if vm.Memory != "" {
		mb, err := ParseMemoryMB(vm.Memory)
		switch {
		case err != nil:
			k.errorf("vm-memory", p.child("memory"), "use a size like \"512mb\" or \"1gb\", or memory_mb = 1024", "vm memory %q is not a size", vm.Memory)
		case mb == 0:
			k.errorf("vm-memory", p.child("memory"), "use a size like \"512mb\" or \"1gb\"", "vm memory cannot be zero")
		case mb%256 != 0:
			k.warnf("vm-memory", p.child("memory"), "Fly sizes memory in multiples of 256MB", "vm memory %dMB is not a multiple of 256MB", mb)
		}
	}
	if vm.CPUKind != "" && vm.CPUKind != "shared" && vm.CPUKind != "performance" {
		k.errorf("vm-cpu", p.child("cpu_kind"), "use \"shared\" or \"performance\"", "unknown cpu_kind %q", vm.CPUKind)
	}
	if vm.CPUs < 0 || vm.MemoryMB < 0 || vm.GPUs < 0 {
		k.errorf("range", p, "use positive numbers", "vm cpus, memory_mb and gpus must not be negative")
	}
	memoryMB := vm.MemoryMB
	if mb, err := ParseMemoryMB(vm.Memory); vm.Memory != "" && err == nil {
		memoryMB = max(memoryMB, mb)
	}
	for _, f := range []struct {
		key, unit string
		v, limit  int
	}{{"cpus", "", vm.CPUs, types.MaxGuestCPUs}, {"memory", "MB", memoryMB, types.MaxGuestMemoryMB}, {"gpus", "", vm.GPUs, types.MaxGuestGPUs}} {
		if f.v > f.limit {
			k.errorf("range", p.child(f.key), fmt.Sprintf("use at most %d%s", f.limit, f.unit), "vm %s %d%s is over the bound of %d%s", f.key, f.v, f.unit, f.limit, f.unit)
		}
	}
}

func (k *checker) vms() {
	for i := range k.c.VMs {
		k.vm(path{"vm"}.index(i), &k.c.VMs[i])
	}
}

func (k *checker) restarts() {
	for i, r := range k.c.Restart {
		if _, err := restartPolicy(r.Policy); err != nil {
			k.errorf("restart-policy", path{"restart"}.index(i).child("policy"), "use always, never or on-failure", "restart policy %q is not always, never or on-failure", r.Policy)
		}
		if r.MaxRetries < 0 {
			k.errorf("range", path{"restart"}.index(i).child("retries"), "use 0 or more", "restart retries must not be negative")
		}
	}
}

func (k *checker) files() {
	for i, f := range k.c.Files {
		p := path{"files"}.index(i)
		if f.GuestPath == "" {
			k.strictf("file", p, "add guest_path = \"/path/in/machine\"", "[[files]] has no guest_path; it is ignored")
		}
		n := 0
		for _, s := range []string{f.LocalPath, f.SecretName, f.RawValue} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			k.strictf("file", p, "set exactly one of local_path, secret_name or raw_value", "[[files]] %q must have exactly one source, found %d", f.GuestPath, n)
		}
	}
}

func (k *checker) statics() {
	for i, s := range k.c.Statics {
		p := path{"statics"}.index(i)
		if s.GuestPath == "" && s.TigrisBucket == "" {
			k.strictf("static", p, "add guest_path = \"/app/public\"", "[[statics]] has no guest_path")
		}
		if s.URLPrefix == "" {
			k.strictf("static", p, "add url_prefix = \"/static\"", "[[statics]] has no url_prefix")
		}
	}
}

// conversion runs ToMachineConfig for every group so that anything left
// that would fail at deploy fails here, with a position.
func (k *checker) conversion() {
	c := k.c
	for _, name := range sortedMapKeys(c.Checks) {
		chk := c.Checks[name]
		if chk == nil || chk.Port != nil {
			continue
		}
		for _, g := range c.ProcessGroups() {
			if !c.appliesTo(g, chk.Processes) {
				continue
			}
			if c.HTTPService == nil || !c.appliesTo(g, c.HTTPService.Processes) {
				k.errorf("check-port", path{"checks", name}, "add port = 8080 (the port to check)", "check %q has no port, and process group %q has no [http_service] to take it from", name, g)
				break
			}
		}
	}
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
