package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/types"
)

// clusterImages is the image store as the supervisor sees it in a
// cluster: an image this host lacks is fetched from another ready host
// that has it (image.Fetch over the cluster listener) before the machine
// is made, so that a machine placed on any host runs whatever image a
// deploy, an import or a build left on the host that answered.
type clusterImages struct {
	*image.Store
	log *slog.Logger

	mu     sync.Mutex // guards peers, client, self and busy
	peers  func(ctx context.Context) ([]types.Host, error)
	client *http.Client
	self   string
	busy   map[string]*sync.Mutex // one fetch per ref at a time
}

// share makes the other hosts of the cluster a source of images.
func (c *clusterImages) share(self string, peers func(ctx context.Context) ([]types.Host, error), client *http.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.self, c.peers, c.client = self, peers, client
}

// Get returns the image from this host's store, else from the first
// other ready host that has it.
func (c *clusterImages) Get(ctx context.Context, ref string) (*types.Image, error) {
	im, err := c.Store.Get(ctx, ref)
	if err == nil || !errors.Is(err, image.ErrNotFound) {
		return im, err
	}
	c.mu.Lock()
	peers, client, self := c.peers, c.client, c.self
	if peers == nil {
		c.mu.Unlock()
		return nil, err
	}
	if c.busy == nil {
		c.busy = map[string]*sync.Mutex{}
	}
	lock := c.busy[ref]
	if lock == nil {
		lock = &sync.Mutex{}
		c.busy[ref] = lock
	}
	c.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	if im, gerr := c.Store.Get(ctx, ref); gerr == nil { // fetched while waiting
		return im, nil
	}
	hs, herr := peers(ctx)
	if herr != nil {
		return nil, fmt.Errorf("%w (and the other hosts could not be listed to fetch it: %v)", err, herr)
	}
	var tried []string
	for _, h := range hs {
		if h.ID == self || h.State != types.HostReady || h.APIURL == "" {
			continue
		}
		im, ferr := c.Store.Fetch(ctx, client, h.APIURL, ref)
		if ferr == nil {
			c.log.Info("image fetched from another host", "image", ref, "digest", im.Digest, "from", h.ID)
			return im, nil
		}
		if !errors.Is(ferr, image.ErrNotFound) {
			c.log.Warn("fetch image from another host", "image", ref, "host", h.ID, "err", ferr)
			tried = append(tried, fmt.Sprintf("%s: %v", h.ID, ferr))
		}
	}
	if len(tried) > 0 {
		return nil, fmt.Errorf("%w; fetching it from the other hosts failed: %v", err, tried)
	}
	return nil, fmt.Errorf("%w (no host of the cluster has it)", err)
}
