// Package export turns a Fly app (its per-process-group machine configs and
// a few app-level settings from fly.toml) into the AWS resources that run
// the same thing on ECS Fargate behind an Application Load Balancer: one
// task definition and service per process group, target groups and health
// checks from the service checks, listeners with the HTTP→HTTPS redirect,
// Secrets Manager references, CloudWatch Logs, and a one-off task definition
// for the release command. It renders them three ways — the raw ECS and
// ELBv2 API inputs (ecs-json), a CloudFormation template and a Terraform
// configuration — and reports, as warnings, what has no AWS equivalent.
//
// The package does no I/O and talks to no AWS endpoint.
package export
