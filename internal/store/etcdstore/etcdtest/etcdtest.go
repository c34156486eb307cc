// Package etcdtest starts real etcd members inside a test process
// (go.etcd.io/etcd/server/v3/embed), on free 127.0.0.1 ports with their data
// in t.TempDir(), for tests of code that talks to etcd. Start gives one
// member; StartCluster gives several that can be stopped hard and restarted
// to test quorum loss and member crashes. Everything is stopped when the
// test ends.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// readyTimeout bounds how long a member may take to join and be ready.
const readyTimeout = 60 * time.Second

// Start starts a single-member etcd and returns its client endpoints. The
// member stops when t ends.
func Start(t testing.TB) []string {
	t.Helper()
	c := StartCluster(t, 1)
	return c.Endpoints()
}

// StartOn starts a single-member etcd whose client and peer URLs are on
// ip (an address of this machine, e.g. a test network's gateway that
// hosts in other network namespaces reach) and returns its client
// endpoints. The member stops when t ends.
func StartOn(t testing.TB, ip string) []string {
	t.Helper()
	m := &Member{
		Name:      "m0",
		ClientURL: "http://" + freeAddrOn(t, ip),
		peerURL:   "http://" + freeAddrOn(t, ip),
		dir:       t.TempDir(),
		token:     fmt.Sprintf("etcdtest-%d", time.Now().UnixNano()),
	}
	m.initial = m.Name + "=" + m.peerURL
	t.Cleanup(m.Stop)
	if err := m.start("new"); err != nil {
		t.Fatalf("etcdtest: start %s on %s: %v", m.Name, ip, err)
	}
	if err := m.waitReady(); err != nil {
		t.Fatalf("etcdtest: %s: %v", m.Name, err)
	}
	return []string{m.ClientURL}
}

// TLS is a member that serves clients over https and requires a client
// certificate signed by its CA. All files are PEM, in a temp dir.
type TLS struct {
	Endpoints []string
	CAFile    string // signed the member's and the client's certificates
	CertFile  string // a client certificate the member accepts
	KeyFile   string
}

// StartTLS starts a single-member etcd whose client port needs mutual TLS,
// with a fresh CA, and returns where to find it and a client certificate.
func StartTLS(t testing.TB) TLS {
	t.Helper()
	dir := t.TempDir()
	pki, err := newPKI(dir)
	if err != nil {
		t.Fatalf("etcdtest: make certificates: %v", err)
	}
	m := &Member{
		Name:      "m0",
		ClientURL: "https://" + freeAddr(t),
		peerURL:   "http://" + freeAddr(t),
		dir:       t.TempDir(),
		token:     fmt.Sprintf("etcdtest-%d", time.Now().UnixNano()),
		tls: &transport.TLSInfo{
			CertFile:       pki.serverCert,
			KeyFile:        pki.serverKey,
			TrustedCAFile:  pki.ca,
			ClientCertAuth: true,
		},
	}
	m.initial = m.Name + "=" + m.peerURL
	t.Cleanup(m.Stop)
	if err := m.start("new"); err != nil {
		t.Fatalf("etcdtest: start %s: %v", m.Name, err)
	}
	if err := m.waitReady(); err != nil {
		t.Fatalf("etcdtest: %s: %v", m.Name, err)
	}
	return TLS{Endpoints: []string{m.ClientURL}, CAFile: pki.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey}
}

// Cluster is a set of embedded etcd members that form one etcd cluster.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// Member is one embedded etcd member.
type Member struct {
	Name      string
	ClientURL string
	peerURL   string
	dir       string
	initial   string // --initial-cluster
	token     string
	tls       *transport.TLSInfo // client TLS, nil for plain http

	mu sync.Mutex
	e  *embed.Etcd // nil while stopped; guarded by mu
}

// StartCluster starts n members that form one cluster, waits until all are
// ready, and stops them when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var peers []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: "http://" + freeAddr(t),
			peerURL:   "http://" + freeAddr(t),
			dir:       t.TempDir(),
			token:     fmt.Sprintf("etcdtest-%d", time.Now().UnixNano()),
		}
		peers = append(peers, m.Name+"="+m.peerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.initial = strings.Join(peers, ",")
		m.token = c.Members[0].token
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Stop()
		}
	})
	// Members of a new cluster only become ready together, so start all
	// before waiting for any.
	for _, m := range c.Members {
		if err := m.start("new"); err != nil {
			t.Fatalf("etcdtest: start %s: %v", m.Name, err)
		}
	}
	for _, m := range c.Members {
		if err := m.waitReady(); err != nil {
			t.Fatalf("etcdtest: %s: %v", m.Name, err)
		}
	}
	return c
}

// Endpoints returns the client URLs of all members, stopped or not.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

func (m *Member) config(state string) (*embed.Config, error) {
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.dir
	cu, err := url.Parse(m.ClientURL)
	if err != nil {
		return nil, err
	}
	pu, err := url.Parse(m.peerURL)
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = m.initial
	cfg.InitialClusterToken = m.token
	cfg.ClusterState = state
	if m.tls != nil {
		cfg.ClientTLSInfo = *m.tls
	}
	// Shorter than etcd's defaults (100/1000 ms) so that a test sees a new
	// leader quickly after a crash, long enough for a loaded CI machine
	// running -race not to flap.
	cfg.TickMs = 50
	cfg.ElectionMs = 750
	// The process does not crash in these tests (members are stopped in
	// process), so the page cache keeps what fsync would; skipping fsync
	// keeps the suite fast.
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	return cfg, nil
}

func (m *Member) start(state string) error {
	cfg, err := m.config(state)
	if err != nil {
		return err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.e = e
	m.mu.Unlock()
	return nil
}

func (m *Member) waitReady() error {
	m.mu.Lock()
	e := m.e
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("not running")
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("failed while starting: %w", err)
	case <-time.After(readyTimeout):
		return fmt.Errorf("not ready after %s", readyTimeout)
	}
}

// Running reports whether the member is started.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.e != nil
}

func (m *Member) String() string { return m.Name }

// IsLeader reports whether the member is running and is the raft leader.
func (m *Member) IsLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.e != nil && uint64(m.e.Server.Leader()) == uint64(m.e.Server.MemberID())
}

// Stop stops the member hard, the closest an in-process member comes to
// kill -9: its raft node stops at once, without handing over leadership or
// finishing in-flight requests, then its listeners close. Its data stays
// for Restart. Stopping a stopped member does nothing.
func (m *Member) Stop() {
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e == nil {
		return
	}
	e.Server.HardStop()
	e.Close()
}

// Restart starts a stopped member again from its data dir, on the same
// ports, and waits until it has rejoined. Without a quorum it cannot be
// ready, so restart members one by one and only wait for those that can.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	if err := m.start("existing"); err != nil {
		t.Fatalf("etcdtest: restart %s: %v", m.Name, err)
	}
}

// WaitReady waits until a (re)started member serves clients.
func (m *Member) WaitReady(t testing.TB) {
	t.Helper()
	if err := m.waitReady(); err != nil {
		t.Fatalf("etcdtest: %s: %v", m.Name, err)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (etcd needs its peer URLs before it listens, so port 0 will not do).
func freeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrOn(t, "127.0.0.1")
}

// freeAddrOn is freeAddr on another address of this machine.
func freeAddrOn(t testing.TB, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("etcdtest: pick a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
