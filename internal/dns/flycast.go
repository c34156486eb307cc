package dns

import (
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// FlycastZone is the zone of apps' Flycast addresses: <app>.flycast has
// an AAAA record when the app has one (as on Fly).
const FlycastZone = "flycast"

// parseFlycast parses a name under .flycast: the app of <app>.flycast, ""
// for the zone itself, and ok false for names outside the zone. Deeper
// names come back as "." (no such name).
func parseFlycast(name string) (app string, ok bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == FlycastZone {
		return "", true
	}
	rest, ok := strings.CutSuffix(name, "."+FlycastZone)
	if !ok {
		return "", false
	}
	if rest == "" || strings.ContainsAny(rest, `.\ `) {
		return ".", true
	}
	return rest, true
}

// flycast returns the source's Flycast addresses (none if it has no such
// capability).
func (s *Server) flycast() map[string]netip.Addr {
	if fs, ok := s.opt.Source.(FlycastSource); ok {
		return fs.Flycast()
	}
	return nil
}

// answerFlycast answers a .flycast name: AAAA of the app's Flycast
// address, NODATA for other types, NXDOMAIN for an app without one.
func (s *Server) answerFlycast(r *mdns.Msg, app string) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), false)
	}
	q := r.Question[0]
	if app == "" { // the zone itself
		if q.Qtype == mdns.TypeSOA || q.Qtype == mdns.TypeANY {
			m.Answer = append(m.Answer, soaOf(FlycastZone))
		} else {
			m.Ns = []mdns.RR{soaOf(FlycastZone)}
		}
		return m
	}
	addr, ok := s.flycast()[app]
	if !ok {
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{soaOf(FlycastZone)}
		return m
	}
	if q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY {
		m.Answer = append(m.Answer, &mdns.AAAA{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: TTL}, AAAA: addr.AsSlice()})
	} else {
		m.Ns = []mdns.RR{soaOf(FlycastZone)}
	}
	return m
}
