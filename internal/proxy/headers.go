package proxy

import (
	"net/http"
	"strings"
)

// The header rules of both request engines, the fast path (fast.go) and
// the net/http path (ServeHTTP on httputil.ReverseProxy): which headers
// are hop-by-hop, which names a Connection header may nominate as
// hop-by-hop, and the forwarded headers the proxy sets on requests. Each
// engine applies them to its own representation of a message; neither
// keeps a list of its own. (On the net/http path, httputil.ReverseProxy
// itself removes the hop-by-hop headers, the same list as
// hopByHopHeaders, and re-adds those a protocol upgrade or "TE: trailers"
// needs; the proxy makes its Connection headers follow these rules first
// with sanitizeConnection.)

// hopByHopHeaders are never passed on, in either direction (RFC 9110
// 7.6.1, plus the legacy Keep-Alive and Proxy-Connection). Lower case.
var hopByHopHeaders = []string{
	"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
	"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
}

// forwardedHeaders are the request headers the proxy sets itself; what
// the client sent under these names is dropped (X-Forwarded-For and Via
// are kept as the start of their chains). Lower case.
var forwardedHeaders = []string{
	"x-forwarded-for", "fly-client-ip", "x-forwarded-proto", "x-forwarded-ssl",
	"x-forwarded-port", "fly-forwarded-port", "fly-region", "fly-request-id", "via",
}

// unsetForwardingHeaders are forwarding headers the proxy does not set;
// a client's are dropped too, so an app never trusts a spoofed one.
var unsetForwardingHeaders = []string{"forwarded", "x-forwarded-host"}

// edgeHeaders pin a request one edge forwards to another host's proxy
// (remote.go). They mean something only on the edge listener, which only
// other hosts of the cluster reach; a client's are dropped everywhere, and
// they never reach an app. Lower case.
var edgeHeaders = []string{"hangar-edge-app", "hangar-edge-prefer", "hangar-edge-force", "hangar-edge-port"}

// endToEndHeaders may not be nominated as hop-by-hop by a Connection
// header: a client (or app) that lists them there must not make the proxy
// drop the message's target, framing, credentials or the proxy's own
// headers (`Connection: close, Host` keeps its Host). Lower case.
var endToEndHeaders = append([]string{
	"host", "content-length", "content-type", "content-encoding", "content-range",
	"authorization", "cookie", "set-cookie", "location", "cache-control",
	"date", "etag", "last-modified", "vary", "www-authenticate", "fly-replay",
}, forwardedHeaders...)

// nameSet is a set of lower-case header names indexed by length, so a
// lookup compares only the names of the same length, without allocating.
type nameSet [40][]string

func newNameSet(lists ...[]string) *nameSet {
	var s nameSet
	for _, l := range lists {
		for _, n := range l {
			s[len(n)] = append(s[len(n)], n)
		}
	}
	return &s
}

func (s *nameSet) has(name []byte) bool {
	if len(name) >= len(s) {
		return false
	}
	for _, n := range s[len(name)] {
		if eqFold(name, n) {
			return true
		}
	}
	return false
}

func (s *nameSet) hasString(name string) bool {
	if len(name) >= len(s) {
		return false
	}
	for _, n := range s[len(name)] {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

var (
	hopByHop    = newNameSet(hopByHopHeaders)
	proxyOwned  = newNameSet(forwardedHeaders, unsetForwardingHeaders, lower(routingHeaders), edgeHeaders)
	requestDrop = newNameSet(hopByHopHeaders, forwardedHeaders, unsetForwardingHeaders, lower(routingHeaders), edgeHeaders)
	endToEnd    = newNameSet(endToEndHeaders)
)

func lower(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}

// nominable reports whether a Connection option may name a header the
// proxy then drops: any but an end-to-end header.
func nominable(tok []byte) bool { return !endToEnd.has(tok) }

// dropRequestHeader reports request headers not passed to the app:
// hop-by-hop headers, those nominated by the Connection header (conn),
// those the proxy sets itself and the routing headers.
func dropRequestHeader(name []byte, conn [][]byte) bool {
	return requestDrop.has(name) || nominated(name, conn)
}

// dropResponseHeader reports response headers not passed to the client:
// hop-by-hop headers and those the Connection header nominates (framing
// is rewritten by the proxy).
func dropResponseHeader(name []byte, conn [][]byte) bool {
	return hopByHop.has(name) || nominated(name, conn)
}

func nominated(name []byte, conn [][]byte) bool {
	for _, t := range conn {
		if len(t) == len(name) && eqFoldBytes(t, name) {
			return true
		}
	}
	return false
}

// sanitizeConnection removes from h's Connection header the options that
// nominate end-to-end headers, so that net/http (which drops every header
// a Connection header names) keeps them, as the fast path does. A header
// without such options is left as it is.
func sanitizeConnection(h http.Header) {
	vs := h["Connection"]
	for i, v := range vs {
		if !nominatesEndToEnd(v) {
			continue
		}
		var keep []string
		for _, tok := range strings.Split(v, ",") {
			if t := strings.TrimSpace(tok); t != "" && !endToEnd.hasString(t) {
				keep = append(keep, t)
			}
		}
		vs[i] = strings.Join(keep, ", ")
	}
}

func nominatesEndToEnd(v string) bool {
	for len(v) > 0 {
		tok := v
		if i := strings.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		if endToEnd.hasString(strings.TrimSpace(tok)) {
			return true
		}
	}
	return false
}

// forwarded are the headers the proxy sets on a request to a machine.
// Both engines write them from here.
type forwarded struct {
	clientIP  string
	tls       bool
	port      string // public port the request came in on
	region    string
	requestID string
	via       string // this hop's Via entry ("1.1 hangar")
	// priorXFF and priorVia are the chains the client sent (empty if
	// none).
	priorXFF, priorVia []byte
}

// each calls set with each forwarded header and its value, in the order
// they are written.
func (f *forwarded) each(set func(name, value string)) {
	f.eachPart(func(name string, prior []byte, value string) {
		if len(prior) > 0 {
			value = string(prior) + ", " + value
		}
		set(name, value)
	})
}

// eachPart calls set with each forwarded header, the chain the client
// sent for it (X-Forwarded-For, Via; else empty) and this hop's value:
// the header's value is prior + ", " + value when prior is not empty.
// The fast path writes the parts without joining them (no allocation).
func (f *forwarded) eachPart(set func(name string, prior []byte, value string)) {
	proto, ssl := "http", "off"
	if f.tls {
		proto, ssl = "https", "on"
	}
	set("X-Forwarded-For", f.priorXFF, f.clientIP)
	set("Fly-Client-Ip", nil, f.clientIP)
	set("X-Forwarded-Proto", nil, proto)
	set("X-Forwarded-Ssl", nil, ssl)
	set("X-Forwarded-Port", nil, f.port)
	set("Fly-Forwarded-Port", nil, f.port)
	set("Fly-Region", nil, f.region)
	set("Fly-Request-Id", nil, f.requestID)
	set("Via", f.priorVia, f.via)
}
