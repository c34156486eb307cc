package pg

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

func testOptions(t *testing.T) ClusterOptions {
	t.Helper()
	ca, caKey, err := NewCA("db", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := NewServerCert(ca, caKey, ServerNames("db"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ClusterOptions{
		App:       "db",
		Consensus: types.PgConsensus{Endpoints: []string{"http://10.0.0.1:2379"}, Username: "pg-db", Namespace: "/hangar-pg/", Scope: "db"},
		CACert:    ca, ServerCert: cert,
	}
}

// The configuration Patroni reads: the cluster's scope and etcd user, no
// password anywhere (they come from the environment), TLS on every
// network connection, replication checking the peer against the CA.
func TestPatroniConfig(t *testing.T) {
	o := testOptions(t)
	o.Synchronous = true
	b, err := PatroniConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Scope     string `json:"scope"`
		Namespace string `json:"namespace"`
		Etcd3     struct {
			Hosts      []string `json:"hosts"`
			Protocol   string   `json:"protocol"`
			Username   string   `json:"username"`
			UseProxies bool     `json:"use_proxies"`
		} `json:"etcd3"`
		Bootstrap struct {
			DCS struct {
				TTL         int  `json:"ttl"`
				LoopWait    int  `json:"loop_wait"`
				Retry       int  `json:"retry_timeout"`
				Synchronous bool `json:"synchronous_mode"`
			} `json:"dcs"`
		} `json:"bootstrap"`
		PostgreSQL struct {
			Listen  string                       `json:"listen"`
			DataDir string                       `json:"data_dir"`
			BinDir  string                       `json:"bin_dir"`
			HBA     []string                     `json:"pg_hba"`
			Params  map[string]any               `json:"parameters"`
			Auth    map[string]map[string]string `json:"authentication"`
		} `json:"postgresql"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Scope != "db" || cfg.Namespace != "/hangar-pg/" || !slices.Equal(cfg.Etcd3.Hosts, []string{"10.0.0.1:2379"}) ||
		cfg.Etcd3.Protocol != "http" || cfg.Etcd3.Username != "pg-db" || !cfg.Etcd3.UseProxies {
		t.Fatalf("dcs config: %s", b)
	}
	dcs := cfg.Bootstrap.DCS
	if !dcs.Synchronous || dcs.LoopWait+2*dcs.Retry > dcs.TTL {
		t.Fatalf("timings %+v: Patroni needs loop_wait + 2*retry_timeout <= ttl", dcs)
	}
	if cfg.PostgreSQL.DataDir != DataDir || cfg.PostgreSQL.BinDir != "/usr/lib/postgresql/15/bin" || cfg.PostgreSQL.Listen != "*:5432" {
		t.Fatalf("postgresql: %+v", cfg.PostgreSQL)
	}
	for _, l := range cfg.PostgreSQL.HBA {
		if f := strings.Fields(l); f[0] == "host" || f[0] == "hostnossl" || strings.Contains(l, "trust") {
			t.Errorf("pg_hba line %q lets a connection in without TLS or a password", l)
		}
	}
	if cfg.PostgreSQL.Params["ssl"] != "on" {
		t.Errorf("ssl is %v", cfg.PostgreSQL.Params["ssl"])
	}
	for _, u := range []string{"superuser", "replication", "rewind"} {
		a := cfg.PostgreSQL.Auth[u]
		if a["sslmode"] != "verify-ca" || a["password"] != "" {
			t.Errorf("%s authentication %v: want verify-ca and no password in the file", u, a)
		}
	}
	if strings.Contains(string(b), `"password"`) {
		t.Errorf("a password in the config:\n%s", b)
	}

	if _, err := PatroniConfig(ClusterOptions{App: "db"}); err == nil {
		t.Error("a config without a consensus store was made")
	}
	o.Consensus.Endpoints = []string{"http://nohost"}
	if _, err := PatroniConfig(o); err == nil {
		t.Error("an endpoint without a port was taken")
	}
}

// A member's machine config: Patroni's files mounted, the key from a
// secret, and two services to the same internal port whose checks ask
// Patroni for the member's role.
func TestMemberConfig(t *testing.T) {
	o := testOptions(t)
	cfg, err := MemberConfig(o, "hangar/postgres:15-x", types.MachineGuest{CPUs: 1, MemoryMB: 256}, "vol_1")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]types.File{}
	for _, f := range cfg.Files {
		files[f.GuestPath] = f
	}
	for _, p := range []string{"/start.sh", "/patroni.yml", "/ctl.py", "/server.crt", "/ca.crt"} {
		f, ok := files[ConfigDir+p]
		if !ok || f.RawValue == nil {
			t.Fatalf("file %s: %+v", p, f)
		}
		if _, err := base64.StdEncoding.DecodeString(*f.RawValue); err != nil {
			t.Fatalf("file %s: %v", p, err)
		}
	}
	if k := files[ConfigDir+"/server.key"]; k.SecretName == nil || *k.SecretName != SecretServerKey || k.RawValue != nil {
		t.Fatalf("the server key is not from the secret: %+v", k)
	}
	if len(cfg.Services) != 2 {
		t.Fatalf("services %+v", cfg.Services)
	}
	want := map[int]string{Port: "/primary", ReplicaPort: "/replica"}
	keys := map[string]bool{}
	for _, s := range cfg.Services {
		port := *s.Ports[0].Port
		if s.InternalPort != Port || len(s.Checks) != 1 || s.Checks[0].Path != want[port] || *s.Checks[0].Port != PatroniPort {
			t.Errorf("service %d: %+v", port, s)
		}
		keys[s.RouteKey()] = true
	}
	if len(keys) != 2 {
		t.Errorf("the two services share a route key: %v", keys)
	}
	if cfg.Env["PATRONI_ETCD3_HOSTS"] != `["10.0.0.1:2379"]` || cfg.Env["PG_CONSENSUS_HOST"] != "10.0.0.1" || cfg.Env["PATRONI_ETCD3_USERNAME"] != "pg-db" {
		t.Errorf("env %v", cfg.Env)
	}
	if len(cfg.Mounts) != 1 || cfg.Mounts[0].Volume != "vol_1" || cfg.Mounts[0].Path != "/data" {
		t.Errorf("mounts %+v", cfg.Mounts)
	}
}

// On a cluster of hosts the store is on a 6PN gateway: Patroni gets the
// endpoint as a list whose brackets are the address's, and the start
// script the bare address to route towards.
func TestMemberConfigIPv6Consensus(t *testing.T) {
	o := ClusterOptions{App: "db", Consensus: types.PgConsensus{Endpoints: []string{"http://[fdaa:0:1:2::1]:40000"}, Username: "pg-db", Namespace: "/hangar-pg/"},
		ServerCert: []byte("c"), CACert: []byte("a")}
	cfg, err := MemberConfig(o, "img", types.MachineGuest{CPUs: 1, MemoryMB: 256}, "vol_1")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Env["PATRONI_ETCD3_HOSTS"]; got != `["[fdaa:0:1:2::1]:40000"]` {
		t.Errorf("PATRONI_ETCD3_HOSTS = %s", got)
	}
	if got := cfg.Env["PG_CONSENSUS_HOST"]; got != "fdaa:0:1:2::1" {
		t.Errorf("PG_CONSENSUS_HOST = %s", got)
	}
	b, err := PatroniConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Restapi struct{ Listen string }
		Etcd3   struct{ Hosts []string }
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Restapi.Listen != "[::]:8008" || len(c.Etcd3.Hosts) != 1 || c.Etcd3.Hosts[0] != "[fdaa:0:1:2::1]:40000" {
		t.Errorf("patroni config %+v", c)
	}
}

// The member certificate verifies for the names apps use, against the
// cluster CA only.
func TestClusterCertificates(t *testing.T) {
	now := time.Now()
	ca, caKey, err := NewCA("db", now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := NewServerCert(ca, caKey, append(ServerNames("db"), "10.0.0.5"), now)
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode(keyPEM); blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Fatal("the key is not PEM")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("the CA is not PEM")
	}
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"db.flycast", "db.internal", "m1.db.internal", "localhost", "10.0.0.5"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "other.flycast", Roots: pool}); err == nil {
		t.Error("the certificate verifies for another app's name")
	}
	other, _, err := NewCA("other", now)
	if err != nil {
		t.Fatal(err)
	}
	otherPool := x509.NewCertPool()
	otherPool.AppendCertsFromPEM(other)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "db.flycast", Roots: otherPool}); err == nil {
		t.Error("the certificate verifies against another cluster's CA")
	}
	if _, _, err := NewServerCert(certPEM, keyPEM, []string{"x"}, now); err == nil {
		t.Error("a server certificate signed a certificate")
	}
	if _, _, err := NewServerCert(ca, caKey, nil, now); err == nil {
		t.Error("a certificate without names was made")
	}
}

// PrimaryRouteKey names the member's service that Patroni's /primary
// gates (DNS names only the member where it is up).
func TestPrimaryRouteKey(t *testing.T) {
	o := ClusterOptions{App: "db", Consensus: types.PgConsensus{Endpoints: []string{"http://10.0.0.1:2379"}, Username: "pg-db"}, ServerCert: []byte("c"), CACert: []byte("a")}
	cfg, err := MemberConfig(o, "img", types.MachineGuest{CPUs: 1, MemoryMB: 256}, "vol_1")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if s.RouteKey() == PrimaryRouteKey {
			n++
			if s.Checks[0].Path != "/primary" {
				t.Errorf("the service with key %s checks %s", PrimaryRouteKey, s.Checks[0].Path)
			}
		}
	}
	if n != 1 || cfg.Metadata[ClusterMetaKey] != "db" {
		t.Errorf("%d services with key %s; metadata %v", n, PrimaryRouteKey, cfg.Metadata)
	}
}
