// Package dns is Hangar's private DNS for machines, as Fly.io's 6PN DNS
// (fdaa::3) is for Fly Machines: it answers the .internal names of started
// machines (<app>.internal, <id>.vm.<app>.internal, <region>.<app>.internal,
// top<N>.nearest.of.<app>.internal, <group>.process.<app>.internal, the
// TXT lists _apps.internal, _instances.internal, vms.<app>.internal,
// regions.<app>.internal, and metadata names), <app>.flycast (the app's
// Flycast address) and the reverse names of machine and Flycast addresses
// from a live machine list, and forwards every other name
// to the host's resolvers. It listens on the
// machine bridge's gateway addresses and answers only the machine subnets.
// See docs/dns.md.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// TTL of every .internal answer, in seconds (Fly answers with 5).
const TTL = 5

// FlycastSource is a Source that also knows the apps' Flycast addresses
// (the Registry does); the server then answers <app>.flycast.
type FlycastSource interface {
	// Flycast returns app → Flycast address.
	Flycast() map[string]netip.Addr
}

// Source is the live machine list the server answers from (a Registry fed
// by Follow in the daemon; anything else in tests).
type Source interface {
	// Machines returns every machine this host knows, in any state.
	Machines() []Machine
	// Apps returns the names of all apps.
	Apps() []string
}

// Hosts is the server's view of the installation's hosts (hosts.RTTs).
type Hosts interface {
	// Reachable reports whether a host's daemon is alive.
	Reachable(host string) bool
	// Between returns the RTT between two hosts, ok false if unknown.
	Between(fromHost, toHost string) (time.Duration, bool)
	// NearestRegions returns the regions by RTT from a host, its own
	// first.
	NearestRegions(fromHost string) []string
}

// Options configure a Server.
type Options struct {
	// Listen are the addresses ("host:port") to serve on, UDP and TCP
	// each. Port 0 picks one free port for both.
	Listen []string
	// Allow are the source networks whose queries are answered; others
	// get REFUSED, so the server is never an open resolver.
	Allow []netip.Prefix
	// Upstreams ("host:port") get every query outside .internal, tried in
	// order. Empty: such queries get SERVFAIL.
	Upstreams []string
	// Serving, if set, says whether an app's bare name (<app>.internal)
	// names a machine now: a Hangar Postgres member only while it is the
	// primary, so that <db>.internal:5432 reaches the primary (applies
	// false: the machine is named as always). When no machine of the app
	// serves, the name answers all of them rather than none.
	Serving func(m Machine) (serving, applies bool)
	// Region is this host's region, the nearest one for a query that does
	// not come from a machine.
	Region string
	// Source is the machine list.
	Source Source
	// Host is this host's id. With it, A answers (machines' IPv4, which
	// is local to each host) list only this host's machines.
	Host string
	// Hosts, if set, is what the server knows of the installation's
	// hosts: the machines of a host that is not reachable are left out
	// of every answer, and top<N>.nearest orders by the RTT measured
	// between hosts.
	Hosts Hosts
	// Private are more networks whose reverse names are answered here
	// rather than forwarded (the org's 6PN prefix, whose other /64s are
	// the other hosts' machines); Allow's are always.
	Private []netip.Prefix
	// UpstreamTimeout bounds one exchange with one upstream (default 2s).
	UpstreamTimeout time.Duration
	Log             *slog.Logger
}

// Server answers DNS queries; create it with Start.
type Server struct {
	opt     Options
	log     *slog.Logger
	servers []*mdns.Server
	addrs   []string
	wg      sync.WaitGroup
}

// Start binds every listen address (UDP and TCP) and serves until Close.
// If any address cannot be bound nothing is left listening.
func Start(opt Options) (*Server, error) {
	if opt.Source == nil {
		return nil, errors.New("dns: no machine source")
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.UpstreamTimeout <= 0 {
		opt.UpstreamTimeout = 2 * time.Second
	}
	s := &Server{opt: opt, log: opt.Log}
	// A query that loops back to this server would recurse until timeout.
	var ups []string
	for _, u := range opt.Upstreams {
		if !containsAddr(opt.Listen, u) {
			ups = append(ups, u)
		}
	}
	s.opt.Upstreams = ups
	for _, addr := range opt.Listen {
		pc, ln, err := listenBoth(addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("dns: listen %s: %w", addr, err)
		}
		s.addrs = append(s.addrs, pc.LocalAddr().String())
		s.serve(&mdns.Server{PacketConn: pc, Handler: s})
		s.serve(&mdns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }})
	}
	return s, nil
}

// serve runs one miekg server and returns once it is accepting.
func (s *Server) serve(srv *mdns.Server) {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		errc <- srv.ActivateAndServe()
	}()
	select {
	case <-started:
	case err := <-errc:
		s.log.Warn("dns: server ended at start", "err", err)
	}
}

// listenBoth binds UDP and TCP on the same address and port.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, err
		}
		_, got, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := net.Listen("tcp", net.JoinHostPort(host, got))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

// Addrs returns the bound addresses (one per Listen entry; UDP and TCP
// share the port).
func (s *Server) Addrs() []string { return append([]string(nil), s.addrs...) }

// Close stops serving and waits for the servers to end.
func (s *Server) Close() error {
	for _, srv := range s.servers {
		_ = srv.Shutdown()
	}
	s.wg.Wait()
	return nil
}

func containsAddr(list []string, addr string) bool {
	for _, a := range list {
		if a == addr {
			return true
		}
	}
	return false
}

// allowed reports whether a query from addr may be answered.
func (s *Server) allowed(addr net.Addr) bool {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.opt.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	if rcode := mdns.RcodeRefused; !s.allowed(w.RemoteAddr()) || len(r.Question) != 1 || r.Opcode != mdns.OpcodeQuery {
		if s.allowed(w.RemoteAddr()) {
			rcode = mdns.RcodeNotImplemented
		}
		m := new(mdns.Msg)
		m.SetRcode(r, rcode)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	var m *mdns.Msg
	pq, inZone := parseName(q.Name)
	if ip, ok := parseReverse(q.Name); ok && s.machineAddr(ip) {
		m = s.answerReverse(r, ip)
	} else if app, ok := parseFlycast(q.Name); ok {
		m = s.answerFlycast(r, app)
	} else if inZone {
		m = s.answer(r, pq, sourceAddr(w.RemoteAddr()))
	} else {
		s.forward(w, r)
		return
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := mdns.MinMsgSize
		if o := r.IsEdns0(); o != nil && int(o.UDPSize()) > size {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func sourceAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// answer builds the authoritative reply for a .internal name.
func (s *Server) answer(r *mdns.Msg, pq query, from netip.Addr) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	q := r.Question[0]
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), false)
	}
	var ips []netip.Addr
	var txt string
	exists := false
	all := s.opt.Source.Machines()
	reg := s.registered(all)
	switch pq.kind {
	case kindZone:
		exists = true
		if q.Qtype == mdns.TypeSOA || q.Qtype == mdns.TypeANY {
			m.Answer = append(m.Answer, soa())
		}
	case kindApps:
		apps := s.opt.Source.Apps()
		exists, txt = true, strings.Join(apps, ",")
	case kindInstances:
		parts := make([]string, 0, len(reg))
		for _, mc := range reg {
			parts = append(parts, fmt.Sprintf("instance=%s,app=%s,ip=%s,region=%s", mc.ID, mc.App, primaryIP(mc), mc.Region))
		}
		exists, txt = true, strings.Join(parts, ";")
	case kindVMs, kindRegions:
		var parts []string
		seen := map[string]bool{}
		for _, mc := range reg {
			if mc.App != pq.app {
				continue
			}
			p := mc.ID + " " + mc.Region
			if pq.kind == kindRegions {
				p = mc.Region
			}
			if !seen[p] {
				seen[p] = true
				parts = append(parts, p)
			}
		}
		sort.Strings(parts)
		exists, txt = len(parts) > 0, strings.Join(parts, ",")
	default:
		sel := s.selectMachines(reg, all, pq, from)
		exists = len(sel) > 0
		for _, mc := range sel {
			if mc.IPv6.IsValid() {
				ips = append(ips, mc.IPv6)
			}
			if mc.IPv4.IsValid() && s.local(mc) {
				ips = append(ips, mc.IPv4)
			}
		}
	case kindNone:
	}
	if !exists {
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{soa()}
		return m
	}
	hdr := func(t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: q.Name, Rrtype: t, Class: mdns.ClassINET, Ttl: TTL}
	}
	for _, ip := range ips {
		switch {
		case ip.Is4() && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY):
			m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: ip.AsSlice()})
		case ip.Is6() && (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY):
			m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr(mdns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	if txt != "" && (q.Qtype == mdns.TypeTXT || q.Qtype == mdns.TypeANY) {
		m.Answer = append(m.Answer, &mdns.TXT{Hdr: hdr(mdns.TypeTXT), Txt: splitTXT(txt)})
	}
	if len(m.Answer) == 0 {
		// The name exists but has no records of this type (NODATA).
		m.Ns = []mdns.RR{soa()}
	}
	return m
}

// machineAddr reports whether ip is in the machine subnets, whose reverse
// names this server answers rather than leak them upstream.
func (s *Server) machineAddr(ip netip.Addr) bool {
	for _, p := range append(s.opt.Allow[:len(s.opt.Allow):len(s.opt.Allow)], s.opt.Private...) {
		if p.Contains(ip) && !ip.IsLoopback() {
			return true
		}
	}
	return false
}

// answerReverse answers a reverse name in the machine subnets: a PTR to
// <id>.vm.<app>.internal for a registered machine's address, NXDOMAIN for
// any other address.
func (s *Server) answerReverse(r *mdns.Msg, ip netip.Addr) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	q := r.Question[0]
	var target string
	for _, mc := range s.registered(s.opt.Source.Machines()) {
		if mc.IPv6 == ip || (mc.IPv4 == ip && s.local(mc)) {
			target = query{kind: kindVM, arg: strings.ToLower(mc.ID), app: mc.App}.name()
			break
		}
	}
	if target == "" {
		for app, a := range s.flycast() {
			if a == ip {
				target = app + "." + FlycastZone + "."
			}
		}
	}
	if target == "" {
		m.Rcode = mdns.RcodeNameError
		return m
	}
	if q.Qtype == mdns.TypePTR || q.Qtype == mdns.TypeANY {
		m.Answer = []mdns.RR{&mdns.PTR{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: TTL}, Ptr: target}}
	}
	return m
}

// selectMachines picks the machines an address name stands for.
func (s *Server) selectMachines(reg, all []Machine, pq query, from netip.Addr) []Machine {
	var out []Machine
	for _, mc := range reg {
		if mc.App != pq.app {
			continue
		}
		switch pq.kind {
		case kindApp, kindNearest:
		case kindRegion:
			if mc.Region != pq.arg {
				continue
			}
		case kindVM:
			if strings.ToLower(mc.ID) != pq.arg {
				continue
			}
		case kindProcess:
			if strings.ToLower(mc.ProcessGroup) != pq.arg {
				continue
			}
		case kindMetadata:
			if !metadataMatch(mc.Metadata, pq.key, pq.arg) {
				continue
			}
		default:
			continue
		}
		out = append(out, mc)
	}
	if pq.kind == kindApp && s.opt.Serving != nil {
		serving := make([]Machine, 0, len(out))
		for _, mc := range out {
			if ok, applies := s.opt.Serving(mc); ok || !applies {
				serving = append(serving, mc)
			}
		}
		if len(serving) > 0 {
			out = serving
		}
	}
	if pq.kind != kindNearest {
		// Spread clients that use only the first address.
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	// Nearest: machines in the asker's region first (the region of the
	// machine the query comes from, else this host's), then the other
	// regions by the RTT measured from this host (the asker's: queries
	// come from this host's machines); in a region, this host's machines
	// first, then by the RTT to their host. On one host every machine is
	// equally near; machine ID breaks ties so the choice is stable.
	region := s.opt.Region
	for _, mc := range all {
		if from.IsValid() && (mc.IPv6 == from || mc.IPv4 == from) {
			region = mc.Region
			break
		}
	}
	rank := map[string]int{region: 0}
	if s.opt.Hosts != nil && s.opt.Host != "" {
		for _, r := range s.opt.Hosts.NearestRegions(s.opt.Host) {
			if _, ok := rank[r]; !ok {
				rank[r] = len(rank)
			}
		}
	}
	regionRank := func(r string) int {
		if i, ok := rank[r]; ok {
			return i
		}
		return len(rank)
	}
	hostRTT := func(mc Machine) time.Duration {
		if s.local(mc) {
			return 0
		}
		if s.opt.Hosts != nil {
			if d, ok := s.opt.Hosts.Between(s.opt.Host, mc.HostID); ok {
				return d
			}
		}
		return time.Duration(math.MaxInt64)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := regionRank(out[i].Region), regionRank(out[j].Region); ri != rj {
			return ri < rj
		}
		if di, dj := hostRTT(out[i]), hostRTT(out[j]); di != dj {
			return di < dj
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > pq.count {
		out = out[:pq.count]
	}
	return out
}

func metadataMatch(md map[string]string, key, value string) bool {
	for k, v := range md {
		if strings.EqualFold(k, key) && strings.EqualFold(v, value) {
			return true
		}
	}
	return false
}

// registered returns the machines that have .internal names: registered
// ones whose host is reachable (a host cut off or dead for longer than its
// lease: its machines' state is not known, so they are not answered).
func (s *Server) registered(all []Machine) []Machine {
	out := registeredOf(all)
	if s.opt.Hosts == nil {
		return out
	}
	kept := out[:0]
	for _, m := range out {
		if m.HostID == "" || m.HostID == s.opt.Host || s.opt.Hosts.Reachable(m.HostID) {
			kept = append(kept, m)
		}
	}
	return kept
}

// local reports whether a machine runs on this host (always, when the
// server does not know its host id, or the machine has none).
func (s *Server) local(m Machine) bool {
	return s.opt.Host == "" || m.HostID == "" || m.HostID == s.opt.Host
}

// registeredOf returns the machines that have .internal names.
func registeredOf(all []Machine) []Machine {
	out := make([]Machine, 0, len(all))
	for _, m := range all {
		if m.registered() {
			out = append(out, m)
		}
	}
	return out
}

func primaryIP(m Machine) string {
	if m.IPv6.IsValid() {
		return m.IPv6.String()
	}
	return m.IPv4.String()
}

// splitTXT cuts s into character-strings of at most 255 bytes; resolvers
// join them again.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// soa is the .internal zone's SOA record.
func soa() mdns.RR { return soaOf(Zone) }

// soaOf is a zone's SOA record; its minimum TTL makes negative answers
// expire as fast as positive ones.
func soaOf(zone string) mdns.RR {
	return &mdns.SOA{
		Hdr: mdns.RR_Header{Name: zone + ".", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: TTL},
		Ns:  "ns." + zone + ".", Mbox: "hostmaster." + zone + ".",
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: TTL,
	}
}

// forward relays a query for a name outside .internal to the upstreams, on
// the transport it came in on (a truncated UDP answer makes the client
// retry over TCP, which is then forwarded over TCP).
func (s *Server) forward(w mdns.ResponseWriter, r *mdns.Msg) {
	network := "udp"
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		network = "tcp"
	}
	c := &mdns.Client{Net: network, Timeout: s.opt.UpstreamTimeout}
	var lastErr error
	for _, up := range s.opt.Upstreams {
		ctx, cancel := context.WithTimeout(context.Background(), s.opt.UpstreamTimeout)
		resp, _, err := c.ExchangeContext(ctx, r, up)
		cancel()
		if err == nil && resp != nil && resp.Rcode != mdns.RcodeServerFailure && resp.Rcode != mdns.RcodeRefused {
			resp.Id = r.Id
			_ = w.WriteMsg(resp)
			return
		}
		if err == nil && resp != nil {
			err = fmt.Errorf("rcode %s", mdns.RcodeToString[resp.Rcode])
		}
		lastErr = err
	}
	if lastErr != nil {
		s.log.Debug("dns: no upstream answered", "name", r.Question[0].Name, "err", lastErr)
	}
	m := new(mdns.Msg)
	m.SetRcode(r, mdns.RcodeServerFailure)
	_ = w.WriteMsg(m)
}

// HostUpstreams returns the nameservers of a resolv.conf as "host:53"
// addresses (loopback ones too: the server runs on the host, where they
// answer).
func HostUpstreams(path string) ([]string, error) {
	cfg, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns: read resolvers from %s: %w", path, err)
	}
	port := cfg.Port
	if port == "" {
		port = "53"
	}
	if _, err := strconv.Atoi(port); err != nil {
		port = "53"
	}
	var out []string
	for _, ns := range cfg.Servers {
		out = append(out, net.JoinHostPort(ns, port))
	}
	return out, nil
}
