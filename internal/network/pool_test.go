package network

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// pooledLinks lists the host ends of the veth pairs the pool holds.
func pooledLinks(t *testing.T, m *Manager) []string {
	t.Helper()
	links, err := netlink.LinkList()
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
		links, err = netlink.LinkList() // links changed during the dump
	}
	if err != nil {
		t.Fatal(err)
	}
	m.poolMu.Lock()
	defer m.poolMu.Unlock()
	var out []string
	for _, l := range links {
		for _, p := range m.pool {
			if l.Attrs().Name == p.hostName {
				out = append(out, p.hostName)
			}
		}
	}
	return out
}

// A machine's network comes from the pool made ahead (which refills), is
// named for the machine and configured; Close removes what the pool held,
// and the machine's namespace stays until its Teardown.
func TestPool(t *testing.T) {
	m := testManager(t)
	ip4, ip6, _ := m.AddressFor(2)
	if _, err := m.Setup("pool1", ip4, ip6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Teardown("pool1") })
	deadline := time.Now().Add(10 * time.Second)
	for len(pooledLinks(t, m)) < poolSize {
		if time.Now().After(deadline) {
			t.Fatalf("the pool holds %v, want %d namespaces", pooledLinks(t, m), poolSize)
		}
		time.Sleep(5 * time.Millisecond)
	}
	m.poolMu.Lock()
	next := m.pool[len(m.pool)-1].hostName
	m.poolMu.Unlock()
	ip4b, ip6b, _ := m.AddressFor(3)
	if _, err := m.Setup("pool2", ip4b, ip6b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Teardown("pool2") })
	if _, err := netlink.LinkByName(next); err == nil {
		t.Fatalf("pooled veth %s was not taken (renamed) for the machine", next)
	}
	host, _ := vethNames("pool2")
	l, err := netlink.LinkByName(host)
	if err != nil {
		t.Fatalf("machine veth %s: %v", host, err)
	}
	if l.Attrs().OperState == netlink.OperDown {
		t.Fatalf("machine veth %s is down", host)
	}
	// Wait for the refill to settle, then Close empties the pool.
	for len(pooledLinks(t, m)) < poolSize && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	m.poolMu.Lock()
	var held []string
	for _, p := range m.pool {
		held = append(held, p.hostName)
	}
	m.poolMu.Unlock()
	m.Close()
	for _, name := range held {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("pooled veth %s left after Close", name)
		}
	}
	if !m.Exists("pool2") {
		t.Fatal("Close removed a machine's namespace")
	}
	if err := m.Teardown("pool2"); err != nil || m.Exists("pool2") {
		t.Fatalf("teardown: %v, exists %v", err, m.Exists("pool2"))
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, host) {
			t.Errorf("veth %s left after teardown", l.Attrs().Name)
		}
	}
}
