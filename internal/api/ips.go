package api

// IP address endpoints (flyctl's `ips` commands; Fly serves them over
// GraphQL, Hangar over REST), over the apps package. Only Flycast
// addresses (type private_v6) are allocated: public traffic reaches every
// app on the proxy's listen addresses without one.
//
//	GET    /v1/apps/{app}/ips          [IPAddress]
//	POST   /v1/apps/{app}/ips          AllocateIPRequest → IPAddress (201; 200 with the app's existing one)
//	DELETE /v1/apps/{app}/ips/{ip}     204
//
// and the same addresses through Fly's Machines API ip_assignments (what
// fly-go's flaps and `fly deploy` call):
//
//	GET    /v1/apps/{app}/ip_assignments        {"ips": [IPAssignment]}
//	POST   /v1/apps/{app}/ip_assignments        AssignIPRequest → IPAssignment (201; 200 with the app's existing one)
//	DELETE /v1/apps/{app}/ip_assignments/{ip}   204

import (
	"net/http"
	"net/netip"

	"github.com/hangar-dev/hangar/internal/types"
)

func (s *Server) listIPs(w http.ResponseWriter, r *http.Request) error {
	out, err := s.apps.IPs(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) allocateIP(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var req types.AllocateIPRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ip, created, err := s.apps.AllocateIP(r.Context(), app, req)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, ip)
	return nil
}

func (s *Server) releaseIP(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(r.PathValue("ip"))
	if err != nil {
		return badRequest("%q is not an IP address", r.PathValue("ip"))
	}
	if err := s.apps.ReleaseIP(r.Context(), app, addr); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listIPAssignments(w http.ResponseWriter, r *http.Request) error {
	out, err := s.apps.IPAssignments(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) assignIP(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var req types.AssignIPRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ip, created, err := s.apps.AssignIP(r.Context(), app, s.region, req)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, ip)
	return nil
}
