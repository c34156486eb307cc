package importer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	ctypes "github.com/compose-spec/compose-go/v2/types"
)

// One compose service becomes a process group: command, env and env_file,
// build, deploy resources and replicas.

// composeKeys lists the keys set on a service, from its struct tags.
func composeKeys(s ctypes.ServiceConfig) []string {
	var keys []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name := strings.Split(tag, ",")[0]
			if strings.Contains(tag, "inline") && f.Type.Kind() == reflect.Struct {
				walk(v.Field(i))
				continue
			}
			if name == "" || name == "-" || strings.HasPrefix(name, "#") || !f.IsExported() {
				continue
			}
			if !v.Field(i).IsZero() {
				keys = append(keys, name)
			}
		}
	}
	walk(reflect.ValueOf(s))
	sort.Strings(keys)
	return keys
}

func convertComposeService(b *builder, proj *ctypes.Project, dir string, u *composeUnit, hosts map[string]string, units map[string]*composeUnit) {
	s := u.svc
	k := func(key string) string { return "services." + s.Name + "." + key }
	c := b.cfg()
	env := map[string]string{}
	for n, v := range s.Environment {
		if v != nil {
			env[n] = *v
		}
	}
	keys := composeKeys(s)
	has := map[string]bool{}
	for _, key := range keys {
		has[key] = true
	}
	// Image and build first: checks and cron commands refer to them.
	if s.Build != nil {
		composeBuild(b, dir, s, k("build"))
		if s.Image != "" {
			b.approx(k("image"), "", "image %q names the image that build produces; the platform names its own", s.Image)
		}
	} else if s.Image != "" {
		c.Build = &FlyBuild{Image: s.Image}
		b.mapped(k("image"), "[build] image")
	} else {
		b.none(k("image"), "the service has neither image nor build: set [build] by hand")
	}
	// Service-level sizes, unless deploy.resources says more.
	if (has["cpus"] || has["mem_limit"] || has["cpu_count"]) && (s.Deploy == nil || (s.Deploy.Resources.Limits == nil && s.Deploy.Resources.Reservations == nil)) {
		cpus := float64(s.CPUS)
		if s.CPUCount > 0 {
			cpus = float64(s.CPUCount)
		}
		key := "cpus"
		if has["mem_limit"] {
			key = "mem_limit"
		}
		b.size(k(key), cpus, int(int64(s.MemLimit)/(1<<20)), u.procs())
	}
	// Ports decide the http_service, which checks attach to.
	composePorts(b, s, k, u)
	for _, key := range keys {
		kk := k(key)
		switch key {
		case "name", "image", "build", "ports", "expose":
		case "command":
			cmd := shellJoin(s.Command)
			b.process(u.pg(), cmd)
			b.mapped(kk, "[processes] "+u.pg())
		case "entrypoint":
			c.Experimental = &FlyExperimental{Entrypoint: s.Entrypoint}
			b.approx(kk, "[experimental] entrypoint", "entrypoint override is an experimental fly.toml key")
		case "environment":
			for _, n := range sortedKeys(s.Environment) {
				v := s.Environment[n]
				ek := kk + "." + n
				if v == nil {
					b.secret(ek, n, "", "the value comes from the shell that runs compose")
					continue
				}
				nv, hit := rewriteHosts(*v, hosts)
				if len(hit) > 0 {
					b.env(ek, n, nv)
					last := &b.rep.Entries[len(b.rep.Entries)-1]
					last.Status = Approximated
					w := fmt.Sprintf("host %s rewritten to its app's private address", strings.Join(hit, ", "))
					if last.Warning != "" {
						last.Warning = w + "; " + last.Warning
					} else {
						last.Warning = w
					}
					if looksSecret(n, *v) && b.opts.IncludeSecretValues {
						b.app.Secrets[b.secrets[n]].Value = nv
					}
					continue
				}
				b.env(ek, n, *v)
			}
		case "env_file":
			for _, ef := range s.EnvFiles {
				p := ef.Path
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				vals, err := readDotenv(p)
				if err != nil {
					if bool(ef.Required) {
						b.none(kk, "env_file %s could not be read (%v): its variables were not imported; add them with `hangar secrets set`", ef.Path, err)
					} else {
						b.mapped(kk, "(optional file absent)")
					}
					continue
				}
				for _, n := range sortedKeys(vals) {
					if _, dup := s.Environment[n]; dup {
						continue
					}
					b.secret(kk+"."+n, n, vals[n], "from env_file "+ef.Path)
				}
			}
		case "healthcheck":
			composeHealth(b, kk, s, env, u)
		case "volumes":
			composeVolumes(b, proj, dir, kk, s, u)
		case "deploy":
			composeDeploy(b, kk, s, u)
		case "scale":
			b.count(kk, u.group, *s.Scale)
		case "cpus", "mem_limit", "cpu_count":
			// handled before the loop
		case "mem_reservation", "cpu_shares", "cpu_quota", "cpu_period", "cpuset", "memswap_limit", "mem_swappiness", "pids_limit", "shm_size", "oom_kill_disable", "oom_score_adj", "blkio_config", "cpu_percent", "cpu_rt_period", "cpu_rt_runtime", "ulimits":
			b.none(kk, "fine-grained resource control has no equivalent; size machines with [[vm]]")
		case "restart":
			b.restart(kk, s.Restart, 0, u.procs())
		case "depends_on":
			for _, dep := range sortedKeys(s.DependsOn) {
				d := s.DependsOn[dep]
				target := hosts[dep]
				if target == "" {
					b.none(kk+"."+dep, "depends on %s, which is not converted (disabled, unknown, or a log router)", dep)
					continue
				}
				w := fmt.Sprintf("%s is a separate app reachable at %s; apps start independently, so the app must retry until it is up", dep, target)
				if d.Condition == ctypes.ServiceConditionHealthy || d.Condition == ctypes.ServiceConditionCompletedSuccessfully {
					w += fmt.Sprintf(" (condition %s is not enforced)", d.Condition)
				}
				b.approx(kk+"."+dep, "", "%s", w)
			}
		case "links":
			b.approx(kk, "<app>.internal", "links are not needed: every app is reachable at <app>.internal on the private network")
		case "external_links":
			b.none(kk, "containers outside the project are not reachable; point the app at their new addresses")
		case "networks":
			only := len(s.Networks) == 1 && s.Networks["default"] == nil
			if _, ok := s.Networks["default"]; ok && only {
				b.mapped(kk, "private network")
			} else {
				b.approx(kk, "private network", "all apps share one private network; network names, aliases (rewritten where used in env), static IPs and isolation are not kept")
			}
		case "network_mode":
			b.none(kk, "network_mode %q has no equivalent: every machine has its own private IPv6 address", s.NetworkMode)
		case "container_name", "hostname":
			b.approx(kk, "<app>.internal", "reach this service at %s.internal; references in other services' env were rewritten", b.app.Name)
		case "stop_grace_period":
			c.KillTimeout = time.Duration(*s.StopGracePeriod).String()
			b.mapped(kk, "kill_timeout")
		case "stop_signal":
			c.KillSignal = strings.ToUpper(s.StopSignal)
			if !strings.HasPrefix(c.KillSignal, "SIG") {
				c.KillSignal = "SIG" + c.KillSignal
			}
			b.mapped(kk, "kill_signal")
		case "secrets":
			composeSecretFiles(b, proj, dir, kk, s.Secrets, "/run/secrets/", true)
		case "configs":
			composeSecretFiles(b, proj, dir, kk, ctypesConfigs(s.Configs), "/", false)
		case "logging", "log_driver", "log_opt":
			b.none(kk, "log drivers are not configurable: stdout/stderr go to `hangar logs`; ship them with a log shipper app")
		case "labels", "annotations", "label_file":
			b.none(kk, "labels have no equivalent (reverse-proxy labels such as Traefik's are replaced by [http_service])")
		case "profiles":
			b.mapped(kk, "(profile enabled)")
		case "extends":
			b.mapped(kk, "(resolved)")
		case "platform":
			b.approx(kk, "", "machines run linux/amd64 unless the host is arm64; build the image for the host's architecture")
		case "develop", "pull_policy", "attach", "stdin_open", "tty", "pull_refresh_after":
			b.none(kk, "development-time option; ignored")
		case "privileged", "cap_add", "cap_drop", "security_opt", "devices", "device_cgroup_rules", "sysctls", "userns_mode", "ipc", "pid", "uts", "cgroup", "cgroup_parent", "runtime", "isolation", "group_add", "use_api_socket", "credential_spec", "storage_opt", "read_only", "init", "gpus":
			b.none(kk, "container runtime option with no equivalent; machines run unprivileged with their own kernel namespace")
		case "working_dir", "user", "domainname", "mac_address", "umask":
			b.none(kk, "set it in the Dockerfile (WORKDIR / USER) instead")
		case "dns", "dns_opt", "dns_search", "extra_hosts":
			b.none(kk, "name resolution is the platform's (*.internal); put extra hosts in the image or the app's config")
		case "tmpfs":
			b.approx(kk, "", "the machine's root filesystem is already discarded on every deploy; no tmpfs is mounted")
		case "volumes_from", "volume_driver":
			b.none(kk, "machines cannot share volumes")
		case "post_start", "pre_stop", "pre_start":
			b.none(kk, "lifecycle hooks have no equivalent; run them from the image's entrypoint")
		default:
			b.none(kk, "no equivalent; ignored")
		}
	}
	if u.db != "" {
		b.persist = redisPersistence(s.Command)
		b.databaseApp(k("image"), u.db, u.port, len(c.Mounts) > 0)
	}
	if u.group != "" && len(s.Command) == 0 {
		// The image's own command; flyctl runs the image CMD for "".
		b.process(u.group, "")
	}
	if c.HTTPService != nil && len(c.Processes) > 0 && len(c.HTTPService.Processes) == 0 && len(u.svc.Ports) > 0 {
		c.HTTPService.Processes = []string{u.pg()}
	}
}

func ctypesConfigs(cs []ctypes.ServiceConfigObjConfig) []ctypes.ServiceSecretConfig {
	out := make([]ctypes.ServiceSecretConfig, len(cs))
	for i, c := range cs {
		out[i] = ctypes.ServiceSecretConfig(c)
	}
	return out
}

func readDotenv(p string) (map[string]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 1<<20 {
		return nil, errors.New("not a regular file of at most 1 MiB")
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return dotenv.ParseWithLookup(io.LimitReader(f, 1<<20), func(string) (string, bool) { return "", false })
}

func composeBuild(b *builder, dir string, s ctypes.ServiceConfig, key string) {
	bc := s.Build
	ctxDir := bc.Context
	if ctxDir == "" {
		ctxDir = "."
	}
	df := bc.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	fb := &FlyBuild{Target: bc.Target}
	if strings.Contains(ctxDir, "://") || strings.HasPrefix(ctxDir, "git@") {
		fb.Dockerfile = df
		b.approx(key+".context", "[build] dockerfile", "remote build context %s: clone it and deploy from there", ctxDir)
	} else if ctx := filepath.Clean(ctxDir); ctx != "." && filepath.IsLocal(ctx) && !filepath.IsAbs(df) {
		// The config goes in the build context (hangar deploy builds in
		// the config's directory); the Dockerfile is relative to it, as
		// in compose.
		fb.Dockerfile = filepath.ToSlash(filepath.Clean(df))
		b.app.Context = ctx
		b.mapped(key+".context", "fly.toml written in "+filepath.ToSlash(ctx)+"/ (the build context)")
	} else {
		fb.Dockerfile = filepath.ToSlash(filepath.Clean(filepath.Join(ctxDir, df)))
		if filepath.IsAbs(df) {
			fb.Dockerfile = filepath.ToSlash(df)
		}
		if ctx != "." {
			b.approx(key+".context", "[build] dockerfile", "build context %s is outside the compose file's directory: run `hangar deploy` with that directory as the build context (COPY paths in the Dockerfile are relative to it)", ctxDir)
		} else {
			b.mapped(key+".context", "[build] dockerfile")
		}
	}
	if bc.DockerfileInline != "" {
		b.none(key+".dockerfile_inline", "inline Dockerfiles are not supported: write it to a Dockerfile")
	}
	if bc.Target != "" {
		b.mapped(key+".target", "[build] build-target")
	}
	for _, n := range sortedKeys(bc.Args) {
		if fb.Args == nil {
			fb.Args = map[string]string{}
		}
		if v := bc.Args[n]; v != nil {
			fb.Args[n] = *v
		} else {
			fb.Args[n] = ""
		}
	}
	if len(bc.Args) > 0 {
		b.mapped(key+".args", "[build.args]")
	}
	for _, x := range []struct {
		name string
		set  bool
	}{{"cache_from", len(bc.CacheFrom) > 0}, {"cache_to", len(bc.CacheTo) > 0}, {"ssh", len(bc.SSH) > 0}, {"secrets", len(bc.Secrets) > 0}, {"additional_contexts", len(bc.AdditionalContexts) > 0}, {"platforms", len(bc.Platforms) > 0}, {"network", bc.Network != ""}, {"extra_hosts", len(bc.ExtraHosts) > 0}, {"labels", len(bc.Labels) > 0}, {"tags", len(bc.Tags) > 0}, {"shm_size", bc.ShmSize != 0}, {"privileged", bc.Privileged}} {
		if x.set {
			b.none(key+"."+x.name, "build option with no [build] equivalent; ignored")
		}
	}
	b.cfg().Build = fb
}

func composeDeploy(b *builder, key string, s ctypes.ServiceConfig, u *composeUnit) {
	d := s.Deploy
	if d.Replicas != nil && s.Scale == nil {
		b.count(key+".replicas", u.group, *d.Replicas)
	}
	if d.Mode == "global" || d.Mode == "global-job" {
		b.none(key+".mode", "mode %s (one per node) has no equivalent; use `hangar scale count` per region", d.Mode)
	}
	if l := d.Resources.Limits; l != nil && (l.NanoCPUs > 0 || l.MemoryBytes > 0) {
		b.size(key+".resources.limits", float64(l.NanoCPUs), int(int64(l.MemoryBytes)/(1<<20)), u.procs())
	} else if r := d.Resources.Reservations; r != nil && (r.NanoCPUs > 0 || r.MemoryBytes > 0) {
		b.size(key+".resources.reservations", float64(r.NanoCPUs), int(int64(r.MemoryBytes)/(1<<20)), u.procs())
	}
	for _, r := range []*ctypes.Resource{d.Resources.Limits, d.Resources.Reservations} {
		if r != nil && len(r.Devices) > 0 {
			b.none(key+".resources.reservations.devices", "device reservations (GPUs) are not mapped: pick a GPU size with `hangar scale vm` (a100-40gb, l40s, ...)")
			break
		}
	}
	if rp := d.RestartPolicy; rp != nil {
		retries := 0
		if rp.MaxAttempts != nil {
			retries = int(*rp.MaxAttempts)
		}
		cond := rp.Condition
		if cond == "any" || cond == "" {
			cond = "always"
		} else if cond == "none" {
			cond = "no"
		}
		b.restart(key+".restart_policy", cond, retries, u.procs())
	}
	if d.UpdateConfig != nil || d.RollbackConfig != nil {
		b.approx(key+".update_config", "[deploy] strategy", "rolling deploys are the default; parallelism, delay and order are not kept")
	}
	if len(d.Placement.Constraints) > 0 || len(d.Placement.Preferences) > 0 {
		b.none(key+".placement", "placement constraints have no equivalent; use --region")
	}
	if len(d.Labels) > 0 {
		b.none(key+".labels", "labels have no equivalent")
	}
	if d.EndpointMode != "" {
		b.none(key+".endpoint_mode", "the proxy load-balances; endpoint_mode is not configurable")
	}
}
