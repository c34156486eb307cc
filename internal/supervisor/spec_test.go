package supervisor

import (
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

func TestResolvConfNameservers(t *testing.T) {
	t.Parallel()
	got := resolvConf([]string{"fdaa:0:1::1", "172.19.0.1"}, nil)
	if want := "nameserver fdaa:0:1::1\nnameserver 172.19.0.1\n"; got != want {
		t.Fatalf("resolv.conf = %q, want %q", got, want)
	}
}

func TestHostsFileNamesFlyLocal6PN(t *testing.T) {
	t.Parallel()
	r := &Record{App: "a"}
	r.ID, r.PrivateIP, r.IPv4 = "m1", "fdaa:0:1::5", "172.19.0.5"
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfdaa:0:1::5\tm1\nfdaa:0:1::5\tfly-local-6pn\n172.19.0.5\tm1\n"
	if got := string(hostsFile(r)); got != want {
		t.Fatalf("/etc/hosts = %q, want %q", got, want)
	}
}

// TestMachineDNSConfig: config.dns's nameservers replace the daemon's in
// resolv.conf, its searches and options are added, and its hostname and
// hostname_fqdn name the machine's addresses in /etc/hosts.
func TestMachineDNSConfig(t *testing.T) {
	t.Parallel()
	dns := &types.DNSConfig{Nameservers: []string{"1.1.1.1", "2606:4700::1111"}, Searches: []string{"corp.example", "example"},
		Options: []types.DNSOption{{Name: "ndots", Value: "2"}, {Name: "edns0"}}, Hostname: "web-1", HostnameFqdn: "web-1.corp.example"}
	got := resolvConf([]string{"fdaa:0:1::1"}, dns)
	if want := "nameserver 1.1.1.1\nnameserver 2606:4700::1111\nsearch corp.example example\noptions ndots:2 edns0\n"; got != want {
		t.Fatalf("resolv.conf = %q, want %q", got, want)
	}
	if got := resolvConf([]string{"fdaa:0:1::1"}, &types.DNSConfig{Searches: []string{"s"}}); got != "nameserver fdaa:0:1::1\nsearch s\n" {
		t.Fatalf("searches only: %q", got)
	}
	r := &Record{App: "a"}
	r.ID, r.PrivateIP, r.IPv4 = "m1", "fdaa:0:1::5", "172.19.0.5"
	r.Config = &types.MachineConfig{DNS: dns}
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfdaa:0:1::5\tm1 web-1.corp.example web-1\nfdaa:0:1::5\tfly-local-6pn\n172.19.0.5\tm1 web-1.corp.example web-1\n"
	if got := string(hostsFile(r)); got != want {
		t.Fatalf("/etc/hosts = %q, want %q", got, want)
	}
	if hostname(r) != "web-1" {
		t.Fatalf("hostname %q", hostname(r))
	}
}

// TestEnvFrom: processes[].env_from sets variables from the machine's
// fields.
func TestEnvFrom(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	r := &Record{App: "a"}
	r.ID, r.PrivateIP, r.Region, r.InstanceID = "m1", "fdaa:0:1::5", "tst", "01VER"
	r.Config = &types.MachineConfig{Image: "img:1", Processes: []types.MachineProcess{{EnvFrom: []types.EnvFrom{
		{EnvVar: "MID", FieldRef: "id"}, {EnvVar: "VER", FieldRef: "version"}, {EnvVar: "APP", FieldRef: "app_name"},
		{EnvVar: "IP", FieldRef: "private_ip"}, {EnvVar: "REG", FieldRef: "region"}, {EnvVar: "IMG", FieldRef: "image"}}}}}
	env := map[string]bool{}
	for _, kv := range s.environment(r, nil, types.DefaultGuest) {
		env[kv] = true
	}
	for _, want := range []string{"MID=m1", "VER=01VER", "APP=a", "IP=fdaa:0:1::5", "REG=tst", "IMG=img:1"} {
		if !env[want] {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
}

// TestImageRefHasARegistry: image_ref.registry is never empty, so clients
// that join registry/repository:tag@digest get a usable name.
func TestImageRefHasARegistry(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]types.ImageRef{
		"web:deployment-1":                    {Registry: types.LocalRegistry, Repository: "web", Tag: "deployment-1"},
		"index.docker.io/library/alpine:3.20": {Registry: "index.docker.io", Repository: "library/alpine", Tag: "3.20"},
		"localhost:5000/team/app:v2":          {Registry: "localhost:5000", Repository: "team/app", Tag: "v2"},
	} {
		got := imageRef(&types.Image{Ref: ref, Digest: "sha256:ab"})
		want.Digest = "sha256:ab"
		if got.Registry != want.Registry || got.Repository != want.Repository || got.Tag != want.Tag || got.Digest != want.Digest {
			t.Errorf("%s: %+v, want %+v", ref, got, want)
		}
	}
}
