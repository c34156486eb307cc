package export

import (
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// fixtureApp is a two-group app that uses most of what the exporter maps:
// an http_service with force_https and an http check, a worker without
// services, env, secrets, a volume, statics, a top-level check, autostop
// and a release command.
func fixtureApp() *App {
	web := &types.MachineConfig{
		Image: "registry.example.com/shop:v1",
		Env:   map[string]string{"PORT": "8080", "RAILS_ENV": "production"},
		Init:  types.MachineInit{Cmd: []string{"bin/rails", "server"}},
		Guest: &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 1024},
		Services: []types.MachineService{{
			Protocol:           "tcp",
			InternalPort:       8080,
			Autostop:           types.Ptr(types.AutostopStop),
			MinMachinesRunning: types.Ptr(2),
			Ports: []types.MachinePort{
				{Port: types.Ptr(80), Handlers: []string{"http"}, ForceHTTPS: true},
				{Port: types.Ptr(443), Handlers: []string{"tls", "http"}},
			},
			Checks: []types.MachineCheck{{
				Type:        "http",
				Interval:    types.DurationPtr(10 * time.Second),
				Timeout:     types.DurationPtr(2 * time.Second),
				GracePeriod: types.DurationPtr(30 * time.Second),
				Method:      "GET",
				Path:        "/up",
			}},
			Concurrency: &types.MachineServiceConcurrency{Type: "requests", SoftLimit: 200, HardLimit: 250},
		}},
		Checks: map[string]types.MachineCheck{
			"alive": {Type: "http", Port: types.Ptr(8080), Path: "/up", Interval: types.DurationPtr(15 * time.Second), Timeout: types.DurationPtr(3 * time.Second)},
		},
		Mounts:     []types.MachineMount{{Name: "data", Path: "/data", SizeGB: 10}},
		Statics:    []types.Static{{GuestPath: "/app/public", URLPrefix: "/assets/"}},
		StopConfig: &types.StopConfig{Timeout: types.DurationPtr(30 * time.Second), Signal: types.Ptr("SIGINT")},
		Metadata:   map[string]string{types.MetaProcessGroup: "app"},
	}
	worker := &types.MachineConfig{
		Image:    "registry.example.com/shop:v1",
		Env:      map[string]string{"RAILS_ENV": "production"},
		Init:     types.MachineInit{Cmd: []string{"bundle", "exec", "sidekiq"}},
		Guest:    &types.MachineGuest{CPUKind: "performance", CPUs: 2, MemoryMB: 4096},
		Metadata: map[string]string{types.MetaProcessGroup: "worker"},
	}
	return &App{
		Name:           "shop",
		PrimaryRegion:  "iad",
		ReleaseCommand: "bin/rails db:migrate",
		Groups:         []Group{{Name: "app", Config: web}, {Name: "worker", Config: worker}},
		Secrets:        []string{"SECRET_KEY_BASE", "DATABASE_URL"},
	}
}
