package proxy

import (
	"net/http"

	"github.com/hangar-dev/hangar/internal/certs"
)

// force_https: plain-HTTP requests of an app are redirected to HTTPS.

// forceHTTPS redirects a plain-HTTP request of an app whose service has
// force_https; it reports whether it answered.
func (p *Proxy) forceHTTPS(w http.ResponseWriter, r *http.Request, c *appConf) bool {
	if !c.forceHTTPS || r.TLS != nil {
		return false
	}
	loc, ok := certs.ForceHTTPS(r, true, p.HTTPSPort)
	if !ok {
		return false
	}
	h := w.Header()
	h.Set("Fly-Request-Id", requestID(p.region))
	h.Set("Server", serverName)
	http.Redirect(w, r, loc, http.StatusMovedPermanently)
	return true
}
