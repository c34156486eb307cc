package api

// GET /v1/openapi.json: an OpenAPI 3.0 description of what this server
// serves, built from the route table (routes.go) and the OpDoc next to
// each route, so no route can be missing; schemas are derived from the Go
// types the handlers encode and decode, so they cannot drift from the wire.

import (
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// OpDoc documents one route for the OpenAPI description, next to the
// route in the table (routes.go); a route with a zero OpDoc is still
// listed, marked undocumented.
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
	routes := s.routes()
	sort.Slice(routes, func(i, j int) bool { return routes[i].pattern < routes[j].pattern })
	for _, rt := range routes {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok || !strings.HasPrefix(path, "/v1/") {
			continue
		}
		doc := rt.doc
		if doc.ID == "" && doc.Summary == "" {
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
	413: "request body too large", 501: "not supported by this runtime", 507: "the disk is full"}

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
