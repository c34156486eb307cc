// Package daemon wires Hangar's components together into the `hangar
// server` process: state store, image store, runtime driver, network,
// supervisor, proxy, deployer and API. It is the only package that knows
// all of them.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/api"
	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/dashboard"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/dns"
	"github.com/hangar-dev/hangar/internal/flycast"
	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/hosts"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/logs"
	"github.com/hangar-dev/hangar/internal/mesh"
	"github.com/hangar-dev/hangar/internal/metrics"
	"github.com/hangar-dev/hangar/internal/network"
	"github.com/hangar-dev/hangar/internal/pg"
	"github.com/hangar-dev/hangar/internal/pgdcs"
	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/tcpproxy"
	"github.com/hangar-dev/hangar/internal/types"
	"github.com/hangar-dev/hangar/internal/volume"
)

// DefaultOptions are `hangar server`'s defaults where the zero value is not
// one (the machine network's bridge and subnets).
func DefaultOptions() Options { return Options{Network: network.DefaultConfig} }

// Options configure the daemon (flags of `hangar server`).
type Options struct {
	// Reload, when it delivers, hands the listeners to a new daemon
	// process and ends Run once the old one has drained (see reload.go).
	Reload <-chan os.Signal

	DataDir    string
	APIListen  string
	HTTPListen string
	Domain     string
	Region     string
	Org        string
	Runtime    string // "", "crun" or "runc"
	Network    network.Config
	// Machine logs: shims rotate a log file at LogMaxBytes (0: never);
	// log files are removed LogRetention after their last line (0: with
	// their app), and the oldest first when an app's take more than
	// LogMaxAppBytes (0: no limit); an app may have its own limits.
	LogMaxBytes    int64
	LogRetention   time.Duration
	LogMaxAppBytes int64
	// LogSweepInterval is how often retention runs (0: a minute).
	LogSweepInterval time.Duration
	// NATSListen, if set, serves the machine logs on NATS there
	// (fly-log-shipper's source; Fly's port is 4223).
	NATSListen string
	// AutostopInterval is how often idle machines beyond an app's
	// min_machines_running are stopped or suspended (0: never).
	AutostopInterval time.Duration
	// ScheduleInterval is how often scheduled machines (config.schedule)
	// are checked for a run that is due (0: never).
	ScheduleInterval time.Duration
	Log              *slog.Logger

	// HTTPSListen, if set, serves the proxy over TLS (certificates from
	// <data-dir>/certs, ACME from ACMEDirectory; "off" = self-signed only).
	HTTPSListen   string
	ACMEDirectory string

	// Etcd, if set, keeps the state in etcd instead of
	// <data-dir>/state.db (see state.go).
	Etcd *EtcdOptions

	// HostID names this host among the hosts sharing a state ("": the
	// one kept in <data-dir>/host-id, made at the first start).
	HostID string
	// AdvertiseAddr is the IP or DNS name other hosts reach this one at
	// (--advertise-addr): its API URL is http://AdvertiseAddr:<API port>
	// (a URL is taken as it is); default: the API's listening address.
	// With Cluster, the cluster listeners default to it too.
	AdvertiseAddr string
	// HostMemoryMB, if positive, is the memory this host offers machines
	// (default: all of the machine's).
	HostMemoryMB int64
	// HostFailureGrace is how long another host reads unreachable before
	// its machines without volumes are replaced on the hosts that remain
	// (0: hosts.DefaultFailoverGrace; negative: never). Only with the
	// state in etcd (docs/cluster.md, "Host failure").
	HostFailureGrace time.Duration
	// ForwardClient sends the requests this host forwards to other hosts'
	// APIs (nil: plain HTTP with a short connect timeout).
	ForwardClient *http.Client
	// Cluster, if set, makes this daemon a host of a cluster with an
	// embedded etcd (cluster.go); the state is then in that etcd.
	Cluster *ClusterOptions
	// Mesh: the WireGuard network between a cluster's hosts (mesh.go).
	Mesh MeshOptions
	// Edge is the edge across hosts: every cluster host's proxy routes to
	// the machines of every host (docs/edge.md).
	Edge EdgeOptions

	// MetricsListen is where /metrics is served ("": not at all, and the
	// proxy counts nothing). Off loopback it needs a token (metrics.go).
	MetricsListen string
	// AppMetricsInterval and AppMetricsTimeout: how often the apps'
	// [metrics] endpoints are scraped, and how long one scrape may take
	// (0: metrics.ScrapeInterval, metrics.ScrapeTimeout).
	AppMetricsInterval, AppMetricsTimeout time.Duration
}

// failoverInterval is how often each host looks for lost hosts' machines
// to replace (hosts.Failover).
const failoverInterval = time.Second

// Files the daemon writes into its data dir.
const (
	AdminTokenFile = "admin-token"
	// ReserveFile, in the data dir, is space kept for state writes on a
	// full disk (ReserveBytes).
	ReserveFile   = "disk-reserve"
	APIAddrFile   = "api-addr"
	HTTPAddrFile  = "http-addr"
	HTTPSAddrFile = "https-addr"
	// MetricsAddrFile holds the address /metrics is served on.
	MetricsAddrFile = "metrics-addr"
)

// Run starts the daemon and serves until ctx ends. Machines keep running
// after it returns.
func Run(ctx context.Context, o Options) error {
	ctx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.Org == "" {
		o.Org = "personal"
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", o.DataDir, err)
	}
	// Space kept back for the state store: given back when other writers
	// (images, logs, volumes) fill the disk, so state writes go on.
	disk := &fsutil.Reserve{Path: filepath.Join(o.DataDir, ReserveFile), Size: ReserveBytes}
	if ds, err := disk.Check(); err != nil {
		log.Warn("disk reserve", "err", err)
	} else if ds.Full {
		log.Error("the data dir's disk is full: the daemon serves, but images, logs and volumes cannot grow; free space", "path", ds.Path, "free_bytes", ds.FreeBytes)
	}
	go disk.Watch(ctx, 5*time.Second, log)
	// A reloading daemon hands over its listeners; take them before
	// waiting for it to release the state.
	inherited, err := inheritedListeners()
	if err != nil {
		return err
	}
	defer func() {
		for _, ln := range inherited {
			ln.Close() // those not used; closing a used one again is harmless
		}
	}()
	var lockWait time.Duration
	if inherited != nil {
		lockWait = 2 * time.Minute
		log.Info("took over the listeners of the previous daemon; waiting for it to release the state", "listeners", len(inherited))
	}
	node, err := openCluster(ctx, &o, inherited != nil, log)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	closeNode := func() error { return nil }
	if node != nil {
		closeNode = sync.OnceValue(node.Close)
		defer closeNode()
	}
	// This host's id: --host-id, else the one the data dir keeps, else its
	// name in the cluster, else a new one.
	var memberName string
	if node != nil {
		memberName = node.Name()
	}
	hostID, err := hosts.LoadOrCreateID(o.DataDir, o.HostID, memberName)
	if err != nil {
		return err
	}
	o.HostID = hostID
	stt, err := openState(ctx, o, lockWait)
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	// Metrics: one registry for the daemon. A component with
	// client_golang collectors of its own registers them with
	// mreg.Registerer() (they get the region and host labels).
	mreg := metrics.NewRegistry(o.Region, metrics.HostID(hostname()))
	hm := metrics.NewHangar(mreg.Registerer())
	st := hm.Store(stt.Store) // times the state's writes
	closeStore := sync.OnceValue(stt.close)
	defer closeStore()
	if o.Etcd != nil {
		log.Info("state in etcd", "state", o.stateName())
	}
	if err := hosts.CheckNotRemoved(ctx, st, o.DataDir, hostID); err != nil {
		return err
	}
	if err := auth.EnsureAdminToken(ctx, st, filepath.Join(o.DataDir, AdminTokenFile), o.Org, log); err != nil {
		return err
	}
	imageStore, err := image.NewStore(filepath.Join(o.DataDir, "images"), log.With("component", "image"))
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	images := &clusterImages{Store: imageStore, log: log.With("component", "image")}
	driver, err := runtime.NewOCI(filepath.Join(o.DataDir, "tasks"), o.Runtime, log.With("component", "runtime"))
	if err != nil {
		return err
	}
	defer driver.Close() // the spare shim
	stopMesh, meshDev, err := startMesh(ctx, &o, node, st, log.With("component", "mesh"))
	if err != nil {
		return err
	}
	defer stopMesh()
	netm, err := network.New(o.Network, log.With("component", "network"))
	if err != nil {
		return err
	}
	defer netm.Close() // the pool of prepared namespaces
	px := proxy.New(o.Domain, o.Region, log.With("component", "proxy"))
	px.NoStats = o.MetricsListen == ""
	var history *metrics.History // the last hour per app, for the dashboard (nil: metrics off)
	if o.MetricsListen != "" {
		history = &metrics.History{Proxy: px.Stats}
	}
	secretStore, vols, hooks, err := openSecretsAndVolumes(ctx, st, o, log)
	if err != nil {
		return err
	}
	// Machines' private DNS (.internal names, forwarding) on the bridge.
	dnsCtx, stopDNS := context.WithCancel(ctx)
	defer stopDNS()
	rtts, stopRTT := startRTT(ctx, o, st, netm, log.With("component", "rtt"))
	defer stopRTT()
	dnsSrv, nameservers := startDNS(dnsCtx, st, netm, o, rtts, pgPrimaryServing(px), log.With("component", "dns"))
	closeDNS := sync.OnceFunc(func() {
		if dnsSrv != nil {
			dnsSrv.Close()
		}
	})
	defer closeDNS()
	sup := supervisor.New(supervisor.Options{
		Store: st, Driver: driver, Network: netm, Images: images, Router: px,
		Region: o.Region, DataDir: o.DataDir, Log: log, SpecHooks: hooks, Nameservers: nameservers,
		Validators: []supervisor.Validator{secrets.ValidateFiles, vols.ValidateMounts}, HostID: hostID,
		Observer: hm,
	})
	shutdownSup := sync.OnceFunc(sup.Shutdown)
	defer shutdownSup()
	px.Waker = sup
	px.Port = portOf(o.HTTPListen)
	// Apps and their addresses; one watch of deleted apps for every cleaner.
	flycastRange, _ := netm.FlycastRange() // none: flycast.Start says why
	appSvc := apps.New(apps.Options{Store: st, Org: o.Org, FlycastRange: flycastRange})
	deletions := apps.NewDeletions(st)
	go deletions.Run(ctx)
	deployer := &deploy.Deployer{Store: st, Sup: sup, Images: images, EnsureApp: appSvc.Ensure, AppExists: appSvc.Exists, Apps: appSvc, Log: log.With("component", "deploy"), SmokeWindow: 500 * time.Millisecond}
	deployer.Secrets = secretStore
	deployer.Volumes = vols // scale count gives new machines their volumes
	deployer.Finished = hm.DeployFinished
	// TLS-ALPN-01 first when this daemon serves HTTPS: it needs nothing
	// from the HTTP listener's fast path.
	challenges := []string{"http-01", "tls-alpn-01"}
	if o.HTTPSListen != "" {
		challenges = []string{"tls-alpn-01", "http-01"}
	}
	certMgr, err := certs.New(certs.Options{Dir: filepath.Join(o.DataDir, "certs"), Domain: o.Domain,
		ACMEDirectory: o.ACMEDirectory, Challenges: challenges, Log: log.With("component", "certs")})
	if err != nil {
		return err
	}
	px.HostApp = certMgr.AppForHost
	px.StaticsRoot = func(ctx context.Context, ref string) (string, error) {
		img, err := images.Get(ctx, ref)
		if err != nil {
			return "", err
		}
		return img.RootFS, nil
	}
	// Per-app tls_options (ALPN, versions) chosen by the SNI name.
	tlsConfig := certMgr.TLSConfig(func(sni string) *certs.TLSOptions { return certs.TLSOptionsFrom(px.TLSOptions(sni)) })
	go certMgr.Run(ctx, 12*time.Hour)
	vols.Machines = sup
	go vols.Run(ctx, time.Minute)
	sup.SetLogMaxBytes(o.LogMaxBytes)
	logMetrics := logs.NewMetrics(filepath.Join(o.DataDir, "logs"))
	janitor := &supervisor.LogJanitor{Sup: sup, Store: st, MaxAge: o.LogRetention, MaxBytes: o.LogMaxAppBytes, Interval: o.LogSweepInterval, Log: log.With("component", "logs"),
		Removed: logMetrics.RetentionRemoved}
	deletions.Subscribe(ctx, func(context.Context, string) { janitor.AppDeleted() })
	go janitor.Run(ctx)
	shipper := &logs.Shipper{Store: st, Sources: sup.LogSources, Metrics: logMetrics, Log: log.With("component", "logship")}
	go shipper.Run(ctx)
	closeNATS := func() {}
	if o.NATSListen != "" {
		// Not being able to serve it does not stop the daemon.
		if natsSrv, err := startLogStream(ctx, o, st, sup, logMetrics, log); err != nil {
			log.Error("the NATS log stream is off", "err", err)
		} else {
			closeNATS = sync.OnceFunc(natsSrv.Close)
			defer closeNATS()
		}
	}
	for _, c := range logMetrics.Collectors() {
		if err := mreg.Registerer().Register(c); err != nil {
			log.Warn("register the logs' metrics", "err", err)
		}
	}

	listen := func(name, addr string) (net.Listener, error) {
		if ln := inherited[name]; ln != nil {
			return ln, nil
		}
		return net.Listen("tcp", addr)
	}
	httpLn, err := listen("http", o.HTTPListen)
	if err != nil {
		return fmt.Errorf("proxy listen %s: %w (another server on the port? pick one with --http-listen)", o.HTTPListen, err)
	}
	apiLn, err := listen("api", o.APIListen)
	if err != nil {
		httpLn.Close()
		return fmt.Errorf("API listen %s: %w (pick another with --api-listen)", o.APIListen, err)
	}
	var metricsLn net.Listener
	if o.MetricsListen != "" {
		if metricsLn, err = listen("metrics", o.MetricsListen); err != nil {
			httpLn.Close()
			apiLn.Close()
			return fmt.Errorf("metrics listen %s: %w (pick another with --metrics-listen, or \"\" for none)", o.MetricsListen, err)
		}
	}
	var httpsLn net.Listener
	if o.HTTPSListen != "" {
		if httpsLn, err = listen("https", o.HTTPSListen); err != nil {
			httpLn.Close()
			apiLn.Close()
			return fmt.Errorf("HTTPS proxy listen %s: %w (pick another with --https-listen)", o.HTTPSListen, err)
		}
	}
	_, httpPort, _ := net.SplitHostPort(httpLn.Addr().String())
	self, err := hostRecord(o, apiLn.Addr().String())
	if err != nil {
		httpLn.Close()
		apiLn.Close()
		return err
	}
	if meshDev != nil {
		self.WireGuard = meshDev.Kind()
	}
	forward := o.ForwardClient
	if node != nil {
		// In a cluster, hosts reach each other's API on their cluster
		// listeners, with mutual TLS under the cluster's CA.
		self.APIURL = node.ClusterURL()
		if forward == nil {
			forward = mtlsClient(node.ClientTLS())
		}
	}
	registry := &hosts.Registry{Store: st, Self: self, Log: log.With("component", "hosts")}
	remover := &hosts.Remover{Registry: registry, ReleaseSubnet: func(ctx context.Context, host string) error { return mesh.ReleaseSubnet(ctx, st, host) }}
	if node != nil {
		remover.RemoveMember = node.RemoveMember
	}
	pgCons := pgConsensus(ctx, o.DataDir, node != nil || o.Etcd != nil, netm, log.With("component", "pg-consensus"))
	if pgCons != nil {
		defer pgCons.Close()
	}
	apiSrv := api.New(api.Options{Store: st, Apps: appSvc, Sup: sup, Deployer: deployer, Images: imageStore, Secrets: secretStore,
		Volumes: vols, Certs: certMgr, Log: log.With("component", "api"), Org: o.Org, Region: o.Region, Domain: o.Domain, HTTPPort: httpPort,
		Hosts: registry, HostRemover: remover, Forward: forward,
		LogSinks: shipper,
		Disk: func() types.DiskState {
			d := disk.State()
			return types.DiskState{Path: d.Path, TotalBytes: d.TotalBytes, FreeBytes: d.FreeBytes, Full: d.Full}
		}, Cluster: apiCluster(node), Observe: hm.APIRequest, History: apiHistory(history), PgConsensus: apiPgConsensus(pgCons)})
	if node != nil {
		node.Handle("/v1/", apiSrv.Handler()) // other hosts' forwarded calls, tokens checked as on the API listener
		// Images between hosts: served to the others, fetched from them.
		node.Handle("GET "+image.ArchivePath, imageStore.ArchiveHandler())
		images.share(hostID, registry.List, forward)
	}
	if o.Etcd != nil {
		// Deploys drive each machine through its host, as this host (its
		// admin token is in the shared state, valid on every host).
		tok, err := os.ReadFile(filepath.Join(o.DataDir, AdminTokenFile))
		if err != nil {
			return fmt.Errorf("read this host's token for deploys across hosts: %w", err)
		}
		deployer.Sup = apiSrv.ClusterMachines(strings.TrimSpace(string(tok)))
	}
	if httpsLn != nil {
		_, px.HTTPSPort, _ = net.SplitHostPort(httpsLn.Addr().String())
	}
	// Raw TCP [[services]]: bound on the HTTP listener's host, kept in
	// sync with the apps' machine configs, machines picked by the proxy's
	// load balancer.
	listenHost, _, _ := net.SplitHostPort(o.HTTPListen)
	tcpMgr := &tcpproxy.Manager{Picker: px, ListenHost: listenHost, HTTP: px, Log: log.With("component", "tcpproxy"),
		TLSConfig: func(string) *tls.Config { return tlsConfig }}
	closeTCP := sync.OnceFunc(tcpMgr.Close)
	defer closeTCP()
	// Flycast: the apps' private addresses on the bridge, served by the proxy.
	fc := flycast.Start(ctx, st, netm, px, deletions, tcpMgr, func(string) *tls.Config { return tlsConfig }, inherited["flycast"], log.With("component", "flycast"))
	defer fc.Close()
	go tcpMgr.Sync(ctx, px)
	deletions.Subscribe(ctx, (&appCleaner{apps: appSvc, sec: secretStore, vols: vols, log: log, more: func(app string) {
		tcpMgr.Remove(app)
		px.RemoveApp(app)
		if err := certMgr.RemoveApp(app); err != nil {
			log.Warn("remove the certificates of a deleted app", "app", app, "err", err)
		}
		if pgCons != nil && app != "" {
			if err := pgCons.Forget(ctx, app); err != nil {
				log.Warn("remove the Postgres consensus user of a deleted app", "app", app, "err", err)
			}
		}
	}}).clean)
	// Re-adopt machines before serving, so the proxy knows them.
	if err := sup.Recover(ctx); err != nil {
		return fmt.Errorf("recover machines: %w", err)
	}
	// This host is ready once its machines are re-adopted.
	fenceKick := make(chan struct{}, 1)
	registry.OnRenewed = func() { // back after a loss: were machines replaced meanwhile?
		select {
		case fenceKick <- struct{}{}:
		default:
		}
	}
	if err := registry.Register(ctx); err != nil {
		return err
	}
	if o.Etcd != nil {
		go sup.RunFence(ctx, 0, fenceKick)
		if o.HostFailureGrace >= 0 {
			fo := &hosts.Failover{Registry: registry, Machines: sup, Grace: o.HostFailureGrace, Log: log.With("component", "failover")}
			go fo.Run(ctx, failoverInterval)
		}
	}
	if err := deployer.Resume(ctx); err != nil { // deploys a crash interrupted
		log.Warn("settle interrupted deploys", "err", err)
	}
	if recs, err := sup.List(ctx, ""); err == nil {
		for i := len(recs) - 1; i >= 0; i-- { // the newest machine's config first
			if recs[i].State != types.StateDestroyed && recs[i].State != types.StateDestroying {
				px.SeedAppConfig(recs[i].App, recs[i].Config)
			}
		}
	}
	addrFiles := map[string]string{APIAddrFile: apiLn.Addr().String(), HTTPAddrFile: httpLn.Addr().String()}
	if metricsLn != nil {
		addrFiles[MetricsAddrFile] = metricsLn.Addr().String()
	}
	if httpsLn != nil {
		addrFiles[HTTPSAddrFile] = httpsLn.Addr().String()
	}
	// The address and pid files are for the CLI and for reloads; a daemon
	// that cannot write them (a full disk) serves all the same.
	for name, addr := range addrFiles {
		writeConvenienceFile(log, o.DataDir, name, addr)
	}
	writeConvenienceFile(log, o.DataDir, PIDFile, strconv.Itoa(os.Getpid()))
	defer removePIDFile(o.DataDir)
	// Slow clients (slowloris) get 10s for their headers; an idle
	// keep-alive connection is closed after 60s, as Fly's proxy does.
	proxySrv := &http.Server{Handler: certMgr.HTTPHandler(px), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	stopper := &supervisor.Autostopper{Sup: sup, Loads: px, Interval: o.AutostopInterval, Log: log.With("component", "autostop")}
	actx, cancelAutostop := context.WithCancel(ctx)
	defer cancelAutostop()
	go stopper.Run(actx)
	scheduler := &supervisor.Scheduler{Sup: sup, Interval: o.ScheduleInterval, Log: log.With("component", "scheduler")}
	go scheduler.Run(actx)
	reaper := &supervisor.ConsoleReaper{Sup: sup, Interval: 5 * time.Second, Log: log.With("component", "console")}
	go reaper.Run(actx)
	if o.Edge.RTTs == nil && rtts != nil {
		o.Edge.RTTs = rtts // the edge ranks other regions by measured round trips
	}
	stopEdge, err := startEdge(ctx, &o, node, st, px, sup, hostID, meshDev, log.With("component", "edge"))
	if err != nil {
		return err
	}
	defer stopEdge()
	apiHTTP := &http.Server{Handler: apiAndDashboard(apiSrv.Handler(), log), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 4)
	var metricsHTTP *http.Server
	if metricsLn != nil {
		metricsHTTP = serveMetrics(actx, metricsLn, mreg, metricsSources{st: st, sup: sup, px: px, vols: vols, history: history, region: o.Region, log: log, interval: o.AppMetricsInterval, timeout: o.AppMetricsTimeout}, errc)
	}
	var httpsSrv *http.Server
	if httpsLn != nil {
		httpsTLS, errLog := tlsConfig, log.Handler()
		if metricsLn != nil { // handshake times and errors
			mtls := metrics.NewTLS(mreg.Registerer(), px.AppForHost)
			httpsTLS, errLog = mtls.Wrap(tlsConfig), mtls.Handler(errLog)
		}
		// The proxy makes the handshakes and serves HTTP/1.1 on its fast
		// path; httpsSrv serves HTTP/2 and what the fast path hands over
		// (its TLSConfig stays nil: the handshake is done when it gets a
		// connection). The HTTPS listener shares the proxy's connection
		// limits.
		httpsSrv = &http.Server{Handler: px, ConnContext: px.ConnContext, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
			MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(errLog, slog.LevelDebug)}
		go func() { errc <- px.ServeTLS(fc.Divert(httpsLn), httpsTLS, httpsSrv) }()
	}
	fc.Ready() // the apps' services are known: Flycast connections are served
	go func() { errc <- px.Serve(fc.Divert(httpLn), proxySrv) }()
	go func() { errc <- apiHTTP.Serve(apiLn) }()
	log.Info("hangar is running", "api", "http://"+apiLn.Addr().String(), "proxy", httpLn.Addr().String(),
		"domain", o.Domain, "region", o.Region, "host", hostID, "advertise", self.APIURL, "runtime", driver.Name(), "data_dir", o.DataDir, "pid", os.Getpid())
	lost, relocked := stt.lost, make(chan error, 1)
	for {
		select {
		case <-ctx.Done():
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
		case <-lost: // never for the file
			// Cut off from etcd for longer than the lock's lease: the
			// store refuses writes anyway (no quorum here), the proxy
			// goes on serving this host's machines, and the lock is
			// taken again once etcd answers; only if another daemon of
			// this host took it meanwhile does this one stop.
			log.Warn("lost the etcd lock of the state (etcd unreachable longer than the lock's lease); serving this host's machines and taking the lock again once etcd answers", "state", o.stateName())
			lost = nil
			go func() { relocked <- stt.relock(ctx) }()
			continue
		case err := <-relocked:
			if err != nil {
				if ctx.Err() != nil {
					break // shutting down
				}
				log.Error("another daemon took the etcd lock of the state while it was lost; stopping so that no two daemons act on one state; machines keep running", "state", o.stateName(), "err", err)
				return fmt.Errorf("state %s: lost the lock: %w", o.stateName(), err)
			}
			lost = stt.lost
			log.Info("took the etcd lock of the state again", "state", o.stateName())
			continue
		case <-o.Reload:
			pid, err := handOver(map[string]net.Listener{"api": apiLn, "http": httpLn, "https": httpsLn, "flycast": fc.Listener(), "metrics": metricsLn})
			if err != nil {
				log.Error("reload failed; this daemon keeps serving", "err", err)
				continue
			}
			log.Info("reload: the new daemon took the listeners; releasing the state to it and draining", "new_pid", pid)
			// The new daemon waits for the state: release it first (API
			// calls in flight finish, background work stops), then let
			// the proxied requests in flight finish.
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_ = px.Shutdown(dctx)
				if httpsSrv != nil {
					_ = httpsSrv.Shutdown(dctx)
				}
			}()
			actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = apiHTTP.Shutdown(actx)
			if metricsHTTP != nil {
				_ = metricsHTTP.Shutdown(actx)
			}
			cancel()
			cancelAutostop()
			registry.HandOver() // the host stays ready across the reload
			cancelRun()         // background loops that use the state
			closeTCP()
			shutdownSup()
			closeDNS()
			stopDNS()
			closeNATS() // its port, for the new daemon
			if err := closeStore(); err != nil {
				log.Warn("close state", "err", err)
			}
			if err := closeNode(); err != nil { // the new daemon waits for the member's ports
				log.Warn("stop the etcd member", "err", err)
			}
			<-drained
			log.Info("reload: drained; exiting, machines keep running")
			return nil
		}
		break
	}
	log.Info("shutting down; machines keep running")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = px.Shutdown(sctx)
	_ = apiHTTP.Shutdown(sctx)
	if httpsSrv != nil {
		_ = httpsSrv.Shutdown(sctx)
	}
	if metricsHTTP != nil {
		_ = metricsHTTP.Shutdown(sctx)
	}
	return nil
}

// startLogStream serves the machine logs on NATS (--nats-listen): clients
// log in with the org slug and an API token.
func startLogStream(ctx context.Context, o Options, st store.Store, sup *supervisor.Supervisor, m *logs.Metrics, log *slog.Logger) (*logs.NATS, error) {
	n, err := logs.StartNATS(logs.NATSOptions{Listen: o.NATSListen, Org: o.Org, Log: log.With("component", "nats"),
		Verify: func(ctx context.Context, token string) (string, error) {
			t, err := auth.Verify(ctx, st, token)
			if err != nil {
				return "", err
			}
			if t.Scope == auth.ScopeApp {
				return t.App, nil
			}
			return "", nil
		}})
	if err != nil {
		return nil, err
	}
	m.SetNATS(n.Stats)
	host, _ := os.Hostname()
	pub := &logs.Publisher{NATS: n, Host: host, Metrics: m, Log: log.With("component", "nats"),
		Sources: func(ctx context.Context) ([]logs.Source, error) { return sup.LogSources(ctx, "") }}
	go pub.Run(ctx)
	log.Info("serving machine logs on NATS", "addr", n.Addr(), "user", o.Org)
	return n, nil
}

// portOf is the port of a listen address ("80" when it names none).
func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "0" && port != "" {
		return port
	}
	return "80"
}

// openSecretsAndVolumes opens the secrets store (its key in the data dir),
// mounts the tmpfs for [[files]], re-mounts every volume (after a host
// reboot) and returns the spec hooks that inject both into machines.
func openSecretsAndVolumes(ctx context.Context, st store.Store, o Options, log *slog.Logger) (*secrets.Store, *volume.Manager, []supervisor.SpecHook, error) {
	sec, err := secrets.Open(st, o.DataDir, log)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("secrets: %w", err)
	}
	runDir := secrets.RunDirFor(o.DataDir)
	vols, err := volume.New(st, o.DataDir, o.Region, log)
	if err != nil {
		return nil, nil, nil, err
	}
	vols.HostID = o.HostID // before Recover: it mounts this host's volumes
	if err := vols.Recover(ctx); err != nil {
		log.Error("some volumes could not be mounted", "err", err)
	}
	hook := &secrets.Hook{Secrets: sec, Store: st, RunDir: runDir}
	return sec, vols, []supervisor.SpecHook{hook.SpecHook, vols.SpecHook}, nil
}

// RotateSecretsKey re-encrypts every secret under a new key (`hangar server
// --rotate-secrets-key`); no daemon may be using the data dir.
// o.DataDir and o.Etcd say where the state is.
func RotateSecretsKey(ctx context.Context, o Options) (int, error) {
	node, err := openCluster(ctx, &o, false, slog.Default())
	if err != nil {
		return 0, err
	}
	if node != nil {
		defer node.Close()
	}
	st, err := openState(ctx, o, 0)
	if err != nil {
		return 0, fmt.Errorf("open state (stop the daemon first): %w", err)
	}
	defer st.close()
	return secrets.RotateKey(ctx, st, o.DataDir)
}

// appCleaner destroys the secrets, volumes and snapshots of deleted apps
// (their machines are gone by then), as deleting an app does on Fly, and
// whatever more does; on a sweep (app "": at start, or when the watch of
// deleted apps lagged) it does so for every app with volumes but no record.
type appCleaner struct {
	apps *apps.Service
	sec  *secrets.Store
	vols *volume.Manager
	log  *slog.Logger
	more func(app string)
}

func (c *appCleaner) clean(ctx context.Context, app string) {
	if app != "" {
		c.remove(ctx, app)
		return
	}
	// A sweep: every app that still has volumes or secrets but no record.
	var names []string
	if all, err := c.vols.List(ctx, ""); err != nil {
		c.log.Warn("find the volumes of deleted apps", "err", err)
	} else {
		for _, v := range all {
			names = append(names, v.App)
		}
	}
	if withSecrets, err := c.sec.Apps(ctx); err != nil {
		c.log.Warn("find the secrets of deleted apps", "err", err)
	} else {
		names = append(names, withSecrets...)
	}
	done := map[string]bool{}
	for _, app := range names {
		if done[app] {
			continue
		}
		done[app] = true
		if ok, err := c.apps.Exists(ctx, app); err == nil && !ok {
			c.remove(ctx, app)
		}
	}
}

func (c *appCleaner) remove(ctx context.Context, app string) {
	c.more(app)
	if err := c.vols.DeleteApp(ctx, app); err != nil {
		c.log.Warn("remove the volumes of a deleted app", "app", app, "err", err)
	}
	if err := c.sec.DeleteApp(ctx, app); err != nil {
		c.log.Warn("remove the secrets of a deleted app", "app", app, "err", err)
	}
}

// startDNS serves the machines' DNS on the bridge's gateway addresses,
// port 53, answering only the machine subnets, and returns the nameservers
// machines get. If the port cannot be bound (another DNS server holds the
// wildcard address), machines keep the host's resolvers and have no
// .internal names; the daemon says so and runs on.
func startDNS(ctx context.Context, st store.Store, netm *network.Manager, o Options, rtts *hosts.RTTs, serving func(dns.Machine) (bool, bool), log *slog.Logger) (*dns.Server, []string) {
	gw4, gw6 := netm.Gateways()
	n4, n6 := netm.Subnets()
	var allow []netip.Prefix
	for _, n := range []*net.IPNet{n4, n6} {
		addr, _ := netip.AddrFromSlice(n.IP)
		ones, _ := n.Mask.Size()
		allow = append(allow, netip.PrefixFrom(addr.Unmap(), ones))
	}
	upstreams, err := dns.HostUpstreams("/etc/resolv.conf")
	if err != nil {
		log.Warn("machines can resolve only .internal names", "err", err)
	}
	reg := dns.NewRegistry()
	go dns.Follow(ctx, st, reg, log)
	srv, err := dns.Start(dns.Options{
		Listen:    []string{net.JoinHostPort(gw6.String(), "53"), net.JoinHostPort(gw4.String(), "53")},
		Allow:     allow,
		Upstreams: upstreams,
		Region:    o.Region,
		Source:    reg,
		Host:      o.HostID,
		Hosts:     rtts,
		Private:   meshPrefixes(o),
		Serving:   serving,
		Log:       log,
	})
	if err != nil {
		log.Warn("no .internal DNS for machines; they get the host's resolvers (free port 53 on the bridge addresses)", "err", err)
		return nil, nil
	}
	log.Info("machine DNS is running", "addrs", srv.Addrs(), "upstreams", upstreams)
	return srv, []string{gw6.String(), gw4.String()}
}

// ReserveBytes is the size of the data dir's disk reserve.
const ReserveBytes = 32 << 20

// hostRecord is this host as it registers: its id and region, the URL
// other hosts reach its API at (--advertise-addr with the API's port, else
// the API's listening address), and its capacity.
func hostRecord(o Options, apiAddr string) (types.Host, error) {
	host, port, _ := net.SplitHostPort(apiAddr)
	var url string
	switch {
	case strings.Contains(o.AdvertiseAddr, "://"):
		url = o.AdvertiseAddr
	case o.AdvertiseAddr != "":
		url = "http://" + net.JoinHostPort(o.AdvertiseAddr, port)
	default:
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			// Other hosts cannot dial 0.0.0.0: say where to reach us.
			if h, err := os.Hostname(); err == nil {
				host = h
			}
		}
		url = "http://" + net.JoinHostPort(host, port)
	}
	capacity := hosts.DetectCapacity(o.DataDir)
	if o.HostMemoryMB > 0 {
		capacity.MemoryMB = o.HostMemoryMB
	}
	return types.Host{ID: o.HostID, Region: o.Region, APIURL: url, Capacity: capacity, Version: Version}, nil
}

// Version is this build's version, recorded with the host (set by the
// build with -ldflags "-X ...daemon.Version=...").
var Version = "dev"

// apiAndDashboard serves the API under /v1/ and the web dashboard
// (internal/dashboard) at every other path of the API listener; the
// dashboard calls the API handler in-process with its user's token.
func apiAndDashboard(apiH http.Handler, log *slog.Logger) http.Handler {
	dash := dashboard.New(dashboard.Options{API: apiH, Log: log.With("component", "dashboard")})
	mux := http.NewServeMux()
	mux.Handle("/v1/", apiH)
	mux.Handle("/", dash.Handler())
	return mux
}

// mtlsClient is the client for calls to other hosts' APIs on their cluster
// listeners: tlsCfg (this host's certificate, the cluster CA), a short
// connect timeout, no overall one (wait, logs and console stream).
func mtlsClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: api.ForwardConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: api.ForwardConnectTimeout,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// pgConsensus is the embedded etcd of Hangar Postgres clusters. A single
// host serves it on the bridge's IPv4 gateway; a host of a cluster on
// its 6PN gateway (the bridge's ::1 of its /64), which every machine of
// the cluster reaches over the mesh, so a Postgres cluster's members on
// other hosts use the store of the host that granted it (docs/postgres.md,
// "Members on several hosts"). A store made before is started at once,
// since Postgres machines depend on it; a new one is started by its first
// grant.
func pgConsensus(ctx context.Context, dataDir string, clustered bool, netm *network.Manager, log *slog.Logger) *pgdcs.Server {
	gw4, gw6 := netm.Gateways()
	host := gw4.String()
	if clustered {
		if gw6 == nil {
			return nil
		}
		host = gw6.String()
	}
	s := &pgdcs.Server{DataDir: dataDir, Host: host, Log: log}
	if s.Exists() {
		if err := s.Start(ctx); err != nil {
			log.Warn("the Postgres clusters' consensus store did not start: their Patroni cannot elect a primary", "err", err)
		}
	}
	return s
}

// pgPrimaryServing makes <db>.internal name only a Hangar Postgres
// cluster's primary: the member whose primary service (port 5432, checked
// by Patroni's /primary) the proxy routes to, on this host or another.
func pgPrimaryServing(px *proxy.Proxy) func(dns.Machine) (bool, bool) {
	return func(m dns.Machine) (bool, bool) {
		if m.Metadata[pg.ClusterMetaKey] == "" {
			return false, false
		}
		up, _ := px.ServiceUp(m.App, m.ID, pg.PrimaryRouteKey)
		return up, true
	}
}

// apiPgConsensus keeps a nil *pgdcs.Server a nil interface.
func apiPgConsensus(s *pgdcs.Server) api.PgConsensus {
	if s == nil {
		return nil
	}
	return s
}
