package export

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/shlex"

	"github.com/hangar-dev/hangar/internal/types"
)

// Placeholders stand for values that exist only in the target AWS account
// (or only after an earlier call returns). The ecs-json output keeps them
// verbatim and lists them; CloudFormation and Terraform turn them into
// parameters, variables and references.
const (
	PhAccountID       = "<ACCOUNT_ID>"
	PhVpcID           = "<VPC_ID>"
	PhPublicSubnet1   = "<PUBLIC_SUBNET_ID_1>"
	PhPublicSubnet2   = "<PUBLIC_SUBNET_ID_2>"
	PhPrivateSubnet1  = "<PRIVATE_SUBNET_ID_1>"
	PhPrivateSubnet2  = "<PRIVATE_SUBNET_ID_2>"
	PhALBSecurityGrp  = "<ALB_SECURITY_GROUP_ID>"
	PhTaskSecurityGrp = "<TASK_SECURITY_GROUP_ID>"
	PhCertificateArn  = "<ACM_CERTIFICATE_ARN>"
	PhLoadBalancerArn = "<LOAD_BALANCER_ARN>"
	phTargetGroupPfx  = "<TARGET_GROUP_ARN:"
)

// TargetGroupPlaceholder is the placeholder for the ARN that
// CreateTargetGroup returns for the target group named name.
func TargetGroupPlaceholder(name string) string { return phTargetGroupPfx + name + ">" }

// Plan is the set of AWS resources for one app, as API inputs.
type Plan struct {
	App           string
	Region        string
	Cluster       string
	LogGroup      string
	ExecutionRole string // role name
	Image         string
	Secrets       []string

	LoadBalancer *CreateLoadBalancerInput
	TargetGroups []TargetGroup
	Listeners    []CreateListenerInput
	TaskDefs     []TaskDef
	Services     []CreateServiceInput
	// Release is the one-off task definition for deploy.release_command
	// and the RunTask call that runs it before the services are updated.
	Release    *TaskDef
	ReleaseRun *RunTaskInput

	Warnings []Warning
}

// TargetGroup is a target group and the group/port it serves.
type TargetGroup struct {
	Group         string
	ContainerPort int
	Input         CreateTargetGroupInput
}

// TaskDef is a task definition and its process group.
type TaskDef struct {
	Group string
	Input RegisterTaskDefinitionInput
}

// SecretPlaceholder stands for the full ARN of the app's secret name,
// which Secrets Manager returns when the secret is created (ECS wants the
// full ARN, random suffix included).
func SecretPlaceholder(name string) string { return "<SECRET_ARN:" + name + ">" }

// SecretName is the Secrets Manager name used for an app's secret.
func SecretName(app, name string) string { return app + "/" + name }

// Build maps the app onto ECS Fargate + ALB.
func Build(app *App, opts Options) (*Plan, error) {
	if err := app.Validate(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(opts.Image) == "" {
		return nil, fmt.Errorf("export: no image: pass the image the tasks run (e.g. --image registry.example.com/app:v1)")
	}
	region := opts.Region
	if region == "" {
		region = "us-east-1"
	}
	p := &Plan{
		App:           app.Name,
		Region:        region,
		Cluster:       app.Name,
		LogGroup:      "/ecs/" + app.Name,
		ExecutionRole: awsName(app.Name+"-ecs-execution", 64),
		Image:         opts.Image,
		Secrets:       append([]string(nil), app.Secrets...),
	}
	sort.Strings(p.Secrets)
	p.note("regions", "", "the export targets one AWS region ("+region+"); Fly places machines in many regions behind one anycast address, which needs one stack per region plus Global Accelerator or Route 53 latency routing on AWS")
	p.note("fly-replay", "", "an ALB does not act on fly-replay response headers; requests an app replays to another region or machine are answered with the header instead")

	listenerByPort := map[int]int{} // public port -> index in p.Listeners
	listenerOwner := map[int]string{}
	for _, g := range app.Groups {
		if err := p.addGroup(app, g, listenerByPort, listenerOwner); err != nil {
			return nil, fmt.Errorf("export: process group %s: %w", g.Name, err)
		}
	}
	if len(p.TargetGroups) > 0 {
		p.LoadBalancer = &CreateLoadBalancerInput{
			Name:           awsName(app.Name, 32),
			Subnets:        []string{PhPublicSubnet1, PhPublicSubnet2},
			SecurityGroups: []string{PhALBSecurityGrp},
			Scheme:         "internet-facing",
			Type:           "application",
			IPAddressType:  "ipv4",
			Tags:           []ELBTag{{Key: "hangar:app", Value: app.Name}},
		}
	}
	if app.ReleaseCommand != "" {
		if err := p.addRelease(app); err != nil {
			return nil, fmt.Errorf("export: release_command: %w", err)
		}
	}
	return p, nil
}

func (p *Plan) warn(key, group, format string, args ...any) {
	p.Warnings = append(p.Warnings, Warning{Severity: SevWarning, Key: key, Group: group, Message: fmt.Sprintf(format, args...)})
}

func (p *Plan) note(key, group, msg string) {
	p.Warnings = append(p.Warnings, Warning{Severity: SevNote, Key: key, Group: group, Message: msg})
}

func (p *Plan) family(group string) string { return awsName(p.App+"-"+group, 255) }

// ExecutionRoleArnPlaceholder is the execution role ARN in ecs-json output.
func (p *Plan) ExecutionRoleArnPlaceholder() string {
	return "arn:aws:iam::" + PhAccountID + ":role/" + p.ExecutionRole
}

func (p *Plan) container(app *App, g Group, mc *types.MachineConfig) (ContainerDefinition, error) {
	c := ContainerDefinition{
		Name:      g.Name,
		Image:     p.Image,
		Essential: true,
		LogConfiguration: &LogConfiguration{
			LogDriver: "awslogs",
			Options: map[string]string{
				"awslogs-group":         p.LogGroup,
				"awslogs-region":        p.Region,
				"awslogs-stream-prefix": g.Name,
			},
		},
	}
	switch {
	case len(mc.Init.Exec) > 0:
		c.EntryPoint = append([]string(nil), mc.Init.Exec...)
	default:
		c.EntryPoint = append([]string(nil), mc.Init.Entrypoint...)
		c.Command = append([]string(nil), mc.Init.Cmd...)
	}
	for _, k := range sortedKeys(mc.Env) {
		c.Environment = append(c.Environment, KeyValue{Name: k, Value: mc.Env[k]})
	}
	for _, s := range p.Secrets {
		c.Secrets = append(c.Secrets, SecretRef{Name: s, ValueFrom: SecretPlaceholder(s)})
	}
	if mc.StopConfig != nil && mc.StopConfig.Timeout != nil {
		secs := int(mc.StopConfig.Timeout.Duration / time.Second)
		if secs > 120 {
			p.warn("kill_timeout", g.Name, "Fargate stops a container at most 120s after SIGTERM; %ds was cut to 120s", secs)
			secs = 120
		}
		if secs >= 2 {
			c.StopTimeout = secs
		}
	}
	if mc.StopConfig != nil && mc.StopConfig.Signal != nil && *mc.StopConfig.Signal != "" && *mc.StopConfig.Signal != "SIGTERM" {
		p.warn("kill_signal", g.Name, "ECS always sends SIGTERM first; the image's STOPSIGNAL is honored, so set STOPSIGNAL %s in the Dockerfile", *mc.StopConfig.Signal)
	}
	ports := map[int]bool{}
	for _, s := range mc.Services {
		if s.InternalPort > 0 {
			ports[s.InternalPort] = true
		}
	}
	var pl []int
	for port := range ports {
		pl = append(pl, port)
	}
	sort.Ints(pl)
	for _, port := range pl {
		c.PortMappings = append(c.PortMappings, PortMapping{ContainerPort: port, Protocol: "tcp", Name: fmt.Sprintf("%s-%d", g.Name, port)})
	}
	c.HealthCheck = p.containerHealthCheck(g.Name, mc)
	return c, nil
}

// containerHealthCheck maps the first top-level [checks] entry onto an
// ECS container health check, run inside the container.
func (p *Plan) containerHealthCheck(group string, mc *types.MachineConfig) *HealthCheck {
	if len(mc.Checks) == 0 {
		return nil
	}
	names := sortedKeys(mc.Checks)
	name := names[0]
	if len(names) > 1 {
		p.warn("checks", group, "a container has one ECS health check; %q is used and %s dropped", name, strings.Join(names[1:], ", "))
	}
	ck := mc.Checks[name]
	port := 0
	if ck.Port != nil {
		port = *ck.Port
	}
	var cmd string
	switch ck.Type {
	case "http":
		path := ck.Path
		if path == "" {
			path = "/"
		}
		scheme := "http"
		if ck.Protocol == "https" {
			scheme = "https"
		}
		cmd = fmt.Sprintf("curl -fsS -o /dev/null %s://localhost:%d%s || exit 1", scheme, port, path)
		p.warn("checks."+name, group, "the ECS container health check runs `curl` inside the container; the image must have curl")
	default:
		cmd = fmt.Sprintf("nc -z localhost %d || exit 1", port)
		p.warn("checks."+name, group, "the ECS container health check runs `nc -z` inside the container; the image must have netcat")
	}
	hc := &HealthCheck{Command: []string{"CMD-SHELL", cmd}, Retries: 3}
	hc.Interval = clampSecs(ck.Interval, 30, 5, 300)
	hc.Timeout = clampSecs(ck.Timeout, 5, 2, 60)
	if ck.GracePeriod != nil {
		hc.StartPeriod = clampSecs(ck.GracePeriod, 0, 0, 300)
	}
	return hc
}

func clampSecs(d *types.Duration, def, lo, hi int) int {
	v := def
	if d != nil {
		v = int((d.Duration + time.Second - 1) / time.Second)
	}
	if v < lo {
		v = lo
	}
	if v > hi {
		v = hi
	}
	return v
}

func (p *Plan) addGroup(app *App, g Group, listenerByPort map[int]int, listenerOwner map[int]string) error {
	mc := g.Config
	guest := guestOf(mc)
	size, err := FargateFor(guest)
	if err != nil {
		return err
	}
	if guest.CPUKind != "performance" {
		p.note("vm", g.Name, fmt.Sprintf("%d shared CPU(s) and %d MB mapped to Fargate %g vCPU / %d MB (a Fly shared CPU is counted as %g vCPU)", guest.CPUs, guest.MemoryMB, size.VCPU(), size.MemoryMB, SharedCPUFraction))
	} else if size.MemoryMB != guest.MemoryMB || size.VCPU() != float64(guest.CPUs) {
		p.note("vm", g.Name, fmt.Sprintf("%d performance CPU(s) and %d MB mapped to the nearest Fargate size, %g vCPU / %d MB", guest.CPUs, guest.MemoryMB, size.VCPU(), size.MemoryMB))
	}
	c, err := p.container(app, g, mc)
	if err != nil {
		return err
	}
	td := RegisterTaskDefinitionInput{
		Family:                  p.family(g.Name),
		ExecutionRoleArn:        p.ExecutionRoleArnPlaceholder(),
		NetworkMode:             "awsvpc",
		RequiresCompatibilities: []string{"FARGATE"},
		CPU:                     strconv.Itoa(size.CPU),
		Memory:                  strconv.Itoa(size.MemoryMB),
		RuntimePlatform:         &RuntimePlatform{CPUArchitecture: "X86_64", OperatingSystemFamily: "LINUX"},
		ContainerDefinitions:    []ContainerDefinition{c},
		Tags:                    []Tag{{Key: "hangar:app", Value: app.Name}, {Key: "hangar:process-group", Value: g.Name}},
	}
	p.TaskDefs = append(p.TaskDefs, TaskDef{Group: g.Name, Input: td})

	svc := CreateServiceInput{
		Cluster:         p.Cluster,
		ServiceName:     awsName(g.Name, 255),
		TaskDefinition:  td.Family,
		DesiredCount:    DesiredCount(g),
		LaunchType:      "FARGATE",
		PlatformVersion: "LATEST",
		DeploymentConfiguration: &DeploymentConfiguration{
			DeploymentCircuitBreaker: &CircuitBreaker{Enable: true, Rollback: true},
			MaximumPercent:           200,
			MinimumHealthyPercent:    100,
		},
		NetworkConfiguration: NetworkConfiguration{AwsvpcConfiguration: AwsVpcConfiguration{
			Subnets:        []string{PhPrivateSubnet1, PhPrivateSubnet2},
			SecurityGroups: []string{PhTaskSecurityGrp},
			AssignPublicIP: "DISABLED",
		}},
		PropagateTags: "SERVICE",
		Tags:          []Tag{{Key: "hangar:app", Value: app.Name}, {Key: "hangar:process-group", Value: g.Name}},
	}

	grace := 0
	for si, s := range mc.Services {
		key := fmt.Sprintf("services[%d]", si)
		if s.Autostop.Enabled() {
			p.warn(key+".auto_stop_machines", g.Name, "ECS services do not stop idle tasks and start them on the next request (scale to zero); the service keeps %d task(s) running; add Application Auto Scaling (e.g. on ALBRequestCountPerTarget) to follow load above that floor", svc.DesiredCount)
		}
		if s.Concurrency != nil && (s.Concurrency.HardLimit > 0 || s.Concurrency.SoftLimit > 0) {
			p.note(key+".concurrency", g.Name, "an ALB has no per-target connection limit; soft_limit/hard_limit become a target-tracking auto scaling policy you add (ALBRequestCountPerTarget)")
		}
		if s.InternalPort <= 0 || s.InternalPort > 65535 {
			p.warn(key, g.Name, "internal_port %d is not a port; service not exported", s.InternalPort)
			continue
		}
		if s.Protocol == "udp" {
			p.warn(key, g.Name, "UDP port %d needs a Network Load Balancer; not exported", s.InternalPort)
			continue
		}
		tgIndex := -1
		for pi, port := range s.Ports {
			pkey := fmt.Sprintf("%s.ports[%d]", key, pi)
			if port.Port == nil {
				p.warn(pkey, g.Name, "port ranges (start_port/end_port) need a Network Load Balancer; not exported")
				continue
			}
			pub := *port.Port
			proto, ok := listenerProtocol(port.Handlers)
			if !ok {
				p.warn(pkey, g.Name, "port %d with handlers %v is raw TCP/TLS; an ALB only serves HTTP and HTTPS (use a Network Load Balancer); not exported", pub, port.Handlers)
				continue
			}
			if owner, dup := listenerOwner[pub]; dup {
				p.warn(pkey, g.Name, "public port %d is already served by process group %s; an ALB listener forwards a port to one target group, so this group gets no listener on it (add a path or host rule by hand)", pub, owner)
				continue
			}
			if proto == "HTTP" && port.ForceHTTPS {
				listenerOwner[pub] = g.Name
				listenerByPort[pub] = len(p.Listeners)
				p.Listeners = append(p.Listeners, CreateListenerInput{
					LoadBalancerArn: PhLoadBalancerArn,
					Protocol:        "HTTP",
					Port:            pub,
					DefaultActions: []Action{{Type: "redirect", RedirectConfig: &RedirectConfig{
						Protocol: "HTTPS", Port: "443", Host: "#{host}", Path: "/#{path}", Query: "#{query}", StatusCode: "HTTP_301",
					}}},
				})
				continue
			}
			if tgIndex < 0 {
				tg, tgGrace := p.targetGroup(g, si, s, mc)
				if tgGrace > grace {
					grace = tgGrace
				}
				tgIndex = len(p.TargetGroups)
				p.TargetGroups = append(p.TargetGroups, tg)
				svc.LoadBalancers = append(svc.LoadBalancers, ServiceLoadBalancer{
					TargetGroupArn: TargetGroupPlaceholder(tg.Input.Name),
					ContainerName:  g.Name,
					ContainerPort:  s.InternalPort,
				})
			}
			l := CreateListenerInput{
				LoadBalancerArn: PhLoadBalancerArn,
				Protocol:        proto,
				Port:            pub,
				DefaultActions:  []Action{{Type: "forward", TargetGroupArn: TargetGroupPlaceholder(p.TargetGroups[tgIndex].Input.Name)}},
			}
			if proto == "HTTPS" {
				l.SslPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
				l.Certificates = []Certificate{{CertificateArn: PhCertificateArn}}
			}
			listenerOwner[pub] = g.Name
			listenerByPort[pub] = len(p.Listeners)
			p.Listeners = append(p.Listeners, l)
		}
	}
	if len(svc.LoadBalancers) > 0 {
		svc.HealthCheckGracePeriodSeconds = &grace
	}
	p.Services = append(p.Services, svc)

	if len(mc.Mounts) > 0 {
		for i, m := range mc.Mounts {
			p.warn(fmt.Sprintf("mounts[%d]", i), g.Name, "volume %s at %s: a Fly volume is a local disk for one machine. On Fargate use EFS (shared by all tasks, network latency, no per-task data) or an ECS-managed EBS volume (new for each task, deleted with it unless snapshotted); the task definition has no volume, add one", m.Name, m.Path)
		}
	}
	for i, st := range mc.Statics {
		p.warn(fmt.Sprintf("statics[%d]", i), g.Name, "%s → %s is served by Fly's proxy from the image; on AWS upload the directory to S3 and serve it with CloudFront (a behavior for %s*), not exported", st.URLPrefix, st.GuestPath, st.URLPrefix)
	}
	for i, f := range mc.Files {
		if f.SecretName != nil {
			p.warn(fmt.Sprintf("files[%d]", i), g.Name, "secret %s is written to %s on Fly; ECS only injects secrets as environment variables, so the entrypoint must write it to the file", *f.SecretName, f.GuestPath)
		} else {
			p.warn(fmt.Sprintf("files[%d]", i), g.Name, "file %s: bake it into the image; ECS task definitions cannot write files", f.GuestPath)
		}
	}
	if mc.Schedule != "" {
		p.warn("schedule", g.Name, "machines on a %s schedule become an EventBridge Scheduler rule that runs the task; not exported (the service runs continuously)", mc.Schedule)
	}
	if mc.Restart != nil && mc.Restart.Policy == types.RestartNo {
		p.warn("restart", g.Name, "an ECS service always replaces stopped tasks; restart policy \"no\" has no equivalent (use a scheduled or one-off task instead)")
	}
	if mc.Metrics != nil {
		p.note("metrics", g.Name, fmt.Sprintf("Prometheus metrics on :%d%s need a collector on AWS (CloudWatch agent or Amazon Managed Prometheus); not exported", mc.Metrics.Port, mc.Metrics.Path))
	}
	return nil
}

// listenerProtocol maps Fly port handlers to an ALB listener protocol.
func listenerProtocol(handlers []string) (string, bool) {
	has := map[string]bool{}
	for _, h := range handlers {
		has[h] = true
	}
	switch {
	case has["http"] && has["tls"]:
		return "HTTPS", true
	case has["http"]:
		return "HTTP", true
	}
	return "", false
}

// targetGroup builds the target group for service si of g, with the health
// check of its first http check (else a top-level check on the same port,
// else its tcp check approximated). It returns the grace period (seconds)
// the service should give new tasks.
func (p *Plan) targetGroup(g Group, si int, s types.MachineService, mc *types.MachineConfig) (TargetGroup, int) {
	key := fmt.Sprintf("services[%d].checks", si)
	tg := CreateTargetGroupInput{
		Name:                       awsName(fmt.Sprintf("%s-%s-%d", p.App, g.Name, s.InternalPort), 32),
		Protocol:                   "HTTP",
		ProtocolVersion:            "HTTP1",
		Port:                       s.InternalPort,
		VpcID:                      PhVpcID,
		HealthCheckProtocol:        "HTTP",
		HealthCheckPort:            "traffic-port",
		HealthCheckEnabled:         true,
		HealthCheckPath:            "/",
		HealthCheckIntervalSeconds: 15,
		HealthCheckTimeoutSeconds:  5,
		HealthyThresholdCount:      2,
		UnhealthyThresholdCount:    3,
		Matcher:                    Matcher{HTTPCode: "200-399"},
		TargetType:                 "ip",
		Tags:                       []ELBTag{{Key: "hangar:app", Value: p.App}, {Key: "hangar:process-group", Value: g.Name}},
	}
	var chosen *types.MachineCheck
	var tcp *types.MachineCheck
	for i := range s.Checks {
		c := &s.Checks[i]
		if c.Type == "http" && chosen == nil {
			chosen = c
		} else if c.Type != "http" && tcp == nil {
			tcp = c
		}
	}
	if chosen == nil {
		for _, name := range sortedKeys(mc.Checks) {
			c := mc.Checks[name]
			if c.Type == "http" && c.Port != nil && *c.Port == s.InternalPort {
				cc := c
				chosen = &cc
				break
			}
		}
	}
	if len(s.Checks) > 1 {
		p.note(key, g.Name, "a target group has one health check; the first http check is used")
	}
	grace := 0
	switch {
	case chosen != nil:
		if chosen.Path != "" {
			tg.HealthCheckPath = chosen.Path
		}
		if chosen.Protocol == "https" {
			tg.HealthCheckProtocol = "HTTPS"
		}
		if chosen.Port != nil && *chosen.Port != s.InternalPort {
			tg.HealthCheckPort = strconv.Itoa(*chosen.Port)
		}
		tg.Matcher.HTTPCode = "200-299"
		if chosen.Method != "" && !strings.EqualFold(chosen.Method, "GET") {
			p.warn(key, g.Name, "ALB health checks always use GET (or HEAD); method %s dropped", chosen.Method)
		}
		if len(chosen.Headers) > 0 {
			p.warn(key, g.Name, "ALB health checks cannot send custom headers; %d header(s) dropped", len(chosen.Headers))
		}
		applyTiming(&tg, chosen)
		if chosen.GracePeriod != nil {
			grace = clampSecs(chosen.GracePeriod, 0, 0, 2147483647)
		}
	case tcp != nil:
		p.warn(key, g.Name, "ALB target groups cannot run a TCP check; the tcp check on port %d became GET / accepting any status 200-499 (an open port that speaks HTTP)", s.InternalPort)
		tg.Matcher.HTTPCode = "200-499"
		applyTiming(&tg, tcp)
		if tcp.GracePeriod != nil {
			grace = clampSecs(tcp.GracePeriod, 0, 0, 2147483647)
		}
	default:
		p.note(key, g.Name, fmt.Sprintf("service on port %d has no checks; the target group checks GET / accepting 200-399", s.InternalPort))
	}
	return TargetGroup{Group: g.Name, ContainerPort: s.InternalPort, Input: tg}, grace
}

func applyTiming(tg *CreateTargetGroupInput, c *types.MachineCheck) {
	tg.HealthCheckIntervalSeconds = clampSecs(c.Interval, 15, 5, 300)
	tg.HealthCheckTimeoutSeconds = clampSecs(c.Timeout, 5, 2, 120)
	if tg.HealthCheckTimeoutSeconds >= tg.HealthCheckIntervalSeconds {
		tg.HealthCheckTimeoutSeconds = tg.HealthCheckIntervalSeconds - 1
	}
}

func (p *Plan) addRelease(app *App) error {
	argv, err := shlex.Split(app.ReleaseCommand)
	if err != nil {
		return fmt.Errorf("%q: %w", app.ReleaseCommand, err)
	}
	if len(argv) == 0 {
		return fmt.Errorf("release_command is blank")
	}
	// The release runs in a machine like the first group's (flyctl uses the
	// app group's config), with the command replaced.
	base := p.TaskDefs[0]
	for _, td := range p.TaskDefs {
		if td.Group == types.DefaultProcessGroup {
			base = td
		}
	}
	td := base.Input
	td.Family = p.family("release")
	c := td.ContainerDefinitions[0]
	c.Name = "release"
	c.EntryPoint = nil
	c.Command = argv
	c.PortMappings = nil
	c.HealthCheck = nil
	// Fly tells the release machine what it is, as flyctl does.
	env := []KeyValue{{Name: "RELEASE_COMMAND", Value: "1"}}
	for _, kv := range c.Environment {
		if kv.Name != "RELEASE_COMMAND" {
			env = append(env, kv)
		}
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	c.Environment = env
	c.LogConfiguration = &LogConfiguration{LogDriver: "awslogs", Options: map[string]string{
		"awslogs-group": p.LogGroup, "awslogs-region": p.Region, "awslogs-stream-prefix": "release",
	}}
	td.ContainerDefinitions = []ContainerDefinition{c}
	td.Tags = []Tag{{Key: "hangar:app", Value: app.Name}, {Key: "hangar:process-group", Value: "release"}}
	p.Release = &TaskDef{Group: "release", Input: td}
	p.ReleaseRun = &RunTaskInput{
		Cluster:        p.Cluster,
		TaskDefinition: td.Family,
		Count:          1,
		LaunchType:     "FARGATE",
		StartedBy:      "hangar-release",
		NetworkConfiguration: NetworkConfiguration{AwsvpcConfiguration: AwsVpcConfiguration{
			Subnets:        []string{PhPrivateSubnet1, PhPrivateSubnet2},
			SecurityGroups: []string{PhTaskSecurityGrp},
			AssignPublicIP: "DISABLED",
		}},
	}
	if base.Input.ContainerDefinitions[0].EntryPoint != nil {
		p.note("deploy.release_command", "", "the image's entrypoint override is dropped for the release task, as on Fly; the command runs through the image's own ENTRYPOINT")
	}
	return nil
}

// awsName makes s a valid ELB/ECS name of at most max characters: letters,
// digits and hyphens, not starting or ending with a hyphen. A name that had
// to be shortened keeps a hash of the original so two long names stay apart.
func awsName(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	for strings.Contains(out, "--") {
		out = strings.ReplaceAll(out, "--", "-")
	}
	if out == "" {
		out = "app"
	}
	if len(out) > max {
		sum := sha256.Sum256([]byte(s))
		h := hex.EncodeToString(sum[:])[:6]
		out = strings.TrimRight(out[:max-7], "-") + "-" + h
	}
	return out
}
