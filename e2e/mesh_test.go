package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
)

// TestMeshBetweenHosts: two hosts in network namespaces of their own make
// a cluster (a: --cluster-init, b: --join with a token) and so join the
// WireGuard mesh: each gets its own /64 of the cluster's 6PN /48 (the
// first keeps its --subnet6), a userspace WireGuard interface with the
// other as its only peer and a route to the other's /64; a connection
// from host a to an address of host b's machine bridge goes through the
// mesh (and WireGuard counts the bytes), and with b's link to the other
// hosts cut, it does not.
func TestMeshBetweenHosts(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "iad"}},
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			args := []string{"--member-name", h.Name, "--advertise-addr", h.Addr}
			if h.Name == "a" {
				return append(args, "--cluster-init")
			}
			out, err := c.Host("a").CLI("cluster", "join-token")
			if err != nil {
				t.Fatalf("join-token on a: %v\n%s", err, out)
			}
			token := ""
			for _, f := range strings.Fields(out) {
				if strings.HasPrefix(f, "hj1_") {
					token = f
				}
			}
			return append(args, "--join", "https://"+net.JoinHostPort(c.Host("a").Addr, "4281"), "--join-token", token)
		},
	})
	a, b := c.Host("a"), c.Host("b")

	// Each host's machine bridge holds ::1 of the /64 the mesh gave it.
	bridge6 := func(h *harness.Host) netip.Prefix {
		t.Helper()
		out, err := h.Command("ip", "-j", "-6", "addr", "show", "scope", "global").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ip addr: %v\n%s", h.Name, err, out)
		}
		var ifs []struct {
			Ifname   string `json:"ifname"`
			AddrInfo []struct {
				Local     string `json:"local"`
				Prefixlen int    `json:"prefixlen"`
			} `json:"addr_info"`
		}
		if err := json.Unmarshal(out, &ifs); err != nil {
			t.Fatal(err)
		}
		for _, i := range ifs {
			for _, ai := range i.AddrInfo {
				if strings.HasPrefix(ai.Local, "fdaa:") && ai.Prefixlen == 64 {
					return netip.PrefixFrom(netip.MustParseAddr(ai.Local), 64)
				}
			}
		}
		t.Fatalf("%s has no fdaa: /64 address:\n%s", h.Name, out)
		return netip.Prefix{}
	}
	pa, pb := bridge6(a), bridge6(b)
	if pa.Masked() == pb.Masked() {
		t.Fatalf("both hosts have %s", pa.Masked())
	}
	orgA := netip.PrefixFrom(pa.Addr(), 48).Masked()
	if !orgA.Contains(pb.Addr()) {
		t.Fatalf("b's /64 %s is not in the cluster's /48 %s (a's)", pb.Masked(), orgA)
	}

	wgShow := func(h *harness.Host) string {
		out, _ := h.Command("ip", "-6", "route", "show", "dev", "hangar-wg").CombinedOutput()
		return string(out)
	}
	harness.Poll(t, "a routes b's /64 through the mesh", 30*time.Second, func() (bool, string) {
		r := wgShow(a)
		return strings.Contains(r, pb.Masked().String()), r
	})
	harness.Poll(t, "b routes a's /64 through the mesh", 30*time.Second, func() (bool, string) {
		r := wgShow(b)
		return strings.Contains(r, pa.Masked().String()), r
	})

	// A listener on b's bridge address; a dials it from its namespace.
	ln, err := b.Listen("tcp", net.JoinHostPort(pb.Addr().String(), "7100"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(conn)
			got <- fmt.Sprintf("%s from %s", b, conn.RemoteAddr())
			conn.Close()
		}
	}()
	send := func(msg string) error {
		conn, err := a.DialTimeout("tcp", net.JoinHostPort(pb.Addr().String(), "7100"), 3*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = io.WriteString(conn, msg)
		return err
	}
	harness.Poll(t, "a reaches b's bridge over the mesh", 30*time.Second, func() (bool, string) {
		err := send("over the mesh")
		return err == nil, fmt.Sprint(err)
	})
	select {
	case s := <-got:
		// The source is a's own /64: 6PN addresses are kept, not
		// masqueraded.
		if want := "over the mesh from [" + pa.Addr().String() + "]:"; !strings.HasPrefix(s, want) {
			t.Fatalf("b got %q; want %q… (a's bridge address, not masqueraded)", s, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b received nothing")
	}

	// The bytes went through WireGuard: its UDP port on the fabric.
	out, err := a.Command("ss", "-u", "-a", "-n").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ":51820") {
		t.Fatalf("no WireGuard socket on a: %v\n%s", err, out)
	}

	c.LinkDown("b")
	if err := send("cut"); err == nil {
		select {
		case s := <-got:
			t.Fatalf("b received %q with its link down", s)
		case <-time.After(3 * time.Second):
		}
	}
	c.LinkUp("b")
	harness.Poll(t, "the mesh again after the link is back", 60*time.Second, func() (bool, string) {
		err := send("again")
		return err == nil, fmt.Sprint(err)
	})
	// The mesh needs no etcd, the API does: with its two voters cut apart
	// the cluster lost its quorum; wait for it before the test ends.
	for _, h := range []*harness.Host{a, b} {
		harness.Poll(t, h.Name+"'s API after the cluster's quorum is back", 60*time.Second, func() (bool, string) {
			err := h.Answers(5 * time.Second)
			return err == nil, fmt.Sprint(err)
		})
	}
}
