package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// wsFrames builds a stream of WebSocket frames from fuzz input: each
// frame takes a length selector and a length from data; it returns the
// stream and the offsets where frames start (and its end).
func wsFrames(data []byte) ([]byte, map[int]bool) {
	var out []byte
	starts := map[int]bool{0: true}
	for len(data) >= 2 && len(out) < 1<<16 {
		sel, n := data[0], int(data[1])
		data = data[2:]
		masked := sel&0x80 != 0
		hdr := []byte{0x82, 0}
		switch sel & 3 {
		case 0:
			n %= 126
			hdr[1] = byte(n)
		case 1:
			n = n * 3
			hdr[1] = 126
			hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
		default:
			n = n * 7
			hdr[1] = 127
			hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
		}
		if masked {
			hdr[1] |= 0x80
			hdr = append(hdr, 1, 2, 3, 4)
		}
		out = append(out, hdr...)
		out = append(out, make([]byte, n)...)
		starts[len(out)] = true
	}
	return out, starts
}

func FuzzFrameTracker(f *testing.F) {
	f.Add([]byte{0, 5, 1, 200, 2, 3, 0x80, 0}, []byte{1, 7, 3})
	f.Add([]byte{0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, frames, chunks []byte) {
		stream, starts := wsFrames(frames)
		var fr frameTracker
		pos, i := 0, 0
		for pos < len(stream) {
			if fr.atBoundary() != starts[pos] {
				t.Fatalf("offset %d: atBoundary %v, frame start %v", pos, fr.atBoundary(), starts[pos])
			}
			n := fr.untilBoundary()
			if n < 1 {
				t.Fatalf("untilBoundary %d", n)
			}
			if len(chunks) > 0 {
				n = min(n, int(chunks[i%len(chunks)])+1)
				i++
			}
			n = min(n, len(stream)-pos)
			for k := 1; k < n; k++ {
				if starts[pos+k] {
					t.Fatalf("step of %d from %d crosses the frame start at %d", n, pos, pos+k)
				}
			}
			fr.feed(stream[pos : pos+n])
			pos += n
		}
		if !fr.atBoundary() {
			t.Fatal("not at a boundary at the end of the stream")
		}
	})
}

// A WebSocket connection through the proxy gets a close frame (1001) when
// its machine is drained, at a frame boundary, and the drain ends.
func TestWebSocketCloseOnDrain(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		// One text frame "hi", then silence.
		brw.Write([]byte{0x81, 0x02, 'h', 'i'})
		brw.Flush()
		_, _ = io.Copy(io.Discard, c)
	}))
	defer backend.Close()
	p := New("test", "local", nil)
	p.SetBackend(Backend{App: "ws", MachineID: "m1", Addr: strings.TrimPrefix(backend.URL, "http://")}, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(ln, nil) }()
	defer p.Shutdown(context.Background())

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	frame := make([]byte, 4)
	if _, err := io.ReadFull(br, frame); err != nil || string(frame[2:]) != "hi" {
		t.Fatalf("first frame %x %v", frame, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(ctx, "ws", "m1") }()
	closeFrame := make([]byte, 4)
	if _, err := io.ReadFull(br, closeFrame); err != nil || string(closeFrame) != string(closeGoingAway) {
		t.Fatalf("close frame %x %v, want %x", closeFrame, err, closeGoingAway)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the close frame: %v, want EOF", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
}
