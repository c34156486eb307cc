package daemon

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hangar-dev/hangar/internal/cluster"
	"github.com/hangar-dev/hangar/internal/mesh"
	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
)

// The edge across hosts (docs/edge.md): each cluster host serves an edge
// listener (mutual TLS, the cluster's host certificates) where other
// hosts' proxies forward requests for its machines, and on the mesh a
// plain hop listener (HTTP/1.1, only from other hosts' mesh addresses)
// for their fast paths; it publishes its machines for them under a
// lease, and follows what the others publish.

const (
	// edgePrefix holds one record per host: proxy.EdgeHost as JSON.
	edgePrefix = "edge/hosts/"
	// edgeLease is how long a host's record outlives the host's last
	// renewal: a host cut off gets no more requests from any edge after
	// it (the hosts' alive keys have the same).
	edgeLease = 10 * time.Second
	// edgePublishEvery bounds how stale a record is (checks' results,
	// load); the stopped machines that may be woken are read every
	// edgeWakeEvery.
	edgePublishEvery = 200 * time.Millisecond
	edgeWakeEvery    = time.Second
	// edgeConnectTimeout and edgePing bound how long a dead host holds a
	// request: a connection not made, or not answering a ping, fails its
	// requests (and idempotent ones move to another machine).
	edgeConnectTimeout = time.Second
	edgePing           = time.Second
)

// EdgeOptions are the edge across hosts' settings.
type EdgeOptions struct {
	// Off keeps this host's proxy to its own machines.
	Off bool
	// Distance ranks the regions of other hosts (measured RTTs); nil: this
	// region first, then the others alike.
	Distance proxy.Distance
	// RTTs, if set and Distance is not, gives Distance from this host's
	// measured round-trip times to the others.
	RTTs RTTSource
	// Port fixes the edge listener's TCP port (0: one picked at each
	// start); the plain hop listener on the mesh then takes Port+1.
	Port int
	// NoHop serves no plain hop listener: other hosts forward to this
	// one over TLS only, as off the mesh.
	NoHop bool
}

// RTTSource is what the edge reads of the hosts' measured round-trip
// times (hosts.RTTs).
type RTTSource interface {
	Between(fromHost, toHost string) (time.Duration, bool)
}

// rttDistance is the distance from host self by RTTSource.
type rttDistance struct {
	r    RTTSource
	self string
}

func (d rttDistance) Distance(host string) (time.Duration, bool) { return d.r.Between(d.self, host) }

// startEdge makes the proxy of a cluster host route to the machines of
// every host. A host without a cluster node (a single host, or hosts on an
// external etcd, which have no host certificates) routes to its own
// machines only. The returned stop ends it and removes this host's record.
func startEdge(ctx context.Context, o *Options, node *cluster.Node, st store.Store, px *proxy.Proxy, sup *supervisor.Supervisor, hostID string, dev *mesh.Mesh, log *slog.Logger) (func(), error) {
	lsr, ok := st.(store.Leaser)
	if node == nil || o.Edge.Off || !ok {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("::", strconv.Itoa(o.Edge.Port)))
	if err != nil {
		return nil, fmt.Errorf("edge listener on port %d: %w (is the port taken? --edge-port)", o.Edge.Port, err)
	}
	addr, err := edgeAddr(o, node, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	hop, hopAddr, err := startHop(o, px, dev, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(px.ServeEdge), TLSConfig: node.ServerTLS(), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 5 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("edge listener", "err", err)
		}
	}()
	up := edgeTransport(node.ClientTLS(), false)
	dist := o.Edge.Distance
	if dist == nil && o.Edge.RTTs != nil {
		dist = rttDistance{r: o.Edge.RTTs, self: hostID}
	}
	px.SetEdge(proxy.EdgeOptions{Host: hostID, Distance: dist, Transport: edgeTransport(node.ClientTLS(), true),
		UpgradeTransport: up, Dial: edgeDialer(up.TLSClientConfig), HopDial: hopDialer(hop)})
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pub := &edgePublisher{st: lsr, px: px, sup: sup, self: proxy.EdgeHost{ID: hostID, Region: o.Region, Addr: addr, Hop: hopAddr}, log: log}
	done := make(chan struct{}, 2)
	go func() { pub.run(ectx); done <- struct{}{} }()
	f := &edgeFollower{st: st, px: px, sup: sup, self: hostID, log: log, read: map[string]string{}}
	go func() { f.run(ectx); done <- struct{}{} }()
	log.Info("edge across hosts", "listen", ln.Addr().String(), "addr", addr, "hop", cmp.Or(hopAddr, "none (not on the mesh)"))
	return func() {
		cancel()
		<-done
		<-done
		if hop != nil {
			_ = hop.Close()
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// startHop serves the plain hop listener (proxy.HopListener) on this
// host's mesh address, where other hosts' fast paths forward requests for
// its machines as plain HTTP/1.1: WireGuard authenticates and encrypts
// the link, and the listener serves only connections from another host's
// own mesh address (mesh.PeerHost). Off the mesh (or with
// --edge-no-hop) there is none: other hosts then use the TLS edge
// listener. It returns the listener and its address to publish.
func startHop(o *Options, px *proxy.Proxy, dev *mesh.Mesh, log *slog.Logger) (net.Listener, string, error) {
	if dev == nil || o.Network.Mesh == "" || o.Edge.NoHop {
		return nil, "", nil
	}
	p, err := netip.ParsePrefix(o.Network.Subnet6)
	if err != nil {
		return nil, "", fmt.Errorf("edge hop: this host's subnet %q: %w", o.Network.Subnet6, err)
	}
	self := p.Masked().Addr().Next()
	port := 0
	if o.Edge.Port != 0 {
		port = o.Edge.Port + 1
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(self.String(), strconv.Itoa(port)))
	if err != nil {
		return nil, "", fmt.Errorf("edge hop listener on %s port %d: %w (is the port taken? --edge-port N uses N+1 for it)", self, port, err)
	}
	// Refusals are logged at most once a second (with how many there
	// were), so a flood of them does not flood the log.
	var refusedN, lastLog atomic.Int64
	refused := func(src netip.Addr) {
		n := refusedN.Add(1)
		now := time.Now().UnixNano()
		if last := lastLog.Load(); now-last >= int64(time.Second) && lastLog.CompareAndSwap(last, now) {
			log.Warn("edge hop: refused a connection from an address that is not another host's on the mesh", "from", src, "refused_total", n)
		}
	}
	hl := proxy.HopListener(ln, dev.PeerHost, refused)
	fallback := &http.Server{Handler: http.HandlerFunc(px.ServeEdge), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 5 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := px.Serve(hl, fallback); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Error("edge hop listener", "err", err)
		}
	}()
	return ln, ln.Addr().String(), nil
}

// hopDialer connects to other hosts' hop listeners from this host's own
// mesh address (the one they accept); nil off the mesh.
func hopDialer(hop net.Listener) func(addr string) (net.Conn, error) {
	if hop == nil {
		return nil
	}
	ta, ok := hop.Addr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	local, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return nil
	}
	d := proxy.HopDialer(local.Unmap())
	return func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) }
}

// edgeAddr is where other hosts reach this host's edge listener: its
// address on the mesh (the machine bridge's ::1 of its /64) when it is on
// one, so forwarded requests go through WireGuard, else the host of its
// cluster URL.
func edgeAddr(o *Options, node *cluster.Node, la net.Addr) (string, error) {
	_, port, err := net.SplitHostPort(la.String())
	if err != nil {
		return "", err
	}
	if o.Network.Mesh != "" {
		if p, err := netip.ParsePrefix(o.Network.Subnet6); err == nil {
			return net.JoinHostPort(p.Masked().Addr().Next().String(), port), nil
		}
	}
	u, err := url.Parse(node.ClusterURL())
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("edge: this host's cluster URL %q names no host", node.ClusterURL())
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// edgeTransport carries forwarded requests to other hosts' edge
// listeners: HTTP/2 over TLS with this host's certificate; the other
// host's certificate must be one of the cluster's CA (whatever address it
// is reached at: the mesh addresses are not in the certificates). A
// connection that stops answering pings fails its requests. Without h2,
// HTTP/1.1 (for protocol upgrades), with TCP keep-alive probes instead.
func edgeTransport(base *tls.Config, h2 bool) *http.Transport {
	cfg := base.Clone()
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true // verified below, against the cluster CA only
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("edge: the other host sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			return fmt.Errorf("edge: the other host's certificate is not of this cluster: %w", err)
		}
		return nil
	}
	tr := &http.Transport{
		DialContext: (&net.Dialer{Timeout: edgeConnectTimeout,
			KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: edgePing, Interval: edgePing, Count: 2}}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: edgeConnectTimeout,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if h2 {
		tr.ForceAttemptHTTP2 = true
		tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: edgePing, PingTimeout: edgePing}
	}
	return tr
}

// edgeDialer opens a TLS connection (HTTP/1.1) to another host's edge
// listener, for raw TCP services carried as an upgrade.
func edgeDialer(cfg *tls.Config) func(ctx context.Context, addr string) (net.Conn, error) {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: edgeConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: edgePing, Interval: edgePing, Count: 2}}, Config: cfg}
	return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}

// wakeables lists this host's machines that may be woken
// (supervisor.Supervisor).
type wakeables interface {
	Wakeable(ctx context.Context) ([]*supervisor.Record, error)
}

// edgePublisher keeps this host's record, edge/hosts/<id>, equal to its
// machines: those the proxy routes to (routable, load) and those it could
// wake; on a lease, rewritten when it changes.
type edgePublisher struct {
	st   store.Leaser
	px   *proxy.Proxy
	sup  wakeables // nil: no machine to wake is published
	self proxy.EdgeHost
	log  *slog.Logger
	ttl  time.Duration // the record's lease (edgeLease if 0)

	key      store.LeasedKey
	last     []byte
	wake     []proxy.RemoteMachine
	wakeRead time.Time
	local    map[string]bool // the machines the proxy knew at the last publish
	eager    time.Time       // read the machines to wake at every publish until then
}

func (p *edgePublisher) run(ctx context.Context) {
	t := time.NewTicker(edgePublishEvery)
	defer t.Stop()
	for {
		if err := p.publish(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("edge: publish this host's machines", "err", err)
		}
		select {
		case <-ctx.Done():
			if p.key != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = p.key.Release(rctx)
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// publish writes the record if it changed (or its lease was lost).
func (p *edgePublisher) publish(ctx context.Context) error {
	ms := p.px.LocalEdge()
	local := make(map[string]bool, len(ms))
	for _, m := range ms {
		local[m.App+"/"+m.MachineID] = true
	}
	for k := range p.local {
		if !local[k] {
			// A machine left the proxy (stopping, suspending): read the
			// ones to wake at every publish for a while, not only every
			// edgeWakeEvery, so that edges soon see it can be woken
			// rather than cross to another region meanwhile.
			p.eager = time.Now().Add(edgeWakeEvery)
		}
	}
	p.local = local
	if p.sup != nil && (time.Since(p.wakeRead) >= edgeWakeEvery || time.Now().Before(p.eager)) {
		recs, err := p.sup.Wakeable(ctx)
		if err != nil {
			return err
		}
		p.wake = p.wake[:0]
		for _, r := range recs {
			p.wake = append(p.wake, proxy.RemoteMachine{App: r.App, MachineID: r.ID, Region: r.Region, Wakeable: true})
		}
		p.wakeRead = time.Now()
	}
	rec := p.self
	rec.Machines = append(ms, p.wake...)
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	lost := false
	if p.key != nil {
		select {
		case <-p.key.Done():
			lost = true
		default:
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch {
	case p.key == nil || lost:
		k, err := p.st.PutLeased(wctx, edgePrefix+p.self.ID, b, cmp.Or(p.ttl, edgeLease))
		if err != nil {
			return err
		}
		p.key = k
	case bytes.Equal(b, p.last):
		return nil
	default:
		if u, ok := p.key.(store.LeasedUpdater); ok {
			if err := u.Update(wctx, b); err != nil {
				return err
			}
		} else {
			_ = p.key.Release(wctx)
			k, err := p.st.PutLeased(wctx, edgePrefix+p.self.ID, b, cmp.Or(p.ttl, edgeLease))
			if err != nil {
				return err
			}
			p.key = k
		}
	}
	p.last = b
	return nil
}

// edgeFollower gives the proxy every host's record (its own too: which
// of its apps have a machine to wake) and forgets a host whose record is
// gone: a list, then a watch from there, again after the watch breaks. For
// an app seen on another host, it gives the proxy the app's settings from
// that machine's config, read again when the config changes.
type edgeFollower struct {
	st   store.Store
	px   *proxy.Proxy
	sup  *supervisor.Supervisor // nil: no app settings are read
	self string
	log  *slog.Logger
	read map[string]string // app → "<host>/<machine>/<conf_gen>" its settings were read from
}

func (f *edgeFollower) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := f.once(ctx)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("edge: following the hosts' records", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (f *edgeFollower) once(ctx context.Context) error {
	rev, err := f.st.Revision(ctx)
	if err != nil {
		return err
	}
	kvs, err := f.st.List(ctx, edgePrefix)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, kv := range kvs {
		if h, ok := decodeEdgeHost(kv); ok {
			f.set(ctx, h)
			seen[h.ID] = true
		}
	}
	for _, id := range f.px.EdgeHosts() {
		if !seen[id] {
			f.px.RemoveEdgeHost(id)
		}
	}
	ch, err := f.st.Watch(ctx, edgePrefix, rev)
	if err != nil {
		return err
	}
	for ev := range ch {
		id := strings.TrimPrefix(ev.KV.Key, edgePrefix)
		if ev.Type == store.EventDelete {
			f.px.RemoveEdgeHost(id)
			continue
		}
		if h, ok := decodeEdgeHost(ev.KV); ok {
			f.set(ctx, h)
		}
	}
	if err := store.WatchErr(ch); err != nil {
		return err
	}
	return errors.New("watch ended")
}

// set hands a record to the proxy, and the settings of apps it shows for
// the first time or with a changed config.
func (f *edgeFollower) set(ctx context.Context, h proxy.EdgeHost) {
	f.px.SetEdgeHost(h)
	if h.ID == f.self || f.sup == nil {
		return
	}
	// A machine the settings came from that is gone: read another's.
	here := map[string]bool{}
	for _, m := range h.Machines {
		here[h.ID+"/"+m.MachineID+"/"] = true
	}
	for app, src := range f.read {
		if strings.HasPrefix(src, h.ID+"/") && !here[src[:strings.LastIndexByte(src, '/')+1]] {
			delete(f.read, app)
		}
	}
	for _, m := range h.Machines {
		if m.MachineID == "" || !m.Routable && !m.Wakeable {
			continue
		}
		src := fmt.Sprintf("%s/%s/%d", h.ID, m.MachineID, m.ConfGen)
		if f.read[m.App] == src || (f.read[m.App] != "" && !strings.HasPrefix(f.read[m.App], h.ID+"/"+m.MachineID+"/")) {
			continue // read from this machine, or from another one
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := f.sup.Get(rctx, m.App, m.MachineID)
		cancel()
		if err != nil {
			f.log.Debug("edge: read the config of another host's machine", "app", m.App, "machine", m.MachineID, "err", err)
			continue
		}
		f.px.SetRemoteAppConfig(m.App, r.Config)
		f.read[m.App] = src
	}
}

func decodeEdgeHost(kv store.KV) (proxy.EdgeHost, bool) {
	var h proxy.EdgeHost
	if err := json.Unmarshal(kv.Value, &h); err != nil || h.ID == "" || h.ID != strings.TrimPrefix(kv.Key, edgePrefix) {
		return h, false
	}
	return h, true
}
