package api

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
)

// TestLogsQuery: the logs endpoint's query parameters: a window of time,
// a grep, and every malformed value a 400 naming it; an app's own
// retention set and read back, a negative one refused.
func TestLogsQuery(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sup := supervisor.New(supervisor.Options{Store: st, DataDir: dir, Region: "tst"})
	s := New(Options{Store: st, Sup: sup, Org: "acme", Region: "tst"})
	tok, _, err := auth.Create(context.Background(), st, auth.Token{Name: "admin", Scope: auth.ScopeOrg, Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	call := func(method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := call("POST", "/v1/apps", `{"app_name":"web"}`); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	logPath := sup.LogPath("web", "m1")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range 10 {
		b.WriteString("2026-12-01T10:00:0" + string(rune('0'+i)) + ".000000000Z stdout line " + string(rune('0'+i)) + "\n")
	}
	if err := os.WriteFile(logPath, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	get := func(q url.Values) (int, string) { return call("GET", "/v1/apps/web/logs?"+q.Encode(), "") }
	code, body := get(url.Values{"since": {"2026-12-01T10:00:03Z"}, "until": {"2026-12-01T10:00:05Z"}})
	if code != 200 || strings.Count(body, "\n") != 3 || !strings.Contains(body, `"message":"line 3"`) || !strings.Contains(body, `"message":"line 5"`) ||
		!strings.Contains(body, `"instance":"m1"`) {
		t.Fatalf("a window: %d\n%s", code, body)
	}
	if code, body := get(url.Values{"since": {"2026-12-01"}, "grep": {"line [79]"}}); code != 200 || strings.Count(body, "\n") != 2 {
		t.Fatalf("grep: %d\n%s", code, body)
	}
	if code, body := get(url.Values{"region": {"elsewhere"}}); code != 200 || body != "" {
		t.Fatalf("another region: %d %q", code, body)
	}
	for q, want := range map[string]string{
		"since=yesterday":                   "since",
		"until=1y":                          "until",
		"grep=(":                            "grep",
		"follow=true&until=1h":              "follow and until",
		"lines=-1":                          "lines",
		"grep=" + strings.Repeat("a", 2000): "grep",
	} {
		code, body := call("GET", "/v1/apps/web/logs?"+q, "")
		if code != 400 || !strings.Contains(body, want) {
			t.Errorf("?%.40s: %d %s; want a 400 naming %s", q, code, body, want)
		}
	}

	if code, body := call("PUT", "/v1/apps/web/logs/retention", `{"max_age_seconds":3600,"max_bytes":1048576}`); code != 200 {
		t.Fatalf("set retention: %d %s", code, body)
	}
	if code, body := call("GET", "/v1/apps/web/logs/retention", ""); code != 200 || !strings.Contains(body, `"max_bytes": 1048576`) {
		t.Fatalf("get retention: %d %s", code, body)
	}
	if code, body := call("PUT", "/v1/apps/web/logs/retention", `{"max_bytes":-1}`); code != 400 {
		t.Fatalf("a negative retention: %d %s", code, body)
	}
	if code, _ := call("GET", "/v1/log-sinks", ""); code != 503 {
		t.Fatalf("log sinks without a shipper: %d", code)
	}
}
