package tcpproxy

import (
	"errors"
	"net"
	"sync"
	"time"
)

// inbox is a net.Listener that yields the connections handed to it (give)
// and, when it has one, those its bound listener accepts. A Private
// manager's ports are inboxes, so a connection that reached a wildcard
// listener on the same port can be passed on (Deliver).
type inbox struct {
	bound net.Listener // nil: handed connections only
	addr  net.Addr
	ch    chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu      sync.Mutex // guards pending
	pending int        // connections handed over (hand) and not yet accepted or closed
	settled *sync.Cond // broadcast when pending drops to 0
}

func newInbox(bound net.Listener, addr net.Addr) *inbox {
	in := &inbox{bound: bound, addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
	in.settled = sync.NewCond(&in.mu)
	if bound != nil {
		go in.pump()
	}
	return in
}

// pump moves the bound listener's connections into the inbox.
func (in *inbox) pump() {
	for {
		c, err := in.bound.Accept()
		if err != nil {
			select {
			case <-in.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		if !in.give(c) {
			return
		}
	}
}

// hand queues c for Accept without waiting; settle waits for it.
func (in *inbox) hand(c net.Conn) {
	in.mu.Lock()
	in.pending++
	in.mu.Unlock()
	go func() {
		in.give(c)
		in.mu.Lock()
		in.pending--
		if in.pending == 0 {
			in.settled.Broadcast()
		}
		in.mu.Unlock()
	}()
}

// settle waits until every connection handed over so far has been
// accepted (or closed, when the inbox closed first).
func (in *inbox) settle() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for in.pending > 0 {
		in.settled.Wait()
	}
}

// give queues c for Accept; once the inbox is closed c is closed instead.
func (in *inbox) give(c net.Conn) bool {
	select {
	case in.ch <- c:
		return true
	case <-in.done:
		c.Close()
		return false
	}
}

func (in *inbox) Accept() (net.Conn, error) {
	select {
	case c := <-in.ch:
		return c, nil
	case <-in.done:
		return nil, net.ErrClosed
	}
}

func (in *inbox) Close() error {
	in.once.Do(func() {
		close(in.done)
		if in.bound != nil {
			in.bound.Close()
		}
	})
	return nil
}

func (in *inbox) Addr() net.Addr { return in.addr }
