package proxy

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/textproto"
	"sort"

	"github.com/hangar-dev/hangar/internal/types"
)

// routing is what a client asked of the load balancer with Fly's routing
// headers.
type routing struct {
	preferRegion, forceRegion     string
	preferInstance, forceInstance string
	exclude                       string // a machine not to pick (fly-replay elsewhere=true)
}

func (r routing) region(def string) string {
	if r.forceRegion != "" {
		return r.forceRegion
	}
	if r.preferRegion != "" {
		return r.preferRegion
	}
	return def
}

// The routing headers, in canonical form. They are removed before the
// request reaches the app.
var routingHeaders = []string{"Fly-Prefer-Region", "Fly-Force-Region", "Fly-Prefer-Instance-Id", "Fly-Force-Instance-Id"}

// parseRouting reads fly-prefer-region, fly-force-region,
// fly-prefer-instance-id and fly-force-instance-id. A malformed value is
// an error (the request gets 400 and never reaches the app).
func parseRouting(h http.Header) (routing, error) {
	var r routing
	if len(h) == 0 {
		return r, nil
	}
	dst := []*string{&r.preferRegion, &r.forceRegion, &r.preferInstance, &r.forceInstance}
	for i, k := range routingHeaders {
		vs, ok := h[k]
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return routing{}, fmt.Errorf("header %s given %d times; give it once", k, len(vs))
		}
		v := textproto.TrimString(vs[0])
		max := 64
		if i < 2 {
			max = 16 // region codes are short: "ord", "fra", "local"
		}
		if v == "" || len(v) > max || !token(v) {
			return routing{}, fmt.Errorf("header %s: %q is not a valid %s (letters, digits and dashes, at most %d)", k, truncate(v, 80), map[bool]string{true: "region", false: "machine id"}[i < 2], max)
		}
		*dst[i] = v
	}
	return r, nil
}

func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// respHeader is one header set (or removed) on responses by a service's
// http_options.response.headers.
type respHeader struct {
	name   string
	values []string
	remove bool
}

// responseOptions reads http_options.response of the service's first HTTP
// port: pristine (pass the app's headers untouched) and the headers to
// set. A value may be a string, a list of strings, or false (remove the
// header).
func responseOptions(svc *types.MachineService) (bool, []respHeader) {
	if svc == nil {
		return false, nil
	}
	for _, port := range svc.Ports {
		if port.HTTPOptions == nil || port.HTTPOptions.Response == nil {
			continue
		}
		ro := port.HTTPOptions.Response
		pristine := ro.Pristine != nil && *ro.Pristine
		names := make([]string, 0, len(ro.Headers))
		for k := range ro.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		var out []respHeader
		for _, k := range names {
			rh := respHeader{name: textproto.CanonicalMIMEHeaderKey(k)}
			if !validHeaderName(k) {
				continue
			}
			switch v := ro.Headers[k].(type) {
			case string:
				rh.values = []string{v}
			case bool:
				if v {
					continue
				}
				rh.remove = true
			case []interface{}:
				for _, x := range v {
					if s, ok := x.(string); ok {
						rh.values = append(rh.values, s)
					}
				}
			case []string:
				rh.values = v
			default:
				rh.values = []string{fmt.Sprint(v)}
			}
			ok := true
			for _, s := range rh.values {
				if !validHeaderValue(s) {
					ok = false
				}
			}
			if ok {
				out = append(out, rh)
			}
		}
		return pristine, out
	}
	return false, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == '"' || c == ',' || c == ';' {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// requestID returns a Fly-Request-Id: 20 random hex digits and the region.
// It identifies a request in logs; it is not a secret.
func requestID(region string) string {
	b := make([]byte, 20, 21+len(region))
	x, y := mrand.Uint64(), mrand.Uint64()
	for i := 0; i < 16; i++ {
		b[i] = hexDigits[x&15]
		x >>= 4
	}
	for i := 16; i < 20; i++ {
		b[i] = hexDigits[y&15]
		y >>= 4
	}
	b = append(b, '-')
	b = append(b, region...)
	return string(b)
}
