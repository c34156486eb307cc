package flyreplay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Defaults, as Fly documents them.
const (
	DefaultMaxBody = 1 << 20 // requests over 1 MB cannot be replayed
	DefaultMaxHops = 10
)

// Errors of a replay; StatusOf maps them to the status the client gets.
var (
	ErrTooLarge    = errors.New("request too large to replay")
	ErrTooManyHops = errors.New("too many fly-replay hops")
	ErrNoTarget    = errors.New("no machine matches the fly-replay target")
)

// StatusOf is the HTTP status the proxy answers for a replay error.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNoTarget):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrTooManyHops):
		return http.StatusLoopDetected
	}
	return http.StatusBadGateway
}

// Machine identifies a machine that answers requests.
type Machine struct {
	App    string
	ID     string
	Region string
}

// Target is what the Replayer needs from the proxy.
type Target interface {
	// Pick chooses a machine for d. d.App == "" means from.App. It must
	// not return a machine in exclude (elsewhere=true), must return the
	// named machine for d.Instance, should honour d.PreferInstance and
	// d.Regions in order ("any" = any region), and returns an error
	// wrapping ErrNoTarget when nothing matches. The proxy counts the
	// request against the machine it returns until Send's response body
	// is closed.
	Pick(ctx context.Context, d Directive, from Machine, exclude []Machine) (Machine, error)
	// Send sends req (with its URL host left to the target) to m.
	Send(ctx context.Context, m Machine, req *http.Request) (*http.Response, error)
}

// Body records a request body as it streams to the first machine, up to a
// limit, so the request can be replayed.
type Body struct {
	mu    sync.Mutex
	rc    io.ReadCloser
	buf   bytes.Buffer
	limit int64
	over  bool // more than limit bytes went by
	eof   bool
}

// Capture replaces req.Body with a reader that records up to limit bytes
// (DefaultMaxBody if limit <= 0) and returns the recorder.
func Capture(req *http.Request, limit int64) *Body {
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	b := &Body{rc: req.Body, limit: limit}
	if req.Body == nil || req.Body == http.NoBody {
		b.eof = true
		return b
	}
	req.Body = b
	return b
}

// Read implements io.Reader. It holds the lock while reading, so a
// transport still sending the body when the machine has already answered
// and Bytes reading the rest never read the real body at the same time.
func (b *Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.rc.Read(p)
	if n > 0 && !b.over {
		if int64(b.buf.Len()+n) > b.limit {
			b.over = true
			b.buf = bytes.Buffer{}
		} else {
			b.buf.Write(p[:n])
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close is a no-op: the body must stay readable for Bytes after the first
// transport is done with it. The server closes the real body.
func (b *Body) Close() error { return nil }

// Bytes reads what the first machine left unread (up to the limit) and
// returns the whole body, or an error wrapping ErrTooLarge.
func (b *Body) Bytes() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.eof && !b.over {
		rest, err := io.ReadAll(io.LimitReader(b.rc, b.limit-int64(b.buf.Len())+1))
		if err != nil {
			return nil, fmt.Errorf("read request body for replay: %w", err)
		}
		if int64(b.buf.Len()+len(rest)) > b.limit {
			b.over = true
		} else {
			b.buf.Write(rest)
			b.eof = true
		}
	}
	if b.over {
		return nil, fmt.Errorf("body over %d bytes: %w", b.limit, ErrTooLarge)
	}
	return b.buf.Bytes(), nil
}

// Replayer follows fly-replay answers.
type Replayer struct {
	Target  Target
	MaxHops int                              // DefaultMaxHops if 0
	Timeout time.Duration                    // per replay when the header has none; 0 = none
	Now     func() time.Time                 // for fly-replay-src t=; time.Now if nil
	Log     func(format string, args ...any) // optional
}

// Follow is called with the first machine's response to req. If that
// response carries no fly-replay header it is returned unchanged.
// Otherwise its body is discarded and the request (headers, and the body
// recorded by body) is sent to the machine the header names, with
// fly-replay-src, for up to MaxHops replays; the last response is
// returned. The caller owns the returned response's body.
func (rp *Replayer) Follow(ctx context.Context, req *http.Request, body *Body, from Machine, resp *http.Response) (*http.Response, error) {
	maxHops := rp.MaxHops
	if maxHops <= 0 {
		maxHops = DefaultMaxHops
	}
	now := rp.Now
	if now == nil {
		now = time.Now
	}
	for hop := 0; ; hop++ {
		hv := resp.Header.Get(HeaderReplay)
		if hv == "" {
			return resp, nil
		}
		drain(resp)
		if hop >= maxHops {
			return nil, fmt.Errorf("request %s %s: %d replays, the last from machine %s: %w", req.Method, req.URL.Path, hop, from.ID, ErrTooManyHops)
		}
		d, err := Parse(hv)
		if err != nil {
			return nil, fmt.Errorf("machine %s of app %s: %w", from.ID, from.App, err)
		}
		next, err := rp.replay(ctx, req, body, from, d, now())
		if err != nil && d.Fallback != "" {
			if rp.Log != nil {
				rp.Log("fly-replay from machine %s failed (%v); falling back to it", from.ID, err)
			}
			next, err = rp.send(ctx, req, body, from, from, d, now(), false)
			if err == nil {
				next.Header.Del(HeaderReplay)
			}
		}
		if err != nil {
			return nil, err
		}
		resp = next
		if m, ok := resp.Request.Context().Value(machineKey{}).(Machine); ok {
			from = m
		}
	}
}

type machineKey struct{}

func (rp *Replayer) replay(ctx context.Context, req *http.Request, body *Body, from Machine, d Directive, t time.Time) (*http.Response, error) {
	var exclude []Machine
	if d.Elsewhere {
		exclude = []Machine{from}
	}
	if d.Timeout <= 0 {
		d.Timeout = rp.Timeout
	}
	pctx := ctx
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	to, err := rp.Target.Pick(pctx, d, from, exclude)
	if err != nil {
		return nil, fmt.Errorf("fly-replay %q from machine %s: %w", d.String(), from.ID, err)
	}
	return rp.send(ctx, req, body, from, to, d, t, d.Timeout > 0)
}

func (rp *Replayer) send(ctx context.Context, req *http.Request, body *Body, from, to Machine, d Directive, t time.Time, timed bool) (*http.Response, error) {
	b, err := body.Bytes()
	if err != nil {
		return nil, fmt.Errorf("fly-replay from machine %s: %w", from.ID, err)
	}
	ctx = context.WithValue(ctx, machineKey{}, to)
	var cancel context.CancelFunc = func() {}
	if timed {
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
	}
	out := req.Clone(ctx)
	out.Body = io.NopCloser(bytes.NewReader(b))
	out.ContentLength = int64(len(b))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	if len(b) == 0 {
		out.Body = http.NoBody
	}
	out.Header.Set(HeaderReplaySrc, Src{Instance: from.ID, Region: from.Region, Time: t, State: d.State}.String())
	resp, err := rp.Target.Send(ctx, to, out)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fly-replay to machine %s of app %s: %w", to.ID, to.App, err)
	}
	resp.Request = out
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelBody) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

// drain discards a small rest of a body so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// Transport wraps the proxy's transport: it records each request's body,
// and when the machine answers with fly-replay, replays the request as the
// header says. From tells which machine a request went to (the proxy keeps
// it in the request's context).
type Transport struct {
	Base     http.RoundTripper
	Replayer *Replayer
	From     func(*http.Request) Machine
	MaxBody  int64 // DefaultMaxBody if 0
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body := Capture(req, t.MaxBody)
	resp, err := t.Base.RoundTrip(req)
	if err != nil || resp.Header.Get(HeaderReplay) == "" {
		return resp, err
	}
	return t.Replayer.Follow(req.Context(), req, body, t.From(req), resp)
}
