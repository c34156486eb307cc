package netdelay

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

const rtt = 40 * time.Millisecond

// udpEcho answers every datagram with "echo:" and the datagram.
func udpEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, maxUDP)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

// udpRoundTrip sends msg to addr from a socket of its own and returns the
// reply and how long it took.
func udpRoundTrip(t *testing.T, c net.Conn, msg string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to %q: %v", msg, err)
	}
	return string(buf[:n]), time.Since(start)
}

func TestUDPAddsRTT(t *testing.T) {
	echo := udpEcho(t)
	r, err := ListenUDP("127.0.0.1:0", echo, rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	direct, err := net.Dial("udp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	relayed, err := net.Dial("udp", r.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	for i := range 5 {
		msg := fmt.Sprintf("ping %d", i)
		got, d := udpRoundTrip(t, direct, msg)
		if got != "echo:"+msg {
			t.Fatalf("direct: %q", got)
		}
		got, dr := udpRoundTrip(t, relayed, msg)
		if got != "echo:"+msg {
			t.Fatalf("through the relay: %q, want %q", got, "echo:"+msg)
		}
		t.Logf("RTT direct %v, through the relay %v", d, dr)
		if dr < rtt {
			t.Fatalf("RTT through the relay %v < configured %v", dr, rtt)
		}
	}
}

// TestUDPFlows checks that each sender gets its own replies (the relay
// keeps a socket to the target per sender) and that a burst is delayed as
// a pipeline: all packets arrive, in order.
func TestUDPFlows(t *testing.T) {
	echo := udpEcho(t)
	r, err := ListenUDP("127.0.0.1:0", echo, rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	for c := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", r.Addr.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			const burst = 20
			for i := range burst {
				if _, err := fmt.Fprintf(conn, "c%d-%d", c, i); err != nil {
					t.Error(err)
					return
				}
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 1500)
			for i := range burst {
				n, err := conn.Read(buf)
				if err != nil {
					t.Errorf("client %d: reply %d: %v", c, i, err)
					return
				}
				if want := fmt.Sprintf("echo:c%d-%d", c, i); string(buf[:n]) != want {
					t.Errorf("client %d got %q, want %q", c, buf[:n], want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// tcpEcho echoes each connection's bytes until the client half-closes,
// then closes.
func tcpEcho(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

func tcpRoundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo of %d bytes: %v", len(msg), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs from what was sent")
	}
	return time.Since(start)
}

func TestTCPAddsRTT(t *testing.T) {
	echo := tcpEcho(t)
	r, err := ListenTCP("127.0.0.1:0", echo, rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	direct, err := net.Dial("tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	relayed, err := net.Dial("tcp", r.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	for i := range 5 {
		msg := []byte(fmt.Sprintf("ping %d", i))
		d := tcpRoundTrip(t, direct, msg)
		dr := tcpRoundTrip(t, relayed, msg)
		t.Logf("RTT direct %v, through the relay %v", d, dr)
		if dr < rtt {
			t.Fatalf("RTT through the relay %v < configured %v", dr, rtt)
		}
	}
	// A large message arrives whole and in order.
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10)
	if dr := tcpRoundTrip(t, relayed, big); dr < rtt {
		t.Fatalf("1 MiB through the relay in %v < configured RTT %v", dr, rtt)
	}
	// A half-close reaches the target after the bytes before it; the
	// target's close comes back as EOF.
	if _, err := relayed.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := relayed.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	relayed.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(relayed)
	if err != nil || string(rest) != "last" {
		t.Fatalf("after half-close: %q, %v; want \"last\" then EOF", rest, err)
	}
}

// TestCloseEndsConnections checks that Close ends the connections it
// carries and stops accepting.
func TestCloseEndsConnections(t *testing.T) {
	echo := tcpEcho(t)
	r, err := ListenTCP("127.0.0.1:0", echo, rtt)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tcpRoundTrip(t, c, []byte("hello"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection of a closed relay", n)
	}
	if c2, err := net.Dial("tcp", r.Addr.String()); err == nil {
		c2.Close()
		t.Fatal("a closed relay still accepts")
	}
	u, err := ListenUDP("127.0.0.1:0", udpEcho(t), rtt)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.Dial("udp", u.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	udpRoundTrip(t, uc, "hello")
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNegativeRTT(t *testing.T) {
	if _, err := ListenUDP("127.0.0.1:0", "127.0.0.1:9", -time.Millisecond); err == nil {
		t.Fatal("a negative RTT was accepted")
	}
}
