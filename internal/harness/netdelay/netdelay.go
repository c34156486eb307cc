// Package netdelay is a userspace latency emulator for tests: a UDP or TCP
// relay that forwards to one target and holds every packet (UDP) or every
// chunk of bytes (TCP) for half a configured round-trip time in each
// direction. It stands in for `tc netem` on kernels without the netem
// qdisc: a test points one host's traffic for another at the relay instead
// of at the host itself, and the path between them then has that RTT.
//
// The delay is a pipeline, not a stop-and-wait: data keeps flowing while
// earlier data waits, so a relay adds latency without capping throughput
// (up to its queue, beyond which UDP packets are dropped as a full link
// would, and TCP readers are slowed down).
package netdelay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// queueLen bounds what one direction of a relay holds while it waits: UDP
// packets beyond it are dropped, TCP reads wait.
const queueLen = 4096

// maxUDP is the largest UDP payload relayed.
const maxUDP = 65535

// Relay forwards what reaches Addr to one target with a delay. Close stops
// it and every connection or flow it carries.
type Relay struct {
	// Addr is where the relay listens: give it to the sender instead of
	// the target.
	Addr   net.Addr
	target string
	oneWay time.Duration

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup

	mu    sync.Mutex // guards conns and flows
	conns map[net.Conn]struct{}
	flows map[string]*udpFlow

	closeListener func() error
}

// OneWay returns the delay added in each direction (half the RTT).
func (r *Relay) OneWay() time.Duration { return r.oneWay }

// Target returns the address the relay forwards to.
func (r *Relay) Target() string { return r.target }

func newRelay(target string, rtt time.Duration) (*Relay, error) {
	if rtt < 0 {
		return nil, fmt.Errorf("netdelay: negative RTT %v", rtt)
	}
	return &Relay{target: target, oneWay: rtt / 2, done: make(chan struct{}), conns: map[net.Conn]struct{}{}, flows: map[string]*udpFlow{}}, nil
}

// Close stops the relay: its listener, its connections and flows, and the
// data still waiting in them. It waits for its goroutines to end.
func (r *Relay) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.done)
		err = r.closeListener()
		r.mu.Lock()
		for c := range r.conns {
			c.Close()
		}
		for _, f := range r.flows {
			f.upstream.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return err
}

func (r *Relay) closed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// item is data held until its time comes; eof marks the end of a TCP
// direction.
type item struct {
	due  time.Time
	data []byte
	eof  bool
}

// delayLine delivers items in order, each no sooner than its due time.
// The delay is the same for all, so arrival order is delivery order.
type delayLine struct {
	q    chan item
	done <-chan struct{}
}

func newDelayLine(done <-chan struct{}) *delayLine {
	return &delayLine{q: make(chan item, queueLen), done: done}
}

// run calls deliver for each item once it is due, until deliver fails, an
// eof item was delivered, or the relay closes.
func (l *delayLine) run(deliver func(item) error) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		var it item
		select {
		case it = <-l.q:
		case <-l.done:
			return
		}
		if wait := time.Until(it.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.done:
				return
			}
		}
		if err := deliver(it); err != nil || it.eof {
			return
		}
	}
}

// ListenUDP starts a UDP relay on listen (host:port, port 0 for a free one)
// that forwards to target with rtt/2 added each way. Each sender address
// gets its own socket towards the target, so replies find their way back
// and the target sees the relay as the sender.
func ListenUDP(listen, target string, rtt time.Duration) (*Relay, error) {
	r, err := newRelay(target, rtt)
	if err != nil {
		return nil, err
	}
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("netdelay: target %s: %w", target, err)
	}
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("netdelay: listen udp %s: %w", listen, err)
	}
	conn := pc.(*net.UDPConn)
	r.Addr, r.closeListener = conn.LocalAddr(), conn.Close
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.serveUDP(conn, taddr)
	}()
	return r, nil
}

// udpFlow is one sender's traffic: its socket to the target and the delay
// line of each direction.
type udpFlow struct {
	upstream *net.UDPConn
	out      *delayLine // sender → target
}

func (r *Relay) serveUDP(conn *net.UDPConn, target *net.UDPAddr) {
	buf := make([]byte, maxUDP)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		now := time.Now()
		f, err := r.flow(conn, from, target)
		if err != nil {
			continue // no socket to the target: the packet is lost
		}
		select {
		case f.out.q <- item{due: now.Add(r.oneWay), data: append([]byte(nil), buf[:n]...)}:
		default: // queue full: dropped, as by a full link
		}
	}
}

// flow returns the flow of sender from, making it on its first packet.
func (r *Relay) flow(conn *net.UDPConn, from, target *net.UDPAddr) (*udpFlow, error) {
	key := from.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.flows[key]; ok {
		return f, nil
	}
	if r.closed() {
		return nil, net.ErrClosed
	}
	up, err := net.DialUDP("udp", nil, target)
	if err != nil {
		return nil, fmt.Errorf("netdelay: dial %s: %w", target, err)
	}
	f := &udpFlow{upstream: up, out: newDelayLine(r.done)}
	r.flows[key] = f
	back := newDelayLine(r.done)
	r.wg.Add(3)
	go func() {
		defer r.wg.Done()
		f.out.run(func(it item) error {
			_, _ = up.Write(it.data) // a lost datagram is UDP's to lose
			return nil
		})
	}()
	go func() {
		defer r.wg.Done()
		back.run(func(it item) error {
			_, _ = conn.WriteToUDP(it.data, from)
			return nil
		})
	}()
	go func() {
		defer r.wg.Done()
		buf := make([]byte, maxUDP)
		for {
			n, err := up.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // e.g. ICMP port unreachable while the target is down
			}
			select {
			case back.q <- item{due: time.Now().Add(r.oneWay), data: append([]byte(nil), buf[:n]...)}:
			default:
			}
		}
	}()
	return f, nil
}

// ListenTCP starts a TCP relay on listen that forwards each connection to
// target, holding the bytes of each direction rtt/2. A half-close is passed
// on after the bytes before it.
func ListenTCP(listen, target string, rtt time.Duration) (*Relay, error) {
	r, err := newRelay(target, rtt)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("netdelay: listen tcp %s: %w", listen, err)
	}
	r.Addr, r.closeListener = l.Addr(), l.Close
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serveTCP(c)
			}()
		}
	}()
	return r, nil
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed() {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *Relay) serveTCP(down net.Conn) {
	if !r.track(down) {
		return
	}
	defer r.untrack(down)
	// The connection to the target is made at once (a SYN is not
	// delayed); its bytes are.
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pipe(up, down) }()
	go func() { defer wg.Done(); r.pipe(down, up) }()
	wg.Wait()
}

// pipe copies src to dst through a delay line, then half-closes dst.
func (r *Relay) pipe(dst, src net.Conn) {
	line := newDelayLine(r.done)
	done := make(chan struct{})
	go func() {
		defer close(done)
		line.run(func(it item) error {
			if it.eof {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					return cw.CloseWrite()
				}
				return dst.Close()
			}
			_, err := dst.Write(it.data)
			return err
		})
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case line.q <- item{due: time.Now().Add(r.oneWay), data: buf[:n]}:
			case <-r.done:
				return
			case <-done: // the writer failed: the peer is gone
				src.Close()
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// A reset or a close: end the other side too (the
				// writer then fails on the eof item, if not before).
				dst.Close()
			}
			select {
			case line.q <- item{due: time.Now().Add(r.oneWay), eof: true}:
			case <-r.done:
			case <-done:
			}
			<-done
			return
		}
	}
}
