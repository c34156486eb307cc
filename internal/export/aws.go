package export

// The structs below are the request shapes of the AWS APIs the ecs-json
// format emits, with the member names of the ECS (camelCase) and Elastic
// Load Balancing v2 (PascalCase) API references. Marshaled to JSON they are
// exactly what `aws ecs ... --cli-input-json` and
// `aws elbv2 ... --cli-input-json` take.

// KeyValue is an ECS name/value pair (environment).
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Tag is an ECS tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ELBTag is an ELBv2 tag.
type ELBTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// SecretRef is an ECS container secret.
type SecretRef struct {
	Name      string `json:"name"`
	ValueFrom string `json:"valueFrom"`
}

// PortMapping is an ECS container port mapping.
type PortMapping struct {
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	Name          string `json:"name,omitempty"`
}

// LogConfiguration is an ECS container log configuration.
type LogConfiguration struct {
	LogDriver string            `json:"logDriver"`
	Options   map[string]string `json:"options,omitempty"`
}

// HealthCheck is an ECS container health check.
type HealthCheck struct {
	Command     []string `json:"command"`
	Interval    int      `json:"interval,omitempty"`
	Timeout     int      `json:"timeout,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	StartPeriod int      `json:"startPeriod,omitempty"`
}

// ContainerDefinition is an ECS container definition.
type ContainerDefinition struct {
	Name             string            `json:"name"`
	Image            string            `json:"image"`
	Essential        bool              `json:"essential"`
	EntryPoint       []string          `json:"entryPoint,omitempty"`
	Command          []string          `json:"command,omitempty"`
	User             string            `json:"user,omitempty"`
	PortMappings     []PortMapping     `json:"portMappings,omitempty"`
	Environment      []KeyValue        `json:"environment,omitempty"`
	Secrets          []SecretRef       `json:"secrets,omitempty"`
	LogConfiguration *LogConfiguration `json:"logConfiguration,omitempty"`
	HealthCheck      *HealthCheck      `json:"healthCheck,omitempty"`
	StopTimeout      int               `json:"stopTimeout,omitempty"`
}

// RuntimePlatform is an ECS task runtime platform.
type RuntimePlatform struct {
	CPUArchitecture       string `json:"cpuArchitecture,omitempty"`
	OperatingSystemFamily string `json:"operatingSystemFamily,omitempty"`
}

// RegisterTaskDefinitionInput is ECS RegisterTaskDefinition's request.
type RegisterTaskDefinitionInput struct {
	Family                  string                `json:"family"`
	ExecutionRoleArn        string                `json:"executionRoleArn,omitempty"`
	NetworkMode             string                `json:"networkMode"`
	RequiresCompatibilities []string              `json:"requiresCompatibilities"`
	CPU                     string                `json:"cpu"`
	Memory                  string                `json:"memory"`
	RuntimePlatform         *RuntimePlatform      `json:"runtimePlatform,omitempty"`
	ContainerDefinitions    []ContainerDefinition `json:"containerDefinitions"`
	Tags                    []Tag                 `json:"tags,omitempty"`
}

// ServiceLoadBalancer attaches a service's container port to a target group.
type ServiceLoadBalancer struct {
	TargetGroupArn string `json:"targetGroupArn"`
	ContainerName  string `json:"containerName"`
	ContainerPort  int    `json:"containerPort"`
}

// AwsVpcConfiguration is the awsvpc network configuration of a task.
type AwsVpcConfiguration struct {
	Subnets        []string `json:"subnets"`
	SecurityGroups []string `json:"securityGroups,omitempty"`
	AssignPublicIP string   `json:"assignPublicIp,omitempty"`
}

// NetworkConfiguration wraps AwsVpcConfiguration.
type NetworkConfiguration struct {
	AwsvpcConfiguration AwsVpcConfiguration `json:"awsvpcConfiguration"`
}

// CircuitBreaker is the ECS deployment circuit breaker.
type CircuitBreaker struct {
	Enable   bool `json:"enable"`
	Rollback bool `json:"rollback"`
}

// DeploymentConfiguration is an ECS service's deployment configuration.
type DeploymentConfiguration struct {
	DeploymentCircuitBreaker *CircuitBreaker `json:"deploymentCircuitBreaker,omitempty"`
	MaximumPercent           int             `json:"maximumPercent,omitempty"`
	MinimumHealthyPercent    int             `json:"minimumHealthyPercent"`
}

// CreateServiceInput is ECS CreateService's request.
type CreateServiceInput struct {
	Cluster                       string                   `json:"cluster"`
	ServiceName                   string                   `json:"serviceName"`
	TaskDefinition                string                   `json:"taskDefinition"`
	LoadBalancers                 []ServiceLoadBalancer    `json:"loadBalancers,omitempty"`
	DesiredCount                  int                      `json:"desiredCount"`
	LaunchType                    string                   `json:"launchType"`
	PlatformVersion               string                   `json:"platformVersion,omitempty"`
	DeploymentConfiguration       *DeploymentConfiguration `json:"deploymentConfiguration,omitempty"`
	NetworkConfiguration          NetworkConfiguration     `json:"networkConfiguration"`
	HealthCheckGracePeriodSeconds *int                     `json:"healthCheckGracePeriodSeconds,omitempty"`
	PropagateTags                 string                   `json:"propagateTags,omitempty"`
	Tags                          []Tag                    `json:"tags,omitempty"`
}

// RunTaskInput is ECS RunTask's request (the release command).
type RunTaskInput struct {
	Cluster              string               `json:"cluster"`
	TaskDefinition       string               `json:"taskDefinition"`
	Count                int                  `json:"count"`
	LaunchType           string               `json:"launchType"`
	StartedBy            string               `json:"startedBy,omitempty"`
	NetworkConfiguration NetworkConfiguration `json:"networkConfiguration"`
}

// CreateLoadBalancerInput is ELBv2 CreateLoadBalancer's request.
type CreateLoadBalancerInput struct {
	Name           string   `json:"Name"`
	Subnets        []string `json:"Subnets"`
	SecurityGroups []string `json:"SecurityGroups,omitempty"`
	Scheme         string   `json:"Scheme"`
	Type           string   `json:"Type"`
	IPAddressType  string   `json:"IpAddressType,omitempty"`
	Tags           []ELBTag `json:"Tags,omitempty"`
}

// Matcher is the HTTP codes a target group health check accepts.
type Matcher struct {
	HTTPCode string `json:"HttpCode"`
}

// CreateTargetGroupInput is ELBv2 CreateTargetGroup's request.
type CreateTargetGroupInput struct {
	Name                       string   `json:"Name"`
	Protocol                   string   `json:"Protocol"`
	ProtocolVersion            string   `json:"ProtocolVersion,omitempty"`
	Port                       int      `json:"Port"`
	VpcID                      string   `json:"VpcId"`
	HealthCheckProtocol        string   `json:"HealthCheckProtocol"`
	HealthCheckPort            string   `json:"HealthCheckPort,omitempty"`
	HealthCheckEnabled         bool     `json:"HealthCheckEnabled"`
	HealthCheckPath            string   `json:"HealthCheckPath"`
	HealthCheckIntervalSeconds int      `json:"HealthCheckIntervalSeconds"`
	HealthCheckTimeoutSeconds  int      `json:"HealthCheckTimeoutSeconds"`
	HealthyThresholdCount      int      `json:"HealthyThresholdCount"`
	UnhealthyThresholdCount    int      `json:"UnhealthyThresholdCount"`
	Matcher                    Matcher  `json:"Matcher"`
	TargetType                 string   `json:"TargetType"`
	Tags                       []ELBTag `json:"Tags,omitempty"`
}

// Certificate is a listener certificate.
type Certificate struct {
	CertificateArn string `json:"CertificateArn"`
}

// RedirectConfig is a listener redirect action.
type RedirectConfig struct {
	Protocol   string `json:"Protocol"`
	Port       string `json:"Port"`
	Host       string `json:"Host"`
	Path       string `json:"Path"`
	Query      string `json:"Query"`
	StatusCode string `json:"StatusCode"`
}

// Action is a listener default action.
type Action struct {
	Type           string          `json:"Type"`
	TargetGroupArn string          `json:"TargetGroupArn,omitempty"`
	RedirectConfig *RedirectConfig `json:"RedirectConfig,omitempty"`
}

// CreateListenerInput is ELBv2 CreateListener's request.
type CreateListenerInput struct {
	LoadBalancerArn string        `json:"LoadBalancerArn"`
	Protocol        string        `json:"Protocol"`
	Port            int           `json:"Port"`
	SslPolicy       string        `json:"SslPolicy,omitempty"`
	Certificates    []Certificate `json:"Certificates,omitempty"`
	DefaultActions  []Action      `json:"DefaultActions"`
	Tags            []ELBTag      `json:"Tags,omitempty"`
}
