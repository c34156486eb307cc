package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// hopPort is the plain hop listener's port in TestClusterHop (--edge-port
// 4290 puts the TLS edge listener on 4290, the hop on 4291).
const hopPort = "4291"

// TestClusterHop: two hosts of one region in a cluster with the mesh,
// --edge-port fixed. A request entering a for b's machine takes the plain
// hop and carries a's forwarded headers; a client's Hangar-Edge-* and
// forwarded headers are dropped, not obeyed. b's hop listener serves only
// other hosts' own mesh addresses: a connection to it from b itself, from
// a machine on a (its address in a's /64, over the mesh) or on the
// fabric address gets no answer.
func TestClusterHop(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}},
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			args := []string{"--member-name", h.Name, "--advertise-addr", h.Addr, "--edge-port", "4290"}
			if h.Name == "a" {
				return append(args, "--cluster-init")
			}
			code, body := c.Host("a").Call("POST", "/v1/cluster/join-tokens", nil)
			var tok types.JoinTokenResponse
			if code != http.StatusCreated || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
				t.Fatalf("join token from a: %d %s", code, body)
			}
			return append(args, "--join", "https://"+net.JoinHostPort(c.Host("a").Addr, "4281"), "--join-token", tok.Token)
		},
	})
	a, b := c.Host("a"), c.Host("b")
	ref := ""
	for _, h := range c.Hosts() {
		ref = h.ImportTestApp()
	}
	// probe on a (b drained while empty); then hop goes to b, which has
	// the more memory free (a drain would move a host's machines).
	edgeApp(t, a, "probe")
	onA := placeOn(t, c, "a", "fra", "probe", edgeConfig(ref, 0), "b")
	edgeApp(t, a, "hop")
	onB := placeOn(t, c, "b", "fra", "hop", edgeConfig(ref, 0))

	// 0. Each host shows which WireGuard it runs: userspace here (this
	// kernel has none; docs/mesh.md).
	out, err := a.CLI("hosts", "list", "--json")
	var hs []types.Host
	if err != nil || json.Unmarshal([]byte(out), &hs) != nil || len(hs) != 2 {
		t.Fatalf("hosts list: %v %s", err, out)
	}
	for _, h := range hs {
		if h.WireGuard != "kernel" && h.WireGuard != "userspace" {
			t.Fatalf("host %s: wireguard %q, want kernel or userspace", h.ID, h.WireGuard)
		}
	}

	// 1. Through a's edge to b's machine, with a client's forged headers.
	harness.Poll(t, "a's edge routes to b's machine", 20*time.Second, func() (bool, string) {
		code, body, err := edgeGet(a, "hop", "/", 5*time.Second)
		return err == nil && code == 200 && strings.Contains(body, "machine="+onB.ID), fmt.Sprint(code, " ", body, " ", err)
	})
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest("GET", a.HTTPURL()+"/headers", nil)
		req.Host = "hop.test.internal"
		req.Header.Set("Hangar-Edge-App", "probe")
		req.Header.Set("Hangar-Edge-Force", "nope")
		req.Header.Set("Fly-Client-Ip", "203.0.113.9")
		req.Header.Set("Fly-Region", "forged")
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := string(body)
		if resp.StatusCode != 200 || !strings.Contains(h, "Fly-Region: [fra]") || strings.Contains(h, "Hangar-Edge") ||
			strings.Contains(h, "203.0.113.9") || strings.Contains(h, "forged") || strings.Contains(h, "Fly-Client-Ip: [fdaa") {
			t.Fatalf("request %d through a with a client's hop and forwarded headers: %d\n%s\nwant b's machine with a's Fly-Region, the client's address, no Hangar-Edge-*", i, resp.StatusCode, h)
		}
	}

	// b's own mesh address: the first of its /64 (its machines' subnet).
	bIP := netip.MustParseAddr(onB.PrivateIP)
	bMesh := netip.PrefixFrom(bIP, 64).Masked().Addr().Next()
	hopAddr := net.JoinHostPort(bMesh.String(), hopPort)
	forged := "GET /headers HTTP/1.1\r\nHost: x\r\nHangar-Edge-App: hop\r\nHangar-Edge-Force: " + onB.ID + "\r\nFly-Client-Ip: 203.0.113.9\r\n\r\n"

	// 2. A client on b itself (source: b's own mesh address): closed
	// unanswered.
	conn, err := b.DialTimeout("tcp", hopAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial b's hop listener %s from b: %v (want a connection that is then closed)", hopAddr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, forged)
	got, _ := io.ReadAll(bufio.NewReader(conn))
	conn.Close()
	if len(got) != 0 {
		t.Fatalf("a hop request from b's own address got an answer:\n%s\nwant the connection closed unanswered", got)
	}

	// 3. A machine on a (over the mesh, from its address in a's /64,
	// which is not a's own): no answer either.
	code, body := hostGet(a, onA, "/fetch?url="+url.QueryEscape("http://"+hopAddr+"/headers"))
	if code == 200 || strings.Contains(body, "machine=") || strings.Contains(body, "Fly-Region") {
		t.Fatalf("a machine on a fetching b's hop listener: %d %s; want no answer", code, body)
	}
	// The same machine reaches b's machine over the mesh (so the mesh
	// path works, and the refusal above is the hop listener's).
	code, body = hostGet(a, onA, "/fetch?url="+url.QueryEscape("http://"+net.JoinHostPort(onB.PrivateIP, "8080")+"/"))
	if code != 200 || !strings.Contains(body, "machine="+onB.ID) {
		t.Fatalf("a machine on a fetching b's machine over the mesh: %d %s", code, body)
	}

	// 4. b's fabric address: nothing listens for the hop there.
	if conn, err := a.DialTimeout("tcp", net.JoinHostPort(b.Addr, hopPort), 3*time.Second); err == nil {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(conn, forged)
		got, _ := io.ReadAll(conn)
		conn.Close()
		if len(got) != 0 {
			t.Fatalf("a hop request to b's fabric address got an answer:\n%s", got)
		}
	}
}
