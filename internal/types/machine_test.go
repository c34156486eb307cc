package types

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fullConfig is a machine config that sets every field of the schema
// (testdata/machine-config-full.json).
func fullConfig(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/machine-config-full.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMachineConfigRoundTrips: every field a client sends comes back as
// sent; a field the types do not know would be dropped in silence (the
// API ignores unknown fields, as Fly does).
func TestMachineConfigRoundTrips(t *testing.T) {
	in := fullConfig(t)
	var cfg MachineConfig
	if err := json.Unmarshal(in, &cfg); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if missing := DroppedFields(in, out); len(missing) > 0 {
		t.Fatalf("dropped or changed: %s", strings.Join(missing, ", "))
	}
}

// TestFullConfigCoversTheSchema: the fixture sets every field of
// MachineConfig, so a field added to the schema is in the round-trip test.
func TestFullConfigCoversTheSchema(t *testing.T) {
	var doc any
	if err := json.Unmarshal(fullConfig(t), &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		have[prefix] = true
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(prefix+"."+k, e)
				walk(prefix+".*", e) // map[string]T fields
			}
		case []any:
			for _, e := range x {
				walk(prefix+"[]", e)
			}
		}
	}
	walk("", doc)
	var want []string
	var fields func(prefix string, ty reflect.Type, depth int)
	fields = func(prefix string, ty reflect.Type, depth int) {
		for ty.Kind() == reflect.Pointer {
			ty = ty.Elem()
		}
		switch ty.Kind() {
		case reflect.Slice:
			fields(prefix+"[]", ty.Elem(), depth)
		case reflect.Map:
			if ty.Elem().Kind() != reflect.Interface {
				fields(prefix+".*", ty.Elem(), depth)
			}
		case reflect.Struct:
			if depth > 8 || ty == reflect.TypeOf(Duration{}) {
				return
			}
			for i := range ty.NumField() {
				f := ty.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				p := prefix + "." + name
				want = append(want, p)
				fields(p, f.Type, depth+1)
			}
		}
	}
	fields("", reflect.TypeOf(MachineConfig{}), 0)
	var missing []string
	for _, p := range want {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("testdata/machine-config-full.json does not set %s", strings.Join(missing, ", "))
	}
}
