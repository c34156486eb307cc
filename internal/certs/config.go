package certs

import "github.com/hangar-dev/hangar/internal/types"

// TLSOptionsFrom converts a port's `tls_options` (nil stays nil).
func TLSOptionsFrom(o *types.TLSOptions) *TLSOptions {
	if o == nil {
		return nil
	}
	out := &TLSOptions{ALPN: append([]string(nil), o.ALPN...), Versions: append([]string(nil), o.Versions...)}
	if o.DefaultSelfSigned != nil {
		out.DefaultSelfSigned = *o.DefaultSelfSigned
	}
	return out
}
