package pg

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// A replicated Hangar Postgres: one machine per member, each running
// Patroni, which runs PostgreSQL and elects the primary through a
// consensus store (etcd). The members' start script and Patroni's
// configuration are machine files (MemberConfig), not part of the image,
// so they change without a rebuild.

// Paths inside a member.
const (
	// ConfigDir holds the files MemberConfig mounts.
	ConfigDir = "/etc/hangar/pg"
	// PatroniPort is Patroni's REST API (/primary, /replica, /cluster).
	PatroniPort = 8008
	// Port is PostgreSQL's port; ReplicaPort is the public port of the
	// replicas' service (Fly's 5433), to the same internal port.
	Port        = 5432
	ReplicaPort = 5433
)

// Secrets a replicated cluster keeps as its app's secrets.
const (
	SecretOperator    = "OPERATOR_PASSWORD"    // the superuser postgres
	SecretReplication = "REPL_PASSWORD"        // the replication user
	SecretRestAPI     = "PATRONI_API_PASSWORD" // Patroni's REST API's unsafe endpoints (switchover)
	SecretCACert      = "PG_CA_CERT"           // the cluster CA (PEM); `hangar pg ca` prints it
	SecretCAKey       = "PG_CA_KEY"            // its key, for new member certificates
	SecretServerKey   = "PG_TLS_KEY"           // the members' server key
)

// ReplicationUser and RestAPIUser are the users Patroni is set up with.
const (
	ReplicationUser = "replicator"
	RestAPIUser     = "hangar"
)

//go:embed patroni-start.sh
var patroniStart []byte

//go:embed ctl.py
var ctlScript []byte

// MemberStartScript is the members' start script (MemberConfig mounts it).
func MemberStartScript() []byte { return append([]byte(nil), patroniStart...) }

// CtlScript is the helper the CLI runs in a member (python3 CtlScript
// cluster|switchover [CANDIDATE]): Patroni's /cluster, or a switchover.
const CtlScript = ConfigDir + "/ctl.py"

// ClusterOptions describe a replicated cluster's members.
type ClusterOptions struct {
	App       string
	Version   int
	Consensus types.PgConsensus
	// ServerCert is the members' certificate (PEM), CACert the cluster
	// CA's; the key is the SecretServerKey secret.
	ServerCert, CACert []byte
	// Synchronous turns on Patroni's synchronous mode (an acknowledged
	// commit is on a replica too).
	Synchronous bool
	// Backup, when set, archives WAL to the cluster's pgBackRest
	// repository (backup.go); Restore makes the first member restore
	// from a backup instead of running initdb.
	Backup  *BackupOptions
	Restore *RestoreOptions
}

// PatroniConfig is the Patroni configuration (JSON, which is YAML) every
// member of the cluster shares; what differs per member (its name and
// addresses) and the passwords come from the environment the start script
// sets (PATRONI_NAME, PATRONI_*_CONNECT_ADDRESS, PATRONI_*_PASSWORD).
func PatroniConfig(o ClusterOptions) ([]byte, error) {
	if o.App == "" || len(o.Consensus.Endpoints) == 0 || o.Consensus.Username == "" {
		return nil, fmt.Errorf("patroni config: app %q, consensus %+v: the app and an etcd user are needed", o.App, o.Consensus)
	}
	v := o.Version
	if v == 0 {
		v = DefaultVersion
	}
	var hosts []string
	protocol := "http"
	for _, ep := range o.Consensus.Endpoints {
		scheme, host, ok := strings.Cut(ep, "://")
		if !ok {
			host = ep
		} else {
			protocol = scheme
		}
		if _, _, err := net.SplitHostPort(host); err != nil {
			return nil, fmt.Errorf("patroni config: consensus endpoint %q: %w", ep, err)
		}
		hosts = append(hosts, host)
	}
	tlsDir := "/run/hangar-pg"
	ssl := map[string]any{
		"ssl":           "on",
		"ssl_cert_file": tlsDir + "/server.crt",
		"ssl_key_file":  tlsDir + "/server.key",
		"ssl_ca_file":   tlsDir + "/ca.crt",
	}
	params := map[string]any{
		"unix_socket_directories": "/tmp",
		"password_encryption":     "scram-sha-256",
	}
	for k, val := range ssl {
		params[k] = val
	}
	// Replication and rewind connect to another member with TLS, checking
	// its certificate against the cluster CA.
	peerTLS := map[string]any{"sslmode": "verify-ca", "sslrootcert": tlsDir + "/ca.crt"}
	withTLS := func(user string) map[string]any {
		m := map[string]any{"username": user}
		for k, val := range peerTLS {
			m[k] = val
		}
		return m
	}
	cfg := map[string]any{
		"scope":     o.App,
		"namespace": o.Consensus.Namespace,
		"restapi": map[string]any{
			// Every address (IPv6 and, dual-stack, IPv4): members on
			// other hosts call it over the 6PN network.
			"listen":         "[::]:" + strconv.Itoa(PatroniPort),
			"authentication": map[string]any{"username": RestAPIUser},
		},
		"etcd3": map[string]any{
			"hosts":       hosts,
			"protocol":    protocol,
			"username":    o.Consensus.Username,
			"use_proxies": true,
		},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				// A primary that cannot renew its leader key within ttl
				// demotes itself; a replica takes over after ttl.
				"ttl":                     10,
				"loop_wait":               1,
				"retry_timeout":           3,
				"maximum_lag_on_failover": 16 << 20,
				"synchronous_mode":        o.Synchronous,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters": map[string]any{
						"wal_level":             "replica",
						"hot_standby":           "on",
						"wal_log_hints":         "on",
						"max_wal_senders":       10,
						"max_replication_slots": 10,
						"wal_keep_size":         "128MB",
					},
				},
			},
			"initdb": []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C.UTF-8"}, "data-checksums"},
		},
		"postgresql": map[string]any{
			"listen":          "*:" + strconv.Itoa(Port),
			"data_dir":        DataDir,
			"bin_dir":         "/usr/lib/postgresql/" + strconv.Itoa(v) + "/bin",
			"pgpass":          "/tmp/pgpass-patroni",
			"use_unix_socket": true,
			"authentication": map[string]any{
				"superuser":   withTLS("postgres"),
				"replication": withTLS(ReplicationUser),
				"rewind":      withTLS("postgres"),
			},
			"parameters": params,
			// TLS on every network connection; local ones by peer.
			"pg_hba": []string{
				"local all all peer",
				"hostssl replication " + ReplicationUser + " all scram-sha-256",
				"hostssl all all all scram-sha-256",
			},
		},
		"watchdog": map[string]any{"mode": "off"},
		"tags":     map[string]any{"nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false},
	}
	applyBackup(cfg, params, o)
	return json.MarshalIndent(cfg, "", "  ")
}

// MemberConfig is the machine config of a cluster member: the image, the
// volume at /data, Patroni's start script and configuration, the TLS
// files, and the two services Fly's Postgres has: port 5432 to the primary
// and 5433 to a replica, each routed only to the members whose Patroni
// answers 200 on /primary or /replica.
func MemberConfig(o ClusterOptions, imageRef string, guest types.MachineGuest, volumeID string) (*types.MachineConfig, error) {
	conf, err := PatroniConfig(o)
	if err != nil {
		return nil, err
	}
	raw := func(b []byte) *string { s := base64.StdEncoding.EncodeToString(b); return &s }
	secret := func(s string) *string { return &s }
	no := false
	service := func(port int, role string) types.MachineService {
		p := port
		return types.MachineService{
			Protocol: "tcp", InternalPort: Port, Autostart: &no, Autostop: types.Ptr(types.AutostopOff),
			Ports: []types.MachinePort{{Port: &p}},
			// A connection may wait for its machine during a failover
			// instead of being refused.
			Concurrency: &types.MachineServiceConcurrency{Type: "connections", SoftLimit: 1000, HardLimit: 1000},
			Checks: []types.MachineCheck{{
				Type: "http", Port: types.Ptr(PatroniPort), Method: "GET", Path: "/" + role,
				Interval: &types.Duration{Duration: time.Second}, Timeout: &types.Duration{Duration: time.Second},
			}},
		}
	}
	c := &types.MachineConfig{
		Image: imageRef,
		Guest: &guest,
		Init:  types.MachineInit{Entrypoint: []string{"/bin/sh", ConfigDir + "/start.sh"}},
		// Patroni takes the etcd password from the environment only
		// when the etcd3 section is there too (PATRONI_ETCD3_HOSTS).
		Env: map[string]string{
			"PG_CONSENSUS_HOST": firstHost(o.Consensus.Endpoints),
			// A YAML list, so that an IPv6 endpoint's brackets are
			// not read as one.
			"PATRONI_ETCD3_HOSTS":    etcdHostList(o.Consensus.Endpoints),
			"PATRONI_ETCD3_PROTOCOL": etcdProtocol(o.Consensus.Endpoints),
			"PATRONI_ETCD3_USERNAME": o.Consensus.Username,
			// The endpoints as given: etcd 3.5+ answers an anonymous
			// member list (Patroni's discovery) with "user name is empty".
			"PATRONI_ETCD3_USE_PROXIES": "true",
		},
		Files: []types.File{
			{GuestPath: ConfigDir + "/start.sh", RawValue: raw(patroniStart), Mode: 0o755},
			{GuestPath: ConfigDir + "/patroni.yml", RawValue: raw(conf)},
			{GuestPath: CtlScript, RawValue: raw(ctlScript)},
			{GuestPath: ConfigDir + "/server.crt", RawValue: raw(o.ServerCert)},
			{GuestPath: ConfigDir + "/ca.crt", RawValue: raw(o.CACert)},
			{GuestPath: ConfigDir + "/server.key", SecretName: secret(SecretServerKey)},
		},
		Mounts:   []types.MachineMount{{Volume: volumeID, Path: "/data"}},
		Restart:  &types.MachineRestart{Policy: "always"},
		Services: []types.MachineService{service(Port, "primary"), service(ReplicaPort, "replica")},
		Metadata: map[string]string{"role": RoleKey, "fly_process_group": "app", ClusterMetaKey: o.App},
	}
	addBackupFiles(c, o)
	return c, nil
}

// RoleKey is the metadata role of a Hangar Postgres machine.
const RoleKey = "hangar-postgres"

// ClusterMetaKey is the metadata of a Patroni member: its cluster (app).
const ClusterMetaKey = "hangar_pg_cluster"

// PrimaryRouteKey is the RouteKey of a member's service to the primary
// (public port 5432); DNS names only the member where it is up.
var PrimaryRouteKey = (&types.MachineService{Protocol: "tcp", InternalPort: Port, Ports: []types.MachinePort{{Port: types.Ptr(Port)}}}).RouteKey()

// firstHost is the host of the first endpoint (the member's start script
// learns its own address by routing towards it).
func firstHost(eps []string) string {
	if len(eps) == 0 {
		return ""
	}
	_, hp, ok := strings.Cut(eps[0], "://")
	if !ok {
		hp = eps[0]
	}
	h, _, err := net.SplitHostPort(hp)
	if err != nil {
		return hp
	}
	return h
}

func etcdHosts(eps []string) []string {
	var out []string
	for _, ep := range eps {
		if _, hp, ok := strings.Cut(ep, "://"); ok {
			ep = hp
		}
		out = append(out, ep)
	}
	return out
}

// etcdHostList is the endpoints' host:port as a YAML flow list (JSON),
// how Patroni reads PATRONI_ETCD3_HOSTS.
func etcdHostList(eps []string) string {
	b, _ := json.Marshal(etcdHosts(eps))
	return string(b)
}

func etcdProtocol(eps []string) string {
	if len(eps) > 0 {
		if scheme, _, ok := strings.Cut(eps[0], "://"); ok {
			return scheme
		}
	}
	return "http"
}
