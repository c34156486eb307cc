package proxy

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The fast path counts, per app and per machine: responses by status with
// their latency, bytes from and to the client, the client connection, and
// the connection to the machine with its connect time.
func TestStatsCountRequestsBytesAndConnections(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(strings.Repeat("x", 1000)))
	}), true)
	s := front(t, p)
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	reqs := "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\nGET /missing HTTP/1.1\r\nHost: web.example.test\r\n\r\nGET / HTTP/1.1\r\nHost: web.example.test\r\nConnection: close\r\n\r\n"
	if _, err := c.Write([]byte(reqs)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	c.Close()
	poll(t, "connection counted closed", func() bool { return p.Stats()[0].TCPDisconnects == 1 })
	st := p.Stats()[0]
	if st.Requests[200] != 2 || st.Requests[404] != 1 || st.LatencyByStatus[200].Count != 2 || st.Latency.Count != 3 {
		t.Fatalf("app responses: %v, latency %+v", st.Requests, st.LatencyByStatus)
	}
	if st.TCPConnects != 1 {
		t.Fatalf("client connections: %d connects", st.TCPConnects)
	}
	if st.DataIn != uint64(len(reqs)) || st.DataOut != uint64(len(got)) {
		t.Fatalf("data in %d (sent %d), out %d (received %d)", st.DataIn, len(reqs), st.DataOut, len(got))
	}
	m := st.Machines[0]
	if m.Requests[200] != 2 || m.Requests[404] != 1 || m.LatencyByStatus[404].Count != 1 {
		t.Fatalf("machine responses: %v", m.Requests)
	}
	if m.TCPConnects < 1 || m.ConnectTime.Count != m.TCPConnects {
		t.Fatalf("machine connections: %d connects, connect time %+v", m.TCPConnects, m.ConnectTime)
	}
}

// With NoStats nothing is counted.
func TestNoStats(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.NoStats = true
	p.SetBackend(backend(t, "m1", nil), true)
	s := front(t, p)
	if resp, _ := get(t, s, "web.example.test", "/"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	st := p.Stats()[0]
	if len(st.Requests) != 0 || st.DataIn != 0 || st.TCPConnects != 0 || st.Machines[0].TCPConnects != 0 {
		t.Fatalf("counted with NoStats: %+v", st)
	}
}

// Counting a request allocates nothing once its status code was seen.
func TestStatsCountingAllocatesNothing(t *testing.T) {
	a, m := newAppStats(), &machineStats{}
	a.observe(200, time.Millisecond)
	m.observe(200, time.Millisecond)
	cs := &connState{}
	if n := testing.AllocsPerRun(1000, func() {
		a.observe(200, 3*time.Millisecond)
		m.observe(200, 3*time.Millisecond)
		cs.dl.n += 100
		cs.out.n += 200
		cs.countBytes(&app{stats: a})
	}); n != 0 {
		t.Fatalf("%v allocations per counted request", n)
	}
}
