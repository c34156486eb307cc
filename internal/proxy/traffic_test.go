package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// wireConn counts the bytes a client sends and receives on the wire.
type wireConn struct {
	net.Conn
	in, out *atomic.Uint64
}

func (c wireConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(uint64(n))
	return n, err
}

func (c wireConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(uint64(n))
	return n, err
}

// HTTPS connections (served by net/http through LimitListener, as the
// daemon does) count their bytes on the wire, TLS included, and their
// connection, for the app of their first request.
func TestStatsCountHTTPSTraffic(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("y", 3000))
	}), true)
	s := httptest.NewUnstartedServer(p)
	s.Config.ConnContext = p.ConnContext
	s.Listener = p.LimitListener(s.Listener)
	s.StartTLS()
	t.Cleanup(s.Close)
	var sent, received atomic.Uint64
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wireConn{Conn: c, in: &received, out: &sent}, nil
	}
	client := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", s.URL+"/", nil)
		req.Host = "web.example.test"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 3000 {
			t.Fatalf("status %d, %d bytes", resp.StatusCode, len(b))
		}
	}
	tr.CloseIdleConnections()
	poll(t, "HTTPS connection counted closed", func() bool { return p.Stats()[0].TCPDisconnects == 1 })
	poll(t, "every byte the client sent counted", func() bool { return p.Stats()[0].DataIn == sent.Load() })
	st := p.Stats()[0]
	if st.TCPConnects != 1 || st.Requests[200] != 3 {
		t.Fatalf("connects %d, responses %v", st.TCPConnects, st.Requests)
	}
	// The server may write a close_notify the client closed too early to
	// read.
	if got := received.Load(); st.DataOut < got || st.DataOut > got+64 {
		t.Fatalf("data out %d, the client received %d", st.DataOut, got)
	}
	// net/http's connections to the machine count as the fast path's.
	if m := st.Machines[0]; m.TCPConnects < 1 || m.ConnectTime.Count != m.TCPConnects || m.Requests[200] != 3 {
		t.Fatalf("machine: %d connects, connect times %d, responses %v", m.TCPConnects, m.ConnectTime.Count, m.Requests)
	}
	if st.DataOut < 9000 {
		t.Fatalf("data out %d: less than the three bodies", st.DataOut)
	}
}

// A connection the fast path hands to net/http keeps being counted: once
// (its connection), with every byte, whether its first request was
// served by the fast path or not.
func TestStatsCountHandedOverConnections(t *testing.T) {
	for _, tc := range []struct {
		name, reqs  string
		handedFirst bool
	}{
		{"fast path first", "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\nGET /fb/a HTTP/1.1\r\nHost: web.example.test\r\n\r\nGET /fb/b HTTP/1.1\r\nHost: web.example.test\r\nConnection: close\r\n\r\n", false},
		{"handed over first", "GET /fb/a HTTP/1.1\r\nHost: web.example.test\r\n\r\nGET / HTTP/1.1\r\nHost: web.example.test\r\nConnection: close\r\n\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New("example.test", "ord", nil)
			p.FallbackPrefixes = []string{"/fb/"}
			p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, strings.Repeat("z", 500))
			}), true)
			s := front(t, p)
			c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte(tc.reqs)); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(c)
			c.Close()
			n := strings.Count(string(got), "HTTP/1.1 200 OK")
			if want := strings.Count(tc.reqs, "GET "); n != want {
				t.Fatalf("%d of %d answered 200:\n%s", n, want, got)
			}
			poll(t, "connection counted closed", func() bool { return p.Stats()[0].TCPDisconnects == 1 })
			st := p.Stats()[0]
			if st.TCPConnects != 1 {
				t.Fatalf("%d connections counted, want 1", st.TCPConnects)
			}
			if st.DataIn != uint64(len(tc.reqs)) || st.DataOut != uint64(len(got)) {
				t.Fatalf("data in %d (sent %d), out %d (received %d)", st.DataIn, len(tc.reqs), st.DataOut, len(got))
			}
		})
	}
}
