package proxy

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"
)

// PickService skips machines where the service is down (a Postgres
// replica for the primary's port, the primary for the replicas' port);
// Pick, with no service, takes any routable machine.
func TestPickServiceSkipsMachinesWhereItIsDown(t *testing.T) {
	p := New("test", "ams", nil)
	const primary, replica = "tcp/5432/5432", "tcp/5432/5433"
	p.SetBackend(Backend{App: "db", MachineID: "m1", Region: "ams", Addr: "10.0.0.1:5432", DownServices: []string{replica}}, true)
	p.SetBackend(Backend{App: "db", MachineID: "m2", Region: "ams", Addr: "10.0.0.2:5432", DownServices: []string{primary}}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		for key, want := range map[string]string{primary: "10.0.0.1:5432", replica: "10.0.0.2:5432"} {
			addr, release, err := p.PickService(ctx, "db", key, 5432)
			if err != nil {
				t.Fatal(err)
			}
			release()
			if addr != want {
				t.Fatalf("service %s went to %s, want %s", key, addr, want)
			}
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		addr, release, err := p.Pick(ctx, "db", 5432)
		if err != nil {
			t.Fatal(err)
		}
		release()
		seen[addr] = true
	}
	if len(seen) != 2 {
		t.Errorf("Pick without a service used %v, want both machines", seen)
	}
	// No machine with the service up: refused (no Waker to start one).
	p.SetBackend(Backend{App: "db", MachineID: "m1", DownServices: []string{primary, replica}}, true)
	if _, _, err := p.PickService(ctx, "db", primary, 5432); err == nil {
		t.Error("a service down on every machine was picked")
	}
}

// PickConnService (the path the daemon's raw TCP services take) dials
// only machines where the service is up.
func TestPickConnServiceSkipsMachinesWhereItIsDown(t *testing.T) {
	l2, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2 on this host:", err)
	}
	defer l2.Close()
	port := l2.Addr().(*net.TCPAddr).Port
	l1, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Skip("the same port is taken on 127.0.0.1:", err)
	}
	defer l1.Close()
	for _, l := range []net.Listener{l1, l2} {
		go func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}(l)
	}
	p := New("test", "ams", nil)
	const primary, replica = "tcp/5432/5432", "tcp/5432/5433"
	p.SetBackend(Backend{App: "db", MachineID: "m1", Region: "ams", Addr: l1.Addr().String(), DownServices: []string{replica}}, true)
	p.SetBackend(Backend{App: "db", MachineID: "m2", Region: "ams", Addr: l2.Addr().String(), DownServices: []string{primary}}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		for key, want := range map[string]string{primary: "127.0.0.1", replica: "127.0.0.2"} {
			c, release, err := p.PickConnService(ctx, "db", key, port)
			if err != nil {
				t.Fatal(err)
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			c.Close()
			release()
			if host != want {
				t.Fatalf("service %s went to %s, want %s", key, host, want)
			}
		}
	}
}

// Other hosts' machines too: a service that is down on a machine, as its
// host publishes (RemoteMachine.Down), takes it out of that service only,
// and this host publishes its own machines' down services.
func TestPickServiceAcrossHosts(t *testing.T) {
	p := New("test", "fra", nil)
	p.SetEdge(EdgeOptions{Host: "a"})
	const primary, replica = "tcp/5432/5432", "tcp/5432/5433"
	p.SetBackend(Backend{App: "web", MachineID: "a1", Region: "fra", Addr: "10.0.0.1:5432", DownServices: []string{primary}}, true)
	p.SetEdgeHost(EdgeHost{ID: "b", Region: "fra", Addr: "127.0.0.1:2", Machines: []RemoteMachine{
		{App: "web", MachineID: "b1", Region: "fra", Routable: true, Down: []string{replica}}}})
	p.SetEdgeHost(EdgeHost{ID: "c", Region: "fra", Addr: "127.0.0.1:3", Machines: []RemoteMachine{
		{App: "web", MachineID: "c1", Region: "fra", Routable: true, Down: []string{primary}}}})
	for i := 0; i < 20; i++ {
		if got := pickID(p, routing{service: primary}); got != "b1" {
			t.Fatalf("the primary's service went to %s, want b1 (on another host; a1 and c1 have it down)", got)
		}
		if got := pickID(p, routing{service: replica}); got != "a1" {
			t.Fatalf("the replicas' service went to %s, want a1 (this host's first)", got)
		}
	}
	// b's primary fails over to c's machine: c publishes the change.
	p.SetEdgeHost(EdgeHost{ID: "b", Region: "fra", Addr: "127.0.0.1:2", Machines: []RemoteMachine{
		{App: "web", MachineID: "b1", Region: "fra", Routable: true, Down: []string{primary}}}})
	p.SetEdgeHost(EdgeHost{ID: "c", Region: "fra", Addr: "127.0.0.1:3", Machines: []RemoteMachine{
		{App: "web", MachineID: "c1", Region: "fra", Routable: true, Down: []string{replica}}}})
	if got := pickID(p, routing{service: primary}); got != "c1" {
		t.Fatalf("after the failover the primary's service went to %s, want c1", got)
	}
	var pub []string
	for _, m := range p.LocalEdge() {
		if m.MachineID == "a1" {
			pub = m.Down
		}
	}
	if len(pub) != 1 || pub[0] != primary {
		t.Fatalf("this host publishes a1 with down services %v, want [%s]", pub, primary)
	}
}

// ServiceUp: a machine's service as this host sees it, or as another host
// publishes it; unknown machines are not known.
func TestServiceUp(t *testing.T) {
	p := New("test", "fra", nil)
	p.SetEdge(EdgeOptions{Host: "a"})
	const primary, replica = "tcp/5432/5432", "tcp/5432/5433"
	p.SetBackend(Backend{App: "db", MachineID: "a1", Region: "fra", Addr: "10.0.0.1:5432", DownServices: []string{replica}}, true)
	p.SetEdgeHost(EdgeHost{ID: "b", Region: "fra", Addr: "127.0.0.1:2", Machines: []RemoteMachine{
		{App: "db", MachineID: "b1", Region: "fra", Routable: true, Down: []string{primary}}}})
	for _, c := range []struct {
		id, svc   string
		up, known bool
	}{
		{"a1", primary, true, true}, {"a1", replica, false, true},
		{"b1", primary, false, true}, {"b1", replica, true, true},
		{"zz", primary, false, false},
	} {
		if up, known := p.ServiceUp("db", c.id, c.svc); up != c.up || known != c.known {
			t.Errorf("%s %s: up %v known %v, want %v %v", c.id, c.svc, up, known, c.up, c.known)
		}
	}
	p.SetBackend(Backend{App: "db", MachineID: "a1"}, false) // its checks fail
	if up, _ := p.ServiceUp("db", "a1", primary); up {
		t.Error("a machine that is not routable serves")
	}
}
