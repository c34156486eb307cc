package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/hosts"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// forwardServer is host a's API on a state where host b is registered at
// bURL, alive or not, and runs machine m1 of app web.
func forwardServer(t *testing.T, bURL string, bAlive bool) (*httptest.Server, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := &hosts.Registry{Store: st, Self: types.Host{ID: "a", Region: "fra", APIURL: "http://127.0.0.1:1"}}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := reg.Register(rctx); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(types.Host{ID: "b", Region: "iad", APIURL: bURL})
	if _, err := st.Put(ctx, "hosts/b", b, 0); err != nil {
		t.Fatal(err)
	}
	if bAlive {
		if _, err := st.Put(ctx, "hosts-alive/b", nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Put(ctx, "machines/web/m1", []byte(`{"id":"m1","app":"web","state":"started","host_id":"b","region":"iad"}`), 0); err != nil {
		t.Fatal(err)
	}
	as := apps.New(apps.Options{Store: st, Org: "acme"})
	if err := as.Ensure(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	sup := supervisor.New(supervisor.Options{Store: st, HostID: "a"})
	srv := httptest.NewServer(New(Options{Store: st, Apps: as, Sup: sup, Org: "acme", Region: "fra", Hosts: reg, Log: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	tok, _, err := auth.Create(ctx, st, auth.Token{Name: "admin", Scope: auth.ScopeOrg, Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, tok
}

func send(t *testing.T, method, url, tok, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A machine operation for host b's machine reaches b's API with the
// caller's token and the forwarding mark, and b's answer comes back as is.
func TestForwardToOwner(t *testing.T) {
	type seen struct{ method, path, auth, by, body string }
	got := make(chan seen, 1)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.Header.Get(ForwardedHeader), string(body)}
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, `{"from":"b"}`)
	}))
	defer b.Close()
	a, tok := forwardServer(t, b.URL, true)
	code, body := send(t, "POST", a.URL+"/v1/apps/web/machines/m1/stop?x=1", tok, `{"signal":"SIGTERM"}`)
	if code != http.StatusTeapot || body != `{"from":"b"}` {
		t.Fatalf("answer through a: %d %s; want b's", code, body)
	}
	s := <-got
	want := seen{"POST", "/v1/apps/web/machines/m1/stop?x=1", "Bearer " + tok, "a", `{"signal":"SIGTERM"}`}
	if s != want {
		t.Fatalf("b got %+v, want %+v", s, want)
	}
	// A request already forwarded is served where it lands: never again.
	req, _ := http.NewRequest("GET", a.URL+"/v1/apps/web/machines/m1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set(ForwardedHeader, "c")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(got) != 0 {
		t.Fatalf("a forwarded request: %d, b called again: %v", resp.StatusCode, len(got) != 0)
	}
}

// Host b registered ready but not answering: a 503 naming b and why.
// Host b's lease expired: operations are a 503, reads of the record show
// the machine unknown.
func TestForwardUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	a, tok := forwardServer(t, dead, true)
	code, body := send(t, "POST", a.URL+"/v1/apps/web/machines/m1/start", tok, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "host b") || !strings.Contains(body, "connection refused") {
		t.Fatalf("start on a host that does not answer: %d %s; want a 503 naming b and the cause", code, body)
	}

	a, tok = forwardServer(t, dead, false)
	code, body = send(t, "POST", a.URL+"/v1/apps/web/machines/m1/stop", tok, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "host b") || !strings.Contains(body, "lease") {
		t.Fatalf("stop on an unreachable host: %d %s; want a 503 naming b", code, body)
	}
	var m types.Machine
	code, body = send(t, "GET", a.URL+"/v1/apps/web/machines/m1", tok, "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || m.State != types.StateUnknown || m.HostStatus != "unreachable" || m.HostID != "b" {
		t.Fatalf("get on an unreachable host: %d %s; want state unknown, host b unreachable", code, body)
	}
	var ms []types.Machine
	code, body = send(t, "GET", a.URL+"/v1/apps/web/machines", tok, "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &ms) != nil || len(ms) != 1 || ms[0].State != types.StateUnknown {
		t.Fatalf("list with an unreachable host: %d %s", code, body)
	}
}
