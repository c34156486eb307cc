// Package api serves Hangar's HTTP+JSON API under /v1: the Machines API
// with Fly.io's paths and JSON shapes, plus Hangar's own endpoints for
// images, deploys, releases and logs. It is the one place where error
// categories become HTTP status codes.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// MaxBodyBytes bounds JSON request bodies.
const MaxBodyBytes = 1 << 20

// Server is the API.
type Server struct {
	Store    store.Store
	Sup      *supervisor.Supervisor
	Deployer *deploy.Deployer
	Images   *image.Store
	Log      *slog.Logger
	Org      string
	Region   string
	Domain   string
	HTTPPort string

	routes []string // patterns served, for /v1/openapi.json
}

// Handler returns the API's routes, all behind token auth.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes = nil
	var h HandleFunc = func(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
		s.routes = append(s.routes, pattern)
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			// The app as routing decoded it (authenticate checked the raw
			// path too).
			if tok := TokenFrom(r); tok != nil && r.PathValue("app") != "" && !tok.CanAccessApp(r.PathValue("app")) {
				writeJSON(w, http.StatusForbidden, types.ErrorResponse{Error: fmt.Sprintf("token %s may only act on app %s", tok.ID, tok.App)})
				return
			}
			if err := f(w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	h("GET /v1/info", s.info)
	h("GET /v1/apps", s.listApps)
	h("POST /v1/apps", s.createApp)
	h("GET /v1/apps/{app}", s.getApp)
	h("DELETE /v1/apps/{app}", s.deleteApp)
	h("GET /v1/apps/{app}/machines", s.listMachines)
	h("POST /v1/apps/{app}/machines", s.createMachine)
	h("GET /v1/apps/{app}/machines/{id}", s.getMachine)
	h("POST /v1/apps/{app}/machines/{id}", s.updateMachine)
	h("DELETE /v1/apps/{app}/machines/{id}", s.destroyMachine)
	h("POST /v1/apps/{app}/machines/{id}/start", s.startMachine)
	h("POST /v1/apps/{app}/machines/{id}/stop", s.stopMachine)
	h("GET /v1/apps/{app}/machines/{id}/wait", s.waitMachine)
	h("GET /v1/apps/{app}/machines/{id}/events", s.machineEvents)
	h("GET /v1/apps/{app}/releases", s.listReleases)
	h("GET /v1/apps/{app}/logs", s.logs)
	h("POST /v1/deploys", s.deploy)
	h("GET /v1/images", s.listImages)
	h("POST /v1/images", s.uploadImage)
	h("POST /v1/images/pull", s.pullImage)
	for _, reg := range routeSets {
		reg(s, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, types.ErrorResponse{Error: fmt.Sprintf("no API endpoint %s %s; see docs/api.md", r.Method, r.URL.Path)})
	})
	return s.authenticate(mux)
}

// HandleFunc registers one route; handlers return errors, which the API
// maps to status codes in one place (statusOf).
type HandleFunc func(pattern string, f func(w http.ResponseWriter, r *http.Request) error)

// routeSets are added by files of this package (secrets.go, volumes.go...)
// in their init functions, so each feature registers its own routes.
var routeSets []func(s *Server, h HandleFunc)

func registerRoutes(f func(s *Server, h HandleFunc)) { routeSets = append(routeSets, f) }

type tokenKey struct{}

// TokenFrom returns the authenticated token of a request.
func TokenFrom(r *http.Request) *auth.Token {
	t, _ := r.Context().Value(tokenKey{}).(*auth.Token)
	return t
}

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		plain, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok {
			plain, ok = strings.CutPrefix(authz, "FlyV1 ")
		}
		if !ok || plain == "" {
			writeJSON(w, http.StatusUnauthorized, types.ErrorResponse{Error: "missing API token: send `Authorization: Bearer <token>`; the admin token is in <data-dir>/admin-token"})
			return
		}
		tok, err := auth.Verify(r.Context(), s.Store, plain)
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, types.ErrorResponse{Error: err.Error()})
			return
		}
		if app := appFromPath(r.URL.Path); app != "" && !tok.CanAccessApp(app) {
			writeJSON(w, http.StatusForbidden, types.ErrorResponse{Error: fmt.Sprintf("token %s may only act on app %s, not %s", tok.ID, tok.App, app)})
			return
		}
		if tok.Scope == "org" && tok.Org != "" && s.Org != "" && tok.Org != s.Org {
			writeJSON(w, http.StatusForbidden, types.ErrorResponse{Error: fmt.Sprintf("token %s is for org %s; this daemon serves org %s", tok.ID, tok.Org, s.Org)})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

func appFromPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/v1/apps/")
	if !ok {
		return ""
	}
	app, _, _ := strings.Cut(rest, "/")
	return app
}

// statusOf maps error categories (types.Err*, and the store's, which is a
// leaf and has its own) to HTTP status codes. It is the only such mapping.
func statusOf(err error) int {
	switch {
	case errors.Is(err, types.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, types.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, types.ErrConflict), errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, types.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, types.ErrTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, types.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, types.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, types.ErrUnsupported):
		return http.StatusNotImplemented
	case errors.Is(err, types.ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, types.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var (
	errBadRequest = types.NewError(types.ErrInvalid, "bad request")
	errNotFound   = types.NewError(types.ErrNotFound, "not found")
	errConflict   = types.NewError(types.ErrConflict, "conflict")
	errTooLarge   = types.NewError(types.ErrTooLarge, "request body too large")
	errForbidden  = types.NewError(types.ErrForbidden, "forbidden")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errBadRequest)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		s.Log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, types.ErrorResponse{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body, bounded in size; unknown fields are ignored, as
// Fly's API does.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	b, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("body over %d bytes: %w", MaxBodyBytes, errTooLarge)
		}
		return badRequest("read body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return badRequest("empty body: send a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return badRequest("body is not valid JSON at byte %d: %v", se.Offset, err)
		}
		if field := failingField(reflect.TypeOf(v), b, ""); field != "" {
			return badRequest("field %q: %v", field, err)
		}
		return badRequest("body: %v", err)
	}
	return nil
}

// failingField finds the JSON path of the value that a custom decoder
// (durations, autostop...) refused, so the error can name it.
func failingField(t reflect.Type, raw []byte, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if json.Unmarshal(raw, reflect.New(t).Interface()) == nil {
		return ""
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
			return path
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return path
		}
		fields := map[string]reflect.Type{}
		jsonFields(t, fields)
		for k, v := range obj {
			ft, ok := fields[strings.ToLower(k)]
			if !ok {
				continue
			}
			if f := failingField(ft, v, join(k)); f != "" {
				return f
			}
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return path
		}
		for k, v := range obj {
			if f := failingField(t.Elem(), v, join(k)); f != "" {
				return f
			}
		}
	case reflect.Slice:
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) != nil {
			return path
		}
		for i, v := range arr {
			if f := failingField(t.Elem(), v, fmt.Sprintf("%s[%d]", path, i)); f != "" {
				return f
			}
		}
	}
	return path
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// jsonFields maps the (lower-cased) JSON names of t's fields to their types,
// through embedded structs.
func jsonFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			jsonFields(ft, out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, taken := out[strings.ToLower(name)]; !taken {
			out[strings.ToLower(name)] = f.Type
		}
	}
}

// Apps.

var appNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$|^[a-z0-9]$`)

// AppRecord is an app as stored.
type AppRecord struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Org       string `json:"org"`
	Network   string `json:"network"`
	CreatedAt string `json:"created_at"`
}

func appKey(name string) string { return "apps/" + name }

// EnsureApp creates the app if it does not exist.
func (s *Server) EnsureApp(ctx context.Context, name string) error {
	_, err := s.createAppRecord(ctx, name, "")
	if errors.Is(err, errConflict) {
		return nil
	}
	return err
}

func (s *Server) createAppRecord(ctx context.Context, name, network string) (*AppRecord, error) {
	if !appNameRE.MatchString(name) {
		return nil, badRequest("app_name %q: use 1-63 lowercase letters, digits and dashes, starting and ending with a letter or digit", name)
	}
	if network == "" {
		network = "default"
	}
	rec := &AppRecord{Name: name, ID: name, Org: s.Org, Network: network, CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	if _, err := store.PutJSON(ctx, s.Store, appKey(name), rec, 0); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("app %s already exists: %w", name, errConflict)
		}
		return nil, fmt.Errorf("create app %s: %w", name, err)
	}
	return rec, nil
}

func (s *Server) appObject(ctx context.Context, rec *AppRecord) (types.App, error) {
	ms, err := s.Sup.List(ctx, rec.Name)
	if err != nil {
		return types.App{}, err
	}
	return types.App{ID: rec.ID, Name: rec.Name, Status: "deployed", Network: rec.Network,
		Organization: types.Organization{Name: rec.Org, Slug: rec.Org}, CreatedAt: rec.CreatedAt, MachineCount: len(ms)}, nil
}

func (s *Server) getAppRecord(ctx context.Context, name string) (*AppRecord, error) {
	var rec AppRecord
	if _, err := store.GetJSON(ctx, s.Store, appKey(name), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("app %s not found; create it with `hangar apps create %s` or deploy: %w", name, name, errNotFound)
		}
		return nil, err
	}
	return &rec, nil
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) error {
	kvs, err := s.Store.List(r.Context(), "apps/")
	if err != nil {
		return err
	}
	tok := r.Context().Value(tokenKey{}).(*auth.Token)
	apps := []types.App{}
	for _, kv := range kvs {
		var rec AppRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("app record %s: %w", kv.Key, err)
		}
		if !tok.CanAccessApp(rec.Name) {
			continue
		}
		if org := r.URL.Query().Get("org_slug"); org != "" && org != "personal" && org != rec.Org {
			continue
		}
		a, err := s.appObject(r.Context(), &rec)
		if err != nil {
			return err
		}
		apps = append(apps, a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_apps": len(apps), "apps": apps})
	return nil
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) error {
	var req types.CreateAppRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if tok := TokenFrom(r); tok != nil && tok.Scope != "org" {
		return fmt.Errorf("token %s is scoped to app %s and may not create apps; use an org token: %w", tok.ID, tok.App, errForbidden)
	}
	if req.OrgSlug != "" && req.OrgSlug != s.Org && req.OrgSlug != "personal" {
		return badRequest("org_slug %q: this daemon serves org %q", req.OrgSlug, s.Org)
	}
	if req.Network != "" && !appNameRE.MatchString(req.Network) {
		return badRequest("network %q: use lowercase letters, digits and dashes", req.Network)
	}
	rec, err := s.createAppRecord(r.Context(), req.AppName, req.Network)
	if err != nil {
		return err
	}
	a, err := s.appObject(r.Context(), rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a)
	return nil
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.getAppRecord(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	a, err := s.appObject(r.Context(), rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("app")
	if _, err := s.getAppRecord(r.Context(), name); err != nil {
		return err
	}
	ms, err := s.Sup.List(r.Context(), name)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := s.Sup.Destroy(r.Context(), name, m.ID, true); err != nil {
			return fmt.Errorf("delete app %s: %w", name, err)
		}
	}
	rels, _ := s.Store.List(r.Context(), "releases/"+name+"/")
	ops := []store.Op{{Key: appKey(name), Delete: true, Expect: store.AnyRevision}}
	for _, kv := range rels {
		ops = append(ops, store.Op{Key: kv.Key, Delete: true, Expect: store.AnyRevision})
	}
	if _, err := s.Store.Txn(r.Context(), ops); err != nil {
		return fmt.Errorf("delete app %s: %w", name, err)
	}
	if err := s.Sup.ForgetDestroyed(r.Context(), name); err != nil {
		return fmt.Errorf("delete app %s: %w", name, err)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// Machines.

// NonceHeader carries a machine lease's nonce on mutations.
const NonceHeader = "fly-machine-lease-nonce"

func (s *Server) requireApp(r *http.Request) (string, error) {
	app := r.PathValue("app")
	_, err := s.getAppRecord(r.Context(), app)
	return app, err
}

// machineObject is the wire form of a machine: the nonce only while it is
// leased.
func machineObject(rec *supervisor.Record) types.Machine {
	m := rec.Machine
	m.Nonce = ""
	if supervisor.LeaseActive(rec, time.Now()) {
		m.Nonce = rec.LeaseNonce
	}
	if m.HostStatus == "" {
		m.HostStatus = "ok"
	}
	return m
}

// guarded runs a mutation of the request's machine unless the machine is
// leased and the request does not carry the lease's nonce (409).
func (s *Server) guarded(r *http.Request, fn func() error) error {
	return s.Sup.Guarded(r.Context(), r.PathValue("app"), r.PathValue("id"), r.Header.Get(NonceHeader), fn)
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %s %q: use true or false", name, v)
	}
	return b, nil
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	withDeleted, err := boolParam(q, "include_deleted")
	if err != nil {
		return err
	}
	ms, err := s.Sup.List(r.Context(), app)
	if err != nil {
		return err
	}
	if withDeleted {
		ds, err := s.Sup.ListDestroyed(r.Context(), app)
		if err != nil {
			return err
		}
		ms = append(ms, ds...)
	}
	out := []types.Machine{}
	for _, m := range ms {
		if region := q.Get("region"); region != "" && m.Region != region {
			continue
		}
		match := true
		for k, v := range q {
			if key, ok := strings.CutPrefix(k, "metadata."); ok {
				if m.Config == nil || m.Config.Metadata[key] != v[0] {
					match = false
				}
			}
		}
		if match {
			out = append(out, machineObject(m))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

var regionRE = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// machineRequest is the body of machine create and update.
type machineRequest struct {
	types.CreateMachineRequest
	CurrentVersion string `json:"current_version,omitempty"`
}

func (s *Server) validateMachineRequest(req *machineRequest) error {
	if req.Config == nil {
		return badRequest("config is required: send {\"config\": {\"image\": \"...\"}}")
	}
	if req.Region != "" && !regionRE.MatchString(req.Region) {
		return badRequest("region %q: use a region code like %q", req.Region, s.Region)
	}
	if len(req.Name) > 63 || strings.ContainsAny(req.Name, " /\t\n") {
		return badRequest("name %q: at most 63 characters, no spaces or slashes", req.Name)
	}
	if req.LeaseTTL < 0 || time.Duration(req.LeaseTTL)*time.Second > supervisor.MaxLeaseTTL {
		return badRequest("lease_ttl %d: seconds from 1 to %d", req.LeaseTTL, int(supervisor.MaxLeaseTTL.Seconds()))
	}
	return nil
}

func (s *Server) createMachine(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var req machineRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.validateMachineRequest(&req); err != nil {
		return err
	}
	if req.Name != "" {
		ms, err := s.Sup.List(r.Context(), app)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Name == req.Name {
				return fmt.Errorf("app %s already has a machine named %s (%s): %w", app, req.Name, m.ID, errConflict)
			}
		}
	}
	// Created without launching, so that a lease is in place before the
	// machine runs; then started unless skip_launch.
	m, err := s.Sup.Create(r.Context(), app, req.Config, supervisor.CreateOptions{
		Name: req.Name, Region: req.Region, SkipLaunch: true, Cordoned: req.SkipServiceRegistration,
	})
	if err != nil {
		return err
	}
	if req.LeaseTTL > 0 {
		if _, err := s.Sup.AcquireLease(r.Context(), app, m.ID, tokenOwner(r), "lease_ttl on create", time.Duration(req.LeaseTTL)*time.Second); err != nil {
			return err
		}
	}
	if !req.SkipLaunch {
		if _, err := s.Sup.Start(r.Context(), app, m.ID); err != nil {
			return err
		}
	}
	if m, err = s.Sup.Get(r.Context(), app, m.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, machineObject(m))
	return nil
}

func (s *Server) getMachine(w http.ResponseWriter, r *http.Request) error {
	app, id := r.PathValue("app"), r.PathValue("id")
	m, err := s.Sup.Get(r.Context(), app, id)
	if errors.Is(err, supervisor.ErrNotFound) {
		// As on Fly, a destroyed machine can still be read (state
		// "destroyed") while its record is kept.
		if gone, lerr := s.Sup.ListDestroyed(r.Context(), app); lerr == nil {
			for _, d := range gone {
				if d.ID == id {
					m, err = d, nil
				}
			}
		}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, machineObject(m))
	return nil
}

func (s *Server) updateMachine(w http.ResponseWriter, r *http.Request) error {
	var req machineRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.validateMachineRequest(&req); err != nil {
		return err
	}
	app, id := r.PathValue("app"), r.PathValue("id")
	var m *supervisor.Record
	err := s.guarded(r, func() error {
		if req.CurrentVersion != "" {
			cur, err := s.Sup.Get(r.Context(), app, id)
			if err != nil {
				return err
			}
			if cur.InstanceID != req.CurrentVersion {
				return fmt.Errorf("current_version %s: machine %s is at version %s: %w", req.CurrentVersion, id, cur.InstanceID, errConflict)
			}
		}
		if req.SkipServiceRegistration {
			if _, err := s.Sup.SetCordoned(r.Context(), app, id, true); err != nil {
				return err
			}
		}
		// The new version boots if the machine was running and the
		// request does not say skip_launch; a machine that was not running
		// is left stopped, as Fly's hosts do (flyctl then waits for
		// "stopped"; see docs/api.md). It is "replacing" meanwhile.
		launch := supervisor.LaunchIfRunning
		if req.SkipLaunch {
			launch = supervisor.LaunchNever
		}
		var err error
		m, err = s.Sup.UpdateWith(r.Context(), app, id, req.Config, launch)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, machineObject(m))
	return nil
}

func (s *Server) destroyMachine(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	force, err := boolParam(q, "force")
	if err != nil {
		return err
	}
	kill, err := boolParam(q, "kill") // fly-go's name for force
	if err != nil {
		return err
	}
	if err := s.guarded(r, func() error {
		return s.Sup.Destroy(r.Context(), r.PathValue("app"), r.PathValue("id"), force || kill)
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (s *Server) startMachine(w http.ResponseWriter, r *http.Request) error {
	var prev string
	if err := s.guarded(r, func() error {
		m, err := s.Sup.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
		if err != nil {
			return err
		}
		prev = m.State
		_, err = s.Sup.Start(r.Context(), r.PathValue("app"), r.PathValue("id"))
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"previous_state": prev, "migrated": false, "new_host": ""})
	return nil
}

// signalName validates a signal given by name or number and returns its
// name ("" stays "": the machine's stop_config decides).
func signalName(field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	sig, err := supervisor.ParseSignal(v)
	if err != nil {
		return "", badRequest("%s: %v", field, err)
	}
	return unix.SignalName(sig), nil
}

// durationParam reads a Go duration ("10s") or a number of seconds.
func durationParam(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, badRequest("%s %q: a duration like \"10s\" or a number of seconds", field, v)
	}
	return d, nil
}

func (s *Server) stopMachine(w http.ResponseWriter, r *http.Request) error {
	var req types.StopRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil && !strings.Contains(err.Error(), "empty body") {
			return err
		}
	}
	var timeout time.Duration
	if req.Timeout != nil {
		timeout = req.Timeout.Duration
		if timeout < 0 {
			return badRequest("timeout must not be negative")
		}
	}
	sig, err := signalName("signal", req.Signal)
	if err != nil {
		return err
	}
	if err := s.guarded(r, func() error {
		_, err := s.Sup.Stop(r.Context(), r.PathValue("app"), r.PathValue("id"), sig, timeout)
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

var waitStates = map[string]bool{
	types.StateCreated: true, types.StateStarted: true, types.StateStopped: true, types.StateSuspended: true,
	types.StateDestroyed: true, types.StateReplaced: true, types.StateFailed: true,
}

// waitMachine blocks until the machine is in one of the states asked for
// (default started), of instance_id (or fly-go's version) if given; 408
// after timeout seconds (1-60, default 60).
func (s *Server) waitMachine(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	states := q["state"]
	if len(states) == 0 {
		states = []string{types.StateStarted}
	}
	want := map[string]bool{}
	for _, st := range states {
		if st == types.StateReplacing {
			// Fly's wait does not take it either: it is a passing state a
			// wait could miss. An update answers once it is over.
			return badRequest("state %q: an update is replacing only while it runs; wait for started or stopped with the new instance_id", st)
		}
		if !waitStates[st] {
			return badRequest("state %q: wait supports created, started, stopped, suspended, failed, destroyed and replaced", st)
		}
		want[st] = true
	}
	timeout := 60 * time.Second
	if t := q.Get("timeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > 60 {
			return badRequest("timeout %q: must be whole seconds from 1 to 60", t)
		}
		timeout = time.Duration(n) * time.Second
	}
	instance := q.Get("instance_id")
	if instance == "" {
		instance = q.Get("version")
	}
	app, id := r.PathValue("app"), r.PathValue("id")
	var reached string
	_, err := s.Sup.WaitFor(r.Context(), app, id, timeout, func(m *supervisor.Record) (bool, error) {
		if m == nil {
			reached = types.StateDestroyed
			if want[types.StateDestroyed] {
				return true, nil
			}
			return false, fmt.Errorf("machine %s was destroyed: %w", id, supervisor.ErrNotFound)
		}
		if instance != "" && m.InstanceID != instance {
			for _, v := range m.Versions {
				if v.InstanceID == instance {
					if want[types.StateReplaced] {
						reached = types.StateReplaced
						return true, nil
					}
					return false, fmt.Errorf("machine %s: instance %s was replaced by %s: %w", id, instance, m.InstanceID, errConflict)
				}
			}
			return false, nil
		}
		reached = m.State
		return want[m.State], nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "state": reached})
	return nil
}

func (s *Server) machineEvents(w http.ResponseWriter, r *http.Request) error {
	m, err := s.Sup.Get(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	ev := m.Events
	if ev == nil {
		ev = []types.MachineEvent{}
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}

// Info describes this daemon (a Hangar extension): where apps are served.
type Info struct {
	Org      string `json:"org"`
	Region   string `json:"region"`
	Domain   string `json:"domain"`
	HTTPPort string `json:"http_port"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, Info{Org: s.Org, Region: s.Region, Domain: s.Domain, HTTPPort: s.HTTPPort})
	return nil
}
