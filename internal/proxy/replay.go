package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/hangar-dev/hangar/internal/flyreplay"
)

// fly-replay on the net/http path: the load balancer as the replayer's
// Target.

// replayTarget is the load balancer as fly-replay's Target.
type replayTarget struct{ p *Proxy }

// replayFrom is the machine a request was sent to.
func replayFrom(req *http.Request) flyreplay.Machine {
	rq, _ := req.Context().Value(ctxKey{}).(*request)
	if rq == nil {
		return flyreplay.Machine{}
	}
	return flyreplay.Machine{App: rq.m.b.App, ID: rq.m.b.MachineID, Region: rq.m.b.Region}
}

func (t replayTarget) Pick(ctx context.Context, d flyreplay.Directive, from flyreplay.Machine, exclude []flyreplay.Machine) (flyreplay.Machine, error) {
	p := t.p
	name := d.App
	if name == "" {
		name = from.App
	}
	rt := routing{forceInstance: d.Instance, preferInstance: d.PreferInstance}
	for _, x := range exclude {
		if x.App == name {
			rt.exclude = x.ID
		}
	}
	if len(d.Regions) > 0 {
		region, ok := p.replayRegion(name, d.Regions, rt.exclude)
		if !ok {
			return flyreplay.Machine{}, fmt.Errorf("app %s has no machine in region %v: %w", name, d.Regions, flyreplay.ErrNoTarget)
		}
		rt.forceRegion = region
	}
	a, m, code, msg := p.acquire(ctx, name, rt)
	if m == nil {
		if code == 0 {
			return flyreplay.Machine{}, ctx.Err()
		}
		return flyreplay.Machine{}, fmt.Errorf("%s: %w", msg, flyreplay.ErrNoTarget)
	}
	if rq, _ := ctx.Value(ctxKey{}).(*request); rq != nil {
		rq.replay = append(rq.replay, held{a: a, m: m})
	} else {
		p.release(a, m)
	}
	return flyreplay.Machine{App: m.b.App, ID: m.b.MachineID, Region: m.b.Region}, nil
}

// replayRegion is the first of regions with a routable machine of the app
// ("" for "any").
func (p *Proxy) replayRegion(name string, regions []string, exclude string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[name]
	for _, r := range regions {
		if r == "any" {
			return "", true
		}
		if a == nil {
			continue
		}
		for _, m := range a.machines {
			if m.b.Region == r && m.routable && !m.draining && m.b.MachineID != exclude {
				return r, true
			}
		}
		for _, m := range a.remote {
			if m.b.Region == r && (m.routable || m.wakeOnly) && (exclude == "" || m.b.MachineID != exclude) {
				return r, true
			}
		}
	}
	return "", false
}

// held is a machine a replayed request is counted against.
type held struct {
	a *app
	m *machine
}

func (t replayTarget) Send(ctx context.Context, to flyreplay.Machine, req *http.Request) (*http.Response, error) {
	p := t.p
	rq, _ := ctx.Value(ctxKey{}).(*request)
	var h held
	if rq != nil {
		for i, x := range rq.replay {
			if x.m.b.MachineID == to.ID && x.m.b.App == to.App {
				h = x
				rq.replay = append(rq.replay[:i:i], rq.replay[i+1:]...)
				break
			}
		}
	}
	if h.m == nil {
		// Not picked: the fallback to the machine that answered.
		a, m, _, msg := p.acquire(ctx, to.App, routing{forceInstance: to.ID})
		if m == nil {
			return nil, fmt.Errorf("%s: %w", msg, flyreplay.ErrNoTarget)
		}
		h = held{a: a, m: m}
	}
	rt := routing{}
	if rq != nil {
		rt = rq.prefs
	}
	rt.forceInstance = to.ID
	p.target(req, h.m, rt)
	resp, err := p.transportFor(h.m).RoundTrip(req)
	if err != nil {
		p.release(h.a, h.m)
		return nil, err
	}
	sanitizeConnection(resp.Header)
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { p.release(h.a, h.m) }}
	return resp, nil
}

// releaseBody ends the count of a request against a machine when the
// response body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
