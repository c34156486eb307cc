package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/types"
)

// clock is a test clock: real time moved by an offset.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// hostConfig is a host on 127.0.0.1 with ports that were free, its data in
// a temp dir, and raft timing for a loaded test machine.
func hostConfig(t *testing.T, name string, now func() time.Time) Config {
	return Config{
		DataDir: t.TempDir(), Name: name, Region: "tst", AdvertiseAddr: "127.0.0.1",
		ClusterListen: freeAddr(t), PeerListen: freeAddr(t), ClientListen: freeAddr(t),
		Now: now, Log: slog.New(slog.DiscardHandler), SharedFiles: []string{"secrets.key"}, TickMs: 50, ElectionMs: 750, UnsafeNoFsync: true,
	}
}

func openNode(t *testing.T, cfg Config, init bool, joinURL, token string) (*Node, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg, init, joinURL, token)
	if err == nil {
		t.Cleanup(func() { n.Close() })
	}
	return n, err
}

func mustOpen(t *testing.T, cfg Config, init bool, joinURL, token string) *Node {
	t.Helper()
	n, err := openNode(t, cfg, init, joinURL, token)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Name, err)
	}
	return n
}

func joinToken(t *testing.T, n *Node, ttl time.Duration) string {
	t.Helper()
	tok, _, err := n.NewJoinToken(context.Background(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// storeOn opens the daemon's store (etcdstore) through one host's etcd
// endpoints and certificate, as the daemon does.
func storeOn(t *testing.T, n *Node, endpoints []string, timeout time.Duration) *etcdstore.Store {
	t.Helper()
	st, err := etcdstore.Open(context.Background(), clientv3.Config{Endpoints: endpoints, TLS: n.ClientTLS(), Logger: zap.NewNop()},
		etcdstore.Options{Prefix: "/hangar/test/", RequestTimeout: timeout})
	if err != nil {
		t.Fatalf("store through %s: %v", n.Name(), err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func memberCount(t *testing.T, n *Node) (voters, learners int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ml, err := n.Client().MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ml.Members {
		if m.IsLearner {
			learners++
		} else {
			voters++
		}
	}
	return voters, learners
}

// TestInitJoinVotersAndClient: init and two joins make 3 voters; a write
// through one is read through each of the others; a 4th host becomes a
// client with certificates and endpoints only.
func TestInitJoinVotersAndClient(t *testing.T) {
	clk := &clock{}
	acfg := hostConfig(t, "a", clk.Now)
	if err := os.WriteFile(filepath.Join(acfg.DataDir, "secrets.key"), []byte("the cluster's key"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := mustOpen(t, acfg, true, "", "")
	if a.Role() != RoleVoter {
		t.Fatalf("init host role %s", a.Role())
	}
	b := mustOpen(t, hostConfig(t, "b", clk.Now), false, a.ClusterURL(), joinToken(t, a, 0))
	// Any voter signs joins: c joins through b with b's token.
	c := mustOpen(t, hostConfig(t, "c", clk.Now), false, b.ClusterURL(), joinToken(t, b, 0))
	for _, n := range []*Node{b, c} {
		if n.Role() != RoleVoter || n.ClusterID() != a.ClusterID() {
			t.Fatalf("%s: role %s cluster %s, want a voter of %s", n.Name(), n.Role(), n.ClusterID(), a.ClusterID())
		}
	}
	if v, l := memberCount(t, a); v != 3 || l != 0 {
		t.Fatalf("etcd members: %d voters, %d learners; want 3 voters", v, l)
	}
	dcfg := hostConfig(t, "d", clk.Now)
	d := mustOpen(t, dcfg, false, c.ClusterURL(), joinToken(t, c, 0))
	if d.Role() != RoleClient {
		t.Fatalf("4th host role %s, want client", d.Role())
	}
	if v, l := memberCount(t, a); v != 3 || l != 0 {
		t.Fatalf("after a client joined: %d voters, %d learners; want 3 voters", v, l)
	}
	for name, want := range map[string]bool{"etcd": false, "ca-key.pem": false, "ca.pem": true, "host.pem": true, "host-key.pem": true} {
		_, err := os.Stat(filepath.Join(dcfg.DataDir, "cluster", name))
		if (err == nil) != want {
			t.Errorf("client host: %s exists=%v, want %v", name, err == nil, want)
		}
	}
	for _, n := range []*Node{b, c, d} {
		// Every host got the shared files (the secrets key), 0600.
		p := filepath.Join(n.cfg.DataDir, "secrets.key")
		if b, err := os.ReadFile(p); err != nil || string(b) != "the cluster's key" {
			t.Errorf("%s: shared file %q %v", n.Name(), b, err)
		} else if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: shared file mode %v", n.Name(), fi.Mode().Perm())
		}
	}
	for _, n := range []*Node{a, b, c, d} {
		for _, f := range []string{"host-key.pem", "ca-key.pem", "member.json"} {
			if fi, err := os.Stat(filepath.Join(n.dir, f)); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s mode %v, want 0600", n.Name(), f, fi.Mode().Perm())
			}
		}
	}

	ctx := context.Background()
	sa := storeOn(t, a, []string{a.mf.ClientURL}, 0)
	rev, err := sa.Put(ctx, "apps/hello", []byte(`{"name":"hello"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{b, c, d} {
		eps := n.Endpoints()
		if n.mf.ClientURL != "" {
			eps = []string{n.mf.ClientURL} // its own member only
		}
		kv, err := storeOn(t, n, eps, 0).Get(ctx, "apps/hello")
		if err != nil || string(kv.Value) != `{"name":"hello"}` || kv.ModRevision != rev {
			t.Fatalf("read through %s: %+v %v; want the write at revision %d", n.Name(), kv, err, rev)
		}
	}

	ms, err := d.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms.Members {
		got = append(got, m.Name+":"+m.Role+":"+m.Health)
	}
	if u := d.JoinURL(ctx); u != a.ClusterURL() && u != b.ClusterURL() && u != c.ClusterURL() {
		t.Errorf("a client host's join URL %s is not a voter's", u)
	}
	if u := b.JoinURL(ctx); u != b.ClusterURL() {
		t.Errorf("a voter's join URL %s, want its own %s", u, b.ClusterURL())
	}
	if strings.Join(got, " ") != "a:voter:healthy b:voter:healthy c:voter:healthy d:client:" || !ms.Quorum || ms.Voters != 3 {
		t.Fatalf("members: %v (quorum %v, voters %d)", got, ms.Quorum, ms.Voters)
	}
}

// refusedJoin tries a join that must be refused, and checks that it left
// nothing: no cluster dir on the joining host, no member or record added.
func refusedJoin(t *testing.T, member *Node, cfg Config, joinURL, token string, want error, wantMsg ...string) {
	t.Helper()
	v0, l0 := memberCount(t, member)
	before, _ := member.Members(context.Background())
	_, err := openNode(t, cfg, false, joinURL, token)
	if err == nil || !errors.Is(err, want) {
		t.Fatalf("join of %s: err %v, want %v", cfg.Name, err, want)
	}
	for _, m := range wantMsg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("join of %s: error %q does not say %q", cfg.Name, err, m)
		}
	}
	t.Logf("refused as expected: %v", err)
	if InCluster(cfg.DataDir) {
		t.Errorf("a refused join left a cluster dir in %s", cfg.DataDir)
	}
	if left, _ := filepath.Glob(filepath.Join(cfg.DataDir, ".cluster.tmp-*")); len(left) != 0 {
		t.Errorf("a refused join left %v", left)
	}
	if v, l := memberCount(t, member); v != v0 || l != l0 {
		t.Errorf("a refused join changed the etcd members: %d/%d voters/learners, was %d/%d", v, l, v0, l0)
	}
	after, _ := member.Members(context.Background())
	if len(after.Members) != len(before.Members) {
		t.Errorf("a refused join changed the member records: %d, was %d", len(after.Members), len(before.Members))
	}
}

// TestJoinRefusals: a bad token, a token of another cluster, a reused
// token, an expired token and a clock 10 minutes off are each refused with
// a clear error, and leave nothing behind.
func TestJoinRefusals(t *testing.T) {
	clk := &clock{}
	a := mustOpen(t, hostConfig(t, "a", clk.Now), true, "", "")
	hint := "hangar cluster join-token"

	{ // malformed
		good := joinToken(t, a, 0)
		refusedJoin(t, a, hostConfig(t, "x", clk.Now), a.ClusterURL(), good[:len(good)-2]+"xx", errBadToken, hint)
	}
	{ // unknown
		// The right CA, a secret the cluster never issued.
		tok, err := newToken(pinOf(a.ca.cert))
		if err != nil {
			t.Fatal(err)
		}
		refusedJoin(t, a, hostConfig(t, "x", clk.Now), a.ClusterURL(), tok.String(), ErrTokenRefused, "never issued", hint)
	}
	{ // other cluster
		z := mustOpen(t, hostConfig(t, "z", clk.Now), true, "", "")
		refusedJoin(t, a, hostConfig(t, "x", clk.Now), a.ClusterURL(), joinToken(t, z, 0), ErrOtherCluster, "another cluster", hint)
		// Nothing was asked of z either.
		if v, _ := memberCount(t, z); v != 1 {
			t.Errorf("cluster z has %d members", v)
		}
	}
	{ // clock 10 minutes off
		tok := joinToken(t, a, 0)
		ahead := &clock{off: 10 * time.Minute}
		refusedJoin(t, a, hostConfig(t, "x", ahead.Now), a.ClusterURL(), tok, ErrClockSkew, "10m0s ahead of", "sync the clocks")
		behind := &clock{off: -10 * time.Minute}
		refusedJoin(t, a, hostConfig(t, "x", behind.Now), a.ClusterURL(), tok, ErrClockSkew, "10m0s behind")
		// The token was not consumed: with the clock right, it joins.
		mustOpen(t, hostConfig(t, "b", clk.Now), false, a.ClusterURL(), tok)
	}
	{ // reused
		tok := joinToken(t, a, 0)
		mustOpen(t, hostConfig(t, "c", clk.Now), false, a.ClusterURL(), tok)
		refusedJoin(t, a, hostConfig(t, "x", clk.Now), a.ClusterURL(), tok, ErrTokenRefused, "already used, by host c", hint)
	}
	{ // expired
		tok := joinToken(t, a, time.Minute)
		clk.Advance(90 * time.Second)
		refusedJoin(t, a, hostConfig(t, "x", clk.Now), a.ClusterURL(), tok, ErrTokenRefused, "expired", hint)
	}
	{ // name taken
		refusedJoin(t, a, hostConfig(t, "b", clk.Now), a.ClusterURL(), joinToken(t, a, 0), types.ErrConflict, "already in the cluster")
	}
}

// TestQuorumLoss: with 2 of 3 voters stopped, writes fail fast with
// store.ErrUnavailable naming the quorum; the surviving host still reads
// its own copy of the state and lists the members; nothing is lost; the
// stopped hosts restart from their data dirs (no token) and writes resume.
func TestQuorumLoss(t *testing.T) {
	clk := &clock{}
	acfg, bcfg, ccfg := hostConfig(t, "a", clk.Now), hostConfig(t, "b", clk.Now), hostConfig(t, "c", clk.Now)
	a := mustOpen(t, acfg, true, "", "")
	b := mustOpen(t, bcfg, false, a.ClusterURL(), joinToken(t, a, 0))
	c := mustOpen(t, ccfg, false, a.ClusterURL(), joinToken(t, a, 0))
	ctx := context.Background()
	const timeout = 3 * time.Second
	sa := storeOn(t, a, []string{a.mf.ClientURL}, timeout)
	revs := map[string]int64{}
	for _, k := range []string{"apps/one", "apps/two", "machines/one/m1"} {
		rev, err := sa.Put(ctx, k, []byte(k), 0)
		if err != nil {
			t.Fatal(err)
		}
		revs[k] = rev
	}
	b.Close()
	c.Close()

	start := time.Now()
	_, err := sa.Put(ctx, "apps/three", []byte("x"), 0)
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("write without quorum: %v; want ErrUnavailable naming the quorum", err)
	}
	if took := time.Since(start); took > timeout+2*time.Second {
		t.Fatalf("write without quorum took %s; want a failure within the request timeout %s", took, timeout)
	}
	t.Logf("write without quorum failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	// The surviving member's own copy still reads (serializable).
	local, err := clientv3.New(clientv3.Config{Endpoints: []string{a.mf.ClientURL}, TLS: a.ClientTLS(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	gr, err := local.Get(lctx, "/hangar/test/kv/apps/one", clientv3.WithSerializable())
	cancel()
	if err != nil || len(gr.Kvs) != 1 || string(gr.Kvs[0].Value) != "apps/one" {
		t.Fatalf("local read without quorum: %v %v", gr, err)
	}
	ms, err := a.Members(ctx)
	if err != nil || ms.Quorum || len(ms.Members) != 3 {
		t.Fatalf("members without quorum: %+v %v; want 3 members listed, no quorum", ms, err)
	}
	for _, m := range ms.Members {
		if want := map[string]string{"a": "no leader", "b": "unreachable", "c": "unreachable"}[m.Name]; m.Health != want {
			t.Errorf("member %s health %q, want %q", m.Name, m.Health, want)
		}
	}

	// Restart both from their data dirs (no token); writes resume.
	var wg sync.WaitGroup
	for _, cfg := range []Config{bcfg, ccfg} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := openNode(t, cfg, false, "", ""); err != nil {
				t.Errorf("restart %s: %v", cfg.Name, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := sa.Put(ctx, "apps/three", []byte("apps/three"), store.AnyRevision)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for k, rev := range revs {
		kv, err := sa.Get(ctx, k)
		if err != nil || string(kv.Value) != k || kv.ModRevision != rev {
			t.Fatalf("%s after the outage: %+v %v; want it at revision %d", k, kv, err, rev)
		}
	}
	if v, l := memberCount(t, a); v != 3 || l != 0 {
		t.Fatalf("after restarts: %d voters %d learners", v, l)
	}
}

// TestConcurrentJoins: two hosts joining at once for the last voter's place
// make one voter and one client; two hosts with one token make one member
// and one refusal.
func TestConcurrentJoins(t *testing.T) {
	clk := &clock{}
	a := mustOpen(t, hostConfig(t, "a", clk.Now), true, "", "")
	mustOpen(t, hostConfig(t, "b", clk.Now), false, a.ClusterURL(), joinToken(t, a, 0))

	join := func(cfgs []Config, toks []string) ([]*Node, []error) {
		nodes, errs := make([]*Node, len(cfgs)), make([]error, len(cfgs))
		var wg sync.WaitGroup
		for i := range cfgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				nodes[i], errs[i] = Open(ctx, cfgs[i], false, a.ClusterURL(), toks[i])
			}()
		}
		wg.Wait()
		for _, n := range nodes {
			if n != nil {
				t.Cleanup(func() { n.Close() })
			}
		}
		return nodes, errs
	}
	nodes, errs := join([]Config{hostConfig(t, "c", clk.Now), hostConfig(t, "d", clk.Now)}, []string{joinToken(t, a, 0), joinToken(t, a, 0)})
	roles := map[string]int{}
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatalf("join %d: %v", i, errs[i])
		}
		roles[n.Role()]++
	}
	if roles[RoleVoter] != 1 || roles[RoleClient] != 1 {
		t.Fatalf("two joins for the last voter's place: roles %v, want one voter and one client", roles)
	}
	if v, l := memberCount(t, a); v != 3 || l != 0 {
		t.Fatalf("etcd members: %d voters %d learners", v, l)
	}

	tok := joinToken(t, a, 0)
	nodes, errs = join([]Config{hostConfig(t, "e", clk.Now), hostConfig(t, "f", clk.Now)}, []string{tok, tok})
	ok, refused := 0, 0
	for i := range nodes {
		switch {
		case errs[i] == nil:
			ok++
		case errors.Is(errs[i], ErrTokenRefused) && strings.Contains(errs[i].Error(), "already used"):
			refused++
		default:
			t.Errorf("join %d: %v", i, errs[i])
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("two joins with one token: %d joined, %d refused", ok, refused)
	}
}

// TestHostToHostTLS: what Handle mounts on the cluster listener, and a
// server on ServerTLS, answer a host of the cluster (ClientTLS) and no one
// else: not a caller without a certificate, not a host of another cluster.
func TestHostToHostTLS(t *testing.T) {
	clk := &clock{}
	a := mustOpen(t, hostConfig(t, "a", clk.Now), true, "", "")
	z := mustOpen(t, hostConfig(t, "z", clk.Now), true, "", "")
	a.Handle("GET /v1/ping", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pong "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", a.ServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pong "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	call := func(cfg *tls.Config, url string) (int, string, error) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	for _, url := range []string{a.ClusterURL() + "/v1/ping", "https://" + ln.Addr().String() + "/"} {
		if code, body, err := call(a.ClientTLS(), url); err != nil || code != 200 || body != "pong a" {
			t.Errorf("%s with the cluster's certificate: %d %q %v", url, code, body, err)
		}
		noCert := a.ClientTLS()
		noCert.Certificates = nil
		code, _, err := call(noCert, url)
		if err == nil && code != http.StatusUnauthorized {
			t.Errorf("%s without a certificate: %d, want refused", url, code)
		}
		zCfg := z.ClientTLS()
		if _, _, err := call(zCfg, url); err == nil {
			t.Errorf("%s from another cluster's host: answered", url)
		}
	}
	// The join route needs no certificate (a joining host has none).
	noCert := a.ClientTLS()
	noCert.Certificates = nil
	if code, _, err := call(noCert, a.ClusterURL()+"/v1/join"); err != nil || code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/join without a certificate: %d %v, want 405", code, err)
	}
}

// TestInitFailureLeavesNothing: an init whose member cannot start (its
// client port is taken) fails saying why and leaves no cluster dir, so the
// next try starts afresh.
func TestInitFailureLeavesNothing(t *testing.T) {
	cfg := hostConfig(t, "a", time.Now)
	held, err := net.Listen("tcp", cfg.ClientListen)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openNode(t, cfg, true, "", "")
	held.Close()
	if err == nil || !strings.Contains(err.Error(), cfg.ClientListen) {
		t.Fatalf("init with its client port taken: %v", err)
	}
	if InCluster(cfg.DataDir) {
		t.Fatal("a failed init left a cluster dir")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "cluster")); !os.IsNotExist(err) {
		t.Fatalf("cluster dir after a failed init: %v", err)
	}
	mustOpen(t, cfg, true, "", "")
}
