package statics

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

// image builds a rootfs with statics, symlinks inside and pointing out,
// and a secret beside the rootfs that must never be served.
func image(t *testing.T) (root, outside string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "rootfs")
	outside = filepath.Join(dir, "secret.txt")
	files := map[string]string{
		"app/public/index.html":      "<html>home</html>",
		"app/public/css/site.css":    "body{color:red}",
		"app/public/data.json":       `{"a":1}`,
		"app/public/big.bin":         strings.Repeat("0123456789", 1000),
		"app/public/docs/index.html": "docs index",
		"etc/passwd":                 "rootfs passwd",
		"opt/assets/logo.svg":        "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"app/public/passwd":  "/etc/passwd",               // absolute: the rootfs's, not the host's
		"app/public/escape":  "../../../../../secret.txt", // climbs: stops at the rootfs
		"app/public/assets":  "/opt/assets",               // a directory elsewhere in the image
		"app/public/loop":    "loop",
		"app/public/hostabs": outside, // absolute host path: means <rootfs>/<that path>
	}
	for p, target := range links {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func serve(t *testing.T, root string, next http.Handler) *httptest.Server {
	t.Helper()
	h, err := New(root, []Static{
		{GuestPath: "/app/public", URLPrefix: "/static/", IndexDocument: "index.html"},
		{GuestPath: "/app/public/css", URLPrefix: "/static/styles"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Next = next
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestServesWithTypesAndIndex(t *testing.T) {
	t.Parallel()
	root, _ := image(t)
	s := serve(t, root, nil)
	for _, c := range []struct{ path, body, ctype string }{
		{"/static/css/site.css", "body{color:red}", "text/css; charset=utf-8"},
		{"/static/styles/site.css", "body{color:red}", "text/css; charset=utf-8"},
		{"/static/data.json", `{"a":1}`, "application/json"},
		{"/static/", "<html>home</html>", "text/html; charset=utf-8"},
		{"/static", "<html>home</html>", "text/html; charset=utf-8"},
		{"/static/docs/", "docs index", "text/html; charset=utf-8"},
		{"/static/passwd", "rootfs passwd", "text/plain; charset=utf-8"},
		{"/static/assets/logo.svg", `<svg xmlns="http://www.w3.org/2000/svg"></svg>`, "image/svg+xml"},
	} {
		resp, body := get(t, s.URL+c.path)
		if resp.StatusCode != 200 || body != c.body || resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("GET %s = %d %q type %q; want 200 %q %q", c.path, resp.StatusCode, body, resp.Header.Get("Content-Type"), c.body, c.ctype)
		}
	}
	for _, p := range []string{"/static/missing.txt", "/static/loop", "/staticky/index.html", "/static/escape", "/static/hostabs"} {
		if resp, body := get(t, s.URL+p); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d %q, want 404", p, resp.StatusCode, body)
		}
	}
}

func TestETagAndRange(t *testing.T) {
	t.Parallel()
	root, _ := image(t)
	s := serve(t, root, nil)
	resp, body := get(t, s.URL+"/static/big.bin")
	tag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || len(body) != 10000 || !strings.HasPrefix(tag, `"`) {
		t.Fatalf("GET = %d, %d bytes, ETag %q", resp.StatusCode, len(body), tag)
	}
	resp, body = get(t, s.URL+"/static/big.bin", "If-None-Match", tag)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("If-None-Match with the ETag = %d %q, want 304", resp.StatusCode, body)
	}
	resp, _ = get(t, s.URL+"/static/big.bin", "If-None-Match", `"other"`)
	if resp.StatusCode != 200 {
		t.Fatalf("If-None-Match with another ETag = %d, want 200", resp.StatusCode)
	}
	resp, body = get(t, s.URL+"/static/big.bin", "Range", "bytes=10-24")
	if resp.StatusCode != http.StatusPartialContent || body != "012345678901234" || resp.Header.Get("Content-Range") != "bytes 10-24/10000" {
		t.Fatalf("Range = %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	resp, body = get(t, s.URL+"/static/big.bin", "Range", "bytes=-3")
	if resp.StatusCode != http.StatusPartialContent || body != "789" {
		t.Fatalf("suffix Range = %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, s.URL+"/static/big.bin", "Range", "bytes=20000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable Range = %d, want 416", resp.StatusCode)
	}
	// If-Range with a stale ETag gets the whole file.
	resp, body = get(t, s.URL+"/static/big.bin", "Range", "bytes=0-1", "If-Range", `"stale"`)
	if resp.StatusCode != 200 || len(body) != 10000 {
		t.Fatalf("If-Range stale = %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestTraversalOverRawConn sends paths that a client library would clean
// up, straight over a TCP connection.
func TestTraversalOverRawConn(t *testing.T) {
	t.Parallel()
	root, outside := image(t)
	secret, _ := os.ReadFile(outside)
	s := serve(t, root, nil)
	for _, p := range []string{
		"/static/../../secret.txt", "/static/%2e%2e/%2e%2e/%2e%2e/secret.txt", "/static/..%2f..%2f..%2fsecret.txt",
		"/static/escape", "/static/hostabs", "/static/css/../../../../secret.txt",
	} {
		c, err := net.Dial("tcp", s.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		if strings.Contains(string(b), string(secret)) {
			t.Errorf("GET %s served the host's secret", p)
		}
	}
	h, _ := New(root, nil)
	for _, g := range []string{"/../../secret.txt", "/app/public/escape", "/app/public/hostabs", "/app/public/passwd"} {
		p, err := h.Resolve(g)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("Resolve(%s) = %s, outside the rootfs", g, p)
		}
	}
}

func TestNextGetsTheRest(t *testing.T) {
	t.Parallel()
	root, _ := image(t)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app:"+r.Method+" "+r.URL.Path) })
	s := serve(t, root, app)
	if _, body := get(t, s.URL+"/api/x"); body != "app:GET /api/x" {
		t.Errorf("unmatched path: %q", body)
	}
	if _, body := get(t, s.URL+"/static/nope.txt"); body != "app:GET /static/nope.txt" {
		t.Errorf("missing static: %q", body)
	}
	resp, err := http.Post(s.URL+"/static/index.html", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "app:POST /static/index.html" {
		t.Errorf("POST under a prefix: %q", b)
	}
}

func TestFromMachineConfig(t *testing.T) {
	got := FromMachineConfig([]types.Static{
		{GuestPath: "/app/public", URLPrefix: "/static", IndexDocument: "index.html"},
		{GuestPath: "/", URLPrefix: "/uploads", TigrisBucket: "bucket"},
	})
	if len(got) != 1 || got[0] != (Static{GuestPath: "/app/public", URLPrefix: "/static", IndexDocument: "index.html"}) {
		t.Fatalf("got %+v", got)
	}
}

// FuzzResolve: whatever the request path, the resolved file is inside the
// rootfs, and the handler never serves the secret beside it.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/static/../../secret.txt", "/static/escape/x", "/static/assets/../../../etc/passwd", "/static/hostabs", "/static//./passwd"} {
		f.Add(s)
	}
	dir := f.TempDir()
	root := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(root, "app/public/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("host secret"), 0o600)
	os.WriteFile(filepath.Join(root, "app/public/ok.txt"), []byte("ok"), 0o644)
	os.Symlink("../../../../secret.txt", filepath.Join(root, "app/public/escape"))
	os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(root, "app/public/hostabs"))
	os.Symlink("/", filepath.Join(root, "app/public/sub/rootlink"))
	h, err := New(root, []Static{{GuestPath: "/app/public", URLPrefix: "/static", IndexDocument: "ok.txt"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if res, err := h.Resolve(p); err == nil {
			if rel, err := filepath.Rel(root, res); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("Resolve(%q) = %s, outside the rootfs", p, res)
			}
		}
		s, rest, ok := h.Match(p)
		if !ok {
			return
		}
		if file, _, err := h.open(s, rest); err == nil {
			b, _ := io.ReadAll(file)
			file.Close()
			if strings.Contains(string(b), "host secret") {
				t.Fatalf("path %q served the host's secret", p)
			}
		}
	})
}
