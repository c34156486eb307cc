package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// startServer serves src on a loopback port for the test's lifetime.
func startServer(t *testing.T, opt Options) *Server {
	t.Helper()
	if opt.Listen == nil {
		opt.Listen = []string{"127.0.0.1:0"}
	}
	if opt.Allow == nil {
		opt.Allow = loopback
	}
	s, err := Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exchange(t *testing.T, addr, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	c := &mdns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return r
}

// answers returns the rdata of the answer section as sorted strings.
func answers(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.AAAA:
			out = append(out, v.AAAA.String())
		case *mdns.TXT:
			out = append(out, strings.Join(v.Txt, ""))
		default:
			out = append(out, rr.String())
		}
	}
	sort.Strings(out)
	return out
}

func machine(app, id, region, group, state, ip6, ip4 string) Machine {
	m := Machine{App: app, ID: id, Region: region, ProcessGroup: group, State: state}
	if ip6 != "" {
		m.IPv6 = netip.MustParseAddr(ip6)
	}
	if ip4 != "" {
		m.IPv4 = netip.MustParseAddr(ip4)
	}
	return m
}

func fixture() *Registry {
	reg := NewRegistry()
	for _, a := range []string{"web", "db", "empty"} {
		reg.PutApp(a)
	}
	w1 := machine("web", "aaa111", "ams", "app", types.StateStarted, "fdaa::2", "172.19.0.2")
	w1.Metadata = map[string]string{"role": "primary"}
	reg.PutMachine(w1)
	reg.PutMachine(machine("web", "bbb222", "ord", "app", types.StateStarted, "fdaa::3", "172.19.0.3"))
	reg.PutMachine(machine("web", "ccc333", "ams", "worker", types.StateStarted, "fdaa::4", "172.19.0.4"))
	reg.PutMachine(machine("web", "ddd444", "ams", "app", types.StateStopped, "fdaa::5", "172.19.0.5"))
	hidden := machine("web", "eee555", "ams", "app", types.StateStarted, "fdaa::6", "172.19.0.6")
	hidden.SkipRegistration = true
	reg.PutMachine(hidden)
	reg.PutMachine(machine("db", "fff666", "ord", "app", types.StateStarted, "fdaa::7", "172.19.0.7"))
	return reg
}

func TestNames(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{Source: fixture(), Region: "ams"})
	addr := s.Addrs()[0]
	A, AAAA, TXT := mdns.TypeA, mdns.TypeAAAA, mdns.TypeTXT
	cases := []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"web.internal", AAAA, []string{"fdaa::2", "fdaa::3", "fdaa::4"}},
		{"WEB.Internal.", AAAA, []string{"fdaa::2", "fdaa::3", "fdaa::4"}},
		{"web.internal", A, []string{"172.19.0.2", "172.19.0.3", "172.19.0.4"}},
		{"global.web.internal", AAAA, []string{"fdaa::2", "fdaa::3", "fdaa::4"}},
		{"aaa111.vm.web.internal", AAAA, []string{"fdaa::2"}},
		{"aaa111.vm.web.internal", A, []string{"172.19.0.2"}},
		{"ams.web.internal", AAAA, []string{"fdaa::2", "fdaa::4"}},
		{"ord.web.internal", AAAA, []string{"fdaa::3"}},
		{"worker.process.web.internal", AAAA, []string{"fdaa::4"}},
		{"app.process.web.internal", AAAA, []string{"fdaa::2", "fdaa::3"}},
		{"top1.nearest.of.web.internal", AAAA, []string{"fdaa::2"}},
		{"top2.nearest.of.web.internal", AAAA, []string{"fdaa::2", "fdaa::4"}},
		{"top9.nearest.of.web.internal", AAAA, []string{"fdaa::2", "fdaa::3", "fdaa::4"}},
		{"primary.role.kv._metadata.web.internal", AAAA, []string{"fdaa::2"}},
		{"_apps.internal", TXT, []string{"db,empty,web"}},
		{"vms.web.internal", TXT, []string{"aaa111 ams,bbb222 ord,ccc333 ams"}},
		{"regions.web.internal", TXT, []string{"ams,ord"}},
		{"_instances.internal", TXT, []string{"instance=fff666,app=db,ip=fdaa::7,region=ord;" +
			"instance=aaa111,app=web,ip=fdaa::2,region=ams;instance=bbb222,app=web,ip=fdaa::3,region=ord;" +
			"instance=ccc333,app=web,ip=fdaa::4,region=ams"}},
		{"db.internal", AAAA, []string{"fdaa::7"}},
		{"web.internal", TXT, nil},    // NODATA: the name has addresses only
		{"_apps.internal", AAAA, nil}, // NODATA
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range cases {
			r := exchange(t, addr, network, c.name, c.qtype)
			if r.Rcode != mdns.RcodeSuccess || !r.Authoritative {
				t.Errorf("%s %s/%s: rcode %s aa=%v", network, c.name, mdns.TypeToString[c.qtype], mdns.RcodeToString[r.Rcode], r.Authoritative)
				continue
			}
			if got := answers(r); !slices.Equal(got, c.want) {
				t.Errorf("%s %s/%s = %q, want %q", network, c.name, mdns.TypeToString[c.qtype], got, c.want)
			}
			for _, rr := range r.Answer {
				if rr.Header().Ttl != TTL {
					t.Errorf("%s: TTL %d, want %d", c.name, rr.Header().Ttl, TTL)
				}
			}
			if len(r.Answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeSOA) {
				t.Errorf("%s: NODATA without the SOA: %v", c.name, r.Ns)
			}
		}
	}
}

func TestNXDOMAINAndExclusions(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{Source: fixture()})
	addr := s.Addrs()[0]
	for _, name := range []string{
		"nosuch.internal",                 // unknown app
		"empty.internal",                  // an app without started machines
		"ddd444.vm.web.internal",          // stopped
		"eee555.vm.web.internal",          // dns.skip_registration
		"zzz.web.internal",                // no machine in that region
		"nosuch.process.web.internal",     // no such group
		"top0.nearest.of.web.internal",    // N must be 1 or more
		"x.y.z.w.v.u.internal",            // no such form
		"other.kv._metadata.web.internal", // malformed metadata name
		"vms.nosuch.internal",
		"regions.empty.internal",
	} {
		r := exchange(t, addr, "udp", name, mdns.TypeAAAA)
		if r.Rcode != mdns.RcodeNameError || len(r.Answer) != 0 {
			t.Errorf("%s: rcode %s, answers %v; want NXDOMAIN", name, mdns.RcodeToString[r.Rcode], r.Answer)
		}
		if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeSOA {
			t.Errorf("%s: NXDOMAIN without the SOA: %v", name, r.Ns)
		}
	}
	// The skipped and the stopped machines are in no list either.
	for _, name := range []string{"_instances.internal", "vms.web.internal"} {
		txt := strings.Join(answers(exchange(t, addr, "udp", name, mdns.TypeTXT)), "")
		if strings.Contains(txt, "ddd444") || strings.Contains(txt, "eee555") {
			t.Errorf("%s lists a stopped or skipped machine: %q", name, txt)
		}
	}
	for _, name := range []string{"web.internal", "ams.web.internal", "app.process.web.internal", "top9.nearest.of.web.internal"} {
		got := answers(exchange(t, addr, "udp", name, mdns.TypeAAAA))
		if slices.Contains(got, "fdaa::5") || slices.Contains(got, "fdaa::6") {
			t.Errorf("%s answers a stopped or skipped machine: %v", name, got)
		}
	}
}

// TestNearestFromAMachine ranks the asking machine's region first.
func TestNearestFromAMachine(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	reg.PutMachine(machine("web", "a1", "ams", "app", types.StateStarted, "fdaa::2", ""))
	reg.PutMachine(machine("web", "o1", "ord", "app", types.StateStarted, "fdaa::3", ""))
	// The asker: a machine of another app in ord, on the loopback address.
	reg.PutMachine(machine("client", "c1", "ord", "app", types.StateStarted, "", "127.0.0.1"))
	s := startServer(t, Options{Source: reg, Region: "ams"})
	if got := answers(exchange(t, s.Addrs()[0], "udp", "top1.nearest.of.web.internal", mdns.TypeAAAA)); !slices.Equal(got, []string{"fdaa::3"}) {
		t.Fatalf("top1 from an ord machine = %v, want the ord machine", got)
	}
}

// TestRefusedOutsideAllowed: a source outside the machine subnets gets
// REFUSED, for .internal names and for forwarding alike.
func TestRefusedOutsideAllowed(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	s := startServer(t, Options{Source: fixture(), Upstreams: []string{up},
		Allow: []netip.Prefix{netip.MustParsePrefix("172.19.0.0/16"), netip.MustParsePrefix("fdaa:0:1::/64")}})
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"web.internal", "example.com"} {
			r := exchange(t, s.Addrs()[0], network, name, mdns.TypeA)
			if r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 {
				t.Errorf("%s over %s from loopback: rcode %s answers %v; want REFUSED", name, network, mdns.RcodeToString[r.Rcode], r.Answer)
			}
		}
	}
}

// startUpstream runs a stub resolver on loopback (UDP and TCP, one port)
// that answers example.com and big.example.com, and NXDOMAIN otherwise.
func startUpstream(t *testing.T) string {
	t.Helper()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name == "example.com." && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		case q.Name == "big.example.com." && q.Qtype == mdns.TypeTXT:
			// Too big for a 512-byte UDP answer: the client must retry
			// over TCP, through the forwarder.
			for i := range 10 {
				m.Answer = append(m.Answer, &mdns.TXT{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60},
					Txt: []string{strings.Repeat(string(rune('a'+i)), 200)}})
			}
			if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
				m.Truncate(mdns.MinMsgSize)
			}
		default:
			m.Rcode = mdns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	}
	return pc.LocalAddr().String()
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	// A dead upstream first: the next one answers.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	s := startServer(t, Options{Source: fixture(), Upstreams: []string{deadAddr, up}, UpstreamTimeout: time.Second})
	addr := s.Addrs()[0]
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, addr, network, "example.com", mdns.TypeA)
		if r.Rcode != mdns.RcodeSuccess || !slices.Equal(answers(r), []string{"192.0.2.1"}) {
			t.Errorf("example.com over %s: %s %v", network, mdns.RcodeToString[r.Rcode], r.Answer)
		}
		if r := exchange(t, addr, network, "nosuch.example.com", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
			t.Errorf("upstream NXDOMAIN over %s came back as %s", network, mdns.RcodeToString[r.Rcode])
		}
	}
	// Truncated over UDP, whole over TCP.
	if r := exchange(t, addr, "udp", "big.example.com", mdns.TypeTXT); !r.Truncated {
		t.Errorf("big answer over UDP not truncated: %d answers", len(r.Answer))
	}
	if r := exchange(t, addr, "tcp", "big.example.com", mdns.TypeTXT); r.Truncated || len(r.Answer) != 10 {
		t.Errorf("big answer over TCP: truncated=%v, %d answers", r.Truncated, len(r.Answer))
	}
	// No upstream at all: SERVFAIL, quickly.
	none := startServer(t, Options{Source: fixture()})
	if r := exchange(t, none.Addrs()[0], "udp", "example.com", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("without upstreams: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

// TestUpstreamIsNotItself: the server's own address in the upstreams is
// dropped rather than forwarded to in a loop.
func TestUpstreamIsNotItself(t *testing.T) {
	t.Parallel()
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := pc.LocalAddr().String()
	pc.Close()
	ln.Close()
	s, err := Start(Options{Listen: []string{self}, Allow: loopback, Source: fixture(), Upstreams: []string{self}})
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	defer s.Close()
	if len(s.opt.Upstreams) != 0 {
		t.Fatalf("upstreams = %v, want none", s.opt.Upstreams)
	}
}

func TestHostUpstreams(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "resolv.conf")
	writeFile(t, path, "# systemd-resolved\nnameserver 127.0.0.53\nnameserver fd00::1\noptions edns0\nsearch example.com\n")
	got, err := HostUpstreams(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.53:53", "[fd00::1]:53"}; !slices.Equal(got, want) {
		t.Fatalf("upstreams = %v, want %v", got, want)
	}
	if _, err := HostUpstreams(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("no error for a missing resolv.conf")
	}
}

// record is a supervisor.Record as the supervisor stores it.
func record(app, id, state string, skip bool) []byte {
	rec := map[string]any{
		"id": id, "state": state, "region": "ams", "private_ip": "fdaa::" + id[len(id)-1:],
		"app": app, "ipv4": "172.19.0." + id[len(id)-1:],
		"config": map[string]any{"image": "x", "metadata": map[string]string{types.MetaProcessGroup: "web"}},
	}
	if skip {
		rec["config"].(map[string]any)["dns"] = map[string]any{"skip_registration": true}
	}
	b, _ := json.Marshal(rec)
	return b
}

// TestFollowStore: machines started, stopped and deleted in a real state
// store show up in (and leave) the answers.
func TestFollowStore(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(key string, val []byte) {
		t.Helper()
		if _, err := st.Put(ctx, key, val, store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	put("apps/web", []byte(`{}`))
	put("machines/web/m1", record("web", "m1", types.StateStarted, false))
	put("machines/web/m9", record("web", "m9", types.StateStarted, true)) // skip_registration
	reg := NewRegistry()
	followDone := make(chan struct{})
	go func() { defer close(followDone); Follow(ctx, st, reg, nil) }()
	s := startServer(t, Options{Source: reg})
	addr := s.Addrs()[0]
	waitFor := func(what, name string, qtype uint16, want []string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := answers(exchange(t, addr, "udp", name, qtype))
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s = %v, want %v", what, name, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("loaded at start", "web.internal", mdns.TypeAAAA, []string{"fdaa::1"})
	waitFor("process group from metadata", "web.process.web.internal", mdns.TypeA, []string{"172.19.0.1"})
	put("machines/web/m2", record("web", "m2", types.StateStarting, false))
	put("apps/api", []byte(`{}`))
	put("apps/api/secrets", []byte(`{}`)) // not an app
	waitFor("new app listed", "_apps.internal", mdns.TypeTXT, []string{"api,web"})
	waitFor("a starting machine is not listed", "web.internal", mdns.TypeAAAA, []string{"fdaa::1"})
	put("machines/web/m2", record("web", "m2", types.StateStarted, false))
	waitFor("started", "web.internal", mdns.TypeAAAA, []string{"fdaa::1", "fdaa::2"})
	put("machines/web/m1", record("web", "m1", types.StateStopped, false))
	waitFor("stopped", "web.internal", mdns.TypeAAAA, []string{"fdaa::2"})
	if _, err := st.Delete(ctx, "machines/web/m2", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	waitFor("destroyed", "web.internal", mdns.TypeAAAA, nil)
	if r := exchange(t, addr, "udp", "web.internal", mdns.TypeAAAA); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("no started machine left: %s, want NXDOMAIN", mdns.RcodeToString[r.Rcode])
	}
	cancel()
	select {
	case <-followDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after its context ended")
	}
}

func TestDecodeMachine(t *testing.T) {
	t.Parallel()
	m, err := DecodeMachine(record("web", "m3", types.StateStarted, true))
	if err != nil {
		t.Fatal(err)
	}
	if m.App != "web" || m.ID != "m3" || m.Region != "ams" || m.ProcessGroup != "web" || !m.SkipRegistration ||
		m.IPv6 != netip.MustParseAddr("fdaa::3") || m.IPv4 != netip.MustParseAddr("172.19.0.3") {
		t.Fatalf("decoded %+v", m)
	}
	if _, err := DecodeMachine([]byte(`{"id":"x"}`)); err == nil {
		t.Fatal("a record without an app decoded")
	}
	if _, err := DecodeMachine([]byte(`not json`)); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestLongTXTIsSplit(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	var want []string
	for i := range 40 {
		name := "application-number-" + strings.Repeat("x", 10) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		reg.PutApp(name)
		want = append(want, name)
	}
	sort.Strings(want)
	s := startServer(t, Options{Source: reg})
	// Over TCP: the list is longer than a plain UDP answer.
	r := exchange(t, s.Addrs()[0], "tcp", "_apps.internal", mdns.TypeTXT)
	if len(r.Answer) != 1 {
		t.Fatalf("answers: %v", r.Answer)
	}
	txt := r.Answer[0].(*mdns.TXT).Txt
	for _, part := range txt {
		if len(part) > 255 {
			t.Fatalf("character-string of %d bytes", len(part))
		}
	}
	if got := strings.Join(txt, ""); got != strings.Join(want, ",") {
		t.Fatalf("joined TXT = %q", got)
	}
	if r := exchange(t, s.Addrs()[0], "udp", "_apps.internal", mdns.TypeTXT); !r.Truncated {
		t.Fatal("an oversized UDP answer is not marked truncated")
	}
}

// TestReverse: reverse names in the machine subnets are answered here
// (PTR to <id>.vm.<app>.internal, NXDOMAIN for other addresses); others
// are forwarded.
func TestReverse(t *testing.T) {
	t.Parallel()
	allow := append([]netip.Prefix{netip.MustParsePrefix("172.19.0.0/16"), netip.MustParsePrefix("fdaa::/64")}, loopback...)
	s := startServer(t, Options{Source: fixture(), Allow: allow})
	addr := s.Addrs()[0]
	for ip, want := range map[string]string{"172.19.0.2": "aaa111.vm.web.internal.", "fdaa::7": "fff666.vm.db.internal."} {
		rev, _ := mdns.ReverseAddr(ip)
		r := exchange(t, addr, "udp", rev, mdns.TypePTR)
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*mdns.PTR).Ptr != want {
			t.Errorf("PTR %s: %s %v, want %s", ip, mdns.RcodeToString[r.Rcode], r.Answer, want)
		}
	}
	// Unknown, stopped, skipped: NXDOMAIN without asking upstream.
	for _, ip := range []string{"172.19.0.99", "fdaa::5", "fdaa::6"} {
		rev, _ := mdns.ReverseAddr(ip)
		if r := exchange(t, addr, "udp", rev, mdns.TypePTR); r.Rcode != mdns.RcodeNameError {
			t.Errorf("PTR %s: %s, want NXDOMAIN", ip, mdns.RcodeToString[r.Rcode])
		}
	}
	// Outside the machine subnets: forwarded (no upstream here: SERVFAIL).
	rev, _ := mdns.ReverseAddr("192.0.2.1")
	if r := exchange(t, addr, "udp", rev, mdns.TypePTR); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("PTR outside the subnets: %s, want SERVFAIL (forwarded)", mdns.RcodeToString[r.Rcode])
	}
}

// TestNotAQuery: other opcodes get NOTIMP from an allowed source.
func TestNotAQuery(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{Source: fixture()})
	m := new(mdns.Msg)
	m.SetNotify("web.internal.")
	r, _, err := (&mdns.Client{Timeout: 3 * time.Second}).Exchange(m, s.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != mdns.RcodeNotImplemented {
		t.Fatalf("NOTIFY: %s, want NOTIMP", mdns.RcodeToString[r.Rcode])
	}
}

// Options.Serving narrows an app's bare name to the machines that serve
// (a Postgres cluster's primary); every other name, and every other app,
// is as before; when none serves the name answers all of them.
func TestServingNarrowsTheAppName(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	reg.PutApp("pg")
	reg.PutApp("web")
	for i, id := range []string{"p1", "p2", "p3"} {
		m := machine("pg", id, "ams", "app", types.StateStarted, fmt.Sprintf("fdaa::1%d", i), "")
		m.Metadata = map[string]string{"hangar_pg_cluster": "pg"}
		reg.PutMachine(m)
	}
	reg.PutMachine(machine("web", "w1", "ams", "app", types.StateStarted, "fdaa::21", ""))
	var mu sync.Mutex
	primary := "p2"
	s := startServer(t, Options{Source: reg, Region: "ams", Serving: func(m Machine) (bool, bool) {
		if m.Metadata["hangar_pg_cluster"] == "" {
			return false, false
		}
		mu.Lock()
		defer mu.Unlock()
		return m.ID == primary, true
	}})
	addr := s.Addrs()[0]
	check := func(name string, want ...string) {
		t.Helper()
		if got := answers(exchange(t, addr, "udp", name, mdns.TypeAAAA)); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("pg.internal", "fdaa::11")
	check("web.internal", "fdaa::21")
	check("p1.vm.pg.internal", "fdaa::10")
	check("ams.pg.internal", "fdaa::10", "fdaa::11", "fdaa::12")
	check("top3.nearest.of.pg.internal", "fdaa::10", "fdaa::11", "fdaa::12")
	mu.Lock()
	primary = "p3" // a failover
	mu.Unlock()
	check("pg.internal", "fdaa::12")
	mu.Lock()
	primary = "" // an election under way
	mu.Unlock()
	check("pg.internal", "fdaa::10", "fdaa::11", "fdaa::12")
}
