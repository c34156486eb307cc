// Package flyreplay implements Fly.io's dynamic request routing for the
// edge proxy: the parser of the `fly-replay` response header, a request body
// buffer with a size limit, and a Replayer that redelivers the buffered
// request to the machine the header names (adding `fly-replay-src`), for at
// most MaxHops replays, and returns that machine's response. The proxy
// supplies the routing through the Target interface.
package flyreplay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	HeaderReplay    = "Fly-Replay"
	HeaderReplaySrc = "Fly-Replay-Src"
)

// Fallback values of the `fallback` field.
const (
	FallbackForceSelf  = "force_self"
	FallbackPreferSelf = "prefer_self"
)

// Directive is a parsed fly-replay header.
type Directive struct {
	// Regions in order of preference; "any" means any region.
	Regions []string
	// Instance is the machine that must take the request.
	Instance string
	// PreferInstance is a machine that should take it if it can.
	PreferInstance string
	// App is another app of the same organization ("" = the same app).
	App string
	// State is passed to the target in fly-replay-src.
	State string
	// Elsewhere excludes the responding machine from the next pick.
	Elsewhere bool
	// Timeout bounds the replay (0 = the proxy's default).
	Timeout time.Duration
	// Fallback, if set, sends the request back to the responding machine
	// when the replay fails: force_self or prefer_self.
	Fallback string
}

// ErrInvalid is wrapped by parse errors.
var ErrInvalid = errors.New("invalid fly-replay header")

// maxHeader bounds the header value the parser looks at.
const maxHeader = 4096

// Parse parses a fly-replay header value: fields `key=value` separated by
// `;`, values plain or double-quoted (a quoted value may hold commas, as in
// region="iad,ord,any"). Keys are case-insensitive; unknown keys are
// ignored, as a newer app may send fields this proxy does not know.
func Parse(v string) (Directive, error) {
	var d Directive
	if len(v) > maxHeader {
		return d, fmt.Errorf("%d bytes, over %d: %w", len(v), maxHeader, ErrInvalid)
	}
	fields, err := splitFields(v)
	if err != nil {
		return d, err
	}
	seen := map[string]bool{}
	for _, f := range fields {
		k, val := f[0], f[1]
		if seen[k] {
			return d, fmt.Errorf("field %q given twice: %w", k, ErrInvalid)
		}
		seen[k] = true
		switch k {
		case "region":
			for r := range strings.SplitSeq(val, ",") {
				r = strings.TrimSpace(r)
				if !isName(r) {
					return d, fmt.Errorf("region %q: %w", r, ErrInvalid)
				}
				d.Regions = append(d.Regions, strings.ToLower(r))
			}
		case "instance", "prefer_instance", "app":
			if !isName(val) {
				return d, fmt.Errorf("%s %q: %w", k, val, ErrInvalid)
			}
			switch k {
			case "instance":
				d.Instance = val
			case "prefer_instance":
				d.PreferInstance = val
			default:
				d.App = strings.ToLower(val)
			}
		case "state":
			d.State = val
		case "elsewhere":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return d, fmt.Errorf("elsewhere %q (want true or false): %w", val, ErrInvalid)
			}
			d.Elsewhere = b
		case "timeout":
			t, err := time.ParseDuration(val)
			if err != nil || t <= 0 {
				return d, fmt.Errorf("timeout %q (want a duration like 10s or 800ms): %w", val, ErrInvalid)
			}
			d.Timeout = t
		case "fallback":
			if val != FallbackForceSelf && val != FallbackPreferSelf {
				return d, fmt.Errorf("fallback %q (want force_self or prefer_self): %w", val, ErrInvalid)
			}
			d.Fallback = val
		}
	}
	if d.Instance == "" && d.PreferInstance == "" && d.App == "" && len(d.Regions) == 0 && !d.Elsewhere {
		return d, fmt.Errorf("%q names no target (region, instance, prefer_instance, app or elsewhere=true): %w", v, ErrInvalid)
	}
	return d, nil
}

// splitFields splits `k=v;k="v";...` into lowercased keys and unquoted
// values.
func splitFields(s string) ([][2]string, error) {
	var out [][2]string
	for {
		s = strings.TrimLeft(s, " \t;")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("field %q is not key=value: %w", cut(s), ErrInvalid)
		}
		k := strings.ToLower(strings.TrimSpace(s[:eq]))
		if !isName(k) {
			return nil, fmt.Errorf("key %q: %w", k, ErrInvalid)
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("value of %q: unterminated quote: %w", k, ErrInvalid)
			}
			val, s = b.String(), s[i+1:]
			s = strings.TrimLeft(s, " \t")
			if s != "" && s[0] != ';' {
				return nil, fmt.Errorf("value of %q: text after the closing quote: %w", k, ErrInvalid)
			}
		} else {
			end := strings.IndexByte(s, ';')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		for i := 0; i < len(val); i++ {
			if c := val[i]; c < 0x20 || c == 0x7f {
				return nil, fmt.Errorf("value of %q holds control byte %#x: %w", k, c, ErrInvalid)
			}
		}
		out = append(out, [2]string{k, val})
	}
}

func cut(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// isName: letters, digits, '-', '_', '.', 1 to 128 bytes (app names,
// machine IDs, region codes).
func isName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// String writes the directive back as a header value.
func (d Directive) String() string {
	var parts []string
	if len(d.Regions) > 0 {
		parts = append(parts, "region="+quote(strings.Join(d.Regions, ",")))
	}
	for _, kv := range [][2]string{{"instance", d.Instance}, {"prefer_instance", d.PreferInstance}, {"app", d.App}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if d.State != "" {
		parts = append(parts, "state="+quote(d.State))
	}
	if d.Elsewhere {
		parts = append(parts, "elsewhere=true")
	}
	if d.Timeout > 0 {
		parts = append(parts, "timeout="+d.Timeout.String())
	}
	if d.Fallback != "" {
		parts = append(parts, "fallback="+d.Fallback)
	}
	return strings.Join(parts, ";")
}

// quote quotes a value when it needs it.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, `;," \`) && strings.TrimSpace(s) == s {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Src is the fly-replay-src header the replayed request carries.
type Src struct {
	Instance string    // the machine that answered with fly-replay
	Region   string    // its region
	Time     time.Time // when the replay happened (microseconds on the wire)
	State    string    // the state field of the fly-replay header
}

// String formats the header value: instance=…;region=…;t=…;state=….
func (s Src) String() string {
	v := fmt.Sprintf("instance=%s;region=%s;t=%d", s.Instance, s.Region, s.Time.UnixMicro())
	if s.State != "" {
		v += ";state=" + quote(s.State)
	}
	return v
}

// ParseSrc parses a fly-replay-src header (for apps and tests).
func ParseSrc(v string) (Src, error) {
	var s Src
	fields, err := splitFields(v)
	if err != nil {
		return s, err
	}
	for _, f := range fields {
		switch f[0] {
		case "instance":
			s.Instance = f[1]
		case "region":
			s.Region = f[1]
		case "state":
			s.State = f[1]
		case "t":
			us, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return s, fmt.Errorf("fly-replay-src t %q: %w", f[1], ErrInvalid)
			}
			s.Time = time.UnixMicro(us)
		}
	}
	return s, nil
}
