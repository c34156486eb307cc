// Package cluster owns what makes several Hangar hosts one cluster: the
// cluster CA and each host's certificate, join tokens and the join
// exchange, and the embedded etcd member (go.etcd.io/etcd/server/v3/embed)
// that the first hosts run.
//
// `hangar server --cluster-init` makes the CA (ECDSA P-256) and starts the
// first member; `hangar cluster join-token` makes a token (NewJoinToken) that
// pins the CA and carries a one-time secret; `hangar server --join URL
// --join-token T` on another host sends a certificate request to a voting
// member's cluster listener (by default port 4281 of its advertised
// address), which checks the token, the clocks and the name, signs the
// certificate, and makes the host a voter (an etcd learner promoted once in
// sync) while the cluster has fewer than its voters (3 or 5), otherwise a
// client (certificates and endpoints only). The daemon then keeps its state
// in etcdstore on the members' client URLs with this host's certificate,
// exactly as with --etcd-endpoints. docs/cluster-join.md describes it for
// operators.
//
// Files, in <data-dir>/cluster/ (keys 0600):
//
//	member.json     this host's place in the cluster (name, role, URLs, endpoints)
//	ca.pem          the cluster CA's certificate (every host)
//	ca-key.pem      the CA's key (voting members only: they sign joins)
//	host.pem        this host's certificate: server and client auth, SANs = its advertised addresses
//	host-key.pem    its key (made on the host; only a CSR ever leaves it)
//	etcd/           the embedded member's data (voters)
//
// On a restart, Open finds member.json and starts the member again from its
// data; no token is needed.
//
// Other hosts' API calls: ClientTLS and ServerTLS return the mutual-TLS
// configurations, on the cluster CA, that host-to-host calls use (the
// caller presents its host certificate; the server requires one signed by
// the cluster CA). Handle mounts such a handler on this host's cluster
// listener, behind that check.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/types"
)

// Default ports, on the advertised address.
const (
	DefaultClusterPort = 4281
	DefaultPeerPort    = 2380 // etcd's own default peer port
	DefaultClientPort  = 2379 // etcd's own default client port
)

// Roles of a host in the cluster.
const (
	RoleVoter  = "voter"  // runs an etcd member that votes
	RoleClient = "client" // uses the voters' etcd; runs no member
)

// MaxClockSkew is how far a joining host's clock may be from the member's
// it joins through: leases, token expiry and certificates all compare times
// across hosts.
const MaxClockSkew = 2 * time.Minute

// keyPrefix holds the cluster's own records in etcd, outside every store
// namespace (those are under /hangar/<name>/).
const keyPrefix = "/hangar-cluster/"

// Files in the cluster dir.
const (
	memberFileName = "member.json"
	caFile         = "ca.pem"
	caKeyFile      = "ca-key.pem"
	certFile       = "host.pem"
	keyFile        = "host-key.pem"
	etcdDir        = "etcd"
)

// Errors a caller may tell apart.
var (
	// ErrTokenRefused: the token is unknown, used, or expired.
	ErrTokenRefused = types.NewError(types.ErrForbidden, "join token refused")
	// ErrOtherCluster: the server dialed is not of the cluster the token pins.
	ErrOtherCluster = types.NewError(types.ErrForbidden, "not the token's cluster")
	// ErrClockSkew: the joining host's clock is too far from the member's.
	ErrClockSkew = types.NewError(types.ErrInvalid, "clocks differ")
	// ErrNotInCluster: the data dir has no cluster and no init or join was asked.
	ErrNotInCluster = types.NewError(types.ErrNotFound, "not in a cluster")
)

// Config says how this host takes part in a cluster. Addresses recorded at
// init or join are kept in member.json; on a restart they win over Config's.
type Config struct {
	// DataDir is the daemon's data dir; the cluster's files go in
	// DataDir/cluster.
	DataDir string
	// Name is this host's name, unique in the cluster (its etcd member
	// name and its certificate's common name). Default: the hostname.
	Name   string
	Region string
	// AdvertiseAddr is the IP or DNS name other hosts reach this one at
	// (default 127.0.0.1). It and the listen hosts are the certificate's
	// SANs.
	AdvertiseAddr string
	// ClusterListen is host:port of the cluster listener, which serves
	// joins and host-to-host calls (default AdvertiseAddr:4281; port 0
	// picks one).
	ClusterListen string
	// PeerListen and ClientListen are host:port of the etcd member's peer
	// and client listeners (default AdvertiseAddr:2380 and :2379). A
	// wildcard host (0.0.0.0, ::) is advertised as AdvertiseAddr.
	PeerListen, ClientListen string
	// Voters is how many voting members the cluster gets (3 or 5; at
	// init only; default 3).
	Voters int
	// SharedFiles name files of the data dir that every host of the
	// cluster must hold the same (the secrets key): a joining host gets
	// the member's copies, written 0600 where it has none.
	SharedFiles []string
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	Log *slog.Logger

	// Raft timing in milliseconds (default etcd's 100 and 1000) and
	// fsync (tests only): tuning for tests on a loaded machine.
	TickMs, ElectionMs uint
	UnsafeNoFsync      bool
}

// memberFile is member.json: this host's place in the cluster.
type memberFile struct {
	ClusterID string `json:"cluster_id"`
	Name      string `json:"name"`
	Region    string `json:"region"`
	Role      string `json:"role"`
	// ClusterURL is https://host:port of this host's cluster listener;
	// ClusterListen what it binds.
	ClusterURL    string `json:"cluster_url"`
	ClusterListen string `json:"cluster_listen"`
	// Voters only: the member's advertised URLs and listen addresses.
	PeerURL      string `json:"peer_url,omitempty"`
	ClientURL    string `json:"client_url,omitempty"`
	PeerListen   string `json:"peer_listen,omitempty"`
	ClientListen string `json:"client_listen,omitempty"`
	// InitialCluster is etcd's --initial-cluster for the member's first
	// start (name=peerURL,...).
	InitialCluster string `json:"initial_cluster,omitempty"`
	// Promoted is false while a joined voter is still an etcd learner.
	Promoted bool   `json:"promoted,omitempty"`
	MemberID uint64 `json:"member_id,omitempty"`
	// Endpoints are the etcd client URLs the host uses (the voters').
	Endpoints []string `json:"endpoints"`
}

// Node is this host in its cluster: its certificates, its etcd client, the
// embedded member (voters) and the cluster listener. Its lifecycle:
//
//	Open ─▶ (member starting ─▶ ready) ─▶ serving ─▶ Close
//
// Open returns once the member is ready (it needs a quorum) and the
// cluster listener serves.
type Node struct {
	cfg  Config
	dir  string
	now  func() time.Time
	log  *slog.Logger
	mf   memberFile
	ca   *ca
	cert tls.Certificate
	pool *x509.CertPool

	etcd *embed.Etcd // nil on a client host
	cli  *clientv3.Client
	mux  *http.ServeMux
	ln   net.Listener
	srv  *http.Server

	closeOnce sync.Once
	closeErr  error
}

// Open brings this host into its cluster. With a cluster dir from before
// (a restart) it starts the member again from it, whatever init and join
// say; otherwise init makes a new cluster, or joinURL and token join one.
// Neither, on a data dir without a cluster, is ErrNotInCluster.
func Open(ctx context.Context, cfg Config, init bool, joinURL, token string) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "cluster")
	if ip := net.ParseIP(cfg.AdvertiseAddr); (init || joinURL != "") && ip != nil && ip.IsLoopback() && !InCluster(cfg.DataDir) {
		cfg.Log.Warn("this host advertises a loopback address: only hosts on this machine can reach it; pass --advertise-addr with an address the other hosts reach", "advertise_addr", cfg.AdvertiseAddr)
	}
	if _, err := os.Stat(filepath.Join(dir, memberFileName)); err == nil {
		return restart(ctx, cfg, dir)
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("cluster dir %s: %w", dir, err)
	}
	switch {
	case init:
		return initCluster(ctx, cfg, dir)
	case joinURL != "":
		return join(ctx, cfg, dir, joinURL, token)
	}
	return nil, fmt.Errorf("data dir %s: %w; start with --cluster-init, or --join and --join-token", cfg.DataDir, ErrNotInCluster)
}

// InCluster reports whether dataDir holds a cluster member's files.
func InCluster(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "cluster", memberFileName))
	return err == nil
}

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("cluster: no data dir")
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("cluster: host name: %w (give one with --member-name)", err)
		}
		c.Name = h
	}
	if err := validName(c.Name); err != nil {
		return c, err
	}
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = "127.0.0.1"
	}
	if c.ClusterListen == "" {
		c.ClusterListen = net.JoinHostPort(c.AdvertiseAddr, strconv.Itoa(DefaultClusterPort))
	}
	if c.PeerListen == "" {
		c.PeerListen = net.JoinHostPort(c.AdvertiseAddr, strconv.Itoa(DefaultPeerPort))
	}
	if c.ClientListen == "" {
		c.ClientListen = net.JoinHostPort(c.AdvertiseAddr, strconv.Itoa(DefaultClientPort))
	}
	for _, a := range []string{c.ClusterListen, c.PeerListen, c.ClientListen} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return c, fmt.Errorf("cluster: listen address %q: want host:port (e.g. 10.0.0.1:2380): %w", a, types.ErrInvalid)
		}
	}
	if c.Voters == 0 {
		c.Voters = 3
	}
	if c.Voters != 3 && c.Voters != 5 {
		return c, fmt.Errorf("cluster: --voters %d: a cluster has 3 or 5 voting members (an odd number keeps a majority through 1 or 2 failures): %w", c.Voters, types.ErrInvalid)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c, nil
}

func validName(n string) error {
	if len(n) > 63 {
		return fmt.Errorf("cluster: host name %q is longer than 63 characters: %w", n, types.ErrInvalid)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("cluster: host name %q: use letters, digits, '-', '.' and '_' (--member-name): %w", n, types.ErrInvalid)
		}
	}
	if n == "" {
		return fmt.Errorf("cluster: empty host name: %w", types.ErrInvalid)
	}
	return nil
}

// advertised is the https URL other hosts reach a listen address at: the
// advertised address when the listen host is a wildcard.
func advertised(listen, advertise string) string {
	host, port, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = advertise
	}
	return "https://" + net.JoinHostPort(host, port)
}

func hostOf(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return pu.Hostname()
}

// sans are the addresses a host's certificate names: the hosts of its
// advertised URLs.
func sans(urls ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range urls {
		if h := hostOf(u); h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// initCluster makes a new cluster with this host as its first voter.
func initCluster(ctx context.Context, cfg Config, dir string) (*Node, error) {
	now := cfg.Now()
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	c, err := newCA(id, now)
	if err != nil {
		return nil, err
	}
	mf := memberFile{ClusterID: id, Name: cfg.Name, Region: cfg.Region, Role: RoleVoter,
		ClusterListen: cfg.ClusterListen, PeerListen: cfg.PeerListen, ClientListen: cfg.ClientListen,
		PeerURL: advertised(cfg.PeerListen, cfg.AdvertiseAddr), ClientURL: advertised(cfg.ClientListen, cfg.AdvertiseAddr),
		Promoted: true}
	mf.ClusterURL = advertised(cfg.ClusterListen, cfg.AdvertiseAddr)
	mf.InitialCluster = mf.Name + "=" + mf.PeerURL
	mf.Endpoints = []string{mf.ClientURL}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	der, err := c.sign(&key.PublicKey, cfg.Name, sans(mf.ClusterURL, mf.PeerURL, mf.ClientURL), now)
	if err != nil {
		return nil, err
	}
	caKey, err := keyPEM(c.key)
	if err != nil {
		return nil, err
	}
	hostKey, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{caFile: certPEM(c.der), caKeyFile: caKey, certFile: certPEM(der), keyFile: hostKey}
	if err := writeClusterDir(dir, mf, files); err != nil {
		return nil, err
	}
	n, err := load(cfg, dir)
	if err != nil {
		return nil, err
	}
	// A failed init leaves no cluster dir: nothing outside this host knows
	// of the cluster yet.
	fail := func(err error) (*Node, error) {
		n.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cluster init: %w", err)
	}
	if err := n.start(ctx, "new"); err != nil {
		return fail(err)
	}
	// The cluster's own records: its id and voter count, and this host.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conf, _ := json.Marshal(clusterConfig{ClusterID: id, Voters: cfg.Voters, CreatedAt: now.UTC()})
	rec, _ := json.Marshal(n.record(now))
	if _, err := n.cli.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(keyPrefix+"config"), "=", 0)).
		Then(clientv3.OpPut(keyPrefix+"config", string(conf)), clientv3.OpPut(memberKey(cfg.Name), string(rec))).Commit(); err != nil {
		return fail(fmt.Errorf("record the cluster: %w", err))
	}
	n.log.Info("made a new cluster; this host is its first voting member", "cluster", id, "voters", cfg.Voters, "join_url", mf.ClusterURL)
	return n, nil
}

// clusterConfig is the cluster's record in etcd, written at init.
type clusterConfig struct {
	ClusterID string    `json:"cluster_id"`
	Voters    int       `json:"voters"`
	CreatedAt time.Time `json:"created_at"`
}

// memberRecord is a host's record in etcd (keyPrefix + "members/<name>").
type memberRecord struct {
	Name       string    `json:"name"`
	Region     string    `json:"region"`
	Role       string    `json:"role"`
	ClusterURL string    `json:"cluster_url"`
	PeerURL    string    `json:"peer_url,omitempty"`
	ClientURL  string    `json:"client_url,omitempty"`
	JoinedAt   time.Time `json:"joined_at"`
}

func memberKey(name string) string { return keyPrefix + "members/" + name }

func (n *Node) record(now time.Time) memberRecord {
	return memberRecord{Name: n.mf.Name, Region: n.mf.Region, Role: n.mf.Role, ClusterURL: n.ClusterURL(),
		PeerURL: n.mf.PeerURL, ClientURL: n.mf.ClientURL, JoinedAt: now.UTC()}
}

// writeClusterDir writes the cluster dir whole or not at all: into a temp
// dir beside it, renamed into place at the end, so a failed init or join
// leaves no half a cluster dir.
func writeClusterDir(dir string, mf memberFile, files map[string][]byte) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".cluster.tmp-")
	if err != nil {
		return fmt.Errorf("cluster dir: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename
	mfb, err := json.MarshalIndent(mf, "", "  ")
	if err != nil {
		return err
	}
	files[memberFileName] = append(mfb, '\n')
	for name, b := range files {
		if err := fsutil.WriteFileAtomic(filepath.Join(tmp, name), b, 0o600); err != nil {
			return fmt.Errorf("cluster dir: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("cluster dir: %w", err)
	}
	return nil
}

func (n *Node) saveMemberFile() error {
	b, err := json.MarshalIndent(n.mf, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(n.dir, memberFileName), append(b, '\n'), 0o600)
}

// load reads the cluster dir into a Node (nothing started).
func load(cfg Config, dir string) (*Node, error) {
	n := &Node{cfg: cfg, dir: dir, now: cfg.Now, log: cfg.Log.With("component", "cluster")}
	b, err := os.ReadFile(filepath.Join(dir, memberFileName))
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := json.Unmarshal(b, &n.mf); err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", filepath.Join(dir, memberFileName), err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	caCert, err := parseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA %s: %w", filepath.Join(dir, caFile), err)
	}
	n.ca = &ca{cert: caCert, der: caCert.Raw}
	if kb, err := os.ReadFile(filepath.Join(dir, caKeyFile)); err == nil {
		if n.ca.key, err = parseKeyPEM(kb); err != nil {
			return nil, fmt.Errorf("cluster CA key: %w", err)
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("cluster CA key: %w", err)
	}
	n.cert, err = tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	// Send the CA with the host's certificate: a joining host finds the
	// pinned CA in the chain.
	n.cert.Certificate = append(n.cert.Certificate, caCert.Raw)
	n.pool = x509.NewCertPool()
	n.pool.AddCert(caCert)
	return n, nil
}

// restart starts this host's part again from its cluster dir.
func restart(ctx context.Context, cfg Config, dir string) (*Node, error) {
	n, err := load(cfg, dir)
	if err != nil {
		return nil, err
	}
	if n.mf.Name != cfg.Name && cfg.Name != "" {
		n.log.Info("this host keeps the name it joined with", "name", n.mf.Name, "asked", cfg.Name)
	}
	if err := n.start(ctx, "existing"); err != nil {
		n.Close()
		if n.removed(ctx) {
			return nil, fmt.Errorf("restart cluster member %s from %s: this host was removed from the cluster (`hangar hosts remove %s` on another host); its machines and volumes were forgotten. Empty the data dir and join again with a new token to bring this server back as a new host: %w", n.mf.Name, dir, n.mf.Name, types.ErrConflict)
		}
		return nil, fmt.Errorf("restart cluster member %s from %s: %w", n.mf.Name, dir, err)
	}
	if n.mf.Role == RoleVoter && !n.mf.Promoted {
		if err := n.promote(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	n.refreshEndpoints(ctx)
	return n, nil
}

// start starts the member (voters), the etcd client and the cluster
// listener.
func (n *Node) start(ctx context.Context, state string) error {
	// The cluster listener first: a port still held (by the daemon this
	// one reloads) fails before the member starts.
	ln, err := net.Listen("tcp", n.mf.ClusterListen)
	if err != nil {
		return fmt.Errorf("cluster listener %s: %w (pick another with --cluster-listen)", n.mf.ClusterListen, err)
	}
	if n.mf.Role == RoleVoter {
		if err := n.startMember(ctx, state); err != nil {
			ln.Close()
			return err
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: n.Endpoints(), TLS: n.ClientTLS(), DialTimeout: 5 * time.Second,
		AutoSyncInterval: 30 * time.Second, Logger: zap.NewNop(), Context: context.Background()})
	if err != nil {
		ln.Close()
		return fmt.Errorf("etcd client: %w", err)
	}
	n.cli = cli
	return n.serve(ln)
}

func (n *Node) startMember(ctx context.Context, state string) error {
	cfg := embed.NewConfig()
	cfg.Name = n.mf.Name
	cfg.Dir = filepath.Join(n.dir, etcdDir)
	parse := func(s string) (url.URL, error) {
		u, err := url.Parse(s)
		if err != nil {
			return url.URL{}, err
		}
		return *u, nil
	}
	lp, err := parse("https://" + n.mf.PeerListen)
	if err != nil {
		return err
	}
	lc, err := parse("https://" + n.mf.ClientListen)
	if err != nil {
		return err
	}
	ap, err := parse(n.mf.PeerURL)
	if err != nil {
		return err
	}
	ac, err := parse(n.mf.ClientURL)
	if err != nil {
		return err
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{lp}, []url.URL{ap}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{lc}, []url.URL{ac}
	ti := transport.TLSInfo{
		CertFile:       filepath.Join(n.dir, certFile),
		KeyFile:        filepath.Join(n.dir, keyFile),
		TrustedCAFile:  filepath.Join(n.dir, caFile),
		ClientCertAuth: true,
	}
	cfg.PeerTLSInfo, cfg.ClientTLSInfo = ti, ti
	cfg.InitialCluster = n.mf.InitialCluster
	cfg.InitialClusterToken = "hangar-" + n.mf.ClusterID
	cfg.ClusterState = state
	// The same history window as the embedded store keeps for watches.
	cfg.AutoCompactionMode = "revision"
	cfg.AutoCompactionRetention = "10000"
	cfg.MaxLearners = 2
	if n.cfg.TickMs > 0 {
		cfg.TickMs = n.cfg.TickMs
	}
	if n.cfg.ElectionMs > 0 {
		cfg.ElectionMs = n.cfg.ElectionMs
	}
	cfg.UnsafeNoFsync = n.cfg.UnsafeNoFsync
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd member %s (peer %s, client %s): %w", n.mf.Name, n.mf.PeerListen, n.mf.ClientListen, err)
	}
	n.etcd = e
	n.log.Info("etcd member starting; ready once a majority of the voting members run", "name", n.mf.Name, "peer", n.mf.PeerURL, "client", n.mf.ClientURL)
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", n.mf.Name, err)
	case <-ctx.Done():
		return fmt.Errorf("etcd member %s not ready (no quorum: are a majority of the voting members running?): %w", n.mf.Name, ctx.Err())
	}
}

// serve starts the cluster listener.
func (n *Node) serve(ln net.Listener) error {
	if _, port, _ := net.SplitHostPort(n.mf.ClusterListen); port == "0" {
		// Keep the port picked, so that a restart listens at the same URL.
		n.mf.ClusterListen = ln.Addr().String()
		n.mf.ClusterURL = advertised(ln.Addr().String(), hostOf(n.mf.ClusterURL))
		if err := n.saveMemberFile(); err != nil {
			ln.Close()
			return err
		}
	}
	n.ln = tls.NewListener(ln, n.listenerTLS())
	n.mux = http.NewServeMux()
	n.mux.HandleFunc("POST /v1/join", n.handleJoin)
	n.srv = &http.Server{Handler: n.mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)} // refused handshakes
	go n.srv.Serve(n.ln)
	return nil
}

// listenerTLS is the cluster listener's: its certificate, and a client
// certificate checked when given (joining hosts have none yet; Handle
// requires one).
func (n *Node) listenerTLS() *tls.Config {
	cfg := n.ServerTLS()
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	return cfg
}

// ClientTLS is the configuration for calls to other hosts of the cluster
// (their etcd members, their cluster listeners, their APIs): this host's
// certificate, and only the cluster CA trusted.
func (n *Node) ClientTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{n.cert}, RootCAs: n.pool}
}

// ServerTLS is the configuration for a server that other hosts call: this
// host's certificate, and a client certificate signed by the cluster CA
// required.
func (n *Node) ServerTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{n.cert}, ClientCAs: n.pool,
		ClientAuth: tls.RequireAndVerifyClientCert}
}

// Handle serves h on the cluster listener at pattern (a http.ServeMux
// pattern, outside /v1/join), only to callers with a certificate of the
// cluster CA (other hosts).
func (n *Node) Handle(pattern string, h http.Handler) {
	n.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "a host certificate of this cluster is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// Name is this host's name in the cluster.
func (n *Node) Name() string { return n.mf.Name }

// Role is RoleVoter or RoleClient.
func (n *Node) Role() string { return n.mf.Role }

// ClusterID names the cluster (made at init).
func (n *Node) ClusterID() string { return n.mf.ClusterID }

// ClusterURL is the https URL of this host's cluster listener (what
// --join takes).
func (n *Node) ClusterURL() string {
	if n.ln != nil {
		if _, port, err := net.SplitHostPort(n.ln.Addr().String()); err == nil {
			u, _ := url.Parse(n.mf.ClusterURL)
			return "https://" + net.JoinHostPort(u.Hostname(), port)
		}
	}
	return n.mf.ClusterURL
}

// Endpoints are the etcd client URLs this host uses: the voters' (its own
// member's first).
func (n *Node) Endpoints() []string {
	var eps []string
	if n.mf.ClientURL != "" {
		eps = append(eps, n.mf.ClientURL)
	}
	for _, ep := range n.mf.Endpoints {
		if ep != n.mf.ClientURL {
			eps = append(eps, ep)
		}
	}
	return eps
}

// refreshEndpoints records the voters' client URLs as etcd lists them now,
// so that a restart finds the cluster as it is.
func (n *Node) refreshEndpoints(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ml, err := n.cli.MemberList(ctx)
	if err != nil {
		return
	}
	var eps []string
	for _, m := range ml.Members {
		if !m.IsLearner {
			eps = append(eps, m.ClientURLs...)
		}
	}
	if len(eps) == 0 || slices.Equal(eps, n.mf.Endpoints) {
		return
	}
	n.mf.Endpoints = eps
	if err := n.saveMemberFile(); err != nil {
		n.log.Warn("record the etcd endpoints", "err", err)
	}
}

// Files are the PEM files of the cluster CA and this host's certificate
// and key, for an etcd client (--etcd-ca/--etcd-cert/--etcd-key).
func (n *Node) Files() (ca, cert, key string) {
	return filepath.Join(n.dir, caFile), filepath.Join(n.dir, certFile), filepath.Join(n.dir, keyFile)
}

// Client is the node's etcd client (closed by Close).
func (n *Node) Client() *clientv3.Client { return n.cli }

// Close stops the cluster listener, the etcd client and the member (its
// data stays for the next Open). It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n.srv.Shutdown(ctx)
			cancel()
		}
		if n.cli != nil {
			n.closeErr = n.cli.Close()
		}
		if n.etcd != nil {
			n.etcd.Close()
		}
	})
	return n.closeErr
}
