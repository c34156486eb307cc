package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// flexNum is a number that ECS JSON writes either as a number or as a
// string ("256", "0.5 vCPU", "1 GB").
type flexNum float64

func (f *flexNum) UnmarshalJSON(b []byte) error {
	var n float64
	if json.Unmarshal(b, &n) == nil {
		*f = flexNum(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a number or a string, got %s", b)
	}
	s = strings.TrimSpace(strings.ToLower(s))
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "vcpu"):
		s, mult = strings.TrimSpace(strings.TrimSuffix(s, "vcpu")), 1024
	case strings.HasSuffix(s, "gb"):
		s, mult = strings.TrimSpace(strings.TrimSuffix(s, "gb")), 1024
	case strings.HasSuffix(s, "mb"):
		s = strings.TrimSpace(strings.TrimSuffix(s, "mb"))
	}
	if s == "" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*f = flexNum(n * mult)
	return nil
}

type ecsKV struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom string `json:"valueFrom"`
}

type ecsContainer struct {
	Name              string  `json:"name"`
	Image             string  `json:"image"`
	CPU               flexNum `json:"cpu"`
	Memory            flexNum `json:"memory"`
	MemoryReservation flexNum `json:"memoryReservation"`
	Essential         *bool   `json:"essential"`
	PortMappings      []struct {
		ContainerPort int    `json:"containerPort"`
		HostPort      int    `json:"hostPort"`
		Protocol      string `json:"protocol"`
		Name          string `json:"name"`
		AppProtocol   string `json:"appProtocol"`
	} `json:"portMappings"`
	Environment []ecsKV  `json:"environment"`
	Secrets     []ecsKV  `json:"secrets"`
	Command     []string `json:"command"`
	EntryPoint  []string `json:"entryPoint"`
	HealthCheck *struct {
		Command     []string `json:"command"`
		Interval    int      `json:"interval"`
		Timeout     int      `json:"timeout"`
		Retries     int      `json:"retries"`
		StartPeriod int      `json:"startPeriod"`
	} `json:"healthCheck"`
	MountPoints []struct {
		SourceVolume  string `json:"sourceVolume"`
		ContainerPath string `json:"containerPath"`
		ReadOnly      bool   `json:"readOnly"`
	} `json:"mountPoints"`
	DependsOn []struct {
		ContainerName string `json:"containerName"`
		Condition     string `json:"condition"`
	} `json:"dependsOn"`
	StopTimeout           int             `json:"stopTimeout"`
	FirelensConfiguration json.RawMessage `json:"firelensConfiguration"`
}

type ecsTaskDef struct {
	Family               string            `json:"family"`
	ContainerDefinitions []json.RawMessage `json:"containerDefinitions"`
	CPU                  flexNum           `json:"cpu"`
	Memory               flexNum           `json:"memory"`
	Volumes              []struct {
		Name                       string          `json:"name"`
		Host                       *struct{}       `json:"host"`
		EFSVolumeConfiguration     json.RawMessage `json:"efsVolumeConfiguration"`
		DockerVolumeConfiguration  json.RawMessage `json:"dockerVolumeConfiguration"`
		FSxWindowsFileServerConfig json.RawMessage `json:"fsxWindowsFileServerVolumeConfiguration"`
	} `json:"volumes"`
	RuntimePlatform *struct {
		CPUArchitecture       string `json:"cpuArchitecture"`
		OperatingSystemFamily string `json:"operatingSystemFamily"`
	} `json:"runtimePlatform"`
}

type ecsService struct {
	ServiceName   string `json:"serviceName"`
	DesiredCount  *int   `json:"desiredCount"`
	LoadBalancers []struct {
		ContainerName string `json:"containerName"`
		ContainerPort int    `json:"containerPort"`
	} `json:"loadBalancers"`
	HealthCheckGracePeriodSeconds *int `json:"healthCheckGracePeriodSeconds"`
}

func importECS(path string, isDir bool, opts Options) (*Result, error) {
	var taskFile, svcFile string
	var taskData, svcData []byte
	files := []string{path}
	if isDir {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, &InputError{File: path, Err: err, Hint: "check that the directory is readable"}
		}
		files = nil
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	for _, f := range files {
		data, err := readInput(f)
		if err != nil {
			return nil, err
		}
		switch ecsKind(data) {
		case "task":
			if taskFile == "" {
				taskFile, taskData = f, data
			}
		case "service":
			if svcFile == "" {
				svcFile, svcData = f, data
			}
		default:
			if !isDir {
				taskFile, taskData = f, data
			}
		}
	}
	if taskFile == "" {
		return nil, inputErr(path, "pass a task definition JSON (as registered, or the output of `aws ecs describe-task-definition`), optionally in a directory with the service JSON", "no ECS task definition found (a JSON object with containerDefinitions)")
	}
	return convertECS(taskFile, taskData, svcFile, svcData, opts)
}

// ecsKind tells a task definition from a service description.
func ecsKind(data []byte) string {
	t := bytes.TrimSpace(data)
	l := bytes.ToLower(data) // CloudFormation spells the keys in PascalCase
	switch {
	case bytes.Contains(l, []byte(`"containerdefinitions"`)):
		return "task"
	case len(t) > 0 && t[0] == '[' && bytes.Contains(l, []byte(`"image"`)):
		return "task"
	case bytes.Contains(l, []byte(`"servicename"`)) || bytes.Contains(l, []byte(`"desiredcount"`)):
		return "service"
	}
	return ""
}

// unwrapECS strips the wrappers of the AWS CLI's output.
func unwrapECS(data []byte, keys ...string) (json.RawMessage, map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if inner, ok := m[k]; ok {
			if k == "services" {
				var list []json.RawMessage
				if err := json.Unmarshal(inner, &list); err != nil || len(list) == 0 {
					return nil, nil, fmt.Errorf("%q is not a non-empty list", k)
				}
				inner = list[0]
			}
			var im map[string]json.RawMessage
			if err := json.Unmarshal(inner, &im); err != nil {
				return nil, nil, fmt.Errorf("%q is not an object: %w", k, err)
			}
			return inner, im, nil
		}
	}
	return data, m, nil
}

func convertECS(taskFile string, taskData []byte, svcFile string, svcData []byte, opts Options) (*Result, error) {
	if t := bytes.TrimSpace(taskData); len(t) > 0 && t[0] == '[' {
		// A bare list of container definitions (Terraform's container_definitions).
		taskData = append(append([]byte(`{"containerDefinitions":`), t...), '}')
	}
	raw, keys, err := unwrapECS(taskData, "taskDefinition")
	if err != nil {
		return nil, inputErr(taskFile, "pass the task definition JSON object", "invalid task definition: %v", jsonErr(taskData, err))
	}
	var td ecsTaskDef
	if err := json.Unmarshal(raw, &td); err != nil {
		return nil, inputErr(taskFile, "check the field types against the RegisterTaskDefinition API", "task definition does not match the ECS schema: %v", err)
	}
	if len(td.ContainerDefinitions) == 0 {
		return nil, inputErr(taskFile, "a task definition needs at least one container definition", "containerDefinitions is empty or missing")
	}
	var svc *ecsService
	var svcKeys []string
	if svcData != nil {
		sraw, _, err := unwrapECS(svcData, "service", "services")
		if err != nil {
			return nil, inputErr(svcFile, "pass the service JSON (create-service input or describe-services output)", "invalid service JSON: %v", jsonErr(svcData, err))
		}
		svc = &ecsService{}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(sraw, &m)
		svcKeys = lowerKeys(sortedKeys(m))
		if err := json.Unmarshal(sraw, svc); err != nil {
			return nil, inputErr(svcFile, "check the field types against the CreateService API", "service JSON does not match the ECS schema: %v", err)
		}
	}
	rep := &Report{Format: "ecs", Source: taskFile}
	containers := make([]ecsContainer, len(td.ContainerDefinitions))
	cKeys := make([][]string, len(td.ContainerDefinitions))
	for i, r := range td.ContainerDefinitions {
		if err := json.Unmarshal(r, &containers[i]); err != nil {
			return nil, inputErr(taskFile, "check the field types against the RegisterTaskDefinition API", "containerDefinitions[%d]: %v", i, err)
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(r, &m)
		cKeys[i] = lowerKeys(sortedKeys(m))
	}
	// Sidecars (log routers, agents, mesh proxies, essential: false
	// helpers) are never apps, wherever they sit in the list. The main
	// container is the load balancer's target, else the first essential
	// workload with ports, else the first workload.
	roles := make([]string, len(containers))
	for i, c := range containers {
		if dbKind(c.Image) == "" {
			roles[i] = ecsSidecarRole(c)
		}
	}
	main := -1
	if svc != nil && len(svc.LoadBalancers) > 0 {
		for i, c := range containers {
			if c.Name == svc.LoadBalancers[0].ContainerName {
				main = i
			}
		}
	}
	for _, ports := range []bool{true, false} {
		for i, c := range containers {
			if main < 0 && roles[i] == "" && dbKind(c.Image) == "" && (c.Essential == nil || *c.Essential) && (len(c.PortMappings) > 0 || !ports) {
				main = i
			}
		}
	}
	for i := range containers {
		if main < 0 && roles[i] == "" {
			main = i // only databases are left
		}
	}
	onlyHelpers := main < 0
	if onlyHelpers {
		// A task that runs only an agent (a Datadog daemon service, a log
		// collector): that agent is the workload.
		main = 0
		for i := len(containers) - 1; i >= 0; i-- {
			if containers[i].Essential == nil || *containers[i].Essential {
				main = i
			}
		}
	}
	roles[main] = ""
	// Databases in the task become their own apps; sidecars are reported.
	type unit struct {
		idx int
		app string
	}
	units := []unit{{idx: main}}
	for i := range containers {
		if i != main && roles[i] == "" {
			units = append(units, unit{idx: i})
		}
	}
	hosts := map[string]string{}
	used := map[string]bool{}
	for i := range units {
		c := containers[units[i].idx]
		switch {
		case td.Family == "":
			// A bare container list: each app is named after its container.
			units[i].app = nameFor(opts, "", c.Name, len(units) > 1)
		case i == 0:
			units[i].app = nameFor(opts, td.Family, "", false)
		default:
			units[i].app = appName(units[0].app + "-" + c.Name)
		}
		units[i].app = uniqueName(used, units[i].app)
		hosts[c.Name] = units[i].app + ".internal"
	}
	res := &Result{Report: rep}
	if onlyHelpers {
		rep.Notes = append(rep.Notes, fmt.Sprintf("every container of the task is a helper (log router, agent or proxy): container %s runs as the app itself; check that this is what you want to run on Hangar", containers[main].Name))
	}
	for ui, u := range units {
		c := containers[u.idx]
		b := newBuilder(rep, opts, u.app, "container "+c.Name)
		others := map[string]string{}
		for h, a := range hosts {
			if a != u.app+".internal" {
				others[h] = a
			}
		}
		// localhost in a task reaches the sidecars; now they are apps.
		var lbSvc *ecsService
		if ui == 0 {
			lbSvc = svc
		} else {
			// Only the main container gets the task-level size.
			td := td
			td.CPU, td.Memory = 0, 0
			convertECSContainer(b, fmt.Sprintf("containerDefinitions[%d](%s)", u.idx, c.Name), c, cKeys[u.idx], td, others, lbSvc)
			rep.Entries = append(rep.Entries, Entry{App: u.app, Key: fmt.Sprintf("containerDefinitions[%d](%s)", u.idx, c.Name), Status: Approximated, Target: "app " + u.app,
				Warning: fmt.Sprintf("a second container of the task became its own app; it reached the other containers at localhost, now at <app>.internal (main app: %s.internal)", units[0].app)})
		}
		if ui == 0 {
			convertECSContainer(b, fmt.Sprintf("containerDefinitions[%d](%s)", u.idx, c.Name), c, cKeys[u.idx], td, others, lbSvc)
		}
		// An ECS service keeps desiredCount tasks running: no scale to zero.
		b.alwaysOn = true
		b.alwaysOnWhy = "an ECS service keeps its desired count of tasks running (no scale to zero): min_machines_running equals the count so autostop never stops them"
		if ui == 0 {
			ecsTaskKeys(b, td, keys)
			if svc != nil {
				ecsServiceKeys(b, svc, svcKeys)
			}
		}
		if kind := dbKind(c.Image); kind != "" {
			port := 0
			if len(c.PortMappings) > 0 {
				port = c.PortMappings[0].ContainerPort
			}
			b.databaseApp(fmt.Sprintf("containerDefinitions[%d](%s).image", u.idx, c.Name), kind, port, len(b.cfg().Mounts) > 0)
		}
		res.Apps = append(res.Apps, b.flush())
	}
	for i, c := range containers {
		if roles[i] != "" {
			rep.Entries = append(rep.Entries, Entry{App: units[0].app, Key: fmt.Sprintf("containerDefinitions[%d](%s)", i, c.Name), Status: Unsupported,
				Warning: fmt.Sprintf("%s (%s) is a sidecar, not an app: %s", c.Name, c.Image, roles[i])})
		}
	}
	return res, nil
}

// lowerKeys turns PascalCase keys (CloudFormation's spelling of the same
// fields) into the API's camelCase.
func lowerKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if k != "" {
			k = strings.ToLower(k[:1]) + k[1:]
		}
		out[i] = k
	}
	return out
}

// isLogRouter says whether an image is a log router or shipper.
func isLogRouter(image string) bool {
	img := strings.ToLower(image)
	for _, w := range []string{"fluent-bit", "fluentbit", "fluentd", "firelens", "aws-for-fluent-bit", "timberio/vector", "logstash", "splunk", "logspout", "promtail", "filebeat"} {
		if strings.Contains(img, w) {
			return true
		}
	}
	return false
}

// ecsSidecarRole says what a helper container (log router, agent, mesh
// proxy, or any essential: false container) did and what replaces it on
// Hangar; "" for a workload of its own.
func ecsSidecarRole(c ecsContainer) string {
	return sidecarRole(c.Image, c.Essential, len(c.FirelensConfiguration) > 0 && string(c.FirelensConfiguration) != "null")
}

// logRouterRole is what the report says of a log router, wherever it
// comes from (an ECS FireLens container, a Copilot sidecar, a compose
// service).
const logRouterRole = "a log router. Hangar keeps every machine's stdout and stderr (`hangar logs -a APP`, the logs API); to ship them to a log service, run a log shipper as its own app that reads them, instead of a router beside every app"

// sidecarRole classifies a helper container by its image (and, for ECS,
// essential: false or a FireLens configuration) and says what replaces it
// on Hangar; "" for a workload of its own. Every importer asks it, so a
// log router is never an app in one format and a sidecar in another.
func sidecarRole(image string, essential *bool, firelens bool) string {
	img := strings.ToLower(image)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(img, w) {
				return true
			}
		}
		return false
	}
	switch {
	case firelens || isLogRouter(img):
		return logRouterRole
	case has("datadog", "dd-agent", "newrelic", "cloudwatch-agent", "prometheus", "node-exporter", "cadvisor"):
		return "a monitoring agent. Expose metrics with [metrics] in fly.toml, or run the agent as its own app and send it data over the private network (<agent-app>.internal)"
	case has("xray", "otel", "opentelemetry", "jaeger"):
		return "a tracing collector. Run the collector as its own app and point the tracing SDK at <collector-app>.internal"
	case has("envoy", "appmesh", "linkerd", "istio", "consul-connect"):
		return "a service mesh proxy. The platform's proxy and private network (<app>.internal, Flycast) take its place"
	case essential != nil && !*essential:
		return "a helper (essential: false) that the task could lose without stopping. If the app needs it, run it as its own app, or build it into the main image"
	}
	return ""
}

func convertECSContainer(b *builder, key string, c ecsContainer, keys []string, td ecsTaskDef, hosts map[string]string, svc *ecsService) {
	cfg := b.cfg()
	env := map[string]string{}
	for _, e := range c.Environment {
		env[e.Name] = e.Value
	}
	ports := c.PortMappings
	// Ports first: the health check attaches to the HTTP service.
	ordered := make([]string, 0, len(keys))
	for _, k := range keys {
		if k == "portMappings" {
			ordered = append([]string{k}, ordered...)
		} else {
			ordered = append(ordered, k)
		}
	}
	for _, k := range ordered {
		kk := key + "." + k
		switch k {
		case "name":
			b.mapped(kk, "app")
		case "image":
			cfg.Build = &FlyBuild{Image: c.Image}
			if strings.Contains(c.Image, ".dkr.ecr.") {
				b.approx(kk, "[build] image", "the image is in a private ECR registry: push it to a registry the hosts can pull from, or give them credentials for ECR")
			} else {
				b.mapped(kk, "[build] image")
			}
		case "portMappings":
			for i, p := range ports {
				pk := fmt.Sprintf("%s[%d]", kk, i)
				switch {
				case dbKind(c.Image) != "":
					b.approx(pk, "", "database port %d stays private (%s.internal:%d)", p.ContainerPort, b.app.Name, p.ContainerPort)
				case strings.EqualFold(p.Protocol, "udp"):
					cfg.Services = append(cfg.Services, &FlyService{Protocol: "udp", InternalPort: p.ContainerPort, Ports: []*FlyPort{{Port: p.ContainerPort}}})
					b.approx(pk, "[[services]] protocol = udp", "kept in fly.toml, but Hangar's proxy does not serve UDP yet (Fly needs a dedicated IPv4 for it); reach the port over the private network at %s.internal", b.app.Name)
				case cfg.HTTPService == nil && (svc == nil || len(svc.LoadBalancers) == 0 || svc.LoadBalancers[0].ContainerPort == p.ContainerPort):
					b.httpService(p.ContainerPort, nil)
					if svc != nil && len(svc.LoadBalancers) > 0 {
						b.approx(pk, "[http_service] internal_port", "the load balancer's target; the proxy serves 80/443 with HTTPS and starts stopped machines on demand")
					} else {
						b.approx(pk, "[http_service] internal_port", "assumed to be the HTTP port (no load balancer given); the proxy serves it on 80/443")
					}
				default:
					b.tcpService(p.ContainerPort, p.ContainerPort, nil)
					b.approx(pk, "[[services]] tcp", "exposed as raw TCP on port %d; add handlers if it speaks HTTP", p.ContainerPort)
				}
			}
		case "environment":
			for _, e := range c.Environment {
				v, hit := rewriteHosts(e.Value, hosts)
				b.env(kk+"."+e.Name, e.Name, v)
				if len(hit) > 0 {
					last := &b.rep.Entries[len(b.rep.Entries)-1]
					last.Status = Approximated
					last.Warning = strings.TrimPrefix(last.Warning+"; host "+strings.Join(hit, ", ")+" rewritten to its app's private address", "; ")
				}
			}
		case "secrets":
			for _, s := range c.Secrets {
				b.secret(kk+"."+s.Name, s.Name, "", "value is in "+ecsSecretStore(s.ValueFrom)+" ("+s.ValueFrom+"): fetch it there")
			}
		case "environmentFiles":
			b.none(kk, "environment files in S3 are not read: download them and import the variables with `hangar secrets import`")
		case "command":
			b.process("app", shellJoin(c.Command))
			b.mapped(kk, "[processes] app")
		case "entryPoint":
			cfg.Experimental = &FlyExperimental{Entrypoint: c.EntryPoint}
			b.approx(kk, "[experimental] entrypoint", "entrypoint override is an experimental fly.toml key")
		case "healthCheck":
			h := c.HealthCheck
			t := checkTimes{Interval: time.Duration(h.Interval) * time.Second, Timeout: time.Duration(h.Timeout) * time.Second, Grace: time.Duration(h.StartPeriod) * time.Second}
			b.execCheck(kk, h.Command, t, env, nil)
		case "mountPoints":
			for i, m := range c.MountPoints {
				mk := fmt.Sprintf("%s[%d]", kk, i)
				kind := "docker"
				for _, v := range td.Volumes {
					if v.Name == m.SourceVolume {
						switch {
						case len(v.EFSVolumeConfiguration) > 0:
							kind = "efs"
						case v.Host != nil:
							kind = "host"
						case len(v.FSxWindowsFileServerConfig) > 0:
							kind = "fsx"
						}
					}
				}
				switch kind {
				case "host":
					b.none(mk, "host path volume %s: a bind mount with no equivalent; use a volume for data", m.SourceVolume)
				case "fsx":
					b.none(mk, "FSx volumes have no equivalent")
				default:
					b.volume(mk, m.SourceVolume, m.ContainerPath, 0, nil)
					if kind == "efs" {
						last := &b.rep.Entries[len(b.rep.Entries)-1]
						if last.Status == Mapped {
							last.Status = Approximated
							last.Warning = "EFS is shared by every task; a volume belongs to one machine: each machine gets its own copy, and data is not copied"
						}
					}
				}
			}
		case "cpu", "memory", "memoryReservation":
			// sized with the task below
		case "essential":
			b.mapped(kk, "(one container per machine)")
		case "dependsOn":
			for _, d := range c.DependsOn {
				if h, ok := hosts[d.ContainerName]; ok {
					b.approx(kk+"."+d.ContainerName, "", "%s is a separate app at %s; apps start independently (condition %s not enforced)", d.ContainerName, h, d.Condition)
				} else {
					b.none(kk+"."+d.ContainerName, "depends on sidecar %s, which is not converted", d.ContainerName)
				}
			}
		case "links":
			b.approx(kk, "<app>.internal", "links are not needed: apps reach each other at <app>.internal")
		case "stopTimeout":
			cfg.KillTimeout = fmt.Sprintf("%ds", c.StopTimeout)
			b.mapped(kk, "kill_timeout")
		case "logConfiguration", "firelensConfiguration":
			b.none(kk, "logs go to `hangar logs`; ship them to CloudWatch or elsewhere with a log shipper app")
		case "repositoryCredentials":
			b.none(kk, "registry credentials: log in to the registry on the platform instead")
		case "dockerLabels":
			b.none(kk, "labels have no equivalent")
		case "workingDirectory", "user":
			b.none(kk, "set it in the Dockerfile (WORKDIR / USER)")
		case "ulimits", "linuxParameters", "privileged", "readonlyRootFilesystem", "dockerSecurityOptions", "systemControls", "disableNetworking", "interactive", "pseudoTerminal", "extraHosts", "dnsServers", "dnsSearchDomains", "hostname", "volumesFrom", "resourceRequirements", "startTimeout", "restartPolicy", "credentialSpecs", "versionConsistency":
			if k == "restartPolicy" {
				b.approx(kk, "[[restart]]", "machines restart on failure by default")
				continue
			}
			b.none(kk, "container option with no equivalent; ignored")
		default:
			b.none(kk, "unknown key; ignored")
		}
	}
	// Size: the container's own, else the task's.
	cpu, mem := float64(c.CPU), int(c.Memory)
	if mem == 0 {
		mem = int(c.MemoryReservation)
	}
	if cpu == 0 {
		cpu = float64(td.CPU)
	}
	if mem == 0 {
		mem = int(td.Memory)
	}
	if cpu > 0 || mem > 0 {
		b.size(key+".cpu/memory", cpu/1024, mem, nil)
	}
}

func ecsSecretStore(arn string) string {
	switch {
	case strings.Contains(arn, ":secretsmanager:"):
		return "AWS Secrets Manager"
	case strings.Contains(arn, ":ssm:") || strings.HasPrefix(arn, "/"):
		return "SSM Parameter Store"
	}
	return "AWS"
}

func ecsTaskKeys(b *builder, td ecsTaskDef, keys map[string]json.RawMessage) {
	for _, k := range lowerKeys(sortedKeys(keys)) {
		switch k {
		case "containerDefinitions", "cpu", "memory", "volumes":
		case "family":
			b.mapped(k, "app")
		case "runtimePlatform":
			if td.RuntimePlatform != nil && strings.EqualFold(td.RuntimePlatform.CPUArchitecture, "ARM64") {
				b.approx(k, "", "the task ran on ARM64: build the image for the hosts' architecture")
			} else {
				b.mapped(k, "(linux/amd64)")
			}
		case "networkMode", "requiresCompatibilities", "compatibilities", "placementConstraints", "ipcMode", "pidMode":
			b.none(k, "ECS placement/networking option; machines always have their own private IPv6 address")
		case "executionRoleArn", "taskRoleArn":
			b.none(k, "IAM roles have no equivalent: give the app AWS credentials as secrets (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) if it calls AWS")
		case "ephemeralStorage":
			b.none(k, "the root filesystem size is fixed per machine size; use a volume for more space")
		case "proxyConfiguration":
			b.none(k, "App Mesh proxy configuration has no equivalent")
		case "tags":
			b.none(k, "tags have no equivalent")
		case "taskDefinitionArn", "revision", "status", "requiresAttributes", "registeredAt", "registeredBy", "deregisteredAt", "inferenceAccelerators":
			// read-only fields of describe-task-definition output
		default:
			b.none(k, "unknown key; ignored")
		}
	}
	for _, v := range td.Volumes {
		if len(v.DockerVolumeConfiguration) > 0 {
			b.approx("volumes."+v.Name, "[[mounts]]", "Docker volume driver options are not kept")
		}
	}
}

func ecsServiceKeys(b *builder, svc *ecsService, keys []string) {
	for _, k := range keys {
		switch k {
		case "desiredCount", "loadBalancers", "healthCheckGracePeriodSeconds", "serviceName", "taskDefinition", "cluster":
		case "launchType", "capacityProviderStrategy", "platformVersion", "placementConstraints", "placementStrategy", "schedulingStrategy":
			b.none("service."+k, "ECS placement option; machines are placed by region (--region)")
		case "networkConfiguration":
			b.none("service."+k, "subnets and security groups have no equivalent: apps are private unless they have a service, and reach each other on the private network")
		case "deploymentConfiguration", "deploymentController":
			b.approx("service."+k, "[deploy] strategy", "rolling deploys are the default; percentages and circuit breakers are not kept")
		case "serviceRegistries", "serviceConnectConfiguration":
			b.approx("service."+k, "<app>.internal", "service discovery is built in: <app>.internal names every machine of the app (see docs/dns.md); for a load-balanced private address through the proxy, allocate a Flycast address with `hangar ips allocate-v6 --private` and call <app>.flycast (see docs/flycast.md)")
		case "enableExecuteCommand":
			b.mapped("service."+k, "hangar ssh console")
		default:
			b.none("service."+k, "ECS service option with no equivalent; ignored")
		}
	}
	if svc.DesiredCount != nil {
		b.count("service.desiredCount", "", *svc.DesiredCount)
	}
	if len(svc.LoadBalancers) > 0 {
		lb := svc.LoadBalancers[0]
		if b.cfg().HTTPService != nil && b.cfg().HTTPService.InternalPort == lb.ContainerPort {
			b.approx("service.loadBalancers", "[http_service]", "the ALB's listeners, TLS certificates and target group health check (path, matcher) are not in the service JSON: check [[http_service.checks]] against the target group and add domains with `hangar certs add`")
		} else {
			b.none("service.loadBalancers", "load balancer targets %s:%d, which is not a port of the main container", lb.ContainerName, lb.ContainerPort)
		}
		if b.cfg().HTTPService != nil && len(b.cfg().HTTPService.Checks) == 0 {
			b.cfg().HTTPService.Checks = append(b.cfg().HTTPService.Checks, &FlyHTTPCheck{GracePeriod: "10s", Interval: "30s", Timeout: "5s", Method: "GET", Path: "/"})
			b.approx("service.loadBalancers (health check)", "[[http_service.checks]]", "an ALB checks GET / every 30s by default; the target group's own settings are not in the service JSON")
		}
	}
	if g := svc.HealthCheckGracePeriodSeconds; g != nil && b.cfg().HTTPService != nil {
		for _, c := range b.cfg().HTTPService.Checks {
			c.GracePeriod = fmt.Sprintf("%ds", *g)
		}
		b.mapped("service.healthCheckGracePeriodSeconds", "grace_period")
	}
}
