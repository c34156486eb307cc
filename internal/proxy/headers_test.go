package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A Connection header may nominate hop-by-hop headers, never end-to-end
// ones: `Connection: close, Host` keeps its Host, in both engines, and an
// app's `Connection: Set-Cookie` keeps its cookie.
func TestConnectionCannotDropEndToEndHeaders(t *testing.T) {
	for _, engine := range []struct {
		name  string
		front func(*testing.T, *Proxy) *httptest.Server
	}{{"fast path", front}, {"net/http path", frontStd}} {
		t.Run(engine.name, func(t *testing.T) {
			p := New("example.test", "ord", nil)
			got := make(chan *http.Request, 1)
			p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
				got <- r.Clone(r.Context())
				w.Header().Set("Connection", "Set-Cookie, X-Hop")
				w.Header().Set("Set-Cookie", "s=1")
				w.Header().Set("X-Hop", "hop")
				io.WriteString(w, "ok")
			}), true)
			s := engine.front(t, p)
			out := raw(t, strings.TrimPrefix(s.URL, "http://"), "GET / HTTP/1.1\r\nHost: web.example.test\r\n"+
				"Connection: close, Host, Authorization, X-Forwarded-For, X-Secret\r\n"+
				"Authorization: Bearer t\r\nX-Secret: hop\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
			if !strings.HasPrefix(out, "HTTP/1.1 200") {
				t.Fatalf("answer %q", out)
			}
			var r *http.Request
			select {
			case r = <-got:
			default:
				t.Fatalf("the app got no request; answer %q", out)
			}
			if r.Host != "web.example.test" {
				t.Errorf("app got Host %q", r.Host)
			}
			if r.Header.Get("Authorization") != "Bearer t" {
				t.Errorf("app got Authorization %q; a Connection header dropped an end-to-end header", r.Header.Get("Authorization"))
			}
			if r.Header.Get("X-Secret") != "" {
				t.Errorf("nominated hop-by-hop header X-Secret reached the app")
			}
			if xff := r.Header.Get("X-Forwarded-For"); xff != "203.0.113.9, 127.0.0.1" {
				t.Errorf("app got X-Forwarded-For %q", xff)
			}
			head, _, _ := strings.Cut(out, "\r\n\r\n")
			if !strings.Contains(head, "Set-Cookie: s=1") {
				t.Errorf("the app's Connection header dropped Set-Cookie: %q", head)
			}
			if strings.Contains(head, "X-Hop") {
				t.Errorf("nominated hop-by-hop response header passed: %q", head)
			}
		})
	}
}

// Both engines drop the same request headers: the rules are one set.
func TestRequestDropRules(t *testing.T) {
	for _, n := range append(append(append([]string{}, hopByHopHeaders...), forwardedHeaders...), unsetForwardingHeaders...) {
		if !dropRequestHeader([]byte(strings.ToUpper(n)), nil) {
			t.Errorf("request header %s is kept", n)
		}
	}
	for _, n := range routingHeaders {
		if !dropRequestHeader([]byte(n), nil) {
			t.Errorf("routing header %s is kept", n)
		}
	}
	for _, n := range []string{"Host", "Content-Type", "Cookie", "X-App"} {
		if dropRequestHeader([]byte(n), nil) {
			t.Errorf("request header %s is dropped", n)
		}
	}
	_, _, toks := connectionOptions([]byte("close, Host, x-a ,Content-Length, keep-alive"), nil)
	if len(toks) != 1 || string(toks[0]) != "x-a" {
		t.Errorf("Connection options %q, want only x-a", toks)
	}
	h := http.Header{"Connection": {"close, Host, X-A", "Upgrade"}}
	sanitizeConnection(h)
	if got := strings.Join(h["Connection"], "|"); got != "close, X-A|Upgrade" {
		t.Errorf("sanitized Connection %q", got)
	}
}
