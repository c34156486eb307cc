package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"testing"
)

// Every request head the proxy accepts must, as forwarded, parse again to
// the same request (method, target, host, body framing): the app can never
// see a different request than the proxy routed.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: 5\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\nhello",
		"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.0 x\r\n\r\n",
		"\r\nGET / HTTP/1.0\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
		head, err := readHead(br, nil, 8<<10)
		if err != nil {
			return
		}
		var h reqHead
		if err := parseRequestHead(head, &h); err != nil || !h.fastPathOK() {
			return
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatal("accepted both framings")
		}
		cs := &connState{p: New("example.test", "local", nil), req: h, clientIP: "192.0.2.1"}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		cs.writeRequestHead(w, "rid-local", &request{m: &machine{}})
		w.Flush()
		var h2 reqHead
		if err := parseRequestHead(out.Bytes(), &h2); err != nil {
			t.Fatalf("forwarded head does not parse: %v\n%q", err, out.Bytes())
		}
		if !bytes.Equal(h.method, h2.method) || !bytes.Equal(h.target, h2.target) || !bytes.Equal(h.host, h2.host) ||
			h.chunked != h2.chunked || h.contentLength != h2.contentLength || h2.upgrade {
			t.Fatalf("forwarded request differs:\n%q\n%q", head, out.Bytes())
		}
		// And Go's own parser (what most apps here run) agrees.
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out.Bytes())))
		if err != nil {
			// Go is stricter about some targets; the framing must still agree.
			return
		}
		if req.Method != string(h.method) || (req.ContentLength != h.contentLength && !(h.contentLength < 0 && req.ContentLength <= 0)) {
			t.Fatalf("net/http reads %s CL=%d, proxy %s CL=%d", req.Method, req.ContentLength, h.method, h.contentLength)
		}
	})
}

// Whatever chunked body the proxy passes on is valid chunked encoding with
// the data it counted.
func FuzzCopyChunked(f *testing.F) {
	for _, s := range []string{"0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", "ffffffffffffffff\r\n", "1\r\nab\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		n, err := copyChunked(w, bufio.NewReaderSize(bytes.NewReader(in), 64), 1<<20, false, make([]byte, 128))
		w.Flush()
		if err != nil {
			return
		}
		data, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(out.Bytes())))
		if err != nil || int64(len(data)) != n {
			t.Fatalf("passed on invalid chunked body (%v, %d vs %d bytes): %q", err, len(data), n, out.Bytes())
		}
	})
}

func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "HTTP/1.0 204\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		head, err := readHead(bufio.NewReaderSize(bytes.NewReader(in), 4096), nil, 8<<10)
		if err != nil {
			return
		}
		var h respHead
		if parseResponseHead(head, &h) != nil {
			return
		}
		if h.status < 100 || h.status > 999 || (h.chunked && h.contentLength >= 0) {
			t.Fatalf("accepted %q as status %d chunked=%v CL=%d", head, h.status, h.chunked, h.contentLength)
		}
	})
}

func FuzzParseRouting(f *testing.F) {
	f.Add("ord", "", "148e", "")
	f.Add("", "fra", "", "e2865")
	f.Add("a b", "\x00", "x,y", "")
	f.Fuzz(func(t *testing.T, pr, fr, pi, fi string) {
		h := http.Header{}
		for k, v := range map[string]string{"Fly-Prefer-Region": pr, "Fly-Force-Region": fr, "Fly-Prefer-Instance-Id": pi, "Fly-Force-Instance-Id": fi} {
			if v != "" {
				h.Set(k, v)
			}
		}
		r, err := parseRouting(h)
		if err != nil {
			return
		}
		for _, v := range []string{r.preferRegion, r.forceRegion, r.preferInstance, r.forceInstance} {
			if !token(v) || len(v) > 64 {
				t.Fatalf("accepted %q", v)
			}
		}
	})
}
