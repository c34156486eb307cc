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
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
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

// A machine is down after an exit that did not restart it, or a failed
// start; not after a stop, an autostop, or an exit it restarts from.
func TestLastExit(t *testing.T) {
	exit := func(code int, oom, restarting bool) types.MachineEvent {
		// As stored: the record went through JSON.
		return types.MachineEvent{Type: "exit", Request: map[string]interface{}{"exit_event": map[string]interface{}{
			"exit_code": float64(code), "oom_killed": oom, "restarting": restarting}}}
	}
	// Events are newest first, as the supervisor keeps them.
	for _, tc := range []struct {
		name   string
		state  string
		events []types.MachineEvent
		exit   *metrics.Exit
		down   bool
	}{
		{"never exited", types.StateStarted, []types.MachineEvent{{Type: "start"}}, nil, false},
		{"crashed, not restarted", types.StateStopped, []types.MachineEvent{exit(3, false, false), {Type: "start"}}, &metrics.Exit{Code: 3}, true},
		{"OOM killed, restarting", types.StateStopped, []types.MachineEvent{exit(137, true, true)}, &metrics.Exit{Code: 137, OOM: true}, false},
		{"restarted after a crash", types.StateStarted, []types.MachineEvent{{Type: "start"}, exit(1, false, true)}, &metrics.Exit{Code: 1}, false},
		{"stopped by a user after an exit", types.StateStopped, []types.MachineEvent{{Type: "stop"}, {Type: "start"}, exit(0, false, false)}, &metrics.Exit{}, false},
		{"the last of two exits", types.StateStopped, []types.MachineEvent{exit(2, false, false), {Type: "start"}, exit(1, false, true)}, &metrics.Exit{Code: 2}, true},
		{"failed to start", types.StateFailed, []types.MachineEvent{{Type: "start"}}, nil, true},
	} {
		r := &supervisor.Record{Machine: types.Machine{State: tc.state, Events: tc.events}}
		ex, down := lastExit(r)
		if down != tc.down || (ex == nil) != (tc.exit == nil) || (ex != nil && *ex != *tc.exit) {
			t.Errorf("%s: exit %+v down %v, want %+v %v", tc.name, ex, down, tc.exit, tc.down)
		}
	}
}
