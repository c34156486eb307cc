package network

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/testapp"
	"github.com/vishvananda/netlink"
)

// TestConfig returns a bridge and subnets of their own for one test, so
// tests of several packages can run at once, and removes the bridge after.
func testManager(t *testing.T) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	n := rand.Intn(200) + 20
	cfg := Config{
		Bridge:  fmt.Sprintf("hgt%04x", rand.Intn(0xffff)),
		Subnet4: fmt.Sprintf("10.%d.%d.0/24", 150+rand.Intn(50), n),
		Subnet6: fmt.Sprintf("fdaa:0:%x::/64", 0x100+rand.Intn(0xe00)),
	}
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.RemoveBridge(); err != nil {
			t.Errorf("remove bridge: %v", err)
		}
	})
	return m
}

func TestMachineReachableFromHost(t *testing.T) {
	m := testManager(t)
	rootfs, err := testapp.RootFS(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := runtime.NewOCI(t.TempDir(), "", nil)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(d.Close)
	id := fmt.Sprintf("net%011x", rand.Int63n(1<<40))
	ip4, ip6, err := m.AddressFor(2)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := m.Setup(id, ip4, ip6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Destroy(context.Background(), id)
		if err := m.Teardown(id); err != nil {
			t.Error(err)
		}
		if m.Exists(id) {
			t.Error("namespace left behind")
		}
		host, _ := vethNames(id)
		if _, err := netlink.LinkByName(host); err == nil {
			t.Error("veth left behind")
		}
	})
	if _, err := d.Start(context.Background(), runtime.Spec{ID: id, RootFS: rootfs, Args: []string{"/app"}, NetNSPath: ns, Env: []string{"PORT=8080", "FLY_MACHINE_ID=" + id}}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []net.IP{ip4, ip6} {
		url := "http://" + net.JoinHostPort(ip.String(), "8080") + "/"
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(b), "machine="+id) {
					t.Fatalf("%s answered %q", url, b)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %v", url, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestAddressFor(t *testing.T) {
	m := &Manager{}
	_, m.net4, _ = net.ParseCIDR("10.9.0.0/24")
	_, m.net6, _ = net.ParseCIDR("fdaa:0:1::/64")
	a4, a6, err := m.AddressFor(258 - 256)
	if err != nil || a4.String() != "10.9.0.2" || a6.String() != "fdaa:0:1::2" {
		t.Fatalf("AddressFor(2) = %v %v %v", a4, a6, err)
	}
	if _, _, err := m.AddressFor(255); err == nil {
		t.Fatal("broadcast address handed out")
	}
	if _, _, err := m.AddressFor(1); err == nil {
		t.Fatal("gateway address handed out")
	}
}

// A machine reaches a network beyond the host through the host's NAT: an
// "outside" namespace, linked to the host only, with no route back to the
// machine subnet, still answers the machine.
func TestMachineReachesOutsideThroughNAT(t *testing.T) {
	m := testManager(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	rootfs, err := testapp.RootFS(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := rand.Intn(60)*4 + 8
	out := fmt.Sprintf("hgout%04x", rand.Intn(0xffff))
	hostIP, outIP := fmt.Sprintf("10.251.%d.%d", n/256, n%256+1), fmt.Sprintf("10.251.%d.%d", n/256, n%256+2)
	run := func(args ...string) {
		t.Helper()
		if b, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, b)
		}
	}
	run("ip", "netns", "add", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", out).Run() })
	run("ip", "link", "add", out+"h", "type", "veth", "peer", "name", out+"o")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", out+"h").Run() })
	run("ip", "link", "set", out+"o", "netns", out)
	run("ip", "addr", "add", hostIP+"/30", "dev", out+"h")
	run("ip", "link", "set", out+"h", "up")
	run("ip", "netns", "exec", out, "ip", "addr", "add", outIP+"/30", "dev", out+"o")
	run("ip", "netns", "exec", out, "ip", "link", "set", out+"o", "up")
	srv := exec.Command("ip", "netns", "exec", out, filepath.Join(rootfs, "app"))
	srv.Env = []string{"PORT=8080", "FLY_MACHINE_ID=outside"}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })

	id := fmt.Sprintf("nat%011x", rand.Int63n(1<<40))
	ip4, ip6, _ := m.AddressFor(2)
	if _, err := m.Setup(id, ip4, ip6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Teardown(id) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := exec.Command("ip", "netns", "exec", "hangar-"+id, "curl", "-s", "-m", "1", "http://"+outIP+":8080/").CombinedOutput()
		if err == nil && strings.Contains(string(b), "machine=outside") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine could not reach the outside network: %v %s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
