package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hangar-dev/hangar/internal/types"
)

// PgConsensus gives Hangar Postgres clusters their Patroni consensus
// store (pgdcs.Server: on a single host on the bridge gateway, on a host
// of a cluster on its 6PN gateway, which other hosts' machines reach).
type PgConsensus interface {
	// Grant makes or renews the app's user and returns where the store is
	// and the user's new password.
	Grant(ctx context.Context, app string) (types.PgConsensus, string, error)
}

var errNoPgConsensus = types.NewError(types.ErrInvalid, "no consensus store for replicated Postgres on this daemon")

// pgConsensus grants the app's Patroni its etcd user and stores the
// password as the app's secret (types.PgConsensusSecret): it never leaves
// the daemon.
func (s *Server) pgConsensus(w http.ResponseWriter, r *http.Request) error {
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	if s.pgDCS == nil {
		return fmt.Errorf("%w: this daemon has no machine network address to serve it on (docs/postgres.md)", errNoPgConsensus)
	}
	g, password, err := s.pgDCS.Grant(r.Context(), app)
	if err != nil {
		return err
	}
	if _, err := st.Update(r.Context(), app, map[string]*string{types.PgConsensusSecret: &password}); err != nil {
		return fmt.Errorf("store the consensus store's password as %s's secret: %w", app, err)
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}
