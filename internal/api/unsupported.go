package api

import "net/http"

// Fly Machines API calls Hangar has no equivalent for answer a 400 that
// names the feature (docs/api.md, "Not supported" and "Not yet"), not
// the 404 of an unknown path, so a client such as fly-go's flaps reports
// why.

// placements answers fly-go's GetPlacements.
func (s *Server) placements(w http.ResponseWriter, r *http.Request) error {
	return badRequest("placements (POST /v1/platform/placements) are not supported yet: a Hangar daemon places machines on its own host, region %s (GET /v1/platform/regions)", s.region)
}

// managedPostgres answers fly-go's Managed Postgres calls.
func (s *Server) managedPostgres(w http.ResponseWriter, r *http.Request) error {
	return badRequest("Fly's Managed Postgres (/v1/postgres) is not available on Hangar: run Postgres as an app with a volume (`hangar pg image build` makes its image; docs/postgres.md), and move data with `hangar pg migrate`")
}
