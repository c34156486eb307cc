package h2backend

import (
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// FromHTTPOptions reads a port's `http_options`: whether the machine
// speaks h2c (h2_backend) and the transport options (idle_timeout, in
// seconds).
func FromHTTPOptions(o *types.HTTPOptions) (h2 bool, opts Options) {
	if o == nil {
		return false, opts
	}
	if o.IdleTimeout != nil && *o.IdleTimeout > 0 {
		opts.IdleTimeout = time.Duration(*o.IdleTimeout) * time.Second
	}
	return o.H2Backend != nil && *o.H2Backend, opts
}
