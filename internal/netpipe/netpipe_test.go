package netpipe

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// pair is two ends of a real TCP connection on the loopback.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestJoinPassesHalfClose: client ⇄ [a Join b] ⇄ server. The client's
// end of output reaches the server as EOF while the server can still
// answer; the server's end then reaches the client; Join returns the
// bytes of each way.
func TestJoinPassesHalfClose(t *testing.T) {
	client, a := pair(t)
	b, server := pair(t)
	done := make(chan [2]int64, 1)
	go func() {
		up, down := Join(a, b)
		done <- [2]int64{up, down}
	}()
	req := bytes.Repeat([]byte("request "), 10000)
	if _, err := client.Write(req); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = server.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(server) // ends only with the client's half-close
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("server read %d bytes (%v), want %d", len(got), err, len(req))
	}
	// The server answers after the client's end, then ends its own.
	if _, err := server.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	if err := server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	ans, err := io.ReadAll(client)
	if err != nil || string(ans) != "answer" {
		t.Fatalf("client read %q (%v), want the answer then EOF", ans, err)
	}
	select {
	case n := <-done:
		if n[0] != int64(len(req)) || n[1] != int64(len("answer")) {
			t.Fatalf("Join copied %v, want [%d 6]", n, len(req))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Join did not return after both ends closed")
	}
}

// TestReaderConnReadsBufferedFirst: bytes read ahead (past an upgrade's
// answer) come before the connection's own.
func TestReaderConnReadsBufferedFirst(t *testing.T) {
	c, s := pair(t)
	rc := ReaderConn{Reader: io.MultiReader(bytes.NewReader([]byte("early ")), c), C: c}
	if _, err := s.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "early late" {
		t.Fatalf("read %q %v", b, err)
	}
}
