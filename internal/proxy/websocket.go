package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

// WebSockets go through the net/http path: httputil.ReverseProxy copies
// the upgraded connection both ways, with the machine's side being the
// 101 response's body. The proxy wraps that body so that, when the machine
// is drained for a stop, the client gets a WebSocket close frame (1001,
// going away) at the next frame boundary of the machine's stream, and the
// connection ends, instead of the stop waiting for the client to leave.

// closeGoingAway is an unmasked close frame with status 1001.
var closeGoingAway = []byte{0x88, 0x02, 0x03, 0xe9}

var errGoingAway = errors.New("machine draining: websocket closed with 1001 going away")

// isWebSocket reports a 101 answer to a WebSocket upgrade.
func isWebSocket(resp *http.Response) bool {
	return resp.StatusCode == http.StatusSwitchingProtocols && strings.EqualFold(resp.Header.Get("Upgrade"), "websocket")
}

// wsConn is the machine's side of an upgraded WebSocket connection.
type wsConn struct {
	rwc  io.ReadWriteCloser
	away chan struct{} // closed by goAway
	done chan struct{} // closed by Close
	once sync.Once     // closes away
	cls  sync.Once     // closes done
	pump sync.Once     // starts the reader

	ch chan []byte // chunks read from the machine
	// The fields below are used by Read only (one goroutine).
	err      error
	pending  []byte
	draining bool
	closing  []byte // the close frame still to deliver
	sent     bool   // close frame delivered
	fr       frameTracker

	unregister func()
}

func newWSConn(rwc io.ReadWriteCloser, unregister func()) *wsConn {
	return &wsConn{rwc: rwc, away: make(chan struct{}), done: make(chan struct{}), ch: make(chan []byte), unregister: unregister}
}

// goAway asks for a close frame to the client and the end of the
// connection.
func (w *wsConn) goAway() { w.once.Do(func() { close(w.away) }) }

func (w *wsConn) reader() {
	defer close(w.ch)
	for {
		b := make([]byte, 32<<10)
		n, err := w.rwc.Read(b)
		if n > 0 {
			select {
			case w.ch <- b[:n]:
			case <-w.done:
				return
			}
		}
		if err != nil {
			w.err = err // read by Read after ch is closed
			return
		}
	}
}

func (w *wsConn) Read(p []byte) (int, error) {
	w.pump.Do(func() { go w.reader() })
	for {
		if len(w.closing) > 0 {
			n := copy(p, w.closing)
			w.closing = w.closing[n:]
			return n, nil
		}
		if w.sent {
			return 0, errGoingAway
		}
		if len(w.pending) == 0 {
			if w.draining && w.fr.atBoundary() {
				w.closing, w.sent = closeGoingAway, true
				continue
			}
			away := w.away
			if w.draining {
				away = nil
			}
			select {
			case b, ok := <-w.ch:
				if !ok {
					if w.err == nil {
						w.err = io.EOF
					}
					return 0, w.err
				}
				w.pending = b
			case <-away:
				w.draining = true
			}
			continue
		}
		n := min(len(p), len(w.pending))
		if w.draining {
			n = min(n, w.fr.untilBoundary())
		}
		copy(p, w.pending[:n])
		w.fr.feed(w.pending[:n])
		w.pending = w.pending[n:]
		return n, nil
	}
}

func (w *wsConn) Write(p []byte) (int, error) { return w.rwc.Write(p) }

func (w *wsConn) Close() error {
	w.cls.Do(func() {
		close(w.done)
		w.unregister()
	})
	return w.rwc.Close()
}

// frameTracker follows WebSocket frame boundaries (RFC 6455 section 5.2)
// in a stream of bytes.
type frameTracker struct {
	hdr     [14]byte
	n       int    // header bytes seen of the current frame
	payload uint64 // payload bytes left of the current frame
}

// atBoundary reports whether the next byte starts a frame.
func (f *frameTracker) atBoundary() bool { return f.n == 0 && f.payload == 0 }

// untilBoundary is how many bytes may be passed on without crossing the
// end of the current frame (at least 1; header bytes go one at a time).
func (f *frameTracker) untilBoundary() int {
	if f.n == 0 && f.payload > 0 {
		if f.payload > 1<<30 {
			return 1 << 30
		}
		return int(f.payload)
	}
	return 1
}

// headerLen is the full header length once its first two bytes are known.
func (f *frameTracker) headerLen() int {
	l := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		l += 2
	case 127:
		l += 8
	}
	if f.hdr[1]&0x80 != 0 {
		l += 4
	}
	return l
}

func (f *frameTracker) feed(b []byte) {
	for len(b) > 0 {
		if f.n == 0 && f.payload > 0 {
			k := uint64(len(b))
			if k > f.payload {
				k = f.payload
			}
			f.payload -= k
			b = b[k:]
			continue
		}
		f.hdr[f.n] = b[0]
		f.n++
		b = b[1:]
		if f.n < 2 || f.n < f.headerLen() {
			continue
		}
		var size uint64
		switch f.hdr[1] & 0x7f {
		case 126:
			size = uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
		case 127:
			for i := 2; i < 10; i++ {
				size = size<<8 | uint64(f.hdr[i])
			}
		default:
			size = uint64(f.hdr[1] & 0x7f)
		}
		f.n, f.payload = 0, size
	}
}

// trackWebSocket wraps the body of a WebSocket 101 answer so Drain can
// close the connection with a close frame.
func (p *Proxy) trackWebSocket(resp *http.Response, m *machine) {
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return
	}
	var w *wsConn
	w = newWSConn(rwc, func() {
		p.mu.Lock()
		delete(m.ws, w)
		p.mu.Unlock()
	})
	p.mu.Lock()
	if m.ws == nil {
		m.ws = map[*wsConn]struct{}{}
	}
	m.ws[w] = struct{}{}
	draining := m.draining
	p.mu.Unlock()
	if draining {
		w.goAway()
	}
	resp.Body = w
}
