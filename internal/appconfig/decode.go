package appconfig

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// decoder fills typed structs from the generic document tree. It is
// lenient where flyctl is (numbers written as strings, a single table where
// a list is expected), records every problem with its key path, and never
// stops at the first error.
type decoder struct {
	p *parser
	// stack holds the tables being decoded, outermost first, so that an
	// unknown key can be matched to the section it belongs to.
	stack []frame
}

type frame struct {
	pth path
	t   reflect.Type
}

var (
	durationType = reflect.TypeOf(types.Duration{})
	autostopType = reflect.TypeOf(types.Autostop(""))
	anyType      = reflect.TypeOf((*any)(nil)).Elem()
)

type fieldInfo struct {
	index []int
	unit  time.Duration
}

var fieldCache sync.Map // reflect.Type -> map[string]fieldInfo

func fieldsOf(t reflect.Type) map[string]fieldInfo {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]fieldInfo)
	}
	m := map[string]fieldInfo{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		unit := time.Second
		if f.Tag.Get("unit") == "ms" {
			unit = time.Millisecond
		}
		m[name] = fieldInfo{index: f.Index, unit: unit}
	}
	fieldCache.Store(t, m)
	return m
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case int64, int:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// decode stores v into rv (addressable), reporting problems under pth.
func (d *decoder) decode(pth path, v any, rv reflect.Value, unit time.Duration) {
	t := rv.Type()
	switch {
	case t == durationType:
		if dur, ok := d.duration(pth, v, unit); ok {
			rv.Set(reflect.ValueOf(types.Duration{Duration: dur}))
		}
		return
	case t == autostopType:
		switch x := v.(type) {
		case bool:
			if x {
				rv.SetString(string(types.AutostopStop))
			} else {
				rv.SetString(string(types.AutostopOff))
			}
		case string:
			switch types.Autostop(x) {
			case types.AutostopOff, types.AutostopStop, types.AutostopSuspend:
				rv.SetString(x)
			case "true", "false":
				d.p.warnf(pth, "coerce", "use true or false without quotes, or \"stop\", \"suspend\", \"off\"", "%s: boolean written as a string", pth)
				if x == "true" {
					rv.SetString(string(types.AutostopStop))
				} else {
					rv.SetString(string(types.AutostopOff))
				}
			default:
				d.p.errorf(pth, "type", `must be "off", "stop", "suspend" or a boolean`, "%s: %q is not an autostop mode", pth, x)
			}
		default:
			d.p.errorf(pth, "type", `use "stop", "suspend", "off", true or false`, "%s: expected a string or boolean, found %s", pth, typeName(v))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v == nil {
			return
		}
		nv := reflect.New(t.Elem())
		d.decode(pth, v, nv.Elem(), unit)
		rv.Set(nv)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.p.errorf(pth, "type", fmt.Sprintf("write it as a table: [%s]", pth), "%s: expected a table, found %s", pth, typeName(v))
			return
		}
		fields := fieldsOf(t)
		d.stack = append(d.stack, frame{pth, t})
		for _, k := range sortedKeys(m) {
			fi, ok := fields[k]
			if !ok {
				d.unknownKey(pth.child(k), k, m[k])
				continue
			}
			d.decode(pth.child(k), m[k], rv.FieldByIndex(fi.index), fi.unit)
		}
		d.stack = d.stack[:len(d.stack)-1]
	case reflect.Slice:
		var items []any
		switch x := v.(type) {
		case []any:
			items = x
		case nil:
			return
		default:
			if t.Elem().Kind() == reflect.String {
				// processes = "web" means ["web"]
				if s, ok := x.(string); ok {
					d.p.warnf(pth, "coerce", fmt.Sprintf("write %s = [%q]", pth[len(pth)-1], s), "%s: expected a list of strings, found a string; using [%q]", pth, s)
					items = []any{x}
					break
				}
			}
			if _, ok := x.(map[string]any); ok && t.Elem().Kind() != reflect.String {
				// a single [table] where [[tables]] are expected
				items = []any{x}
				d.p.ix.alias(pth.index(0), pth)
				break
			}
			d.p.errorf(pth, "type", "write it as a list, e.g. [\"a\", \"b\"]", "%s: expected a list, found %s", pth, typeName(v))
			return
		}
		out := reflect.MakeSlice(t, 0, len(items))
		for i, item := range items {
			el := reflect.New(t.Elem()).Elem()
			d.decode(pth.index(i), item, el, unit)
			out = reflect.Append(out, el)
		}
		rv.Set(out)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			d.p.errorf(pth, "type", fmt.Sprintf("write it as a table: [%s] with key = value lines", pth), "%s: expected a table, found %s", pth, typeName(v))
			return
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for _, k := range sortedKeys(m) {
			el := reflect.New(t.Elem()).Elem()
			if t.Elem() == anyType {
				el.Set(reflect.ValueOf(plain(m[k])))
			} else if t.Elem().Kind() == reflect.String {
				s, ok := scalarString(m[k])
				if !ok {
					// flyctl formats such values with %v; so does Hangar.
					s = fmt.Sprint(plain(m[k]))
					d.p.warnf(pth.child(k), "coerce", "quote the value: KEY = \"value\"", "%s: expected a string, found %s; using %q", pth.child(k), typeName(m[k]), s)
				}
				el.SetString(s)
			} else {
				d.decode(pth.child(k), m[k], el, unit)
			}
			out.SetMapIndex(reflect.ValueOf(k), el)
		}
		rv.Set(out)
	case reflect.String:
		s, ok := scalarString(v)
		if !ok {
			d.p.errorf(pth, "type", "quote the value: key = \"value\"", "%s: expected a string, found %s", pth, typeName(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		switch x := v.(type) {
		case bool:
			rv.SetBool(x)
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				d.p.errorf(pth, "type", "use true or false, without quotes", "%s: expected a boolean, found %q", pth, x)
				return
			}
			d.p.warnf(pth, "coerce", "use true or false, without quotes", "%s: boolean written as a string", pth)
			rv.SetBool(b)
		default:
			d.p.errorf(pth, "type", "use true or false", "%s: expected a boolean, found %s", pth, typeName(v))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := d.integer(pth, v)
		if ok {
			rv.SetInt(n)
		}
	case reflect.Float64, reflect.Float32:
		switch x := v.(type) {
		case int64:
			rv.SetFloat(float64(x))
		case float64:
			rv.SetFloat(x)
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				d.p.errorf(pth, "type", "write a number without quotes", "%s: expected a number, found %q", pth, x)
				return
			}
			d.p.warnf(pth, "coerce", "write the number without quotes", "%s: number written as a string", pth)
			rv.SetFloat(f)
		default:
			d.p.errorf(pth, "type", "write a number", "%s: expected a number, found %s", pth, typeName(v))
		}
	default:
		d.p.errorf(pth, "type", "check the value against the fly.toml reference", "%s: unsupported value %s", pth, typeName(v))
	}
}

func (d *decoder) integer(pth path, v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x != math.Trunc(x) || math.IsInf(x, 0) || math.IsNaN(x) || math.Abs(x) > 1<<53 {
			d.p.errorf(pth, "type", "write a whole number", "%s: expected an integer, found %v", pth, x)
			return 0, false
		}
		return int64(x), true
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			d.p.errorf(pth, "type", "write a whole number without quotes", "%s: expected an integer, found %q", pth, x)
			return 0, false
		}
		// flyctl casts string ports to integers too; only say so.
		d.p.warnf(pth, "coerce", "write the number without quotes", "%s: integer written as a string", pth)
		return n, true
	default:
		d.p.errorf(pth, "type", "write a whole number", "%s: expected an integer, found %s", pth, typeName(v))
		return 0, false
	}
}

// duration reads "10s", "1m30s", or a bare number in unit (seconds for
// kill_timeout and timeouts, milliseconds for check settings, as flyctl
// reads them).
func (d *decoder) duration(pth path, v any, unit time.Duration) (time.Duration, bool) {
	hint := `use a number with a unit, like "10s" or "1m30s"`
	switch x := v.(type) {
	case int64:
		if x < 0 || x > math.MaxInt64/int64(unit) {
			d.p.errorf(pth, "duration", hint, "%s: %d is not a valid duration", pth, x)
			return 0, false
		}
		return time.Duration(x) * unit, true
	case float64:
		if x < 0 || math.IsNaN(x) || x*float64(unit) > math.MaxInt64 {
			d.p.errorf(pth, "duration", hint, "%s: %v is not a valid duration", pth, x)
			return 0, false
		}
		return time.Duration(x * float64(unit)), true
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, false
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && n <= math.MaxInt64/int64(unit) {
			d.p.warnf(pth, "coerce", hint, "%s: duration %q has no unit; reading it as %s", pth, x, time.Duration(n)*unit)
			return time.Duration(n) * unit, true
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.p.errorf(pth, "duration", hint, "%s: %q is not a valid duration", pth, x)
			return 0, false
		}
		if dur < 0 {
			d.p.errorf(pth, "duration", hint, "%s: duration %q is negative", pth, x)
			return 0, false
		}
		return dur, true
	default:
		d.p.errorf(pth, "type", hint, "%s: expected a duration, found %s", pth, typeName(v))
		return 0, false
	}
}

// scalarString turns scalars into strings the way flyctl does for env
// values ("%v"); lists and tables are not strings.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case nil:
		return "", true
	case map[string]any, []any:
		return "", false
	default:
		if s, ok := v.(fmt.Stringer); ok {
			return s.String(), true
		}
		return fmt.Sprint(v), true
	}
}

// plain converts TOML date/time values into strings so free-form maps stay
// JSON-friendly.
func plain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case string, int64, float64, bool, nil:
		return x
	default:
		s, _ := scalarString(x)
		return s
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
