package mesh

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

// recorder stands in for the interface: it keeps the last peer set.
type recorder struct {
	mu    sync.Mutex
	peers []Peer
	calls int
}

func (r *recorder) SetPeers(p []Peer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peers, r.calls = p, r.calls+1
	return nil
}

func (r *recorder) waitFor(t *testing.T, what string, ok func([]Peer) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		p, called := r.peers, r.calls > 0
		r.mu.Unlock()
		if called && ok(p) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: peers %+v", what, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func join(t *testing.T, st store.Store, host, endpoint string) Key {
	t.Helper()
	ctx := context.Background()
	if _, err := AllocateSubnet(ctx, st, org, host); err != nil {
		t.Fatal(err)
	}
	k, _ := GenerateKey()
	if err := Publish(ctx, st, host, k.Public(), endpoint); err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestFollowKeepsPeersEqualToHosts: a host follows the others' records:
// a new host becomes a peer (with its /64 and endpoint), a moved endpoint
// is updated, a host that leaves is removed, and the host never peers
// with itself.
func TestFollowKeepsPeersEqualToHosts(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	join(t, st, "a", "10.0.0.1:51820")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	done := make(chan struct{})
	go func() { Follow(ctx, st, "a", rec, time.Hour, nil); close(done) }()
	rec.waitFor(t, "alone", func(p []Peer) bool { return len(p) == 0 })

	pubB := join(t, st, "b", "10.0.0.2:51820")
	rec.waitFor(t, "b joined", func(p []Peer) bool {
		return len(p) == 1 && p[0].Host == "b" && p[0].PublicKey == pubB &&
			p[0].Endpoint == netip.MustParseAddrPort("10.0.0.2:51820") && p[0].AllowedIPs[0].String() == "fdaa:0:1:1::/64"
	})
	if err := Publish(ctx, st, "b", pubB, "10.0.0.22:51821"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "b moved", func(p []Peer) bool { return len(p) == 1 && p[0].Endpoint.String() == "10.0.0.22:51821" })
	join(t, st, "c", "10.0.0.3:51820")
	rec.waitFor(t, "c joined", func(p []Peer) bool { return len(p) == 2 })
	if err := ReleaseSubnet(ctx, st, "b"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "b left", func(p []Peer) bool { return len(p) == 1 && p[0].Host == "c" })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return when its context ended")
	}
}

func TestPeersSkipsWhatItCannotUse(t *testing.T) {
	k, _ := GenerateKey()
	pub := k.Public()
	members := []Member{
		{Host: "self", Subnet: "fdaa:0:1::/64", PublicKey: &pub, Endpoint: "10.0.0.1:51820"},
		{Host: "nokey", Subnet: "fdaa:0:1:1::/64", Endpoint: "10.0.0.2:51820"},
		{Host: "badport", Subnet: "fdaa:0:1:2::/64", PublicKey: &pub, Endpoint: "10.0.0.3:0"},
		{Host: "named", Subnet: "fdaa:0:1:3::/64", PublicKey: &pub, Endpoint: "host-d.example:51820"},
		{Host: "unresolvable", Subnet: "fdaa:0:1:4::/64", PublicKey: &pub, Endpoint: "nowhere.invalid:51820"},
	}
	resolve := func(ctx context.Context, h string) ([]netip.Addr, error) {
		if h == "host-d.example" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.4")}, nil
		}
		return nil, errors.New("no such host")
	}
	peers, skipped := Peers(context.Background(), "self", members, resolve)
	if len(peers) != 1 || peers[0].Host != "named" || peers[0].Endpoint.String() != "10.0.0.4:51820" {
		t.Fatalf("peers %+v", peers)
	}
	for _, h := range []string{"nokey", "badport", "unresolvable"} {
		if skipped[h] == "" {
			t.Errorf("%s not reported as skipped: %v", h, skipped)
		}
	}
	if _, ok := skipped["self"]; ok || !strings.Contains(skipped["unresolvable"], "does not resolve") {
		t.Fatalf("skipped %v", skipped)
	}
}
