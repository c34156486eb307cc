package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

type copilotDuration struct{ d time.Duration }

func (c *copilotDuration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if secs, err2 := strconv.Atoi(s); err2 == nil {
			d = time.Duration(secs) * time.Second
		} else {
			return fmt.Errorf("line %d: %q is not a duration such as 10s", n.Line, s)
		}
	}
	c.d = d
	return nil
}

type copilotManifest struct {
	Name  string `yaml:"name"`
	Type  string `yaml:"type"`
	Image struct {
		Build       yaml.Node `yaml:"build"`
		Location    string    `yaml:"location"`
		Port        int       `yaml:"port"`
		HealthCheck *struct {
			Command     []string        `yaml:"command"`
			Interval    copilotDuration `yaml:"interval"`
			Timeout     copilotDuration `yaml:"timeout"`
			StartPeriod copilotDuration `yaml:"start_period"`
		} `yaml:"healthcheck"`
	} `yaml:"image"`
	HTTP      yaml.Node       `yaml:"http"`
	CPU       float64         `yaml:"cpu"`
	Memory    int             `yaml:"memory"`
	Count     yaml.Node       `yaml:"count"`
	Command   yaml.Node       `yaml:"command"`
	Entry     yaml.Node       `yaml:"entrypoint"`
	Variables map[string]any  `yaml:"variables"`
	Secrets   map[string]any  `yaml:"secrets"`
	Storage   *copilotStorage `yaml:"storage"`
	On        *struct {
		Schedule string `yaml:"schedule"`
	} `yaml:"on"`
}

type copilotStorage struct {
	Volumes map[string]struct {
		Path     string `yaml:"path"`
		ReadOnly bool   `yaml:"read_only"`
		EFS      any    `yaml:"efs"`
	} `yaml:"volumes"`
}

func importCopilot(path string, isDir bool, opts Options) (*Result, error) {
	var files []string
	if !isDir {
		files = []string{path}
	} else {
		root := path
		if st, err := os.Stat(filepath.Join(path, "copilot")); err == nil && st.IsDir() {
			root = filepath.Join(path, "copilot")
		}
		if p, ok := findFile(root, "manifest.yml", "manifest.yaml"); ok {
			files = append(files, p)
		}
		entries, err := os.ReadDir(root)
		if err != nil {
			return nil, &InputError{File: root, Err: err, Hint: "check that the directory is readable"}
		}
		for _, e := range entries {
			if !e.IsDir() || e.Name() == "environments" || e.Name() == "pipelines" || e.Name() == ".workspace" {
				continue
			}
			if p, ok := findFile(filepath.Join(root, e.Name()), "manifest.yml", "manifest.yaml"); ok {
				files = append(files, p)
			}
		}
		if len(files) == 0 {
			return nil, inputErr(path, "pass a Copilot manifest.yml, or the copilot/ directory that holds <service>/manifest.yml", "no Copilot workload manifests found")
		}
	}
	in := map[string][]byte{}
	for _, f := range files {
		b, err := readInput(f)
		if err != nil {
			return nil, err
		}
		in[f] = b
	}
	return convertCopilot(in, opts)
}

type copilotUnit struct {
	file string
	m    copilotManifest
	keys []string
	raw  map[string]any
	app  string
}

func convertCopilot(files map[string][]byte, opts Options) (*Result, error) {
	var units []*copilotUnit
	names := sortedKeys(files)
	rep := &Report{Format: "copilot", Source: names[0]}
	if len(names) > 1 {
		rep.Source = filepath.Dir(filepath.Dir(names[0]))
	}
	for _, f := range names {
		var raw map[string]any
		if err := yaml.Unmarshal(files[f], &raw); err != nil {
			return nil, inputErr(f, "fix the YAML syntax of the manifest", "invalid manifest: %v", err)
		}
		if opts.Environment != "" {
			if envs, ok := raw["environments"].(map[string]any); ok {
				if ov, ok := envs[opts.Environment].(map[string]any); ok {
					raw = mergeMaps(raw, ov)
				}
			}
		}
		norm, err := yaml.Marshal(raw)
		if err != nil {
			return nil, inputErr(f, "fix the manifest", "cannot normalize manifest: %v", err)
		}
		var m copilotManifest
		if err := yaml.Unmarshal(norm, &m); err != nil {
			return nil, inputErr(f, "check the field types against the Copilot manifest reference", "manifest does not match Copilot's schema: %v", err)
		}
		switch m.Type {
		case "Environment", "Pipeline":
			rep.Entries = append(rep.Entries, Entry{Key: f, Status: Unsupported, Warning: m.Type + " manifest: VPCs, load balancers and pipelines are the platform's own; ignored"})
			continue
		case "":
			if _, ok := raw["stages"]; ok {
				rep.Entries = append(rep.Entries, Entry{Key: f, Status: Unsupported, Warning: "pipeline manifest ignored"})
				continue
			}
			return nil, inputErr(f, "set type to Load Balanced Web Service, Backend Service, Worker Service, Request-Driven Web Service or Scheduled Job", "manifest has no type")
		}
		if m.Name == "" {
			m.Name = filepath.Base(filepath.Dir(f))
		}
		units = append(units, &copilotUnit{file: f, m: m, keys: sortedKeys(raw), raw: raw})
	}
	res := &Result{Report: rep}
	if len(units) == 0 {
		rep.Notes = append(rep.Notes, "no workload manifests")
		return res, nil
	}
	hosts := map[string]string{}
	used := map[string]bool{}
	for _, u := range units {
		u.app = nameFor(opts, "", u.m.Name, len(units) > 1)
		if opts.Name != "" && len(units) > 1 {
			u.app = nameFor(opts, opts.Name, u.m.Name, true)
		}
		u.app = uniqueName(used, u.app)
		hosts[u.m.Name] = u.app + ".internal"
	}
	for _, u := range units {
		b := newBuilder(rep, opts, u.app, "manifest "+u.file)
		others := map[string]string{}
		for h, a := range hosts {
			if a != u.app+".internal" {
				others[h] = a
			}
		}
		convertCopilotUnit(b, u, others)
		res.Apps = append(res.Apps, b.flush())
	}
	if opts.Environment == "" {
		rep.Notes = append(rep.Notes, "per-environment overrides (environments:) were not applied; pass --environment NAME to apply one")
	}
	return res, nil
}

func nodeStrings(n yaml.Node) ([]string, bool) {
	if n.Kind == 0 {
		return nil, false
	}
	var s string
	if n.Decode(&s) == nil {
		w, err := shellWords(s)
		if err != nil {
			return []string{s}, true
		}
		return w, true
	}
	var l []string
	if n.Decode(&l) == nil {
		return l, true
	}
	return nil, false
}

func convertCopilotUnit(b *builder, u *copilotUnit, hosts map[string]string) {
	m := u.m
	c := b.cfg()
	web := m.Type == "Load Balanced Web Service" || m.Type == "Request-Driven Web Service"
	port := m.Image.Port
	if port == 0 && m.Type == "Request-Driven Web Service" {
		port = 8080
	}
	env := map[string]string{}
	for k, v := range m.Variables {
		env[k] = fmt.Sprint(v)
	}
	k := func(key string) string { return u.m.Name + "." + key }
	var minRunning *int
	for _, key := range u.keys {
		kk := k(key)
		switch key {
		case "name":
			b.mapped(kk, "app")
		case "type":
			switch m.Type {
			case "Load Balanced Web Service", "Request-Driven Web Service":
				b.approx(kk, "[http_service]", "%s: the proxy serves it on 80/443 with HTTPS", m.Type)
			case "Backend Service":
				b.approx(kk, "(private)", "backend service: no public port, reachable at %s.internal", b.app.Name)
			case "Worker Service":
				b.approx(kk, "(no service)", "worker service: SNS/SQS subscriptions are not converted")
			case "Scheduled Job":
				b.approx(kk, "scheduled machine", "scheduled job: see next steps")
			case "Static Site":
				b.none(kk, "static site: serve the files from an image with [[statics]]")
			default:
				b.none(kk, "unknown workload type %q", m.Type)
			}
		case "image":
			copilotImage(b, kk, m)
		case "http":
			// below, once the service exists
		case "cpu", "memory":
		case "count":
			minRunning = copilotCount(b, kk, m.Count)
		case "command":
			if w, ok := nodeStrings(m.Command); ok {
				b.process("app", shellJoin(w))
				b.mapped(kk, "[processes] app")
			}
		case "entrypoint":
			if w, ok := nodeStrings(m.Entry); ok {
				c.Experimental = &FlyExperimental{Entrypoint: w}
				b.approx(kk, "[experimental] entrypoint", "entrypoint override is an experimental fly.toml key")
			}
		case "variables":
			for _, n := range sortedKeys(m.Variables) {
				if _, isMap := m.Variables[n].(map[string]any); isMap {
					b.secret(kk+"."+n, n, "", fmt.Sprintf("value comes from %v (a CloudFormation output): look it up and set it", m.Variables[n]))
					continue
				}
				v, hit := rewriteHosts(fmt.Sprint(m.Variables[n]), hosts)
				b.env(kk+"."+n, n, v)
				if len(hit) > 0 {
					last := &b.rep.Entries[len(b.rep.Entries)-1]
					last.Status = Approximated
					last.Warning = "host rewritten to its app's private address"
				}
			}
		case "secrets":
			for _, n := range sortedKeys(m.Secrets) {
				src := "SSM Parameter Store"
				if mm, ok := m.Secrets[n].(map[string]any); ok {
					if _, ok := mm["secretsmanager"]; ok {
						src = "AWS Secrets Manager"
					}
				}
				b.secret(kk+"."+n, n, "", fmt.Sprintf("value is in %s (%v): fetch it there", src, m.Secrets[n]))
			}
		case "storage":
			if m.Storage != nil {
				for _, vn := range sortedKeys(m.Storage.Volumes) {
					v := m.Storage.Volumes[vn]
					b.volume(kk+".volumes."+vn, vn, v.Path, 0, nil)
					if v.EFS != nil {
						last := &b.rep.Entries[len(b.rep.Entries)-1]
						if last.Status == Mapped {
							last.Status = Approximated
							last.Warning = "EFS is shared between tasks; a volume belongs to one machine, and data is not copied"
						}
					}
				}
				if _, ok := u.raw["storage"].(map[string]any)["ephemeral"]; ok {
					b.none(kk+".ephemeral", "ephemeral storage size is fixed per machine size")
				}
			}
		case "on":
			// after the loop, once the command is known
		case "exec":
			b.mapped(kk, "hangar ssh console")
		case "platform":
			b.approx(kk, "", "build the image for the hosts' architecture")
		case "environments":
			if b.opts.Environment != "" {
				b.mapped(kk+"."+b.opts.Environment, "(overrides applied)")
			} else {
				b.approx(kk, "", "per-environment overrides not applied (pass --environment)")
			}
		case "network":
			b.approx(kk, "private network", "service discovery is <app>.internal; VPC placement and security groups have no equivalent")
		case "logging":
			b.none(kk, "Copilot's logging runs a FireLens log router beside the service: %s", logRouterRole)
		case "observability":
			b.none(kk, "logs go to `hangar logs`; metrics via [[metrics]]")
		case "sidecars":
			sidecars, _ := u.raw["sidecars"].(map[string]any)
			for _, sn := range sortedKeys(sidecars) {
				sc, _ := sidecars[sn].(map[string]any)
				img, _ := sc["image"].(string)
				var essential *bool
				if e, ok := sc["essential"].(bool); ok {
					essential = &e
				}
				role := sidecarRole(img, essential, false)
				if role == "" {
					role = "a container of its own: one machine runs one image, so run it as its own app (reach it at <app>.internal instead of localhost)"
				}
				b.none(kk+"."+sn, "sidecar %s (%s) is not part of this app: %s", sn, img, role)
			}
		case "taskdef_overrides":
			b.none(kk, "task definition overrides have no equivalent")
		case "deployment":
			b.approx(kk, "[deploy] strategy", "rolling deploys are the default")
		case "publish", "subscribe":
			b.none(kk, "SNS topics and SQS queues have no equivalent: use a queue the app can reach (e.g. Redis, or a managed queue)")
		case "retries", "timeout":
			b.none(kk, "job retries and timeouts have no equivalent for scheduled machines")
		case "nlb":
			b.approx(kk, "[[services]] tcp", "network load balancer: expose the port as a TCP service by hand")
		default:
			b.none(kk, "unknown key; ignored")
		}
	}
	if m.On != nil && m.On.Schedule != "" {
		b.cron(k("on.schedule"), m.On.Schedule, c.Processes["app"])
	}
	if minRunning == nil && (m.Type == "Load Balanced Web Service" || m.Type == "Backend Service") {
		// ECS keeps count tasks running; only count.range scales.
		b.alwaysOn = true
		b.alwaysOnWhy = "Copilot keeps `count` tasks running all the time (no scale to zero): min_machines_running equals the count so autostop never stops them"
	}
	if m.CPU > 0 || m.Memory > 0 {
		b.size(k("cpu/memory"), m.CPU/1024, m.Memory, nil)
	}
	if port > 0 {
		if web {
			b.httpService(port, processesOf(c))
			if minRunning != nil {
				c.HTTPService.MinMachinesRunning = minRunning
			}
			b.mapped(k("image.port"), "[http_service] internal_port")
			copilotHTTPCheck(b, k("http.healthcheck"), m, port)
		} else {
			b.approx(k("image.port"), "", "private port: reach it at %s.internal:%d", b.app.Name, port)
		}
	} else if web {
		b.none(k("image.port"), "a web service without image.port: set [http_service] internal_port by hand")
	}
	if h := m.Image.HealthCheck; h != nil && len(h.Command) > 0 {
		b.execCheck(k("image.healthcheck"), h.Command, checkTimes{Interval: h.Interval.d, Timeout: h.Timeout.d, Grace: h.StartPeriod.d}, env, nil)
	}
	if m.HTTP.Kind != 0 {
		var raw map[string]any
		if m.HTTP.Decode(&raw) == nil {
			for _, hk := range sortedKeys(raw) {
				switch hk {
				case "path", "healthcheck":
				case "alias":
					b.none(k("http.alias"), "add the domain with `hangar certs add DOMAIN -a %s`", b.app.Name)
				default:
					b.none(k("http."+hk), "load balancer option with no equivalent")
				}
			}
			if p, ok := raw["path"].(string); ok && p != "/" && p != "" {
				b.approx(k("http.path"), "", "the load balancer routed only %s to this service; the app now receives every path", p)
			}
		}
	}
}

func copilotImage(b *builder, key string, m copilotManifest) {
	c := b.cfg()
	if m.Image.Location != "" {
		c.Build = &FlyBuild{Image: m.Image.Location}
		b.mapped(key+".location", "[build] image")
		return
	}
	if m.Image.Build.Kind == 0 {
		b.none(key, "no image.build or image.location: set [build] by hand")
		return
	}
	var df string
	if m.Image.Build.Decode(&df) != nil {
		var bm struct {
			Dockerfile string            `yaml:"dockerfile"`
			Context    string            `yaml:"context"`
			Target     string            `yaml:"target"`
			Args       map[string]string `yaml:"args"`
		}
		if err := m.Image.Build.Decode(&bm); err != nil {
			b.none(key+".build", "unreadable build section: %v", err)
			return
		}
		df = orStr(bm.Dockerfile, filepath.Join(orStr(bm.Context, "."), "Dockerfile"))
		c.Build = &FlyBuild{Dockerfile: filepath.ToSlash(filepath.Clean(df)), Target: bm.Target, Args: bm.Args}
		if bm.Context != "" && filepath.Clean(bm.Context) != "." {
			if b.buildIn(bm.Context, df) {
				b.mapped(key+".build", "fly.toml written in "+filepath.ToSlash(filepath.Clean(bm.Context))+"/ (the build context)")
			} else {
				b.approx(key+".build", "[build] dockerfile", "build context %s is outside the workspace: deploy with that directory as the build context", bm.Context)
			}
			return
		}
		b.mapped(key+".build", "[build] dockerfile")
		return
	}
	c.Build = &FlyBuild{Dockerfile: filepath.ToSlash(filepath.Clean(df))}
	if d := filepath.Dir(df); d != "." {
		// Copilot builds with the Dockerfile's directory as the context.
		if b.buildIn(d, df) {
			b.mapped(key+".build", "fly.toml written in "+filepath.ToSlash(filepath.Clean(d))+"/ (the build context)")
		} else {
			b.approx(key+".build", "[build] dockerfile", "Copilot builds with the Dockerfile's directory as context; deploy with %s as the build context", d)
		}
		return
	}
	b.mapped(key+".build", "[build] dockerfile")
}

// copilotCount maps count; with autoscaling it returns the minimum.
func copilotCount(b *builder, key string, n yaml.Node) (minRunning *int) {
	var i int
	if n.Decode(&i) == nil {
		b.count(key, "", i)
		return nil
	}
	var m map[string]any
	if n.Decode(&m) != nil {
		b.none(key, "unreadable count")
		return nil
	}
	if r, ok := m["range"]; ok {
		lo, hi := 1, 1
		switch v := r.(type) {
		case string:
			parts := strings.SplitN(v, "-", 2)
			lo, _ = strconv.Atoi(strings.TrimSpace(parts[0]))
			if len(parts) == 2 {
				hi, _ = strconv.Atoi(strings.TrimSpace(parts[1]))
			}
		case map[string]any:
			lo, _ = strconv.Atoi(fmt.Sprint(v["min"]))
			hi, _ = strconv.Atoi(fmt.Sprint(v["max"]))
		}
		if hi < lo {
			hi = lo
		}
		b.count(key+".range", "", hi)
		minRunning = intPtr(lo)
		last := &b.rep.Entries[len(b.rep.Entries)-1]
		last.Warning = fmt.Sprintf("autoscaling %d-%d became %d machines; for a web service the proxy stops idle ones and starts them on demand, keeping min_machines_running = %d", lo, hi, hi, lo)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "range":
		case "spot":
			b.none(key+".spot", "spot capacity has no equivalent")
		default:
			b.approx(key+"."+k, "", "scaling on %s became scaling by traffic (autostop/autostart)", k)
		}
	}
	return minRunning
}

func copilotHTTPCheck(b *builder, key string, m copilotManifest, port int) {
	path := "/"
	t := checkTimes{Interval: 10 * time.Second, Timeout: 5 * time.Second, Grace: 60 * time.Second}
	if m.HTTP.Kind != 0 {
		var hc struct {
			Healthcheck yaml.Node `yaml:"healthcheck"`
		}
		if m.HTTP.Decode(&hc) == nil && hc.Healthcheck.Kind != 0 {
			var s string
			if hc.Healthcheck.Decode(&s) == nil {
				path = s
			} else {
				var o struct {
					Path        string          `yaml:"path"`
					Port        int             `yaml:"port"`
					Interval    copilotDuration `yaml:"interval"`
					Timeout     copilotDuration `yaml:"timeout"`
					GracePeriod copilotDuration `yaml:"grace_period"`
				}
				if err := hc.Healthcheck.Decode(&o); err == nil {
					path = orStr(o.Path, "/")
					if o.Port != 0 {
						port = o.Port
					}
					if o.Interval.d > 0 {
						t.Interval = o.Interval.d
					}
					if o.Timeout.d > 0 {
						t.Timeout = o.Timeout.d
					}
					if o.GracePeriod.d > 0 {
						t.Grace = o.GracePeriod.d
					}
				}
			}
			b.httpCheck(key, probe{Port: port, Path: path, Method: "GET"}, t, nil)
			return
		}
	}
	b.httpCheck(key+" (default)", probe{Port: port, Path: path, Method: "GET"}, t, nil)
	last := &b.rep.Entries[len(b.rep.Entries)-1]
	last.Status = Approximated
	last.Warning = "Copilot's default load balancer check (GET /) made explicit"
}
