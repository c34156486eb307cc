package daemon

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/metrics"
	"github.com/hangar-dev/hangar/internal/store"
)

// Off loopback, /metrics takes the API's tokens: an org token sees every
// series, an app token its app's, a revoked or unknown token nothing.
func TestMetricsAuthorizer(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	org, _, err := auth.Create(ctx, st, auth.Token{Name: "admin", Scope: auth.ScopeOrg, Org: "personal"})
	if err != nil {
		t.Fatal(err)
	}
	app, _, err := auth.Create(ctx, st, auth.Token{Name: "web", Scope: auth.ScopeApp, Org: "personal", App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, rt, err := auth.Create(ctx, st, auth.Token{Name: "old", Scope: auth.ScopeOrg, Org: "personal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Revoke(ctx, st, rt.ID); err != nil {
		t.Fatal(err)
	}
	authorize := metricsAuthorizer(st)
	for _, tc := range []struct {
		token string
		want  metrics.Access
		ok    bool
	}{
		{"", metrics.Access{}, false},
		{"hgr_nope", metrics.Access{}, false},
		{revoked, metrics.Access{}, false},
		{org, metrics.Access{Admin: true}, true},
		{app, metrics.Access{App: "web"}, true},
	} {
		req, _ := http.NewRequest("GET", "/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		got, ok := authorize(req)
		if ok != tc.ok || got != tc.want {
			t.Errorf("token %.8q: %+v %v, want %+v %v", tc.token, got, ok, tc.want, tc.ok)
		}
	}
	if isLoopback(&net.TCPAddr{IP: net.ParseIP("10.0.0.1")}) || !isLoopback(&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}) || !isLoopback(&net.TCPAddr{IP: net.IPv6loopback}) {
		t.Fatal("isLoopback")
	}
}
