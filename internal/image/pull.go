package image

import (
	"context"
	"fmt"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hangar-dev/hangar/internal/types"
)

// PullOption configures Pull.
type PullOption func(*pullOptions)

type pullOptions struct {
	insecure  bool
	auth      authn.Authenticator
	platform  v1.Platform
	transport http.RoundTripper
}

// WithInsecure lets Pull talk plain HTTP to the registry (a registry on
// loopback or a private network without TLS).
func WithInsecure() PullOption { return func(o *pullOptions) { o.insecure = true } }

// WithBasicAuth authenticates to the registry with a user name and password
// or token. Without it, credentials come from the docker config
// (~/.docker/config.json, credential helpers), else anonymous.
func WithBasicAuth(user, password string) PullOption {
	return func(o *pullOptions) { o.auth = &authn.Basic{Username: user, Password: password} }
}

// WithPlatform picks the image of a multi-platform index (default
// linux/<host architecture>).
func WithPlatform(p v1.Platform) PullOption { return func(o *pullOptions) { o.platform = p } }

// WithTransport sets the HTTP transport (custom CAs, proxies).
func WithTransport(rt http.RoundTripper) PullOption {
	return func(o *pullOptions) { o.transport = rt }
}

// Pull fetches ref from its registry and stores it under the fully
// qualified ref ("alpine:3" becomes "index.docker.io/library/alpine:3").
// Blobs already in the store are not downloaded again, and a digest already
// unpacked is not unpacked again.
func (s *Store) Pull(ctx context.Context, ref string, opts ...PullOption) (*types.Image, error) {
	o := pullOptions{platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}
	for _, opt := range opts {
		opt(&o)
	}
	var nameOpts []name.Option
	if o.insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: invalid image reference (expected [registry/]repository[:tag|@digest]): %w", ref, err)
	}
	remoteOpts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(o.platform), remote.WithUserAgent("hangar")}
	if o.auth != nil {
		remoteOpts = append(remoteOpts, remote.WithAuth(o.auth))
	} else {
		remoteOpts = append(remoteOpts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	if o.transport != nil {
		remoteOpts = append(remoteOpts, remote.WithTransport(o.transport))
	}
	s.log.Info("pulling image", "ref", r.Name())
	img, err := remote.Image(r, remoteOpts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w%s", r.Name(), err, pullHint(o))
	}
	out, err := s.put(ctx, img, r.Name())
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	s.log.Info("pulled image", "ref", out.Ref, "digest", out.Digest)
	return out, nil
}

func pullHint(o pullOptions) string {
	if o.insecure {
		return " (check the registry address and credentials)"
	}
	return " (check the registry address and credentials; for a registry without TLS use the insecure option)"
}
