package dashboard

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/api"
	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/runtime/runtimetest"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// env is a real API (store, supervisor on the in-memory runtime, deployer,
// secrets) with two deployed apps, alpha (two releases) and beta, and the
// dashboard over it.
type env struct {
	t        *testing.T
	api      http.Handler
	dash     *Dashboard
	h        http.Handler
	admin    string // org token
	alphaTok string // app token of alpha
	alphaID  string // its id
	clock    *clock
}

type testImages struct{ dir string }

func (i testImages) Get(_ context.Context, ref string) (*image.Image, error) {
	return &image.Image{Ref: ref, Digest: fmt.Sprintf("sha256:%064x", len(ref)), RootFS: i.dir, Config: image.Config{Cmd: []string{"serve"}}}, nil
}

type nopRouter struct{}

func (nopRouter) SetBackend(types.Backend, bool)              {}
func (nopRouter) Drain(context.Context, string, string) error { return nil }
func (nopRouter) Remove(string, string)                       {}

// clock is a settable clock for session expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// wideNetwork is the in-memory network with room for more than 253
// machines: numbers past 254 get addresses of 127.254.0.0/16.
type wideNetwork struct{ *runtimetest.Network }

func (n wideNetwork) AddressFor(i int) (net.IP, net.IP, error) {
	if i <= 254 {
		return n.Network.AddressFor(i)
	}
	return net.IPv4(127, 254, byte(i>>8), byte(i)).To4(), net.ParseIP(fmt.Sprintf("fdaa:0:fe::%x", i)), nil
}

func newEnv(t *testing.T) *env { return newEnvWith(t, false) }

// newEnvWith makes the env; wide: room for more than 253 machines.
func newEnvWith(t *testing.T, wide bool) *env {
	t.Helper()
	dataDir := t.TempDir()
	st, err := store.Open(filepath.Join(dataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	netw := runtimetest.NewNetwork()
	drv := runtimetest.New(netw)
	var supNet supervisor.Network = netw
	if wide {
		supNet = wideNetwork{netw}
	}
	t.Cleanup(func() {
		for _, id := range drv.Running() {
			_ = drv.Destroy(context.Background(), id)
		}
	})
	imgs := testImages{dir: dataDir}
	sup := supervisor.New(supervisor.Options{Store: st, Driver: drv, Network: supNet, Router: nopRouter{}, Images: imgs, Region: "tst", DataDir: dataDir, Log: log})
	t.Cleanup(sup.Shutdown)
	sec, err := secrets.Open(st, dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	appSvc := apps.New(apps.Options{Store: st, Org: "acme"})
	dep := &deploy.Deployer{Store: st, Sup: sup, Images: imgs, Apps: appSvc, Secrets: sec, Log: log, SmokeWindow: 10 * time.Millisecond,
		EnsureApp: appSvc.Ensure, AppExists: appSvc.Exists}
	apiH := api.New(api.Options{Store: st, Apps: appSvc, Sup: sup, Deployer: dep, Secrets: sec, Log: log, Org: "acme", Region: "tst", Domain: "example.test", HTTPPort: "8080",
		History: testHistory{}}).Handler()
	ctx := context.Background()
	admin, _, err := auth.Create(ctx, st, auth.Token{Name: "admin", Scope: auth.ScopeOrg, Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, api: apiH, admin: admin, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	e.deploy("alpha", "app:v1")
	e.deploy("alpha", "app:v2")
	e.deploy("beta", "app:v1")
	var created *auth.Token
	e.alphaTok, created, err = auth.Create(ctx, st, auth.Token{Name: "alpha-deployer", Scope: auth.ScopeApp, App: "alpha", Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	e.alphaID = created.ID
	e.dash = New(Options{API: apiH, Log: log, Now: e.clock.now, SessionIdle: time.Hour, SessionTTL: 12 * time.Hour})
	e.h = e.dash.Handler()
	return e
}

// deploy deploys app with image through the API as the admin.
func (e *env) deploy(app, img string) {
	e.t.Helper()
	toml := fmt.Sprintf("app = %q\nprimary_region = \"tst\"\n\n[env]\n  IMAGE = %q\n", app, img)
	code, body := e.apiCall(e.admin, "POST", "/v1/deploys", types.DeployRequest{Config: toml, ConfigFile: "fly.toml", Image: img})
	if code != 200 || !strings.Contains(body, `"status":"complete"`) {
		e.t.Fatalf("deploy %s %s: %d %s", app, img, code, body)
	}
}

func (e *env) apiCall(token, method, path string, body any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (e *env) machines(app string) []types.Machine {
	e.t.Helper()
	code, body := e.apiCall(e.admin, "GET", "/v1/apps/"+app+"/machines", nil)
	var ms []types.Machine
	if code != 200 || json.Unmarshal([]byte(body), &ms) != nil || len(ms) == 0 {
		e.t.Fatalf("machines of %s: %d %s", app, code, body)
	}
	return ms
}

func (e *env) machineState(app, id string) string {
	e.t.Helper()
	code, body := e.apiCall(e.admin, "GET", "/v1/apps/"+app+"/machines/"+id, nil)
	var m types.Machine
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
		e.t.Fatalf("machine %s: %d %s", id, code, body)
	}
	return m.State
}

// browser is one browser's cookie jar against the dashboard handler.
type browser struct {
	e       *env
	cookies map[string]*http.Cookie
	tls     bool
}

func (e *env) browser() *browser { return &browser{e: e, cookies: map[string]*http.Cookie{}} }

// do sends a request as the browser and keeps the cookies it is given.
func (b *browser) do(method, path string, form url.Values) *httptest.ResponseRecorder {
	b.e.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, rd)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.tls {
		req.TLS = &tls.ConnectionState{}
	}
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	b.e.h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return rec
}

func (b *browser) get(path string) *httptest.ResponseRecorder { return b.do("GET", path, nil) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token of the first form of a page.
func csrfOf(t *testing.T, html string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", html)
	}
	return m[1]
}

// login signs the browser in with token and returns the session's CSRF
// token.
func (b *browser) login(token string) string {
	t := b.e.t
	t.Helper()
	page := b.get("/login")
	if page.Code != 200 {
		t.Fatalf("GET /login: %d", page.Code)
	}
	rec := b.do("POST", "/login", url.Values{"csrf": {csrfOf(t, page.Body.String())}, "token": {token}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Fatalf("POST /login: %d %s %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	home := b.get("/")
	if home.Code != 200 {
		t.Fatalf("GET / after login: %d %s", home.Code, home.Body)
	}
	return csrfOf(t, home.Body.String())
}

// testHistory is the daemon's metrics history as the API reads it: a
// quarter hour of alpha's traffic (2xx peaking at 3/s) at 15 s steps, or
// a day at 5 minutes for a window over an hour; nothing for other apps.
type testHistory struct{}

func (testHistory) Window(app string, d time.Duration) ([]types.MetricsPoint, time.Duration) {
	step := 15 * time.Second
	if d > time.Hour {
		step = 5 * time.Minute
	}
	if app != "alpha" {
		return nil, step
	}
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	var out []types.MetricsPoint
	for i := range 60 {
		out = append(out, types.MetricsPoint{Time: start.Add(time.Duration(i) * step),
			Responses2xxPS: float64(i % 4), RequestsPS: float64(i % 4), P50Seconds: 0.004, P99Seconds: 0.012, MemoryBytes: 48 << 20, CPUCores: 0.05, Running: 1,
			Machines: []types.MachineMetricsPoint{{ID: "m1", MemoryBytes: 48 << 20, CPUCores: 0.05}}})
	}
	return out, step
}
