package api

// The wire encoding: JSON bodies in (bounded, with errors that name the
// field) and out.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

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
