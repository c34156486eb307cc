//go:build linux

package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parker watches parked connections with an epoll instance of its own
// (see park.go).
type parker struct {
	once  sync.Once
	epfd  int // -1 if it could not be created
	mu    sync.Mutex
	conns map[int32]*connState // by file descriptor
}

// park parks an idle keep-alive connection that has wait left before its
// idle timeout; it reports false (and the caller keeps waiting on its
// goroutine) if the connection cannot be parked.
func (p *Proxy) park(cs *connState, wait time.Duration) bool {
	pk := &p.parker
	pk.once.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			pk.epfd = -1
			p.log.Warn("proxy: cannot park idle connections (epoll); each keeps a goroutine", "err", err)
			return
		}
		pk.epfd = fd
		pk.mu.Lock()
		pk.conns = map[int32]*connState{}
		pk.mu.Unlock()
		go pk.poll(p)
	})
	if pk.epfd < 0 || p.down.Load() {
		return false
	}
	conn := cs.fc.c
	if w := cs.fc.wire; w != nil {
		// HTTPS: the TCP connection under the TLS. The TLS holds no
		// decrypted bytes (the wait for the request found none); a
		// record that arrived in part makes the socket readable when
		// the rest arrives.
		conn = w.Conn
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// The parked connection leaves Go's netpoller: the poller watches a
	// duplicate of its descriptor, and the net.Conn is closed (the socket
	// stays open through the duplicate), so that a parked connection
	// holds none of the runtime's per-connection state, which the runtime
	// keeps for reuse and never returns to the system (the netpoller's
	// descriptor, about 0.5 KiB each). reattach makes a net.Conn of it
	// again when it wakes.
	dup := -1
	cerr := rc.Control(func(fd uintptr) {
		var err error
		if dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err != nil {
			dup = -1
		}
	})
	if cerr != nil || dup < 0 {
		return false
	}
	cs.parkDeadline = time.Now().Add(wait)
	pk.mu.Lock()
	defer pk.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(dup)}
	if unix.EpollCtl(pk.epfd, unix.EPOLL_CTL_ADD, dup, &ev) != nil {
		_ = unix.Close(dup)
		return false
	}
	_ = conn.Close() // the duplicate keeps the socket
	cs.parkFD, cs.detached = int32(dup), true
	pk.conns[int32(dup)] = cs
	cs.fc.state.Store(connParked)
	p.parkedN.Add(1)
	return true
}

// reattach gives a woken connection a net.Conn again, from the duplicate
// descriptor it was parked with (which it takes over); it reports false
// if that failed (the connection is then closed).
func (cs *connState) reattach() bool {
	cs.detached = false
	f := os.NewFile(uintptr(cs.parkFD), "client")
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		// Typically a client that reset the connection while it was
		// parked (no peer address any more): nothing to tell anyone.
		cs.p.log.Debug("proxy: a parked connection could not be resumed; closing it", "client", cs.clientIP, "err", err)
		return false
	}
	cs.p.srvMu.Lock() // Shutdown reads fc's connection
	if w := cs.fc.wire; w != nil {
		w.Conn = c // under the TLS, which keeps its state
	} else {
		cs.fc.c, cs.dl.c, cs.out.c = c, c, c
	}
	cs.p.srvMu.Unlock()
	return true
}

// poll waits for parked connections to become readable, and every
// parkSweep closes those whose idle timeout ended.
func (pk *parker) poll(p *Proxy) {
	events := make([]unix.EpollEvent, 256)
	lastSweep := time.Now()
	var wake []*connState
	for {
		n, err := unix.EpollWait(pk.epfd, events, int(parkSweep/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			p.log.Error("proxy: waiting for parked connections failed; they are closed at shutdown", "err", err)
			return
		}
		now := time.Now()
		wake = wake[:0]
		pk.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			if cs := pk.conns[ev.Fd]; cs != nil {
				pk.unparkLocked(cs, wokeReadable)
				wake = append(wake, cs)
			}
		}
		if now.Sub(lastSweep) >= parkSweep {
			lastSweep = now
			for _, cs := range pk.conns {
				if !now.Before(cs.parkDeadline) {
					pk.unparkLocked(cs, wokeExpired)
					wake = append(wake, cs)
				}
			}
		}
		pk.mu.Unlock()
		if len(wake) > 0 {
			p.srvMu.Lock()
			p.raiseBusyPeakLocked() // woken connections are busy again
			p.srvMu.Unlock()
		}
		for _, cs := range wake {
			go cs.run(false)
		}
	}
}

// unparkLocked takes a connection out of the poller (before anything may
// close it, so that its descriptor is not reused while still watched).
func (pk *parker) unparkLocked(cs *connState, why int) {
	cs.p.parkedN.Add(-1)
	delete(pk.conns, cs.parkFD)
	_ = unix.EpollCtl(pk.epfd, unix.EPOLL_CTL_DEL, int(cs.parkFD), nil)
	cs.woke = why
	cs.fc.state.Store(connIdle)
}

// unparkAll gives every parked connection its goroutine back (at
// shutdown, where it then ends).
func (p *Proxy) unparkAll() {
	pk := &p.parker
	pk.mu.Lock()
	var wake []*connState
	for _, cs := range pk.conns {
		pk.unparkLocked(cs, wokeExpired)
		wake = append(wake, cs)
	}
	pk.mu.Unlock()
	for _, cs := range wake {
		go cs.run(false)
	}
}

// parkedConns is the number of parked connections.
func (p *Proxy) parkedConns() int {
	pk := &p.parker
	pk.mu.Lock()
	defer pk.mu.Unlock()
	return len(pk.conns)
}
