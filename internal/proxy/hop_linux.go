//go:build linux

package proxy

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hopSockopt bounds how long data written on a hop connection may stay
// unacknowledged (TCP_USER_TIMEOUT): a request written to a host that went
// away fails then, where keep-alive probes (which only run on an idle
// connection) would not end it.
func hopSockopt(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(hopUserTimeout/time.Millisecond))
	})
	if err != nil {
		return err
	}
	return serr
}
