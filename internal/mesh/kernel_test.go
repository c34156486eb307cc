package mesh

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func testKey(t *testing.T) Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// The configuration builder both implementations share: the set is
// checked, an endpoint is set only when it changed, prefixes are masked,
// peers gone from the set are removed.
func TestPeerChanges(t *testing.T) {
	own, k1, k2, k3 := testKey(t), testKey(t), testKey(t), testKey(t)
	ep1, ep2 := netip.MustParseAddrPort("10.0.0.1:51820"), netip.MustParseAddrPort("10.0.0.2:51820")
	p1 := Peer{Host: "b", PublicKey: k1, Endpoint: ep1, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fdaa:0:1:1::5/64")}, Keepalive: 25 * time.Second}
	p2 := Peer{Host: "c", PublicKey: k2, Endpoint: ep2, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fdaa:0:1:2::/64")}}

	ch, want, err := peerChanges(own, []Peer{p1, p2}, map[Key]netip.AddrPort{k1: ep1}, []Key{k1, k3})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 2 || want[0] != netip.MustParsePrefix("fdaa:0:1:1::/64") || want[1] != netip.MustParsePrefix("fdaa:0:1:2::/64") {
		t.Fatalf("routes %v, want the two /64s, masked", want)
	}
	if len(ch) != 3 {
		t.Fatalf("changes %+v, want b, c and k3 removed", ch)
	}
	if ch[0].Key != k1 || ch[0].Endpoint.IsValid() || ch[0].Keepalive != 25*time.Second || ch[0].AllowedIPs[0] != want[0] {
		t.Errorf("b (endpoint unchanged): %+v, want no endpoint set, keepalive 25s, its /64", ch[0])
	}
	if ch[1].Key != k2 || ch[1].Endpoint != ep2 {
		t.Errorf("c (new): %+v, want its endpoint set", ch[1])
	}
	if ch[2].Key != k3 || !ch[2].Remove {
		t.Errorf("k3 (gone from the set): %+v, want removed", ch[2])
	}

	// The two renderings of the same changes.
	u := uapiConfig(ch)
	wantU := "public_key=" + k1.hex() + "\nreplace_allowed_ips=true\npersistent_keepalive_interval=25\nallowed_ip=fdaa:0:1:1::/64\n" +
		"public_key=" + k2.hex() + "\nendpoint=10.0.0.2:51820\nreplace_allowed_ips=true\nallowed_ip=fdaa:0:1:2::/64\n" +
		"public_key=" + k3.hex() + "\nremove=true\n"
	if u != wantU {
		t.Errorf("UAPI:\n%s\nwant:\n%s", u, wantU)
	}
	kc := kernelConfig(ch)
	if kc.PrivateKey != nil || kc.ListenPort != nil || kc.ReplacePeers || len(kc.Peers) != 3 {
		t.Fatalf("kernel config %+v: want 3 peers changed in place, no key or port", kc)
	}
	b, c, r := kc.Peers[0], kc.Peers[1], kc.Peers[2]
	if b.PublicKey != wgtypes.Key(k1) || b.Endpoint != nil || b.PersistentKeepaliveInterval == nil || *b.PersistentKeepaliveInterval != 25*time.Second ||
		!b.ReplaceAllowedIPs || len(b.AllowedIPs) != 1 || b.AllowedIPs[0].String() != "fdaa:0:1:1::/64" || b.Remove {
		t.Errorf("kernel b: %+v", b)
	}
	if c.Endpoint == nil || c.Endpoint.String() != "10.0.0.2:51820" || c.PersistentKeepaliveInterval != nil {
		t.Errorf("kernel c: %+v", c)
	}
	if r.PublicKey != wgtypes.Key(k3) || !r.Remove || r.AllowedIPs != nil {
		t.Errorf("kernel k3: %+v, want removed", r)
	}

	for name, tc := range map[string][]Peer{
		"own key":   {{Host: "b", PublicKey: own, Endpoint: ep1}},
		"same key":  {p1, {Host: "d", PublicKey: k1, Endpoint: ep2}},
		"endpoint":  {{Host: "b", PublicKey: k1}},
		"overlap":   {p1, {Host: "d", PublicKey: k2, Endpoint: ep2, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fdaa:0:1::/48")}}},
		"overlap64": {p1, {Host: "d", PublicKey: k2, Endpoint: ep2, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fdaa:0:1:1::/64")}}},
	} {
		if _, _, err := peerChanges(own, tc, nil, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// On a kernel without WireGuard (this machine's), Up falls back to
// wireguard-go and says why; with Userspace it does not try the kernel.
// Either way nothing of a kernel link is left, and the interface works
// (a peer is set and read back). On a kernel with WireGuard, Up uses it.
func TestUpKernelOrFallback(t *testing.T) {
	need(t)
	tag := make([]byte, 3)
	_, _ = rand.Read(tag)
	ns := "xhost-wg-" + hex.EncodeToString(tag)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })

	kernelHas := inNS(t, ns, func() error {
		err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: "xhostprobe"}})
		if err == nil {
			l, _ := netlink.LinkByName("xhostprobe")
			_ = netlink.LinkDel(l)
		}
		return err
	}) == nil

	for _, userspace := range []bool{false, true} {
		key, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		var m *Mesh
		if err := inNS(t, ns, func() (err error) {
			m, err = Up(Config{PrivateKey: key, Userspace: userspace, ListenPort: 51999})
			return err
		}); err != nil {
			t.Fatalf("Up (userspace %v): %v", userspace, err)
		}
		switch {
		case userspace:
			if m.Kind() != KindUserspace || m.Fallback() != "" {
				t.Errorf("Userspace asked: kind %s, fallback %q; want userspace, no fallback reason", m.Kind(), m.Fallback())
			}
		case kernelHas:
			if m.Kind() != KindKernel {
				t.Errorf("the kernel has WireGuard: kind %s (fallback %q), want kernel", m.Kind(), m.Fallback())
			}
		default:
			if m.Kind() != KindUserspace || !strings.Contains(m.Fallback(), "wireguard link") {
				t.Errorf("the kernel has no WireGuard: kind %s, fallback %q; want userspace and the kernel's refusal", m.Kind(), m.Fallback())
			}
		}
		if !kernelHas || userspace {
			// What the kernel path would have made is gone; the TUN
			// device is the interface.
			out, _ := exec.Command("ip", "-n", ns, "-d", "link", "show", DefaultDevice).CombinedOutput()
			if strings.Contains(string(out), "wireguard") || !strings.Contains(string(out), "tun") {
				t.Errorf("the interface: %s; want the userspace TUN device", out)
			}
		}
		peer := Peer{Host: "b", PublicKey: testKey(t), Endpoint: netip.MustParseAddrPort("10.9.0.2:51820"),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fdaa:0:1:7::/64")}, Keepalive: 25 * time.Second}
		if err := m.SetPeers([]Peer{peer}); err != nil {
			t.Fatalf("SetPeers (%s): %v", m.Kind(), err)
		}
		st, err := m.Status()
		if err != nil || len(st) != 1 || st[0].PublicKey != peer.PublicKey || len(st[0].AllowedIPs) != 1 || st[0].AllowedIPs[0] != peer.AllowedIPs[0] {
			t.Fatalf("status (%s): %+v %v", m.Kind(), st, err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		// The interface is gone after Close.
		err = inNS(t, ns, func() error {
			_, err := net.InterfaceByName(DefaultDevice)
			return err
		})
		if err == nil {
			t.Fatalf("%s interface left after Close", m.Kind())
		}
	}
}
