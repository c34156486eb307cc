package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequests sends arbitrary bodies and query strings to the routes that
// parse them (apps, tokens, machine operations on a missing machine): the
// answer is never a 500 or a panic, and every error is a JSON ErrorResponse.
func FuzzRequests(f *testing.F) {
	_, h, tok := testServer(f)
	routes := []string{
		"POST /v1/apps", "GET /v1/apps", "POST /v1/tokens", "DELETE /v1/tokens/x",
		"GET /v1/apps/a/machines", "POST /v1/apps/a/machines/m/stop", "POST /v1/apps/a/machines/m",
		"GET /v1/apps/a/machines/m/wait", "POST /v1/apps/a/machines/m/lease", "DELETE /v1/apps/a/machines/m/lease",
		"POST /v1/apps/a/machines/m/signal", "POST /v1/apps/a/machines/m/restart", "POST /v1/apps/a/machines/m/exec",
		"POST /v1/apps/a/machines/m/metadata/k", "GET /v1/apps/a/machines/m/ps", "DELETE /v1/apps/a/machines/m",
	}
	f.Add(uint8(0), "", `{"app_name":"a"}`)
	f.Add(uint8(5), "", `{"signal":"SIGTERM","timeout":"5s"}`)
	f.Add(uint8(6), "", `{"config":{"image":"x","services":[{"internal_port":0}]},"lease_ttl":-1}`)
	f.Add(uint8(7), "state=started&timeout=99", "")
	f.Add(uint8(8), "ttl=abc", `{"ttl":"x"}`)
	f.Add(uint8(10), "", `{"signal":9.5}`)
	f.Add(uint8(12), "", `{"command":["ls"],"timeout":1e99}`)
	f.Fuzz(func(t *testing.T, route uint8, query, body string) {
		method, path, _ := strings.Cut(routes[int(route)%len(routes)], " ")
		req := httptest.NewRequest(method, "/", strings.NewReader(body))
		req.URL.Path = path
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s %q: %d %s", method, path, query, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: error %d without an ErrorResponse: %s", method, path, rec.Code, rec.Body)
			}
		}
	})
}
