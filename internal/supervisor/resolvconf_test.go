package supervisor

import "testing"

func TestResolvConfNameservers(t *testing.T) {
	t.Parallel()
	got := resolvConf([]string{"fdaa:0:1::1", "172.19.0.1"})
	if want := "nameserver fdaa:0:1::1\nnameserver 172.19.0.1\n"; got != want {
		t.Fatalf("resolv.conf = %q, want %q", got, want)
	}
}
