package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/acme"

	"github.com/hangar-dev/hangar/internal/daemon"
)

func newServerCmd() *cobra.Command {
	o := daemon.DefaultOptions()
	var debug, rotate bool
	var etcd etcdFlags
	var cl clusterFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Hangar daemon (API, proxy, machines)",
		Long: `Run the Hangar daemon: the Machines API, the edge proxy and the machine
supervisor. Machines keep running when the daemon stops; the next start
re-adopts them. SIGHUP reloads: the binary now at this path takes over the
listening sockets without refusing a connection (an upgrade), and this
process exits once its requests in flight are done; <data-dir>/hangar.pid
names the serving daemon. Needs root (containers, network namespaces).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			eo, err := etcd.options(cl.init || cl.join != "")
			if err != nil {
				return err
			}
			o.Etcd = eo
			if o.Cluster, err = cl.options(cmd, etcd); err != nil {
				return err
			}
			o.AdvertiseAddr = cl.advertise
			if o.LogRetention < 0 {
				return fmt.Errorf("--log-retention %v is negative: use a duration like 168h, or 0 to keep logs until their app is deleted", o.LogRetention)
			}
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGHUP: hand the listeners to a new process of the binary at
			// the same path (an upgrade) without refusing a connection.
			reload := make(chan os.Signal, 1)
			signal.Notify(reload, syscall.SIGHUP)
			defer signal.Stop(reload)
			o.Reload = reload
			if rotate {
				n, err := daemon.RotateSecretsKey(ctx, o)
				if err != nil {
					return &HintError{Err: err, Hint: "stop the daemon using --data-dir first; a rerun finishes an interrupted rotation"}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Rotated the secrets key: %d secret values re-encrypted; start the daemon again\n", n)
				return nil
			}
			return daemon.Run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", DefaultDataDir, "where state, images, logs and the admin token live")
	f.StringVar(&o.APIListen, "api-listen", "127.0.0.1:4280", "address of the API")
	f.StringVar(&o.HTTPListen, "http-listen", ":80", "address of the HTTP proxy")
	f.StringVar(&o.HTTPSListen, "https-listen", "", "address of the HTTPS proxy, e.g. :443 (default: off)")
	f.StringVar(&o.MetricsListen, "metrics-listen", "127.0.0.1:9091", "address of Prometheus /metrics (\"\": off, and the proxy counts nothing); off loopback a token is needed: admin for every series, an app's token for its app's")
	f.DurationVar(&o.AppMetricsInterval, "app-metrics-interval", 15*time.Second, "how often the apps' [metrics] endpoints are scraped on each started machine")
	f.DurationVar(&o.AppMetricsTimeout, "app-metrics-timeout", 10*time.Second, "how long one scrape of an app's [metrics] endpoint may take")
	f.StringVar(&o.ACMEDirectory, "acme-directory", acme.LetsEncryptURL, "ACME directory URL for custom hostnames' certificates (\"off\": self-signed)")
	f.StringVar(&o.Domain, "domain", "localhost", "apps are served at <app>.<domain>")
	f.StringVar(&o.Region, "region", "local", "this host's region")
	f.StringVar(&o.HostID, "host-id", "", "this host's id among the hosts on one state (default: made at the first start and kept in <data-dir>/host-id)")
	f.Int64Var(&o.HostMemoryMB, "host-memory-mb", 0, "memory this host offers machines, in MB (default: all of it); placement never puts more on it")
	f.DurationVar(&o.HostFailureGrace, "host-failure-grace", 60*time.Second, "how long another host may be unreachable before its machines without volumes are started again on the hosts left (a negative value: never); with the state in etcd")
	f.StringVar(&o.Org, "org", "personal", "the organization this daemon serves")
	f.StringVar(&o.Runtime, "runtime", "", "OCI runtime: crun or runc (default: crun, or runc where crun cannot run)")
	f.StringVar(&o.Network.Bridge, "bridge", o.Network.Bridge, "host bridge for machine networks")
	f.StringVar(&o.Network.Subnet4, "subnet", o.Network.Subnet4, "IPv4 subnet for machines")
	f.StringVar(&o.Network.Subnet6, "subnet6", o.Network.Subnet6, "IPv6 (6PN) subnet for machines")
	f.DurationVar(&o.ScheduleInterval, "schedule-interval", 10*time.Second, "how often scheduled machines (machine run --schedule) are checked for a run that is due; 0 turns scheduled runs off")
	f.DurationVar(&o.AutostopInterval, "autostop-interval", autostopDefault(), "how often idle machines beyond min_machines_running are stopped or suspended (auto_stop_machines); 0 turns it off")
	o.LogMaxBytes = defaultLogMaxBytes
	f.Var((*byteSize)(&o.LogMaxBytes), "log-max-size", "rotate a machine's log file at this size, keeping one older file (e.g. 32MiB; 0: never rotate)")
	f.DurationVar(&o.LogRetention, "log-retention", defaultLogRetention, "remove a machine log file this long after its last line (0: keep logs until their app is deleted); an app may set its own (hangar logs retention)")
	o.LogMaxAppBytes = defaultLogMaxAppBytes
	f.Var((*sizeFlag)(&o.LogMaxAppBytes), "log-max-app-size", "the most an app's logs may take on disk; the oldest files go first (e.g. 1GiB; 0: no limit); an app may set its own")
	f.DurationVar(&o.LogSweepInterval, "log-sweep-interval", 0, "how often log retention runs (default: a minute, or half of --log-retention when shorter)")
	_ = f.MarkHidden("log-sweep-interval") // for tests
	f.StringVar(&o.NATSListen, "nats-listen", "", "serve machine logs on NATS at this address, as Fly does for fly-log-shipper (e.g. 127.0.0.1:4223; user: the org slug, password: an API token; default: off)")
	f.StringSliceVar(&etcd.endpoints, "etcd-endpoints", nil, "keep the state in this etcd cluster instead of <data-dir>/state.db: its members' client URLs, comma-separated (e.g. https://10.0.0.1:2379,https://10.0.0.2:2379)")
	f.StringVar(&etcd.ca, "etcd-ca", "", "PEM file of the CA that signed the etcd members' certificates (https endpoints)")
	f.StringVar(&etcd.cert, "etcd-cert", "", "PEM file of this daemon's client certificate for etcd (with --etcd-key)")
	f.StringVar(&etcd.key, "etcd-key", "", "PEM file of the key of --etcd-cert")
	f.StringVar(&etcd.prefix, "etcd-prefix", daemon.DefaultEtcdPrefix, "namespace of the state in etcd (shared by the hosts of one installation, each with its own --host-id)")
	f.BoolVar(&cl.init, "cluster-init", false, "make a new cluster with this host as its first member, running an embedded etcd (docs/cluster-join.md)")
	f.IntVar(&cl.voters, "voters", 3, "with --cluster-init: how many hosts are voting etcd members, 3 or 5 (later hosts are clients)")
	f.StringVar(&cl.join, "join", "", "join the cluster through this member's cluster listener, https://HOST:PORT (with --join-token)")
	f.StringVar(&cl.token, "join-token", "", "the token from `hangar cluster join-token` on a member (with --join)")
	f.StringVar(&cl.name, "member-name", "", "this host's name in the cluster (default: the hostname)")
	f.StringVar(&cl.advertise, "advertise-addr", "", "the IP or DNS name other hosts reach this one at: its API (http://NAME:API-PORT, where other hosts forward machine operations) and, with --cluster-init or --join, its cluster listeners (default there 127.0.0.1; else the API's listen address)")
	f.StringVar(&cl.clusterListen, "cluster-listen", "", "HOST:PORT of the cluster listener, for joins and host-to-host calls (default: --advertise-addr port 4281)")
	f.StringVar(&cl.peerListen, "etcd-peer-listen", "", "HOST:PORT of the embedded etcd member's peer listener, etcd's --listen-peer-urls (default: --advertise-addr port 2380)")
	f.StringVar(&cl.clientListen, "etcd-client-listen", "", "HOST:PORT of the embedded etcd member's client listener, etcd's --listen-client-urls (default: --advertise-addr port 2379)")
	f.BoolVar(&o.Mesh.Off, "no-mesh", false, "in a cluster: do not join the WireGuard mesh between hosts (machines then reach only their own host's; docs/mesh.md)")
	f.IntVar(&o.Mesh.Port, "mesh-port", 0, "in a cluster: the UDP port of the WireGuard mesh (default 51820)")
	f.BoolVar(&o.Mesh.Userspace, "mesh-userspace", os.Getenv("HANGAR_MESH_USERSPACE") == "1", "in a cluster: run WireGuard in userspace (wireguard-go) even where the kernel has it (env HANGAR_MESH_USERSPACE=1)")
	f.IntVar(&o.Edge.Port, "edge-port", 0, "in a cluster: the TCP port of the edge listener other hosts forward requests to (default: picked at each start); the plain hop listener on the mesh takes the next one (docs/edge.md)")
	f.BoolVar(&o.Edge.NoHop, "edge-no-hop", false, "in a cluster: serve no plain HTTP hop on the mesh; other hosts forward to this one over mutual TLS only (docs/edge.md)")
	f.BoolVar(&debug, "debug", false, "log debug messages")
	f.BoolVar(&rotate, "rotate-secrets-key", false, "re-encrypt every secret under a new key, then exit (the daemon must be stopped)")
	return cmd
}

// defaultLogMaxBytes is the default --log-max-size: at most two files of
// 32 MiB per machine.
const defaultLogMaxBytes = 32 << 20

// defaultLogRetention and defaultLogMaxAppBytes are the default
// --log-retention and --log-max-app-size: a month and 1 GiB per app.
const (
	defaultLogRetention   = 30 * 24 * time.Hour
	defaultLogMaxAppBytes = 1 << 30
)

// minLogMaxBytes is the smallest --log-max-size but 0: a line cut at
// 64 KiB, with its timestamp, always fits in one file.
const minLogMaxBytes = 128 << 10

// byteSize is a flag of a size in bytes: a whole number with an optional
// unit (B, KiB, MiB, GiB; KB, MB, GB are read as the same).
type byteSize int64

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n != 0 && n < minLogMaxBytes {
		return fmt.Errorf("%s is too small: use at least 128KiB (or 0 to never rotate)", s)
	}
	*b = byteSize(n)
	return nil
}

// parseSize reads a whole number of bytes with an optional unit (B, KiB,
// MiB, GiB, TiB; KB, MB, GB, TB are read as the same).
func parseSize(s string) (int64, error) {
	num := strings.TrimRightFunc(s, unicode.IsLetter)
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}[unit]
	if err != nil || n < 0 || mult == 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: use a whole number with a unit, like 32MiB or 1GiB", s)
	}
	return n * mult, nil
}

// sizeFlag is a flag of a size in bytes, as parseSize reads it.
type sizeFlag int64

func (b *sizeFlag) String() string { return (*byteSize)(b).String() }
func (b *sizeFlag) Type() string   { return "size" }
func (b *sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	*b = sizeFlag(n)
	return err
}

func (b *byteSize) Type() string { return "size" }

// autostopDefault is 60s, or HANGAR_AUTOSTOP_INTERVAL (a Go duration) when
// set, so tests that start the daemon can step autostop quickly.
func autostopDefault() time.Duration {
	if v := os.Getenv("HANGAR_AUTOSTOP_INTERVAL"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return 60 * time.Second
}

// etcdFlags are `hangar server`'s --etcd-* flags.
type etcdFlags struct {
	endpoints             []string
	ca, cert, key, prefix string
}

// options checks the --etcd-* flags and turns them into the daemon's
// options: nil (the state file) when --etcd-endpoints is not given.
func (f etcdFlags) options(inCluster bool) (*daemon.EtcdOptions, error) {
	hint := func(err error, hint string) error { return &HintError{Err: err, Hint: hint} }
	if len(f.endpoints) == 0 {
		if inCluster {
			if f.ca != "" || f.cert != "" || f.key != "" {
				return nil, hint(errors.New("--etcd-ca, --etcd-cert and --etcd-key are for --etcd-endpoints"),
					"a cluster host uses the cluster's own certificates (in <data-dir>/cluster)")
			}
			return nil, checkPrefix(f.prefix)
		}
		if f.ca != "" || f.cert != "" || f.key != "" || (f.prefix != "" && f.prefix != daemon.DefaultEtcdPrefix) {
			return nil, hint(errors.New("--etcd-ca, --etcd-cert, --etcd-key and --etcd-prefix need --etcd-endpoints"),
				"give the etcd members' client URLs with --etcd-endpoints, or drop the --etcd-* flags to keep the state in <data-dir>/state.db")
		}
		return nil, nil
	}
	https := 0
	for _, ep := range f.endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Port() == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, hint(fmt.Errorf("--etcd-endpoints: %q is not an etcd client URL", ep),
				"give each member as http(s)://HOST:PORT, e.g. https://10.0.0.1:2379")
		}
		if u.Scheme == "https" {
			https++
		}
	}
	if https != 0 && https != len(f.endpoints) {
		return nil, hint(errors.New("--etcd-endpoints mixes http:// and https:// URLs"), "the members of one etcd cluster serve clients the same way: use one scheme")
	}
	if (f.cert == "") != (f.key == "") {
		return nil, hint(errors.New("--etcd-cert and --etcd-key go together"), "give both this daemon's client certificate and its key, or neither")
	}
	if https == 0 && (f.ca != "" || f.cert != "") {
		return nil, hint(errors.New("--etcd-ca/--etcd-cert are for https:// endpoints, and --etcd-endpoints are http://"),
			"use the members' https:// client URLs")
	}
	if err := checkPrefix(f.prefix); err != nil {
		return nil, err
	}
	return &daemon.EtcdOptions{
		Endpoints: f.endpoints, CAFile: f.ca, CertFile: f.cert, KeyFile: f.key, Prefix: f.prefix,
	}, nil
}

// clusterFlags are `hangar server`'s cluster flags.
type clusterFlags struct {
	init                                    bool
	voters                                  int
	join, token, name, advertise            string
	clusterListen, peerListen, clientListen string
}

// options checks the cluster flags and turns them into the daemon's
// options: nil when none is given (a data dir already in a cluster stays
// in it without them).
func (f clusterFlags) options(cmd *cobra.Command, etcd etcdFlags) (*daemon.ClusterOptions, error) {
	hint := func(err error, hint string) error { return &HintError{Err: err, Hint: hint} }
	fl := cmd.Flags()
	any := false
	// --advertise-addr is not among them: it also names this host's API
	// for the hosts of an external etcd.
	for _, n := range []string{"cluster-init", "voters", "join", "join-token", "member-name", "cluster-listen", "etcd-peer-listen", "etcd-client-listen"} {
		any = any || fl.Changed(n)
	}
	if !any {
		return nil, nil
	}
	switch {
	case f.init && f.join != "":
		return nil, hint(errors.New("--cluster-init and --join exclude each other"),
			"--cluster-init on the first host only; the others --join it")
	case f.join != "" && f.token == "":
		return nil, hint(errors.New("--join needs --join-token"), "run `hangar cluster join-token` on a member and pass what it prints")
	case f.token != "" && f.join == "":
		return nil, hint(errors.New("--join-token needs --join"), "pass the member's cluster listener: --join https://HOST:4281")
	case fl.Changed("voters") && !f.init:
		return nil, hint(errors.New("--voters is for --cluster-init"), "the cluster's voter count is set when it is made")
	case f.voters != 3 && f.voters != 5:
		return nil, hint(fmt.Errorf("--voters %d", f.voters), "a cluster has 3 or 5 voting members")
	case len(etcd.endpoints) != 0:
		return nil, hint(errors.New("--etcd-endpoints and the cluster flags exclude each other"),
			"--etcd-endpoints uses an external etcd; --cluster-init and --join run an embedded one")
	}
	if f.join != "" {
		u, err := url.Parse(f.join)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			return nil, hint(fmt.Errorf("--join %q is not a cluster listener URL", f.join), "give https://HOST:PORT of a member (port 4281 unless it set --cluster-listen)")
		}
		if u.Port() == "" {
			f.join = "https://" + net.JoinHostPort(u.Hostname(), "4281")
		}
	}
	for name, v := range map[string]string{"--cluster-listen": f.clusterListen, "--etcd-peer-listen": f.peerListen, "--etcd-client-listen": f.clientListen} {
		if v == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return nil, hint(fmt.Errorf("%s %q is not HOST:PORT", name, v), "e.g. 10.0.0.1:2380")
		}
	}
	if !f.init && f.join == "" {
		// A data dir in a cluster restarts its member from what it
		// recorded at init or join; nothing else makes one.
		return nil, nil
	}
	return &daemon.ClusterOptions{Init: f.init, Voters: f.voters, Join: f.join, JoinToken: f.token, Name: f.name,
		AdvertiseAddr: f.advertise, ClusterListen: f.clusterListen, PeerListen: f.peerListen, ClientListen: f.clientListen,
		Prefix: etcd.prefix}, nil
}

func checkPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") || len(prefix) < 2 {
		return &HintError{Err: fmt.Errorf("--etcd-prefix %q must start and end with /", prefix),
			Hint: "e.g. /hangar/prod/: a prefix that is a plain string prefix of another's would share its keys"}
	}
	return nil
}
