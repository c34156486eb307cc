package supervisor

import "testing"

func TestResolvConfNameservers(t *testing.T) {
	t.Parallel()
	got := resolvConf([]string{"fdaa:0:1::1", "172.19.0.1"})
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
