package api

// GET /v1/openapi.json: an OpenAPI 3.0 description of what this server
// serves, built from the routes actually registered (so no route can be
// missing) and the docs below; schemas are derived from the Go types the
// handlers encode and decode, so they cannot drift from the wire.

import (
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

func init() {
	registerRoutes(func(s *Server, h HandleFunc) {
		h("GET /v1/openapi.json", s.openAPI)
	})
}

// OpDoc documents one route for the OpenAPI description. Files of this
// package may add entries to opDocs in their init functions; a route
// without one is still listed, marked undocumented.
type OpDoc struct {
	ID      string
	Summary string
	Hangar  bool // a Hangar extension, not part of Fly.io's Machines API
	Query   []Param
	Header  []Param
	Body    any // a value of the request body's type; nil: no body
	// BodyOptional: the body may be left out.
	BodyOptional bool
	Status       int // success status (default 200)
	Resp         any // a value of the response body's type; nil: none described
	RespType     string
	Errors       []int
}

// Param is a query or header parameter.
type Param struct {
	Name, Type, Desc string
	Required         bool
}

var nonceParam = Param{Name: NonceHeader, Type: "string", Desc: "the nonce of the machine's lease; required while the machine is leased"}

var opDocs = map[string]OpDoc{
	"GET /v1/info":                            {ID: "Info_show", Summary: "This daemon's org, region and proxy domain", Hangar: true, Resp: Info{}},
	"GET /v1/apps":                            {ID: "Apps_list", Summary: "List apps (an app token sees only its app)", Query: []Param{{Name: "org_slug", Type: "string", Desc: "only apps of this org ('personal' = this daemon's org)"}}, Resp: map[string]any{}, RespType: "ListAppsResponse"},
	"POST /v1/apps":                           {ID: "Apps_create", Summary: "Create an app in an org and network (org tokens only)", Body: types.CreateAppRequest{}, Status: 201, Resp: types.App{}, Errors: []int{400, 403, 409}},
	"GET /v1/apps/{app}":                      {ID: "Apps_show", Summary: "Get an app", Resp: types.App{}, Errors: []int{404}},
	"DELETE /v1/apps/{app}":                   {ID: "Apps_delete", Summary: "Delete an app, destroying its machines", Status: 202, Errors: []int{404}},
	"GET /v1/apps/{app}/machines":             {ID: "Machines_list", Summary: "List machines", Query: []Param{{Name: "include_deleted", Type: "boolean", Desc: "include destroyed machines"}, {Name: "region", Type: "string", Desc: "only machines of this region"}, {Name: "metadata.{key}", Type: "string", Desc: "only machines whose config.metadata[key] equals the value (any key)"}}, Resp: []types.Machine{}},
	"POST /v1/apps/{app}/machines":            {ID: "Machines_create", Summary: "Create (and unless skip_launch, start) a machine", Body: machineRequest{}, Resp: types.Machine{}, Errors: []int{400, 404, 409, 413}},
	"GET /v1/apps/{app}/machines/{id}":        {ID: "Machines_show", Summary: "Get a machine", Resp: types.Machine{}, Errors: []int{404}},
	"POST /v1/apps/{app}/machines/{id}":       {ID: "Machines_update", Summary: "Replace a machine's config: the machine is replacing until the new version (a new instance_id; the old one kept as replaced) is up, or stopped with skip_launch", Header: []Param{nonceParam}, Body: machineRequest{}, Resp: types.Machine{}, Errors: []int{400, 404, 409, 413}},
	"DELETE /v1/apps/{app}/machines/{id}":     {ID: "Machines_delete", Summary: "Destroy a machine (a running one needs force=true)", Header: []Param{nonceParam}, Query: []Param{{Name: "force", Type: "boolean", Desc: "stop a running machine first"}, {Name: "kill", Type: "boolean", Desc: "fly-go's name for force"}}, Resp: map[string]bool{}, Errors: []int{404, 409}},
	"POST /v1/apps/{app}/machines/{id}/start": {ID: "Machines_start", Summary: "Start a created, stopped or suspended machine", Header: []Param{nonceParam}, Resp: map[string]any{}, Errors: []int{404, 409}},
	"POST /v1/apps/{app}/machines/{id}/stop":  {ID: "Machines_stop", Summary: "Stop a machine (drained in the proxy first)", Header: []Param{nonceParam}, Body: types.StopRequest{}, BodyOptional: true, Resp: map[string]bool{}, Errors: []int{400, 404, 409}},
	"GET /v1/apps/{app}/machines/{id}/wait": {ID: "Machines_wait", Summary: "Wait until the machine reaches a state", Query: []Param{
		{Name: "state", Type: "string", Desc: "started (default), created, stopped, suspended, failed, destroyed or replaced; may repeat (any of them)"},
		{Name: "instance_id", Type: "string", Desc: "the version to wait for (version is accepted too)"},
		{Name: "version", Type: "string", Desc: "fly-go's name for instance_id"},
		{Name: "timeout", Type: "integer", Desc: "seconds, 1 to 60 (default 60); 408 when it passes"}}, Resp: map[string]any{}, Errors: []int{400, 404, 408, 409}},
	"GET /v1/apps/{app}/machines/{id}/events": {ID: "Machines_list_events", Summary: "A machine's events, newest first (exit events carry request.exit_event with exit_code and oom_killed)", Resp: []types.MachineEvent{}, Errors: []int{404}},
	"POST /v1/apps/{app}/machines/{id}/lease": {ID: "Machines_create_lease", Summary: "Acquire a lease (or refresh it, with the nonce header)", Header: []Param{{Name: NonceHeader, Type: "string", Desc: "refresh this lease instead of acquiring a new one"}},
		Query: []Param{{Name: "ttl", Type: "integer", Desc: "seconds (default 30); overrides the body's ttl"}}, Body: LeaseRequest{}, BodyOptional: true, Resp: LeaseResponse{}, Errors: []int{400, 404, 409}},
	"GET /v1/apps/{app}/machines/{id}/lease":    {ID: "Machines_show_lease", Summary: "The machine's active lease", Resp: LeaseResponse{}, Errors: []int{404}},
	"DELETE /v1/apps/{app}/machines/{id}/lease": {ID: "Machines_release_lease", Summary: "Release the lease", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409}},
	"POST /v1/apps/{app}/machines/{id}/suspend": {ID: "Machines_suspend", Summary: "Suspend a started machine (frozen in memory; start resumes it)", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409, 501}},
	"POST /v1/apps/{app}/machines/{id}/restart": {ID: "Machines_restart", Summary: "Stop and start a machine", Header: []Param{nonceParam}, Query: []Param{
		{Name: "timeout", Type: "string", Desc: "stop timeout: a Go duration or a number of seconds"}, {Name: "signal", Type: "string", Desc: "stop signal"}, {Name: "force_stop", Type: "boolean", Desc: "stop with SIGKILL"}}, Resp: map[string]bool{}, Errors: []int{400, 404, 409}},
	"POST /v1/apps/{app}/machines/{id}/signal":           {ID: "Machines_signal", Summary: "Send a signal to the machine's main process", Header: []Param{nonceParam}, Body: map[string]any{}, RespType: "", Resp: map[string]bool{}, Errors: []int{400, 404, 409}},
	"POST /v1/apps/{app}/machines/{id}/cordon":           {ID: "Machines_cordon", Summary: "Take the machine out of proxy routing (it keeps running)", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409}},
	"POST /v1/apps/{app}/machines/{id}/uncordon":         {ID: "Machines_uncordon", Summary: "Return the machine to proxy routing", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409}},
	"GET /v1/apps/{app}/machines/{id}/metadata":          {ID: "Machines_show_metadata", Summary: "The machine's metadata", Resp: map[string]string{}, Errors: []int{404}},
	"POST /v1/apps/{app}/machines/{id}/metadata/{key}":   {ID: "Machines_update_metadata", Summary: "Set one metadata key (no new version)", Body: MetadataRequest{}, Status: 204, Errors: []int{400, 404}},
	"DELETE /v1/apps/{app}/machines/{id}/metadata/{key}": {ID: "Machines_delete_metadata", Summary: "Delete one metadata key", Status: 204, Errors: []int{404}},
	"GET /v1/apps/{app}/machines/{id}/versions":          {ID: "Machines_list_versions", Summary: "The machine's versions, current first", Resp: []MachineVersion{}, Errors: []int{404}},
	"POST /v1/apps/{app}/machines/{id}/exec":             {ID: "Machines_exec", Summary: "Run a command in a started machine", Body: ExecRequest{}, Resp: ExecResponse{}, Errors: []int{400, 404, 408, 409}},
	"GET /v1/apps/{app}/machines/{id}/ps": {ID: "Machines_list_processes", Summary: "The machine's processes (its PID namespace)", Query: []Param{
		{Name: "sort_by", Type: "string", Desc: "pid, cpu, rss, rtime, stime or command"}, {Name: "order", Type: "string", Desc: "asc or desc"}}, Resp: []supervisor.ProcessStat{}, Errors: []int{400, 404, 409}},
	"GET /v1/apps/{app}/releases": {ID: "Releases_list", Summary: "An app's releases", Hangar: true, Resp: []deploy.Release{}, Errors: []int{404}},
	"GET /v1/apps/{app}/logs": {ID: "Logs_show", Summary: "An app's machine logs as NDJSON", Hangar: true, Query: []Param{
		{Name: "lines", Type: "integer", Desc: "how many past lines (default 100)"}, {Name: "follow", Type: "boolean", Desc: "keep streaming new lines"}, {Name: "machine", Type: "string", Desc: "one machine only"}}, Errors: []int{404}},
	"POST /v1/deploys":       {ID: "Deploys_create", Summary: "Deploy a fly.toml; progress streams back as NDJSON DeployLines", Hangar: true, Body: DeployRequest{}, Errors: []int{400, 403}},
	"GET /v1/images":         {ID: "Images_list", Summary: "Images on this daemon", Hangar: true, Resp: []image.Image{}},
	"POST /v1/images":        {ID: "Images_upload", Summary: "Upload an OCI or docker archive (raw body)", Hangar: true, Query: []Param{{Name: "ref", Type: "string", Desc: "the reference to record"}}, Resp: image.Image{}, Errors: []int{400, 413}},
	"POST /v1/images/pull":   {ID: "Images_pull", Summary: "Pull an image from a registry", Hangar: true, Resp: image.Image{}, Errors: []int{400}},
	"GET /v1/tokens":         {ID: "Tokens_list", Summary: "List API tokens (org tokens only)", Hangar: true, Resp: []TokenInfo{}, Errors: []int{403}},
	"POST /v1/tokens":        {ID: "Tokens_create", Summary: "Create an API token; its secret is in the answer only", Hangar: true, Body: CreateTokenRequest{}, Status: 201, Resp: CreateTokenResponse{}, Errors: []int{400, 403, 404}},
	"DELETE /v1/tokens/{id}": {ID: "Tokens_revoke", Summary: "Revoke a token: it gets 401 from then on", Hangar: true, Resp: TokenInfo{}, Errors: []int{403, 404}},
	"GET /v1/openapi.json":   {ID: "OpenAPI_show", Summary: "This document", Hangar: true},
}

// pathParamNames renames Hangar's path parameters to Fly's.
var pathParamNames = map[string]string{"app": "app_name", "id": "machine_id"}

var pathParamRE = regexp.MustCompile(`\{([A-Za-z_]+)(\.\.\.)?\}`)

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.OpenAPIDocument())
	return nil
}

// OpenAPIDocument builds the description of the routes s serves.
func (s *Server) OpenAPIDocument() map[string]any {
	g := &schemaGen{comps: map[string]any{}}
	g.ref(reflect.TypeOf(types.ErrorResponse{}))
	g.comps["ListAppsResponse"] = map[string]any{"type": "object", "properties": map[string]any{
		"total_apps": map[string]any{"type": "integer"},
		"apps":       map[string]any{"type": "array", "items": g.ref(reflect.TypeOf(types.App{}))},
	}}
	paths := map[string]any{}
	routes := append([]string(nil), s.routes...)
	sort.Strings(routes)
	for _, pattern := range routes {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok || !strings.HasPrefix(path, "/v1/") {
			continue
		}
		doc, known := opDocs[pattern]
		if !known {
			doc = OpDoc{Summary: "Undocumented route (see docs/api.md)", Hangar: true}
		}
		var params []any
		path = pathParamRE.ReplaceAllStringFunc(strings.TrimPrefix(path, "/v1"), func(m string) string {
			name := pathParamRE.FindStringSubmatch(m)[1]
			if n, ok := pathParamNames[name]; ok {
				name = n
			}
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			return "{" + name + "}"
		})
		for _, p := range doc.Query {
			if strings.Contains(p.Name, "{") {
				continue // metadata.{key}: described in the operation's text
			}
			params = append(params, map[string]any{"name": p.Name, "in": "query", "required": p.Required, "description": p.Desc, "schema": map[string]any{"type": p.Type}})
		}
		for _, p := range doc.Header {
			params = append(params, map[string]any{"name": p.Name, "in": "header", "required": p.Required, "description": p.Desc, "schema": map[string]any{"type": p.Type}})
		}
		op := map[string]any{"summary": doc.Summary, "responses": g.responses(doc)}
		if doc.ID != "" {
			op["operationId"] = doc.ID
		} else {
			op["operationId"] = strings.ToLower(method) + strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_").Replace(path)
		}
		if len(doc.Query) > 0 {
			var descs []string
			for _, p := range doc.Query {
				if strings.Contains(p.Name, "{") {
					descs = append(descs, p.Name+": "+p.Desc)
				}
			}
			if len(descs) > 0 {
				op["description"] = "Also: " + strings.Join(descs, "; ")
			}
		}
		if doc.Hangar {
			op["tags"] = []string{"Hangar"}
			op["x-hangar-extension"] = true
		} else if strings.HasPrefix(path, "/apps/{app_name}/machines") {
			op["tags"] = []string{"Machines"}
		} else {
			op["tags"] = []string{"Apps"}
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if doc.Body != nil {
			op["requestBody"] = map[string]any{"required": !doc.BodyOptional, "content": map[string]any{
				"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(doc.Body))}}}
		}
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		item[strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "Hangar Machines API", "version": "1.0",
			"description": "Fly.io's Machines API v1 as Hangar serves it; operations tagged Hangar (x-hangar-extension) are Hangar's own. Authenticate with `Authorization: Bearer <token>`."},
		"servers":    []any{map[string]any{"url": "/v1"}},
		"paths":      paths,
		"components": map[string]any{"schemas": g.comps, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
		"security":   []any{map[string]any{"bearer": []any{}}},
	}
}

var statusText = map[int]string{400: "invalid input; the error names the field", 401: "missing, unknown, revoked or expired token",
	403: "the token may not do this", 404: "no such app, machine or object", 408: "timed out", 409: "conflict (another lease holder, wrong state, name taken)",
	413: "request body too large", 501: "not supported by this runtime"}

func (g *schemaGen) responses(doc OpDoc) map[string]any {
	status := doc.Status
	if status == 0 {
		status = 200
	}
	ok := map[string]any{"description": http.StatusText(status)}
	switch {
	case doc.RespType != "":
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + doc.RespType}}}
	case doc.Resp != nil:
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(doc.Resp))}}
	}
	out := map[string]any{strconv.Itoa(status): ok}
	errSchema := map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ErrorResponse"}}}
	for _, code := range append([]int{401}, doc.Errors...) {
		out[strconv.Itoa(code)] = map[string]any{"description": statusText[code], "content": errSchema}
	}
	return out
}

// schemaGen derives JSON schemas from Go types, the way encoding/json
// encodes them; named structs become components.
type schemaGen struct{ comps map[string]any }

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(types.Duration{})
)

func (g *schemaGen) ref(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case durationType:
		return map[string]any{"type": "string", "description": "a Go duration like \"10s\" (a number of nanoseconds is accepted)"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.ref(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.ref(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.object(t)
		}
		name = strings.ToUpper(name[:1]) + name[1:]
		if _, ok := g.comps[name]; !ok {
			g.comps[name] = map[string]any{} // placeholder: breaks cycles
			g.comps[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	g.fields(t, props, true)
	return map[string]any{"type": "object", "properties": props}
}

// fields adds t's JSON fields to props, flattening embedded structs as
// encoding/json does (an outer field wins over an embedded one).
func (g *schemaGen) fields(t reflect.Type, props map[string]any, outer bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			g.fields(ft, props, false)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, taken := props[name]; taken && !outer {
			continue
		}
		props[name] = g.ref(f.Type)
	}
}
