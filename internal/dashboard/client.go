package dashboard

// The dashboard's one way to the data: a /v1 request served in-process by
// the API handler, with the session's token, as the CLI would send it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// apiError is an error answer of the API (its message), or one of the
// dashboard's own, with a hint for the person reading it.
type apiError struct {
	Status  int
	Message string
	Details string
	Hint    string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	if e.Details != "" {
		s += " (" + e.Details + ")"
	}
	return s
}

// hintFor is what to do about an API error of a status, beyond what the
// API's message says.
func hintFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "your token is no longer valid (revoked?): sign in again"
	case http.StatusForbidden:
		return "the token you signed in with may not do this: an app token sees and acts on its own app only; sign in with an org token for more"
	case http.StatusNotFound:
		return "it may have been deleted: go back to the apps list"
	case http.StatusConflict:
		return "something changed meanwhile: reload the page and try again"
	case http.StatusServiceUnavailable:
		return "the daemon is busy or a dependency is down: try again in a moment"
	}
	return ""
}

// client calls the API as one session's user.
type client struct {
	api   http.Handler
	token string
	ctx   context.Context
	// remote is the browser's address, so the API logs the real caller.
	remote string
	// live, when set, gets a copy of a release operation's NDJSON lines
	// as the API writes them (the browser's script shows the progress).
	live http.ResponseWriter
}

func (d *Dashboard) client(r *http.Request, s *session) *client {
	return &client{api: d.api, token: s.token, ctx: r.Context(), remote: r.RemoteAddr}
}

// liveClient is client, with a release's progress copied to w when the
// browser asked for it (wantsLive).
func (d *Dashboard) liveClient(w http.ResponseWriter, r *http.Request, s *session) *client {
	c := d.client(r, s)
	if wantsLive(r) {
		c.live = w
	}
	return c
}

// apiPath joins escaped path segments under /v1.
func apiPath(segs ...string) string {
	var b strings.Builder
	b.WriteString("/v1")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// request builds an API request with the session's token.
func (c *client) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the request to %s: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, fmt.Errorf("API request %s %s: %w", method, path, err)
	}
	req.RemoteAddr = c.remote
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// call sends one request and returns the answer's status and body.
func (c *client) call(method, path string, body any) (int, []byte, error) {
	req, err := c.request(c.ctx, method, path, body)
	if err != nil {
		return 0, nil, err
	}
	rec := newRecorder()
	rec.live = c.live
	c.api.ServeHTTP(rec, req)
	return rec.status(), rec.body.Bytes(), nil
}

// do sends one request and decodes a 2xx answer into out (when not nil);
// any other answer is an *apiError with the API's message.
func (c *client) do(method, path string, body, out any) error {
	code, b, err := c.call(method, path, body)
	if err != nil {
		return err
	}
	if code < 200 || code > 299 {
		return errorOf(code, b)
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("read the API's answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *client) get(path string, out any) error { return c.do(http.MethodGet, path, nil, out) }

// errorOf is the error of a non-2xx answer.
func errorOf(code int, body []byte) *apiError {
	var er types.ErrorResponse
	if json.Unmarshal(body, &er) != nil || er.Error == "" {
		er.Error = strings.TrimSpace(string(body))
		if er.Error == "" {
			er.Error = http.StatusText(code)
		}
	}
	return &apiError{Status: code, Message: er.Error, Details: er.Details, Hint: hintFor(code)}
}

// release runs a release-making operation (scale, rollback, secrets
// roll-out), whose answer is NDJSON DeployLines, and returns its progress
// and outcome.
func (c *client) release(path string, body any) (*types.Release, []string, error) {
	code, b, err := c.call(http.MethodPost, path, body)
	if err != nil {
		return nil, nil, err
	}
	if code < 200 || code > 299 {
		return nil, nil, errorOf(code, b)
	}
	var (
		events []string
		rel    *types.Release
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l types.DeployLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Event != nil {
			e := l.Event.Message
			if l.Event.MachineID != "" {
				e = l.Event.MachineID + ": " + e
			}
			events = append(events, l.Event.Time.UTC().Format("15:04:05")+" "+e)
		}
		if l.Release != nil {
			rel = l.Release
		}
		if l.Error != "" {
			status := l.Status
			if status == 0 {
				status = http.StatusInternalServerError
			}
			return rel, events, &apiError{Status: status, Message: l.Error, Hint: hintFor(status)}
		}
	}
	return rel, events, nil
}

// recorder is an in-memory http.ResponseWriter for in-process calls.
// With live set, a 200 answer's bytes are also copied there as written.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	live   http.ResponseWriter
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if r.live != nil && r.code == http.StatusOK {
		startLive(r.live)
		if _, err := r.live.Write(b); err == nil {
			flush(r.live)
		}
	}
	return r.body.Write(b)
}

// Flush lets the API's streaming handlers flush (a no-op: Write copies
// to live at once).
func (r *recorder) Flush() {}
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
