package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/hangar-dev/hangar/internal/h2backend"
)

// The transports to machines on the net/http path: HTTP/1.1 or h2c
// (http_options.h2_backend), per idle_timeout.

// trKey identifies a transport to machines: HTTP/1.1 or h2c, and the idle
// timeout of its connections.
type trKey struct {
	h2   bool
	idle time.Duration
}

// transportFor returns the transport for a machine's service.
func (p *Proxy) transportFor(m *machine) http.RoundTripper {
	if m.remote != nil {
		return p.edgeTransport()
	}
	p.mu.Lock()
	k := trKey{m.h2, m.idleTimeout}
	p.mu.Unlock()
	if k == (trKey{}) {
		return p.baseTr
	}
	p.trMu.Lock()
	defer p.trMu.Unlock()
	if tr := p.trs[k]; tr != nil {
		return tr
	}
	o := h2backend.Options{IdleTimeout: k.idle}
	var tr http.RoundTripper
	if k.h2 {
		tr = h2backend.NewH2CTransport(o)
	} else {
		t := h2backend.NewHTTP1Transport(o)
		t.DisableCompression = true
		tr = t
	}
	if p.trs == nil {
		p.trs = map[trKey]http.RoundTripper{}
	}
	p.trs[k] = tr
	return tr
}

// machineTransport sends a request with the transport of the machine the
// request is counted against.
type machineTransport struct{ p *Proxy }

func (t machineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rq, _ := req.Context().Value(ctxKey{}).(*request)
	if rq == nil {
		return t.p.baseTr.RoundTrip(req)
	}
	if !t.p.NoStats {
		// For dialMachine: the machine a new connection is opened to.
		req = req.WithContext(context.WithValue(req.Context(), dialKey{}, dialFor{addr: rq.m.b.Addr, s: rq.m.stats}))
	}
	resp, err := t.p.transportFor(rq.m).RoundTrip(req)
	if err == nil {
		sanitizeConnection(resp.Header) // before net/http drops what it names
	}
	return resp, err
}
