package proxy

import (
	"fmt"
	"net/textproto"
	"sort"

	"github.com/hangar-dev/hangar/internal/types"
)

// http_options.response: pristine, and the headers a service sets on
// (or removes from) its responses.

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
