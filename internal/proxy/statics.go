package proxy

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hangar-dev/hangar/internal/statics"
)

// [[statics]]: files served from the image, misses go on to the app.

type staticsEntry struct {
	key string
	h   *statics.Handler
}

// staticsHandler returns the app's [[statics]] handler, built from the
// image's root filesystem on first use and again when the image or the
// statics change. Nil when it cannot be built (logged).
func (p *Proxy) staticsHandler(ctx context.Context, name string, c *appConf) *statics.Handler {
	if p.StaticsRoot == nil {
		return nil
	}
	key := fmt.Sprintf("%s %v", c.image, c.statics)
	p.statMu.Lock()
	defer p.statMu.Unlock()
	if e := p.stat[name]; e != nil && e.key == key {
		return e.h
	}
	root, err := p.StaticsRoot(ctx, c.image)
	if err != nil {
		p.log.Warn("statics: image root filesystem", "app", name, "image", c.image, "err", err)
		return nil
	}
	h, err := statics.New(root, statics.FromMachineConfig(c.statics))
	if err != nil {
		p.log.Warn("statics", "app", name, "err", err)
		return nil
	}
	h.Next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serveApp(w, r, name) })
	if p.stat == nil {
		p.stat = map[string]*staticsEntry{}
	}
	p.stat[name] = &staticsEntry{key: key, h: h}
	return h
}
