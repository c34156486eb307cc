package daemon

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestInheritedListenersBadSpec(t *testing.T) {
	for _, spec := range []string{"api", "api:x", "api:1", ":5", "api:3,http"} {
		t.Setenv(listenFDsEnv, spec)
		lns, err := inheritedListeners()
		if err == nil || !strings.Contains(err.Error(), listenFDsEnv) || lns != nil {
			t.Errorf("%q: got %v, %v; want an error naming %s", spec, lns, err, listenFDsEnv)
		}
	}
	t.Setenv(listenFDsEnv, "")
	if lns, err := inheritedListeners(); lns != nil || err != nil {
		t.Errorf("no handover: got %v, %v", lns, err)
	}
}

// A listener passed by fd number serves the connections that arrived on
// the original socket before it was taken over.
func TestInheritedListenerKeepsQueuedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A client connects while nobody accepts, then the original closes.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ln.Close()
	t.Setenv(listenFDsEnv, fmt.Sprintf("http:%d", f.Fd()))
	lns, err := inheritedListeners()
	if err != nil {
		t.Fatal(err)
	}
	got := lns["http"]
	if got == nil {
		t.Fatalf("no http listener in %v", lns)
	}
	defer got.Close()
	sc, err := got.Accept()
	if err != nil {
		t.Fatalf("accept the queued connection: %v", err)
	}
	defer sc.Close()
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := sc.Read(buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
}
