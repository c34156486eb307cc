package appconfig

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

func mustLoad(t *testing.T, file string) *Config {
	t.Helper()
	cfg, err := Load(file)
	if err != nil {
		t.Fatalf("Load(%s): %v", file, err)
	}
	return cfg
}

func canonical(t *testing.T, c *Config) string {
	t.Helper()
	b, err := json.MarshalIndent(c, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFullReference checks that the reference file sets every key Hangar
// knows, that none of them is reported unknown, and that the config
// survives TOML -> JSON -> YAML -> TOML unchanged.
func TestFullReference(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/full-reference.toml")
	for _, d := range cfg.parseDiags {
		if d.Severity != SeverityNote {
			t.Errorf("unexpected diagnostic: %v", d)
		}
	}
	assertAllSet(t, reflect.ValueOf(cfg).Elem(), "config")

	for _, g := range cfg.ProcessGroups() {
		if _, err := cfg.ToMachineConfig(g, "img"); err != nil {
			t.Errorf("ToMachineConfig(%s): %v", g, err)
		}
	}

	want := canonical(t, cfg)
	js, err := cfg.MarshalJSONConfig()
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Parse(js, "fly.json")
	if err != nil {
		t.Fatalf("parse JSON: %v\n%s", err, js)
	}
	if got := canonical(t, fromJSON); got != want {
		t.Errorf("JSON round trip differs:\n%s", diffLines(want, got))
	}
	ym, err := fromJSON.MarshalYAMLConfig()
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := Parse(ym, "fly.yaml")
	if err != nil {
		t.Fatalf("parse YAML: %v\n%s", err, ym)
	}
	if got := canonical(t, fromYAML); got != want {
		t.Errorf("YAML round trip differs:\n%s", diffLines(want, got))
	}
	tm, err := fromYAML.MarshalTOML()
	if err != nil {
		t.Fatal(err)
	}
	fromTOML, err := Parse(tm, "fly.toml")
	if err != nil {
		t.Fatalf("parse TOML: %v\n%s", err, tm)
	}
	if got := canonical(t, fromTOML); got != want {
		t.Errorf("TOML round trip differs:\n%s", diffLines(want, got))
	}
	for name, c := range map[string]*Config{"json": fromJSON, "yaml": fromYAML, "toml": fromTOML} {
		for _, d := range c.parseDiags {
			if d.Severity != SeverityNote {
				t.Errorf("%s: unexpected diagnostic after round trip: %v", name, d)
			}
		}
	}
}

// assertAllSet fails for every key of the schema that no value in the
// config sets, so adding a key to the schema without adding it to
// full-reference.toml fails the test. A key of a list entry counts as set
// when any entry sets it.
func assertAllSet(t *testing.T, v reflect.Value, name string) {
	t.Helper()
	all := map[string]bool{}
	typePaths(v.Type(), name, all, 0)
	set := map[string]bool{}
	valuePaths(v, name, set)
	var missing []string
	for p := range all {
		if !set[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("%s is not set in full-reference.toml", p)
	}
}

func fieldName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if tag == "" || tag == "-" {
		return f.Name
	}
	return tag
}

func leafType(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		return t == reflect.TypeOf(types.Duration{})
	case reflect.Map:
		return t.Elem().Kind() != reflect.Pointer && t.Elem().Kind() != reflect.Struct
	}
	return true
}

func typePaths(t reflect.Type, name string, out map[string]bool, depth int) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if depth > 8 {
		return
	}
	if t.Kind() == reflect.Map && !leafType(t) {
		typePaths(t.Elem(), name+".*", out, depth+1)
		return
	}
	if leafType(t) {
		out[name] = true
		return
	}
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() {
			typePaths(f.Type, name+"."+fieldName(f), out, depth+1)
		}
	}
}

func valuePaths(v reflect.Value, name string, out map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			valuePaths(v.Elem(), name, out)
		}
		return
	case reflect.Slice:
		if leafType(v.Type().Elem()) {
			if v.Len() > 0 {
				out[name] = true
			}
			return
		}
		for i := 0; i < v.Len(); i++ {
			valuePaths(v.Index(i), name, out)
		}
		return
	case reflect.Map:
		if leafType(v.Type()) {
			if v.Len() > 0 {
				out[name] = true
			}
			return
		}
		iter := v.MapRange()
		for iter.Next() {
			valuePaths(iter.Value(), name+".*", out)
		}
		return
	case reflect.Struct:
		if !leafType(v.Type()) {
			for i := 0; i < v.NumField(); i++ {
				if f := v.Type().Field(i); f.IsExported() {
					valuePaths(v.Field(i), name+"."+fieldName(f), out)
				}
			}
			return
		}
	}
	if !v.IsZero() {
		out[name] = true
	}
}

func diffLines(want, got string) string {
	w := strings.Split(want, "\n")
	g := strings.Split(got, "\n")
	var b bytes.Buffer
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			b.WriteString("- " + a + "\n+ " + c + "\n")
		}
	}
	return b.String()
}
