package supervisor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// ErrForbidden is returned for an address outside the app's machines.
var ErrForbidden = types.NewError(types.ErrForbidden, "forbidden")

// ErrUnavailable is returned when a machine's port cannot be reached.
var ErrUnavailable = types.NewError(types.ErrUnavailable, "unavailable")

// PrivateTarget is a started machine of an app that a forwarded
// connection reaches, and the address it is dialled at.
type PrivateTarget struct {
	MachineID string
	Addr      string // the machine's IPv4 address on the bridge
}

// ResolvePrivate maps a host of the app's private network, as `hangar
// proxy` names it (Fly's 6PN names), to one of app's started machines:
// "" or <app>.internal (any), <region>.<app>.internal,
// top<N>.nearest.of.<app>.internal, <id>.vm.<app>.internal, a machine id,
// or one of the app's machines' addresses (IPv6 private_ip or IPv4). It
// never resolves through DNS, so a name or an address of another app's
// machine, or outside Hangar, is refused (ErrForbidden): a token of the app
// reaches only its app's machines.
func (s *Supervisor) ResolvePrivate(ctx context.Context, app, host string) (PrivateTarget, error) {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	ms, err := s.List(ctx, app)
	if err != nil {
		return PrivateTarget{}, err
	}
	var match func(r *Record) bool
	suffix := "." + app + ".internal"
	group := true // the host names any machine of a set, not one
	switch {
	case host == "" || host == app+".internal" || host == app:
		match = func(*Record) bool { return true }
	case strings.HasSuffix(host, ".vm"+suffix):
		id := strings.TrimSuffix(host, ".vm"+suffix)
		match = func(r *Record) bool { return r.ID == id }
		group = false
	case strings.HasPrefix(host, "top") && strings.Contains(host, ".nearest.of.") && strings.HasSuffix(host, suffix):
		match = func(*Record) bool { return true }
	case strings.HasSuffix(host, suffix) && !strings.Contains(strings.TrimSuffix(host, suffix), "."):
		region := strings.TrimSuffix(host, suffix)
		match = func(r *Record) bool { return r.Region == region }
	default:
		if ip, err := netip.ParseAddr(host); err == nil {
			match = func(r *Record) bool {
				for _, a := range []string{r.PrivateIP, r.IPv4} {
					if b, err := netip.ParseAddr(a); err == nil && b == ip {
						return true
					}
				}
				return false
			}
			group = false
			break
		}
		match = func(r *Record) bool { return r.ID == host }
		group = false
	}
	var found *Record
	for _, r := range ms {
		if !match(r) {
			continue
		}
		if found == nil || (found.State != types.StateStarted && r.State == types.StateStarted) {
			found = r
		}
	}
	if found == nil && group {
		return PrivateTarget{}, fmt.Errorf("app %s has no started machine for %q: start one with `hangar machine start -a %s ID` (see `hangar machine list -a %s`): %w",
			app, host, app, app, ErrConflict)
	}
	if found == nil {
		return PrivateTarget{}, fmt.Errorf("%q is not a machine of app %s: name one of its machines (%s.internal, <region>%s, <id>.vm%s, a machine id or its private_ip; see `hangar machine list -a %s`): %w",
			host, app, app, suffix, suffix, app, ErrForbidden)
	}
	if found.State != types.StateStarted {
		return PrivateTarget{}, fmt.Errorf("app %s has no started machine for %q (%s is %s): start one with `hangar machine start -a %s %s`: %w",
			app, host, found.ID, found.State, app, found.ID, ErrConflict)
	}
	return PrivateTarget{MachineID: found.ID, Addr: found.IPv4}, nil
}

// DialPrivate opens a TCP connection to port of the machine host names in
// app's private network (ResolvePrivate).
func (s *Supervisor) DialPrivate(ctx context.Context, app, host string, port int) (net.Conn, PrivateTarget, error) {
	t, err := s.ResolvePrivate(ctx, app, host)
	if err != nil {
		return nil, t, err
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(t.Addr, fmt.Sprint(port)))
	if err != nil {
		hint := "is the service up? See `hangar logs -a " + app + " --machine " + t.MachineID + "`"
		if strings.Contains(err.Error(), "connection refused") {
			hint = "nothing listens on that port in the machine: check the port its process listens on"
		}
		return nil, t, fmt.Errorf("machine %s of app %s, port %d: %v; %s: %w", t.MachineID, app, port, err, hint, ErrUnavailable)
	}
	return c, t, nil
}
