package export

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Step is one AWS API call of the ecs-json output, in the order to run them.
type Step struct {
	N         int    `json:"step"`
	Service   string `json:"service"`   // botocore service name: ecs, elbv2, logs, iam, secretsmanager
	Operation string `json:"operation"` // API operation name
	File      string `json:"file"`
	// Command is the AWS CLI command that makes the call from File.
	Command string `json:"command"`
	// Then says what to do with the result before the next step, if anything.
	Then  string `json:"then,omitempty"`
	Input any    `json:"input"`
}

// ECSJSON is the ecs-json document: every API input in order, the
// placeholders to fill in and the warnings.
type ECSJSON struct {
	Format       string            `json:"format"`
	App          string            `json:"app"`
	Region       string            `json:"region"`
	Placeholders map[string]string `json:"placeholders"`
	Steps        []Step            `json:"steps"`
	Warnings     []Warning         `json:"warnings"`
}

// cliName maps a service to the AWS CLI's command name.
var cliName = map[string]string{"ecs": "ecs", "elbv2": "elbv2", "logs": "logs", "iam": "iam", "secretsmanager": "secretsmanager"}

func kebab(op string) string {
	var b strings.Builder
	for i, r := range op {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ECSJSON lays the plan out as API calls.
func (p *Plan) ECSJSON() *ECSJSON {
	doc := &ECSJSON{
		Format: "ecs-json",
		App:    p.App,
		Region: p.Region,
		Placeholders: map[string]string{
			PhAccountID:       "the 12-digit AWS account ID",
			PhVpcID:           "the VPC the load balancer and tasks run in",
			PhPublicSubnet1:   "a public subnet (route to an internet gateway) for the load balancer, in one Availability Zone",
			PhPublicSubnet2:   "a second public subnet, in another Availability Zone",
			PhPrivateSubnet1:  "a private subnet (route to a NAT gateway) for the tasks",
			PhPrivateSubnet2:  "a second private subnet, in another Availability Zone",
			PhALBSecurityGrp:  "a security group allowing inbound traffic to the listener ports from the internet",
			PhTaskSecurityGrp: "a security group allowing the container ports from the load balancer's security group",
			PhCertificateArn:  "an ACM certificate for the app's domain (HTTPS listeners)",
			PhLoadBalancerArn: "the LoadBalancerArn that CreateLoadBalancer returned",
		},
		Warnings: p.Warnings,
	}
	add := func(service, op, name string, input any, then string) {
		n := len(doc.Steps) + 1
		file := fmt.Sprintf("%02d-%s", n, kebab(op))
		if name != "" {
			file += "-" + name
		}
		file += ".json"
		doc.Steps = append(doc.Steps, Step{
			N: n, Service: service, Operation: op, File: file,
			Command: fmt.Sprintf("aws %s %s --region %s --cli-input-json file://%s", cliName[service], kebab(op), p.Region, file),
			Then:    then, Input: input,
		})
	}
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	add("iam", "CreateRole", "", map[string]any{
		"RoleName":                 p.ExecutionRole,
		"AssumeRolePolicyDocument": trust,
		"Description":              "ECS task execution role for " + p.App + " (pull images, write logs, read secrets)",
	}, "")
	add("iam", "AttachRolePolicy", "", map[string]any{
		"RoleName":  p.ExecutionRole,
		"PolicyArn": "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
	}, "")
	if len(p.Secrets) > 0 {
		add("iam", "PutRolePolicy", "", map[string]any{
			"RoleName":       p.ExecutionRole,
			"PolicyName":     "read-" + awsName(p.App, 100) + "-secrets",
			"PolicyDocument": p.secretsPolicy(fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s/*", p.Region, PhAccountID, p.App)),
		}, "")
	}
	for _, name := range p.Secrets {
		add("secretsmanager", "CreateSecret", name, map[string]any{
			"Name":        SecretName(p.App, name),
			"Description": name + " of " + p.App + " (set the value with put-secret-value; hangar never exports values)",
		}, "put ARN in place of "+SecretPlaceholder(name)+", then set the value: aws secretsmanager put-secret-value --secret-id "+SecretName(p.App, name)+" --secret-string ...")
	}
	add("logs", "CreateLogGroup", "", map[string]any{"logGroupName": p.LogGroup}, "")
	add("ecs", "CreateCluster", "", map[string]any{"clusterName": p.Cluster}, "")
	if p.LoadBalancer != nil {
		add("elbv2", "CreateLoadBalancer", "", p.LoadBalancer, "put LoadBalancers[0].LoadBalancerArn in place of "+PhLoadBalancerArn)
		for _, tg := range p.TargetGroups {
			add("elbv2", "CreateTargetGroup", tg.Input.Name, tg.Input, "put TargetGroups[0].TargetGroupArn in place of "+TargetGroupPlaceholder(tg.Input.Name))
		}
		for _, l := range p.Listeners {
			add("elbv2", "CreateListener", fmt.Sprint(l.Port), l, "")
		}
	}
	for _, td := range p.TaskDefs {
		add("ecs", "RegisterTaskDefinition", td.Group, td.Input, "")
	}
	if p.Release != nil {
		add("ecs", "RegisterTaskDefinition", "release", p.Release.Input, "")
		add("ecs", "RunTask", "release", p.ReleaseRun,
			"release_command: wait for the task to stop (aws ecs wait tasks-stopped --cluster "+p.Cluster+" --tasks TASK_ARN) and check containers[0].exitCode is 0 with aws ecs describe-tasks; stop here if it is not. On every later deploy, register the new task definitions, run this task again, and only then call aws ecs update-service")
	}
	for i := range p.Services {
		add("ecs", "CreateService", p.Services[i].ServiceName, p.Services[i], "")
	}
	return doc
}

// secretsPolicy is an IAM policy that lets the execution role read the
// app's secrets.
func (p *Plan) secretsPolicy(resource string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":   "Allow",
			"Action":   []string{"secretsmanager:GetSecretValue"},
			"Resource": resource,
		}},
	})
	return string(b)
}
