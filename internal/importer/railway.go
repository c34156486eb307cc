package importer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

type railwayConfig struct {
	Build struct {
		Builder        string `json:"builder"`
		BuildCommand   string `json:"buildCommand"`
		DockerfilePath string `json:"dockerfilePath"`
	} `json:"build"`
	Deploy struct {
		StartCommand            string                    `json:"startCommand"`
		PreDeployCommand        any                       `json:"preDeployCommand"`
		NumReplicas             *int                      `json:"numReplicas"`
		MultiRegionConfig       map[string]map[string]any `json:"multiRegionConfig"`
		HealthcheckPath         string                    `json:"healthcheckPath"`
		HealthcheckTimeout      float64                   `json:"healthcheckTimeout"`
		RestartPolicyType       string                    `json:"restartPolicyType"`
		RestartPolicyMaxRetries int                       `json:"restartPolicyMaxRetries"`
		CronSchedule            string                    `json:"cronSchedule"`
		Region                  string                    `json:"region"`
		OverlapSeconds          float64                   `json:"overlapSeconds"`
		DrainingSeconds         float64                   `json:"drainingSeconds"`
		SleepApplication        bool                      `json:"sleepApplication"`
	} `json:"deploy"`
}

// railwayRegions maps Railway regions (by prefix) to the nearest Fly region.
var railwayRegions = []struct{ prefix, fly string }{
	{"us-west", "sjc"}, {"us-east", "iad"}, {"europe-west", "ams"}, {"asia-southeast", "sin"},
}

func railwayRegion(r string) string {
	for _, x := range railwayRegions {
		if strings.HasPrefix(r, x.prefix) {
			return x.fly
		}
	}
	return ""
}

func importRailway(path string, isDir bool, opts Options) (*Result, error) {
	dir := path
	if isDir {
		p, ok := findFile(path, "railway.json", "railway.toml")
		if !ok {
			return nil, inputErr(path, "pass railway.json or railway.toml, or the directory that holds it", "no railway.json or railway.toml found")
		}
		path = p
	} else {
		dir = filepath.Dir(path)
	}
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	_, hasDockerfile := findFile(dir, "Dockerfile")
	name := filepath.Base(mustAbs(dir))
	return convertRailway(path, data, name, hasDockerfile, opts)
}

// mergeMaps overlays b onto a, recursively.
func mergeMaps(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func convertRailway(file string, data []byte, dirName string, hasDockerfile bool, opts Options) (*Result, error) {
	raw := map[string]any{}
	if strings.HasSuffix(file, ".toml") {
		if err := toml.Unmarshal(data, &raw); err != nil {
			return nil, inputErr(file, "fix the TOML syntax: railway.toml has [build] and [deploy] tables", "invalid railway.toml: %v", err)
		}
	} else if err := json.Unmarshal(data, &raw); err != nil {
		return nil, inputErr(file, "fix the JSON syntax: railway.json is one object with build and deploy", "invalid railway.json: %v", jsonErr(data, err))
	}
	rep := &Report{Format: "railway", Source: file}
	if envs, ok := raw["environments"].(map[string]any); ok {
		if opts.Environment != "" {
			ov, ok := envs[opts.Environment].(map[string]any)
			if !ok {
				return nil, inputErr(file, "pass one of the environments the file defines, or no --environment", "environment %q is not defined", opts.Environment)
			}
			raw = mergeMaps(raw, ov)
			rep.Notes = append(rep.Notes, "environment "+opts.Environment+" overrides applied")
		} else if len(envs) > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("environment overrides (%s) not applied; pass --environment NAME to apply one", strings.Join(sortedKeys(envs), ", ")))
		}
	}
	norm, _ := json.Marshal(raw)
	var rc railwayConfig
	if err := json.Unmarshal(norm, &rc); err != nil {
		return nil, inputErr(file, "check the value types against Railway's config-as-code reference", "railway config does not match the schema: %v", err)
	}
	o := opts
	if o.Region == "" {
		o.Region = railwayRegion(rc.Deploy.Region)
	}
	b := newBuilder(rep, o, nameFor(opts, dirName, "", false), "railway service")
	c := b.cfg()
	for _, top := range sortedKeys(raw) {
		switch top {
		case "build", "deploy":
		case "$schema":
		case "environments":
			b.approx("environments", "", "environment overlays become separate apps or separate imports (--environment)")
		default:
			b.none(top, "unknown key; ignored")
		}
	}
	build, _ := raw["build"].(map[string]any)
	deploy, _ := raw["deploy"].(map[string]any)
	// Build.
	builder := strings.ToUpper(rc.Build.Builder)
	native := false
	switch {
	case builder == "DOCKERFILE" || builder == "DOCKER" || rc.Build.DockerfilePath != "" || (builder == "" && hasDockerfile):
		c.Build = &FlyBuild{Dockerfile: orStr(rc.Build.DockerfilePath, "Dockerfile")}
		b.mapped("build.builder", "[build] dockerfile")
	default:
		native = true // built after the start command is known
	}
	for _, k := range sortedKeys(build) {
		switch k {
		case "builder", "dockerfilePath":
		case "buildCommand":
			if !native {
				b.none("build.buildCommand", "the app builds from a Dockerfile, so the build command %q is not run: put it in the Dockerfile if it is needed", rc.Build.BuildCommand)
			}
		case "watchPatterns":
			b.none("build.watchPatterns", "deploys are started by `hangar deploy`, not by watched paths")
		default:
			b.none("build."+k, "build option with no equivalent; ignored")
		}
	}
	web := rc.Deploy.CronSchedule == ""
	const port = 8080
	// railway.json names no port: a service is guessed to serve HTTP on
	// $PORT unless its Dockerfile or command shows a TCP server.
	var facts dockerfileFacts
	if c.Build != nil && c.Build.Dockerfile != "" {
		if data, err := os.ReadFile(filepath.Join(filepath.Dir(file), c.Build.Dockerfile)); err == nil && len(data) < 1<<20 {
			facts = parseDockerfile(data)
		}
	}
	tcpPort, tcpWhy, tcp := tcpGuess(facts, rc.Deploy.StartCommand)
	if !tcp && (strings.Contains(strings.ToLower(facts.From), "haproxy") || strings.Contains(rc.Deploy.StartCommand, "haproxy")) {
		// HAProxy serves HTTP or TCP: its configuration says which.
		if p, ok := findFile(filepath.Dir(file), "haproxy.cfg"); ok {
			if data, err := os.ReadFile(p); err == nil && len(data) < 1<<20 {
				if port, ok := haproxyTCP(data); ok {
					if port == 0 {
						port = 5432
					}
					tcpPort, tcp = port, true
					tcpWhy = fmt.Sprintf("haproxy.cfg runs HAProxy in TCP mode (mode tcp, bind port %d)", port)
				}
			}
		}
	}
	if web && tcp {
		web = false
		b.tcpService(tcpPort, tcpPort, nil)
		b.tcpCheck("(service)", tcpPort, checkTimes{Interval: 15 * time.Second, Timeout: 5 * time.Second, Grace: 30 * time.Second}, nil,
			fmt.Sprintf("railway.json names no port or protocol; %s: served as raw TCP ([[services]] protocol = \"tcp\") on port %d, not as HTTP. Check the port; keep it private (remove [[services]], reach it at %s.internal:%d) unless clients outside connect to it", tcpWhy, tcpPort, b.app.Name, tcpPort))
		if c.Services[len(c.Services)-1].MinMachinesRunning == nil {
			c.Services[len(c.Services)-1].MinMachinesRunning = intPtr(1)
		}
	}
	if web {
		b.httpService(port, nil)
		b.approx("(service)", "[http_service] internal_port = 8080", "guessed: railway.json names no port or protocol, and Railway routes HTTP to $PORT, so the app is taken to serve HTTP on $PORT = %d. If it serves another protocol (a database, a TCP proxy), replace [http_service] with [[services]] protocol = \"tcp\" on its port", port)
		b.portEnv("deploy (PORT)", port, "Railway")
		if rc.Deploy.SleepApplication {
			b.mapped("deploy.sleepApplication", "[http_service] auto_stop_machines")
		} else {
			c.HTTPService.MinMachinesRunning = intPtr(1)
		}
	}
	for _, k := range sortedKeys(deploy) {
		kk := "deploy." + k
		switch k {
		case "startCommand":
			cmd, why := shellWrap(rc.Deploy.StartCommand)
			b.process("app", cmd)
			if why != "" {
				b.approx(kk, "[processes] app", "Railway runs the command in a shell; it uses shell syntax (%s), so it runs as sh -c '...'", why)
			} else {
				b.mapped(kk, "[processes] app")
			}
		case "preDeployCommand":
			var cmds []string
			switch v := rc.Deploy.PreDeployCommand.(type) {
			case string:
				cmds = []string{v}
			case []any:
				for _, x := range v {
					cmds = append(cmds, fmt.Sprint(x))
				}
			}
			if len(cmds) > 0 {
				cmd, why := shellWrap(strings.Join(cmds, " && "))
				b.release(kk, cmd)
				if why != "" {
					b.rep.Entries[len(b.rep.Entries)-1].Warning += "; wrapped in sh -c because it uses shell syntax: " + why
				}
			}
		case "numReplicas":
			b.count(kk, "", *rc.Deploy.NumReplicas)
		case "multiRegionConfig":
			total := 0
			var regions []string
			for _, r := range sortedKeys(rc.Deploy.MultiRegionConfig) {
				n := 0
				if v, ok := rc.Deploy.MultiRegionConfig[r]["numReplicas"].(float64); ok {
					n = int(v)
				}
				total += n
				fr := railwayRegion(r)
				if fr == "" {
					fr = r
				}
				regions = append(regions, fmt.Sprintf("%s=%d", fr, n))
				b.action("hangar scale count %d --region %s -a %s", n, fr, b.app.Name)
			}
			b.approx(kk, "hangar scale count --region", "replicas per region (%s): run the scale commands under next steps", strings.Join(regions, ", "))
		case "healthcheckPath":
			if web {
				t := checkTimes{Interval: 15 * time.Second, Timeout: 5 * time.Second, Grace: 10 * time.Second}
				if rc.Deploy.HealthcheckTimeout > 0 {
					t.Grace = time.Duration(rc.Deploy.HealthcheckTimeout * float64(time.Second))
				}
				b.httpCheck(kk, probe{Port: port, Path: rc.Deploy.HealthcheckPath, Method: "GET"}, t, nil)
			} else {
				b.none(kk, "a cron job has no health check")
			}
		case "healthcheckTimeout":
			b.approx(kk, "grace_period", "Railway's timeout for the first healthy check became the check's grace_period")
		case "restartPolicyType":
			b.restart(kk, rc.Deploy.RestartPolicyType, rc.Deploy.RestartPolicyMaxRetries, nil)
		case "restartPolicyMaxRetries":
			b.mapped(kk, "[[restart]] retries")
		case "cronSchedule":
			// after the loop, once the command is known
		case "region":
			if r := railwayRegion(rc.Deploy.Region); r != "" {
				b.approx(kk, "primary_region", "Railway region %s mapped to the nearest region %s", rc.Deploy.Region, r)
			} else {
				b.none(kk, "unknown region %q; pass --region", rc.Deploy.Region)
			}
		case "sleepApplication":
			if !rc.Deploy.SleepApplication {
				b.mapped(kk, "[http_service] min_machines_running = 1")
			}
		case "overlapSeconds", "drainingSeconds":
			if k == "drainingSeconds" {
				c.KillTimeout = fmt.Sprintf("%ds", int(rc.Deploy.DrainingSeconds))
				b.mapped(kk, "kill_timeout")
			} else {
				b.approx(kk, "[deploy] strategy", "rolling deploys start the new machine before stopping the old; the overlap time is not configurable")
			}
		case "runtime", "useLegacyStacker", "ipv6EgressEnabled":
			b.none(kk, "Railway runtime option; ignored")
		case "requiredMountPath":
			b.volume(kk, "data", fmt.Sprint(deploy[k]), 0, nil)
		case "limitOverride":
			b.none(kk, "resource limits: pick a size with `hangar scale vm`")
		default:
			b.none(kk, "unknown key; ignored")
		}
	}
	if native {
		src := filepath.Dir(file)
		b.fromSource("build.builder", src, "Railway", detectLang(src, nil, []string{rc.Deploy.StartCommand}), rc.Build.BuildCommand, port)
	}
	if rc.Deploy.CronSchedule != "" {
		b.cron("deploy.cronSchedule", rc.Deploy.CronSchedule, c.Processes["app"])
	}
	if c.HTTPService != nil && len(c.Processes) > 0 {
		c.HTTPService.Processes = []string{"app"}
	}
	rep.Notes = append(rep.Notes, "Railway keeps variables, domains and volumes in the dashboard, not in the config file: export the variables (`railway variables --json`) and import them with `hangar secrets import`")
	return &Result{Report: rep, Apps: []*App{b.flush()}}, nil
}
