//go:build linux

package proxy

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// A hop connection bounds how long a request may go unacknowledged
// (TCP_USER_TIMEOUT 3 s) and is dialled from the local address given.
func TestHopDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := HopDialer(netip.MustParseAddr("127.0.0.1")).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if v != 3000 {
		t.Fatalf("TCP_USER_TIMEOUT %d ms, want 3000", v)
	}
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.1" {
		t.Fatalf("dialled from %s, want 127.0.0.1", got)
	}
}
