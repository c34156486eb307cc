package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
)

// Two hosts on a real etcd: b publishes its machine, a follows. A request
// entering a's proxy reaches b's machine through b's edge listener; b's
// machine failing its checks stops a's requests within 2 s; b's store
// client gone (the host dead or cut off), a forgets b once the lease
// ends.
func TestEdgePublishFollow(t *testing.T) {
	eps := etcdtest.Start(t)
	open := func() *etcdstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: eps}, etcdstore.Options{Prefix: "/hangar/edge-test/"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	stA, stB := open(), open()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// b: a machine and its edge listener.
	machine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b1") }))
	t.Cleanup(machine.Close)
	pxB := proxy.New("example.test", "fra", log)
	pxB.SetBackend(proxy.Backend{App: "web", MachineID: "b1", Region: "fra", Addr: strings.TrimPrefix(machine.URL, "http://")}, true)
	edgeB := httptest.NewUnstartedServer(http.HandlerFunc(pxB.ServeEdge))
	edgeB.StartTLS()
	t.Cleanup(edgeB.Close)

	pxA := proxy.New("example.test", "fra", log)
	pxA.SetEdge(proxy.EdgeOptions{Host: "a", Transport: edgeB.Client().Transport})
	front := httptest.NewServer(pxA)
	t.Cleanup(front.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := &edgePublisher{st: stB, px: pxB, self: proxy.EdgeHost{ID: "b", Region: "fra", Addr: strings.TrimPrefix(edgeB.URL, "https://")}, log: log, ttl: time.Second}
	pubDone := make(chan struct{})
	pctx, stopPub := context.WithCancel(ctx)
	go func() { pub.run(pctx); close(pubDone) }()
	f := &edgeFollower{st: stA, px: pxA, self: "a", log: log, read: map[string]string{}}
	go f.run(ctx)

	get := func() (int, string) {
		req, _ := http.NewRequest("GET", front.URL+"/", nil)
		req.Host = "web.example.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		t0 := time.Now()
		for !ok() {
			if time.Since(t0) > within {
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(t0)
	}
	waitFor("a's proxy serves b's machine", 10*time.Second, func() bool { code, body := get(); return code == 200 && body == "b1" })

	// b's machine fails its checks: a stops sending to it within 2 s (a
	// answers itself that it knows no machine; until then b answers that
	// its machine fails its checks).
	pxB.SetBackend(proxy.Backend{App: "web", MachineID: "b1"}, false)
	d := waitFor("a's proxy stops sending to b's failing machine", 2*time.Second, func() bool {
		code, body := get()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "has no machines")
	})
	t.Logf("a saw b's machine fail its checks after %v", d)
	pxB.SetBackend(proxy.Backend{App: "web", MachineID: "b1"}, true)
	waitFor("a's proxy serves b's machine again", 2*time.Second, func() bool { code, _ := get(); return code == 200 })

	// b's store client dies without releasing: its record goes with the
	// lease, and a forgets b.
	stopPub()
	<-pubDone // (released the record on the way out: write it again, unreleased)
	pub2 := &edgePublisher{st: stB, px: pxB, self: pub.self, log: log, ttl: time.Second}
	if err := pub2.publish(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("a knows b again", 5*time.Second, func() bool { return slices.Contains(pxA.EdgeHosts(), "b") })
	stB.Close()
	d = waitFor("a forgets b once its lease ends", 10*time.Second, func() bool { return !slices.Contains(pxA.EdgeHosts(), "b") })
	t.Logf("a forgot b %v after b's store client closed (lease 1s)", d)
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Fatalf("after b is gone: %d, want 503", code)
	}
}
