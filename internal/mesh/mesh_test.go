package mesh

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// host is one side of the two-host test: a network namespace joined to
// the other by a veth pair (the "network between hosts").
type host struct {
	ns      string
	underIP netip.Addr
	subnet  netip.Prefix
	addr    netip.Addr // the host's own address in its /64, on the interface
	mesh    *Mesh
}

func need(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUN devices)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (apt-get install iproute2)")
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNS runs fn on a thread in the named network namespace. Sockets and
// devices fn makes stay in that namespace.
func inNS(t *testing.T, name string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked (never unlocked): Go then discards
		// it instead of reusing a thread in another namespace.
		runtime.LockOSThread()
		ns, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// twoHosts makes two namespaces linked by a veth pair, each with a mesh
// interface up and no peers. Everything is removed when the test ends.
func twoHosts(t *testing.T) (a, b *host) {
	t.Helper()
	need(t)
	tag := make([]byte, 3)
	_, _ = rand.Read(tag)
	id := hex.EncodeToString(tag)
	a = &host{ns: "hgmesh-" + id + "-a", underIP: netip.MustParseAddr("10.231.0.1")}
	b = &host{ns: "hgmesh-" + id + "-b", underIP: netip.MustParseAddr("10.231.0.2")}
	for i, h := range []*host{a, b} {
		run(t, "ip", "netns", "add", h.ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", h.ns).Run() })
		h.subnet, _ = SubnetOf(org, i+1)
		h.addr = h.subnet.Addr().Next()
	}
	va, vb := "hgm"+id+"a", "hgm"+id+"b"
	run(t, "ip", "link", "add", va, "netns", a.ns, "type", "veth", "peer", "name", vb, "netns", b.ns)
	for _, x := range []struct {
		h   *host
		dev string
	}{{a, va}, {b, vb}} {
		run(t, "ip", "-n", x.h.ns, "addr", "add", x.h.underIP.String()+"/24", "dev", x.dev)
		run(t, "ip", "-n", x.h.ns, "link", "set", x.dev, "up")
		run(t, "ip", "-n", x.h.ns, "link", "set", "lo", "up")
	}
	for _, h := range []*host{a, b} {
		key, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		err = inNS(t, h.ns, func() error {
			m, err := Up(Config{PrivateKey: key, Addresses: []netip.Prefix{netip.PrefixFrom(h.addr, 128)}})
			h.mesh = m
			return err
		})
		if err != nil {
			t.Fatalf("mesh up in %s: %v", h.ns, err)
		}
		t.Cleanup(func() { h.mesh.Close() })
	}
	return a, b
}

func peerOf(h *host) Peer {
	return Peer{Host: h.ns, PublicKey: h.mesh.PublicKey(), Endpoint: netip.AddrPortFrom(h.underIP, DefaultPort), AllowedIPs: []netip.Prefix{h.subnet}}
}

// exchange listens on b's mesh address, dials it from a, and sends a
// message through; it returns what b received or the error.
func exchange(t *testing.T, a, b *host, msg string, timeout time.Duration) (string, error) {
	t.Helper()
	var ln net.Listener
	if err := inNS(t, b.ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(b.addr, 7000).String())
		return err
	}); err != nil {
		return "", fmt.Errorf("listen in %s: %w", b.ns, err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- ""
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		data, _ := io.ReadAll(c)
		got <- string(data)
	}()
	var c net.Conn
	if err := inNS(t, a.ns, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial("tcp", netip.AddrPortFrom(b.addr, 7000).String())
		return err
	}); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, msg); err != nil {
		c.Close()
		return "", err
	}
	c.Close()
	select {
	case s := <-got:
		return s, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("nothing received in %s", timeout)
	}
}

// TestMeshConnectsTwoHosts: two hosts with only each other's public keys
// and endpoints reach each other's /64 through the mesh; WireGuard
// records the handshake and traffic; removing the peer removes the route
// and cuts the traffic; a peer configured with the wrong key never
// connects.
func TestMeshConnectsTwoHosts(t *testing.T) {
	a, b := twoHosts(t)
	if _, err := exchange(t, a, b, "before peers", time.Second); err == nil {
		t.Fatal("reached the other host before any peer was set")
	}
	if err := a.mesh.SetPeers([]Peer{peerOf(b)}); err != nil {
		t.Fatal(err)
	}
	if err := b.mesh.SetPeers([]Peer{peerOf(a)}); err != nil {
		t.Fatal(err)
	}
	got, err := exchange(t, a, b, "hello over the mesh", 10*time.Second)
	if err != nil || got != "hello over the mesh" {
		t.Fatalf("a → b over the mesh: %q %v", got, err)
	}
	st, err := a.mesh.Status()
	if err != nil || len(st) != 1 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if st[0].PublicKey != b.mesh.PublicKey() || st[0].LastHandshake.IsZero() || st[0].TxBytes == 0 || st[0].RxBytes == 0 {
		t.Fatalf("a's view of b: %+v (want b's key, a handshake, bytes both ways)", st[0])
	}
	if len(st[0].AllowedIPs) != 1 || st[0].AllowedIPs[0] != b.subnet {
		t.Fatalf("allowed IPs %v, want %v", st[0].AllowedIPs, b.subnet)
	}
	routes, _ := exec.Command("ip", "-n", a.ns, "-6", "route", "show", "dev", DefaultDevice).CombinedOutput()
	if !strings.Contains(string(routes), b.subnet.String()) {
		t.Fatalf("a's routes through the mesh: %s; want %s", routes, b.subnet)
	}
	// b's own address (::1 of its /64) is a peer host for a; b's
	// machines' addresses, a's own and addresses outside are not.
	bHost := b.subnet.Masked().Addr().Next()
	if !a.mesh.PeerHost(bHost) {
		t.Errorf("PeerHost(%s), b's own address: false, want true", bHost)
	}
	for _, x := range []netip.Addr{bHost.Next(), a.subnet.Masked().Addr().Next(), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fdaa:9::1")} {
		if a.mesh.PeerHost(x) {
			t.Errorf("PeerHost(%s): true, want false", x)
		}
	}

	// Peer removed: its route goes, traffic stops.
	if err := a.mesh.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	routes, _ = exec.Command("ip", "-n", a.ns, "-6", "route", "show", "dev", DefaultDevice).CombinedOutput()
	if strings.Contains(string(routes), b.subnet.String()) {
		t.Fatalf("route to a removed peer left: %s", routes)
	}
	if _, err := exchange(t, a, b, "after removal", time.Second); err == nil {
		t.Fatal("reached b after removing it as a peer")
	}
	if a.mesh.PeerHost(bHost) {
		t.Error("PeerHost of a removed peer: true, want false")
	}

	// A wrong public key for b: the handshake never completes.
	wrong, _ := GenerateKey()
	p := peerOf(b)
	p.PublicKey = wrong.Public()
	if err := a.mesh.SetPeers([]Peer{p}); err != nil {
		t.Fatal(err)
	}
	if _, err := exchange(t, a, b, "wrong key", 2*time.Second); err == nil {
		t.Fatal("reached b with a wrong key for it")
	}
	st, _ = a.mesh.Status()
	if len(st) != 1 || !st[0].LastHandshake.IsZero() {
		t.Fatalf("a handshake with a wrong key: %+v", st)
	}
}

func TestSetPeersRefusesBadSets(t *testing.T) {
	a, b := twoHosts(t)
	own := peerOf(a)
	if err := a.mesh.SetPeers([]Peer{own}); err == nil || !strings.Contains(err.Error(), "own public key") {
		t.Fatalf("own key as a peer: %v", err)
	}
	pb := peerOf(b)
	dup := pb
	dup.Host = "other"
	if err := a.mesh.SetPeers([]Peer{pb, dup}); err == nil || !strings.Contains(err.Error(), "same public key") {
		t.Fatalf("duplicate key: %v", err)
	}
	k, _ := GenerateKey()
	overlap := Peer{Host: "c", PublicKey: k.Public(), Endpoint: netip.MustParseAddrPort("10.231.0.3:51820"), AllowedIPs: []netip.Prefix{b.subnet}}
	if err := a.mesh.SetPeers([]Peer{pb, overlap}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("overlapping prefixes: %v", err)
	}
	noEP := pb
	noEP.Endpoint = netip.AddrPort{}
	if err := a.mesh.SetPeers([]Peer{noEP}); err == nil || !strings.Contains(err.Error(), "no endpoint") {
		t.Fatalf("no endpoint: %v", err)
	}
}

// TestSetPeersKeepsSessions: a host joining (a new peer in the set) does
// not touch the session with a peer that stays: same handshake, its byte
// counts go on (SetPeers with replace_peers recreated every peer, which
// cut the traffic between the hosts that stay).
func TestSetPeersKeepsSessions(t *testing.T) {
	a, b := twoHosts(t)
	if err := a.mesh.SetPeers([]Peer{peerOf(b)}); err != nil {
		t.Fatal(err)
	}
	if err := b.mesh.SetPeers([]Peer{peerOf(a)}); err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(t, a, b, "before the join", 10*time.Second); err != nil || got != "before the join" {
		t.Fatalf("a → b: %q %v", got, err)
	}
	before, err := a.mesh.Status()
	if err != nil || len(before) != 1 || before[0].LastHandshake.IsZero() {
		t.Fatalf("status: %+v %v", before, err)
	}
	k, _ := GenerateKey()
	joined := Peer{Host: "c", PublicKey: k.Public(), Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fdaa:0:99::/64")}}
	if err := a.mesh.SetPeers([]Peer{peerOf(b), joined}); err != nil {
		t.Fatal(err)
	}
	after, err := a.mesh.Status()
	if err != nil || len(after) != 2 {
		t.Fatalf("status after the join: %+v %v", after, err)
	}
	for _, p := range after {
		if p.PublicKey == b.mesh.PublicKey() && (!p.LastHandshake.Equal(before[0].LastHandshake) || p.TxBytes < before[0].TxBytes) {
			t.Fatalf("b's session changed when c joined: before %+v, after %+v", before[0], p)
		}
	}
	if got, err := exchange(t, a, b, "after the join", 10*time.Second); err != nil || got != "after the join" {
		t.Fatalf("a → b after c joined: %q %v", got, err)
	}
	// c leaves: removed, b stays.
	if err := a.mesh.SetPeers([]Peer{peerOf(b)}); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.mesh.Status(); len(st) != 1 || st[0].PublicKey != b.mesh.PublicKey() {
		t.Fatalf("after c left: %+v", st)
	}
}
