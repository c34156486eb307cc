package proxy

import (
	"fmt"
	"net/http"
	"net/textproto"
)

// Fly's routing headers: fly-prefer-region, fly-force-region,
// fly-prefer-instance-id and fly-force-instance-id.

// routing is what a client asked of the load balancer with Fly's routing
// headers.
type routing struct {
	preferRegion, forceRegion     string
	preferInstance, forceInstance string
	exclude                       string // a machine not to pick (fly-replay elsewhere=true)
	service                       string // a raw TCP service's RouteKey: skip machines where it is down
	local                         bool   // only this host's machines (a request another host's edge forwarded)
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
