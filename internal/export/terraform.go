package export

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Terraform values: literals (string, int, bool), raw expressions, ordered
// objects and lists.
type (
	tfRaw string // HCL expression source, e.g. aws_lb.main.arn
	tfKV  struct {
		k string
		v any
	}
	tfObj []tfKV
)

func tfTokens(v any) hclwrite.Tokens {
	switch x := v.(type) {
	case string:
		return hclwrite.TokensForValue(cty.StringVal(x))
	case int:
		return hclwrite.TokensForValue(cty.NumberIntVal(int64(x)))
	case bool:
		return hclwrite.TokensForValue(cty.BoolVal(x))
	case tfRaw:
		return rawTokens(string(x))
	case []string:
		elems := make([]hclwrite.Tokens, len(x))
		for i, s := range x {
			elems[i] = tfTokens(s)
		}
		return hclwrite.TokensForTuple(elems)
	case []any:
		elems := make([]hclwrite.Tokens, len(x))
		for i, e := range x {
			elems[i] = tfTokens(e)
		}
		return hclwrite.TokensForTuple(elems)
	case tfObj:
		attrs := make([]hclwrite.ObjectAttrTokens, len(x))
		for i, kv := range x {
			name := hclwrite.TokensForIdentifier(kv.k)
			if !hclsyntaxValidIdent(kv.k) {
				name = hclwrite.TokensForValue(cty.StringVal(kv.k))
			}
			attrs[i] = hclwrite.ObjectAttrTokens{Name: name, Value: tfTokens(kv.v)}
		}
		return hclwrite.TokensForObject(attrs)
	}
	panic(fmt.Sprintf("terraform: no HCL form for %T", v))
}

func hclsyntaxValidIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case (r >= '0' && r <= '9' || r == '-') && i > 0:
		default:
			return false
		}
	}
	return !strings.Contains(s, "-")
}

// rawTokens parses src as an HCL expression. src is built by this package
// from fixed text and sanitized names, so a parse error is a bug.
func rawTokens(src string) hclwrite.Tokens {
	f, diags := hclwrite.ParseConfig([]byte("v = "+src+"\n"), "expr.tf", hcl.InitialPos)
	if diags.HasErrors() {
		panic(fmt.Sprintf("terraform: bad expression %q: %s", src, diags.Error()))
	}
	return f.Body().GetAttribute("v").Expr().BuildTokens(nil)
}

type tfBody struct{ b *hclwrite.Body }

func (t tfBody) set(name string, v any) { t.b.SetAttributeRaw(name, tfTokens(v)) }
func (t tfBody) block(typ string, labels ...string) tfBody {
	return tfBody{t.b.AppendNewBlock(typ, labels).Body()}
}

// tfName makes a Terraform resource name (letters, digits, _ and -, not
// starting with a digit).
func tfName(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, r := range p {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	s := b.String()
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		s = "r_" + s
	}
	return s
}

func tfTags(pairs ...string) tfObj {
	var o tfObj
	for i := 0; i+1 < len(pairs); i += 2 {
		o = append(o, tfKV{pairs[i], pairs[i+1]})
	}
	return o
}

// Terraform renders the plan as a Terraform configuration for the
// hashicorp/aws provider.
func (p *Plan) Terraform() []byte {
	f := hclwrite.NewEmptyFile()
	root := tfBody{f.Body()}

	tf := root.block("terraform")
	rp := tf.block("required_providers")
	rp.set("aws", tfObj{{"source", "hashicorp/aws"}, {"version", ">= 5.0"}})
	root.b.AppendNewline()

	v := root.block("variable", "region")
	v.set("type", tfRaw("string"))
	v.set("default", p.Region)
	v = root.block("variable", "image")
	v.set("type", tfRaw("string"))
	v.set("default", p.Image)
	v.set("description", "Container image every task runs")
	v = root.block("variable", "vpc_id")
	v.set("type", tfRaw("string"))
	v.set("description", "VPC for the load balancer and the tasks")
	v = root.block("variable", "private_subnet_ids")
	v.set("type", tfRaw("list(string)"))
	v.set("description", "Private subnets (with a route to a NAT gateway) for the tasks")
	if p.LoadBalancer != nil {
		v = root.block("variable", "public_subnet_ids")
		v.set("type", tfRaw("list(string)"))
		v.set("description", "Public subnets for the load balancer, in two or more Availability Zones")
		if p.hasHTTPS() {
			v = root.block("variable", "certificate_arn")
			v.set("type", tfRaw("string"))
			v.set("description", "ACM certificate ARN for the HTTPS listeners")
		}
	}
	root.b.AppendNewline()
	pr := root.block("provider", "aws")
	pr.set("region", tfRaw("var.region"))
	root.block("data", "aws_caller_identity", "current")
	root.block("data", "aws_partition", "current")
	for _, name := range p.Secrets {
		d := root.block("data", "aws_secretsmanager_secret", tfName("secret", name))
		d.set("name", SecretName(p.App, name))
	}
	root.b.AppendNewline()

	lg := root.block("resource", "aws_cloudwatch_log_group", "app")
	lg.set("name", p.LogGroup)
	lg.set("retention_in_days", 30)

	cl := root.block("resource", "aws_ecs_cluster", "app")
	cl.set("name", p.Cluster)

	role := root.block("resource", "aws_iam_role", "execution")
	role.set("name", p.ExecutionRole)
	role.set("assume_role_policy", tfRaw(`jsonencode({
    Version = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ecs-tasks.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })`))
	att := root.block("resource", "aws_iam_role_policy_attachment", "execution")
	att.set("role", tfRaw("aws_iam_role.execution.name"))
	att.set("policy_arn", tfRaw(`"arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"`))
	if len(p.Secrets) > 0 {
		pol := root.block("resource", "aws_iam_role_policy", "read_secrets")
		pol.set("name", "read-app-secrets")
		pol.set("role", tfRaw("aws_iam_role.execution.id"))
		pol.set("policy", tfRaw(`jsonencode({
    Version = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = "`+p.secretArnTF("*")+`" }]
  })`))
	}

	tgRes := map[string]string{}
	if p.LoadBalancer != nil {
		sg := root.block("resource", "aws_security_group", "alb")
		sg.set("name", awsName(p.App+"-alb", 255))
		sg.set("description", "Load balancer of "+p.App)
		sg.set("vpc_id", tfRaw("var.vpc_id"))
		for _, l := range p.Listeners {
			in := sg.block("ingress")
			in.set("from_port", l.Port)
			in.set("to_port", l.Port)
			in.set("protocol", "tcp")
			in.set("cidr_blocks", []string{"0.0.0.0/0"})
		}
		tfEgressAll(sg)

		lb := root.block("resource", "aws_lb", "app")
		lb.set("name", p.LoadBalancer.Name)
		lb.set("internal", false)
		lb.set("load_balancer_type", p.LoadBalancer.Type)
		lb.set("ip_address_type", p.LoadBalancer.IPAddressType)
		lb.set("security_groups", tfRaw("[aws_security_group.alb.id]"))
		lb.set("subnets", tfRaw("var.public_subnet_ids"))
		lb.set("tags", tfTags("hangar:app", p.App))

		for _, tg := range p.TargetGroups {
			in := tg.Input
			name := tfName(tg.Group, fmt.Sprint(tg.ContainerPort))
			tgRes[in.Name] = name
			r := root.block("resource", "aws_lb_target_group", name)
			r.set("name", in.Name)
			r.set("port", in.Port)
			r.set("protocol", in.Protocol)
			r.set("protocol_version", in.ProtocolVersion)
			r.set("target_type", in.TargetType)
			r.set("vpc_id", tfRaw("var.vpc_id"))
			hc := r.block("health_check")
			hc.set("enabled", in.HealthCheckEnabled)
			hc.set("protocol", in.HealthCheckProtocol)
			hc.set("port", in.HealthCheckPort)
			hc.set("path", in.HealthCheckPath)
			hc.set("interval", in.HealthCheckIntervalSeconds)
			hc.set("timeout", in.HealthCheckTimeoutSeconds)
			hc.set("healthy_threshold", in.HealthyThresholdCount)
			hc.set("unhealthy_threshold", in.UnhealthyThresholdCount)
			hc.set("matcher", in.Matcher.HTTPCode)
			r.set("tags", tfTags("hangar:app", p.App, "hangar:process-group", tg.Group))
		}
		for _, l := range p.Listeners {
			r := root.block("resource", "aws_lb_listener", tfName(strings.ToLower(l.Protocol), fmt.Sprint(l.Port)))
			r.set("load_balancer_arn", tfRaw("aws_lb.app.arn"))
			r.set("port", l.Port)
			r.set("protocol", l.Protocol)
			if l.Protocol == "HTTPS" {
				r.set("ssl_policy", l.SslPolicy)
				r.set("certificate_arn", tfRaw("var.certificate_arn"))
			}
			for _, a := range l.DefaultActions {
				da := r.block("default_action")
				da.set("type", a.Type)
				switch a.Type {
				case "forward":
					name := strings.TrimSuffix(strings.TrimPrefix(a.TargetGroupArn, phTargetGroupPfx), ">")
					da.set("target_group_arn", tfRaw("aws_lb_target_group."+tgRes[name]+".arn"))
				case "redirect":
					rd := da.block("redirect")
					rd.set("protocol", a.RedirectConfig.Protocol)
					rd.set("port", a.RedirectConfig.Port)
					rd.set("host", a.RedirectConfig.Host)
					rd.set("path", a.RedirectConfig.Path)
					rd.set("query", a.RedirectConfig.Query)
					rd.set("status_code", a.RedirectConfig.StatusCode)
				}
			}
		}
		out := root.block("output", "load_balancer_dns_name")
		out.set("value", tfRaw("aws_lb.app.dns_name"))
		out.set("description", "point the app's domain here (CNAME or Route 53 alias)")
	}

	tsg := root.block("resource", "aws_security_group", "tasks")
	tsg.set("name", awsName(p.App+"-tasks", 255))
	tsg.set("description", "Tasks of "+p.App)
	tsg.set("vpc_id", tfRaw("var.vpc_id"))
	ports := map[int]bool{}
	for _, tg := range p.TargetGroups {
		ports[tg.ContainerPort] = true
	}
	var pl []int
	for port := range ports {
		pl = append(pl, port)
	}
	sort.Ints(pl)
	for _, port := range pl {
		in := tsg.block("ingress")
		in.set("from_port", port)
		in.set("to_port", port)
		in.set("protocol", "tcp")
		in.set("security_groups", tfRaw("[aws_security_group.alb.id]"))
	}
	tfEgressAll(tsg)

	for _, td := range p.TaskDefs {
		p.tfTaskDef(root, tfName(td.Group), td.Input)
	}
	if p.Release != nil {
		p.tfTaskDef(root, "release", p.Release.Input)
		out := root.block("output", "release_task_definition_arn")
		out.set("value", tfRaw("aws_ecs_task_definition.release.arn"))
		out.set("description", "release_command ("+strings.Join(p.Release.Input.ContainerDefinitions[0].Command, " ")+"): run this task with `aws ecs run-task --cluster "+p.Cluster+" --launch-type FARGATE` in the private subnets and wait for exit code 0 before applying a new image to the services (terraform apply -target=aws_ecs_task_definition.release first)")
	}
	var listeners []string
	for _, l := range p.Listeners {
		listeners = append(listeners, "aws_lb_listener."+tfName(strings.ToLower(l.Protocol), fmt.Sprint(l.Port)))
	}
	for i, svc := range p.Services {
		group := p.TaskDefs[i].Group
		r := root.block("resource", "aws_ecs_service", tfName(group))
		r.set("name", svc.ServiceName)
		r.set("cluster", tfRaw("aws_ecs_cluster.app.id"))
		r.set("task_definition", tfRaw("aws_ecs_task_definition."+tfName(group)+".arn"))
		r.set("desired_count", svc.DesiredCount)
		r.set("launch_type", svc.LaunchType)
		r.set("platform_version", svc.PlatformVersion)
		r.set("deployment_maximum_percent", svc.DeploymentConfiguration.MaximumPercent)
		r.set("deployment_minimum_healthy_percent", svc.DeploymentConfiguration.MinimumHealthyPercent)
		r.set("propagate_tags", svc.PropagateTags)
		cb := r.block("deployment_circuit_breaker")
		cb.set("enable", svc.DeploymentConfiguration.DeploymentCircuitBreaker.Enable)
		cb.set("rollback", svc.DeploymentConfiguration.DeploymentCircuitBreaker.Rollback)
		nc := r.block("network_configuration")
		nc.set("subnets", tfRaw("var.private_subnet_ids"))
		nc.set("security_groups", tfRaw("[aws_security_group.tasks.id]"))
		nc.set("assign_public_ip", svc.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIP == "ENABLED")
		for _, l := range svc.LoadBalancers {
			name := strings.TrimSuffix(strings.TrimPrefix(l.TargetGroupArn, phTargetGroupPfx), ">")
			lb := r.block("load_balancer")
			lb.set("target_group_arn", tfRaw("aws_lb_target_group."+tgRes[name]+".arn"))
			lb.set("container_name", l.ContainerName)
			lb.set("container_port", l.ContainerPort)
		}
		if len(svc.LoadBalancers) > 0 {
			r.set("health_check_grace_period_seconds", *svc.HealthCheckGracePeriodSeconds)
			r.set("depends_on", tfRaw("["+strings.Join(listeners, ", ")+"]"))
		}
		r.set("tags", tfTags("hangar:app", p.App, "hangar:process-group", group))
	}

	var head strings.Builder
	head.WriteString("# Terraform configuration generated by `hangar export aws --format terraform` for app " + p.App + ".\n")
	head.WriteString("# terraform init && terraform apply -var vpc_id=vpc-... -var 'private_subnet_ids=[\"subnet-...\"]'")
	if p.LoadBalancer != nil {
		head.WriteString(" -var 'public_subnet_ids=[\"subnet-...\"]'")
		if p.hasHTTPS() {
			head.WriteString(" -var certificate_arn=arn:aws:acm:...")
		}
	}
	head.WriteString("\n")
	if len(p.Secrets) > 0 {
		head.WriteString("# Create the secrets first: aws secretsmanager create-secret --name " + SecretName(p.App, "NAME") + " --secret-string ... for " + strings.Join(p.Secrets, ", ") + "\n")
	}
	for _, w := range p.Warnings {
		head.WriteString("# " + w.String() + "\n")
	}
	head.WriteString("\n")
	return append([]byte(head.String()), hclwrite.Format(f.Bytes())...)
}

func tfEgressAll(sg tfBody) {
	eg := sg.block("egress")
	eg.set("from_port", 0)
	eg.set("to_port", 0)
	eg.set("protocol", "-1")
	eg.set("cidr_blocks", []string{"0.0.0.0/0"})
}

// secretArnTF is the Secrets Manager ARN of secret name (or "*") as an HCL
// template (without quotes).
func (p *Plan) secretArnTF(name string) string {
	return "arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:" + SecretName(p.App, name)
}

func (p *Plan) tfTaskDef(root tfBody, name string, in RegisterTaskDefinitionInput) {
	r := root.block("resource", "aws_ecs_task_definition", name)
	r.set("family", in.Family)
	r.set("cpu", in.CPU)
	r.set("memory", in.Memory)
	r.set("network_mode", in.NetworkMode)
	r.set("requires_compatibilities", in.RequiresCompatibilities)
	r.set("execution_role_arn", tfRaw("aws_iam_role.execution.arn"))
	rp := r.block("runtime_platform")
	rp.set("operating_system_family", in.RuntimePlatform.OperatingSystemFamily)
	rp.set("cpu_architecture", in.RuntimePlatform.CPUArchitecture)
	var cds []any
	for _, c := range in.ContainerDefinitions {
		cd := tfObj{{"name", c.Name}, {"image", tfRaw("var.image")}, {"essential", c.Essential}}
		if len(c.EntryPoint) > 0 {
			cd = append(cd, tfKV{"entryPoint", c.EntryPoint})
		}
		if len(c.Command) > 0 {
			cd = append(cd, tfKV{"command", c.Command})
		}
		var pms []any
		for _, pm := range c.PortMappings {
			pms = append(pms, tfObj{{"containerPort", pm.ContainerPort}, {"protocol", pm.Protocol}, {"name", pm.Name}})
		}
		if len(pms) > 0 {
			cd = append(cd, tfKV{"portMappings", pms})
		}
		var env []any
		for _, kv := range c.Environment {
			env = append(env, tfObj{{"name", kv.Name}, {"value", kv.Value}})
		}
		if len(env) > 0 {
			cd = append(cd, tfKV{"environment", env})
		}
		var secrets []any
		for _, s := range c.Secrets {
			secrets = append(secrets, tfObj{{"name", s.Name}, {"valueFrom", tfRaw("data.aws_secretsmanager_secret." + tfName("secret", s.Name) + ".arn")}})
		}
		if len(secrets) > 0 {
			cd = append(cd, tfKV{"secrets", secrets})
		}
		if c.LogConfiguration != nil {
			cd = append(cd, tfKV{"logConfiguration", tfObj{
				{"logDriver", c.LogConfiguration.LogDriver},
				{"options", tfObj{
					{"awslogs-group", tfRaw("aws_cloudwatch_log_group.app.name")},
					{"awslogs-region", tfRaw("var.region")},
					{"awslogs-stream-prefix", c.LogConfiguration.Options["awslogs-stream-prefix"]},
				}},
			}})
		}
		if hc := c.HealthCheck; hc != nil {
			h := tfObj{{"command", hc.Command}, {"interval", hc.Interval}, {"timeout", hc.Timeout}, {"retries", hc.Retries}}
			if hc.StartPeriod > 0 {
				h = append(h, tfKV{"startPeriod", hc.StartPeriod})
			}
			cd = append(cd, tfKV{"healthCheck", h})
		}
		if c.StopTimeout > 0 {
			cd = append(cd, tfKV{"stopTimeout", c.StopTimeout})
		}
		cds = append(cds, cd)
	}
	r.b.SetAttributeRaw("container_definitions", hclwrite.TokensForFunctionCall("jsonencode", tfTokens(cds)))
	tags := tfTags("hangar:app", p.App)
	for _, t := range in.Tags {
		if t.Key == "hangar:process-group" {
			tags = append(tags, tfKV{t.Key, t.Value})
		}
	}
	r.set("tags", tags)
}
