package runtimetest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
)

var _ runtime.Driver = (*Driver)(nil)

func TestTaskLifecycle(t *testing.T) {
	ctx := context.Background()
	nw := NewNetwork()
	d := New(nw)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d.Behave = func(spec runtime.Spec) Behavior {
		switch spec.ID {
		case "bad":
			return Behavior{FailStart: ErrInjected}
		case "short":
			return Behavior{ExitAfter: 10 * time.Millisecond, ExitCode: 3, Output: []string{"hello"}}
		}
		return Behavior{Ports: []int{port}, Status: http.StatusTeapot, Body: "v1"}
	}
	if _, err := d.Start(ctx, runtime.Spec{ID: "bad"}); !errors.Is(err, ErrInjected) {
		t.Fatalf("FailStart: %v", err)
	}
	if _, err := d.Inspect(ctx, "bad"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("a failed start left a task: %v", err)
	}

	logPath := filepath.Join(t.TempDir(), "short.log")
	if _, err := d.Start(ctx, runtime.Spec{ID: "short", LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	ex, err := d.Wait(ctx, "short")
	if err != nil || ex.Code != 3 {
		t.Fatalf("Wait: %+v %v", ex, err)
	}

	ip4, ip6, _ := nw.AddressFor(2)
	if _, err := nw.Setup("web", ip4, ip6); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, runtime.Spec{ID: "web"}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + net.JoinHostPort(ip4.String(), itoa(port)) + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || !strings.Contains(string(body), "web v1") {
		t.Fatalf("served %d %q", resp.StatusCode, body)
	}
	if st, err := d.Recover(ctx, "web"); err != nil || !st.Running {
		t.Fatalf("Recover: %+v %v", st, err)
	}
	if err := d.Stop(ctx, "web", "SIGKILL", time.Second); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Inspect(ctx, "web"); st.Running || st.Exit == nil || st.Exit.Code != 137 {
		t.Fatalf("after Stop: %+v", st)
	}
	if _, err := http.Get("http://" + net.JoinHostPort(ip4.String(), itoa(port)) + "/"); err == nil {
		t.Fatal("a stopped task still serves")
	}
	if err := d.Destroy(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, "web"); err != nil {
		t.Fatalf("Destroy is not idempotent: %v", err)
	}
	if d.Starts("web") != 1 || len(d.Running()) != 0 {
		t.Fatalf("starts %d, running %v", d.Starts("web"), d.Running())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
