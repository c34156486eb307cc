package proxy

import (
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Response compression for services with http_options.compress = true.
//
// Fly's proxy compresses responses for the client (zstd, br, gzip,
// deflate) unless the app already set Content-Encoding. Hangar does it
// only when the service asks for it, and only with gzip (the standard
// library's; no new dependencies). Requests of such apps take the net/http
// path (see rebuildSlowLocked), where ServeHTTP wraps the ResponseWriter;
// the fast path and apps without compress are untouched.
//
// A response is compressed when all of these hold:
//   - the client accepts gzip (acceptsGzip: a q-value above 0, and not
//     below the one it gives identity);
//   - the request is not HEAD, has no Range and is not an upgrade;
//   - the status is not 1xx, 204, 206 or 304;
//   - the app set no Content-Encoding (any value, "none" and "identity"
//     included) and no Content-Range, and Cache-Control has no no-transform;
//   - the Content-Type is compressible (compressibleType);
//   - the Content-Length, if the app gave one, is at least
//     compressMinLength.
//
// A compressed response loses Content-Length and Accept-Ranges, gets
// Content-Encoding: gzip, and a strong ETag becomes weak (the bytes
// differ from the identity representation's). Every response that is
// compressible by its headers gets Vary: Accept-Encoding, compressed or
// not, so a cache between the proxy and the client keeps them apart.
// Nothing is buffered: each flush of the response (the reverse proxy
// flushes after every write) flushes the gzip stream too, so streamed
// responses still arrive as they are produced.

// compressMinLength is the smallest Content-Length worth compressing: below
// it gzip's header and trailer (18 bytes) and a TCP packet's worth of
// latency outweigh the saving.
const compressMinLength = 1024

// gzipLevel trades CPU for size: the middle of gzip's scale.
const gzipLevel = 5

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzipLevel) // only fails for a bad level
	return zw
}}

// acceptsGzip reports whether an Accept-Encoding header lets the response
// be gzip-encoded (RFC 9110 12.5.3). No header or an empty one means the
// client asked for no coding. "gzip" and "x-gzip" name gzip, "*" stands for
// any coding not listed; q=0 refuses a coding. If the client lists identity
// with a higher q-value than gzip, it prefers the body as it is. A
// malformed q-value counts as 0: a header the proxy cannot read does not
// get a coding the client may not understand.
func acceptsGzip(values []string) bool {
	gzipQ, starQ, identityQ := -1.0, -1.0, -1.0
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(elem, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding == "" {
				continue
			}
			q := qValue(params)
			switch coding {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "*":
				starQ = max(starQ, q)
			case "identity":
				identityQ = max(identityQ, q)
			}
		}
	}
	if gzipQ < 0 {
		gzipQ = starQ // "*" covers gzip only when gzip is not listed
	}
	if gzipQ <= 0 {
		return false
	}
	return identityQ < 0 || gzipQ >= identityQ
}

// qValue reads the q parameter of one Accept-Encoding element ("q=0.8";
// other parameters are ignored); 1 when there is none, 0 when it is
// malformed.
func qValue(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		val = strings.TrimSpace(val)
		// RFC 9110: "0" or "1", optionally with up to three decimals.
		if len(val) == 0 || len(val) > 5 || (val[0] != '0' && val[0] != '1') {
			return 0
		}
		q, err := strconv.ParseFloat(val, 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// compressibleType reports whether a Content-Type is worth compressing:
// text (except text/event-stream, which is a stream of small events that
// must reach the client one by one), JSON, JavaScript, XML and their
// +json and +xml kinds, SVG, WebAssembly, YAML, TOML, GraphQL, and the
// uncompressed font and icon formats. Images, audio, video, archives and
// already compressed fonts (woff, woff2) are not: they do not shrink.
func compressibleType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if strings.HasPrefix(mt, "text/") {
		return mt != "text/event-stream"
	}
	if strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml") {
		return true
	}
	switch mt {
	case "application/json", "application/javascript", "application/x-javascript",
		"application/ecmascript", "application/xml", "application/wasm",
		"application/yaml", "application/x-yaml", "application/toml",
		"application/graphql", "application/x-www-form-urlencoded",
		"application/vnd.ms-fontobject", "application/x-font-ttf",
		"font/ttf", "font/otf", "font/collection",
		"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp":
		return true
	}
	return false
}

// compressWriter is the ResponseWriter of a request to an app with
// compress on. It decides when the final status is written; after that
// it writes either through or through a gzip.Writer.
type compressWriter struct {
	w      http.ResponseWriter
	accept bool // the request and client allow gzip
	zw     *gzip.Writer
	done   bool // the final header is written
}

// newCompressWriter wraps w for r; nil for requests whose responses are
// never compressed or varied (protocol upgrades).
func newCompressWriter(w http.ResponseWriter, r *http.Request) *compressWriter {
	if r.Header.Get("Upgrade") != "" {
		return nil
	}
	return &compressWriter{
		w:      w,
		accept: r.Method != http.MethodHead && r.Header.Get("Range") == "" && acceptsGzip(r.Header.Values("Accept-Encoding")),
	}
}

func (cw *compressWriter) Header() http.Header { return cw.w.Header() }

func (cw *compressWriter) WriteHeader(code int) {
	if cw.done {
		cw.w.WriteHeader(code) // net/http logs the superfluous call
		return
	}
	if code >= 100 && code < 200 {
		cw.w.WriteHeader(code) // interim (103 Early Hints): not final
		return
	}
	cw.done = true
	h := cw.w.Header()
	if compressibleResponse(code, h) {
		addVary(h)
		if cw.accept {
			h.Del("Content-Length")
			h.Del("Accept-Ranges")
			h.Set("Content-Encoding", "gzip")
			if et := h.Get("Etag"); strings.HasPrefix(et, `"`) {
				h.Set("Etag", "W/"+et)
			}
			cw.zw = gzipPool.Get().(*gzip.Writer)
			cw.zw.Reset(cw.w)
		}
	}
	cw.w.WriteHeader(code)
}

// compressibleResponse applies the response's side of the rules.
func compressibleResponse(code int, h http.Header) bool {
	switch code {
	case http.StatusNoContent, http.StatusPartialContent, http.StatusNotModified:
		return false
	}
	if _, ok := h["Content-Encoding"]; ok {
		return false
	}
	if h.Get("Content-Range") != "" || !compressibleType(h.Get("Content-Type")) {
		return false
	}
	for _, v := range h.Values("Cache-Control") {
		if strings.Contains(strings.ToLower(v), "no-transform") {
			return false
		}
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n < compressMinLength {
			return false
		}
	}
	return true
}

// addVary adds Accept-Encoding to Vary unless it (or "*") is there.
func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return
			}
		}
	}
	h.Add("Vary", "Accept-Encoding")
}

func (cw *compressWriter) Write(b []byte) (int, error) {
	if !cw.done {
		cw.WriteHeader(http.StatusOK)
	}
	if cw.zw != nil {
		return cw.zw.Write(b)
	}
	return cw.w.Write(b)
}

// FlushError flushes what was compressed so far, then the connection.
func (cw *compressWriter) FlushError() error {
	if cw.zw != nil {
		if err := cw.zw.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(cw.w).Flush()
}

// Flush implements http.Flusher.
func (cw *compressWriter) Flush() { _ = cw.FlushError() }

// Unwrap gives http.ResponseController the connection's writer (deadlines).
func (cw *compressWriter) Unwrap() http.ResponseWriter { return cw.w }

// finish ends the gzip stream, if any, once the response is complete;
// call it before the handler returns.
func (cw *compressWriter) finish() {
	if cw.zw == nil {
		return
	}
	_ = cw.zw.Close() // the client may be gone: nothing to tell it
	cw.zw.Reset(nil)
	gzipPool.Put(cw.zw)
	cw.zw = nil
}
