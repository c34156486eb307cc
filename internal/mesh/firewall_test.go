package mesh

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// TestIsolateRules: in a network namespace of its own, Isolate makes its
// table with the rules of docs/mesh.md (read back with nft), a second
// call replaces it (no rule twice), RemoveIsolation deletes it.
func TestIsolateRules(t *testing.T) {
	need(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft command (apt-get install nftables)")
	}
	tag := make([]byte, 3)
	_, _ = rand.Read(tag)
	ns := "xdnsfw-" + hex.EncodeToString(tag)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	iso := Isolation{Bridge: "br-test", Org: netip.MustParsePrefix("fdaa:0:7::/48"), Own: netip.MustParsePrefix("fdaa:0:7:3::/64")}
	list := func() string {
		out, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "nft", "list", "table", "inet", FirewallTable).CombinedOutput()
		if err != nil {
			return "error: " + err.Error() + " " + string(out)
		}
		return string(out)
	}
	for range 2 {
		if err := inNS(t, ns, func() error { return Isolate(iso) }); err != nil {
			t.Fatal(err)
		}
	}
	got := list()
	for _, want := range []string{
		`iifname "hangar-wg" meta nfproto != ipv6 drop`,
		`iifname "hangar-wg" ip6 saddr != fdaa:0:7::/48 drop`,
		`iifname "hangar-wg" ip6 daddr != fdaa:0:7:3::/64 drop`,
		`oifname "hangar-wg" ip6 daddr != fdaa:0:7::/48 drop`,
		`oifname "br-test" iifname != "br-test" iifname != "hangar-wg" meta nfproto ipv6 ct state new drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no rule %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "saddr != fdaa:0:7::/48"); n != 2 {
		t.Errorf("the source rule %d times (want 2: input and forward) after two calls:\n%s", n, got)
	}
	if err := inNS(t, ns, RemoveIsolation); err != nil {
		t.Fatal(err)
	}
	if got := list(); !strings.HasPrefix(got, "error") {
		t.Fatalf("the table is still there:\n%s", got)
	}
}
