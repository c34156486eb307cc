package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/types"
)

// buildSpec turns a machine record into a task spec: the image's process
// with the config's overrides, the environment Fly injects, limits from the
// guest size, the machine's network namespace and its /etc files.
//
// The network namespace is made in the background while the spec is built
// and the driver prepares the task (netReady waits for one the caller has
// started, see startNetwork); the driver waits for it (spec.NetNSReady)
// only before it starts the task's process. The caller must call
// spec.NetNSReady once the driver's Start returned (whether or not the
// driver called it), so that no setup outlives the start.
func (s *Supervisor) buildSpec(ctx context.Context, r *Record, netReady func() error) (spec runtime.Spec, err error) {
	if netReady == nil {
		netReady = s.startNetwork(r)
	}
	if netReady != nil {
		defer func() {
			if err != nil {
				_ = netReady() // never leave the setup running behind a failed start
			}
		}()
	}
	cfg := r.Config
	img, err := s.opt.Images.Get(ctx, cfg.Image)
	if err != nil {
		return runtime.Spec{}, fmt.Errorf("image %q: %w", cfg.Image, err)
	}
	args := processArgs(cfg.Init, img.Config.Entrypoint, img.Config.Cmd)
	if len(args) == 0 {
		return runtime.Spec{}, fmt.Errorf("image %s has no entrypoint or cmd and the config sets none: set init.cmd (fly.toml [processes] or [experimental] cmd): %w", cfg.Image, ErrInvalid)
	}
	guest := types.DefaultGuest
	if cfg.Guest != nil {
		if cfg.Guest.CPUs > 0 {
			guest.CPUs = cfg.Guest.CPUs
		}
		if cfg.Guest.MemoryMB > 0 {
			guest.MemoryMB = cfg.Guest.MemoryMB
		}
		if cfg.Guest.CPUKind != "" {
			guest.CPUKind = cfg.Guest.CPUKind
		}
	}
	nsPath := s.opt.Network.NSPath(r.ID)
	env := s.environment(r, img.Config.Env, guest)
	dir := s.machineDir(r.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return runtime.Spec{}, fmt.Errorf("machine dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), hostsFile(r), 0o644); err != nil {
		return runtime.Spec{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(resolvConf(s.opt.Nameservers, cfg.DNS)), 0o644); err != nil {
		return runtime.Spec{}, err
	}
	logPath := s.LogPath(r.App, r.ID)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return runtime.Spec{}, err
	}
	uid, gid, err := resolveUser(img.RootFS, userFor(cfg, img.Config.User))
	if err != nil {
		return runtime.Spec{}, fmt.Errorf("image %s: %w", cfg.Image, err)
	}
	shares := 1024 * guest.CPUs
	if guest.CPUKind == "shared" {
		shares = 64 * guest.CPUs
	}
	spec = runtime.Spec{
		ID: r.ID, RootFS: img.RootFS, Args: args, Env: env,
		Cwd: img.Config.WorkingDir, UID: uid, GID: gid, Hostname: hostname(r),
		MemoryMB: guest.MemoryMB, CPUs: guest.CPUs, CPUShares: shares,
		NetNSPath: nsPath, NetNSReady: netReady, LogPath: logPath,
		Mounts: []runtime.Mount{
			{Source: filepath.Join(dir, "hosts"), Destination: "/etc/hosts", ReadOnly: true},
			{Source: filepath.Join(dir, "resolv.conf"), Destination: "/etc/resolv.conf", ReadOnly: true},
		},
	}
	spec.LogMaxBytes = s.logMaxBytes.Load()
	for _, hook := range s.opt.SpecHooks {
		if err := hook(ctx, r, &spec); err != nil {
			return runtime.Spec{}, err
		}
	}
	return spec, nil
}

// startNetwork makes the machine's network namespace in the background,
// unless it exists, and returns a function that waits for it to be done
// (any number of times); nil if there is nothing to make.
func (s *Supervisor) startNetwork(r *Record) func() error {
	if s.opt.Network.Exists(r.ID) {
		return nil
	}
	ip4 := net.ParseIP(r.IPv4)
	ip6 := net.ParseIP(r.PrivateIP)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		start := time.Now()
		_, err = s.opt.Network.Setup(r.ID, ip4, ip6)
		s.log.Debug("network namespace made", "machine", r.ID, "took", time.Since(start), "err", err)
	}()
	return func() error {
		<-done
		return err
	}
}

func userFor(cfg *types.MachineConfig, imageUser string) string {
	for _, p := range cfg.Processes {
		if p.UserOverride != "" {
			return p.UserOverride
		}
	}
	return imageUser
}

// processArgs applies Fly's init overrides to the image's entrypoint and cmd:
// exec replaces both; a new entrypoint drops the image's cmd, as Docker does.
func processArgs(init types.MachineInit, entrypoint, cmd []string) []string {
	if len(init.Exec) > 0 {
		return init.Exec
	}
	if len(init.Entrypoint) > 0 {
		entrypoint = init.Entrypoint
		cmd = nil
	}
	if len(init.Cmd) > 0 {
		cmd = init.Cmd
	}
	return append(append([]string{}, entrypoint...), cmd...)
}

func (s *Supervisor) environment(r *Record, imageEnv []string, guest types.MachineGuest) []string {
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, kv := range imageEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for k, v := range r.Config.Env {
		env[k] = v
	}
	for _, p := range r.Config.Processes {
		for k, v := range p.ExtraEnv {
			env[k] = v
		}
		for _, ef := range p.EnvFrom {
			env[ef.EnvVar] = envFromField(r, ef.FieldRef)
		}
	}
	group := r.Config.Metadata[types.MetaProcessGroup]
	if group == "" {
		group = types.DefaultProcessGroup
	}
	imageRef := r.Config.Image
	fly := map[string]string{
		"FLY_APP_NAME":        r.App,
		"FLY_MACHINE_ID":      r.ID,
		"FLY_ALLOC_ID":        r.ID,
		"FLY_REGION":          r.Region,
		"FLY_IMAGE_REF":       imageRef,
		"FLY_MACHINE_VERSION": r.InstanceID,
		"FLY_PRIVATE_IP":      r.PrivateIP,
		"FLY_PROCESS_GROUP":   group,
		"FLY_VM_MEMORY_MB":    strconv.Itoa(guest.MemoryMB),
		"FLY_PUBLIC_IP":       "",
		"FLY_HOST":            "hangar",
	}
	for k, v := range fly {
		env[k] = v
	}
	if _, ok := env["PRIMARY_REGION"]; !ok {
		env["PRIMARY_REGION"] = r.Region
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// resolvConf points machines at the given nameservers (Hangar's DNS on
// the bridge, as Fly points them at fdaa::3); without any, at the host's
// upstream resolvers, unless those are loopback addresses that a machine's
// namespace cannot reach. The machine's dns config, if any, replaces the
// nameservers with its own and adds its search domains and options.
func resolvConf(nameservers []string, dns *types.DNSConfig) string {
	var b strings.Builder
	if dns != nil && len(dns.Nameservers) > 0 {
		nameservers = dns.Nameservers
	}
	if len(nameservers) > 0 {
		for _, ns := range nameservers {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
	} else if f, err := os.Open("/etc/resolv.conf"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "nameserver" {
				if ip := net.ParseIP(fields[1]); ip != nil && !ip.IsLoopback() {
					fmt.Fprintf(&b, "nameserver %s\n", fields[1])
				}
			}
		}
	}
	if dns == nil {
		return b.String()
	}
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Searches, " "))
	}
	if len(dns.Options) > 0 {
		opts := make([]string, 0, len(dns.Options))
		for _, o := range dns.Options {
			if o.Value != "" {
				opts = append(opts, o.Name+":"+o.Value)
			} else {
				opts = append(opts, o.Name)
			}
		}
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return b.String()
}

// hostname is the machine's hostname: config.dns.hostname, else its id.
func hostname(r *Record) string {
	if r.Config != nil && r.Config.DNS != nil && r.Config.DNS.Hostname != "" {
		return r.Config.DNS.Hostname
	}
	return r.ID
}

// envFromField is the value of a machine field an env_from names
// (validated: one of types.EnvFromFields).
func envFromField(r *Record, field string) string {
	switch field {
	case "id":
		return r.ID
	case "version":
		return r.InstanceID
	case "app_name":
		return r.App
	case "private_ip":
		return r.PrivateIP
	case "region":
		return r.Region
	case "image":
		if r.Config != nil {
			return r.Config.Image
		}
	}
	return ""
}

// resolveUser maps an image's "user[:group]" to numeric ids using the
// image's /etc/passwd and /etc/group.
func resolveUser(rootfs, spec string) (uint32, uint32, error) {
	if spec == "" {
		return 0, 0, nil
	}
	user, group, _ := strings.Cut(spec, ":")
	uid, gid := -1, -1
	if n, err := strconv.Atoi(user); err == nil {
		uid = n
	}
	lookup := func(file, name string) (int, int, bool) {
		f, err := os.Open(filepath.Join(rootfs, "etc", file))
		if err != nil {
			return 0, 0, false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.Split(sc.Text(), ":")
			if len(p) >= 4 && (p[0] == name || p[2] == name) {
				a, _ := strconv.Atoi(p[2])
				b, _ := strconv.Atoi(p[3])
				return a, b, true
			}
		}
		return 0, 0, false
	}
	u, g, found := lookup("passwd", user)
	if found {
		uid, gid = u, g
	} else if uid < 0 {
		return 0, 0, fmt.Errorf("user %q is not in the image's /etc/passwd: use a numeric uid", user)
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else if g, _, ok := lookup("group", group); ok {
			gid = g
		} else {
			return 0, 0, fmt.Errorf("group %q is not in the image's /etc/group: use a numeric gid", group)
		}
	}
	if gid < 0 {
		gid = uid
	}
	return uint32(uid), uint32(gid), nil
}

// hostsFile is a machine's /etc/hosts: as on Fly, its id names both of its
// addresses and fly-local-6pn its private IPv6 address (apps bind to it to
// serve only the private network); a dns.hostname and dns.hostname_fqdn
// name them too.
func hostsFile(r *Record) []byte {
	names := r.ID
	if r.Config != nil && r.Config.DNS != nil {
		for _, n := range []string{r.Config.DNS.HostnameFqdn, r.Config.DNS.Hostname} {
			if n != "" && n != r.ID {
				names += " " + n
			}
		}
	}
	return fmt.Appendf(nil, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n%s\tfly-local-6pn\n%s\t%s\n",
		r.PrivateIP, names, r.PrivateIP, r.IPv4, names)
}
